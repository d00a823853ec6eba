//! The Cluster API of seed 001: a catalogue of job templates (a directory of HCL or JSON job
//! files) that are started, stopped and scaled one by one or as a set, and listed with their
//! jobs' live state. See `docs/cluster-api.md`.
//!
//! `GET /jobs` long-polls on an *answer index*: a number that moves only when the list it
//! answers changes (a job's status, a count, a summary, the template set), never for other
//! writes. [`ClusterApi::refresh`] recomputes the answers from the state and the catalogue
//! and gives a namespace's answer a new index when it differs from the last one; a
//! background task calls it on every write to the tables the answer reads and on every
//! template change, so a waiting poll wakes as soon as its answer changes.

pub mod catalogue;
pub mod template;
pub mod view;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub use catalogue::{Catalogue, Templates};
pub use template::Template;
pub use view::{JobView, job_view};

use super::Server;
use super::state::Table;

/// The tables an answer is read from: jobs (status, counts), allocations (summaries) and
/// evaluations (queued counts).
pub const ANSWER_TABLES: [Table; 3] = [Table::Jobs, Table::Allocs, Table::Evals];

/// One namespace's last answer and its index.
#[derive(Default)]
struct Answer {
    views: Vec<JobView>,
    index: u64,
}

/// The Cluster API's server-side state.
pub struct ClusterApi {
    server: Arc<Server>,
    /// The templates.
    pub catalogue: Arc<Catalogue>,
    /// The highest answer index of any namespace (what long polls wait on).
    changed: watch::Sender<u64>,
    answers: Mutex<BTreeMap<String, Answer>>,
}

impl ClusterApi {
    /// Reads the template directory and starts watching it and the state.
    pub async fn start(server: Arc<Server>, jobs_dir: PathBuf) -> Arc<Self> {
        let catalogue = Catalogue::open(jobs_dir).await;
        catalogue.spawn_watcher();
        let (changed, _) = watch::channel(0);
        let api = Arc::new(ClusterApi {
            server,
            catalogue,
            changed,
            answers: Mutex::new(BTreeMap::new()),
        });
        api.refresh(crate::structs::DEFAULT_NAMESPACE);
        let tracker = api.clone();
        tokio::spawn(async move { tracker.track().await });
        api
    }

    /// The server the API acts on.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Wakes when any namespace's answer index moves.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The current template of `name` in `namespace`.
    pub fn template(&self, namespace: &str, name: &str) -> Option<Arc<Template>> {
        self.catalogue
            .templates()
            .get(name)
            .filter(|t| t.namespace == namespace)
            .cloned()
    }

    /// The templates of `namespace`, by name.
    pub fn templates_in(&self, namespace: &str) -> Vec<Arc<Template>> {
        self.catalogue
            .templates()
            .values()
            .filter(|t| t.namespace == namespace)
            .cloned()
            .collect()
    }

    /// The answer of `GET /jobs` for `namespace` now, with its index (moved past the last
    /// one if the answer changed since).
    pub fn refresh(&self, namespace: &str) -> (u64, Vec<JobView>) {
        let snap = self.server.state.snapshot();
        let templates = self.catalogue.templates();
        let mut fresh: BTreeMap<String, Vec<JobView>> = BTreeMap::new();
        for t in templates.values() {
            fresh
                .entry(t.namespace.clone())
                .or_default()
                .push(job_view(&snap, t));
        }
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        let mut top = *self.changed.borrow();
        // Namespaces whose templates all went away answer an empty list from now on.
        let known: Vec<String> = answers.keys().cloned().collect();
        for ns in known {
            fresh.entry(ns).or_default();
        }
        fresh.entry(namespace.to_string()).or_default();
        let mut moved = false;
        for (ns, views) in fresh {
            let answer = answers.entry(ns).or_default();
            if answer.index == 0 || answer.views != views {
                top = (top + 1).max(snap.max_index(&ANSWER_TABLES));
                answer.index = top;
                answer.views = views;
                moved = true;
            }
        }
        if moved {
            self.changed.send_replace(top);
        }
        let answer = answers.get(namespace);
        (
            answer.map_or(top, |a| a.index),
            answer.map(|a| a.views.clone()).unwrap_or_default(),
        )
    }

    /// Refreshes the answers on every write to the answer tables and every template change.
    async fn track(self: Arc<Self>) {
        let state = &self.server.state;
        let mut tables: Vec<watch::Receiver<u64>> =
            ANSWER_TABLES.iter().map(|t| state.watch(*t)).collect();
        let mut templates = self.catalogue.subscribe();
        loop {
            for rx in tables.iter_mut() {
                rx.borrow_and_update();
            }
            templates.borrow_and_update();
            self.refresh(crate::structs::DEFAULT_NAMESPACE);
            let table_changed =
                futures::future::select_all(tables.iter_mut().map(|rx| Box::pin(rx.changed())));
            let closed = tokio::select! {
                (res, _, _) = table_changed => res.is_err(),
                res = templates.changed() => res.is_err(),
            };
            if closed {
                return;
            }
        }
    }
}
