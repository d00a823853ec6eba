//! Test helper: `yurt-supervisor-test <spec.json>` behaves like `yurt supervise <spec.json>`.
//!
//! The drivers crate cannot run the `yurt` binary in its own tests, so its integration tests
//! point `SupervisorCommand` at this one.

fn main() {
    let Some(spec) = std::env::args_os().nth(1) else {
        eprintln!("usage: yurt-supervisor-test <spec.json>");
        std::process::exit(2);
    };
    yurt_drivers::supervisor::supervisor_main(&spec)
}
