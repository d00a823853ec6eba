//! Getting the bytes: HTTP(S) downloads bounded in size and idle time, and copies of local
//! directories.

use std::collections::BTreeMap;
use std::path::Path;

use tokio::io::AsyncWriteExt;

use super::ArtifactConfig;

/// Downloads `url` into `to`.
pub async fn http(
    url: &reqwest::Url,
    headers: &BTreeMap<String, String>,
    insecure: bool,
    to: &Path,
    cfg: &ArtifactConfig,
) -> Result<(), String> {
    let mut builder = reqwest::Client::builder()
        .read_timeout(cfg.http_read_timeout)
        .connect_timeout(std::time::Duration::from_secs(30));
    if url.scheme() == "https" {
        // `insecure` skips only the certificate check; the handshake is still verified.
        let tls = insecure
            .then(|| {
                crate::tls::client_config(&crate::tls::ClientTls {
                    check: crate::tls::ServerCheck::SkipVerify,
                    ..Default::default()
                })
            })
            .transpose()
            .map_err(|e| format!("TLS: {e}"))?;
        builder =
            crate::tls::reqwest_tls(builder, tls.as_ref()).map_err(|e| format!("TLS: {e}"))?;
    }
    let client = builder
        .build()
        .map_err(|e| format!("building HTTP client: {e}"))?;
    let mut req = client.get(url.clone());
    for (k, v) in headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| format!("header {k:?}: {e}"))?;
        let value =
            reqwest::header::HeaderValue::from_str(v).map_err(|e| format!("header {k:?}: {e}"))?;
        req = req.header(name, value);
    }
    let mut resp = req.send().await.map_err(|e| crate::tls::with_causes(&e))?;
    if !resp.status().is_success() {
        return Err(format!("bad response code: {}", resp.status().as_u16()));
    }
    let max = cfg.http_max_size;
    let too_big = || format!("artifact is larger than {max} bytes (http_max_size)");
    if max != 0 && resp.content_length().is_some_and(|n| n > max) {
        return Err(too_big());
    }
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|e| format!("{}: {e}", to.display()))?;
    let mut total: u64 = 0;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading response: {}", crate::tls::with_causes(&e)))?
    {
        total += chunk.len() as u64;
        if max != 0 && total > max {
            return Err(too_big());
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("{}: {e}", to.display()))?;
    }
    file.flush()
        .await
        .map_err(|e| format!("{}: {e}", to.display()))
}

/// Copies the tree at `from` into `to`. Symlinks in the source are refused: the source is a
/// host path, and a link could bring in anything on the host.
pub fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        let target = to.join(entry.file_name());
        if kind.is_symlink() {
            return Err(format!(
                "{} is a symlink; artifact directories may not contain any",
                entry.path().display()
            ));
        } else if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("{}: {e}", target.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_pki::TestCa;

    /// Serves `/a.txt` over HTTPS with a certificate from a CA nobody trusts; the handler
    /// answers only when the `X-Token` header is right.
    async fn serve_untrusted(dir: &Path) -> u16 {
        use axum::routing::get;
        let ca = TestCa::new("untrusted artifact CA");
        let files = ca.issue(dir, "srv", &["localhost"]);
        let identity = crate::tls::load_identity("cert", &files.cert, "key", &files.key).unwrap();
        let config = crate::tls::server_config(&identity, None).unwrap();
        let app = axum::Router::new().route(
            "/a.txt",
            get(|h: axum::http::HeaderMap| async move {
                if h.get("x-token").is_some_and(|v| v == "s3cret") {
                    (axum::http::StatusCode::OK, "secure bytes")
                } else {
                    (axum::http::StatusCode::FORBIDDEN, "no")
                }
            }),
        );
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        let listener = crate::tls::TlsListener::new(tcp, config).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        port
    }

    #[tokio::test]
    async fn insecure_skips_the_certificate_check_and_headers_are_sent() {
        let dir = std::env::temp_dir().join(format!("yurt-fetch-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = serve_untrusted(&dir).await;
        let url = reqwest::Url::parse(&format!("https://localhost:{port}/a.txt")).unwrap();
        let to = dir.join("out");
        let cfg = ArtifactConfig::default();
        let headers = BTreeMap::from([("X-Token".to_string(), "s3cret".to_string())]);

        let err = http(&url, &headers, false, &to, &cfg).await.unwrap_err();
        assert!(err.to_lowercase().contains("certificate"), "{err}");

        http(&url, &headers, true, &to, &cfg).await.unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"secure bytes");

        let err = http(&url, &BTreeMap::new(), true, &to, &cfg)
            .await
            .unwrap_err();
        assert_eq!(err, "bad response code: 403");

        let small = ArtifactConfig {
            http_max_size: 4,
            ..ArtifactConfig::default()
        };
        let err = http(&url, &headers, true, &to, &small).await.unwrap_err();
        assert!(err.contains("http_max_size"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
