//! Recognising the HCL1 forms hcl-rs cannot read. yurt parses HCL1 job files on hcl-rs's
//! HCL2 syntax tree (see `literal`), which covers most HCL1 files; a few forms are HCL1 only.
//! When hcl-rs refuses a file, this names the form it uses and where, so the error says what
//! to change instead of showing an HCL2 syntax error.
//!
//! The forms (those Nomad's HCL2 migration notes list as valid in HCL1 and invalid in HCL2,
//! plus two of HCL1's own lexical forms):
//! - a quoted attribute name directly in a block (`meta { "a.b" = "x" }`),
//! - a dotted attribute name (`meta { a.b = "x" }`),
//! - a block nested inside an assignment (`mounts = [{ tmpfs_options { size = 1 } }]`),
//! - a decimal without its leading zero (`weight = .5`),
//! - a hexadecimal number (`perms = 0x1ff`).

/// An HCL1-only form found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hcl1Form {
    /// What the form is, for an error message ("a quoted attribute name in a block").
    pub what: &'static str,
    /// The byte offset where it starts.
    pub offset: usize,
}

/// What a `{` opened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// A block body: attributes and nested blocks.
    Block,
    /// An object value (`= { ... }`) or a `for` expression.
    Object,
    /// `[ ... ]` or `( ... )`.
    List,
}

/// The last significant token seen, as far as the rules need it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    /// Start of file, or a newline inside a block body.
    LineStart,
    /// An identifier (a block type or an attribute name).
    Ident,
    /// A quoted string.
    Str,
    /// A quoted string that began a line in a block body (an attribute name in HCL1).
    LineStartStr,
    /// An identifier with a dot in it that began a line in a block body.
    LineStartDotted,
    /// An operator or opening bracket after which a value starts (`=`, `:`, `,`, `[`, `(`).
    ValueStart,
    /// Anything else.
    Other,
}

/// The first HCL1-only form `text` uses, if any.
pub fn hcl1_form(text: &str) -> Option<Hcl1Form> {
    let chars: Vec<char> = text.chars().collect();
    let found = |what: &'static str, at: usize| {
        Some(Hcl1Form {
            what,
            offset: chars[..at.min(chars.len())]
                .iter()
                .map(|c| c.len_utf8())
                .sum(),
        })
    };
    let mut start = 0;
    let mut scopes: Vec<Scope> = Vec::new();
    let mut prev = Prev::LineStart;
    let mut i = 0;
    let in_block = |scopes: &[Scope]| scopes.last().is_none_or(|s| *s == Scope::Block);
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                if in_block(&scopes) {
                    prev = Prev::LineStart;
                }
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '#' => i = skip_line(&chars, i),
            '/' if chars.get(i + 1) == Some(&'/') => i = skip_line(&chars, i),
            '/' if chars.get(i + 1) == Some(&'*') => i = skip_block_comment(&chars, i + 2),
            '<' if chars.get(i + 1) == Some(&'<') => match skip_heredoc(&chars, i + 2) {
                Some(end) => {
                    i = end;
                    prev = Prev::Other;
                }
                None => {
                    i += 2;
                    prev = Prev::Other;
                }
            },
            '"' => {
                start = i;
                i = skip_string(&chars, i + 1);
                prev = if prev == Prev::LineStart && in_block(&scopes) {
                    Prev::LineStartStr
                } else {
                    Prev::Str
                };
            }
            '=' if chars.get(i + 1) == Some(&'=') || chars.get(i + 1) == Some(&'>') => {
                i += 2;
                prev = Prev::ValueStart;
            }
            '=' => {
                if prev == Prev::LineStartStr {
                    return found("a quoted attribute name in a block", start);
                }
                if prev == Prev::LineStartDotted {
                    return found("a dotted attribute name", start);
                }
                i += 1;
                prev = Prev::ValueStart;
            }
            '{' => {
                let scope = match prev {
                    Prev::Ident | Prev::Str | Prev::LineStartStr | Prev::LineStartDotted => {
                        if !in_block(&scopes) {
                            return found("a block inside an assignment", start);
                        }
                        Scope::Block
                    }
                    Prev::LineStart if in_block(&scopes) => Scope::Block,
                    _ => Scope::Object,
                };
                scopes.push(scope);
                // Both a block body and an object start with a key (a block inside an
                // object is found by the key before its `{`).
                prev = Prev::LineStart;
                i += 1;
            }
            '[' | '(' => {
                scopes.push(Scope::List);
                prev = Prev::ValueStart;
                i += 1;
            }
            '}' | ']' | ')' => {
                scopes.pop();
                prev = Prev::Other;
                i += 1;
            }
            ',' | ':' | '?' => {
                prev = Prev::ValueStart;
                i += 1;
            }
            '-' if prev == Prev::ValueStart => i += 1,
            '.' if prev == Prev::ValueStart
                && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) =>
            {
                return found("a decimal without its leading zero", i);
            }
            '0' if prev == Prev::ValueStart
                && matches!(chars.get(i + 1), Some('x' | 'X'))
                && chars.get(i + 2).is_some_and(char::is_ascii_hexdigit) =>
            {
                return found("a hexadecimal number", i);
            }
            c if c.is_alphabetic() || c == '_' => {
                start = i;
                let line_start = prev == Prev::LineStart && in_block(&scopes);
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.'))
                {
                    i += 1;
                }
                // `a = b {` cannot be HCL of either version; an identifier after `=` is a
                // value, so a `{` after it is an object (`for` bodies and the like).
                let dotted = chars[start..i].contains(&'.');
                prev = if prev == Prev::ValueStart {
                    Prev::Other
                } else if line_start && dotted {
                    Prev::LineStartDotted
                } else {
                    Prev::Ident
                };
            }
            _ => {
                prev = Prev::Other;
                i += 1;
            }
        }
    }
    None
}

fn skip_line(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '\n' {
        i += 1;
    }
    i
}

fn skip_block_comment(chars: &[char], mut i: usize) -> usize {
    while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
        i += 1;
    }
    (i + 2).min(chars.len())
}

/// Past the closing quote of a string that opened before `i`, template interpolations
/// (which may hold strings of their own) included.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '$' | '%' if chars.get(i + 1) == Some(&'{') => {
                depth += 1;
                i += 2;
            }
            '}' if depth > 0 => {
                depth -= 1;
                i += 1;
            }
            '"' if depth > 0 => i = skip_string(chars, i + 1),
            '"' => return i + 1,
            '\n' if depth == 0 => return i,
            _ => i += 1,
        }
    }
    i
}

/// Past the closing marker line of a heredoc whose `<<` ended before `i`; None when `i`
/// does not start a heredoc marker.
fn skip_heredoc(chars: &[char], mut i: usize) -> Option<usize> {
    if chars.get(i) == Some(&'-') {
        i += 1;
    }
    let start = i;
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    if i == start {
        return None;
    }
    let marker: String = chars[start..i].iter().collect();
    i = skip_line(chars, i);
    while i < chars.len() {
        let line_start = i + 1;
        let end = skip_line(chars, line_start);
        let line: String = chars[line_start.min(chars.len())..end].iter().collect();
        if line.trim() == marker {
            return Some(end);
        }
        i = end;
    }
    Some(chars.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_attribute_names_in_blocks_are_hcl1() {
        let text = "job \"a\" {\n  meta {\n    \"team.name\" = \"x\"\n  }\n}\n";
        assert_eq!(
            hcl1_form(text),
            Some(Hcl1Form {
                what: "a quoted attribute name in a block",
                offset: text.find("\"team").expect("in text"),
            })
        );
    }

    #[test]
    fn blocks_inside_assignments_are_hcl1() {
        let text = "job \"a\" {\n  config {\n    mounts = [\n      {\n        type = \"tmpfs\"\n        tmpfs_options {\n          size = 1\n        }\n      }\n    ]\n  }\n}\n";
        assert_eq!(
            hcl1_form(text).map(|f| (f.what, f.offset)),
            Some((
                "a block inside an assignment",
                text.find("tmpfs_options").expect("in text")
            ))
        );
    }

    #[test]
    fn a_block_first_in_an_object_is_hcl1() {
        let text = "job \"a\" {\n  config = {\n    port_map { http = 80 }\n  }\n}\n";
        assert_eq!(
            hcl1_form(text).map(|f| (f.what, f.offset)),
            Some((
                "a block inside an assignment",
                text.find("port_map").expect("in text")
            ))
        );
    }

    #[test]
    fn decimals_without_a_leading_zero_are_hcl1() {
        assert_eq!(
            hcl1_form("job \"a\" {\n  x = .5\n}\n").map(|f| (f.what, f.offset)),
            Some(("a decimal without its leading zero", 16))
        );
        assert_eq!(
            hcl1_form("job \"a\" {\n  x = [1, -.5]\n}\n").map(|f| f.what),
            Some("a decimal without its leading zero")
        );
    }

    #[test]
    fn dotted_names_and_hex_numbers_are_hcl1() {
        let text = "job \"é\" {\n  meta {\n    team.name = \"x\"\n  }\n}\n";
        assert_eq!(
            hcl1_form(text),
            Some(Hcl1Form {
                what: "a dotted attribute name",
                offset: text.find("team").expect("in text"),
            })
        );
        assert_eq!(
            hcl1_form("job \"a\" {\n  perms = 0x1ff\n}\n").map(|f| f.what),
            Some("a hexadecimal number")
        );
        // A dotted traversal as a value is HCL2.
        assert_eq!(hcl1_form("job \"a\" {\n  x = a.b\n  y = 0\n}\n"), None);
    }

    #[test]
    fn hcl2_forms_are_not_hcl1() {
        let text = r#"
# comment "quoted" = 1
variable "n" { default = 2 }
job "a" {
  meta = { "team.name" = "x" }
  env { A = "b" }
  group "g" {
    count = var.n
    weight = 0.5
    task "t" {
      config {
        args = ["-c", "echo ${NOMAD_ALLOC_ID} { x }"]
        mounts = [{ type = "tmpfs", tmpfs_options = { size = 1 } }]
        labels = { for k, v in local.x : k => v }
      }
      template {
        data = <<EOF
  "quoted" = 1
  block { }
EOF
      }
    }
  }
}
"#;
        assert_eq!(hcl1_form(text), None);
    }

    #[test]
    fn strings_and_comments_hide_their_contents() {
        assert_eq!(
            hcl1_form("job \"a\" {\n  x = \"= .5\" // \"k\" = 1\n}\n"),
            None
        );
        assert_eq!(hcl1_form("/* \"k\" = 1 */ job \"a\" {}\n"), None);
    }
}
