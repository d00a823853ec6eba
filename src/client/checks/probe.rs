//! One run of one check: an HTTP request or a TCP connection to the service's address,
//! judged as Nomad's checker judges it.

use std::time::Duration;

use crate::structs::service::{CheckQueryResult, CheckStatus};
use crate::structs::time::now_nanos;

/// The most of a failing response's body kept as the check's output (Nomad keeps 3 KiB).
const OUTPUT_LIMIT: usize = 3 * 1024;

/// What to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Http {
        /// `http://host:port/path?query`.
        url: String,
        method: String,
        headers: Vec<(String, String)>,
        body: String,
    },
    Tcp {
        /// `host:port`.
        addr: String,
    },
}

fn result(status: CheckStatus, output: String) -> CheckQueryResult {
    CheckQueryResult {
        status,
        output,
        timestamp: now_nanos() / 1_000_000_000,
        ..Default::default()
    }
}

/// Runs `probe` once, giving up after `timeout`.
pub async fn run(probe: &Probe, timeout: Duration, http: &reqwest::Client) -> CheckQueryResult {
    match probe {
        Probe::Tcp { addr } => {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => result(CheckStatus::Success, "nomad: tcp ok".into()),
                Ok(Err(e)) => result(CheckStatus::Failure, format!("dial tcp {addr}: {e}")),
                Err(_) => result(
                    CheckStatus::Failure,
                    format!("dial tcp {addr}: i/o timeout"),
                ),
            }
        }
        Probe::Http {
            url,
            method,
            headers,
            body,
        } => {
            let method =
                reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
            let mut req = http
                .request(method, url)
                .timeout(timeout)
                .body(body.clone());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    return result(
                        CheckStatus::Failure,
                        format!("nomad: {}", crate::tls::with_causes(&e)),
                    );
                }
            };
            let code = resp.status().as_u16();
            let mut r = if code == 200 {
                result(CheckStatus::Success, "nomad: http ok".into())
            } else {
                let status = if code < 400 {
                    CheckStatus::Success
                } else {
                    CheckStatus::Failure
                };
                let body = tokio::time::timeout(timeout, resp.bytes())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                let shown = &body[..body.len().min(OUTPUT_LIMIT)];
                result(status, String::from_utf8_lossy(shown).into_owned())
            };
            r.status_code = i64::from(code);
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_probes_see_listeners_and_their_absence() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let http = reqwest::Client::new();
        let up = run(
            &Probe::Tcp { addr: addr.clone() },
            Duration::from_secs(2),
            &http,
        )
        .await;
        assert_eq!(up.status, CheckStatus::Success);
        assert_eq!(up.output, "nomad: tcp ok");
        drop(listener);
        let down = run(&Probe::Tcp { addr }, Duration::from_secs(2), &http).await;
        assert_eq!(down.status, CheckStatus::Failure);
    }

    #[tokio::test]
    async fn http_status_codes_decide_the_outcome() {
        use axum::http::StatusCode;
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/ok", get(|| async { "fine" }))
            .route("/moved", get(|| async { (StatusCode::NO_CONTENT, "") }))
            .route(
                "/bad",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "overloaded") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        crate::tls::install_default_provider();
        let http = reqwest::Client::new();
        let probe = |path: &str| Probe::Http {
            url: format!("http://{addr}{path}"),
            method: "GET".into(),
            headers: vec![],
            body: String::new(),
        };
        let t = Duration::from_secs(5);
        let ok = run(&probe("/ok"), t, &http).await;
        assert_eq!((ok.status, ok.status_code), (CheckStatus::Success, 200));
        assert_eq!(ok.output, "nomad: http ok");
        let other = run(&probe("/moved"), t, &http).await;
        assert_eq!(
            (other.status, other.status_code),
            (CheckStatus::Success, 204)
        );
        let bad = run(&probe("/bad"), t, &http).await;
        assert_eq!((bad.status, bad.status_code), (CheckStatus::Failure, 503));
        assert_eq!(bad.output, "overloaded");
    }
}
