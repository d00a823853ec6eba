//! The `yurt` binary: everything lives in the library; see `yurt::cli`.

fn main() -> std::process::ExitCode {
    yurt::cli::main_with_args(std::env::args_os())
}
