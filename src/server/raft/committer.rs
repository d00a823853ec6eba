//! The server's Raft node and its committer (docs/raft.md §4): every state write of a server
//! with a data dir is proposed to openraft and answered once its entry is committed and
//! applied. A server with no peers is a cluster of one voter.
//!
//! The node runs on a runtime of its own, on the `raft` thread, so it can be opened and shut
//! down from synchronous code and from any runtime, and consensus never waits behind HTTP work.
//!
//! openraft 0.9 proposes one entry at a time (§4: sixteen writers get no more than one), so
//! the batching happens here: requests that arrive while a proposal is in flight go together
//! into the next one, applied in order at one index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use openraft::{Config, Raft, ServerState, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot};

use super::log_store::LogStore;
use super::migrate;
use super::network::HttpNetwork;
use super::state_machine::{SNAPSHOT_DIR, StateMachine};
use super::types::{Answer, Proposal, ServerPeer, TypeConfig, node_id, server_id};
use crate::server::events::EventBroker;
use crate::server::state::{Applier, Committer, Request, StateError, StateStore};

/// The directory under `data_dir/server` that holds the log, the snapshots and the ID.
pub const RAFT_DIR: &str = "raft";

/// Most requests one proposal carries: a burst larger than this is split, so one entry
/// stays a size the log and a follower decode comfortably.
const MAX_PROPOSAL: usize = 512;

/// How long opening waits for the node to lead and to have applied its log.
const READY_WAIT: Duration = Duration::from_secs(120);

/// Who this server is, as the membership will name it.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub name: String,
    pub rpc_addr: String,
    pub datacenter: String,
}

/// The settings of docs/raft.md §1.
fn config() -> Result<Arc<Config>, StateError> {
    let config = Config {
        cluster_name: "yurt".into(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        max_payload_entries: 64,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(8192),
        max_in_snapshot_log_to_keep: 2048,
        snapshot_max_chunk_size: 4 << 20,
        ..Config::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| StateError::Storage(format!("raft config: {e}")))
}

fn raft_error(what: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Storage(format!("raft: {what}: {e}"))
}

/// A request waiting for its proposal.
struct Pending {
    req: Request,
    reply: oneshot::Sender<Answer>,
}

/// The state store's committer on a Raft node; dropping it shuts the node down, and returns
/// once the log is closed.
pub struct RaftCommitter {
    queue: mpsc::UnboundedSender<Pending>,
    /// The log's directory, whose free space is checked before each write.
    log_dir: PathBuf,
    /// Set by the log writer while it holds a write back for want of space.
    out_of_space: Arc<AtomicBool>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer for RaftCommitter {
    fn propose(&self, req: Request) -> Result<oneshot::Receiver<Answer>, StateError> {
        self.refuse_when_full()?;
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(Pending { req, reply })
            .map_err(|_| StateError::Storage("the raft node stopped".into()))?;
        Ok(rx)
    }
}

/// Below this much free space a write is refused before it is proposed. An entry in the log
/// cannot be taken back (openraft stops the node on a failed log write), so a write the disk
/// may not hold is refused up front; one that still hits a full disk waits in the log writer
/// until space returns.
const MIN_FREE_BYTES: u64 = 1 << 20;

impl RaftCommitter {
    fn refuse_when_full(&self) -> Result<(), StateError> {
        let full = |why: String| {
            StateError::Storage(format!(
                "{}: No space left on device ({why}); writes resume when space returns",
                self.log_dir.display()
            ))
        };
        if self.out_of_space.load(Ordering::SeqCst) {
            return Err(full("the last write is waiting for space".into()));
        }
        // A failed statvfs says nothing about space: the write goes ahead.
        if let Ok(fs) = nix::sys::statvfs::statvfs(&self.log_dir) {
            let free = fs.blocks_available().saturating_mul(fs.fragment_size());
            if free < MIN_FREE_BYTES {
                return Err(full(format!("{free} bytes free, {MIN_FREE_BYTES} needed")));
            }
        }
        Ok(())
    }
}

impl Drop for RaftCommitter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the raft thread panicked");
        }
    }
}

/// Opens the state of the server whose data lives in `server_dir` (`data_dir/server`): a
/// pre-Raft `state.redb` is migrated first, the node starts (a new one as a cluster of one),
/// and this returns once it leads and has applied its whole log, so the store holds every
/// write acknowledged before.
pub fn open_store(
    server_dir: &Path,
    who: Identity,
    events: Option<Arc<EventBroker>>,
) -> Result<StateStore, StateError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (queue_tx, queue_rx) = mpsc::unbounded_channel();
    let dir = server_dir.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("raft-rt")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(raft_error("starting its runtime", e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let (raft, applier, out_of_space) = match start(&dir, who, events).await {
                    Ok(started) => started,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((applier, out_of_space)));
                let proposer = tokio::spawn(propose_loop(raft.clone(), queue_rx));
                // The committer was dropped (or sent stop): either way the node stops.
                let _ = stop_rx.await;
                proposer.abort();
                if let Err(e) = raft.shutdown().await {
                    tracing::error!(error = %e, "stopping the raft node");
                }
            });
            // Dropping the runtime ends the node's tasks, which drops the log store, which
            // flushes what is queued and closes the file.
            drop(runtime);
        })
        .map_err(|e| raft_error("starting its thread", e))?;
    let (applier, out_of_space) = match ready_rx.recv() {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(StateError::Storage(
                "raft: the node stopped while starting".into(),
            ));
        }
    };
    let committer = RaftCommitter {
        queue: queue_tx,
        log_dir: server_dir.join(RAFT_DIR),
        out_of_space,
        stop: Some(stop_tx),
        thread: Some(thread),
    };
    Ok(StateStore::replicated(&applier, Box::new(committer)))
}

/// Starts the node and waits until it leads with its log applied.
async fn start(
    server_dir: &Path,
    who: Identity,
    events: Option<Arc<EventBroker>>,
) -> Result<(Raft<TypeConfig>, Applier, Arc<AtomicBool>), StateError> {
    let dir: PathBuf = server_dir.join(RAFT_DIR);
    let me = |id: &uuid::Uuid| ServerPeer {
        id: id.to_string(),
        name: who.name.clone(),
        rpc_addr: who.rpc_addr.clone(),
        datacenter: who.datacenter.clone(),
    };
    migrate::migrate_if_needed(server_dir, &dir, |id| me(id)).await?;
    let uuid = {
        super::state_machine::create_dir(&dir)?;
        server_id(&dir)?
    };
    let id = node_id(&uuid);
    let log = LogStore::<TypeConfig>::open(&dir).map_err(StateError::Storage)?;
    let out_of_space = log.out_of_space();
    let (sm, applier) = StateMachine::open(&dir.join(SNAPSHOT_DIR), log.applied_log(), events)?;
    // A lone server never calls a peer; this client is what step 4's peers will use (the
    // RPC TLS settings come with it then).
    let http = crate::tls::reqwest_tls(
        reqwest::Client::builder().connect_timeout(Duration::from_secs(1)),
        None,
    )
    .map_err(|e| raft_error("building its RPC client", e))?
    .build()
    .map_err(|e| raft_error("building its RPC client", e))?;
    let network = HttpNetwork::new(id, http);
    let raft = Raft::new(id, config()?, network, log, sm)
        .await
        .map_err(|e| raft_error("starting", e))?;
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| raft_error("reading its state", e))?;
    if !initialized {
        raft.initialize(BTreeMap::from([(id, me(&uuid))]))
            .await
            .map_err(|e| raft_error("forming a cluster of one", e))?;
    } else {
        let leads = raft
            .with_raft_state(|st| st.server_state == ServerState::Leader)
            .await
            .map_err(|e| raft_error("reading its state", e))?;
        if !leads {
            // A migrated store has a membership but no vote yet: elect at once instead of
            // waiting out an election timeout.
            raft.trigger()
                .elect()
                .await
                .map_err(|e| raft_error("starting an election", e))?;
        }
    }
    raft.wait(Some(READY_WAIT))
        .metrics(
            |m| m.current_leader == Some(id) && m.last_applied.map(|l| l.index) >= m.last_log_index,
            "leading with the log applied",
        )
        .await
        .map_err(|e| raft_error("becoming ready", e))?;
    tracing::info!(server_id = %uuid, index = applier.tables().index, "raft node ready");
    Ok((raft, applier, out_of_space))
}

/// Proposes what is queued: everything that arrived while the last proposal was in flight
/// goes into the next one.
async fn propose_loop(raft: Raft<TypeConfig>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut waiting = Vec::with_capacity(MAX_PROPOSAL);
    while queue.recv_many(&mut waiting, MAX_PROPOSAL).await > 0 {
        let (reqs, replies): (Vec<_>, Vec<_>) = waiting
            .drain(..)
            .map(|p| (Arc::new(p.req), p.reply))
            .unzip();
        match raft.client_write(Proposal { reqs }).await {
            Ok(written) => {
                let mut answers = written.data.0.into_iter();
                for reply in replies {
                    let answer = answers.next().unwrap_or_else(|| {
                        Err(StateError::Storage(
                            "raft: the apply answered fewer requests than proposed".into(),
                        ))
                    });
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                let message = format!("raft: {e}");
                for reply in replies {
                    let _ = reply.send(Err(StateError::Storage(message.clone())));
                }
            }
        }
    }
}
