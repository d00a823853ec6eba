//! `?filter=` expressions (Nomad's go-bexpr language) evaluated over a list item's JSON form:
//! `Selector == "v"`, `!=`, `Selector contains "v"`, `"v" in Selector`, `Selector matches
//! "re"`, `Selector is empty` (each with `not`), combined with `and`, `or`, `not` and
//! parentheses. Selectors are field names joined by `.` (`Meta.owner`, `Lock.ID`).

use regex::Regex;
use serde_json::Value;

use super::HttpError;

/// A parsed filter.
#[derive(Debug, Clone)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Match {
        selector: Vec<String>,
        op: Op,
        value: String,
        negate: bool,
    },
}

/// A match operator.
#[derive(Debug, Clone)]
pub enum Op {
    Equal,
    Contains,
    Matches(Regex),
    Empty,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Sym(&'static str),
}

fn bad(msg: impl std::fmt::Display) -> HttpError {
    HttpError::bad_request(format!("failed to read filter expression: {msg}"))
}

fn tokenize(text: &str) -> Result<Vec<Token>, HttpError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                out.push(Token::Sym(if c == '(' { "(" } else { ")" }));
            }
            '=' | '!' => {
                chars.next();
                if chars.next() != Some('=') {
                    return Err(bad(format!("expected '=' after {c:?}")));
                }
                out.push(Token::Sym(if c == '=' { "==" } else { "!=" }));
            }
            '"' | '`' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(bad("unterminated string")),
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => match chars.next() {
                            Some(e) => s.push(e),
                            None => return Err(bad("unterminated string")),
                        },
                        Some(ch) => s.push(ch),
                    }
                }
                out.push(Token::Quoted(s));
            }
            _ => {
                let mut s = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || matches!(ch, '(' | ')' | '=' | '!' | '"' | '`') {
                        break;
                    }
                    s.push(ch);
                    chars.next();
                }
                out.push(Token::Word(s));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
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

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w == word) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn or(&mut self) -> Result<Filter, HttpError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, HttpError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, HttpError> {
        if self.keyword("not") {
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Token::Sym("(")) {
            self.pos += 1;
            let inner = self.or()?;
            if self.next() != Some(Token::Sym(")")) {
                return Err(bad("missing ')'"));
            }
            return Ok(inner);
        }
        self.matcher()
    }

    fn value(&mut self) -> Result<String, HttpError> {
        match self.next() {
            Some(Token::Quoted(s) | Token::Word(s)) => Ok(s),
            other => Err(bad(format!("expected a value, found {other:?}"))),
        }
    }

    fn matcher(&mut self) -> Result<Filter, HttpError> {
        let first = self
            .next()
            .ok_or_else(|| bad("unexpected end of expression"))?;
        // `"value" [not] in Selector`
        let negated_in = matches!(
            (self.peek(), self.tokens.get(self.pos + 1)),
            (Some(Token::Word(n)), Some(Token::Word(i))) if n == "not" && i == "in"
        );
        if negated_in || matches!(self.peek(), Some(Token::Word(w)) if w == "in") {
            self.pos += if negated_in { 2 } else { 1 };
            let value = match first {
                Token::Quoted(s) | Token::Word(s) => s,
                Token::Sym(s) => return Err(bad(format!("unexpected {s:?}"))),
            };
            let selector = self.selector()?;
            return Ok(Filter::Match {
                selector,
                op: Op::Contains,
                value,
                negate: negated_in,
            });
        }
        let Token::Word(sel) = first else {
            return Err(bad(format!("expected a selector, found {first:?}")));
        };
        let selector = split_selector(&sel)?;
        let (op, negate, value) = match self.next() {
            Some(Token::Sym("==")) => (Op::Equal, false, self.value()?),
            Some(Token::Sym("!=")) => (Op::Equal, true, self.value()?),
            Some(Token::Word(w)) if w == "is" => {
                let negate = self.keyword("not");
                if !self.keyword("empty") {
                    return Err(bad("expected 'empty' after 'is'"));
                }
                (Op::Empty, negate, String::new())
            }
            Some(Token::Word(w)) => {
                let (negate, w) = if w == "not" {
                    match self.next() {
                        Some(Token::Word(w)) => (true, w),
                        other => return Err(bad(format!("unexpected {other:?} after 'not'"))),
                    }
                } else {
                    (false, w)
                };
                let value = self.value()?;
                match w.as_str() {
                    "contains" => (Op::Contains, negate, value),
                    "matches" => {
                        let re = Regex::new(&value).map_err(bad)?;
                        (Op::Matches(re), negate, value)
                    }
                    _ => return Err(bad(format!("unknown operator {w:?}"))),
                }
            }
            other => return Err(bad(format!("expected an operator, found {other:?}"))),
        };
        Ok(Filter::Match {
            selector,
            op,
            value,
            negate,
        })
    }

    fn selector(&mut self) -> Result<Vec<String>, HttpError> {
        match self.next() {
            Some(Token::Word(w)) => split_selector(&w),
            other => Err(bad(format!("expected a selector, found {other:?}"))),
        }
    }
}

fn split_selector(text: &str) -> Result<Vec<String>, HttpError> {
    let parts: Vec<String> = text.split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(bad(format!("invalid selector {text:?}")));
    }
    Ok(parts)
}

/// A JSON scalar as the text a filter value is compared with.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Keeps the items `filter` (already parsed; None for no filter) matches, each judged by its
/// JSON form.
pub fn retain_matching<T: serde::Serialize>(items: Vec<T>, filter: Option<&Filter>) -> Vec<T> {
    let Some(f) = filter else {
        return items;
    };
    items
        .into_iter()
        .filter(|i| serde_json::to_value(i).is_ok_and(|v| f.matches(&v)))
        .collect()
}

impl Filter {
    /// The filter of `?filter=`, None when it is empty.
    pub fn from_query(text: &str) -> Result<Option<Filter>, HttpError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        Filter::parse(text).map(Some)
    }

    /// Parses `text`; a 400 naming the problem when it is not a filter.
    pub fn parse(text: &str) -> Result<Filter, HttpError> {
        let mut p = Parser {
            tokens: tokenize(text)?,
            pos: 0,
        };
        let f = p.or()?;
        if let Some(t) = p.peek() {
            return Err(bad(format!("unexpected {t:?}")));
        }
        Ok(f)
    }

    /// Whether `item` (an API object's JSON form) matches.
    pub fn matches(&self, item: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(item) && b.matches(item),
            Filter::Or(a, b) => a.matches(item) || b.matches(item),
            Filter::Not(f) => !f.matches(item),
            Filter::Match {
                selector,
                op,
                value,
                negate,
            } => {
                let field = selector
                    .iter()
                    .try_fold(item, |v, key| v.get(key))
                    .unwrap_or(&Value::Null);
                let hit = match op {
                    Op::Equal => scalar_text(field).is_some_and(|s| s == *value),
                    Op::Contains => match field {
                        Value::String(s) => s.contains(value.as_str()),
                        Value::Array(a) => a.iter().any(|e| scalar_text(e).as_ref() == Some(value)),
                        Value::Object(m) => m.contains_key(value),
                        _ => false,
                    },
                    Op::Matches(re) => scalar_text(field).is_some_and(|s| re.is_match(&s)),
                    Op::Empty => match field {
                        Value::Null => true,
                        Value::String(s) => s.is_empty(),
                        Value::Array(a) => a.is_empty(),
                        Value::Object(m) => m.is_empty(),
                        _ => false,
                    },
                };
                hit != *negate
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(f: &str, v: &Value) -> bool {
        Filter::parse(f).unwrap().matches(v)
    }

    #[test]
    fn operators_and_combinations() {
        let v = json!({"Path": "app/db", "Namespace": "default", "ModifyIndex": 12,
            "Meta": {"owner": "ops"}, "Tags": ["a", "b"], "Empty": ""});
        assert!(m(r#"Path == "app/db""#, &v));
        assert!(m("ModifyIndex == 12", &v));
        assert!(m(r#"Path != "x""#, &v));
        assert!(m(r#"Path contains "db""#, &v));
        assert!(m(r#"Path not contains "zz""#, &v));
        assert!(m(r#""a" in Tags"#, &v));
        assert!(m(r#""c" not in Tags"#, &v));
        assert!(m(r#"owner in Meta"#, &v));
        assert!(m(r#"Meta.owner == ops"#, &v));
        assert!(m(r#"Path matches "^app/""#, &v));
        assert!(m(r#"Path not matches "^x""#, &v));
        assert!(m(
            "Empty is empty and Missing is empty and Path is not empty",
            &v
        ));
        assert!(m(
            r#"Path == "x" or (Namespace == default and not Path == "y")"#,
            &v
        ));
        assert!(!m(r#"Path == "x" or Namespace == "prod""#, &v));
        assert!(m(r#"Path == `app/db`"#, &v));
    }

    #[test]
    fn bad_expressions_are_400s() {
        for bad in [
            "",
            "Path ==",
            "Path = x",
            "Path is full",
            "(Path == x",
            "Path == \"x",
            "Path frobs x",
            "Path matches \"(\"",
            "a..b == 1",
            "Path == x y",
        ] {
            let err = Filter::parse(bad).unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST, "{bad}");
            assert!(
                err.to_string()
                    .starts_with("failed to read filter expression"),
                "{bad}"
            );
        }
    }
}
