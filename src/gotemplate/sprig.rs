//! The Sprig functions Nomad adds to `-t` templates (as `sprig_<name>`, the consul-template
//! spelling), for the ones people reach for in CLI output: string case and trimming,
//! joining and splitting, tests, defaults, quoting, JSON and arithmetic. Arguments follow
//! Sprig's order, which puts the piped value last (`{{ .Name | sprig_trunc 8 }}`).

use gtmpl::{Func, FuncError, Value};

/// The functions by name.
pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("sprig_upper", upper as Func),
        ("sprig_lower", lower as Func),
        ("sprig_title", title as Func),
        ("sprig_trim", trim as Func),
        ("sprig_trimPrefix", trim_prefix as Func),
        ("sprig_trimSuffix", trim_suffix as Func),
        ("sprig_trunc", trunc as Func),
        ("sprig_repeat", repeat as Func),
        ("sprig_replace", replace as Func),
        ("sprig_contains", contains as Func),
        ("sprig_hasPrefix", has_prefix as Func),
        ("sprig_hasSuffix", has_suffix as Func),
        ("sprig_join", join as Func),
        ("sprig_splitList", split_list as Func),
        ("sprig_quote", quote as Func),
        ("sprig_squote", squote as Func),
        ("sprig_default", default as Func),
        ("sprig_empty", empty as Func),
        ("sprig_toJson", to_json as Func),
        ("sprig_add", add as Func),
        ("sprig_sub", sub as Func),
    ]
}

fn arity(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(FuncError::ExactlyXArgs(name.to_string(), n))
    }
}

/// A value as text, as Go's `fmt.Sprint` prints the JSON-shaped values templates see.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::NoValue | Value::Nil => String::new(),
        other => other.to_string(),
    }
}

fn int(name: &str, v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| FuncError::Generic(format!("{name}: not an integer"))),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| FuncError::Generic(format!("{name}: {s:?} is not an integer"))),
        _ => Err(FuncError::Generic(format!("{name}: not an integer"))),
    }
}

fn string_fn(name: &str, args: &[Value], f: impl Fn(&str) -> String) -> Result<Value, FuncError> {
    arity(name, args, 1)?;
    Ok(Value::String(f(&text(&args[0]))))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    string_fn("sprig_upper", args, str::to_uppercase)
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    string_fn("sprig_lower", args, str::to_lowercase)
}

fn title(args: &[Value]) -> Result<Value, FuncError> {
    string_fn("sprig_title", args, |s| {
        let mut out = String::with_capacity(s.len());
        let mut start = true;
        for c in s.chars() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.push(c);
            }
            start = c.is_whitespace();
        }
        out
    })
}

fn trim(args: &[Value]) -> Result<Value, FuncError> {
    string_fn("sprig_trim", args, |s| s.trim().to_string())
}

fn trim_prefix(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_trimPrefix", args, 2)?;
    let (prefix, s) = (text(&args[0]), text(&args[1]));
    Ok(Value::String(
        s.strip_prefix(prefix.as_str()).unwrap_or(&s).to_string(),
    ))
}

fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_trimSuffix", args, 2)?;
    let (suffix, s) = (text(&args[0]), text(&args[1]));
    Ok(Value::String(
        s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_string(),
    ))
}

/// `trunc n s`: the first n characters (the last -n when n is negative).
fn trunc(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_trunc", args, 2)?;
    let n = int("sprig_trunc", &args[0])?;
    let chars: Vec<char> = text(&args[1]).chars().collect();
    let len = chars.len() as i64;
    let kept: String = if n >= 0 {
        chars[..n.min(len) as usize].iter().collect()
    } else {
        chars[(len + n).max(0) as usize..].iter().collect()
    };
    Ok(Value::String(kept))
}

fn repeat(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_repeat", args, 2)?;
    let n = int("sprig_repeat", &args[0])?;
    // Output for a terminal: a runaway count is an error, not an allocation.
    if !(0..=10_000).contains(&n) {
        return Err(FuncError::Generic(format!(
            "sprig_repeat: count {n} out of range"
        )));
    }
    Ok(Value::String(text(&args[1]).repeat(n as usize)))
}

fn replace(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_replace", args, 3)?;
    let (old, new, s) = (text(&args[0]), text(&args[1]), text(&args[2]));
    Ok(Value::String(s.replace(old.as_str(), &new)))
}

fn contains(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_contains", args, 2)?;
    Ok(Value::Bool(
        text(&args[1]).contains(text(&args[0]).as_str()),
    ))
}

fn has_prefix(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_hasPrefix", args, 2)?;
    Ok(Value::Bool(
        text(&args[1]).starts_with(text(&args[0]).as_str()),
    ))
}

fn has_suffix(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_hasSuffix", args, 2)?;
    Ok(Value::Bool(
        text(&args[1]).ends_with(text(&args[0]).as_str()),
    ))
}

/// `join sep list`.
fn join(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_join", args, 2)?;
    let sep = text(&args[0]);
    let items: Vec<String> = match &args[1] {
        Value::Array(l) => l.iter().map(text).collect(),
        Value::NoValue | Value::Nil => Vec::new(),
        other => vec![text(other)],
    };
    Ok(Value::String(items.join(&sep)))
}

/// `splitList sep s`.
fn split_list(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_splitList", args, 2)?;
    let (sep, s) = (text(&args[0]), text(&args[1]));
    Ok(Value::Array(
        s.split(sep.as_str())
            .map(|p| Value::String(p.to_string()))
            .collect(),
    ))
}

fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let quoted: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a, Value::NoValue | Value::Nil))
        .map(|a| format!("{:?}", text(a)))
        .collect();
    Ok(Value::String(quoted.join(" ")))
}

fn squote(args: &[Value]) -> Result<Value, FuncError> {
    let quoted: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a, Value::NoValue | Value::Nil))
        .map(|a| format!("'{}'", text(a)))
        .collect();
    Ok(Value::String(quoted.join(" ")))
}

/// Sprig's notion of empty: no value, false, 0, "", and empty lists and maps.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::NoValue | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(l) => l.is_empty(),
        Value::Object(m) | Value::Map(m) => m.is_empty(),
        Value::Function(_) => false,
    }
}

/// `default fallback value`: the value unless it is empty.
fn default(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [fallback] => Ok(fallback.clone()),
        [fallback, v] => Ok(if is_empty(v) {
            fallback.clone()
        } else {
            v.clone()
        }),
        _ => Err(FuncError::AtLeastXArgs("sprig_default".to_string(), 1)),
    }
}

fn empty(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_empty", args, 1)?;
    Ok(Value::Bool(is_empty(&args[0])))
}

fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_toJson", args, 1)?;
    Ok(Value::String(json_of(&args[0]).to_string()))
}

fn json_of(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::String(s) => J::String(s.clone()),
        Value::Number(n) => n
            .as_i64()
            .map(J::from)
            .or_else(|| n.as_u64().map(J::from))
            .or_else(|| n.as_f64().map(J::from))
            .unwrap_or(J::Null),
        Value::Array(l) => J::Array(l.iter().map(json_of).collect()),
        Value::Object(m) | Value::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), json_of(v)))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect(),
        ),
    }
}

fn add(args: &[Value]) -> Result<Value, FuncError> {
    let mut sum = 0i64;
    for a in args {
        sum = sum.saturating_add(int("sprig_add", a)?);
    }
    Ok(Value::from(sum))
}

fn sub(args: &[Value]) -> Result<Value, FuncError> {
    arity("sprig_sub", args, 2)?;
    Ok(Value::from(
        int("sprig_sub", &args[0])?.saturating_sub(int("sprig_sub", &args[1])?),
    ))
}
