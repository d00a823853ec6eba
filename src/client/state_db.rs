//! The client's durable state: allocations, driver task handles and task states, so a later
//! agent process can reattach to running tasks.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::structs::{Allocation, TaskState};
use yurt_drivers::TaskHandle;

/// A state store failure.
#[derive(Debug, thiserror::Error)]
pub enum StateDbError {
    /// Reading or writing a file failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file held something that is not the expected JSON.
    #[error("decoding {path}: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be encoded.
    #[error("encoding state: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What the client persists about one task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The driver's handle of the running instance, if any.
    pub handle: Option<TaskHandle>,
    /// The task state as reported to the servers.
    pub state: Option<TaskState>,
}

/// Durable client state, keyed by allocation and task.
pub trait StateDb: Send + Sync {
    /// Stores (or replaces) an allocation as the server sent it.
    fn put_alloc(&self, alloc: &Allocation) -> Result<(), StateDbError>;
    /// Every stored allocation.
    fn get_allocs(&self) -> Result<Vec<Allocation>, StateDbError>;
    /// Forgets an allocation and all its tasks.
    fn delete_alloc(&self, alloc_id: &str) -> Result<(), StateDbError>;
    /// Stores or clears (`None`) the driver handle of a task.
    fn put_task_handle(
        &self,
        alloc_id: &str,
        task: &str,
        handle: Option<&TaskHandle>,
    ) -> Result<(), StateDbError>;
    /// Stores a task's state.
    fn put_task_state(
        &self,
        alloc_id: &str,
        task: &str,
        state: &TaskState,
    ) -> Result<(), StateDbError>;
    /// Stores a task's state and clears its handle in one write, so a crash cannot keep
    /// the one without the other (an exit recorded while the handle still says "running").
    fn put_task_state_without_handle(
        &self,
        alloc_id: &str,
        task: &str,
        state: &TaskState,
    ) -> Result<(), StateDbError>;
    /// Stores a task's state and the handle of its new running instance in one write: the
    /// start path pays for one durable write instead of two.
    fn put_task_started(
        &self,
        alloc_id: &str,
        task: &str,
        state: &TaskState,
        handle: &TaskHandle,
    ) -> Result<(), StateDbError>;
    /// Everything stored about one task.
    fn get_task(&self, alloc_id: &str, task: &str) -> Result<Option<TaskRecord>, StateDbError>;
}

/// JSON files under `<data_dir>/client/state/<alloc_id>/`: `alloc.json` and
/// `task-<name>.json`, each replaced atomically (temp file, fsync, rename).
#[derive(Debug)]
pub struct JsonStateDb {
    dir: PathBuf,
    // Task records are read-modify-written from their files; the lock keeps handle and state
    // writers apart. No copy is kept in memory: the task runners hold the live state, and a
    // second copy cost the agent a few KiB per running task.
    tasks: Mutex<()>,
}

impl JsonStateDb {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StateDbError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| StateDbError::Io {
            context: "creating state dir",
            path: dir.clone(),
            source,
        })?;
        Ok(JsonStateDb {
            dir,
            tasks: Mutex::new(()),
        })
    }

    fn alloc_dir(&self, alloc_id: &str) -> PathBuf {
        // IDs come from the server; keep them from escaping the state dir.
        self.dir.join(sanitize(alloc_id))
    }

    fn task_path(&self, alloc_id: &str, task: &str) -> PathBuf {
        self.alloc_dir(alloc_id)
            .join(format!("task-{}.json", sanitize(task)))
    }

    fn update_task(
        &self,
        alloc_id: &str,
        task: &str,
        f: impl FnOnce(&mut TaskRecord),
    ) -> Result<(), StateDbError> {
        let _writers = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.task_path(alloc_id, task);
        // A corrupt record is replaced by what is written now rather than blocking writes.
        let mut rec = read_json(&path)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "replacing unreadable task state");
                None
            })
            .unwrap_or_default();
        f(&mut rec);
        let bytes = serde_json::to_vec(&rec)?;
        write_atomic(&path, &bytes)
    }
}

impl StateDb for JsonStateDb {
    fn put_alloc(&self, alloc: &Allocation) -> Result<(), StateDbError> {
        let bytes = serde_json::to_vec(alloc)?;
        write_atomic(&self.alloc_dir(&alloc.id).join("alloc.json"), &bytes)
    }

    fn get_allocs(&self) -> Result<Vec<Allocation>, StateDbError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StateDbError::Io {
                    context: "listing state dir",
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            // One unreadable allocation (a torn write on a filesystem without atomic rename,
            // a disk error) must not keep the others from being restored.
            match read_json::<Allocation>(&entry.path().join("alloc.json")) {
                Ok(Some(alloc)) => out.push(alloc),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "skipping unreadable allocation state"),
            }
        }
        Ok(out)
    }

    fn delete_alloc(&self, alloc_id: &str) -> Result<(), StateDbError> {
        let _writers = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.alloc_dir(alloc_id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateDbError::Io {
                context: "removing alloc state",
                path: dir,
                source,
            }),
        }
    }

    fn put_task_handle(
        &self,
        alloc_id: &str,
        task: &str,
        handle: Option<&TaskHandle>,
    ) -> Result<(), StateDbError> {
        self.update_task(alloc_id, task, |r| r.handle = handle.cloned())
    }

    fn put_task_state(
        &self,
        alloc_id: &str,
        task: &str,
        state: &TaskState,
    ) -> Result<(), StateDbError> {
        self.update_task(alloc_id, task, |r| r.state = Some(state.clone()))
    }

    fn put_task_state_without_handle(
        &self,
        alloc_id: &str,
        task: &str,
        state: &TaskState,
    ) -> Result<(), StateDbError> {
        self.update_task(alloc_id, task, |r| {
            r.state = Some(state.clone());
            r.handle = None;
        })
    }

    fn put_task_started(
        &self,
        alloc_id: &str,
        task: &str,
        state: &TaskState,
        handle: &TaskHandle,
    ) -> Result<(), StateDbError> {
        self.update_task(alloc_id, task, |r| {
            r.state = Some(state.clone());
            r.handle = Some(handle.clone());
        })
    }

    fn get_task(&self, alloc_id: &str, task: &str) -> Result<Option<TaskRecord>, StateDbError> {
        let _writers = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        read_json(&self.task_path(alloc_id, task))
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .replace("..", "__")
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StateDbError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateDbError::Decode {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateDbError::Io {
            context: "reading",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `bytes` to `path` so a crash leaves either the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateDbError> {
    let io = |context: &'static str, p: &Path| {
        let path = p.to_path_buf();
        move |source| StateDbError::Io {
            context,
            path,
            source,
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
        // A new directory (an allocation's first record) is only durable once its entry in
        // the parent is synced too.
        if let Some(parent) = dir.parent() {
            fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io("syncing directory", parent))?;
        }
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(bytes).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("syncing", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io("renaming into", path))?;
    // The rename itself is only durable once the directory entry is synced.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing directory", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::TaskStateName;

    /// The store keeps no copy of the records: an update builds on the file as it is now.
    #[test]
    fn updates_build_on_the_file_not_a_memory_copy() {
        let dir = std::env::temp_dir().join(format!("yurt-statedb-{}", uuid::Uuid::new_v4()));
        let db = JsonStateDb::open(&dir).unwrap();
        let running = TaskState {
            state: TaskStateName::Running,
            ..Default::default()
        };
        db.put_task_state("a1", "web", &running).unwrap();
        let handle = TaskHandle {
            version: 1,
            driver: "raw_exec".into(),
            task_id: "a1/web".into(),
            state: serde_json::json!({"pid": 7}),
        };
        // Another writer (an earlier agent process) stored the handle meanwhile.
        let on_disk = TaskRecord {
            handle: Some(handle.clone()),
            state: Some(running.clone()),
        };
        write_atomic(
            &dir.join("a1/task-web.json"),
            &serde_json::to_vec(&on_disk).unwrap(),
        )
        .unwrap();
        let dead = TaskState {
            state: TaskStateName::Dead,
            ..Default::default()
        };
        db.put_task_state("a1", "web", &dead).unwrap();
        let rec = db.get_task("a1", "web").unwrap().unwrap();
        assert_eq!((rec.handle, rec.state), (Some(handle), Some(dead)));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn round_trips_and_deletes() {
        let dir = std::env::temp_dir().join(format!("yurt-statedb-{}", uuid::Uuid::new_v4()));
        let db = JsonStateDb::open(&dir).unwrap();
        let alloc = Allocation {
            id: "a1".into(),
            name: "j.g[0]".into(),
            ..Default::default()
        };
        db.put_alloc(&alloc).unwrap();
        let handle = TaskHandle {
            version: 1,
            driver: "raw_exec".into(),
            task_id: "a1/web".into(),
            state: serde_json::json!({"pid": 42}),
        };
        db.put_task_handle("a1", "web", Some(&handle)).unwrap();
        let state = TaskState {
            state: crate::structs::TaskStateName::Running,
            ..Default::default()
        };
        db.put_task_state("a1", "web", &state).unwrap();

        // A fresh instance reads what the first one wrote.
        let db2 = JsonStateDb::open(&dir).unwrap();
        assert_eq!(db2.get_allocs().unwrap(), vec![alloc]);
        let rec = db2.get_task("a1", "web").unwrap().unwrap();
        assert_eq!(rec.handle.as_ref(), Some(&handle));
        assert_eq!(rec.state.as_ref(), Some(&state));
        db2.put_task_handle("a1", "web", None).unwrap();
        assert_eq!(db2.get_task("a1", "web").unwrap().unwrap().handle, None);

        // The end of a run: the exit's state and the cleared handle land in one write.
        db2.put_task_handle("a1", "web", Some(&handle)).unwrap();
        let dead = TaskState {
            state: crate::structs::TaskStateName::Dead,
            ..Default::default()
        };
        db2.put_task_state_without_handle("a1", "web", &dead)
            .unwrap();
        let on_disk: TaskRecord =
            serde_json::from_slice(&fs::read(dir.join("a1/task-web.json")).unwrap()).unwrap();
        assert_eq!((on_disk.handle, on_disk.state), (None, Some(dead)));

        // Corrupt files are skipped (allocations) or reported (tasks), never a panic.
        fs::create_dir_all(dir.join("bad")).unwrap();
        fs::write(dir.join("bad/alloc.json"), b"{\"ID\": \"ba").unwrap();
        fs::write(dir.join("a1/task-torn.json"), b"{\"handle\":").unwrap();
        assert_eq!(db2.get_allocs().unwrap().len(), 1);
        assert!(matches!(
            db2.get_task("a1", "torn"),
            Err(StateDbError::Decode { .. })
        ));
        db2.put_task_state("a1", "torn", &state).unwrap();
        assert_eq!(
            db2.get_task("a1", "torn").unwrap().unwrap().state.as_ref(),
            Some(&state)
        );

        db2.delete_alloc("a1").unwrap();
        assert!(db2.get_allocs().unwrap().is_empty());
        assert!(db2.get_task("a1", "web").unwrap().is_none());
        fs::remove_dir_all(dir).unwrap();
    }
}
