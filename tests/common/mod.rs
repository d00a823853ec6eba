//! Shared harness for end-to-end tests: starts real `yurt` processes on free loopback ports
//! with temporary data dirs and talks to them over HTTP, as a user's tools would.
#![allow(dead_code)]

pub mod pki;
pub mod proxy;
pub mod tmpfs;
pub mod ws;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A free TCP port on 127.0.0.1 (bound then released), never one this process handed out
/// before (an agent whose HTTP and RPC ports collide cannot start), and below the kernel's
/// ephemeral range: a port from that range (what `bind(:0)` returns) can be taken, once
/// released, as the local port of any outgoing connection on the machine before the agent
/// binds it, or while a killed agent is restarted on it — a loaded machine running other
/// suites makes thousands of such connections. Each process starts probing at a random
/// offset so test binaries running side by side rarely try the same ports.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let (lo, hi) = below_ephemeral_ports();
    let span = u32::from(hi - lo);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_usize(given.len());
    let start = (hasher.finish() % u64::from(span)) as u32;
    for i in 0..span {
        let port = lo + ((start + i) % span) as u16;
        if given.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        given.push(port);
        return port;
    }
    panic!("no free port in {lo}..{hi}");
}

/// Up to 10 000 ports just below the start of `ip_local_port_range` (32768 by default).
fn below_ephemeral_ports() -> (u16, u16) {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let hi = first_ephemeral.max(2048);
    (hi.saturating_sub(10_000).max(1024), hi)
}

/// A fresh temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "yurt-e2e-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // An agent's data dir outlives the agent process (dropped first); with detach-on-stop
        // its task supervisors and tasks would outlive the test, and their tmpfs mounts would
        // keep the dir from being removed.
        kill_processes_under(&self.0);
        unmount_under(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `args` (a process's argv) is a task supervisor in either form the agent launches:
/// `yurt-supervisor <spec>`, or `yurt supervise <spec>` (the fallback, and older builds).
pub fn is_supervisor(args: &[String]) -> bool {
    match args {
        [exe, _] => Path::new(exe).ends_with("yurt-supervisor"),
        [_, sub, _] => sub == "supervise",
        _ => false,
    }
}

/// argv of a process (empty when it is gone).
pub fn cmdline(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.strip_suffix(b"\0")
        .unwrap_or(&raw)
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Parent PID of a process.
pub fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// PIDs of the task supervisors (either form) whose spec lies under `dir`. An exec task's
/// shim is a fork of its supervisor with the same argv: it is left out.
pub fn supervisors_under(dir: &Path) -> Vec<i32> {
    let all: Vec<i32> = processes_under(dir)
        .into_iter()
        .filter(|pid| is_supervisor(&cmdline(*pid)))
        .collect();
    all.iter()
        .copied()
        .filter(|pid| parent_pid(*pid).is_none_or(|pp| !all.contains(&pp)))
        .collect()
}

/// PIDs of processes that belong to `dir`: tasks whose `NOMAD_ALLOC_DIR` lies under it and
/// supervisors (see [`is_supervisor`]) whose spec lies under it.
pub fn processes_under(dir: &Path) -> Vec<i32> {
    let prefix = dir.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let in_alloc = environ.split(|b| *b == 0).any(|kv| {
            String::from_utf8_lossy(kv)
                .strip_prefix("NOMAD_ALLOC_DIR=")
                .is_some_and(|v| v.starts_with(&prefix))
        });
        let args = cmdline(pid);
        let supervisor = is_supervisor(&args) && args.iter().any(|a| a.starts_with(&prefix));
        if in_alloc || supervisor {
            pids.push(pid);
        }
    }
    pids
}

/// SIGKILLs every process under `dir` (see [`processes_under`]), a few rounds so a supervisor
/// cannot start something new in between.
pub fn kill_processes_under(dir: &Path) {
    for _ in 0..3 {
        let pids = processes_under(dir);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lazily unmounts every mount point under `dir` (task secrets/private tmpfs), deepest first.
pub fn unmount_under(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// What kind of agent to start.
#[derive(Clone, Debug)]
pub struct AgentOpts {
    pub server: bool,
    pub client: bool,
    /// RPC addresses of servers a client joins.
    pub servers: Vec<String>,
    pub node_name: Option<String>,
    /// Extra HCL appended to the generated config.
    pub extra_hcl: String,
    /// Extra command-line flags.
    pub extra_args: Vec<String>,
    /// How the harness reaches an agent whose `extra_hcl` switches TLS on.
    pub tls: Option<TlsProbe>,
}

/// Which of an agent's ports speak TLS, and the client config the harness uses for them.
#[derive(Clone, Debug)]
pub struct TlsProbe {
    pub http: bool,
    pub rpc: bool,
    pub client: yurt::tls::ClientConfig,
}

/// A blocking client builder whose TLS uses `tls` (or the system's roots): reqwest is built
/// without a default crypto provider.
pub fn http_builder(tls: Option<&yurt::tls::ClientConfig>) -> reqwest::blocking::ClientBuilder {
    let builder = reqwest::blocking::Client::builder();
    match tls {
        Some(c) => builder.tls_backend_preconfigured((**c).clone()),
        None => {
            yurt::tls::install_default_provider();
            builder
        }
    }
}

impl AgentOpts {
    pub fn server() -> Self {
        AgentOpts {
            server: true,
            client: false,
            servers: vec![],
            node_name: None,
            extra_hcl: String::new(),
            extra_args: vec![],
            tls: None,
        }
    }
    pub fn client(servers: Vec<String>, name: &str) -> Self {
        AgentOpts {
            server: false,
            client: true,
            servers,
            node_name: Some(name.to_string()),
            extra_hcl: String::new(),
            extra_args: vec![],
            tls: None,
        }
    }
    pub fn dev() -> Self {
        AgentOpts {
            server: true,
            client: true,
            servers: vec![],
            node_name: None,
            extra_hcl: String::new(),
            extra_args: vec![],
            tls: None,
        }
    }
}

/// A running `yurt agent` process.
pub struct Agent {
    pub child: Option<Child>,
    pub http_port: u16,
    pub rpc_port: u16,
    pub data_dir: TempDir,
    pub opts: AgentOpts,
    pub log_path: PathBuf,
    /// The agent executable (`yurt`, with `yurt-supervisor` beside it); a test may point it
    /// elsewhere before a [`Agent::restart`].
    pub exe: PathBuf,
}

impl Agent {
    /// Starts an agent and waits until its HTTP API answers.
    pub fn start(opts: AgentOpts) -> Agent {
        Self::start_exe(opts, PathBuf::from(env!("CARGO_BIN_EXE_yurt")))
    }

    /// Starts the agent executable `exe` (e.g. a copy standing for an older build).
    pub fn start_exe(opts: AgentOpts, exe: PathBuf) -> Agent {
        let data_dir = TempDir::new("agent");
        let mut agent = Agent {
            child: None,
            http_port: free_port(),
            rpc_port: free_port(),
            log_path: data_dir.path().join("agent.log"),
            data_dir,
            opts,
            exe,
        };
        agent.spawn();
        agent
    }

    fn config_path(&self) -> PathBuf {
        self.data_dir.path().join("agent.hcl")
    }

    fn spawn(&mut self) {
        let o = &self.opts;
        let mut hcl = format!(
            "data_dir = {:?}\nbind_addr = \"127.0.0.1\"\nlog_level = \"DEBUG\"\nports {{\n  http = {}\n  rpc = {}\n}}\n",
            self.data_dir.path().join("data").display().to_string(),
            self.http_port,
            self.rpc_port
        );
        if let Some(name) = &o.node_name {
            hcl.push_str(&format!("name = {name:?}\n"));
        }
        if o.server {
            hcl.push_str(
                "server {\n  enabled = true\n  heartbeat_grace = \"1s\"\n  min_heartbeat_ttl = \"1s\"\n}\n",
            );
        }
        if o.client {
            let servers: Vec<String> = o.servers.iter().map(|s| format!("{s:?}")).collect();
            hcl.push_str(&format!(
                "client {{\n  enabled = true\n  servers = [{}]\n}}\nplugin \"raw_exec\" {{\n  config {{\n    enabled = true\n  }}\n}}\n",
                servers.join(", ")
            ));
        }
        hcl.push_str(&o.extra_hcl);
        std::fs::write(self.config_path(), hcl).expect("write agent config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open agent log");
        let log2 = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(&self.exe);
        cmd.arg("agent").arg("-config").arg(self.config_path());
        cmd.args(&o.extra_args);
        cmd.stdout(Stdio::from(log)).stderr(Stdio::from(log2));
        self.child = Some(cmd.spawn().expect("spawn yurt agent"));
        self.wait_ready(Duration::from_secs(30));
    }

    /// Base URL of the HTTP API.
    pub fn url(&self, path: &str) -> String {
        let scheme = match &self.opts.tls {
            Some(t) if t.http => "https",
            _ => "http",
        };
        format!("{scheme}://127.0.0.1:{}{}", self.http_port, path)
    }

    /// The RPC address clients use.
    pub fn rpc_addr(&self) -> String {
        format!("127.0.0.1:{}", self.rpc_port)
    }

    /// Base URL of the RPC listener.
    pub fn rpc_url(&self, path: &str) -> String {
        let scheme = match &self.opts.tls {
            Some(t) if t.rpc => "https",
            _ => "http",
        };
        format!("{scheme}://127.0.0.1:{}{}", self.rpc_port, path)
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let tls = self.opts.tls.as_ref().filter(|t| t.http).map(|t| &t.client);
        let client = http_builder(tls).build().expect("http client");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("agent exited early with {status}; log:\n{}", self.log());
            }
            if client
                .get(self.url("/v1/agent/health"))
                .timeout(Duration::from_secs(1))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("agent did not become ready; log:\n{}", self.log());
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILLs the agent (no graceful shutdown).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the agent again on the same ports and data dir.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// PID of the agent process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Graceful first so task supervisors are told to stop, then hard.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A minimal blocking HTTP/JSON client for tests.
pub struct Http {
    pub client: reqwest::blocking::Client,
}

/// A response: status, headers and body text.
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status, self.body
            )
        })
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub fn index(&self) -> u64 {
        self.header("X-Nomad-Index")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no X-Nomad-Index header (status {}, body {:?})",
                    self.status, self.body
                )
            })
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::with_tls(None)
    }
}

impl Http {
    /// A client whose `https://` requests use `tls`.
    pub fn with_tls(tls: Option<&yurt::tls::ClientConfig>) -> Self {
        Http {
            client: http_builder(tls)
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
        }
    }

    /// A plain-HTTP client that sends `token` as `X-Nomad-Token` with every request.
    pub fn with_token(token: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "X-Nomad-Token",
            reqwest::header::HeaderValue::from_str(token).expect("token header"),
        );
        Http {
            client: http_builder(None)
                .timeout(Duration::from_secs(60))
                .default_headers(headers)
                .build()
                .expect("http client"),
        }
    }

    /// `method url` with a JSON `body`, sent as the holder of `token`.
    pub fn request_as(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: &Value,
    ) -> Resp {
        Self::finish(
            self.client
                .request(method, url)
                .header("X-Nomad-Token", token)
                .json(body)
                .send()
                .expect("request"),
        )
    }

    fn finish(r: reqwest::blocking::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    }
    pub fn get(&self, url: &str) -> Resp {
        Self::finish(self.client.get(url).send().expect("GET"))
    }
    pub fn put(&self, url: &str, body: &Value) -> Resp {
        Self::finish(self.client.put(url).json(body).send().expect("PUT"))
    }
    pub fn post(&self, url: &str, body: &Value) -> Resp {
        Self::finish(self.client.post(url).json(body).send().expect("POST"))
    }
    pub fn post_raw(&self, url: &str, body: Vec<u8>) -> Resp {
        Self::finish(
            self.client
                .post(url)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .expect("POST"),
        )
    }
    pub fn delete(&self, url: &str) -> Resp {
        Self::finish(self.client.delete(url).send().expect("DELETE"))
    }
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A node that exists only as registrations and heartbeats sent to a server's RPC port, the
/// way a client agent would send them.
pub struct SimNode {
    pub id: String,
    pub secret: String,
    pub rpc: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    beat: Option<std::thread::JoinHandle<()>>,
}

/// The Node JSON a simulated client registers.
pub fn sim_node_json(id: &str, secret: &str, name: &str, dc: &str, cpu: i64, mem_mb: i64) -> Value {
    serde_json::json!({
        "ID": id,
        "SecretID": secret,
        "Name": name,
        "Datacenter": dc,
        "HTTPAddr": "127.0.0.1:1",
        "Status": "initializing",
        "NodeClass": "",
        "Attributes": {
            "kernel.name": "linux",
            "os.name": "debian",
            "cpu.arch": "amd64",
            "unique.hostname": name,
            "nomad.version": "1.9.7",
            "driver.raw_exec": "1",
        },
        "Meta": {"rack": format!("r-{name}")},
        "Drivers": {"raw_exec": {"Detected": true, "Healthy": true, "HealthDescription": "Healthy", "Attributes": {"driver.raw_exec": "true"}}},
        "NodeResources": {
            "Cpu": {"CpuShares": cpu, "TotalCpuCores": 4},
            "Memory": {"MemoryMB": mem_mb},
            "Disk": {"DiskMB": 100000},
            "Networks": [{"Mode": "host", "Device": "lo", "IP": "127.0.0.1", "CIDR": "127.0.0.1/32", "MBits": 1000}],
            "MinDynamicPort": 20000,
            "MaxDynamicPort": 32000,
        },
    })
}

impl SimNode {
    /// Registers a node and keeps it `ready` with a heartbeat every 300 ms until dropped or
    /// `stop_heartbeats` is called.
    pub fn register(rpc: &str, name: &str, dc: &str, cpu: i64, mem_mb: i64) -> SimNode {
        let id = uuid::Uuid::new_v4().to_string();
        let secret = uuid::Uuid::new_v4().to_string();
        let http = Http::default();
        let url = format!("http://{rpc}/v1/internal/node/register");
        let r = http.post(&url, &sim_node_json(&id, &secret, name, dc, cpu, mem_mb));
        assert_eq!(r.status, 200, "register failed: {}", r.body);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut node = SimNode {
            id,
            secret,
            rpc: rpc.to_string(),
            stop,
            beat: None,
        };
        node.heartbeat();
        let (rpc2, id2, secret2, stop2) = (
            node.rpc.clone(),
            node.id.clone(),
            node.secret.clone(),
            node.stop.clone(),
        );
        node.beat = Some(std::thread::spawn(move || {
            let http = Http::default();
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = http
                    .client
                    .post(format!("http://{rpc2}/v1/internal/node/status"))
                    .json(
                        &serde_json::json!({"NodeID": id2, "SecretID": secret2, "Status": "ready"}),
                    )
                    .send();
                std::thread::sleep(Duration::from_millis(300));
            }
        }));
        node
    }

    /// One heartbeat with status `ready`.
    pub fn heartbeat(&self) -> Resp {
        Http::default().post(
            &format!("http://{}/v1/internal/node/status", self.rpc),
            &serde_json::json!({"NodeID": self.id, "SecretID": self.secret, "Status": "ready"}),
        )
    }

    /// Stops heartbeating (the node will be marked down after TTL + grace).
    pub fn stop_heartbeats(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(h) = self.beat.take() {
            let _ = h.join();
        }
    }

    /// Reports a client status for allocations on this node.
    pub fn update_allocs(&self, allocs: &[(String, &str)]) -> Resp {
        let list: Vec<Value> = allocs
            .iter()
            .map(|(id, status)| serde_json::json!({"ID": id, "NodeID": self.id, "ClientStatus": status}))
            .collect();
        Http::default().post(
            &format!("http://{}/v1/internal/allocs/update", self.rpc),
            &serde_json::json!({"NodeID": self.id, "SecretID": self.secret, "Alloc": list}),
        )
    }
}

impl Drop for SimNode {
    fn drop(&mut self) {
        self.stop_heartbeats();
    }
}

/// A raw_exec service job with one group.
pub fn service_job(id: &str, count: i64) -> Value {
    serde_json::json!({
        "ID": id,
        "Name": id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "web",
            "Count": count,
            "Tasks": [{
                "Name": "server",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sleep", "args": ["1000"]},
                "Resources": {"CPU": 100, "MemoryMB": 64},
            }],
        }],
    })
}

/// A raw_exec service job whose tasks run `/bin/sh -c <script>`; restart attempts 0 so a
/// consumed attempt would fail the task.
pub fn shell_job(id: &str, tasks: &[(&str, &str)]) -> Value {
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|(name, script)| {
            serde_json::json!({
                "Name": name,
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c", script]},
                "Resources": {"CPU": 100, "MemoryMB": 64},
                "KillTimeout": 1_000_000_000i64,
                "LogConfig": {"MaxFiles": 3, "MaxFileSizeMB": 1},
            })
        })
        .collect();
    serde_json::json!({
        "ID": id,
        "Name": id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "RestartPolicy": {"Attempts": 0, "Interval": 600_000_000_000i64, "Delay": 1_000_000_000i64, "Mode": "fail"},
            "Tasks": tasks,
        }],
    })
}

/// Registers `job` through `base` (an agent's HTTP base URL) and returns the ID of its
/// first allocation once every task in it runs.
pub fn run_job_and_wait(http: &Http, base: &str, job: &Value) -> String {
    let id = job["ID"].as_str().expect("job ID").to_string();
    let r = http.put(&format!("{base}/v1/jobs"), &serde_json::json!({"Job": job}));
    assert_eq!(r.status, 200, "register: {}", r.body);
    // Generous: the shared test machine is often heavily loaded.
    wait_for(Duration::from_secs(60), "allocation running", || {
        let allocs = http.get(&format!("{base}/v1/job/{id}/allocations")).json();
        allocs.as_array()?.iter().find_map(|a| {
            let states = a["TaskStates"].as_object()?;
            let all = !states.is_empty()
                && states.values().all(|s| s["State"] == "running")
                && a["DesiredStatus"] == "run";
            all.then(|| a["ID"].as_str().map(str::to_string)).flatten()
        })
    })
}

/// Reads a streaming response until `done(body so far)` holds or `timeout` passes; returns
/// the status and what was read.
pub fn read_stream_until(
    url: &str,
    timeout: Duration,
    mut done: impl FnMut(&[u8]) -> bool,
) -> (u16, Vec<u8>) {
    use std::io::Read;
    let client = http_builder(None).timeout(timeout).build().expect("client");
    let mut resp = client.get(url).send().expect("GET stream");
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match resp.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
        if done(&body) {
            break;
        }
    }
    (status, body)
}

/// Splits concatenated JSON StreamFrames (and `{}` heartbeats).
pub fn parse_frames(body: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .collect()
}

/// The decoded data of frames, concatenated.
pub fn frames_data(frames: &[Value]) -> Vec<u8> {
    use base64::Engine;
    frames
        .iter()
        .filter_map(|f| f["Data"].as_str())
        .flat_map(|d| {
            base64::engine::general_purpose::STANDARD
                .decode(d)
                .unwrap_or_default()
        })
        .collect()
}

/// PIDs of live processes whose environment or command line contains `needle` (e.g.
/// `NOMAD_ALLOC_ID=<id>`, or an alloc ID that appears in a task supervisor's spec path).
/// Zombies are skipped: they are dead and only wait to be reaped.
pub fn pids_matching(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = e.path();
        let state = std::fs::read_to_string(base.join("stat")).unwrap_or_default();
        // The state is the field after the parenthesised command name.
        let zombie = state
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(true);
        if zombie {
            continue;
        }
        let hit = |f: &str| {
            std::fs::read(base.join(f))
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
        };
        if hit("environ") || hit("cmdline") {
            out.push(pid);
        }
    }
    out.sort();
    out
}

/// The command line of a process, arguments joined by spaces.
pub fn proc_cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// SIGKILLs every process whose environment or command line mentions `needle`.
pub fn kill_matching(needle: &str) {
    for pid in pids_matching(needle) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
}

/// The host directory of an allocation on an agent started by this harness.
pub fn alloc_dir(agent: &Agent, alloc_id: &str) -> PathBuf {
    agent
        .data_dir
        .path()
        .join("data")
        .join("alloc")
        .join(alloc_id)
}

/// Kills leftover task processes of the given allocations when dropped, so a failing test
/// does not leave `sleep 1000`s behind.
pub struct ProcGuard(pub Vec<String>);

impl Drop for ProcGuard {
    fn drop(&mut self) {
        for id in &self.0 {
            kill_matching(id);
        }
    }
}

/// Removes agent data dirs when dropped, after unmounting what the client mounted in them.
/// Declare it before the agents so it runs after they have stopped.
#[derive(Default)]
pub struct DirGuard(pub Vec<PathBuf>);

impl DirGuard {
    /// Starts an agent and remembers its data dir.
    pub fn start(&mut self, opts: AgentOpts) -> Agent {
        let agent = Agent::start(opts);
        self.0.push(agent.data_dir.path().to_path_buf());
        agent
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        for d in &self.0 {
            unmount_under(d);
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Runs the `yurt` CLI against the agent at `addr` (no token, namespace or region from the
/// environment); returns the exit code, stdout and stderr.
pub fn yurt_cli(addr: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_yurt"))
        .args(args)
        .env("NOMAD_ADDR", addr)
        .env_remove("NOMAD_TOKEN")
        .env_remove("NOMAD_NAMESPACE")
        .env_remove("NOMAD_REGION")
        .output()
        .expect("run yurt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
