//! `yurt agent`: Nomad's agent flags (single- or double-dash), layered as
//! `-dev` preset ⊕ `-config` files ⊕ flags, then resolved into an `AgentConfig`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::agent::config_file::{AclFile, ClientFile, ConfigFile, PortsFile, ServerFile};
use crate::agent::{AgentConfig, ConfigError, load_paths};

/// Flags of `yurt agent`. `-http-port` and `-rpc-port` are yurt extensions.
#[derive(Debug, Clone, Default, Args)]
pub struct AgentArgs {
    /// Dev mode: server + client on 127.0.0.1, temporary data dir, raw_exec enabled.
    #[arg(long)]
    pub dev: bool,
    /// Run the bundled server.
    #[arg(long)]
    pub server: bool,
    /// Run the client (node agent).
    #[arg(long)]
    pub client: bool,
    /// Config file or directory (*.hcl, *.json); repeatable, later ones win.
    #[arg(long = "config", value_name = "PATH")]
    pub config: Vec<PathBuf>,
    /// Data directory.
    #[arg(long = "data-dir", value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// Bind address for all listeners.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Node name.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Datacenter.
    #[arg(long, value_name = "DC")]
    pub dc: Option<String>,
    /// Region.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Comma-separated server RPC addresses for the client.
    #[arg(long, value_name = "ADDRS", value_delimiter = ',')]
    pub servers: Vec<String>,
    /// Log level: TRACE, DEBUG, INFO, WARN, ERROR.
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log as JSON lines.
    #[arg(long = "log-json")]
    pub log_json: bool,
    /// Node class.
    #[arg(long = "node-class", value_name = "CLASS")]
    pub node_class: Option<String>,
    /// Node pool.
    #[arg(long = "node-pool", value_name = "POOL")]
    pub node_pool: Option<String>,
    /// Node metadata `key=value`; repeatable.
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    pub meta: Vec<(String, String)>,
    /// Servers expected before bootstrapping.
    #[arg(long = "bootstrap-expect", value_name = "N")]
    pub bootstrap_expect: Option<u32>,
    /// Network interface to fingerprint for task ports.
    #[arg(long = "network-interface", value_name = "IFACE")]
    pub network_interface: Option<String>,
    /// Client state directory.
    #[arg(long = "state-dir", value_name = "PATH")]
    pub state_dir: Option<PathBuf>,
    /// Allocation directory root.
    #[arg(long = "alloc-dir", value_name = "PATH")]
    pub alloc_dir: Option<PathBuf>,
    /// Enforce ACL tokens.
    #[arg(long = "acl-enabled")]
    pub acl_enabled: bool,
    /// HTTP API port (yurt extension).
    #[arg(long = "http-port", value_name = "PORT")]
    pub http_port: Option<u16>,
    /// Server RPC port (yurt extension).
    #[arg(long = "rpc-port", value_name = "PORT")]
    pub rpc_port: Option<u16>,
}

/// Parses one `-meta key=value`.
fn parse_meta(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("Error parsing meta {raw:?}: expected key=value")),
    }
}

/// `Some(true)` for a switch that was given, `None` (do not override) otherwise.
fn switch(on: bool) -> Option<bool> {
    on.then_some(true)
}

impl AgentArgs {
    /// The flags as a config source; only flags actually given are set.
    pub fn overlay(&self) -> ConfigFile {
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let meta: BTreeMap<String, String> = self.meta.iter().cloned().collect();
        ConfigFile {
            name: self.node.clone(),
            region: self.region.clone(),
            datacenter: self.dc.clone(),
            data_dir: self.data_dir.clone(),
            bind_addr: self.bind.clone(),
            log_level: self.log_level.clone(),
            log_json: switch(self.log_json),
            ports: Some(PortsFile {
                http: self.http_port,
                rpc: self.rpc_port,
                ..PortsFile::default()
            }),
            server: Some(ServerFile {
                enabled: switch(self.server),
                bootstrap_expect: self.bootstrap_expect,
                ..ServerFile::default()
            }),
            client: Some(ClientFile {
                enabled: switch(self.client),
                servers: (!servers.is_empty()).then_some(servers),
                node_class: self.node_class.clone(),
                node_pool: self.node_pool.clone(),
                meta: (!meta.is_empty()).then_some(meta),
                network_interface: self.network_interface.clone(),
                state_dir: self.state_dir.clone(),
                alloc_dir: self.alloc_dir.clone(),
                ..ClientFile::default()
            }),
            acl: Some(AclFile {
                enabled: switch(self.acl_enabled),
                ..AclFile::default()
            }),
            ..ConfigFile::default()
        }
    }

    /// Layers `-dev`, the `-config` paths and the flags, and resolves the result.
    pub fn resolve(&self) -> Result<AgentConfig, ConfigError> {
        let base = if self.dev {
            ConfigFile::dev()
        } else {
            ConfigFile::default()
        };
        let files = load_paths(&self.config)?;
        let merged = base.merge(files.config).merge(self.overlay());
        AgentConfig::resolve(merged, self.dev, files.warnings)
    }
}

/// Runs `yurt agent`: resolve config, start a runtime, hand over to `agent::run`.
pub fn run(args: &AgentArgs) -> ExitCode {
    let config = match args.resolve() {
        Ok(c) => c,
        Err(err) => {
            eprintln!("==> {err}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("==> Failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // SIGHUP reads the same `-config` paths again, under the same flags.
    let again = args.clone();
    let source: crate::agent::ConfigSource = Box::new(move || again.resolve());
    match runtime.block_on(crate::agent::run(config, Some(source))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err @ crate::agent::AgentError::Interrupted(_)) => {
            eprintln!("==> {err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("==> Error starting agent: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::config_tests::TempDir;
    use crate::cli::{Cli, Command, parse_args};
    use serde_json::json;
    use std::net::SocketAddr;

    fn agent_args(args: &[&str]) -> AgentArgs {
        let mut argv = vec!["yurt", "agent"];
        argv.extend_from_slice(args);
        match parse_args(argv.into_iter().map(Into::into)).unwrap() {
            Cli {
                command: Command::Agent(a),
            } => *a,
            other => panic!("not agent: {other:?}"),
        }
    }

    #[test]
    fn nomad_style_flags_parse() {
        let a = agent_args(&[
            "-config=a.hcl",
            "-config",
            "dir",
            "-meta",
            "a=b",
            "-meta",
            "c=d=e",
            "-servers",
            "1.2.3.4:4647,5.6.7.8:4647",
            "-data-dir=/d",
            "-bind",
            "10.1.2.3",
            "-node=n1",
            "-dc",
            "x1",
            "-region=r",
            "-log-level",
            "debug",
            "-node-class=c",
            "-server",
            "--client",
            "-http-port=5000",
        ]);
        assert_eq!(a.config, vec![PathBuf::from("a.hcl"), PathBuf::from("dir")]);
        assert_eq!(
            a.meta,
            vec![("a".into(), "b".into()), ("c".into(), "d=e".into())]
        );
        assert_eq!(a.servers, vec!["1.2.3.4:4647", "5.6.7.8:4647"]);
        assert_eq!(a.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(a.bind.as_deref(), Some("10.1.2.3"));
        assert_eq!(a.node.as_deref(), Some("n1"));
        assert_eq!(a.dc.as_deref(), Some("x1"));
        assert_eq!(a.region.as_deref(), Some("r"));
        assert_eq!(a.log_level.as_deref(), Some("debug"));
        assert_eq!(a.node_class.as_deref(), Some("c"));
        assert!(a.server && a.client && !a.dev);
        assert_eq!(a.http_port, Some(5000));
    }

    #[test]
    fn bad_flags_are_errors() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["yurt", "agent"];
            argv.extend_from_slice(args);
            parse_args(argv.into_iter().map(Into::into))
        };
        assert!(parse(&["-meta", "novalue"]).is_err());
        assert!(parse(&["-bogus"]).is_err());
        assert!(parse(&["-http-port", "http"]).is_err());
    }

    #[test]
    fn dev_defaults() {
        let c = agent_args(&["-dev"]).resolve().unwrap();
        assert!(c.dev_mode && c.server_enabled() && c.client_enabled());
        assert_eq!(
            c.http_addr(),
            "127.0.0.1:4646".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            c.rpc_addr(),
            "127.0.0.1:4647".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(c.log_level, "DEBUG");
        assert_eq!(c.plugin_config("raw_exec"), Some(&json!({"enabled": true})));
        assert!(c.data_dir().starts_with(std::env::temp_dir()));
        assert_eq!(c.name, crate::agent::config::hostname());
    }

    #[test]
    fn flags_override_files_which_override_dev() {
        let dir = TempDir::new("flags");
        dir.write(
            "agent.hcl",
            r#"
            region    = "file-region"
            log_level = "WARN"
            ports { http = 7000 }
            client {
              servers    = ["file:4647"]
              node_class = "file-class"
              meta {
                from = "file"
                keep = "yes"
              }
            }
            "#,
        );
        let path = dir.0.to_string_lossy().into_owned();
        let c = agent_args(&[
            "-dev",
            "-config",
            &path,
            "-region=flag-region",
            "-node-class",
            "flag-class",
            "-meta",
            "from=flag",
            "-servers",
            "flag:4647",
            "-rpc-port",
            "7001",
            "-data-dir",
            "/flag/data",
        ])
        .resolve()
        .unwrap();
        assert_eq!(c.region, "flag-region");
        assert_eq!(c.log_level, "WARN", "file beats the -dev preset");
        assert_eq!(c.ports.http, 7000);
        assert_eq!(c.ports.rpc, 7001);
        assert_eq!(
            c.http_addr(),
            "127.0.0.1:7000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(c.client.node_class, "flag-class");
        assert_eq!(c.client.meta["from"], "flag");
        assert_eq!(c.client.meta["keep"], "yes");
        assert_eq!(c.client.servers, vec!["file:4647", "flag:4647"]);
        assert_eq!(c.data_dir(), PathBuf::from("/flag/data"));
    }

    #[test]
    fn server_flag_needs_a_data_dir() {
        let err = agent_args(&["-server"]).resolve().unwrap_err();
        assert!(err.to_string().contains("data directory"), "{err}");
        let err = agent_args(&[]).resolve().unwrap_err();
        assert!(
            err.to_string().contains("Must specify either server"),
            "{err}"
        );
    }
}
