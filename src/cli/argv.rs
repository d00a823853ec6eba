//! Nomad-style single-dash long flags for clap: `-data-dir=x`, `-data-dir x`, `-dev`,
//! `-server=false` become `--data-dir=x`, `--data-dir x`, `--dev`, (nothing). The known
//! names come from the clap definition itself, following subcommands as they appear.

use std::ffi::OsString;

use clap::{Arg, Command};

use crate::http::query::parse_go_bool;

/// Rewrites `args` (including the program name) so clap accepts Go-flag spellings.
pub fn normalize_args(args: Vec<OsString>, root: &Command) -> Vec<OsString> {
    let mut cmd = root.clone();
    cmd.build();
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    if let Some(program) = iter.next() {
        out.push(program);
    }
    let mut value_pending = false;
    let mut rest_positional = false;
    for arg in iter {
        if value_pending || rest_positional {
            value_pending = false;
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            rest_positional = true;
            out.push(arg);
            continue;
        }
        if !text.starts_with('-') {
            if let Some(sub) = cmd.find_subcommand(text) {
                let mut sub = sub.clone();
                sub.build();
                cmd = sub;
            } else if takes_trailing_command(&cmd) {
                // Go's flag parsing stops at the first positional: `alloc exec <id> sh -c x`
                // keeps `-c` (and any `-task` after the id) for the command.
                rest_positional = true;
                out.push(OsString::from("--"));
            }
            out.push(arg);
            continue;
        }
        let (double, body) = match text.strip_prefix("--") {
            Some(body) => (true, body),
            None => (false, &text[1..]),
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        // `-x` style shorts (one character) are clap's own business.
        let known = (double || name.chars().count() > 1)
            .then(|| find_long(&cmd, name))
            .flatten();
        let Some(flag) = known else {
            out.push(arg);
            continue;
        };
        if flag.get_action().takes_values() {
            // A flag whose value must follow `=` (a Go bool that defaults to true, like
            // `job plan -diff=false`) leaves the next argument alone.
            value_pending = value.is_none() && !flag.is_require_equals_set();
            out.push(arg_with_dashes(name, value));
            continue;
        }
        // Go bool flags accept `-flag=true|false`; clap's switches take no value.
        match value.map(parse_go_bool) {
            None | Some(Some(true)) => out.push(OsString::from(format!("--{name}"))),
            Some(Some(false)) => {}
            Some(None) => out.push(arg),
        }
    }
    out
}

/// Whether `cmd` ends in a trailing var-arg positional (a command line to run).
fn takes_trailing_command(cmd: &Command) -> bool {
    cmd.get_positionals().any(Arg::is_trailing_var_arg_set)
}

/// The argument of `cmd` with long name `name`, if any.
fn find_long<'a>(cmd: &'a Command, name: &str) -> Option<&'a Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

/// `--name` or `--name=value`.
fn arg_with_dashes(name: &str, value: Option<&str>) -> OsString {
    match value {
        Some(v) => OsString::from(format!("--{name}={v}")),
        None => OsString::from(format!("--{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ArgAction;

    fn cmd() -> Command {
        Command::new("yurt").subcommand(
            Command::new("agent")
                .arg(Arg::new("dev").long("dev").action(ArgAction::SetTrue))
                .arg(Arg::new("server").long("server").action(ArgAction::SetTrue))
                .arg(Arg::new("config").long("config").action(ArgAction::Append))
                .arg(Arg::new("data-dir").long("data-dir"))
                .arg(Arg::new("meta").long("meta").action(ArgAction::Append))
                .arg(Arg::new("servers").long("servers")),
        )
    }

    fn norm(args: &[&str]) -> Vec<String> {
        let args = args.iter().map(OsString::from).collect();
        normalize_args(args, &cmd())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_switches_and_values() {
        assert_eq!(norm(&["yurt", "agent", "-dev"]), ["yurt", "agent", "--dev"]);
        assert_eq!(
            norm(&["yurt", "agent", "-config=a", "-config", "b"]),
            ["yurt", "agent", "--config=a", "--config", "b"]
        );
        assert_eq!(
            norm(&["yurt", "agent", "-meta", "a=b", "-meta", "c=d"]),
            ["yurt", "agent", "--meta", "a=b", "--meta", "c=d"]
        );
        assert_eq!(
            norm(&["yurt", "agent", "-servers", "1.2.3.4:4647,5.6.7.8:4647"]),
            ["yurt", "agent", "--servers", "1.2.3.4:4647,5.6.7.8:4647"]
        );
    }

    #[test]
    fn a_value_after_equals_only_does_not_take_the_next_argument() {
        let root = Command::new("yurt").subcommand(
            Command::new("plan")
                .arg(
                    Arg::new("diff")
                        .long("diff")
                        .num_args(0..=1)
                        .require_equals(true)
                        .default_missing_value("true"),
                )
                .arg(
                    Arg::new("verbose")
                        .long("verbose")
                        .action(ArgAction::SetTrue),
                )
                .arg(Arg::new("file")),
        );
        let args = ["yurt", "plan", "-diff", "-verbose", "f.hcl"];
        let out: Vec<String> = normalize_args(args.iter().map(OsString::from).collect(), &root)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(out, ["yurt", "plan", "--diff", "--verbose", "f.hcl"]);
    }

    #[test]
    fn go_bool_values() {
        assert_eq!(
            norm(&["yurt", "agent", "-dev=true"]),
            ["yurt", "agent", "--dev"]
        );
        assert_eq!(norm(&["yurt", "agent", "-dev=false"]), ["yurt", "agent"]);
        assert_eq!(norm(&["yurt", "agent", "--server=0"]), ["yurt", "agent"]);
        assert_eq!(
            norm(&["yurt", "agent", "-dev=maybe"]),
            ["yurt", "agent", "-dev=maybe"]
        );
    }

    #[test]
    fn flags_stop_at_the_first_positional_of_a_trailing_command() {
        let root = Command::new("yurt").subcommand(
            Command::new("exec")
                .arg(Arg::new("task").long("task"))
                .arg(Arg::new("i").short('i').action(ArgAction::SetTrue))
                .arg(Arg::new("alloc").required(true))
                .arg(
                    Arg::new("cmd")
                        .num_args(1..)
                        .trailing_var_arg(true)
                        .allow_hyphen_values(true),
                ),
        );
        let args = [
            "yurt", "exec", "-i", "-task", "web", "abcd", "sh", "-task", "-c",
        ];
        let out: Vec<String> = normalize_args(args.iter().map(OsString::from).collect(), &root)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            out,
            [
                "yurt", "exec", "-i", "--task", "web", "--", "abcd", "sh", "-task", "-c"
            ]
        );
    }

    #[test]
    fn values_and_unknowns_are_left_alone() {
        // A value that looks like a flag stays a value.
        assert_eq!(
            norm(&["yurt", "agent", "-data-dir", "-dev"]),
            ["yurt", "agent", "--data-dir", "-dev"]
        );
        assert_eq!(
            norm(&["yurt", "agent", "-bogus"]),
            ["yurt", "agent", "-bogus"]
        );
        assert_eq!(norm(&["yurt", "agent", "-h"]), ["yurt", "agent", "-h"]);
        assert_eq!(
            norm(&["yurt", "agent", "-help"]),
            ["yurt", "agent", "--help"]
        );
        assert_eq!(
            norm(&["yurt", "agent", "--", "-dev"]),
            ["yurt", "agent", "--", "-dev"]
        );
        // Flags of a subcommand are not recognised before it.
        assert_eq!(norm(&["yurt", "-dev", "agent"]), ["yurt", "-dev", "agent"]);
        assert_eq!(
            norm(&["yurt", "agent", "--data-dir", "x"]),
            ["yurt", "agent", "--data-dir", "x"]
        );
    }
}
