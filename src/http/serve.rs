//! The HTTP accept loop. `axum::serve` gives hyper no timer, so hyper's header-read deadline
//! never fires: a client that opens connections and sends half a request line (a slow-loris)
//! keeps each one, and its task, for as long as it likes. Connections are served here the
//! same way, plus a timer and a deadline for the request head.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;

/// How long a client may take to send a request's head (request line and headers), counted
/// from its first byte; a connection that has not finished by then is closed. Generous for any
/// real client, short enough that stalled connections do not pile up.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests finish
/// (connections are asked to close gracefully) before returning.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    L: Listener,
    L::Addr: Debug,
{
    // Each connection holds a clone of `closed_rx` while it runs, and watches `stop_rx`.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (closed_tx, closed_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stop_rx = stop_rx.clone();
        let closed_rx = closed_rx.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            let mut conn = std::pin::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    res = conn.as_mut() => {
                        if let Err(e) = res {
                            tracing::trace!(?peer, error = %e, "connection ended");
                        }
                        break;
                    }
                    changed = stop_rx.changed(), if !stopping => {
                        stopping = true;
                        if changed.is_ok() {
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(closed_rx);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(closed_rx);
    closed_tx.closed().await;
    Ok(())
}
