//! `yurt job init [-short] [filename]`: writes an example job file that yurt's parser reads
//! and a yurt agent runs (a raw_exec task, so it needs no container runtime). The text is
//! yurt's own; it is not Nomad's example (which runs a Docker Redis).

use std::io::Write;

use clap::Args;

use super::output::CliError;

/// The file written when no name is given (Nomad's default name).
pub const DEFAULT_NAME: &str = "example.nomad.hcl";

/// `yurt job init [-short] [-connect] [filename]`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Write the example without its explanatory comments.
    #[arg(long)]
    short: bool,
    /// Write a Consul Connect example (refused: yurt does not run Connect sidecars).
    #[arg(long)]
    connect: bool,
    /// Where to write the example.
    filename: Option<String>,
}

const EXAMPLE: &str = r#"# An example job for yurt. `yurt job plan example.nomad.hcl` shows what the scheduler
# would do with it; `yurt job run example.nomad.hcl` registers it.
job "example" {
  # Service jobs are long-running; "batch" jobs run to completion.
  type = "service"

  # The datacenters the job may be placed in ("*" for all of them).
  datacenters = ["*"]

  # How new versions roll out: one allocation at a time, each healthy for 10s before the
  # next is replaced. A version that never becomes healthy is rolled back.
  update {
    max_parallel     = 1
    min_healthy_time = "10s"
    healthy_deadline = "2m"
    auto_revert      = true
  }

  # A group is the unit of placement: its tasks always run together on one node.
  group "app" {
    count = 1

    # Restart a failing task twice within 5 minutes before the allocation fails.
    restart {
      attempts = 2
      interval = "5m"
      delay    = "10s"
      mode     = "fail"
    }

    task "hello" {
      # raw_exec runs the command directly on the node, with no isolation.
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do echo \"hello from $NOMAD_ALLOC_NAME\"; sleep 10; done"]
      }

      # See what it prints with `yurt alloc logs <alloc>`.
      env {
        GREETING = "hello"
      }

      resources {
        cpu    = 100 # MHz
        memory = 64  # MB
      }
    }
  }
}
"#;

const EXAMPLE_SHORT: &str = r#"job "example" {
  type        = "service"
  datacenters = ["*"]

  group "app" {
    count = 1

    task "hello" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do echo \"hello from $NOMAD_ALLOC_NAME\"; sleep 10; done"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
"#;

/// The example text `-short` asks for.
pub fn example(short: bool) -> &'static str {
    if short { EXAMPLE_SHORT } else { EXAMPLE }
}

pub fn init(a: InitArgs) -> Result<(), CliError> {
    if a.connect {
        return Err(
            "yurt does not run Consul Connect sidecars, so it has no -connect example; \
                    `yurt job init` writes one that runs on yurt"
                .into(),
        );
    }
    let name = a.filename.as_deref().unwrap_or(DEFAULT_NAME);
    // create_new refuses an existing file without a window between a check and the write.
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(name)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(format!("Job '{name}' already exists").into());
        }
        Err(e) => return Err(format!("Failed to write '{name}': {e}").into()),
    };
    file.write_all(example(a.short).as_bytes())
        .map_err(|e| CliError(format!("Failed to write '{name}': {e}")))?;
    println!("Example job file written to {name}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobspec::{self, ParseConfig};

    #[test]
    fn both_examples_parse_to_a_valid_job() {
        for short in [false, true] {
            let cfg = ParseConfig {
                path: DEFAULT_NAME.to_string(),
                body: example(short).to_string(),
                ..ParseConfig::default()
            };
            let parsed = jobspec::parse(&cfg).unwrap();
            let job = parsed.to_job().unwrap();
            assert_eq!(job.id, "example");
            let groups = job.groups();
            assert_eq!(groups.len(), 1);
            assert_eq!(groups[0].tasks()[0].driver, "raw_exec");
        }
    }
}
