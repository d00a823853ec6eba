//! The Raft transport's client side (docs/raft.md §6): openraft's RPCs as HTTP POSTs to a
//! peer's RPC listener, where [`super::http::raft_router`] answers them.
//!
//! Append and vote requests go as JSON. A snapshot chunk goes as its raw bytes behind a JSON
//! header (see [`frame_chunk`]). Every answer is the JSON of the peer's `Result`, so a Raft
//! error comes back as itself. A peer that cannot be connected to is `Unreachable`, which
//! makes openraft back off; a request that outlives its deadline is a `Timeout`.

use std::marker::PhantomData;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftTypeConfig, SnapshotMeta, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub const APPEND_PATH: &str = "/v1/internal/raft/append";
pub const VOTE_PATH: &str = "/v1/internal/raft/vote";
pub const SNAPSHOT_PATH: &str = "/v1/internal/raft/snapshot";

/// Where a peer's RPC listener is.
pub trait PeerAddress {
    /// `scheme://host:port`, without a trailing slash.
    fn rpc_base_url(&self) -> String;
}

impl PeerAddress for BasicNode {
    fn rpc_base_url(&self) -> String {
        base_url(&self.addr)
    }
}

/// `addr` with a scheme (plain HTTP when it names none) and no trailing slash.
pub fn base_url(addr: &str) -> String {
    let addr = addr.trim_end_matches('/');
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// A snapshot chunk's request without its bytes: what the body's header carries.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ChunkHeader<C: RaftTypeConfig> {
    pub vote: Vote<C::NodeId>,
    pub meta: SnapshotMeta<C::NodeId, C::Node>,
    pub offset: u64,
    pub done: bool,
}

/// A chunk's body: the header's JSON length (u32, little-endian), the header, the bytes.
/// The header is in the body, not in an HTTP header, because the membership it holds has no
/// bound on its size or its characters.
pub fn frame_chunk<C: RaftTypeConfig>(
    rpc: InstallSnapshotRequest<C>,
) -> Result<Vec<u8>, serde_json::Error> {
    let header = serde_json::to_vec(&ChunkHeader::<C> {
        vote: rpc.vote,
        meta: rpc.meta,
        offset: rpc.offset,
        done: rpc.done,
    })?;
    let mut body = Vec::with_capacity(4 + header.len() + rpc.data.len());
    body.extend_from_slice(&(header.len() as u32).to_le_bytes());
    body.extend_from_slice(&header);
    body.extend_from_slice(&rpc.data);
    Ok(body)
}

/// The request a body made by [`frame_chunk`] carries.
pub fn unframe_chunk<C: RaftTypeConfig>(body: &[u8]) -> Result<InstallSnapshotRequest<C>, String> {
    let len = body
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("snapshot chunk shorter than its header length")?;
    let header = body
        .get(4..4 + len)
        .ok_or("snapshot chunk shorter than its header")?;
    let header: ChunkHeader<C> =
        serde_json::from_slice(header).map_err(|e| format!("snapshot chunk header: {e}"))?;
    Ok(InstallSnapshotRequest {
        vote: header.vote,
        meta: header.meta,
        offset: header.offset,
        data: body[4 + len..].to_vec(),
        done: header.done,
    })
}

/// Makes one [`PeerClient`] per peer openraft talks to. They share one HTTP client, whose
/// pool keeps a connection alive to each peer.
pub struct HttpNetwork<C: RaftTypeConfig> {
    id: C::NodeId,
    http: reqwest::Client,
}

impl<C: RaftTypeConfig> HttpNetwork<C> {
    /// The network of node `id`, calling peers through `http` (which carries the RPC TLS
    /// settings and the address to bind to).
    pub fn new(id: C::NodeId, http: reqwest::Client) -> Self {
        HttpNetwork { id, http }
    }
}

impl<C> RaftNetworkFactory<C> for HttpNetwork<C>
where
    C: RaftTypeConfig,
    C::Node: PeerAddress,
{
    type Network = PeerClient<C>;

    async fn new_client(&mut self, target: C::NodeId, node: &C::Node) -> PeerClient<C> {
        PeerClient {
            id: self.id.clone(),
            target,
            base: node.rpc_base_url(),
            http: self.http.clone(),
            _types: PhantomData,
        }
    }
}

/// The RPCs to one peer.
pub struct PeerClient<C: RaftTypeConfig> {
    id: C::NodeId,
    target: C::NodeId,
    base: String,
    http: reqwest::Client,
    _types: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig> PeerClient<C> {
    /// POSTs `body` to `path` and reads the peer's `Result`.
    async fn call<T, E>(
        &self,
        action: RPCTypes,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        option: &RPCOption,
    ) -> Result<T, RPCError<C::NodeId, C::Node, E>>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let timeout = option.hard_ttl();
        let sent = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .timeout(timeout)
            .send()
            .await;
        let timed_out = || {
            RPCError::Timeout(Timeout {
                action,
                id: self.id.clone(),
                target: self.target.clone(),
                timeout,
            })
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(timed_out()),
            Err(e) if e.is_connect() => return Err(Unreachable::new(&e).into()),
            Err(e) => return Err(NetworkError::new(&e).into()),
        };
        let status = resp.status();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Err(timed_out()),
            Err(e) => return Err(NetworkError::new(&e).into()),
        };
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let e = std::io::Error::other(format!("{path} answered {status}: {}", text.trim()));
            return Err(NetworkError::new(&e).into());
        }
        let answer: Result<T, E> = serde_json::from_slice(&bytes).map_err(|e| {
            let e = std::io::Error::other(format!("{path}: decoding the answer: {e}"));
            RPCError::Network(NetworkError::new(&e))
        })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target.clone(), e)))
    }
}

impl<C> RaftNetwork<C> for PeerClient<C>
where
    C: RaftTypeConfig,
{
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C::NodeId>, RPCError<C::NodeId, C::Node, RaftError<C::NodeId>>>
    {
        let body = serde_json::to_vec(&rpc).map_err(|e| NetworkError::new(&e))?;
        self.call(
            RPCTypes::AppendEntries,
            APPEND_PATH,
            body,
            "application/json",
            &option,
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<C::NodeId>,
        RPCError<C::NodeId, C::Node, RaftError<C::NodeId, InstallSnapshotError>>,
    > {
        let body = frame_chunk(rpc).map_err(|e| NetworkError::new(&e))?;
        self.call(
            RPCTypes::InstallSnapshot,
            SNAPSHOT_PATH,
            body,
            "application/octet-stream",
            &option,
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C::NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<C::NodeId>, RPCError<C::NodeId, C::Node, RaftError<C::NodeId>>> {
        let body = serde_json::to_vec(&rpc).map_err(|e| NetworkError::new(&e))?;
        self.call(RPCTypes::Vote, VOTE_PATH, body, "application/json", &option)
            .await
    }
}

#[cfg(test)]
mod tests;
