//! Namespace capabilities as a small bit set, and the shorthand `policy = "…"` levels.

use std::fmt;

/// Every namespace capability Nomad's policy language knows, in one table so the name, the
/// bit and the validity check cannot disagree.
const NAMES: [&str; 45] = [
    "deny",
    "list-jobs",
    "parse-job",
    "read-job",
    "submit-job",
    "dispatch-job",
    "read-logs",
    "read-fs",
    "alloc-exec",
    "alloc-node-exec",
    "alloc-lifecycle",
    "sentinel-override",
    "csi-register-plugin",
    "csi-write-volume",
    "csi-read-volume",
    "csi-list-volume",
    "csi-mount-volume",
    "host-volume-create",
    "host-volume-register",
    "host-volume-read",
    "host-volume-write",
    "host-volume-delete",
    "list-scaling-policies",
    "read-scaling-policy",
    "read-job-scaling",
    "scale-job",
    "submit-recommendation",
    "register-job",
    "revert-job",
    "deregister-job",
    "purge-job",
    "evaluate-job",
    "plan-job",
    "tag-job-version",
    "stable-job",
    "fail-deployment",
    "pause-deployment",
    "promote-deployment",
    "unblock-deployment",
    "cancel-deployment",
    "set-alloc-health-deployment",
    "gc-allocation",
    "pause-allocation",
    "force-periodic-job",
    "delete-service-registration",
];

/// One namespace capability (an index into the name table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NsCap(u8);

impl NsCap {
    pub const DENY: NsCap = NsCap(0);
    pub const LIST_JOBS: NsCap = NsCap(1);
    pub const PARSE_JOB: NsCap = NsCap(2);
    pub const READ_JOB: NsCap = NsCap(3);
    pub const SUBMIT_JOB: NsCap = NsCap(4);
    pub const DISPATCH_JOB: NsCap = NsCap(5);
    pub const READ_LOGS: NsCap = NsCap(6);
    pub const READ_FS: NsCap = NsCap(7);
    pub const ALLOC_EXEC: NsCap = NsCap(8);
    pub const ALLOC_NODE_EXEC: NsCap = NsCap(9);
    pub const ALLOC_LIFECYCLE: NsCap = NsCap(10);
    pub const CSI_WRITE_VOLUME: NsCap = NsCap(13);
    pub const CSI_READ_VOLUME: NsCap = NsCap(14);
    pub const CSI_LIST_VOLUME: NsCap = NsCap(15);
    pub const CSI_MOUNT_VOLUME: NsCap = NsCap(16);
    pub const HOST_VOLUME_CREATE: NsCap = NsCap(17);
    pub const HOST_VOLUME_REGISTER: NsCap = NsCap(18);
    pub const HOST_VOLUME_READ: NsCap = NsCap(19);
    pub const HOST_VOLUME_WRITE: NsCap = NsCap(20);
    pub const HOST_VOLUME_DELETE: NsCap = NsCap(21);
    pub const LIST_SCALING_POLICIES: NsCap = NsCap(22);
    pub const READ_SCALING_POLICY: NsCap = NsCap(23);
    pub const READ_JOB_SCALING: NsCap = NsCap(24);
    pub const SCALE_JOB: NsCap = NsCap(25);
    pub const SUBMIT_RECOMMENDATION: NsCap = NsCap(26);
    pub const TAG_JOB_VERSION: NsCap = NsCap(33);

    /// The capability named `name`, if the policy language knows it.
    pub fn parse(name: &str) -> Option<NsCap> {
        NAMES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| u8::try_from(i).ok())
            .map(NsCap)
    }

    /// Its name in the policy language.
    pub fn name(self) -> &'static str {
        NAMES[usize::from(self.0)]
    }

    fn bit(self) -> u64 {
        1 << self.0
    }
}

impl fmt::Display for NsCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of namespace capabilities.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CapSet(u64);

impl CapSet {
    /// The empty set.
    pub const EMPTY: CapSet = CapSet(0);

    /// The set holding `caps`.
    pub fn of(caps: &[NsCap]) -> CapSet {
        let mut s = CapSet::EMPTY;
        for c in caps {
            s.insert(*c);
        }
        s
    }

    pub fn insert(&mut self, cap: NsCap) {
        self.0 |= cap.bit();
    }

    pub fn contains(self, cap: NsCap) -> bool {
        self.0 & cap.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: CapSet) -> CapSet {
        CapSet(self.0 | other.0)
    }

    /// True when the set denies everything.
    pub fn is_deny(self) -> bool {
        self.contains(NsCap::DENY)
    }

    /// Grants `other` too, with Nomad's rule that a deny replaces everything and sticks.
    pub fn merge(&mut self, other: CapSet) {
        if self.is_deny() {
            return;
        }
        if other.is_deny() {
            *self = CapSet::of(&[NsCap::DENY]);
            return;
        }
        self.0 |= other.0;
    }

    /// The capability names in the set, in table order.
    pub fn names(self) -> Vec<&'static str> {
        (0..NAMES.len())
            .filter_map(|i| u8::try_from(i).ok())
            .map(NsCap)
            .filter(|c| self.contains(*c))
            .map(NsCap::name)
            .collect()
    }
}

impl fmt::Debug for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// A shorthand `policy = "…"` level. Ordered by privilege except that merging two levels
/// gives deny whenever either is deny (Nomad's `maxPrivilege`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    #[default]
    None,
    List,
    Read,
    Write,
    Deny,
}

impl Level {
    /// Parses a level name; `allowed` lists the ones valid where it appears.
    pub fn parse(name: &str, allowed: &[Level]) -> Option<Level> {
        let level = match name {
            "deny" => Level::Deny,
            "read" => Level::Read,
            "write" => Level::Write,
            "list" => Level::List,
            _ => return None,
        };
        allowed.contains(&level).then_some(level)
    }

    /// The merge of two grants of the same rule: deny wins, otherwise the higher one.
    pub fn max_privilege(self, other: Level) -> Level {
        self.max(other)
    }

    /// Grants at least read (and is not a deny).
    pub fn allows_read(self) -> bool {
        matches!(self, Level::Read | Level::Write)
    }

    /// Grants write.
    pub fn allows_write(self) -> bool {
        self == Level::Write
    }
}

/// What `policy = "<name>"` grants in a namespace block; `None` for an unknown name.
pub fn expand_namespace_policy(name: &str) -> Option<CapSet> {
    use NsCap as C;
    let read = [
        C::LIST_JOBS,
        C::PARSE_JOB,
        C::READ_JOB,
        C::CSI_LIST_VOLUME,
        C::CSI_READ_VOLUME,
        C::READ_JOB_SCALING,
        C::LIST_SCALING_POLICIES,
        C::READ_SCALING_POLICY,
        C::HOST_VOLUME_READ,
    ];
    let write_extra = [
        C::SCALE_JOB,
        C::SUBMIT_JOB,
        C::DISPATCH_JOB,
        C::READ_LOGS,
        C::READ_FS,
        C::ALLOC_EXEC,
        C::ALLOC_LIFECYCLE,
        C::CSI_MOUNT_VOLUME,
        C::CSI_WRITE_VOLUME,
        C::SUBMIT_RECOMMENDATION,
        C::HOST_VOLUME_CREATE,
    ];
    Some(match name {
        "deny" => CapSet::of(&[C::DENY]),
        "read" => CapSet::of(&read),
        "write" => CapSet::of(&read).union(CapSet::of(&write_extra)),
        "scale" => CapSet::of(&[
            C::LIST_SCALING_POLICIES,
            C::READ_SCALING_POLICY,
            C::READ_JOB_SCALING,
            C::SCALE_JOB,
            C::READ_JOB,
            C::SUBMIT_RECOMMENDATION,
        ]),
        _ => return None,
    })
}

/// Capabilities that imply others (the host-volume ones), added to `caps`.
pub fn add_implied(caps: &mut CapSet) {
    use NsCap as C;
    if caps.contains(C::HOST_VOLUME_WRITE) {
        for c in [
            C::HOST_VOLUME_REGISTER,
            C::HOST_VOLUME_CREATE,
            C::HOST_VOLUME_DELETE,
            C::HOST_VOLUME_READ,
        ] {
            caps.insert(c);
        }
    }
    if caps.contains(C::HOST_VOLUME_REGISTER) {
        caps.insert(C::HOST_VOLUME_CREATE);
        caps.insert(C::HOST_VOLUME_READ);
    }
    if caps.contains(C::HOST_VOLUME_CREATE) {
        caps.insert(C::HOST_VOLUME_READ);
    }
}

/// Capabilities of a variables path rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VarCaps {
    pub list: bool,
    pub read: bool,
    pub write: bool,
    pub destroy: bool,
    pub deny: bool,
}

impl VarCaps {
    /// Adds the capability `name`; false when the name is not a variables capability.
    pub fn add(&mut self, name: &str) -> bool {
        match name {
            "list" => self.list = true,
            // Reading a path implies listing it, as Nomad expands it.
            "read" => {
                self.read = true;
                self.list = true;
            }
            "write" => self.write = true,
            "destroy" => self.destroy = true,
            "deny" => self.deny = true,
            _ => return false,
        }
        true
    }

    /// Grants `other` too (deny sticks).
    pub fn merge(&mut self, other: VarCaps) {
        self.list |= other.list;
        self.read |= other.read;
        self.write |= other.write;
        self.destroy |= other.destroy;
        self.deny |= other.deny;
    }

    /// Whether `op` (`list`, `read`, `write`, `destroy`) is granted.
    pub fn allows(self, op: VarOp) -> bool {
        if self.deny {
            return false;
        }
        match op {
            VarOp::List => self.list,
            VarOp::Read => self.read,
            VarOp::Write => self.write,
            VarOp::Destroy => self.destroy,
        }
    }
}

/// An operation on a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarOp {
    List,
    Read,
    Write,
    Destroy,
}
