//! A driver for tests that runs real processes: `sh -c <config.command>` in its own process
//! group, stdout/stderr appended to `<logs>/<task>.std{out,err}.0`.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::watch;
use yurt_drivers::*;

struct Proc {
    pid: i32,
    exit: watch::Receiver<Option<ExitResult>>,
}

/// Runs `sh -c` tasks; every started config is recorded for assertions.
#[derive(Default)]
pub(crate) struct ShellDriver {
    procs: Mutex<HashMap<String, Proc>>,
    pub(crate) started: Mutex<Vec<TaskConfig>>,
}

impl ShellDriver {
    fn get(&self, id: &str) -> Result<(i32, watch::Receiver<Option<ExitResult>>), DriverError> {
        let procs = self.procs.lock().unwrap();
        let p = procs
            .get(id)
            .ok_or_else(|| DriverError::TaskNotFound(id.to_string()))?;
        Ok((p.pid, p.exit.clone()))
    }
}

fn parse_signal(name: &str) -> Result<Signal, DriverError> {
    let name = if name.is_empty() { "SIGINT" } else { name };
    Signal::from_str(name).map_err(|_| DriverError::InvalidSignal(name.to_string()))
}

#[async_trait]
impl TaskDriver for ShellDriver {
    fn name(&self) -> &'static str {
        "shell"
    }

    async fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            health: HealthState::Healthy,
            health_description: "Healthy".into(),
            attributes: BTreeMap::from([("driver.shell.version".into(), "1.0".into())]),
        }
    }

    fn validate_config(&self, config: &serde_json::Value) -> Result<(), DriverError> {
        match config.get("command") {
            Some(serde_json::Value::String(_)) => Ok(()),
            _ => Err(DriverError::InvalidConfig("command is required".into())),
        }
    }

    async fn start_task(&self, cfg: &TaskConfig) -> Result<TaskHandle, DriverError> {
        self.started.lock().unwrap().push(cfg.clone());
        let cmd = cfg.driver_config["command"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let open = |stream: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(cfg.logs.dir.join(format!("{}.{stream}.0", cfg.logs.prefix)))
                .map_err(|e| DriverError::io("opening log", e))
        };
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .env_clear()
            .envs(&cfg.env)
            .current_dir(&cfg.task_dir)
            .stdout(open("stdout")?)
            .stderr(open("stderr")?)
            .process_group(0)
            .spawn()
            .map_err(|e| DriverError::io("spawning", e))?;
        let pid = child.id().unwrap_or(0) as i32;
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let res = match child.wait().await {
                Ok(st) => ExitResult {
                    exit_code: st.code().unwrap_or(0),
                    signal: st.signal().unwrap_or(0),
                    oom_killed: false,
                    err: None,
                },
                Err(e) => ExitResult {
                    err: Some(e.to_string()),
                    ..Default::default()
                },
            };
            tx.send_replace(Some(res));
        });
        self.procs
            .lock()
            .unwrap()
            .insert(cfg.id.clone(), Proc { pid, exit: rx });
        Ok(TaskHandle {
            version: 1,
            driver: "shell".into(),
            task_id: cfg.id.clone(),
            state: serde_json::json!({ "pid": pid }),
        })
    }

    /// Reattaches to a process started by another driver instance (an "earlier agent" in
    /// the same test process) while it lives; its exit is noticed by polling, so the exit
    /// code is unknown.
    async fn recover_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let pid = handle.state["pid"].as_i64().unwrap_or(0) as i32;
        let alive = |pid: i32| pid > 0 && nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok();
        if !alive(pid) {
            return Err(DriverError::Failed(format!("process {pid} is gone")));
        }
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            while alive(pid) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tx.send_replace(Some(ExitResult {
                err: Some("exit status unknown".into()),
                ..Default::default()
            }));
        });
        self.procs
            .lock()
            .unwrap()
            .insert(handle.task_id.clone(), Proc { pid, exit: rx });
        Ok(())
    }

    async fn wait_task(&self, task_id: &str) -> Result<ExitResult, DriverError> {
        let (_, mut rx) = self.get(task_id)?;
        let res = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| DriverError::Failed("waiter gone".into()))?;
        Ok(res.clone().unwrap_or_default())
    }

    async fn stop_task(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        let (pid, mut rx) = self.get(task_id)?;
        if rx.borrow().is_some() {
            return Ok(());
        }
        let _ = killpg(Pid::from_raw(pid), parse_signal(signal)?);
        if tokio::time::timeout(timeout, rx.wait_for(Option::is_some))
            .await
            .is_err()
        {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        Ok(())
    }

    async fn destroy_task(&self, task_id: &str, _force: bool) -> Result<(), DriverError> {
        let p = self.procs.lock().unwrap().remove(task_id);
        match p {
            Some(p) => {
                if p.exit.borrow().is_none() {
                    let _ = killpg(Pid::from_raw(p.pid), Signal::SIGKILL);
                }
                Ok(())
            }
            None => Err(DriverError::TaskNotFound(task_id.to_string())),
        }
    }

    async fn signal_task(&self, task_id: &str, signal: &str) -> Result<(), DriverError> {
        let (pid, _) = self.get(task_id)?;
        nix::sys::signal::kill(Pid::from_raw(pid), parse_signal(signal)?)
            .map_err(|e| DriverError::Failed(e.to_string()))
    }

    async fn task_stats(&self, _task_id: &str) -> Result<TaskResourceUsage, DriverError> {
        Ok(TaskResourceUsage::default())
    }
}
