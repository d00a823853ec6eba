//! Recognising a job file written in HCL1, the syntax Nomad read before 1.0 (and dropped in
//! 1.9). yurt parses HCL2 only, so an HCL1 template can be listed (`hclv1: true`) but not
//! started.
//!
//! The rule, applied only to text the HCL2 parser refused: the file uses one of the forms
//! Nomad's HCL2 migration notes list as valid in HCL1 and invalid in HCL2 —
//! - a quoted attribute name directly in a block (`meta { "a.b" = "x" }`),
//! - a block nested inside an assignment (`mounts = [{ tmpfs_options { size = 1 } }]`),
//! - a decimal without its leading zero (`weight = .5`).
//!
//! A file that fails to parse for any other reason is just a template with an error.

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
    /// An operator or opening bracket after which a value starts (`=`, `:`, `,`, `[`, `(`).
    ValueStart,
    /// Anything else.
    Other,
}

/// The HCL1-only form `text` uses, if any (a short description for the template's error).
pub fn hcl1_form(text: &str) -> Option<&'static str> {
    let chars: Vec<char> = text.chars().collect();
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
                    return Some("a quoted attribute name in a block");
                }
                i += 1;
                prev = Prev::ValueStart;
            }
            '{' => {
                let scope = match prev {
                    Prev::Ident | Prev::Str | Prev::LineStartStr => {
                        if !in_block(&scopes) {
                            return Some("a block inside an assignment");
                        }
                        Scope::Block
                    }
                    Prev::LineStart if in_block(&scopes) => Scope::Block,
                    _ => Scope::Object,
                };
                scopes.push(scope);
                prev = if scope == Scope::Block {
                    Prev::LineStart
                } else {
                    Prev::ValueStart
                };
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
                return Some("a decimal without its leading zero");
            }
            c if c.is_alphabetic() || c == '_' => {
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.'))
                {
                    i += 1;
                }
                // `a = b {` cannot be HCL of either version; an identifier after `=` is a
                // value, so a `{` after it is an object (`for` bodies and the like).
                prev = if prev == Prev::ValueStart {
                    Prev::Other
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
        assert_eq!(hcl1_form(text), Some("a quoted attribute name in a block"));
    }

    #[test]
    fn blocks_inside_assignments_are_hcl1() {
        let text = "job \"a\" {\n  config {\n    mounts = [\n      {\n        type = \"tmpfs\"\n        tmpfs_options {\n          size = 1\n        }\n      }\n    ]\n  }\n}\n";
        assert_eq!(hcl1_form(text), Some("a block inside an assignment"));
    }

    #[test]
    fn decimals_without_a_leading_zero_are_hcl1() {
        assert_eq!(
            hcl1_form("job \"a\" {\n  x = .5\n}\n"),
            Some("a decimal without its leading zero")
        );
        assert_eq!(
            hcl1_form("job \"a\" {\n  x = [1, -.5]\n}\n"),
            Some("a decimal without its leading zero")
        );
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
