//! `yurt completion bash|zsh|fish`: prints a shell completion script generated from the
//! command definition, so it always matches the commands and flags yurt has. (Nomad installs
//! its completion with `-autocomplete-install`; yurt prints the script for the user to
//! source or install.)

use std::io::Write;

use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

use super::output::CliError;

/// The shells yurt writes completions for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// `yurt completion <shell>`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to print the completion script for.
    shell: CompletionShell,
}

/// The completion script for `shell`.
pub fn script(shell: CompletionShell) -> Vec<u8> {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut super::Cli::command(), "yurt", &mut out);
    out
}

pub fn print(a: &CompletionArgs) -> Result<(), CliError> {
    std::io::stdout()
        .write_all(&script(a.shell))
        .map_err(|e| CliError(format!("Error writing the completion script: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_the_commands() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let text = String::from_utf8(script(shell)).unwrap();
            assert!(text.contains("yurt"), "{shell:?}");
            assert!(
                text.contains("plan") && text.contains("list-peers"),
                "{shell:?}"
            );
        }
    }
}
