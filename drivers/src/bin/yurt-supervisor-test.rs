//! Test helper: `yurt-supervisor-test <spec.json>` behaves like `yurt-supervisor <spec.json>`,
//! and `yurt-supervisor-test supervise <spec.json>` like the agent binary's `yurt supervise
//! <spec.json>` (the form older builds launched).
//!
//! The drivers crate cannot run the `yurt` package's binaries in its own tests, so its
//! integration tests point `SupervisorCommand` at this one.

fn main() {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.len() == 2 && args[0] == "supervise" {
        args.remove(0);
    }
    let [spec] = args.as_slice() else {
        eprintln!("usage: yurt-supervisor-test [supervise] <spec.json>");
        std::process::exit(2);
    };
    yurt_drivers::supervisor::supervisor_main(spec)
}
