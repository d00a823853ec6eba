//! The `yurt` binary: everything lives in the library; see `yurt::cli`.

fn main() -> std::process::ExitCode {
    // `yurt supervise <spec.json>`: a per-task supervisor (see yurt_drivers::supervisor), when
    // the agent found no `yurt-supervisor` beside it; builds before that executable existed
    // always ran this form, and their supervisors may still be running. It must be
    // dispatched before any runtime, thread or logger exists, because it forks.
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == "supervise") {
        let Some(spec) = args.next() else {
            eprintln!("usage: yurt supervise <spec.json>");
            return std::process::ExitCode::from(2);
        };
        yurt_drivers::supervisor::supervisor_main(&spec);
    }
    // reqwest is built without a crypto provider of its own; yurt's clients bring theirs,
    // and this covers any that does not.
    yurt::tls::install_default_provider();
    yurt::cli::main_with_args(std::env::args_os())
}
