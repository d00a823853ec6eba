//! The cgroup manager: the detected hierarchy and the parent cgroup task cgroups live under.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::Hierarchy;
use super::detect::{CgroupLayout, MOUNTINFO, detect_layout, read_controllers_file};
use super::error::Result;
use super::fs::{read_string, rmdir_tolerant, validate_name};
use super::stats::NodeCompute;
#[cfg(doc)]
use super::task::TaskCgroup;
use super::v1::V1Hierarchy;
use super::v2::V2Hierarchy;

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

/// Owns the parent cgroup and creates/reopens task cgroups under it.
#[derive(Debug, Clone)]
pub struct CgroupManager {
    parent: String,
    pub(super) hierarchy: Arc<dyn Hierarchy>,
    pub(super) compute: NodeCompute,
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
        CgroupManager::with_hierarchy(Arc::new(V1Hierarchy::new(mounts)), parent)
    }

    /// A v2 manager rooted at a cgroup2 mount (or any cgroup2 directory to nest under).
    pub fn v2(root: impl Into<PathBuf>, parent: &str) -> Result<CgroupManager> {
        CgroupManager::with_hierarchy(Arc::new(V2Hierarchy::new(root.into())?), parent)
    }

    fn with_hierarchy(hierarchy: Arc<dyn Hierarchy>, parent: &str) -> Result<CgroupManager> {
        validate_name(parent)?;
        Ok(CgroupManager {
            parent: parent.to_string(),
            hierarchy,
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
        self.hierarchy.version()
    }

    /// The parent cgroup name.
    pub fn parent(&self) -> &str {
        &self.parent
    }

    /// Whether the hierarchy offers `controller` (`memory`, `pids`, `cpu`, ...) to task cgroups.
    pub fn controller_available(&self, controller: &str) -> bool {
        self.hierarchy.controller_available(controller)
    }

    /// The parent cgroup directories (one per v1 hierarchy, one on v2).
    pub fn parent_dirs(&self) -> Vec<PathBuf> {
        self.hierarchy.parent_dirs(&self.parent)
    }

    /// Creates the parent cgroup(s) (and on v2 enables cpu/memory/pids for the subtree where
    /// offered). Idempotent; [`TaskCgroup::create`] calls it.
    pub fn init(&self) -> Result<()> {
        self.hierarchy.init(&self.parent)
    }

    /// Removes the parent cgroup(s) if they are empty; tolerant of already-removed ones.
    pub fn remove_parent(&self) -> Result<()> {
        for d in self.parent_dirs() {
            rmdir_tolerant(&d)?;
        }
        Ok(())
    }
}
