//! Setup steps a forked child can fail at, and how it reports that failure.
//!
//! The report is `(stage, errno)` as 8 bytes on the error channel, followed by `_exit(127)`;
//! a successful `execve` closes the channel (close-on-exec) instead, which the caller reads as
//! EOF.

use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::isolation::IsolationError;

/// A step of the shim or child between fork and exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(in crate::isolation) enum Stage {
    Unshare,
    Setns,
    Fork,
    Cgroup,
    Chroot,
    Setsid,
    OomScoreAdj,
    MakePrivate,
    BindRoot,
    MountProc,
    MaskProc,
    PivotRoot,
    Hostname,
    Stdio,
    ControllingTty,
    CapBounding,
    KeepCaps,
    SetGroups,
    SetGid,
    SetUid,
    CapSet,
    Ambient,
    ParentDeathSignal,
    Chdir,
    Exec,
}

impl Stage {
    const ALL: [Stage; 25] = [
        Stage::Unshare,
        Stage::Setns,
        Stage::Fork,
        Stage::Cgroup,
        Stage::Chroot,
        Stage::Setsid,
        Stage::OomScoreAdj,
        Stage::MakePrivate,
        Stage::BindRoot,
        Stage::MountProc,
        Stage::MaskProc,
        Stage::PivotRoot,
        Stage::Hostname,
        Stage::Stdio,
        Stage::ControllingTty,
        Stage::CapBounding,
        Stage::KeepCaps,
        Stage::SetGroups,
        Stage::SetGid,
        Stage::SetUid,
        Stage::CapSet,
        Stage::Ambient,
        Stage::ParentDeathSignal,
        Stage::Chdir,
        Stage::Exec,
    ];

    /// What the error message names.
    pub(in crate::isolation) fn name(self) -> &'static str {
        match self {
            Stage::Unshare => "unshare",
            Stage::Setns => "setns",
            Stage::Fork => "fork",
            Stage::Cgroup => "join cgroup",
            Stage::Chroot => "chroot into task root",
            Stage::Setsid => "setsid",
            Stage::OomScoreAdj => "oom_score_adj",
            Stage::MakePrivate => "make / rprivate",
            Stage::BindRoot => "bind root",
            Stage::MountProc => "mount /proc",
            Stage::MaskProc => "mask /proc paths",
            Stage::PivotRoot => "pivot_root",
            Stage::Hostname => "sethostname",
            Stage::Stdio => "dup2 stdio",
            Stage::ControllingTty => "TIOCSCTTY",
            Stage::CapBounding => "drop bounding capabilities",
            Stage::KeepCaps => "PR_SET_KEEPCAPS",
            Stage::SetGroups => "setgroups",
            Stage::SetGid => "setresgid",
            Stage::SetUid => "setresuid",
            Stage::CapSet => "capset",
            Stage::Ambient => "raise ambient capabilities",
            Stage::ParentDeathSignal => "PR_SET_PDEATHSIG",
            Stage::Chdir => "chdir work_dir",
            Stage::Exec => "execve",
        }
    }

    fn from_code(code: u32) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| *s as u32 == code)
    }
}

/// The child's end of the error channel (a close-on-exec socket).
#[derive(Debug, Clone, Copy)]
pub(in crate::isolation) struct ErrorChannel(pub(in crate::isolation) RawFd);

impl ErrorChannel {
    /// Reports `(stage, errno)` to the caller and exits. Async-signal-safe.
    pub(in crate::isolation) fn fail(self, stage: Stage) -> ! {
        let errno = Errno::last_raw();
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
        msg[4..].copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: send/_exit are async-signal-safe; msg lives on the stack. MSG_NOSIGNAL: a
        // caller that gave up must not turn the report into a SIGPIPE death.
        unsafe {
            libc::send(self.0, msg.as_ptr().cast(), msg.len(), libc::MSG_NOSIGNAL);
            libc::_exit(127)
        }
    }

    /// [`ErrorChannel::fail`] when a raw system call result is negative.
    pub(in crate::isolation) fn check(self, r: libc::c_long, stage: Stage) {
        if r < 0 {
            self.fail(stage);
        }
    }
}

/// Decodes one report read by the caller.
pub(super) fn decode(msg: [u8; 8]) -> IsolationError {
    let code = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let errno = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
    IsolationError::ChildSetup {
        stage: Stage::from_code(code).map_or("unknown stage", Stage::name),
        source: Errno::from_raw(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_round_trips() {
        for s in Stage::ALL {
            let mut msg = [0u8; 8];
            msg[..4].copy_from_slice(&(s as u32).to_ne_bytes());
            msg[4..].copy_from_slice(&libc::EPERM.to_ne_bytes());
            match decode(msg) {
                IsolationError::ChildSetup { stage, source } => {
                    assert_eq!(stage, s.name());
                    assert_eq!(source, Errno::EPERM);
                }
                other => panic!("{other}"),
            }
        }
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&999u32.to_ne_bytes());
        assert!(decode(msg).to_string().contains("unknown stage"));
    }
}
