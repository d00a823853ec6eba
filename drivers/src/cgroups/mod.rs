//! Per-task cgroups on cgroup v1 and v2, written directly over cgroupfs.
//!
//! Layout follows Nomad: one parent cgroup (default `yurt`) and one cgroup per task named
//! `<alloc_id>.<task>` under it. On v1 the task cgroup exists once per controller hierarchy
//! (memory, cpu, cpuacct, pids, freezer); on v2 it is a single directory.
//!
//! The mode is detected once at start ([`CgroupManager::detect`]): v2 when `/sys/fs/cgroup` is
//! itself cgroup2, or when a cgroup2 mount beside a v1 hierarchy (hybrid, e.g.
//! `/sys/fs/cgroup/unified`) offers the memory and pids controllers; otherwise v1 when the
//! controller hierarchies are mounted. Both backends can also be pointed at an explicit root
//! ([`CgroupManager::v1`], [`CgroupManager::v2`]) so they can be tested side by side.
//!
//! Everything here is synchronous and does plain file I/O; it is meant for the per-task
//! supervisor and for the agent's destroy/stats paths alike.

#![warn(missing_docs)]

mod process_memory;
mod v1;
mod v2;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::driver::{CpuStats, MemoryStats, TaskResourceUsage, TaskResources};

/// Default parent cgroup name (Nomad uses `nomad.slice` on v2 and `/nomad` on v1).
pub const DEFAULT_PARENT: &str = "yurt";

/// Default bound for [`TaskCgroup::kill_all`].
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// The v1 controllers a task cgroup is created in (cpuset is left to the caller: its
/// `cpuset.cpus`/`cpuset.mems` must be initialised before any process can join).
pub const V1_CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "pids", "freezer"];

/// The v2 controllers the manager enables for its subtree when the root offers them.
pub const V2_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

const MOUNTINFO: &str = "/proc/self/mountinfo";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Errors from cgroup operations, each naming the file, directory or pid involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No usable cgroup hierarchy on this machine.
    #[error("cgroups unavailable: {0}")]
    Unavailable(String),
    /// A limit needs a controller the hierarchy does not offer to the task cgroup.
    #[error("cgroup controller {controller:?} is not available for {path}")]
    ControllerUnavailable {
        /// Controller name (`memory`, `pids`, ...).
        controller: String,
        /// The cgroup directory that lacks it.
        path: PathBuf,
    },
    /// A cgroup name that is empty, `.`/`..` or contains `/` or NUL.
    #[error("invalid cgroup name {0:?}")]
    InvalidName(String),
    /// [`TaskCgroup::reattach`] found no such cgroup.
    #[error("cgroup not found: {0}")]
    NotFound(PathBuf),
    /// A cgroupfs file or directory operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted (`read`, `write`, `mkdir`, `rmdir`).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A cgroupfs file held something unexpected.
    #[error("malformed {path}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Signalling a process of the cgroup failed (other than it being gone already).
    #[error("signal {signal} to pid {pid} in cgroup {cgroup}: {source}")]
    Signal {
        /// The signal sent.
        signal: Signal,
        /// The target pid.
        pid: i32,
        /// The task cgroup name.
        cgroup: String,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
    /// Processes survived [`TaskCgroup::kill_all`] or kept [`TaskCgroup::destroy`] from finishing.
    #[error("cgroup {cgroup}: {remaining} process(es) still present after {waited:?}")]
    Timeout {
        /// The task cgroup name.
        cgroup: String,
        /// How many pids were left.
        remaining: usize,
        /// How long we waited.
        waited: Duration,
    },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, CgroupError>;

/// Which cgroup hierarchy the manager drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CgroupVersion {
    /// Legacy per-controller hierarchies.
    V1,
    /// The unified hierarchy.
    V2,
}

impl CgroupVersion {
    /// The node attribute value for `os.cgroups.version` (`"1"` or `"2"`).
    pub fn attribute_value(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "1",
            CgroupVersion::V2 => "2",
        }
    }
}

/// The node's CPU capacity, used to turn a CPU percentage into MHz ("ticks") like Nomad.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeCompute {
    /// Total MHz across all cores.
    pub total_mhz: f64,
    /// Number of usable cores.
    pub cores: u32,
}

impl NodeCompute {
    /// Reads the per-core clock from `/proc/cpuinfo` and the usable core count; falls back to
    /// 1000 MHz per core when the clock is not published (some VMs and arm boards).
    pub fn detect() -> NodeCompute {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        let mhz = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("cpu MHz"))
                    .and_then(|l| l.split(':').nth(1))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(1000.0);
        NodeCompute {
            total_mhz: mhz * f64::from(cores),
            cores,
        }
    }

    /// MHz of one core.
    pub fn mhz_per_core(&self) -> f64 {
        if self.cores == 0 {
            self.total_mhz
        } else {
            self.total_mhz / f64::from(self.cores)
        }
    }
}

/// Limits written into a task cgroup; `None` leaves the kernel default (unlimited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Soft limit / reservation in bytes (v1 `memory.soft_limit_in_bytes`, v2 `memory.low`).
    pub memory_soft_bytes: Option<u64>,
    /// Hard limit in bytes (v1 `memory.limit_in_bytes` (+memsw), v2 `memory.max`).
    pub memory_hard_bytes: Option<u64>,
    /// Disable swap for the task where the kernel lets us (memsw / `memory.swap.max`).
    pub disable_swap: bool,
    /// CPU shares (v1 `cpu.shares`; v2 `cpu.weight` converted like runc).
    pub cpu_shares: Option<u64>,
    /// Maximum number of tasks (`pids.max`).
    pub pids_max: Option<u64>,
}

impl CgroupLimits {
    /// Nomad's mapping from task resources: MemoryMaxMB above MemoryMB oversubscribes (hard =
    /// MemoryMaxMB, reservation = MemoryMB), otherwise hard = MemoryMB with no reservation;
    /// shares = CPU MHz clamped to at least 2 as the exec driver does; swap off.
    pub fn from_resources(res: &TaskResources) -> CgroupLimits {
        const MIB: u64 = 1 << 20;
        let (soft, hard) = if res.memory_max_mb > res.memory_mb {
            (Some(res.memory_mb), Some(res.memory_max_mb))
        } else {
            (None, Some(res.memory_mb))
        };
        let nonzero = |v: Option<u64>| v.filter(|&v| v > 0).map(|v| v.saturating_mul(MIB));
        CgroupLimits {
            memory_soft_bytes: nonzero(soft),
            memory_hard_bytes: nonzero(hard),
            disable_swap: true,
            cpu_shares: (res.cpu_mhz > 0).then(|| res.cpu_mhz.max(2)),
            pids_max: (res.pids_limit > 0).then_some(res.pids_limit),
        }
    }
}

/// Converts v1 CPU shares to a v2 `cpu.weight` the way runc / opencontainers/cgroups do:
/// 0 → 0 (unset), ≤2 → 1, ≥262144 → 10000, else a quadratic fit in log2 space (1024 → 100).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    10f64.powf(exponent).ceil() as u64
}

/// Builds the task cgroup name Nomad uses: `<alloc_id>.<task>`.
pub fn task_cgroup_name(alloc_id: &str, task: &str) -> String {
    format!("{alloc_id}.{task}")
}

/// The detected layout, before any directory is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// v1: controller name → mount point of its hierarchy.
    V1(BTreeMap<String, PathBuf>),
    /// v2: the cgroup2 mount point to use as root.
    V2(PathBuf),
}

/// Decides the layout from a mountinfo text. `controllers_of` returns the contents of a cgroup2
/// mount's `cgroup.controllers` (injected so detection is testable without a machine).
pub fn detect_layout(
    mountinfo: &str,
    controllers_of: impl Fn(&Path) -> Option<String>,
) -> Result<CgroupLayout> {
    let mut v1 = BTreeMap::new();
    let mut v2_mounts = Vec::new();
    for line in mountinfo.lines() {
        let Some((mount_point, fstype, super_opts)) = parse_mountinfo_line(line) else {
            continue;
        };
        match fstype {
            "cgroup2" => v2_mounts.push(mount_point),
            "cgroup" => {
                for opt in super_opts.split(',') {
                    if V1_CONTROLLERS.contains(&opt) {
                        v1.entry(opt.to_string())
                            .or_insert_with(|| mount_point.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let root = Path::new(CGROUP_ROOT);
    if v2_mounts.iter().any(|m| m == root) {
        return Ok(CgroupLayout::V2(root.to_path_buf()));
    }
    // Hybrid: a cgroup2 mount beside v1 counts only if v1 did not claim memory and pids.
    for m in &v2_mounts {
        if let Some(c) = controllers_of(m) {
            let set: BTreeSet<&str> = c.split_whitespace().collect();
            if set.contains("memory") && set.contains("pids") {
                return Ok(CgroupLayout::V2(m.clone()));
            }
        }
    }
    if v1.contains_key("memory") && v1.contains_key("freezer") {
        return Ok(CgroupLayout::V1(v1));
    }
    Err(CgroupError::Unavailable(
        "no cgroup2 mount with memory and pids, and no v1 memory+freezer hierarchies".into(),
    ))
}

/// Returns (mount point, fs type, super options) of one `/proc/self/mountinfo` line.
pub(crate) fn parse_mountinfo_line(line: &str) -> Option<(PathBuf, &str, &str)> {
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut r = right.split(' ');
    let fstype = r.next()?;
    let _source = r.next()?;
    let super_opts = r.next().unwrap_or("");
    Some((
        PathBuf::from(unescape_mountinfo(mount_point)),
        fstype,
        super_opts,
    ))
}

/// Undoes mountinfo's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
pub(crate) fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let d = |c: u8| u32::from(c - b'0');
                // Values above 0o377 cannot occur in mountinfo; truncation is harmless.
                out.push((d(oct[0]) * 64 + d(oct[1]) * 8 + d(oct[2])) as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether cgroups are usable by this process (root and a detectable hierarchy); the exec
/// driver's fingerprint reports "Failed to discover cgroup mount point" otherwise.
pub fn cgroups_usable() -> bool {
    nix::unistd::geteuid().is_root() && detect_version().is_some()
}

/// The detected cgroup version, if any (for the `os.cgroups.version` attribute).
pub fn detect_version() -> Option<CgroupVersion> {
    let mountinfo = std::fs::read_to_string(MOUNTINFO).ok()?;
    match detect_layout(&mountinfo, read_controllers_file).ok()? {
        CgroupLayout::V1(_) => Some(CgroupVersion::V1),
        CgroupLayout::V2(_) => Some(CgroupVersion::V2),
    }
}

fn read_controllers_file(mount: &Path) -> Option<String> {
    std::fs::read_to_string(mount.join("cgroup.controllers")).ok()
}

#[derive(Debug, Clone)]
enum Hierarchy {
    V1(v1::V1Hierarchy),
    V2(v2::V2Hierarchy),
}

/// Owns the parent cgroup and creates/reopens task cgroups under it.
#[derive(Debug, Clone)]
pub struct CgroupManager {
    parent: String,
    hierarchy: Hierarchy,
    compute: NodeCompute,
}

impl CgroupManager {
    /// Detects v1/v2 from `/proc/self/mountinfo` and uses `parent` as the parent cgroup name.
    pub fn detect(parent: &str) -> Result<CgroupManager> {
        let mountinfo = read_string(Path::new(MOUNTINFO))?;
        match detect_layout(&mountinfo, read_controllers_file)? {
            CgroupLayout::V1(mounts) => CgroupManager::v1(mounts, parent),
            CgroupLayout::V2(root) => CgroupManager::v2(root, parent),
        }
    }

    /// A v1 manager over the given controller → hierarchy mount point map.
    pub fn v1(mounts: BTreeMap<String, PathBuf>, parent: &str) -> Result<CgroupManager> {
        validate_name(parent)?;
        Ok(CgroupManager {
            parent: parent.to_string(),
            hierarchy: Hierarchy::V1(v1::V1Hierarchy::new(mounts)),
            compute: NodeCompute::detect(),
        })
    }

    /// A v2 manager rooted at a cgroup2 mount (or any cgroup2 directory to nest under).
    pub fn v2(root: impl Into<PathBuf>, parent: &str) -> Result<CgroupManager> {
        validate_name(parent)?;
        Ok(CgroupManager {
            parent: parent.to_string(),
            hierarchy: Hierarchy::V2(v2::V2Hierarchy::new(root.into())?),
            compute: NodeCompute::detect(),
        })
    }

    /// Overrides the node compute used for TotalTicks in [`TaskCgroup::stats`].
    pub fn with_compute(mut self, compute: NodeCompute) -> CgroupManager {
        self.compute = compute;
        self
    }

    /// The cgroup version this manager drives.
    pub fn version(&self) -> CgroupVersion {
        match self.hierarchy {
            Hierarchy::V1(_) => CgroupVersion::V1,
            Hierarchy::V2(_) => CgroupVersion::V2,
        }
    }

    /// The parent cgroup name.
    pub fn parent(&self) -> &str {
        &self.parent
    }

    /// Whether the hierarchy offers `controller` (`memory`, `pids`, `cpu`, ...) to task cgroups.
    pub fn controller_available(&self, controller: &str) -> bool {
        match &self.hierarchy {
            Hierarchy::V1(h) => h.mounts.contains_key(controller),
            Hierarchy::V2(h) => h.controllers.contains(controller),
        }
    }

    /// The parent cgroup directories (one per v1 hierarchy, one on v2).
    pub fn parent_dirs(&self) -> Vec<PathBuf> {
        match &self.hierarchy {
            Hierarchy::V1(h) => h.dirs(&self.parent, None),
            Hierarchy::V2(h) => vec![h.root.join(&self.parent)],
        }
    }

    /// Creates the parent cgroup(s) (and on v2 enables cpu/memory/pids for the subtree where
    /// offered). Idempotent; [`TaskCgroup::create`] calls it.
    pub fn init(&self) -> Result<()> {
        match &self.hierarchy {
            Hierarchy::V1(h) => h.init(&self.parent),
            Hierarchy::V2(h) => h.init(&self.parent),
        }
    }

    /// Removes the parent cgroup(s) if they are empty; tolerant of already-removed ones.
    pub fn remove_parent(&self) -> Result<()> {
        for d in self.parent_dirs() {
            rmdir_tolerant(&d)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
enum TaskBackend {
    V1(v1::V1Task),
    V2(v2::V2Task),
}

/// One CPU accounting sample, kept between [`TaskCgroup::stats`] calls.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    at: Instant,
    total_ns: u64,
    user_ns: u64,
    system_ns: u64,
}

/// Raw counters a backend reads; [`TaskCgroup::stats`] turns them into Nomad's shapes.
#[derive(Debug, Default)]
pub(crate) struct RawStats {
    pub memory: MemoryStats,
    pub cpu_total_ns: Option<u64>,
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
    pub throttled_periods: Option<u64>,
    pub throttled_time_ns: Option<u64>,
}

/// A task's cgroup: limits, membership, kill, stats and removal.
#[derive(Debug)]
pub struct TaskCgroup {
    name: String,
    backend: TaskBackend,
    compute: NodeCompute,
    prev_cpu: Mutex<Option<CpuSample>>,
}

impl TaskCgroup {
    /// Creates (or reuses) the task cgroup `name` under the manager's parent and writes `limits`.
    /// A limit whose controller is not available fails with [`CgroupError::ControllerUnavailable`].
    pub fn create(
        manager: &CgroupManager,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<TaskCgroup> {
        validate_name(name)?;
        manager.init()?;
        let backend = match &manager.hierarchy {
            Hierarchy::V1(h) => TaskBackend::V1(h.create_task(&manager.parent, name, limits)?),
            Hierarchy::V2(h) => TaskBackend::V2(h.create_task(&manager.parent, name, limits)?),
        };
        Ok(TaskCgroup::from_backend(manager, name, backend))
    }

    /// Reopens an existing task cgroup after an agent restart (no limits are rewritten).
    pub fn reattach(manager: &CgroupManager, name: &str) -> Result<TaskCgroup> {
        validate_name(name)?;
        let backend = match &manager.hierarchy {
            Hierarchy::V1(h) => TaskBackend::V1(h.open_task(&manager.parent, name)?),
            Hierarchy::V2(h) => TaskBackend::V2(h.open_task(&manager.parent, name)?),
        };
        Ok(TaskCgroup::from_backend(manager, name, backend))
    }

    fn from_backend(manager: &CgroupManager, name: &str, backend: TaskBackend) -> TaskCgroup {
        TaskCgroup {
            name: name.to_string(),
            backend,
            compute: manager.compute,
            prev_cpu: Mutex::new(None),
        }
    }

    /// The task cgroup name (`<alloc_id>.<task>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cgroup version of this task cgroup.
    pub fn version(&self) -> CgroupVersion {
        match self.backend {
            TaskBackend::V1(_) => CgroupVersion::V1,
            TaskBackend::V2(_) => CgroupVersion::V2,
        }
    }

    /// The task cgroup directories (one per v1 hierarchy, one on v2).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.backend {
            TaskBackend::V1(t) => t.dirs(),
            TaskBackend::V2(t) => vec![t.dir.clone()],
        }
    }

    /// The `cgroup.procs` files a launcher writes a child's pid into before it execs.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Moves process `pid` (and, since it is `cgroup.procs`, all its threads) into the cgroup.
    pub fn add_pid(&self, pid: Pid) -> Result<()> {
        let value = pid.as_raw().to_string();
        for f in self.procs_files() {
            write_file(&f, &value)?;
        }
        Ok(())
    }

    /// Prepares an async-signal-safe joiner for use between fork and exec (`pre_exec`).
    pub fn joiner(&self) -> Result<CgroupJoiner> {
        let files = self
            .procs_files()
            .into_iter()
            .map(|p| {
                CString::new(p.as_os_str().as_bytes()).map_err(|_| CgroupError::Parse {
                    path: p.clone(),
                    detail: "path contains NUL".into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CgroupJoiner { files })
    }

    /// All pids in the task cgroup tree (nested cgroups included), deduplicated and sorted.
    pub fn pids(&self) -> Result<Vec<Pid>> {
        let mut set = BTreeSet::new();
        for d in self.dirs() {
            collect_pids(&d, &mut set)?;
        }
        Ok(set.into_iter().map(Pid::from_raw).collect())
    }

    /// Whether no process is left in the task cgroup tree.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.pids()?.is_empty())
    }

    /// Kills every process in the tree with `signal`, bounded by [`DEFAULT_KILL_TIMEOUT`].
    pub fn kill_all(&self, signal: Signal) -> Result<()> {
        self.kill_all_timeout(signal, DEFAULT_KILL_TIMEOUT)
    }

    /// Freeze → signal every pid → thaw, repeated until the cgroup is empty or `timeout` passes.
    ///
    /// SIGKILL is re-sent every round (and on v2 `cgroup.kill` is used when present); any other
    /// signal is sent once to each pid ever seen, so a task handling SIGTERM is not spammed.
    /// Returns [`CgroupError::Timeout`] if processes are still present at the deadline.
    pub fn kill_all_timeout(&self, signal: Signal, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut signalled: BTreeSet<Pid> = BTreeSet::new();
        let mut pause = Duration::from_millis(5);
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(CgroupError::Timeout {
                    cgroup: self.name.clone(),
                    remaining: pids.len(),
                    waited: start.elapsed(),
                });
            }
            let used_kill_file = signal == Signal::SIGKILL && self.write_kill_file()?;
            if !used_kill_file {
                // Freezing makes the pid list stable: nothing can fork between list and kill.
                // Without a freezer (or if it fails) we still signal, just racily.
                let frozen = self.set_frozen(true);
                let result = self.signal_pids(signal, &mut signalled);
                // Always try to thaw: a failed freeze may still have left the cgroup FREEZING.
                let thawed = self.set_frozen(false);
                result?;
                if frozen.is_ok() {
                    thawed?;
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    fn write_kill_file(&self) -> Result<bool> {
        match &self.backend {
            TaskBackend::V1(_) => Ok(false),
            TaskBackend::V2(t) => t.kill(),
        }
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        match &self.backend {
            TaskBackend::V1(t) => t.set_frozen(frozen),
            TaskBackend::V2(t) => t.set_frozen(frozen),
        }
    }

    fn signal_pids(&self, signal: Signal, signalled: &mut BTreeSet<Pid>) -> Result<()> {
        for pid in self.pids()? {
            if signal != Signal::SIGKILL && !signalled.insert(pid) {
                continue;
            }
            match nix::sys::signal::kill(pid, signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(source) => {
                    return Err(CgroupError::Signal {
                        signal,
                        pid: pid.as_raw(),
                        cgroup: self.name.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Removes the task cgroup directories (nested ones first) once the tree is dead.
    /// Already-removed directories are fine; a still-populated one is retried for ~2 s.
    pub fn destroy(&self) -> Result<()> {
        for d in self.dirs() {
            remove_tree(&d)?;
        }
        Ok(())
    }

    /// The file holding this cgroup's `oom_kill` counter (v1 `memory.oom_control`, v2
    /// `memory.events`), for a supervisor that compares it before and after the task ran.
    pub fn oom_events_file(&self) -> Option<PathBuf> {
        match &self.backend {
            TaskBackend::V1(t) => t.oom_file(),
            TaskBackend::V2(t) => Some(t.oom_file()),
        }
    }

    /// Whether the kernel OOM-killed a process of this cgroup (v1 `memory.oom_control`
    /// `oom_kill`, v2 `memory.events` `oom_kill`).
    pub fn oom_killed(&self) -> Result<bool> {
        match &self.backend {
            TaskBackend::V1(t) => t.oom_killed(),
            TaskBackend::V2(t) => t.oom_killed(),
        }
    }

    /// Memory and CPU usage from the cgroup files, RSS from the cgroup's processes (see
    /// `process_memory`). CPU percentages are relative to one core over the time since the
    /// previous call (the first call reports 0 %).
    pub fn stats(&self) -> Result<TaskResourceUsage> {
        let mut raw = match &self.backend {
            TaskBackend::V1(t) => t.raw_stats()?,
            TaskBackend::V2(t) => t.raw_stats()?,
        };
        // memory.stat lags up to 2 s behind the charges (see process_memory); the processes'
        // own counters do not.
        if let Some(rss) = process_memory::anon_resident_bytes(&self.pids()?) {
            raw.memory.rss = rss;
            if !raw.memory.measured.iter().any(|m| m == "RSS") {
                raw.memory.measured.insert(0, "RSS".to_string());
            }
        }
        let now = Instant::now();
        let sample = CpuSample {
            at: now,
            total_ns: raw.cpu_total_ns.unwrap_or(0),
            user_ns: raw.cpu_user_ns.unwrap_or(0),
            system_ns: raw.cpu_system_ns.unwrap_or(0),
        };
        // A poisoned lock only means a previous stats call panicked; the sample is still valid.
        let mut prev = match self.prev_cpu.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (percent, user, system) = match *prev {
            Some(p) => {
                let wall = now.duration_since(p.at).as_nanos() as f64;
                let pct = |cur: u64, old: u64| {
                    if wall <= 0.0 {
                        0.0
                    } else {
                        cur.saturating_sub(old) as f64 / wall * 100.0
                    }
                };
                (
                    pct(sample.total_ns, p.total_ns),
                    pct(sample.user_ns, p.user_ns),
                    pct(sample.system_ns, p.system_ns),
                )
            }
            None => (0.0, 0.0, 0.0),
        };
        *prev = Some(sample);
        drop(prev);

        let mut measured = Vec::new();
        if raw.cpu_system_ns.is_some() {
            measured.push("System Mode".to_string());
        }
        if raw.cpu_user_ns.is_some() {
            measured.push("User Mode".to_string());
        }
        if raw.throttled_periods.is_some() {
            measured.push("Throttled Periods".to_string());
        }
        if raw.throttled_time_ns.is_some() {
            measured.push("Throttled Time".to_string());
        }
        if raw.cpu_total_ns.is_some() {
            measured.push("Percent".to_string());
        }
        let cpu = CpuStats {
            system_mode: system,
            user_mode: user,
            // Nomad: TotalTicks = percent/100 × (TotalCompute / NumCores), i.e. MHz consumed.
            total_ticks: percent / 100.0 * self.compute.mhz_per_core(),
            throttled_periods: raw.throttled_periods.unwrap_or(0),
            throttled_time: raw.throttled_time_ns.unwrap_or(0),
            percent,
            measured,
        };
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        Ok(TaskResourceUsage {
            memory: raw.memory,
            cpu,
            timestamp,
        })
    }
}

/// Joins the calling process to a task cgroup using only `open`/`write`/`close`, so it can run
/// in a forked child before exec (e.g. `Command::pre_exec`). Writing `0` means "the writer".
#[derive(Debug, Clone)]
pub struct CgroupJoiner {
    files: Vec<CString>,
}

impl CgroupJoiner {
    /// Writes `0` into every `cgroup.procs` file; async-signal-safe (no allocation).
    pub fn join_current(&self) -> io::Result<()> {
        for f in &self.files {
            // SAFETY: f is a valid NUL-terminated path; open/write/close are async-signal-safe.
            let fd = unsafe { libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: writing one byte from a static buffer to an fd we own.
            let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            let err = io::Error::last_os_error();
            // SAFETY: closing the fd opened above.
            unsafe { libc::close(fd) };
            if n != 1 {
                return Err(err);
            }
        }
        Ok(())
    }
}

// ---- shared cgroupfs helpers -------------------------------------------------------------

pub(crate) fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(CgroupError::InvalidName(name.to_string()));
    }
    Ok(())
}

pub(crate) fn io_err(op: &'static str, path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn read_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| io_err("read", path, e))
}

/// Reads a file that may legitimately be absent (controller not enabled, older kernel).
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path, e)),
    }
}

/// Writes a cgroupfs control file; never creates it (cgroupfs files exist or the write is wrong).
pub(crate) fn write_file(path: &Path, value: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_err("open", path, e))?;
    f.write_all(value.as_bytes())
        .map_err(|e| io_err("write", path, e))
}

pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64> {
    let t = s.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        detail: format!("expected an integer, got {t:?}"),
    })
}

pub(crate) fn read_optional_u64(path: &Path) -> Result<Option<u64>> {
    read_optional(path)?
        .map(|s| parse_u64(path, &s))
        .transpose()
}

/// Parses a flat keyed file (`key value` per line, e.g. memory.stat, cpu.stat, memory.events).
pub(crate) fn parse_flat_keyed(s: &str) -> BTreeMap<String, u64> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

pub(crate) fn read_flat_keyed(path: &Path) -> Result<Option<BTreeMap<String, u64>>> {
    Ok(read_optional(path)?.map(|s| parse_flat_keyed(&s)))
}

/// Creates a cgroup directory; an existing one is reused (agent restart, retried start).
pub(crate) fn mkdir_tolerant(path: &Path) -> Result<()> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err("mkdir", path, e)),
    }
}

pub(crate) fn rmdir_tolerant(path: &Path) -> Result<()> {
    match std::fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("rmdir", path, e)),
    }
}

/// Removes a cgroup directory and its nested cgroups, deepest first, retrying while the kernel
/// still reports it busy (processes that were just killed may take a moment to leave).
fn remove_tree(dir: &Path) -> Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path())?;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut pause = Duration::from_millis(10);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(e) => return Err(io_err("rmdir", dir, e)),
        }
    }
}

fn collect_pids(dir: &Path, out: &mut BTreeSet<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    match std::fs::read_to_string(&procs) {
        Ok(s) => {
            for l in s.lines() {
                let l = l.trim();
                if l.is_empty() {
                    continue;
                }
                out.insert(l.parse().map_err(|_| CgroupError::Parse {
                    path: procs.clone(),
                    detail: format!("bad pid {l:?}"),
                })?);
            }
        }
        // The cgroup (or a nested one) was removed while we walked it: nothing left in it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read", &procs, e)),
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("readdir", dir, e)),
    };
    for e in entries.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            collect_pids(&e.path(), out)?;
        }
    }
    Ok(())
}

/// Polls `check` until it returns true or `timeout` passes; returns the last result.
pub(crate) fn poll_until(
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests;
