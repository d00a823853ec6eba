//! Version constraints for the `version` and `semver` constraint operands.
//!
//! `version` follows the rules of HashiCorp's go-version (lenient parsing, any number of
//! segments, `~>`; a pre-release only satisfies an ordering constraint that names a
//! pre-release of the same base version). `semver` follows Semantic Versioning 2.0
//! (at most three segments, pre-releases ordered by the spec, no `~>`).

use std::cmp::Ordering;

/// Which rule set a constraint is checked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionMode {
    /// go-version rules (`version` operand).
    Lenient,
    /// Semantic Versioning rules (`semver` operand).
    Semver,
}

/// A parsed version: numeric segments plus an optional pre-release (build metadata dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Segments padded to at least three.
    segments: Vec<u64>,
    /// How many segments the text spelled out (for `~>`).
    given: usize,
    pre: String,
}

impl Version {
    /// Parses `v1.2.3-beta.1+meta`; `None` when it is not a version under `mode`.
    pub fn parse(text: &str, mode: VersionMode) -> Option<Version> {
        let s = text.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        // Build metadata never takes part in comparisons.
        let s = s.split_once('+').map_or(s, |(v, _)| v);
        // The numeric core ends at the first character that is neither a digit nor a dot.
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (core, rest) = s.split_at(end);
        if core.is_empty() {
            return None;
        }
        let mut segments = Vec::new();
        for part in core.split('.') {
            segments.push(part.parse::<u64>().ok()?);
        }
        let pre = match rest.strip_prefix('-') {
            Some(p) => p,
            // go-version accepts `1.2beta` (pre-release without a dash); semver does not.
            None if mode == VersionMode::Lenient => rest,
            None if rest.is_empty() => rest,
            None => return None,
        };
        let valid_ident = |id: &str| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '~')
        };
        if !pre.is_empty() && !pre.split('.').all(valid_ident) {
            return None;
        }
        if mode == VersionMode::Semver && segments.len() > 3 {
            return None;
        }
        let given = segments.len();
        while segments.len() < 3 {
            segments.push(0);
        }
        Some(Version {
            segments,
            given,
            pre: pre.to_string(),
        })
    }

    /// Orders two versions: segments numerically, then a release above its pre-releases.
    pub fn compare(&self, other: &Version) -> Ordering {
        let n = self.segments.len().max(other.segments.len());
        for i in 0..n {
            let a = self.segments.get(i).copied().unwrap_or(0);
            let b = other.segments.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        compare_prerelease(&self.pre, &other.pre)
    }

    fn same_base(&self, other: &Version) -> bool {
        let n = self.segments.len().max(other.segments.len());
        (0..n).all(|i| {
            self.segments.get(i).copied().unwrap_or(0)
                == other.segments.get(i).copied().unwrap_or(0)
        })
    }
}

/// Pre-release precedence per SemVer §11: none ranks highest; identifiers compare
/// numerically when both are numbers, numbers rank below words, a longer list wins ties.
fn compare_prerelease(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    let mut ia = a.split('.');
    let mut ib = b.split('.');
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(n), Ok(m)) => n.cmp(&m),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Pessimistic,
}

/// A comma-separated list of `<op> <version>` terms that must all hold.
#[derive(Debug, Clone)]
pub struct VersionConstraints {
    terms: Vec<(Op, Version)>,
    mode: VersionMode,
}

impl VersionConstraints {
    /// Parses `">= 1.2, < 2.0"`; `None` when a term is malformed.
    pub fn parse(text: &str, mode: VersionMode) -> Option<VersionConstraints> {
        let mut terms = Vec::new();
        for raw in text.split(',') {
            let t = raw.trim();
            // Longest operators first so `>=` is not read as `>`.
            let ops = [
                ("~>", Op::Pessimistic),
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("!=", Op::Ne),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ];
            let (op, rest) = ops
                .iter()
                .find_map(|(p, op)| t.strip_prefix(p).map(|r| (*op, r)))
                .unwrap_or((Op::Eq, t));
            if op == Op::Pessimistic && mode == VersionMode::Semver {
                return None;
            }
            terms.push((op, Version::parse(rest, mode)?));
        }
        if terms.is_empty() {
            return None;
        }
        Some(VersionConstraints { terms, mode })
    }

    /// True when `v` satisfies every term.
    pub fn matches(&self, v: &Version) -> bool {
        self.terms
            .iter()
            .all(|(op, c)| self.term_matches(*op, c, v))
    }

    /// Parses `value` and checks it; an unparsable value never matches.
    pub fn matches_str(&self, value: &str) -> bool {
        Version::parse(value, self.mode).is_some_and(|v| self.matches(&v))
    }

    fn term_matches(&self, op: Op, c: &Version, v: &Version) -> bool {
        let ord = v.compare(c);
        if matches!(op, Op::Eq) {
            return ord == Ordering::Equal;
        }
        if matches!(op, Op::Ne) {
            return ord != Ordering::Equal;
        }
        if self.mode == VersionMode::Lenient && !lenient_prerelease_ok(v, c) {
            return false;
        }
        match op {
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Pessimistic => pessimistic(v, c),
            Op::Eq | Op::Ne => false,
        }
    }
}

/// go-version's rule: a pre-release version only satisfies ordering constraints that name a
/// pre-release of the same base version, so `1.3.0-beta` does not satisfy `>= 1.2`.
fn lenient_prerelease_ok(v: &Version, c: &Version) -> bool {
    match (v.pre.is_empty(), c.pre.is_empty()) {
        (false, false) => v.same_base(c),
        (false, true) => false,
        _ => true,
    }
}

/// `~> 1.2.3` allows `>= 1.2.3, < 1.3`; `~> 1.2` allows `>= 1.2, < 2`.
fn pessimistic(v: &Version, c: &Version) -> bool {
    if !c.pre.is_empty() && v.pre.is_empty() {
        return false;
    }
    if v.compare(c) == Ordering::Less || c.given > v.given {
        return false;
    }
    let fixed = c.given.saturating_sub(1);
    (0..fixed).all(|i| v.segments.get(i) == c.segments.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lenient(c: &str, v: &str) -> bool {
        VersionConstraints::parse(c, VersionMode::Lenient)
            .unwrap()
            .matches_str(v)
    }

    fn semver(c: &str, v: &str) -> bool {
        VersionConstraints::parse(c, VersionMode::Semver)
            .unwrap()
            .matches_str(v)
    }

    #[test]
    fn ranges() {
        assert!(lenient(">= 1.2, < 2.0", "1.5.3"));
        assert!(lenient(">= 1.2, < 2.0", "v1.2"));
        assert!(!lenient(">= 1.2, < 2.0", "2.0.0"));
        assert!(!lenient(">= 1.2, < 2.0", "1.1.9"));
        assert!(lenient("1.2.3", "1.2.3+build7"));
        assert!(lenient("!= 1.2.3", "1.2.4"));
        assert!(lenient("> 3.10", "3.10.1"));
        assert!(!lenient("> 3.10", "3.9.99"));
        assert!(lenient("> 1.0", "1.0.0.1"));
    }

    #[test]
    fn pessimistic_operator() {
        assert!(lenient("~> 1.2.3", "1.2.9"));
        assert!(!lenient("~> 1.2.3", "1.3.0"));
        assert!(lenient("~> 1.2", "1.9.0"));
        assert!(!lenient("~> 1.2", "2.0.0"));
        assert!(!lenient("~> 1.2", "1.1.0"));
    }

    #[test]
    fn prereleases_differ_between_modes() {
        // go-version: a beta only satisfies constraints naming the same base pre-release.
        assert!(!lenient(">= 1.2", "1.3.0-beta1"));
        assert!(lenient(">= 1.3.0-beta1", "1.3.0-beta2"));
        // semver: ordered by the spec.
        assert!(semver(">= 1.2.0", "1.3.0-beta1"));
        assert!(semver("< 1.3.0", "1.3.0-rc.1"));
        assert!(semver("> 1.0.0-alpha.1", "1.0.0-alpha.beta"));
        assert!(semver("> 1.0.0-alpha.2", "1.0.0-alpha.10"));
    }

    #[test]
    fn semver_is_strict() {
        assert!(VersionConstraints::parse("~> 1.2", VersionMode::Semver).is_none());
        assert!(!semver(">= 1.0.0", "1.2.3.4"));
        assert!(!semver(">= 1.0.0", "1.2beta"));
        assert!(!semver(">= 1.0.0", "not-a-version"));
        assert!(VersionConstraints::parse(">= banana", VersionMode::Lenient).is_none());
    }
}
