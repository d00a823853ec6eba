//! The agent runtime: opens the server (when enabled), starts the client (when enabled),
//! serves the HTTP API and the RPC listener, reloads its configuration on SIGHUP and shuts
//! down on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::config::AgentConfig;
use super::docker;
use super::http::{
    AgentAcl, AgentInfo, ClientServers, Directory, Forwarder, MetricsState, api_router,
    rpc_listener_router,
};
use super::logging;
use super::reload::{ConfigSource, ListenerTls, Reloader};
use super::signals::{Signals, StopSignal};
use super::tls::AgentTls;
use crate::client::{Client, ClientConfig, ClientError, HttpServerApi, ServerList, ShutdownMode};
use crate::rpc::{RpcError, ServerApi, ServerLookup};
use crate::server::{Server, ServerConfig, ServerError};
use yurt_drivers::docker::DockerDriver;

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The server could not open its state.
    #[error("starting the server: {0}")]
    Server(#[from] ServerError),
    /// A listener could not bind.
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    /// The client could not start.
    #[error("starting the client: {0}")]
    Client(#[from] ClientError),
    /// The client's server list is unusable.
    #[error("client servers: {0}")]
    Servers(#[from] RpcError),
    /// A driver's plugin config is invalid.
    #[error("plugin {name:?}: {source}")]
    Plugin {
        name: String,
        #[source]
        source: yurt_drivers::DriverError,
    },
    /// The supervisor executable could not be found.
    #[error("locating the yurt executable for task supervisors: {0}")]
    Supervisor(std::io::Error),
    /// The HTTP clients that forward to other agents and servers could not be built.
    #[error("{0}")]
    Forwarder(#[from] super::http::ForwarderError),
    /// A `tls { }` file is missing or unusable.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The agent could not take over its signals.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    /// A second SIGINT/SIGTERM arrived before the graceful shutdown finished.
    #[error("{0} received again while shutting down; stopped without finishing the shutdown")]
    Interrupted(&'static str),
    /// The data dir could not be prepared.
    #[error("preparing data dir {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The address other machines reach this agent's `port` on.
fn advertise(config: &AgentConfig, explicit: Option<&String>, bound: SocketAddr) -> String {
    if let Some(a) = explicit {
        return if a.contains(':') {
            a.clone()
        } else {
            format!("{a}:{}", bound.port())
        };
    }
    if !bound.ip().is_unspecified() {
        return bound.to_string();
    }
    let _ = config;
    SocketAddr::new(outbound_ip(), bound.port()).to_string()
}

/// The address this machine uses to reach others: connecting a UDP socket picks the route
/// without sending anything. Loopback when there is no route.
fn outbound_ip() -> std::net::IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}

/// A JSON view of the resolved configuration for `/v1/agent/self`.
pub(super) fn config_json(c: &AgentConfig) -> serde_json::Value {
    json!({
        "Region": c.region,
        "Datacenter": c.datacenter,
        "NodeName": c.name,
        "DataDir": c.data_dir.display().to_string(),
        "LogLevel": c.log_level,
        "BindAddr": c.bind_addr.to_string(),
        "Ports": {"HTTP": c.ports.http, "RPC": c.ports.rpc, "Serf": c.ports.serf},
        "Server": {"Enabled": c.server.enabled, "BootstrapExpect": c.server.bootstrap_expect},
        "Client": {
            "Enabled": c.client.enabled,
            "Servers": c.client.servers,
            "NodeClass": c.client.node_class,
            "NodePool": c.client.node_pool,
            "Meta": c.client.meta,
        },
        "DevMode": c.dev_mode,
        "TLSConfig": c.tls.to_json(),
        "Version": {"Version": crate::version::NOMAD_COMPAT_VERSION, "VersionMetadata": format!("yurt-{}", crate::version::VERSION)},
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, AgentError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AgentError::Bind { addr, source })
}

/// Serves `router` on `listener` until `stop` turns true, over TLS when `tls` is given
/// (taking each connection's TLS configuration from it, so a reload reaches new connections).
async fn serve(
    listener: TcpListener,
    tls: Option<watch::Receiver<crate::tls::ServerConfig>>,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let stopped = async move {
        // A dropped sender also means stop: nobody is left to say otherwise.
        let _ = stop.wait_for(|s| *s).await;
    };
    match tls {
        Some(config) => {
            let listener = crate::tls::TlsListener::reloadable(listener, config)?;
            crate::http::serve::serve(listener, router, stopped).await
        }
        None => crate::http::serve::serve(listener, router, stopped).await,
    }
}

/// The drivers handed to the client.
type DriverList = Vec<Arc<dyn yurt_drivers::TaskDriver>>;

/// The task drivers this agent offers; disabled ones still fingerprint (as undetected).
///
/// raw_exec and exec share one cgroup parent per agent, `yurt` unless the client option
/// `cgroup_parent` (`client { options { cgroup_parent = "..." } }`) names another; without
/// root or a usable hierarchy raw_exec runs uncontained and exec is undetected. The docker
/// driver is also returned on its own for the dangling-container sweep; its task events go
/// to `events`.
fn build_drivers(
    config: &AgentConfig,
    events: yurt_drivers::EventSink,
) -> Result<(DriverList, Arc<DockerDriver>), AgentError> {
    use yurt_drivers::exec::{ExecDriver, ExecPluginConfig};
    use yurt_drivers::rawexec::{RawExecDriver, RawExecPluginConfig};
    use yurt_drivers::supervisor_client::SupervisorCommand;
    use yurt_drivers::supervisor_client::detect_cgroups;
    let null = serde_json::Value::Null;
    let plugin = |name: &str| config.plugin_config(name).unwrap_or(&null);
    let plugin_err = |name: &str| {
        let name = name.to_string();
        move |source| AgentError::Plugin { name, source }
    };
    let raw_cfg =
        RawExecPluginConfig::from_json(plugin("raw_exec")).map_err(plugin_err("raw_exec"))?;
    let exec_cfg = ExecPluginConfig::from_json(plugin("exec")).map_err(plugin_err("exec"))?;
    // The tasks' control files (what a supervisor runs, how its task ended) live in the
    // client state dir, out of every task's reach.
    let supervisor = SupervisorCommand::for_agent()
        .map_err(AgentError::Supervisor)?
        .with_state_dir(config.client.state_dir.join("supervisors"));
    let cgroups = detect_cgroups(
        config
            .client
            .options
            .get("cgroup_parent")
            .map(String::as_str),
    );
    let docker = docker::driver(config, events.clone())?;
    let drivers: DriverList = vec![
        Arc::new(
            RawExecDriver::with_cgroups(raw_cfg, supervisor.clone(), cgroups.clone())
                .with_events(events.clone()),
        ),
        Arc::new(ExecDriver::new(exec_cfg, supervisor, cgroups).with_events(events)),
        docker.clone(),
    ];
    Ok((drivers, docker))
}

/// The client's settings from the agent config.
fn client_config(config: &AgentConfig, http_advertise: &str) -> ClientConfig {
    let c = &config.client;
    let mut cc = ClientConfig {
        data_dir: config.data_dir().to_path_buf(),
        node_name: Some(config.name.clone()).filter(|n| !n.is_empty()),
        datacenter: config.datacenter.clone(),
        region: config.region.clone(),
        node_class: c.node_class.clone(),
        node_pool: c.node_pool.clone(),
        meta: c.meta.clone(),
        http_advertise_addr: http_advertise.to_string(),
        http_tls: config.tls.http,
        network_interface: c.network_interface.clone(),
        dev_mode: config.dev_mode,
        cpu_total_compute: (c.cpu_total_compute > 0).then_some(c.cpu_total_compute as i64),
        memory_total_mb: (c.memory_total_mb > 0).then_some(c.memory_total_mb as i64),
        artifact: c.artifact.clone(),
        ..ClientConfig::default()
    };
    if !c.alloc_dir.as_os_str().is_empty() {
        cc.alloc_dir = Some(c.alloc_dir.clone());
    }
    if !c.gc_interval.is_zero() {
        cc.gc.interval = c.gc_interval;
    }
    cc
}

/// Installs the metrics registry and starts what feeds it that is neither server nor client:
/// interval rotation and the process's own gauges.
fn start_telemetry(config: &AgentConfig) -> MetricsState {
    let t = &config.telemetry;
    // go-metrics puts the host on every gauge, as a label, unless told not to.
    let host = match (t.disable_hostname, t.use_node_name) {
        (true, _) => None,
        (false, true) => Some(config.name.clone()),
        (false, false) => Some(super::config::hostname()),
    };
    let registry = crate::telemetry::install(crate::telemetry::RegistrySettings {
        host,
        interval: t.in_memory_collection_interval,
        ..crate::telemetry::RegistrySettings::default()
    });
    registry.spawn_rotation();
    crate::telemetry::spawn_runtime_collector(t.collection_interval);
    MetricsState {
        registry,
        prometheus: t.prometheus_metrics,
    }
}

/// How long open HTTP requests get to finish once the agent stops; long polls (blocking
/// queries, event streams, followed logs) would otherwise hold the shutdown for minutes.
const HTTP_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the agent until SIGINT/SIGTERM; on SIGHUP it reads its configuration again from
/// `source` (none: SIGHUP is logged and ignored).
pub async fn run(config: AgentConfig, source: Option<ConfigSource>) -> Result<(), AgentError> {
    // First, so a signal during start-up is queued rather than killing the process.
    let mut signals = Signals::install().map_err(AgentError::Signals)?;
    logging::init(&config.log_level, config.log_json);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // Before anything starts, so a bad certificate or key stops the agent with nothing
    // half-running.
    let tls = AgentTls::load(&config.tls, &config.region)?;
    let data_dir = config.data_dir().to_path_buf();
    std::fs::create_dir_all(&data_dir).map_err(|source| AgentError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;

    let metrics = start_telemetry(&config);
    let http_bind = config.http_addr();
    let rpc_bind = config.rpc_addr();
    let http_advertise = advertise(&config, config.advertise.http.as_ref(), http_bind);
    let rpc_advertise = advertise(&config, config.advertise.rpc.as_ref(), rpc_bind);

    let server = if config.server_enabled() {
        let sc = ServerConfig {
            name: config.name.clone(),
            region: config.region.clone(),
            datacenter: config.datacenter.clone(),
            data_dir: Some(data_dir.join("server")),
            min_heartbeat_ttl: config.server.min_heartbeat_ttl,
            heartbeat_grace: config.server.heartbeat_grace,
            failover_heartbeat_ttl: config.server.failover_heartbeat_ttl,
            gc: config.server.gc,
            rpc_advertise: rpc_advertise.clone(),
            acl: config.acl.clone(),
            enable_event_broker: config.server.enable_event_broker,
            event_buffer_size: config.server.event_buffer_size,
            ..ServerConfig::default()
        };
        let server = Server::open(sc)?;
        server.start();
        crate::server::gauges::spawn_collector(
            server.clone(),
            config.telemetry.collection_interval,
        );
        Some(server)
    } else {
        None
    };

    // A client-only agent's one list of servers, shared by its RPC and its API proxy so
    // that `PUT /v1/agent/servers` redirects both.
    let server_list = ServerList::new(&config.client.servers, tls.to_servers.is_some());
    let client_servers = match (config.client_enabled(), &server) {
        (false, _) => ClientServers::NoClient,
        (true, Some(_)) => ClientServers::InProcess,
        (true, None) => ClientServers::Remote(server_list.clone()),
    };
    let info = Arc::new(AgentInfo {
        name: config.name.clone(),
        region: config.region.clone(),
        datacenter: config.datacenter.clone(),
        http_addr: http_advertise.clone(),
        rpc_addr: rpc_advertise.clone(),
        server: server.clone().map(|s| -> Arc<dyn ServerLookup> { s }),
        workers: server.clone(),
        acl_enabled: config.acl.enabled,
        enable_debug: config.enable_debug,
        client_enabled: config.client_enabled(),
        client_servers,
        config: std::sync::RwLock::new(config_json(&config)),
    });

    let mut remote_api: Option<Arc<dyn ServerApi>> = None;
    let client = if config.client_enabled() {
        let api: Arc<dyn ServerApi> = match &server {
            Some(s) => Arc::new(s.clone()),
            None => Arc::new(HttpServerApi::with_list(
                server_list.clone(),
                tls.to_servers.as_ref(),
            )?),
        };
        if server.is_none() {
            remote_api = Some(api.clone());
        }
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let (drivers, docker) = build_drivers(&config, events_tx)?;
        let cc = client_config(&config, &http_advertise);
        let alloc_root = cc.alloc_root();
        let client = Client::new(cc, api, drivers).await?;
        client.route_driver_events(events_rx);
        let runner = client.clone();
        let handle = tokio::spawn(async move { runner.run().await });
        let sweeper = tokio::spawn(docker::sweep_dangling(docker, client.clone(), alloc_root));
        crate::client::gauges::spawn_collector(
            client.clone(),
            crate::client::gauges::GaugeSettings {
                interval: config.telemetry.collection_interval,
                publish_allocation_metrics: config.telemetry.publish_allocation_metrics,
                publish_node_metrics: config.telemetry.publish_node_metrics,
            },
        );
        Some((client, handle, sweeper))
    } else {
        None
    };

    let directory = match &server {
        Some(s) => Directory::Local(s.clone()),
        None => Directory::Remote(server_list.clone()),
    };
    let forwarder = Forwarder::new(
        directory,
        client.as_ref().map(|(c, _, _)| c.clone()),
        tls.to_servers.clone(),
        tls.to_agents.clone(),
    )?;
    let acl: Arc<dyn crate::http::AclBackend> = Arc::new(AgentAcl::new(
        config.acl.clone(),
        server.clone(),
        client.as_ref().map(|(c, _, _)| c.clone()),
        remote_api,
    ));
    let cluster_api = match (&server, config.cluster_api.enabled) {
        (Some(s), true) => Some(
            crate::server::cluster_api::ClusterApi::start(
                s.clone(),
                config.cluster_api.jobs_dir.clone(),
            )
            .await,
        ),
        _ => None,
    };
    let api = api_router(
        info.clone(),
        metrics,
        server.as_ref(),
        cluster_api.as_ref(),
        client.as_ref().map(|(c, _, _)| c),
        &forwarder,
        acl.clone(),
    );

    let http_listener = bind(http_bind).await?;
    tracing::info!(
        name = %config.name,
        http = %http_bind,
        rpc = %rpc_bind,
        server = config.server_enabled(),
        client = config.client_enabled(),
        data_dir = %data_dir.display(),
        tls_http = config.tls.http,
        tls_rpc = config.tls.rpc,
        "yurt agent started"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut listener_tls = ListenerTls::default();
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(s) = &server {
        // The RPC listener serves the public API too, so client-only agents can proxy to
        // the address they already know.
        let rpc = rpc_listener_router(s, acl.clone());
        let rpc_listener = bind(rpc_bind).await?;
        let tls_rx = tls.rpc_server.clone().map(|c| {
            let (tx, rx) = watch::channel(c);
            listener_tls.rpc = Some(tx);
            rx
        });
        tasks.spawn(serve(rpc_listener, tls_rx, rpc, stop_rx.clone()));
    }
    let tls_rx = tls.http_server.clone().map(|c| {
        let (tx, rx) = watch::channel(c);
        listener_tls.http = Some(tx);
        rx
    });
    tasks.spawn(serve(http_listener, tls_rx, api, stop_rx));
    let mut reloader = source.map(|s| Reloader::new(s, config.clone(), listener_tls, info));

    let stop = loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                super::signals::AgentSignal::Reload => match reloader.as_mut() {
                    Some(r) => r.reload(),
                    None => tracing::warn!("SIGHUP received; this agent has no configuration source to reload"),
                },
                super::signals::AgentSignal::Stop(s) => break s,
            },
            res = tasks.join_next() => match res {
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => return Err(AgentError::Serve(e)),
                Some(Err(e)) => tracing::error!(error = %e, "listener task failed"),
                // Listeners only end when told to; nothing left to serve.
                None => return Err(AgentError::Serve(std::io::Error::other("every listener stopped"))),
            },
        }
    };
    let running = reloader.as_ref().map(Reloader::running).unwrap_or(&config);
    log_stop(stop, running);
    let _ = stop_tx.send(true);
    let shutdown = async {
        if tokio::time::timeout(HTTP_DRAIN, async {
            while tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::info!("closing HTTP requests still open after {HTTP_DRAIN:?}");
            tasks.shutdown().await;
        }
        if let Some((client, handle, sweeper)) = client {
            sweeper.abort();
            // A dev agent cleans up after itself like Nomad's; a real one leaves tasks running
            // so the next agent process reattaches to them.
            let mode = if config.dev_mode {
                ShutdownMode::KillAllocs
            } else {
                ShutdownMode::Detach
            };
            client.shutdown(mode);
            if tokio::time::timeout(std::time::Duration::from_secs(30), handle)
                .await
                .is_err()
            {
                tracing::warn!("client did not stop within 30s");
            }
        }
        if let Some(s) = &server {
            s.stop_leader_duties();
        }
    };
    tokio::select! {
        () = shutdown => {}
        again = signals.next_stop() => {
            tracing::warn!("{} received again; exiting without finishing the shutdown", again.name());
            return Err(AgentError::Interrupted(again.name()));
        }
    }
    tracing::info!("yurt agent stopped");
    Ok(())
}

/// Says how the agent stops. `leave_on_interrupt`/`leave_on_terminate` ask Nomad's agent
/// to leave its gossip pool and, on a client with `drain_on_shutdown`, to drain the node
/// first; yurt has no gossip pool, and without a drain Nomad's client leaves its tasks
/// running exactly as a plain stop does.
fn log_stop(signal: StopSignal, config: &AgentConfig) {
    let tasks = if !config.client_enabled() {
        ""
    } else if config.dev_mode {
        "; dev mode: stopping every allocation"
    } else {
        "; tasks keep running and the next agent reattaches to them"
    };
    if signal.leaves(config) {
        tracing::info!(
            "caught {}, leaving gracefully (there is no gossip pool to leave){tasks}",
            signal.name()
        );
    } else {
        tracing::info!("caught {}, shutting down{tasks}", signal.name());
    }
}
