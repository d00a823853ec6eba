//! Reading an expression the way HCL1 does: HCL1 has no variables, functions or operators,
//! so a value is a literal (string, number, bool, list, object) and a string is kept exactly
//! as written — `${...}` included, since in a Nomad HCL1 file every interpolation is resolved
//! at runtime by the client. The HCL2 evaluator is not used: it would resolve or reject what
//! HCL1 leaves verbatim.

use hcl::Value;
use hcl_edit::Span;
use hcl_edit::expr::{Expression, ObjectKey, UnaryOperator};

use super::error::{ErrorKind, JobspecError};
use super::source::Source;

/// The value of `expr` read literally.
pub fn read(src: &Source, expr: &Expression) -> Result<Value, JobspecError> {
    match expr {
        Expression::Null(_) => Ok(Value::Null),
        Expression::Bool(b) => Ok(Value::Bool(*b.value())),
        Expression::Number(n) => Ok(Value::Number(*n.value())),
        Expression::String(_) | Expression::StringTemplate(_) => {
            let raw = raw_text(src, expr)?;
            Ok(Value::String(unquote(raw)))
        }
        Expression::HeredocTemplate(_) => {
            let raw = raw_text(src, expr)?;
            heredoc(raw)
                .map(Value::String)
                .ok_or_else(|| not_literal(src, expr, "a heredoc"))
        }
        Expression::Array(a) => a
            .iter()
            .map(|e| read(src, e))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Expression::Object(o) => {
            let mut out = hcl::Map::new();
            for (k, v) in o.iter() {
                let key = match k {
                    ObjectKey::Ident(i) => i.as_str().to_string(),
                    ObjectKey::Expression(e) => match read(src, e)? {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        _ => return Err(not_literal(src, e, "an object key that is not a name")),
                    },
                };
                out.insert(key, read(src, v.expr())?);
            }
            Ok(Value::Object(out))
        }
        Expression::Parenthesis(p) => read(src, p.inner()),
        Expression::UnaryOp(u) if *u.operator.value() == UnaryOperator::Neg => {
            match read(src, &u.expr)? {
                Value::Number(n) => Ok(Value::Number(-n)),
                _ => Err(not_literal(src, expr, "a negated non-number")),
            }
        }
        Expression::Variable(_) | Expression::Traversal(_) => {
            Err(not_literal(src, expr, "a variable reference"))
        }
        Expression::FuncCall(_) => Err(not_literal(src, expr, "a function call")),
        Expression::UnaryOp(_) | Expression::BinaryOp(_) => {
            Err(not_literal(src, expr, "an operator"))
        }
        Expression::Conditional(_) => Err(not_literal(src, expr, "a conditional")),
        Expression::ForExpr(_) => Err(not_literal(src, expr, "a for expression")),
    }
}

fn not_literal(src: &Source, expr: &Expression, what: &str) -> JobspecError {
    src.error(
        expr.span(),
        ErrorKind::Unsupported(format!(
            "{what} is HCL2: an HCL1 job file holds literal values only (write the value out, or parse the file as HCL2 without HCLv1/-hcl1)"
        )),
    )
}

/// The source text of an expression; every parsed expression carries its span.
fn raw_text<'s>(src: &'s Source, expr: &Expression) -> Result<&'s str, JobspecError> {
    expr.span()
        .and_then(|s| src.slice(&s))
        .ok_or_else(|| not_literal(src, expr, "a value without a source position"))
}

/// The content of a quoted string, its escapes applied outside `${...}` only (HCL1 copies an
/// interpolation verbatim, quotes and backslashes included).
fn unquote(raw: &str) -> String {
    let inner = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw);
    let chars: Vec<char> = inner.chars().collect();
    let mut out = String::with_capacity(inner.len());
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if depth > 0 {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '$' if chars.get(i + 1) == Some(&'{') => {
                depth = 1;
                out.push_str("${");
                i += 2;
            }
            '\\' => {
                let (decoded, used) = escape(&chars[i + 1..]);
                out.push_str(&decoded);
                i += 1 + used;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// One escape sequence after its backslash: the text it stands for and how many characters
/// it used. An unknown escape is kept as written.
fn escape(rest: &[char]) -> (String, usize) {
    let Some(&c) = rest.first() else {
        return ("\\".to_string(), 0);
    };
    let simple = match c {
        'n' => Some('\n'),
        't' => Some('\t'),
        'r' => Some('\r'),
        '"' => Some('"'),
        '\\' => Some('\\'),
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'v' => Some('\u{b}'),
        _ => None,
    };
    if let Some(s) = simple {
        return (s.to_string(), 1);
    }
    let width = match c {
        'u' => 4,
        'U' => 8,
        _ => 0,
    };
    if width > 0 && rest.len() > width {
        let hex: String = rest[1..=width].iter().collect();
        if let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            return (ch.to_string(), 1 + width);
        }
    }
    (format!("\\{c}"), 1)
}

/// The content of `<<EOF ... EOF` (each line with its newline, as HCL1 keeps it); `<<-EOF`
/// drops the indentation the lines share. None when the text is not a heredoc.
fn heredoc(raw: &str) -> Option<String> {
    let rest = raw.strip_prefix("<<")?;
    let (indented, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (marker, body) = rest.split_once('\n')?;
    let marker = marker.trim();
    let mut lines: Vec<&str> = body.split_inclusive('\n').collect();
    let end = lines.iter().rposition(|l| l.trim() == marker)?;
    lines.truncate(end);
    if !indented {
        return Some(lines.concat());
    }
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches([' ', '\t']).len())
        .min()
        .unwrap_or(0);
    Some(
        lines
            .iter()
            .map(|l| {
                l.get(indent..)
                    .unwrap_or_else(|| l.trim_start_matches([' ', '\t']))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_of(text: &str) -> Result<Value, JobspecError> {
        let src = Source::new("t.hcl", text);
        let body = hcl_edit::parser::parse_body(text).expect("valid HCL");
        let attr = body.attributes().next().expect("one attribute");
        read(&src, &attr.value)
    }

    #[test]
    fn strings_keep_interpolations_verbatim_and_apply_escapes_outside_them() {
        assert_eq!(
            value_of("x = \"a\\tb ${attr.kernel.name} ${env[\"HOME\"]} \\\"q\\\"\"\n").ok(),
            Some(Value::from(
                "a\tb ${attr.kernel.name} ${env[\"HOME\"]} \"q\""
            ))
        );
        assert_eq!(
            value_of("x = \"${var.x}-${lookup(meta, \"k\", \"d\")}\"\n").ok(),
            Some(Value::from("${var.x}-${lookup(meta, \"k\", \"d\")}"))
        );
        assert_eq!(value_of("x = \"\\u00e9\"\n").ok(), Some(Value::from("é")));
    }

    #[test]
    fn heredocs_keep_their_lines_and_the_dash_form_dedents() {
        assert_eq!(
            value_of("x = <<EOF\n  a ${NOMAD_TASK_DIR}\nb\nEOF\n").ok(),
            Some(Value::from("  a ${NOMAD_TASK_DIR}\nb\n"))
        );
        assert_eq!(
            value_of("x = <<-EOF\n    a\n      b\n    EOF\n").ok(),
            Some(Value::from("a\n  b\n"))
        );
    }

    #[test]
    fn literals_lists_objects_and_negative_numbers() {
        let v = value_of("x = [1, -2, 1.5, true, { a = \"b\", \"c.d\" = [] }]\n").expect("reads");
        assert_eq!(
            serde_json::to_value(&v).expect("json"),
            serde_json::json!([1, -2, 1.5, true, {"a": "b", "c.d": []}])
        );
    }

    #[test]
    fn expressions_are_refused_with_their_position() {
        for (text, what) in [
            ("x = var.a\n", "variable reference"),
            ("x = upper(\"a\")\n", "function call"),
            ("x = 1 + 2\n", "operator"),
            ("x = true ? 1 : 2\n", "conditional"),
            ("x = [for a in b : a]\n", "for expression"),
        ] {
            let e = value_of(text).expect_err(text);
            assert_eq!(e.pos.line, 1, "{text}");
            assert_eq!(e.pos.column, 5, "{text}");
            assert!(e.to_string().contains(what), "{text}: {e}");
            assert!(e.to_string().contains("HCL1"), "{text}: {e}");
        }
    }
}
