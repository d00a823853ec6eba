//! The data-free helper functions of consul-template that Nomad templates use: strings,
//! JSON, numbers, base64, `timestamp`, and a few `sprig_*` basics. Argument order is
//! consul-template's: the value being worked on comes last, so it can be piped in
//! (`{{ .list | join "," }}`, `{{ 10 | subtract 3 }}`).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use gtmpl::{Func, FuncError, Value};

use super::{to_json, to_map_value};

/// Every function of this module, by the name templates call it.
pub const ALL: &[(&str, Func)] = &[
    ("toJSON", to_json_fn as Func),
    ("toJSONPretty", to_json_pretty),
    ("parseJSON", parse_json),
    ("toUpper", to_upper),
    ("toLower", to_lower),
    ("toTitle", to_title),
    ("trimSpace", trim_space),
    ("trim", trim),
    ("trimPrefix", trim_prefix),
    ("trimSuffix", trim_suffix),
    ("split", split),
    ("join", join),
    ("replaceAll", replace_all),
    ("regexMatch", regex_match),
    ("regexReplaceAll", regex_replace_all),
    ("contains", contains),
    ("in", in_fn),
    ("parseInt", parse_int),
    ("parseFloat", parse_float),
    ("parseBool", parse_bool),
    ("base64Encode", base64_encode),
    ("base64Decode", base64_decode),
    ("base64URLEncode", base64_url_encode),
    ("base64URLDecode", base64_url_decode),
    ("add", add),
    ("subtract", subtract),
    ("multiply", multiply),
    ("divide", divide),
    ("modulo", modulo),
    ("minimum", minimum),
    ("maximum", maximum),
    ("indent", indent),
    ("timestamp", timestamp),
    ("sprig_default", sprig_default),
    ("sprig_upper", to_upper),
    ("sprig_lower", to_lower),
    ("sprig_trim", trim_space),
    ("sprig_quote", sprig_quote),
    ("sprig_squote", sprig_squote),
    ("sprig_replace", replace_all),
    ("sprig_contains", sprig_contains),
    ("sprig_hasPrefix", sprig_has_prefix),
    ("sprig_hasSuffix", sprig_has_suffix),
    ("sprig_repeat", sprig_repeat),
    ("sprig_b64enc", base64_encode),
    ("sprig_b64dec", base64_decode),
];

fn err(msg: impl Into<String>) -> FuncError {
    FuncError::Generic(msg.into())
}

fn exactly(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(FuncError::ExactlyXArgs(name.to_string(), n))
    }
}

/// Argument `i` as text: strings as they are, numbers and booleans as Go prints them.
pub fn text(name: &str, args: &[Value], i: usize) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
        Some(other) => Err(err(format!(
            "{name}: argument {} must be a string, got {other}",
            i + 1
        ))),
        None => Err(FuncError::AtLeastXArgs(name.to_string(), i + 1)),
    }
}

fn string_fn(name: &str, args: &[Value], f: impl Fn(&str) -> String) -> Result<Value, FuncError> {
    exactly(name, args, 1)?;
    Ok(Value::String(f(&text(name, args, 0)?)))
}

fn to_json_fn(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toJSON", args, 1)?;
    serde_json::to_string(&to_json(&args[0]))
        .map(Value::String)
        .map_err(|e| err(format!("toJSON: {e}")))
}

fn to_json_pretty(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toJSONPretty", args, 1)?;
    serde_json::to_string_pretty(&to_json(&args[0]))
        .map(Value::String)
        .map_err(|e| err(format!("toJSONPretty: {e}")))
}

fn parse_json(args: &[Value]) -> Result<Value, FuncError> {
    exactly("parseJSON", args, 1)?;
    let s = text("parseJSON", args, 0)?;
    if s.trim().is_empty() {
        return Ok(Value::Map(Default::default()));
    }
    serde_json::from_str::<serde_json::Value>(&s)
        .map(|j| to_map_value(&j))
        .map_err(|e| err(format!("parseJSON: {e}")))
}

fn to_upper(args: &[Value]) -> Result<Value, FuncError> {
    string_fn("toUpper", args, str::to_uppercase)
}

fn to_lower(args: &[Value]) -> Result<Value, FuncError> {
    string_fn("toLower", args, str::to_lowercase)
}

fn to_title(args: &[Value]) -> Result<Value, FuncError> {
    string_fn("toTitle", args, |s| {
        let mut out = String::with_capacity(s.len());
        let mut start = true;
        for c in s.chars() {
            if start && c.is_alphabetic() {
                out.extend(c.to_uppercase());
            } else {
                out.push(c);
            }
            start = !c.is_alphanumeric();
        }
        out
    })
}

fn trim_space(args: &[Value]) -> Result<Value, FuncError> {
    string_fn("trimSpace", args, |s| s.trim().to_string())
}

fn trim(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trim", args, 2)?;
    let cutset: Vec<char> = text("trim", args, 0)?.chars().collect();
    let s = text("trim", args, 1)?;
    Ok(Value::String(s.trim_matches(&cutset[..]).to_string()))
}

fn trim_prefix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimPrefix", args, 2)?;
    let (p, s) = (text("trimPrefix", args, 0)?, text("trimPrefix", args, 1)?);
    Ok(Value::String(s.strip_prefix(&p).unwrap_or(&s).to_string()))
}

fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimSuffix", args, 2)?;
    let (p, s) = (text("trimSuffix", args, 0)?, text("trimSuffix", args, 1)?);
    Ok(Value::String(s.strip_suffix(&p).unwrap_or(&s).to_string()))
}

fn split(args: &[Value]) -> Result<Value, FuncError> {
    exactly("split", args, 2)?;
    let (sep, s) = (text("split", args, 0)?, text("split", args, 1)?);
    let s = s.trim();
    if s.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    Ok(Value::Array(
        s.split(sep.as_str())
            .map(|p| Value::String(p.to_string()))
            .collect(),
    ))
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    exactly("join", args, 2)?;
    let sep = text("join", args, 0)?;
    let Value::Array(items) = &args[1] else {
        return Err(err(format!(
            "join: argument 2 must be a list, got {}",
            args[1]
        )));
    };
    let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
    Ok(Value::String(parts.join(&sep)))
}

fn replace_all(args: &[Value]) -> Result<Value, FuncError> {
    exactly("replaceAll", args, 3)?;
    let (from, to, s) = (
        text("replaceAll", args, 0)?,
        text("replaceAll", args, 1)?,
        text("replaceAll", args, 2)?,
    );
    Ok(Value::String(s.replace(&from, &to)))
}

fn regex(name: &str, re: &str) -> Result<regex::Regex, FuncError> {
    regex::Regex::new(re).map_err(|e| err(format!("{name}: {e}")))
}

fn regex_match(args: &[Value]) -> Result<Value, FuncError> {
    exactly("regexMatch", args, 2)?;
    let re = regex("regexMatch", &text("regexMatch", args, 0)?)?;
    Ok(Value::Bool(re.is_match(&text("regexMatch", args, 1)?)))
}

fn regex_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    exactly("regexReplaceAll", args, 3)?;
    let re = regex("regexReplaceAll", &text("regexReplaceAll", args, 0)?)?;
    let to = text("regexReplaceAll", args, 1)?;
    let s = text("regexReplaceAll", args, 2)?;
    Ok(Value::String(re.replace_all(&s, to.as_str()).into_owned()))
}

/// Whether `list` (a list, or a string searched for a substring) holds `v`.
fn holds(name: &str, list: &Value, v: &Value) -> Result<bool, FuncError> {
    match list {
        Value::Array(items) => Ok(items
            .iter()
            .any(|i| i == v || i.to_string() == v.to_string())),
        Value::String(s) => Ok(s.contains(&v.to_string())),
        Value::Map(m) | Value::Object(m) => Ok(m.contains_key(&v.to_string())),
        Value::NoValue | Value::Nil => Ok(false),
        other => Err(err(format!("{name}: cannot search {other}"))),
    }
}

fn contains(args: &[Value]) -> Result<Value, FuncError> {
    exactly("contains", args, 2)?;
    holds("contains", &args[1], &args[0]).map(Value::Bool)
}

fn in_fn(args: &[Value]) -> Result<Value, FuncError> {
    exactly("in", args, 2)?;
    holds("in", &args[0], &args[1]).map(Value::Bool)
}

fn parse_int(args: &[Value]) -> Result<Value, FuncError> {
    exactly("parseInt", args, 1)?;
    let s = text("parseInt", args, 0)?;
    let s = s.trim();
    if s.is_empty() {
        return Ok(Value::from(0i64));
    }
    s.parse::<i64>()
        .map(Value::from)
        .map_err(|e| err(format!("parseInt: {s:?}: {e}")))
}

fn parse_float(args: &[Value]) -> Result<Value, FuncError> {
    exactly("parseFloat", args, 1)?;
    let s = text("parseFloat", args, 0)?;
    let s = s.trim();
    if s.is_empty() {
        return Ok(Value::from(0.0f64));
    }
    s.parse::<f64>()
        .map(Value::from)
        .map_err(|e| err(format!("parseFloat: {s:?}: {e}")))
}

fn parse_bool(args: &[Value]) -> Result<Value, FuncError> {
    exactly("parseBool", args, 1)?;
    let s = text("parseBool", args, 0)?;
    match s.trim() {
        "" => Ok(Value::Bool(false)),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
        other => Err(err(format!("parseBool: invalid syntax {other:?}"))),
    }
}

fn base64_encode(args: &[Value]) -> Result<Value, FuncError> {
    string_fn("base64Encode", args, |s| STANDARD.encode(s))
}

fn base64_url_encode(args: &[Value]) -> Result<Value, FuncError> {
    string_fn("base64URLEncode", args, |s| URL_SAFE.encode(s))
}

fn decode(name: &str, args: &[Value], engine: &impl base64::Engine) -> Result<Value, FuncError> {
    exactly(name, args, 1)?;
    let bytes = engine
        .decode(text(name, args, 0)?.trim())
        .map_err(|e| err(format!("{name}: {e}")))?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| err(format!("{name}: the decoded bytes are not UTF-8 text")))
}

fn base64_decode(args: &[Value]) -> Result<Value, FuncError> {
    decode("base64Decode", args, &STANDARD)
}

fn base64_url_decode(args: &[Value]) -> Result<Value, FuncError> {
    decode("base64URLDecode", args, &URL_SAFE)
}

/// A number argument: integers stay integers so `add 1 2` prints `3`, not `3.0`.
enum Num {
    Int(i64),
    Float(f64),
}

fn num(name: &str, v: &Value) -> Result<Num, FuncError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(Num::Int)
            .or_else(|| n.as_f64().map(Num::Float))
            .ok_or_else(|| err(format!("{name}: {v} is out of range"))),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(Num::Int)
            .or_else(|_| s.trim().parse::<f64>().map(Num::Float))
            .map_err(|_| err(format!("{name}: {s:?} is not a number"))),
        other => Err(err(format!("{name}: {other} is not a number"))),
    }
}

/// `f(a, b)` where the piped value `a` is the last argument, as consul-template's math
/// functions take them.
fn math(
    name: &str,
    args: &[Value],
    int: impl Fn(i64, i64) -> Option<i64>,
    float: impl Fn(f64, f64) -> f64,
) -> Result<Value, FuncError> {
    exactly(name, args, 2)?;
    let (b, a) = (num(name, &args[0])?, num(name, &args[1])?);
    match (a, b) {
        (Num::Int(a), Num::Int(b)) => int(a, b)
            .map(Value::from)
            .ok_or_else(|| err(format!("{name}: integer overflow or division by zero"))),
        (a, b) => {
            let f = |n: Num| match n {
                Num::Int(i) => i as f64,
                Num::Float(f) => f,
            };
            Ok(Value::from(float(f(a), f(b))))
        }
    }
}

fn add(args: &[Value]) -> Result<Value, FuncError> {
    math("add", args, i64::checked_add, |a, b| a + b)
}

fn subtract(args: &[Value]) -> Result<Value, FuncError> {
    math("subtract", args, i64::checked_sub, |a, b| a - b)
}

fn multiply(args: &[Value]) -> Result<Value, FuncError> {
    math("multiply", args, i64::checked_mul, |a, b| a * b)
}

fn divide(args: &[Value]) -> Result<Value, FuncError> {
    math("divide", args, i64::checked_div, |a, b| a / b)
}

fn modulo(args: &[Value]) -> Result<Value, FuncError> {
    math("modulo", args, i64::checked_rem, |a, b| a % b)
}

fn minimum(args: &[Value]) -> Result<Value, FuncError> {
    math("minimum", args, |a, b| Some(a.min(b)), f64::min)
}

fn maximum(args: &[Value]) -> Result<Value, FuncError> {
    math("maximum", args, |a, b| Some(a.max(b)), f64::max)
}

fn indent(args: &[Value]) -> Result<Value, FuncError> {
    exactly("indent", args, 2)?;
    let n = match num("indent", &args[0])? {
        Num::Int(n) if (0..=1024).contains(&n) => n as usize,
        _ => return Err(err("indent: the width must be between 0 and 1024")),
    };
    let pad = " ".repeat(n);
    let s = text("indent", args, 1)?;
    let lines: Vec<String> = s.split('\n').map(|l| format!("{pad}{l}")).collect();
    Ok(Value::String(lines.join("\n")))
}

/// The current time: RFC 3339 in UTC, or in a Go layout (`"2006-01-02"`), or `"unix"` for
/// seconds since the epoch.
fn timestamp(args: &[Value]) -> Result<Value, FuncError> {
    let now = chrono::Utc::now();
    match args {
        [] => Ok(Value::String(
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )),
        [_] => {
            let layout = text("timestamp", args, 0)?;
            if layout == "unix" {
                return Ok(Value::String(now.timestamp().to_string()));
            }
            Ok(Value::String(now.format(&go_layout(&layout)).to_string()))
        }
        _ => Err(err("timestamp takes at most 1 argument")),
    }
}

/// A Go time layout as a chrono format string (the time is always UTC).
pub fn go_layout(layout: &str) -> String {
    const TOKENS: &[(&str, &str)] = &[
        ("January", "%B"),
        ("Monday", "%A"),
        (".000000000", "%.9f"),
        (".000000", "%.6f"),
        (".000", "%.3f"),
        ("Z07:00", "Z"),
        ("-07:00", "%:z"),
        ("Z0700", "Z"),
        ("-0700", "%z"),
        ("2006", "%Y"),
        ("Jan", "%b"),
        ("Mon", "%a"),
        ("MST", "UTC"),
        ("_2", "%e"),
        ("01", "%m"),
        ("02", "%d"),
        ("03", "%I"),
        ("04", "%M"),
        ("05", "%S"),
        ("06", "%y"),
        ("15", "%H"),
        ("PM", "%p"),
        ("pm", "%P"),
        ("1", "%-m"),
        ("2", "%-d"),
        ("3", "%-I"),
        ("4", "%-M"),
        ("5", "%-S"),
    ];
    let mut out = String::with_capacity(layout.len() * 2);
    let mut rest = layout;
    'outer: while let Some(c) = rest.chars().next() {
        for (go, fmt) in TOKENS {
            if let Some(after) = rest.strip_prefix(go) {
                out.push_str(fmt);
                rest = after;
                continue 'outer;
            }
        }
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::NoValue | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Map(m) | Value::Object(m) => m.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0) || n.as_i64() == Some(0),
        Value::Function(_) => false,
    }
}

fn sprig_default(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [d] => Ok(d.clone()),
        [d, given] => Ok(if is_empty(given) {
            d.clone()
        } else {
            given.clone()
        }),
        _ => Err(FuncError::AtLeastXArgs("sprig_default".into(), 1)),
    }
}

fn sprig_quote(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a, Value::NoValue | Value::Nil))
        .map(|a| format!("{:?}", a.to_string()))
        .collect();
    Ok(Value::String(parts.join(" ")))
}

fn sprig_squote(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a, Value::NoValue | Value::Nil))
        .map(|a| format!("'{a}'"))
        .collect();
    Ok(Value::String(parts.join(" ")))
}

fn sprig_contains(args: &[Value]) -> Result<Value, FuncError> {
    exactly("sprig_contains", args, 2)?;
    let (sub, s) = (
        text("sprig_contains", args, 0)?,
        text("sprig_contains", args, 1)?,
    );
    Ok(Value::Bool(s.contains(&sub)))
}

fn sprig_has_prefix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("sprig_hasPrefix", args, 2)?;
    let (p, s) = (
        text("sprig_hasPrefix", args, 0)?,
        text("sprig_hasPrefix", args, 1)?,
    );
    Ok(Value::Bool(s.starts_with(&p)))
}

fn sprig_has_suffix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("sprig_hasSuffix", args, 2)?;
    let (p, s) = (
        text("sprig_hasSuffix", args, 0)?,
        text("sprig_hasSuffix", args, 1)?,
    );
    Ok(Value::Bool(s.ends_with(&p)))
}

fn sprig_repeat(args: &[Value]) -> Result<Value, FuncError> {
    exactly("sprig_repeat", args, 2)?;
    let n = match num("sprig_repeat", &args[0])? {
        Num::Int(n) if (0..=10_000).contains(&n) => n as usize,
        _ => return Err(err("sprig_repeat: the count must be between 0 and 10000")),
    };
    Ok(Value::String(text("sprig_repeat", args, 1)?.repeat(n)))
}

#[cfg(test)]
mod tests {
    use super::super::{Options, render_with};
    use super::*;

    fn render(text: &str) -> String {
        let opts = Options {
            left_delim: "",
            right_delim: "",
            funcs: ALL,
        };
        render_with(text, Value::Nil, &opts).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn strings() {
        assert_eq!(render(r#"{{ "a,b,c" | split "," | join ";" }}"#), "a;b;c");
        assert_eq!(render(r#"{{ "" | split "," | len }}"#), "0");
        assert_eq!(render(r#"{{ "hello world" | toUpper }}"#), "HELLO WORLD");
        assert_eq!(render(r#"{{ "hello world" | toTitle }}"#), "Hello World");
        assert_eq!(render(r#"{{ "a-b-c" | replaceAll "-" "+" }}"#), "a+b+c");
        assert_eq!(render(r#"{{ "  x  " | trimSpace }}"#), "x");
        assert_eq!(render(r#"{{ "v1.2" | trimPrefix "v" }}"#), "1.2");
        assert_eq!(render(r#"{{ "xxhixx" | trim "x" }}"#), "hi");
        assert_eq!(
            render(r#"{{ "ab12" | regexReplaceAll "[0-9]+" "N" }}"#),
            "abN"
        );
        assert_eq!(render(r#"{{ "ab12" | regexMatch "^ab" }}"#), "true");
        assert_eq!(render(r#"{{ "a\nb" | indent 2 }}"#), "  a\n  b");
        assert_eq!(render(r#"{{ "hi" | base64Encode | base64Decode }}"#), "hi");
        assert_eq!(
            render(r#"{{ if "a,b" | split "," | contains "b" }}y{{ end }}"#),
            "y"
        );
    }

    #[test]
    fn json_round_trips_with_sorted_keys() {
        assert_eq!(
            render(
                r#"{{ with parseJSON "{\"b\":1,\"a\":[true,\"x\"]}" }}{{ .a | toJSON }} {{ . | toJSON }} {{ .missing }}{{ end }}"#
            ),
            r#"[true,"x"] {"a":[true,"x"],"b":1} <no value>"#
        );
        assert!(render(r#"{{ parseJSON "{\"a\":1}" | toJSONPretty }}"#).contains("\n  \"a\": 1\n"));
    }

    #[test]
    fn numbers_take_the_piped_value_last() {
        assert_eq!(render("{{ 10 | subtract 3 }}"), "7");
        assert_eq!(render("{{ 10 | divide 4 }}"), "2");
        assert_eq!(render("{{ 2 | add 1.5 }}"), "3.5");
        assert_eq!(render(r#"{{ "42" | parseInt | multiply 2 }}"#), "84");
        assert_eq!(render("{{ 3 | maximum 7 }}"), "7");
        let opts = Options {
            left_delim: "",
            right_delim: "",
            funcs: ALL,
        };
        let e = render_with("{{ 1 | divide 0 }}", Value::Nil, &opts).unwrap_err();
        assert!(e.to_string().contains("division by zero"), "{e}");
    }

    #[test]
    fn timestamps_follow_go_layouts() {
        assert_eq!(go_layout("2006-01-02T15:04:05Z07:00"), "%Y-%m-%dT%H:%M:%SZ");
        assert_eq!(go_layout("Jan _2 3:04PM"), "%b %e %-I:%M%p");
        assert_eq!(go_layout("x%"), "x%%");
        let now = render("{{ timestamp }}");
        assert!(chrono::DateTime::parse_from_rfc3339(&now).is_ok(), "{now}");
        let day = render(r#"{{ timestamp "2006-01-02" }}"#);
        assert_eq!(day, chrono::Utc::now().format("%Y-%m-%d").to_string());
        assert!(render(r#"{{ timestamp "unix" }}"#).parse::<i64>().is_ok());
    }

    #[test]
    fn sprig_basics() {
        assert_eq!(render(r#"{{ "" | sprig_default "d" }}"#), "d");
        assert_eq!(render(r#"{{ "x" | sprig_default "d" }}"#), "x");
        assert_eq!(render(r#"{{ "x" | sprig_quote }}"#), "\"x\"");
        assert_eq!(render(r#"{{ "ab" | sprig_repeat 2 }}"#), "abab");
    }
}
