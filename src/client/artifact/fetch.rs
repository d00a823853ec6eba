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
    if insecure && url.scheme() == "https" {
        return Err("insecure (unverified TLS) artifact downloads are not supported".into());
    }
    let mut builder = reqwest::Client::builder()
        .read_timeout(cfg.http_read_timeout)
        .connect_timeout(std::time::Duration::from_secs(30));
    if url.scheme() == "https" {
        builder = crate::tls::reqwest_tls(builder, None).map_err(|e| format!("TLS: {e}"))?;
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
