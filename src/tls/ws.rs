//! Opening a client WebSocket (`ws://` or `wss://`) with yurt's TLS settings. The TCP and TLS
//! legs are done here with tokio-rustls and the WebSocket handshake by tokio-tungstenite on
//! top, so tungstenite needs no TLS stack of its own.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::{self, Error};

use super::{ClientConfig, ClientTls, client_config};

/// A byte stream a WebSocket runs over: plain TCP or TLS.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// An open client WebSocket.
pub type ClientSocket = WebSocketStream<Box<dyn Conn>>;

/// Connects `request` (a `ws://` or `wss://` URL with its headers). `wss://` uses `tls`, or
/// without it the system's roots checked against the URL's host.
pub async fn connect(
    request: Request,
    tls: Option<&ClientConfig>,
) -> Result<(ClientSocket, Response), Error> {
    let uri = request.uri().clone();
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => {
            return Err(Error::Url(
                tungstenite::error::UrlError::UnsupportedUrlScheme,
            ));
        }
    };
    let host = uri
        .host()
        .ok_or(Error::Url(tungstenite::error::UrlError::NoHostName))?;
    // `[::1]` in a URL is `::1` to a resolver and to a certificate check.
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((bare_host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let stream: Box<dyn Conn> = if secure {
        let config = match tls {
            Some(c) => c.clone(),
            None => client_config(&ClientTls::default())
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?,
        };
        let name = ServerName::try_from(bare_host).map_err(|e| {
            Error::Url(tungstenite::error::UrlError::UnableToConnect(e.to_string()))
        })?;
        let tls_stream = TlsConnector::from(Arc::clone(&config))
            .connect(name, tcp)
            .await?;
        Box::new(tls_stream)
    } else {
        Box::new(tcp)
    };
    tokio_tungstenite::client_async(request, stream).await
}
