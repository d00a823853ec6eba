//! The fork chain both isolation entry points share: starting a task ([`super::launch`]) and
//! entering a running one ([`super::enter`]).
//!
//! ```text
//! caller ── fork ──▶ shim ── (enter namespaces) ── fork ──▶ child ── (setup) ── execve
//!   ▲                  │ pid channel: the child's host pid        │
//!   └──────────────────┴── error channel: (stage, errno), or EOF once execve succeeded
//! ```
//!
//! * [`prepare`]: everything the children touch is allocated before the first fork (C
//!   strings, argv/envp arrays, stdio copies), so they only make raw system calls.
//! * [`handshake`]: the caller's side — the two channels, forking the shim, reading the
//!   child's pid and then its setup result, killing and reaping the shim on failure.
//! * [`shim`]: the shim's body after its namespace step — fork the child, report its pid,
//!   relay signals to it and exit the way it exits.
//! * [`stage`]: the setup steps a child reports a failure at, and the error channel's writer.
//! * [`identity`]: the child's last privileged steps: capability bounding set, groups, gid,
//!   uid, the task's capability sets, parent-death signal; then [`identity::prepare_exec`].
//!
//! What differs stays with the callers: the launcher unshares namespaces, waits for its cgroup
//! placement and builds the root; the enterer joins the task's namespaces, cgroups and root.

pub(super) mod handshake;
pub(super) mod identity;
pub(super) mod prepare;
pub(super) mod shim;
pub(super) mod stage;
