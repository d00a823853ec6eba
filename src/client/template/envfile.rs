//! Reading a rendered `env = true` template: `KEY=value` lines (as Nomad's envparse reads
//! them) that join the task's environment.

use std::collections::BTreeMap;

/// The variables `text` sets. Blank lines and `#` comments are skipped, `export ` is
/// allowed, values may be double-quoted (with `\n`, `\"`, `\\` escapes) or single-quoted
/// (taken literally); an unquoted value ends at a ` #` comment and is trimmed.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected KEY=value", n + 1))?;
        let key = key.trim();
        let valid = key
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if key.is_empty() || !valid {
            return Err(format!("line {}: invalid variable name {key:?}", n + 1));
        }
        out.insert(key.to_string(), value_of(value.trim(), n + 1)?);
    }
    Ok(out)
}

fn value_of(v: &str, line: usize) -> Result<String, String> {
    if let Some(inner) = v.strip_prefix('\'') {
        let end = inner
            .find('\'')
            .ok_or_else(|| format!("line {line}: unterminated single quote"))?;
        return Ok(inner[..end].to_string());
    }
    if let Some(inner) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(out),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(other) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err(format!("line {line}: unterminated double quote"));
    }
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    Ok(v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dotenv_lines() {
        let env = parse(
            "# comment\n\nA=1\nexport B = two words \nC=\"x\\ny \\\"q\\\"\"\nD='$raw # kept'\nE=v # note\nF=\n",
        )
        .unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "x\ny \"q\"");
        assert_eq!(env["D"], "$raw # kept");
        assert_eq!(env["E"], "v");
        assert_eq!(env["F"], "");
    }

    #[test]
    fn bad_lines_name_their_line() {
        assert!(parse("A=1\nnonsense\n").unwrap_err().contains("line 2"));
        assert!(parse("1A=x").unwrap_err().contains("invalid variable name"));
        assert!(parse("A=\"open").unwrap_err().contains("unterminated"));
    }
}
