//! The module boundaries of `/work/shared/DESIGN.md`, checked on the source text: every
//! `crate::…`, `super::…` (where it climbs out of a top-level module), dependency and `std::`
//! path in `src/**/*.rs` and `drivers/src/**/*.rs` is resolved to the top-level module or crate
//! it names, and a forbidden arrow fails the test with its file and line.
//!
//! The rules:
//! - `client` never reaches `server`, and `server` never reaches `client`; only `agent` (and
//!   `cli`, which starts it) knows both.
//! - Nothing below the agent (`server`, `client`, `rpc`, `http`, `structs`) reaches `agent`
//!   or `cli`.
//! - `rpc` (the narrow server ↔ client interface), `http` (shared conventions), `tls`
//!   (shared TLS plumbing) and `telemetry` (the metrics registry) reach neither side; `acl`
//!   (the ACL model) reaches none of them.
//! - `structs` is plain data: from the crate only `structs` itself; from the dependencies only
//!   the pure data ones in [`STRUCTS_DEPENDENCIES`]; from `std` nothing that does I/O
//!   ([`STD_IO`]).
//! - `drivers` never names `yurt`, and its manifest depends on neither `yurt` nor an HTTP crate.
//!
//! Comments are ignored; string literals are too, except those that are a whole path (serde's
//! `deserialize_with = "crate::…"`), which are real dependencies.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// The dependencies `structs` may use: data formats, time, IDs, patterns, errors.
const STRUCTS_DEPENDENCIES: &[&str] = &[
    "base64",
    "bytes",
    "chrono",
    "chrono_tz",
    "croner",
    "humantime",
    "imbl",
    "rand",
    "regex",
    "semver",
    "serde",
    "serde_json",
    "serde_path_to_error",
    "thiserror",
    "uuid",
];

/// The parts of `std` that touch files, sockets, processes, the environment or threads.
const STD_IO: &[&str] = &["env", "fs", "io", "net", "os", "process", "thread"];

/// Crates `drivers/Cargo.toml` must not depend on.
const DRIVERS_FORBIDDEN_DEPENDENCIES: &[&str] =
    &["yurt", "axum", "hyper", "reqwest", "tower", "tower-http"];

/// Top-level modules of `src/` a module may not reach, by module.
fn forbidden_modules(from: &str) -> &'static [&'static str] {
    match from {
        "client" => &["server", "agent", "cli"],
        "server" => &["client", "agent", "cli"],
        "rpc" | "http" | "tls" | "telemetry" => &["server", "client", "agent", "cli"],
        // The ACL model is pure: policies in, answers out.
        "acl" => &["server", "client", "agent", "cli", "rpc", "http"],
        "structs" => &["server", "client", "agent", "cli", "rpc", "http", "version"],
        _ => &[],
    }
}

/// One forbidden arrow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    line: usize,
    rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.rule)
    }
}

/// The source with comments and string/char literals blanked (newlines kept, so offsets map
/// to the same lines). A string literal that is a whole `crate::`/`super::` path is kept.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let blank = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend(bytes.iter().map(|&c| if c == b'\n' { b'\n' } else { b' ' }));
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &rest[..j]);
            i += j;
        } else if rest[0] == b'"' || ((rest[0] == b'r' || rest[0] == b'b') && is_raw_start(rest)) {
            let len = string_len(rest);
            let lit = &rest[..len];
            let open = lit.iter().position(|&c| c == b'"').map_or(len, |p| p + 1);
            let body = &lit[open..];
            if body.starts_with(b"crate::") || body.starts_with(b"super::") {
                let path = body
                    .iter()
                    .take_while(|&&c| is_ident(c) || c == b':')
                    .count();
                blank(&mut out, &lit[..open]);
                out.extend_from_slice(&body[..path]);
                blank(&mut out, &body[path..]);
            } else {
                blank(&mut out, lit);
            }
            i += len;
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let len = if rest.get(1) == Some(&b'\\') {
                rest[2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map_or(1, |p| p + 3)
            } else {
                let c = std::str::from_utf8(&rest[1..rest.len().min(5)])
                    .ok()
                    .or_else(|| std::str::from_utf8(&rest[1..]).ok())
                    .and_then(|s| s.chars().next());
                match c {
                    Some(c) if rest.get(1 + c.len_utf8()) == Some(&b'\'') => c.len_utf8() + 2,
                    _ => 1,
                }
            };
            blank(&mut out, &rest[..len]);
            i += len;
        } else {
            out.push(rest[0]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `s` starts a raw or byte string literal (`r"`, `r#"`, `b"`, `br"`), not an
/// identifier that starts with r or b.
fn is_raw_start(s: &[u8]) -> bool {
    let t = s.strip_prefix(b"b").unwrap_or(s);
    let t = t.strip_prefix(b"r").unwrap_or(t);
    let t = if t.len() < s.len() {
        let hashes = t.iter().take_while(|&&c| c == b'#').count();
        &t[hashes..]
    } else {
        t
    };
    t.len() < s.len() && t.first() == Some(&b'"')
}

/// Length of the string literal at the start of `s` (plain, byte or raw).
fn string_len(s: &[u8]) -> usize {
    let mut i = 0;
    while s[i] == b'b' || s[i] == b'r' {
        i += 1;
    }
    let raw = s[..i].contains(&b'r');
    let hashes = s[i..].iter().take_while(|&&c| c == b'#').count();
    i += hashes + 1; // the opening quote
    if raw {
        let mut close = vec![b'"'];
        close.extend(std::iter::repeat_n(b'#', hashes));
        while i < s.len() && !s[i..].starts_with(&close) {
            i += 1;
        }
        (i + close.len()).min(s.len())
    } else {
        while i < s.len() && s[i] != b'"' {
            i += if s[i] == b'\\' { 2 } else { 1 };
        }
        (i + 1).min(s.len())
    }
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Where `word::` starts a path in `code`: at a word boundary and not after `::`.
fn path_starts(code: &str, word: &str) -> Vec<usize> {
    let b = code.as_bytes();
    let pat = format!("{word}::");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(p) = code[from..].find(&pat) {
        let at = from + p;
        let before = code[..at].trim_end();
        let boundary = at == 0 || !is_ident(b[at - 1]);
        if boundary && !before.ends_with("::") {
            found.push(at);
        }
        from = at + pat.len();
    }
    found
}

/// The first segment(s) named after a `::` at `at`: one identifier, or the first identifier
/// of each item of a `{…}` group.
fn heads(code: &str, at: usize) -> Vec<String> {
    let rest = code[at..].trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        let mut items = Vec::new();
        let mut depth = 0;
        let mut item = String::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(std::mem::take(&mut item));
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        items.push(item);
        items
            .iter()
            .filter_map(|i| first_ident(i.trim_start()))
            .collect()
    } else {
        first_ident(rest).into_iter().collect()
    }
}

fn first_ident(s: &str) -> Option<String> {
    let id: String = s.chars().take_while(|&c| is_ident(c as u8)).collect();
    (!id.is_empty()).then_some(id)
}

fn line_of(code: &str, at: usize) -> usize {
    code[..at].bytes().filter(|&c| c == b'\n').count() + 1
}

/// The module path of a file under `src/` (`server/ops/jobs.rs` → `[server, ops, jobs]`).
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if !matches!(stem, "mod" | "lib" | "main") {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// Inline modules (`mod tests { … }`) enclosing each offset: the names, outermost first.
fn inline_modules(code: &str) -> Vec<(usize, Vec<String>)> {
    let b = code.as_bytes();
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut pending: Option<String> = None;
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'{' {
            depth += 1;
            if let Some(name) = pending.take() {
                stack.push((name, depth));
                spans.push((i, stack.iter().map(|(n, _)| n.clone()).collect()));
            }
        } else if c == b'}' {
            stack.retain(|(_, d)| *d < depth);
            depth = depth.saturating_sub(1);
            spans.push((i, stack.iter().map(|(n, _)| n.clone()).collect()));
        } else if c == b';' {
            pending = None;
        } else if code[i..].starts_with("mod ") && (i == 0 || !is_ident(b[i - 1])) {
            pending = first_ident(code[i + 4..].trim_start());
            i += 4;
            continue;
        }
        i += 1;
    }
    spans
}

fn enclosing(spans: &[(usize, Vec<String>)], at: usize) -> Vec<String> {
    match spans.partition_point(|(o, _)| *o < at) {
        0 => Vec::new(),
        n => spans[n - 1].1.clone(),
    }
}

/// The forbidden arrows in one file of `src/` (`rel` relative to `src/`).
fn check_src_file(rel: &Path, display: &str, src: &str, deps: &[String]) -> Vec<Violation> {
    let module = module_path(rel);
    let Some(top) = module.first().cloned() else {
        return Vec::new();
    };
    let code = code_only(src);
    let spans = inline_modules(&code);
    let mut out = Vec::new();
    let mut refuse = |at: usize, rule: String| {
        out.push(Violation {
            file: display.to_string(),
            line: line_of(&code, at),
            rule,
        })
    };
    // crate::X and super::…::X where the supers climb to the crate root.
    let mut targets: Vec<(usize, String, String)> = Vec::new();
    for at in path_starts(&code, "crate") {
        for h in heads(&code, at + "crate::".len()) {
            targets.push((at, h.clone(), format!("crate::{h}")));
        }
    }
    for at in path_starts(&code, "super") {
        let mut n = 0;
        let mut p = at;
        while code[p..].starts_with("super::") {
            n += 1;
            p += "super::".len();
        }
        let mut here = module.clone();
        here.extend(enclosing(&spans, at));
        if n >= here.len() {
            for h in heads(&code, p) {
                targets.push((at, h.clone(), format!("{}{h}", "super::".repeat(n))));
            }
        }
    }
    for (at, target, path) in targets {
        if forbidden_modules(&top).contains(&target.as_str()) {
            refuse(at, format!("{top} → {target} (`{path}`)"));
        }
    }
    if top == "structs" {
        for dep in deps {
            if STRUCTS_DEPENDENCIES.contains(&dep.as_str()) {
                continue;
            }
            for at in path_starts(&code, dep) {
                refuse(at, format!("structs → dependency `{dep}`"));
            }
        }
        for at in path_starts(&code, "std") {
            for h in heads(&code, at + "std::".len()) {
                if STD_IO.contains(&h.as_str()) {
                    refuse(at, format!("structs → I/O (`std::{h}`)"));
                }
            }
        }
    }
    out.sort();
    out
}

/// The forbidden arrows in one file of `drivers/src/`.
fn check_drivers_file(display: &str, src: &str) -> Vec<Violation> {
    let code = code_only(src);
    let mut found: Vec<usize> = path_starts(&code, "yurt");
    found.extend(
        code.match_indices("extern crate yurt")
            .filter(|(i, _)| !code[i + "extern crate yurt".len()..].starts_with('_'))
            .map(|(i, _)| i),
    );
    found
        .into_iter()
        .map(|at| Violation {
            file: display.to_string(),
            line: line_of(&code, at),
            rule: "drivers → yurt".to_string(),
        })
        .collect()
}

/// The names of a manifest's `[dependencies]` (as written, hyphens kept).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') {
                names.push(name.to_string());
            }
        }
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {dir:?}: {e}"));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("reading {dir:?}: {e}"))
            .path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"))
}

#[test]
fn no_forbidden_arrows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deps: Vec<String> = dependencies(&read(&root.join("Cargo.toml")))
        .into_iter()
        .map(|d| d.replace('-', "_"))
        .collect();
    assert!(deps.contains(&"tokio".to_string()), "parsed deps: {deps:?}");

    let mut violations = BTreeSet::new();
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut tops = BTreeSet::new();
    for path in &files {
        let rel = path.strip_prefix(&src).expect("under src");
        let display = format!("src/{}", rel.display());
        if let Some(top) = module_path(rel).first() {
            tops.insert(top.clone());
        }
        violations.extend(check_src_file(rel, &display, &read(path), &deps));
    }
    // The walk really saw the layout the rules are about.
    for top in [
        "agent", "client", "server", "structs", "rpc", "http", "acl", "tls",
    ] {
        assert!(tops.contains(top), "no src/{top}/ found in {tops:?}");
    }

    let drivers = root.join("drivers/src");
    let mut driver_files = Vec::new();
    rust_files(&drivers, &mut driver_files);
    assert!(!driver_files.is_empty(), "no files under {drivers:?}");
    for path in &driver_files {
        let rel = path.strip_prefix(root).expect("under the root");
        violations.extend(check_drivers_file(&rel.display().to_string(), &read(path)));
    }
    for dep in dependencies(&read(&root.join("drivers/Cargo.toml"))) {
        if DRIVERS_FORBIDDEN_DEPENDENCIES.contains(&dep.as_str()) {
            violations.insert(Violation {
                file: "drivers/Cargo.toml".to_string(),
                line: 0,
                rule: format!("drivers depends on `{dep}`"),
            });
        }
    }

    let report: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(
        report.is_empty(),
        "{} forbidden arrow(s):\n{}",
        report.len(),
        report.join("\n")
    );
}

/// The checker itself sees each kind of arrow (so a pass above means something).
#[test]
fn the_checker_sees_forbidden_arrows() {
    let deps = vec!["tokio".to_string(), "serde".to_string()];
    let check = |rel: &str, src: &str| -> Vec<String> {
        check_src_file(Path::new(rel), rel, src, &deps)
            .into_iter()
            .map(|v| format!("{}: {}", v.line, v.rule))
            .collect()
    };
    assert_eq!(
        check(
            "client/x.rs",
            "use std::sync::Arc;\nuse crate::server::Server;\n"
        ),
        ["2: client → server (`crate::server`)"]
    );
    assert_eq!(
        check(
            "server/a/b.rs",
            "use crate::{\n    structs::Job,\n    client::Client,\n};\n"
        ),
        ["1: server → client (`crate::client`)"]
    );
    // Three supers from server/a/b.rs climb to the crate root; two stay in server.
    assert_eq!(
        check(
            "server/a/b.rs",
            "use super::super::super::client::C;\nuse super::super::state::S;\n"
        ),
        ["1: server → client (`super::super::super::client`)"]
    );
    // Inside an inline module one more super is needed to climb out.
    assert_eq!(
        check(
            "server/a.rs",
            "mod tests {\n    use super::super::super::client::C;\n    use super::super::x;\n}\n"
        ),
        ["2: server → client (`super::super::super::client`)"]
    );
    assert_eq!(
        check(
            "structs/job.rs",
            "use serde::Serialize;\nfn f() { let _ = std::fs::read(\"x\"); tokio::spawn(g()); }\nuse crate::http::X;\n"
        ),
        [
            "2: structs → I/O (`std::fs`)",
            "2: structs → dependency `tokio`",
            "3: structs → http (`crate::http`)",
        ]
    );
    // A path in serde's attribute string counts; comments and other strings do not.
    assert_eq!(
        check(
            "client/y.rs",
            "#[serde(deserialize_with = \"crate::server::de\")]\n// crate::server::x\nconst S: &str = \"see crate::server::y\";\n"
        ),
        ["1: client → server (`crate::server`)"]
    );
    let drivers: Vec<String> =
        check_drivers_file("d.rs", "use yurt::structs::Job;\nuse yurt_drivers::X;\n")
            .into_iter()
            .map(|v| format!("{}: {}", v.line, v.rule))
            .collect();
    assert_eq!(drivers, ["1: drivers → yurt"]);
}
