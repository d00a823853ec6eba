//! Resolving the task's user name to the uid, gid and groups the child switches to.

use std::ffi::CString;
use std::path::PathBuf;

use nix::unistd::{Gid, User, getgrouplist};

use super::error::SupervisorError;

/// The identity a task runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name as configured.
    pub name: String,
    /// Numeric user ID.
    pub uid: libc::uid_t,
    /// Primary group ID.
    pub gid: libc::gid_t,
    /// Supplementary groups (the primary group included, as `initgroups` does).
    pub groups: Vec<libc::gid_t>,
    /// Home directory from the passwd entry (exported as `HOME`).
    pub home: PathBuf,
}

/// Looks `name` up in the passwd and group databases; an empty name means "stay as we are".
pub fn resolve(name: &str) -> Result<Option<Credentials>, SupervisorError> {
    if name.is_empty() {
        return Ok(None);
    }
    let user = User::from_name(name)
        .map_err(|e| SupervisorError::User(format!("{name}: lookup failed: {e}")))?
        .ok_or_else(|| SupervisorError::User(format!("{name}: no such user")))?;
    let cname = CString::new(name)
        .map_err(|_| SupervisorError::User(format!("{name:?}: contains a NUL byte")))?;
    // Unlike Nomad's pre-sized slice (which smuggled gid 0 in), only the real groups.
    let groups = getgrouplist(&cname, user.gid)
        .map_err(|e| SupervisorError::User(format!("{name}: listing groups: {e}")))?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    Ok(Some(Credentials {
        name: name.to_string(),
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
        home: user.dir,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_root_and_rejects_unknown() {
        assert_eq!(resolve("").unwrap(), None);
        let root = resolve("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0));
        assert!(resolve("no-such-user-yurt").is_err());
    }
}
