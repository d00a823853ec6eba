//! Resolving the task user on the host, before any chroot is entered.

use std::ffi::CString;
use std::path::PathBuf;

use nix::unistd::{Gid, User, getgrouplist};

use super::{IsolationError, Result};

/// The exec driver's default task user.
pub const DEFAULT_USER: &str = "nobody";

/// A host user with everything needed to drop privileges after fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// Login name (for `USER`/`LOGNAME`).
    pub name: String,
    /// Numeric uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary gids (primary included, as `initgroups` would set).
    pub groups: Vec<u32>,
    /// Home directory (for `HOME`).
    pub home: PathBuf,
}

/// Looks `name` up in the host passwd/group databases (empty means [`DEFAULT_USER`]).
/// A purely numeric name that is not a known user is taken as `uid` with gid = uid.
pub fn resolve_user(name: &str) -> Result<ResolvedUser> {
    let name = if name.is_empty() { DEFAULT_USER } else { name };
    let found = User::from_name(name).map_err(|source| IsolationError::Sys {
        call: "getpwnam_r",
        source,
    })?;
    let Some(user) = found else {
        if let Ok(uid) = name.parse::<u32>() {
            return Ok(ResolvedUser {
                name: name.to_string(),
                uid,
                gid: uid,
                groups: vec![uid],
                home: PathBuf::from("/"),
            });
        }
        return Err(IsolationError::UnknownUser(name.to_string()));
    };
    let cname = CString::new(name).map_err(|_| IsolationError::UnknownUser(name.to_string()))?;
    let groups = getgrouplist(&cname, user.gid)
        .map_err(|source| IsolationError::Sys {
            call: "getgrouplist",
            source,
        })?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    Ok(ResolvedUser {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
        home: user.dir,
    })
}
