//! `?filter=`: the boolean expressions Nomad's list endpoints take (HashiCorp's go-bexpr
//! language), parsed once per request and matched against each item's JSON form.
//!
//! Supported: `==`, `!=`, `is empty`, `is not empty`, `in`, `not in`, `contains`,
//! `not contains`, `matches`, `not matches`, `and`, `or`, `not`, parentheses; selectors
//! `A.B.C` and `A["key with spaces"]`; values as `"quoted"` or `` `raw` `` strings, numbers
//! and booleans. An item whose own field a selector names does not exist is an error, as in
//! Nomad; a missing key further down (a map such as `Meta`) simply does not match.

use serde_json::Value;

/// A filter that failed to parse or to evaluate; the message is Nomad's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("failed to read filter expression: {0}")]
    Parse(String),
    #[error("error finding value in datum: /{0}")]
    UnknownField(String),
}

/// A compiled filter expression.
#[derive(Debug, Clone)]
pub struct Filter(Expr);

#[derive(Debug, Clone)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match {
        selector: Vec<String>,
        op: Op,
        value: Literal,
        negate: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    Empty,
    In,
    Matches,
}

#[derive(Debug, Clone)]
enum Literal {
    None,
    Text(String),
    Regex(regex::Regex),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Eq,
    Ne,
    Word(String),
    Text(String),
}

fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                out.push(if c == '(' { Token::Open } else { Token::Close });
            }
            '=' | '!' => {
                chars.next();
                if chars.next().map(|(_, c)| c) != Some('=') {
                    return Err(parse_err(format!("unexpected {c:?} at offset {i}")));
                }
                out.push(if c == '=' { Token::Eq } else { Token::Ne });
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(parse_err("unterminated string")),
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, c)) => s.push(c),
                            None => return Err(parse_err("unterminated string")),
                        },
                        Some((_, c)) => s.push(c),
                    }
                }
                out.push(Token::Text(s));
            }
            '`' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(parse_err("unterminated raw string")),
                        Some((_, '`')) => break,
                        Some((_, c)) => s.push(c),
                    }
                }
                out.push(Token::Text(s));
            }
            _ => {
                let mut w = String::new();
                let mut in_bracket = false;
                while let Some(&(_, c)) = chars.peek() {
                    let ends =
                        !in_bracket && (c.is_whitespace() || matches!(c, '(' | ')' | '=' | '!'));
                    if ends {
                        break;
                    }
                    match c {
                        '[' => in_bracket = true,
                        ']' => in_bracket = false,
                        _ => {}
                    }
                    w.push(c);
                    chars.next();
                }
                if w.is_empty() {
                    return Err(parse_err(format!("unexpected {c:?} at offset {i}")));
                }
                out.push(Token::Word(w));
            }
        }
    }
    Ok(out)
}

fn parse_err(m: impl Into<String>) -> FilterError {
    FilterError::Parse(m.into())
}

/// Deepest nesting of parentheses and `not` accepted. The parser and the evaluator recurse
/// once per level, and the expression comes from a query string: without a bound a few
/// kilobytes of `(` overflow the stack of the thread serving the request, aborting the agent.
const MAX_DEPTH: usize = 64;

/// Longest expression accepted, in tokens. `and`/`or` chains are built as nested nodes too,
/// so their length is bounded here, well within what the evaluator's recursion can take.
const MAX_TOKENS: usize = 2048;

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Current nesting of parentheses and `not`.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w == kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.not()?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.keyword("not") {
            self.descend()?;
            let e = Expr::Not(Box::new(self.not()?));
            self.depth -= 1;
            return Ok(e);
        }
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            self.descend()?;
            let e = self.or()?;
            if self.next() != Some(Token::Close) {
                return Err(parse_err("missing closing parenthesis"));
            }
            self.depth -= 1;
            return Ok(e);
        }
        self.matcher()
    }

    fn descend(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(parse_err(format!(
                "expression nests deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    /// `selector op value`, `selector is [not] empty` or `value [not] in selector`.
    fn matcher(&mut self) -> Result<Expr, FilterError> {
        let first = self
            .next()
            .ok_or_else(|| parse_err("expression ends early"))?;
        // A bare word before `in` / `not in` is a value (`web in Tags`).
        let before_in = match (self.peek(), self.tokens.get(self.pos + 1)) {
            (Some(Token::Word(a)), _) if a == "in" => true,
            (Some(Token::Word(a)), Some(Token::Word(b))) => a == "not" && b == "in",
            _ => false,
        };
        let value = match &first {
            Token::Word(w) if before_in => Some(w.clone()),
            Token::Text(t) => Some(t.clone()),
            Token::Word(_) => None,
            other => return Err(parse_err(format!("unexpected {other:?}"))),
        };
        if let Some(value) = value {
            let negate = self.keyword("not");
            if !self.keyword("in") {
                return Err(parse_err("expected \"in\" after a value"));
            }
            let selector = self.selector()?;
            return Ok(Expr::Match {
                selector,
                op: Op::In,
                value: Literal::Text(value),
                negate,
            });
        }
        let Token::Word(sel) = first else {
            return Err(parse_err(format!("unexpected {first:?}")));
        };
        let selector = parse_selector(&sel)?;
        let (op, negate) = match self.next() {
            Some(Token::Eq) => (Op::Equal, false),
            Some(Token::Ne) => (Op::Equal, true),
            Some(Token::Word(w)) if w == "is" => {
                let negate = self.keyword("not");
                if !self.keyword("empty") {
                    return Err(parse_err("expected \"empty\" after \"is\""));
                }
                return Ok(Expr::Match {
                    selector,
                    op: Op::Empty,
                    value: Literal::None,
                    negate,
                });
            }
            Some(Token::Word(w)) if w == "not" => match self.next() {
                Some(Token::Word(w)) if w == "contains" => (Op::In, true),
                Some(Token::Word(w)) if w == "matches" => (Op::Matches, true),
                _ => {
                    return Err(parse_err(
                        "expected \"contains\" or \"matches\" after \"not\"",
                    ));
                }
            },
            Some(Token::Word(w)) if w == "contains" => (Op::In, false),
            Some(Token::Word(w)) if w == "matches" => (Op::Matches, false),
            other => {
                return Err(parse_err(format!(
                    "expected an operator after {sel:?}, found {}",
                    other.map_or("the end".to_string(), |t| format!("{t:?}"))
                )));
            }
        };
        let raw =
            self.next().as_ref().and_then(literal).ok_or_else(|| {
                parse_err(format!("expected a value after the operator on {sel:?}"))
            })?;
        let value = if op == Op::Matches {
            Literal::Regex(
                regex::Regex::new(&raw).map_err(|e| parse_err(format!("invalid regex: {e}")))?,
            )
        } else {
            Literal::Text(raw)
        };
        Ok(Expr::Match {
            selector,
            op,
            value,
            negate,
        })
    }

    fn selector(&mut self) -> Result<Vec<String>, FilterError> {
        match self.next() {
            Some(Token::Word(w)) => parse_selector(&w),
            _ => Err(parse_err("expected a selector")),
        }
    }
}

/// Words that are operators, never values.
const KEYWORDS: [&str; 8] = [
    "and", "or", "not", "in", "contains", "matches", "is", "empty",
];

/// A value token as text (numbers and booleans compare by their text, as bexpr coerces; a
/// bare word such as `default` is a string).
fn literal(t: &Token) -> Option<String> {
    match t {
        Token::Text(s) => Some(s.clone()),
        Token::Word(w) if !KEYWORDS.contains(&w.as_str()) && !w.contains(['[', ']']) => {
            Some(w.clone())
        }
        _ => None,
    }
}

/// `A.B["c d"].E` → `["A", "B", "c d", "E"]`.
fn parse_selector(s: &str) -> Result<Vec<String>, FilterError> {
    let mut parts = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| parse_err(format!("unclosed [ in selector {s:?}")))?;
            let key = r[..end].trim_matches(|c| c == '"' || c == '\'');
            parts.push(key.to_string());
            rest = r[end + 1..].trim_start_matches('.');
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let name = &rest[..end];
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '/');
            if !valid {
                return Err(parse_err(format!("invalid selector {s:?}")));
            }
            parts.push(name.to_string());
            rest = rest[end..].strip_prefix('.').unwrap_or(&rest[end..]);
        }
    }
    if parts.is_empty() {
        return Err(parse_err("empty selector"));
    }
    Ok(parts)
}

/// Keeps the items whose JSON form passes `filter` (every item when it is empty), in order.
pub fn filter_items<T: serde::Serialize>(
    filter: &str,
    items: Vec<T>,
) -> Result<Vec<T>, FilterError> {
    if filter.is_empty() {
        return Ok(items);
    }
    let f = Filter::parse(filter)?;
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        let v = serde_json::to_value(&item).map_err(|e| FilterError::Parse(e.to_string()))?;
        if f.matches(&v)? {
            kept.push(item);
        }
    }
    Ok(kept)
}

impl Filter {
    /// Parses an expression.
    pub fn parse(input: &str) -> Result<Filter, FilterError> {
        let tokens = tokenize(input)?;
        if tokens.is_empty() {
            return Err(parse_err("empty expression"));
        }
        if tokens.len() > MAX_TOKENS {
            return Err(parse_err(format!(
                "expression is longer than {MAX_TOKENS} tokens"
            )));
        }
        let mut p = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let e = p.or()?;
        if p.pos < p.tokens.len() {
            return Err(parse_err(format!(
                "unexpected {:?} after the expression",
                p.tokens[p.pos]
            )));
        }
        Ok(Filter(e))
    }

    /// Whether `item` (an API object's JSON form) passes.
    pub fn matches(&self, item: &Value) -> Result<bool, FilterError> {
        eval(&self.0, item)
    }
}

fn eval(e: &Expr, item: &Value) -> Result<bool, FilterError> {
    Ok(match e {
        Expr::And(a, b) => eval(a, item)? && eval(b, item)?,
        Expr::Or(a, b) => eval(a, item)? || eval(b, item)?,
        Expr::Not(a) => !eval(a, item)?,
        Expr::Match {
            selector,
            op,
            value,
            negate,
        } => {
            let found = lookup(item, selector)?;
            let hit = match (op, value) {
                (Op::Equal, Literal::Text(v)) => found.is_some_and(|f| equals(f, v)),
                (Op::Empty, _) => found.is_none_or(is_empty),
                (Op::In, Literal::Text(v)) => found.is_some_and(|f| contains(f, v)),
                (Op::Matches, Literal::Regex(r)) => {
                    found.and_then(Value::as_str).is_some_and(|s| r.is_match(s))
                }
                _ => false,
            };
            hit != *negate
        }
    })
}

/// The value a selector names; `Err` when the item itself has no such field.
fn lookup<'a>(item: &'a Value, selector: &[String]) -> Result<Option<&'a Value>, FilterError> {
    let mut cur = item;
    for (depth, part) in selector.iter().enumerate() {
        let next = match cur {
            Value::Object(m) => m.get(part),
            Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None if depth == 0 && cur.is_object() => {
                return Err(FilterError::UnknownField(part.clone()));
            }
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

fn equals(found: &Value, want: &str) -> bool {
    match found {
        Value::String(s) => s == want,
        Value::Bool(b) => want.parse::<bool>().is_ok_and(|w| w == *b),
        Value::Number(n) => match (n.as_f64(), want.parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        _ => false,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// `value in selector`: an element of a list, a key of a map, a substring of a string.
fn contains(found: &Value, want: &str) -> bool {
    match found {
        Value::Array(a) => a.iter().any(|v| equals(v, want)),
        Value::Object(m) => m.contains_key(want),
        Value::String(s) => s.contains(want),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item() -> Value {
        json!({
            "ID": "abc", "Status": "running", "Priority": 50, "Stop": false,
            "Meta": {"env": "prod", "team name": "ops"}, "Tags": ["web", "edge"],
            "Datacenters": [], "Namespace": "default",
        })
    }

    fn check(expr: &str) -> bool {
        Filter::parse(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .matches(&item())
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    #[test]
    fn the_operators_nomad_users_write() {
        assert!(check(r#"Status == "running""#));
        assert!(!check(r#"Status != "running""#));
        assert!(check("Priority == 50"));
        assert!(check("Stop == false"));
        assert!(check(r#"Meta.env == "prod""#));
        assert!(check(r#"Meta["team name"] == `ops`"#));
        assert!(!check(r#"Meta.missing == "x""#));
        assert!(check(r#"Meta.missing != "x""#));
        assert!(check(r#""web" in Tags"#));
        assert!(check("web in Tags"));
        assert!(check("Namespace == default"));
        assert!(check("edge not in Meta"));
        assert!(check(r#""db" not in Tags"#));
        assert!(check(r#"Tags contains "edge""#));
        assert!(check(r#""env" in Meta"#));
        assert!(check("Datacenters is empty"));
        assert!(check("Tags is not empty"));
        assert!(check(r#"ID matches "^a.c$""#));
        assert!(check(r#"ID not matches "^z""#));
        assert!(check(
            r#"(Status == "dead" or Namespace == "default") and not Stop == true"#
        ));
        assert!(!check(r#"Status == "dead" or Namespace == "other""#));
    }

    #[test]
    fn errors_are_nomads() {
        let e = Filter::parse("NotValid").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("failed to read filter expression"),
            "{e}"
        );
        for bad in [
            "",
            "Status ==",
            r#"Status == "x" and"#,
            "(Status == \"x\"",
            r#"ID matches "(""#,
            r#"Status = "x""#,
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
        let f = Filter::parse(r#"InvalidField == "value""#).unwrap();
        let e = f.matches(&item()).unwrap_err();
        assert_eq!(e.to_string(), "error finding value in datum: /InvalidField");
    }
}
