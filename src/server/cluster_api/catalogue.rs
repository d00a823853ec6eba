//! The template directory, kept read: every template file parsed into a [`Template`], the
//! set re-read when a file changes (inotify through `notify`) and, in case an event is
//! missed or watching is impossible (a directory that does not exist yet, a full inotify
//! table, a network file system), by a bounded poll.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::template::{Template, is_template_file};

/// Templates by name.
pub type Templates = BTreeMap<String, Arc<Template>>;

/// How often the directory is re-read while file events arrive.
const POLL_WITH_EVENTS: Duration = Duration::from_secs(30);
/// How often it is re-read when it cannot be watched.
const POLL_WITHOUT_EVENTS: Duration = Duration::from_secs(2);
/// Events closer together than this are read as one change (an editor's save is several).
const SETTLE: Duration = Duration::from_millis(100);

/// The template directory and what it holds.
pub struct Catalogue {
    dir: PathBuf,
    set: watch::Sender<Arc<Templates>>,
    /// Each file's last content and what it parsed to: an unchanged file is not re-parsed.
    parsed: Mutex<HashMap<PathBuf, (String, Template)>>,
}

impl Catalogue {
    /// Reads `dir` once (an absent or unreadable directory is an empty catalogue, logged).
    pub async fn open(dir: PathBuf) -> Arc<Self> {
        let (set, _) = watch::channel(Arc::new(Templates::new()));
        let catalogue = Arc::new(Catalogue {
            dir,
            set,
            parsed: Mutex::new(HashMap::new()),
        });
        let first = catalogue.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || first.rescan()).await {
            tracing::error!(error = %e, "reading the Cluster API template directory");
        }
        catalogue
    }

    /// The templates now.
    pub fn templates(&self) -> Arc<Templates> {
        self.set.borrow().clone()
    }

    /// Wakes when the template set changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Templates>> {
        self.set.subscribe()
    }

    /// Re-reads the directory; true when the template set changed.
    pub fn rescan(&self) -> bool {
        let files = match list_files(&self.dir) {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read the Cluster API template directory");
                Vec::new()
            }
        };
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        parsed.retain(|path, _| files.contains(path));
        let mut next = Templates::new();
        for path in &files {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read a job template");
                    continue;
                }
            };
            let template = match parsed.get(path) {
                Some((old_text, t)) if *old_text == text => t.clone(),
                _ => {
                    let t = Template::read(path, &text);
                    if let Err(e) = &t.job {
                        tracing::warn!(file = %path.display(), error = %e, "job template refused");
                    }
                    parsed.insert(path.clone(), (text, t.clone()));
                    t
                }
            };
            insert(&mut next, template);
        }
        drop(parsed);
        self.set.send_if_modified(|current| {
            let same = current.len() == next.len()
                && current
                    .iter()
                    .zip(next.iter())
                    .all(|((a, ta), (b, tb))| a == b && ta == tb);
            if !same {
                *current = Arc::new(next);
            }
            !same
        })
    }

    /// Keeps the catalogue current until the process ends.
    pub fn spawn_watcher(self: &Arc<Self>) {
        let catalogue = self.clone();
        tokio::spawn(async move { catalogue.watch_loop().await });
    }

    async fn watch_loop(self: Arc<Self>) {
        let (tx, mut events) = mpsc::channel::<()>(1);
        let mut watcher = None;
        loop {
            if watcher.is_none() {
                watcher = self.watch_dir(tx.clone());
            }
            let poll = if watcher.is_some() {
                POLL_WITH_EVENTS
            } else {
                POLL_WITHOUT_EVENTS
            };
            tokio::select! {
                _ = events.recv() => {
                    tokio::time::sleep(SETTLE).await;
                    while events.try_recv().is_ok() {}
                }
                _ = tokio::time::sleep(poll) => {}
            }
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.rescan()).await {
                Ok(true) => {
                    tracing::info!(dir = %self.dir.display(), "Cluster API templates changed")
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "re-reading the Cluster API templates"),
            }
        }
    }

    /// A watcher on the directory that signals `tx` on every event; None when the directory
    /// cannot be watched (polling then covers it).
    fn watch_dir(&self, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        let handler = move |res: notify::Result<notify::Event>| {
            if res.is_ok() {
                // A full channel already holds a wake-up: this event is covered by it.
                let _ = tx.try_send(());
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; polling the Cluster API templates");
                return None;
            }
        };
        match watcher.watch(&self.dir, RecursiveMode::NonRecursive) {
            Ok(()) => Some(watcher),
            Err(e) => {
                tracing::debug!(dir = %self.dir.display(), error = %e, "cannot watch the Cluster API template directory yet");
                None
            }
        }
    }
}

/// The template files of `dir`, in name order (which decides which of two files naming the
/// same job wins).
fn list_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .map(|e| e.path())
        .filter(|p| is_template_file(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Adds `t` under its name; a second file naming a job already listed is listed under its
/// file name with an error.
fn insert(set: &mut Templates, t: Template) {
    if let Some(first) = set.get(&t.name) {
        let why = format!(
            "job {:?} is already defined by {}",
            t.name,
            first.file.display()
        );
        let refused = t.refused(why);
        if set.contains_key(&refused.name) {
            tracing::warn!(file = %refused.file.display(), "job template name taken twice; ignored");
            return;
        }
        set.insert(refused.name.clone(), Arc::new(refused));
        return;
    }
    set.insert(t.name.clone(), Arc::new(t));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "yurt-catalogue-{}",
            crate::structs::generate_uuid()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn rescans_see_added_changed_and_removed_files() {
        let dir = temp_dir();
        std::fs::write(dir.join("a.json"), r#"{"ID": "a"}"#).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a template").unwrap();
        let c = Catalogue::open(dir.clone()).await;
        assert_eq!(c.templates().keys().collect::<Vec<_>>(), ["a"]);
        assert!(!c.rescan(), "nothing changed");

        std::fs::write(dir.join("b.json"), r#"{"ID": "b"}"#).unwrap();
        assert!(c.rescan());
        assert_eq!(c.templates().len(), 2);

        std::fs::write(
            dir.join("b.json"),
            r#"{"ID": "b", "Meta": {"autostart": "false"}}"#,
        )
        .unwrap();
        assert!(c.rescan());
        assert!(!c.templates()["b"].autostart);

        std::fs::remove_file(dir.join("a.json")).unwrap();
        assert!(c.rescan());
        assert_eq!(c.templates().keys().collect::<Vec<_>>(), ["b"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_second_file_naming_the_same_job_is_listed_with_an_error() {
        let dir = temp_dir();
        std::fs::write(dir.join("a.json"), r#"{"ID": "a"}"#).unwrap();
        std::fs::write(dir.join("copy.json"), r#"{"ID": "a"}"#).unwrap();
        let c = Catalogue::open(dir.clone()).await;
        let set = c.templates();
        assert!(set["a"].job.is_ok());
        let e = set["copy"].job.as_ref().unwrap_err();
        assert!(e.contains("already defined"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_empty_catalogue() {
        let c = Catalogue::open(PathBuf::from("/nonexistent/yurt-templates")).await;
        assert!(c.templates().is_empty());
    }
}
