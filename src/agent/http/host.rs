//! `GET /v1/agent/host`: what an operator debugging this agent's machine wants to see —
//! `uname`, interface addresses, resolv.conf, /etc/hosts, the agent's environment with
//! secrets redacted, and disk usage per mount — in Nomad's `HostData` shape. Like Nomad, it
//! needs `agent:read` when ACLs are on, and `enable_debug` when they are off.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AgentInfo;
use crate::client::fingerprint::network::interface_addrs;
use crate::client::taskenv::DEFAULT_ENV_DENYLIST;
use crate::http::{HttpError, JsonReply, QueryOptions, QueryParams};

/// Nomad's `HostData`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostData {
    #[serde(rename = "OS")]
    os: String,
    network: Vec<BTreeMap<String, String>>,
    resolv_conf: String,
    hosts: String,
    environment: BTreeMap<String, String>,
    disk: BTreeMap<String, DiskUsage>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DiskUsage {
    #[serde(rename = "DiskMB")]
    disk_mb: i64,
    #[serde(rename = "UsedMB")]
    used_mb: i64,
}

/// The environment, with the variables Nomad keeps out of tasks (its default env deny list)
/// and anything named like a token or secret redacted.
fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .map(|(k, v)| {
            let k = k.to_string_lossy().into_owned();
            let up = k.to_uppercase();
            let secret = DEFAULT_ENV_DENYLIST.contains(&k.as_str())
                || up.contains("TOKEN")
                || up.contains("SECRET");
            let v = if secret {
                "<redacted>".to_string()
            } else {
                v.to_string_lossy().into_owned()
            };
            (k, v)
        })
        .collect()
}

/// `uname -a` order: machine, node name, release, system name, version (from
/// /proc/sys/kernel, which holds the same strings).
fn uname() -> String {
    let kernel = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| e.to_string())
    };
    [
        std::env::consts::ARCH.to_string(),
        kernel("hostname"),
        kernel("osrelease"),
        kernel("ostype"),
        kernel("version"),
    ]
    .join(" ")
}

/// A file's text, or the error reading it (as Nomad reports it in place of the text).
fn slurp(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| e.to_string())
}

/// Each interface address, with the go-sockaddr attributes that apply to it.
fn network() -> Vec<BTreeMap<String, String>> {
    interface_addrs()
        .into_iter()
        .map(|a| {
            let kind = if a.ip.is_ipv4() { "IPv4" } else { "IPv6" };
            let network = match a.ip {
                std::net::IpAddr::V4(ip) => {
                    let mask = u32::MAX.checked_shl(32 - a.prefix).unwrap_or(0);
                    std::net::Ipv4Addr::from(u32::from(ip) & mask).to_string()
                }
                std::net::IpAddr::V6(ip) => {
                    let mask = u128::MAX.checked_shl(128 - a.prefix).unwrap_or(0);
                    std::net::Ipv6Addr::from(u128::from(ip) & mask).to_string()
                }
            };
            BTreeMap::from([
                ("type".to_string(), kind.to_string()),
                ("string".to_string(), format!("{}/{}", a.ip, a.prefix)),
                ("address".to_string(), a.ip.to_string()),
                ("mask_bits".to_string(), a.prefix.to_string()),
                ("network".to_string(), format!("{network}/{}", a.prefix)),
                ("name".to_string(), a.device),
            ])
        })
        .collect()
}

/// Usage of each mounted block device (Nomad lists physical partitions only).
fn disks() -> BTreeMap<String, DiskUsage> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(dev), Some(mount)) = (f.next(), f.next()) else {
            continue;
        };
        if !dev.starts_with("/dev/") || out.contains_key(mount) {
            continue;
        }
        let Ok(st) = nix::sys::statvfs::statvfs(Path::new(mount)) else {
            continue;
        };
        let frag = st.fragment_size();
        let total = st.blocks() * frag;
        let free = st.blocks_free() * frag;
        const MIB: u64 = 1024 * 1024;
        out.insert(
            mount.to_string(),
            DiskUsage {
                disk_mb: (total / MIB) as i64,
                used_mb: (total.saturating_sub(free) / MIB) as i64,
            },
        );
    }
    out
}

pub async fn host(
    State(info): State<Arc<AgentInfo>>,
    params: QueryParams,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    // With ACLs on, the route already required agent:read.
    if !info.acl_enabled && !info.enable_debug {
        return Err(HttpError::permission_denied());
    }
    match (params.non_empty("server_id"), params.non_empty("node_id")) {
        (Some(_), Some(_)) => {
            return Err(HttpError::bad_request(
                "Can only forward to either client node or server",
            ));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(HttpError::bad_request(
                "server_id, node_id: yurt answers /v1/agent/host for the agent asked only",
            ));
        }
        (None, None) => {}
    }
    let data = tokio::task::spawn_blocking(|| HostData {
        os: uname(),
        network: network(),
        resolv_conf: slurp("/etc/resolv.conf"),
        hosts: slurp("/etc/hosts"),
        environment: environment(),
        disk: disks(),
    })
    .await
    .map_err(|e| HttpError::internal(format!("reading host data: {e}")))?;
    Ok(JsonReply::new(data).pretty(opts.pretty).into_response())
}
