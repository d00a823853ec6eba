//! Custom action delimiters (`left_delim`/`right_delim`). The engine only knows `{{ }}`, so a
//! template written with other delimiters is rewritten to the standard ones before parsing:
//! each action keeps its text, and a literal `{{` in the plain text is turned into an action
//! that prints it, so it stays text.

use std::borrow::Cow;

const STD_LEFT: &str = "{{";
const STD_RIGHT: &str = "}}";

/// `text` with `left`/`right` actions rewritten to `{{ }}`; empty delimiters mean the
/// standard ones.
pub fn translate<'a>(text: &'a str, left: &str, right: &str) -> Result<Cow<'a, str>, String> {
    let left = if left.is_empty() { STD_LEFT } else { left };
    let right = if right.is_empty() { STD_RIGHT } else { right };
    if left == STD_LEFT && right == STD_RIGHT {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(start) = rest.find(left) {
        push_text(&mut out, &rest[..start]);
        let action = &rest[start + left.len()..];
        let end = action_end(action, right).ok_or_else(|| {
            let line = text[..text.len() - rest.len() + start]
                .matches('\n')
                .count()
                + 1;
            format!("unclosed action starting with {left:?} on line {line}")
        })?;
        out.push_str(STD_LEFT);
        out.push_str(&action[..end]);
        out.push_str(STD_RIGHT);
        rest = &action[end + right.len()..];
    }
    push_text(&mut out, rest);
    Ok(Cow::Owned(out))
}

/// Plain text, with any `{{` made into an action that prints it.
fn push_text(out: &mut String, text: &str) {
    out.push_str(&text.replace(STD_LEFT, "{{\"{{\"}}"));
}

/// Where `right` closes the action `action` starts, skipping over quoted strings, raw
/// strings, character constants and comments, which may contain the delimiter.
fn action_end(action: &str, right: &str) -> Option<usize> {
    let body = action.strip_prefix('-').unwrap_or(action);
    let body = body.trim_start();
    if body.starts_with("/*") {
        let offset = action.len() - body.len();
        let close = body.find("*/")? + 2;
        let after = &action[offset + close..];
        let ws = after.len() - after.trim_start_matches([' ', '\t', '\n', '\r', '-']).len();
        let at = offset + close + ws;
        return action[at..].starts_with(right).then_some(at);
    }
    let bytes = action.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if action[i..].starts_with(right) {
            return Some(i);
        }
        match bytes[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'`' => {
                i += 1 + action[i + 1..].find('`')?;
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_delimiters_are_left_alone() {
        assert!(matches!(
            translate("{{ .x }}", "", ""),
            Ok(Cow::Borrowed("{{ .x }}"))
        ));
        assert!(matches!(
            translate("{{ .x }}", "{{", "}}"),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn custom_delimiters_become_standard_and_braces_stay_text() {
        assert_eq!(
            translate("a [[ .x ]] b {{ y }}", "[[", "]]").unwrap(),
            "a {{ .x }} b {{\"{{\"}} y }}"
        );
        assert_eq!(translate("[[- .x -]]", "[[", "]]").unwrap(), "{{- .x -}}");
        // A delimiter inside a string or a comment does not close the action.
        assert_eq!(
            translate(r#"<% print "%>" %>"#, "<%", "%>").unwrap(),
            r#"{{ print "%>" }}"#
        );
        assert_eq!(
            translate("<%/* it's %> */%>x", "<%", "%>").unwrap(),
            "{{/* it's %> */}}x"
        );
        let err = translate("ok\n[[ .x", "[[", "]]").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
