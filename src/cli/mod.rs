//! The `yurt` command line: Nomad-style flags (single or double dash), subcommands
//! `acl`, `agent`, `alloc`, `cluster`, `completion`, `deployment`, `eval`, `job`, `namespace`,
//! `node`, `operator`, `server`, `status`, `system`, `var` and `version`, and the API client
//! they share.

pub mod acl;
pub mod agent;
pub mod alloc;
pub mod alloc_exec;
pub mod api_client;
pub mod api_flags;
pub mod argv;
pub mod cluster;
pub mod completion;
pub mod deployment;
pub mod eval;
pub mod eval_monitor;
pub mod job;
pub mod job_actions;
pub mod job_diff;
pub mod job_file;
pub mod job_history;
pub mod job_init;
pub mod job_plan;
pub mod job_tag;
pub mod namespace;
pub mod node;
pub mod operator;
pub mod output;
pub mod resolve;
pub mod server;
pub mod status;
pub mod system;
pub mod terminal;
pub mod var;
pub mod version;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Top-level arguments.
#[derive(Debug, Parser)]
#[command(
    name = "yurt",
    about = "A Nomad-compatible node agent and server",
    version
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage ACL tokens, policies and roles.
    Acl(acl::AclArgs),
    /// Run a yurt agent (server and/or client).
    Agent(Box<agent::AgentArgs>),
    /// List, inspect, promote, fail, pause and resume deployments.
    Deployment(deployment::DeploymentArgs),
    /// Inspect and act on allocations (status, signal, restart, stop, logs, fs).
    Alloc(alloc::AllocArgs),
    /// Start, stop and scale the Cluster API's job templates.
    Cluster(cluster::ClusterArgs),
    /// Print a shell completion script (bash, zsh or fish).
    Completion(completion::CompletionArgs),
    /// Show and list evaluations.
    Eval(eval::EvalArgs),
    /// Run, inspect and stop jobs.
    Job(job::JobArgs),
    /// Create, list, inspect and delete namespaces.
    Namespace(namespace::NamespaceArgs),
    /// List and inspect nodes; drain them and set their scheduling eligibility.
    Node(node::NodeArgs),
    /// Cluster operations (`raft list-peers`).
    Operator(operator::OperatorArgs),
    /// List the servers of the region.
    Server(server::ServerArgs),
    /// List jobs, or show the status of whatever a prefix names.
    Status(status::StatusArgs),
    /// Server maintenance: garbage collection, summary reconciliation.
    System(system::SystemArgs),
    /// Read, write, list, purge and lock variables.
    Var(var::VarArgs),
    /// Print the yurt version and the Nomad API version it speaks.
    Version,
}

/// Parses argv (program name first) after Go-flag normalization.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Cli, clap::Error> {
    let argv = argv::normalize_args(args.into_iter().collect(), &Cli::command());
    Cli::try_parse_from(argv)
}

/// A user command piped into `head` (or any reader that stops early) ends quietly, as Nomad's
/// commands and other Unix tools do. Rust starts with SIGPIPE ignored, which turns the closed
/// pipe into a write error that `println!` panics on. The agent keeps it ignored: a peer
/// closing a socket must not kill it.
fn end_quietly_on_closed_stdout() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: the default disposition runs no handler code, and no other thread exists yet
    // (no runtime has been started by this process).
    if let Err(e) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) } {
        eprintln!("warning: could not restore SIGPIPE: {e}");
    }
}

/// Entry point used by `main`: parse, dispatch, map the outcome to an exit code.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let argv: Vec<OsString> = args.into_iter().collect();
    let cli = match parse_args(argv.clone()) {
        Ok(cli) => cli,
        Err(err) => {
            // Prints help/version to stdout and usage errors to stderr, as clap decides.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if !matches!(cli.command, Command::Agent(_)) {
        end_quietly_on_closed_stdout();
    }
    match cli.command {
        Command::Acl(args) => acl::main(args),
        Command::Agent(args) => agent::run(&args),
        Command::Deployment(args) => deployment::main(args),
        Command::Alloc(args) => alloc::main(args),
        Command::Cluster(args) => cluster::main(args),
        Command::Completion(args) => output::run(async move { completion::print(&args) }),
        Command::Eval(args) => eval::main(args),
        Command::Operator(args) => operator::main(args),
        Command::Server(args) => server::main(args),
        Command::Status(args) => {
            // The search runs on its own runtime, which must end before the chosen command
            // starts one of its own.
            let mut target = None;
            let code = output::run(async {
                target = Some(status::target(&args, &argv).await?);
                Ok(())
            });
            match target {
                Some(next) => main_with_args(next),
                None => code,
            }
        }
        Command::Job(args) => job::main(args),
        Command::Namespace(args) => namespace::main(args),
        Command::Node(args) => node::main(args),
        Command::System(args) => system::main(args),
        Command::Var(args) => var::main(args),
        Command::Version => {
            println!("{}", version::version_text());
            ExitCode::SUCCESS
        }
    }
}
