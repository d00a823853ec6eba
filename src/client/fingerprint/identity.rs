//! The node's ID and SecretID, created once and kept in `<data_dir>/client/` as Nomad's
//! `client-id` and `secret-id` files so the node survives agent restarts.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Reading or writing the identity files failed.
#[derive(Debug, thiserror::Error)]
#[error("{context} {path}: {source}")]
pub struct IdentityError {
    context: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Loads `(ID, SecretID)` from `dir`, creating them the first time.
pub fn load_or_create(dir: &Path) -> Result<(String, String), IdentityError> {
    fs::create_dir_all(dir).map_err(|source| IdentityError {
        context: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    // The directory holds the node's secret: refuse to go on if it cannot be made private.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
        IdentityError {
            context: "restricting permissions of",
            path: dir.to_path_buf(),
            source,
        }
    })?;
    Ok((
        id_file(&dir.join("client-id"))?,
        id_file(&dir.join("secret-id"))?,
    ))
}

fn id_file(path: &Path) -> Result<String, IdentityError> {
    match fs::read_to_string(path) {
        Ok(s) if uuid::Uuid::parse_str(s.trim()).is_ok() => return Ok(s.trim().to_lowercase()),
        Ok(_) => tracing::warn!(path = %path.display(), "ignoring malformed node identity file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(IdentityError {
                context: "reading",
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let id = crate::structs::generate_uuid();
    let err = |context| {
        let path = path.to_path_buf();
        move |source| IdentityError {
            context,
            path,
            source,
        }
    };
    super::super::state_db::write_atomic(path, id.as_bytes()).map_err(|e| IdentityError {
        context: "writing",
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(err("chmod"))?;
    Ok(id)
}
