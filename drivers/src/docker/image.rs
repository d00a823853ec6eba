//! Making a task's image present: local lookup, a single shared pull per image, progress events.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;
use tokio::sync::watch;

use super::client::{Engine, is_not_found, message};
use super::progress::PullProgress;
use crate::{DriverError, DriverEvent, EventSink};

/// How often pull progress is logged.
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How often pull progress becomes a task event (Nomad's interval).
const PROGRESS_EVENT_INTERVAL: Duration = Duration::from_secs(120);

/// What a pull needs beyond the image name.
#[derive(Clone, Default)]
pub struct PullRequest {
    /// Always pull, even if present.
    pub force: bool,
    /// Bound on the whole pull.
    pub timeout: Duration,
    /// Cancel after this long without progress.
    pub activity_timeout: Duration,
    /// Registry credentials, if the task gave any.
    pub credentials: Option<DockerCredentials>,
}

type PullResult = Option<Result<String, String>>;

/// An in-flight pull shared by every task that needs the same image.
struct Pull {
    waiters: Mutex<Vec<String>>,
    done: watch::Sender<PullResult>,
}

/// Image presence and pulls for one engine.
pub struct Images {
    shared: Arc<Shared>,
}

/// What a pull running in its own task needs.
struct Shared {
    engine: Arc<Engine>,
    events: Option<EventSink>,
    pulls: Mutex<HashMap<String, Arc<Pull>>>,
}

/// Splits `repo[:tag]` / `repo@digest` into the repository and tag (default `latest`).
pub fn split_reference(image: &str) -> (String, String) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo.to_string(), digest.to_string());
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (
            image[..last_slash + i].to_string(),
            image[last_slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

/// The full reference with its tag made explicit (`busybox` → `busybox:latest`).
pub fn full_reference(image: &str) -> String {
    let (repo, tag) = split_reference(image);
    if tag.contains(':') {
        format!("{repo}@{tag}")
    } else {
        format!("{repo}:{tag}")
    }
}

impl Images {
    /// Image handling on `engine`, sending pull events to `events`.
    pub fn new(engine: Arc<Engine>, events: Option<EventSink>) -> Self {
        Images {
            shared: Arc::new(Shared {
                engine,
                events,
                pulls: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Returns the image ID, pulling the image when it is missing, `latest`, or forced.
    pub async fn ensure(
        &self,
        task_id: &str,
        image: &str,
        req: &PullRequest,
    ) -> Result<String, DriverError> {
        let reference = full_reference(image);
        let (_, tag) = split_reference(image);
        // Like Nomad: a non-latest tag that is present locally is used as is.
        if !req.force && tag != "latest" {
            let client = self.shared.engine.client().await?;
            match client.inspect_image(&reference).await {
                Ok(found) => {
                    if let Some(id) = found.id {
                        return Ok(id);
                    }
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(DriverError::Failed(format!(
                        "Failed to inspect image `{image}`: {}",
                        message(&e)
                    )));
                }
            }
        }
        self.pull_shared(task_id, &reference, req).await
    }

    async fn pull_shared(
        &self,
        task_id: &str,
        reference: &str,
        req: &PullRequest,
    ) -> Result<String, DriverError> {
        let shared = &self.shared;
        let (pull, start) = {
            let mut pulls = shared.pulls.lock().unwrap_or_else(|p| p.into_inner());
            match pulls.get(reference) {
                Some(pull) => (Arc::clone(pull), false),
                None => {
                    let (done, _) = watch::channel(None);
                    let pull = Arc::new(Pull {
                        waiters: Mutex::new(Vec::new()),
                        done,
                    });
                    pulls.insert(reference.to_string(), Arc::clone(&pull));
                    (pull, true)
                }
            }
        };
        pull.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task_id.to_string());
        shared.emit(task_id, reference, format!("Downloading image {reference}"));
        let mut done = pull.done.subscribe();
        if start {
            // The pull runs in its own task: if the starting caller is cancelled, the tasks
            // waiting on the same image still get their answer.
            let shared = Arc::clone(shared);
            let reference = reference.to_string();
            let req = req.clone();
            let pull = Arc::clone(&pull);
            tokio::spawn(async move {
                let result = shared.pull(&reference, &req, &pull).await;
                shared
                    .pulls
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&reference);
                pull.done.send_replace(Some(result));
            });
        }
        let outcome = done
            .wait_for(Option::is_some)
            .await
            .map(|v| v.clone())
            .ok()
            .flatten()
            .unwrap_or_else(|| Err("pull abandoned".to_string()));
        outcome.map_err(|msg| DriverError::Failed(format!("Failed to pull `{reference}`: {msg}")))
    }
}

impl Shared {
    async fn pull(
        &self,
        reference: &str,
        req: &PullRequest,
        pull: &Pull,
    ) -> Result<String, String> {
        let client = self.engine.client().await.map_err(|e| e.to_string())?;
        let (repo, tag) = split_reference(reference);
        let options = CreateImageOptionsBuilder::default()
            .from_image(&repo)
            .tag(&tag)
            .build();
        let mut stream = client.create_image(Some(options), None, req.credentials.clone());
        let mut progress = PullProgress::default();
        let started = Instant::now();
        let mut last_log = Instant::now();
        let mut last_event = Instant::now();
        loop {
            let remaining = req.timeout.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(format!("timed out after {:?}", req.timeout));
            }
            let wait = remaining.min(req.activity_timeout);
            let item = match tokio::time::timeout(wait, stream.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) if wait == req.activity_timeout => {
                    return Err(format!(
                        "image pull aborted due to inactivity after {:?}",
                        req.activity_timeout
                    ));
                }
                Err(_) => return Err(format!("timed out after {:?}", req.timeout)),
            };
            let info = item.map_err(|e| message(&e))?;
            progress.update(&info);
            if last_log.elapsed() >= PROGRESS_LOG_INTERVAL {
                last_log = Instant::now();
                tracing::info!(image = reference, progress = %progress.summary(started.elapsed()), "pulling image");
            }
            if last_event.elapsed() >= PROGRESS_EVENT_INTERVAL {
                last_event = Instant::now();
                let msg = format!(
                    "Docker image pull progress: {}",
                    progress.summary(started.elapsed())
                );
                let waiters = pull
                    .waiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                for task in waiters {
                    self.emit(&task, reference, msg.clone());
                }
            }
        }
        let inspected = client
            .inspect_image(reference)
            .await
            .map_err(|e| message(&e))?;
        inspected
            .id
            .ok_or_else(|| "engine reported no image ID after the pull".to_string())
    }

    fn emit(&self, task_id: &str, image: &str, message: String) {
        let Some(sink) = &self.events else {
            return;
        };
        let mut annotations = BTreeMap::new();
        annotations.insert("image".to_string(), image.to_string());
        // A closed sink only means the agent stopped listening; the pull goes on.
        let _ = sink.send(DriverEvent {
            task_id: task_id.to_string(),
            message,
            annotations,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_get_explicit_tags() {
        assert_eq!(full_reference("busybox"), "busybox:latest");
        assert_eq!(full_reference("busybox:1"), "busybox:1");
        assert_eq!(
            full_reference("127.0.0.1:5999/nope"),
            "127.0.0.1:5999/nope:latest"
        );
        assert_eq!(
            full_reference("127.0.0.1:5999/nope:1"),
            "127.0.0.1:5999/nope:1"
        );
        assert_eq!(
            split_reference("repo/x@sha256:abc"),
            ("repo/x".to_string(), "sha256:abc".to_string())
        );
        assert_eq!(full_reference("repo/x@sha256:abc"), "repo/x@sha256:abc");
    }
}
