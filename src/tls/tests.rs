//! TLS in-process: listeners, name checks, mutual TLS, WebSockets over TLS and file errors,
//! against a CA generated for each test.

use std::path::PathBuf;

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::*;

use super::test_pki::{CertFiles, TestCa};

/// A temp directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let p = std::env::temp_dir().join(format!("yurt-tls-{}", crate::structs::generate_uuid()));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn identity(files: &CertFiles) -> Identity {
    load_identity("cert", &files.cert, "key", &files.key).unwrap()
}

/// Serves `/` ("ok") and `/ws` (echo) over TLS; returns the port.
async fn serve(config: ServerConfig) -> u16 {
    let app = Router::new().route("/", get(|| async { "ok" })).route(
        "/ws",
        get(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut socket| async move {
                while let Some(Ok(msg)) = socket.recv().await {
                    if let WsMessage::Text(t) = msg
                        && socket.send(WsMessage::Text(t)).await.is_err()
                    {
                        break;
                    }
                }
            })
        }),
    );
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = TlsListener::new(tcp, config).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

async fn get_with(tls: &ClientTls, url: &str) -> Result<String, String> {
    let config = client_config(tls).map_err(|e| e.to_string())?;
    let client = reqwest_tls(reqwest::Client::builder(), Some(&config))
        .unwrap()
        .build()
        .unwrap();
    let resp = client.get(url).send().await.map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    })?;
    resp.text().await.map_err(|e| e.to_string())
}

fn trusting(ca: &TestCa, dir: &Dir, stem: &str, check: ServerCheck) -> ClientTls {
    ClientTls {
        roots: Some(load_roots("ca", &ca.write_ca(&dir.0, stem)).unwrap()),
        identity: None,
        check,
    }
}

#[tokio::test]
async fn a_client_trusts_its_ca_only_and_checks_names_as_asked() {
    let dir = Dir::new();
    let ca = TestCa::new("yurt test CA");
    let other = TestCa::new("someone else's CA");
    let server = ca.issue(&dir.0, "server", &["server.global.nomad", "localhost"]);
    let port = serve(server_config(&identity(&server), None).unwrap()).await;
    let url = format!("https://127.0.0.1:{port}/");

    let by_host = trusting(&ca, &dir, "ca", ServerCheck::Hostname);
    assert_eq!(get_with(&by_host, &url).await.unwrap(), "ok");

    let err = get_with(
        &trusting(&other, &dir, "other", ServerCheck::Hostname),
        &url,
    )
    .await
    .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");

    let named = |n: &str| trusting(&ca, &dir, "ca", ServerCheck::Names(vec![n.to_string()]));
    assert_eq!(
        get_with(&named("server.global.nomad"), &url).await.unwrap(),
        "ok"
    );
    let err = get_with(&named("server.eu.nomad"), &url).await.unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");

    // Skipping verification accepts even a stranger's certificate.
    let skip = trusting(&other, &dir, "other", ServerCheck::SkipVerify);
    assert_eq!(get_with(&skip, &url).await.unwrap(), "ok");
}

/// Without a CA file the system's roots are used, loaded at the first check: a certificate
/// of a private CA is refused there, and the same client keeps refusing it.
#[tokio::test]
async fn without_a_ca_file_the_system_roots_check_the_chain() {
    let dir = Dir::new();
    let ca = TestCa::new("yurt test CA");
    let server = ca.issue(&dir.0, "server", &["localhost"]);
    let port = serve(server_config(&identity(&server), None).unwrap()).await;
    let url = format!("https://localhost:{port}/");
    let system = ClientTls::default();
    for _ in 0..2 {
        let err = get_with(&system, &url).await.unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }
}

#[tokio::test]
async fn chain_only_ignores_the_name_but_not_the_issuer() {
    let dir = Dir::new();
    let ca = TestCa::new("yurt test CA");
    let other = TestCa::new("someone else's CA");
    // No 127.0.0.1 in the certificate: a host check of the address fails.
    let server = ca.issue_with_ip(&dir.0, "server", &["server.global.nomad"], None);
    let port = serve(server_config(&identity(&server), None).unwrap()).await;
    let url = format!("https://127.0.0.1:{port}/");
    let err = get_with(&trusting(&ca, &dir, "ca", ServerCheck::Hostname), &url)
        .await
        .unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
    let chain = trusting(&ca, &dir, "ca", ServerCheck::ChainOnly);
    assert_eq!(get_with(&chain, &url).await.unwrap(), "ok");
    let err = get_with(
        &trusting(&other, &dir, "other", ServerCheck::ChainOnly),
        &url,
    )
    .await
    .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn mutual_tls_refuses_callers_without_a_certificate_from_the_ca() {
    let dir = Dir::new();
    let ca = TestCa::new("yurt test CA");
    let other = TestCa::new("someone else's CA");
    let server = ca.issue(&dir.0, "server", &["server.global.nomad"]);
    let roots = load_roots("ca", &ca.write_ca(&dir.0, "ca")).unwrap();
    let port = serve(server_config(&identity(&server), Some(roots.clone())).unwrap()).await;
    let url = format!("https://127.0.0.1:{port}/");
    let with = |id: Option<Identity>| ClientTls {
        roots: Some(roots.clone()),
        identity: id,
        check: ServerCheck::Hostname,
    };
    assert!(get_with(&with(None), &url).await.is_err());
    let stranger = other.issue(&dir.0, "stranger", &["client.global.nomad"]);
    assert!(
        get_with(&with(Some(identity(&stranger))), &url)
            .await
            .is_err()
    );
    let client = ca.issue(&dir.0, "client", &["client.global.nomad"]);
    assert_eq!(
        get_with(&with(Some(identity(&client))), &url)
            .await
            .unwrap(),
        "ok"
    );
}

#[tokio::test]
async fn websockets_run_over_tls() {
    let dir = Dir::new();
    let ca = TestCa::new("yurt test CA");
    let server = ca.issue(&dir.0, "server", &["localhost"]);
    let port = serve(server_config(&identity(&server), None).unwrap()).await;
    let config = client_config(&trusting(&ca, &dir, "ca", ServerCheck::Hostname)).unwrap();
    let request = format!("wss://127.0.0.1:{port}/ws")
        .into_client_request()
        .unwrap();
    let (mut ws, _) = ws::connect(request, Some(&config)).await.unwrap();
    ws.send(Message::Text("hello".into())).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), "hello"),
        other => panic!("expected the echo, got {other:?}"),
    }
    // Plain ws:// against the TLS port does not get a WebSocket.
    let plain = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .unwrap();
    assert!(ws::connect(plain, None).await.is_err());
}

#[test]
fn unusable_files_are_named_and_keys_never_shown() {
    let dir = Dir::new();
    let ca = TestCa::new("yurt test CA");
    let files = ca.issue(&dir.0, "server", &["localhost"]);
    let missing = dir.0.join("missing.pem");
    let err = load_identity("tls.cert_file", &missing, "tls.key_file", &files.key)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("tls.cert_file: reading {}:", missing.display())),
        "{err}"
    );
    // A key where the certificate belongs, and the reverse: both named, no PEM echoed.
    let err = load_identity("tls.cert_file", &files.key, "tls.key_file", &files.key)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("tls.cert_file: "), "{err}");
    assert!(err.contains("no PEM certificate"), "{err}");
    let err = load_identity("tls.cert_file", &files.cert, "tls.key_file", &files.cert)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("tls.key_file: "), "{err}");
    assert!(!err.contains("BEGIN"), "{err}");
    let key_text = std::fs::read_to_string(&files.key).unwrap();
    let body_line = key_text.lines().nth(1).unwrap();
    assert!(!err.contains(body_line));
    // A key that is not the certificate's.
    let stranger = ca.issue(&dir.0, "other", &["localhost"]);
    let mismatched = Identity {
        certs: load_certs("tls.cert_file", &files.cert).unwrap(),
        key: identity(&stranger).key,
    };
    let err = server_config(&mismatched, None).unwrap_err().to_string();
    assert!(err.starts_with("the certificate and key: "), "{err}");
}
