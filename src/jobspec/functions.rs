//! The functions a job file may call: the go-cty standard library set Nomad registers
//! (strings, collections, numbers, encodings, time) and the file functions, which read
//! relative to the job file's directory and only when the caller allows file access (the
//! HTTP API does not, as in Nomad).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use base64::Engine;
use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};
use hcl::{Map, Number, Value};

/// Where file functions read from, for the parse running on this thread.
#[derive(Debug, Clone, Default)]
pub struct FileAccess {
    pub base_dir: PathBuf,
    pub allowed: bool,
}

thread_local! {
    // `hcl::eval::Func` is a plain `fn`, so the file functions find their base directory here;
    // `with_file_access` sets it for the duration of one parse.
    static FILE_ACCESS: RefCell<FileAccess> = RefCell::new(FileAccess::default());
}

/// Runs `f` with the file functions bound to `access`.
pub fn with_file_access<T>(access: FileAccess, f: impl FnOnce() -> T) -> T {
    let previous = FILE_ACCESS.with(|a| a.replace(access));
    let out = f();
    FILE_ACCESS.with(|a| a.replace(previous));
    out
}

type R = Result<Value, String>;

/// Declares every function in `ctx`.
pub fn declare(ctx: &mut Context) {
    use ParamType::{Any, Number as N, String as S};
    let arr = || ParamType::array_of(Any);
    let obj = || ParamType::object_of(Any);
    let mut f = |name: &str,
                 params: Vec<ParamType>,
                 variadic: Option<ParamType>,
                 func: fn(FuncArgs) -> R| {
        let mut b = FuncDef::builder().params(params);
        if let Some(v) = variadic {
            b = b.variadic_param(v);
        }
        ctx.declare_func(name, b.build(func));
    };
    // numbers
    f("abs", vec![N], None, |a| num(num_of(&a[0]).abs()));
    f("ceil", vec![N], None, |a| num(num_of(&a[0]).ceil()));
    f("floor", vec![N], None, |a| num(num_of(&a[0]).floor()));
    f("log", vec![N, N], None, |a| {
        num(num_of(&a[0]).ln() / num_of(&a[1]).ln())
    });
    f("pow", vec![N, N], None, |a| {
        num(num_of(&a[0]).powf(num_of(&a[1])))
    });
    f("signum", vec![N], None, |a| {
        num(num_of(&a[0]).signum() * f64::from(u8::from(num_of(&a[0]) != 0.0)))
    });
    f("max", vec![], Some(N), |a| fold_num(&a, f64::max));
    f("min", vec![], Some(N), |a| fold_num(&a, f64::min));
    f("parseint", vec![S, N], None, parseint);
    // strings
    f("chomp", vec![S], None, |a| {
        Ok(s(str_of(&a[0]).trim_end_matches(['\n', '\r'])))
    });
    f("format", vec![S], Some(Any), format);
    f("formatlist", vec![S], Some(Any), formatlist);
    f("indent", vec![N, S], None, indent);
    f("join", vec![S], Some(arr()), join);
    f("lower", vec![S], None, |a| {
        Ok(s(&str_of(&a[0]).to_lowercase()))
    });
    f("upper", vec![S], None, |a| {
        Ok(s(&str_of(&a[0]).to_uppercase()))
    });
    f("title", vec![S], None, title);
    f("replace", vec![S, S, S], None, replace);
    f("regex_replace", vec![S, S, S], None, regex_replace);
    f("regex", vec![S, S], None, regex);
    f("regexall", vec![S, S], None, regexall);
    f("split", vec![S, S], None, split);
    f("strlen", vec![S], None, |a| {
        num(str_of(&a[0]).chars().count() as f64)
    });
    f("strrev", vec![S], None, |a| {
        Ok(s(&str_of(&a[0]).chars().rev().collect::<String>()))
    });
    f("substr", vec![S, N, N], None, substr);
    f("trim", vec![S, S], None, |a| {
        let cut: Vec<char> = str_of(&a[1]).chars().collect();
        Ok(s(str_of(&a[0]).trim_matches(cut.as_slice())))
    });
    f("trimprefix", vec![S, S], None, |a| {
        let (v, p) = (str_of(&a[0]), str_of(&a[1]));
        Ok(s(v.strip_prefix(p).unwrap_or(v)))
    });
    f("trimsuffix", vec![S, S], None, |a| {
        let (v, p) = (str_of(&a[0]), str_of(&a[1]));
        Ok(s(v.strip_suffix(p).unwrap_or(v)))
    });
    f("trimspace", vec![S], None, |a| Ok(s(str_of(&a[0]).trim())));
    // collections
    f("coalesce", vec![], Some(Any), |a| {
        a.iter()
            .find(|v| !v.is_null() && v.as_str() != Some(""))
            .cloned()
            .ok_or_else(|| "no non-null, non-empty-string arguments".to_string())
    });
    f("coalescelist", vec![], Some(arr()), |a| {
        a.iter()
            .find(|v| v.as_array().is_some_and(|l| !l.is_empty()))
            .cloned()
            .ok_or_else(|| "no non-empty list arguments".to_string())
    });
    f("compact", vec![arr()], None, |a| {
        Ok(Value::Array(
            arr_of(&a[0])
                .iter()
                .filter(|v| v.as_str().is_some_and(|x| !x.is_empty()))
                .cloned()
                .collect(),
        ))
    });
    f("concat", vec![], Some(arr()), |a| {
        Ok(Value::Array(
            a.iter().flat_map(|l| arr_of(l).iter().cloned()).collect(),
        ))
    });
    f("contains", vec![arr(), Any], None, |a| {
        Ok(Value::Bool(arr_of(&a[0]).contains(&a[1])))
    });
    f("distinct", vec![arr()], None, |a| {
        Ok(Value::Array(dedup(arr_of(&a[0]).iter().cloned())))
    });
    f("element", vec![arr(), N], None, element);
    f("flatten", vec![arr()], None, |a| {
        Ok(Value::Array(flatten(arr_of(&a[0]))))
    });
    f("index", vec![arr(), Any], None, |a| {
        arr_of(&a[0])
            .iter()
            .position(|v| v == &a[1])
            .map_or_else(|| Err("item not found".to_string()), |i| num(i as f64))
    });
    f("keys", vec![obj()], None, |a| {
        let mut k: Vec<&String> = obj_of(&a[0]).keys().collect();
        k.sort();
        Ok(Value::Array(k.into_iter().map(|k| s(k)).collect()))
    });
    f("values", vec![obj()], None, |a| {
        Ok(Value::Array(
            obj_of(&sorted(a[0].clone())).values().cloned().collect(),
        ))
    });
    f(
        "length",
        vec![ParamType::one_of([arr(), obj(), S])],
        None,
        |a| {
            num(match &a[0] {
                Value::Array(l) => l.len(),
                Value::Object(o) => o.len(),
                Value::String(x) => x.chars().count(),
                _ => 0,
            } as f64)
        },
    );
    f("lookup", vec![obj(), S], Some(Any), |a| {
        match obj_of(&a[0]).get(str_of(&a[1])) {
            Some(v) => Ok(v.clone()),
            None => a
                .get(2)
                .cloned()
                .ok_or_else(|| format!("the given object has no attribute {:?}", str_of(&a[1]))),
        }
    });
    f("merge", vec![], Some(ParamType::nullable(obj())), |a| {
        let mut out = Map::new();
        for o in a.iter().filter_map(Value::as_object) {
            out.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(Value::Object(out))
    });
    f("range", vec![], Some(N), range);
    f("reverse", vec![arr()], None, |a| {
        Ok(Value::Array(arr_of(&a[0]).iter().rev().cloned().collect()))
    });
    f("slice", vec![arr(), N, N], None, slice);
    f("sort", vec![arr()], None, |a| {
        let mut l: Vec<String> = arr_of(&a[0]).iter().map(to_str).collect::<Result<_, _>>()?;
        l.sort();
        Ok(Value::Array(l.into_iter().map(Value::String).collect()))
    });
    f("zipmap", vec![arr(), arr()], None, |a| {
        let (k, v) = (arr_of(&a[0]), arr_of(&a[1]));
        if k.len() != v.len() {
            return Err("number of keys and values must match".to_string());
        }
        Ok(Value::Object(
            k.iter()
                .map(to_str)
                .zip(v.iter().cloned())
                .map(|(k, v)| k.map(|k| (k, v)))
                .collect::<Result<_, _>>()?,
        ))
    });
    f("chunklist", vec![arr(), N], None, |a| {
        let size = num_of(&a[1]) as usize;
        let l = arr_of(&a[0]);
        if size == 0 {
            return Ok(Value::Array(vec![Value::Array(l.clone())]));
        }
        Ok(Value::Array(
            l.chunks(size).map(|c| Value::Array(c.to_vec())).collect(),
        ))
    });
    f("setunion", vec![], Some(arr()), |a| {
        Ok(Value::Array(dedup(
            a.iter().flat_map(|l| arr_of(l).iter().cloned()),
        )))
    });
    f("setintersection", vec![arr()], Some(arr()), |a| {
        let first = dedup(arr_of(&a[0]).iter().cloned());
        Ok(Value::Array(
            first
                .into_iter()
                .filter(|v| a.iter().skip(1).all(|l| arr_of(l).contains(v)))
                .collect(),
        ))
    });
    f("setproduct", vec![], Some(arr()), |a| {
        let mut out: Vec<Vec<Value>> = vec![vec![]];
        for l in a.iter() {
            out = out
                .into_iter()
                .flat_map(|p| {
                    arr_of(l).iter().map(move |v| {
                        let mut q = p.clone();
                        q.push(v.clone());
                        q
                    })
                })
                .collect();
        }
        Ok(Value::Array(out.into_iter().map(Value::Array).collect()))
    });
    // encodings
    f("base64encode", vec![S], None, |a| {
        Ok(s(
            &base64::engine::general_purpose::STANDARD.encode(str_of(&a[0]))
        ))
    });
    f("base64decode", vec![S], None, |a| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(str_of(&a[0]))
            .map_err(|e| e.to_string())?;
        String::from_utf8(bytes)
            .map(Value::String)
            .map_err(|_| "the decoded bytes are not valid UTF-8".to_string())
    });
    f("jsonencode", vec![Any], None, |a| {
        serde_json::to_string(&sorted(a[0].clone()))
            .map(Value::String)
            .map_err(|e| e.to_string())
    });
    f("jsondecode", vec![S], None, |a| {
        let v: serde_json::Value =
            serde_json::from_str(str_of(&a[0])).map_err(|e| e.to_string())?;
        hcl::to_value(v).map_err(|e| e.to_string())
    });
    f("csvdecode", vec![S], None, csvdecode);
    f("urlencode", vec![S], None, |a| {
        Ok(s(&percent_encoding::utf8_percent_encode(
            str_of(&a[0]),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string()))
    });
    f("uuidv4", vec![], None, |_| {
        Ok(s(&uuid::Uuid::new_v4().to_string()))
    });
    // time
    f("timeadd", vec![S, S], None, timeadd);
    // files
    f("file", vec![S], None, |a| {
        read_file(str_of(&a[0])).and_then(|b| {
            String::from_utf8(b)
                .map(Value::String)
                .map_err(|_| "the file is not valid UTF-8; use filebase64".to_string())
        })
    });
    f("filebase64", vec![S], None, |a| {
        read_file(str_of(&a[0])).map(|b| s(&base64::engine::general_purpose::STANDARD.encode(b)))
    });
    f("fileexists", vec![S], None, |a| {
        file_path(str_of(&a[0])).map(|p| Value::Bool(p.is_file()))
    });
    f("abspath", vec![S], None, |a| {
        let p = Path::new(str_of(&a[0]));
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().map_err(|e| e.to_string())?.join(p)
        };
        Ok(s(&abs.to_string_lossy()))
    });
    f("basename", vec![S], None, |a| {
        Ok(s(&Path::new(str_of(&a[0]))
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()))
    });
    f("dirname", vec![S], None, |a| {
        Ok(s(&Path::new(str_of(&a[0]))
            .parent()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| ".".to_string())))
    });
    f("pathexpand", vec![S], None, |a| {
        let p = str_of(&a[0]);
        Ok(s(&match (p.strip_prefix('~'), std::env::var("HOME")) {
            (Some(rest), Ok(home)) if rest.is_empty() || rest.starts_with('/') => {
                format!("{home}{rest}")
            }
            _ => p.to_string(),
        }))
    });
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn num(v: f64) -> R {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Ok(Value::Number(Number::from(v as i64)))
    } else {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| "result is not a finite number".to_string())
    }
}

fn num_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn arr_of(v: &Value) -> &Vec<Value> {
    static EMPTY: Vec<Value> = Vec::new();
    v.as_array().unwrap_or(&EMPTY)
}

fn obj_of(v: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    v.as_object().unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// The value with every object's keys in sorted order: HCL's maps and objects (go-cty)
/// iterate and encode by key, so `for`, `keys`, `values` and `jsonencode` see them sorted.
pub fn sorted(v: Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut entries: Vec<(String, Value)> =
                o.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(l) => Value::Array(l.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// A primitive as a string, the way HCL converts it.
pub fn to_str(v: &Value) -> Result<String, String> {
    match v {
        Value::String(x) => Ok(x.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("cannot convert {other} to a string")),
    }
}

fn fold_num(a: &FuncArgs, op: fn(f64, f64) -> f64) -> R {
    let mut it = a.iter().map(num_of);
    let first = it
        .next()
        .ok_or_else(|| "must have at least one argument".to_string())?;
    num(it.fold(first, op))
}

fn parseint(a: FuncArgs) -> R {
    let base = num_of(&a[1]) as u32;
    // `from_str_radix` accepts bases up to 36 (go-cty goes to 62 with mixed-case digits).
    if !(2..=36).contains(&base) {
        return Err("base must be a whole number between 2 and 36".to_string());
    }
    let v = i64::from_str_radix(str_of(&a[0]), base).map_err(|e| {
        format!(
            "cannot parse {:?} as a base {base} integer: {e}",
            str_of(&a[0])
        )
    })?;
    Ok(Value::Number(Number::from(v)))
}

/// Go-style `%` verbs as go-cty's `format` accepts them (flags and width ignored).
fn format_one(fmt: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_alphabetic() || d == '%' {
                break;
            }
            spec.push(d);
            chars.next();
        }
        let verb = chars
            .next()
            .ok_or_else(|| "format string ends with an incomplete verb".to_string())?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args
            .get(next)
            .ok_or_else(|| format!("not enough arguments for format verb %{verb}"))?;
        next += 1;
        let precision = spec
            .split_once('.')
            .and_then(|(_, p)| p.parse::<usize>().ok());
        match verb {
            's' => out.push_str(&to_str(arg)?),
            'q' => out.push_str(&serde_json::to_string(&to_str(arg)?).map_err(|e| e.to_string())?),
            'd' => out.push_str(&format!("{}", num_of(arg) as i64)),
            'f' => out.push_str(&format!("{:.*}", precision.unwrap_or(6), num_of(arg))),
            'g' | 'e' => out.push_str(&num_of(arg).to_string()),
            't' => out.push_str(
                &arg.as_bool()
                    .ok_or_else(|| "%t needs a bool".to_string())?
                    .to_string(),
            ),
            'v' => out.push_str(&match arg {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => to_str(arg)?,
                other => serde_json::to_string(other).map_err(|e| e.to_string())?,
            }),
            'x' => out.push_str(&format!("{:x}", num_of(arg) as i64)),
            'o' => out.push_str(&format!("{:o}", num_of(arg) as i64)),
            'b' => out.push_str(&format!("{:b}", num_of(arg) as i64)),
            other => return Err(format!("unsupported format verb %{other}")),
        }
    }
    Ok(out)
}

fn format(a: FuncArgs) -> R {
    let args: Vec<Value> = a.iter().skip(1).cloned().collect();
    format_one(str_of(&a[0]), &args).map(Value::String)
}

fn formatlist(a: FuncArgs) -> R {
    let rest: Vec<&Value> = a.iter().skip(1).collect();
    let n = rest
        .iter()
        .filter_map(|v| v.as_array().map(Vec::len))
        .max()
        .unwrap_or(1);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let args: Vec<Value> = rest
            .iter()
            .map(|v| match v {
                Value::Array(l) => l
                    .get(i)
                    .cloned()
                    .ok_or_else(|| "all list arguments must have the same length".to_string()),
                other => Ok((*other).clone()),
            })
            .collect::<Result<_, _>>()?;
        out.push(Value::String(format_one(str_of(&a[0]), &args)?));
    }
    Ok(Value::Array(out))
}

fn indent(a: FuncArgs) -> R {
    let width = num_of(&a[0]);
    if !(0.0..=1024.0).contains(&width) {
        return Err("indent width must be between 0 and 1024".to_string());
    }
    let pad = " ".repeat(width as usize);
    let text = str_of(&a[1]);
    Ok(s(&text
        .split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_string()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")))
}

fn join(a: FuncArgs) -> R {
    let sep = str_of(&a[0]);
    let parts: Vec<String> = a
        .iter()
        .skip(1)
        .flat_map(|l| arr_of(l).iter())
        .map(to_str)
        .collect::<Result<_, _>>()?;
    Ok(Value::String(parts.join(sep)))
}

fn title(a: FuncArgs) -> R {
    let mut out = String::new();
    let mut start = true;
    for c in str_of(&a[0]).chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    Ok(Value::String(out))
}

fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

fn replace(a: FuncArgs) -> R {
    let (v, find, with) = (str_of(&a[0]), str_of(&a[1]), str_of(&a[2]));
    match find.strip_prefix('/').and_then(|f| f.strip_suffix('/')) {
        Some(pattern) if find.len() > 1 => Ok(s(
            &compile(pattern)?.replace_all(v, go_replacement(with).as_str())
        )),
        _ => Ok(s(&v.replace(find, with))),
    }
}

fn regex_replace(a: FuncArgs) -> R {
    Ok(s(&compile(str_of(&a[1]))?.replace_all(
        str_of(&a[0]),
        go_replacement(str_of(&a[2])).as_str(),
    )))
}

/// Go writes capture references as `$1`/`${1}` like the regex crate, except that `$1x` means
/// group `1x` there too; both agree, so only `\` escapes need no change.
fn go_replacement(with: &str) -> String {
    with.to_string()
}

fn captures_value(re: &regex::Regex, caps: &regex::Captures) -> Value {
    let named: Vec<&str> = re.capture_names().flatten().collect();
    if !named.is_empty() {
        let mut m = Map::new();
        for n in named {
            m.insert(
                n.to_string(),
                caps.name(n).map_or(Value::Null, |c| s(c.as_str())),
            );
        }
        return Value::Object(m);
    }
    if re.captures_len() > 1 {
        return Value::Array(
            caps.iter()
                .skip(1)
                .map(|c| c.map_or(Value::Null, |c| s(c.as_str())))
                .collect(),
        );
    }
    caps.get(0).map_or(Value::Null, |c| s(c.as_str()))
}

fn regex(a: FuncArgs) -> R {
    let re = compile(str_of(&a[0]))?;
    let caps = re
        .captures(str_of(&a[1]))
        .ok_or_else(|| "pattern did not match any part of the given string".to_string())?;
    Ok(captures_value(&re, &caps))
}

fn regexall(a: FuncArgs) -> R {
    let re = compile(str_of(&a[0]))?;
    Ok(Value::Array(
        re.captures_iter(str_of(&a[1]))
            .map(|c| captures_value(&re, &c))
            .collect(),
    ))
}

fn split(a: FuncArgs) -> R {
    Ok(Value::Array(
        str_of(&a[1]).split(str_of(&a[0])).map(s).collect(),
    ))
}

fn substr(a: FuncArgs) -> R {
    let chars: Vec<char> = str_of(&a[0]).chars().collect();
    let len = chars.len() as i64;
    let mut offset = num_of(&a[1]) as i64;
    let length = num_of(&a[2]) as i64;
    if offset < 0 {
        offset += len;
    }
    if offset < 0 || offset > len {
        return Err("offset out of range".to_string());
    }
    let end = if length < 0 {
        len
    } else {
        (offset + length).min(len)
    };
    Ok(s(&chars[offset as usize..end as usize]
        .iter()
        .collect::<String>()))
}

fn dedup(items: impl Iterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in items {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn element(a: FuncArgs) -> R {
    let l = arr_of(&a[0]);
    if l.is_empty() {
        return Err("cannot use element function with an empty list".to_string());
    }
    let i = num_of(&a[1]) as i64;
    if i < 0 {
        return Err("cannot use element function with a negative index".to_string());
    }
    Ok(l[(i as usize) % l.len()].clone())
}

fn flatten(l: &[Value]) -> Vec<Value> {
    l.iter()
        .flat_map(|v| match v {
            Value::Array(inner) => flatten(inner),
            other => vec![other.clone()],
        })
        .collect()
}

fn range(a: FuncArgs) -> R {
    let n: Vec<f64> = a.iter().map(num_of).collect();
    let (start, end, step) = match n.as_slice() {
        [end] => (0.0, *end, 1.0),
        [start, end] => (*start, *end, if end >= start { 1.0 } else { -1.0 }),
        [start, end, step] => (*start, *end, *step),
        _ => return Err("range needs one, two or three arguments".to_string()),
    };
    if step == 0.0 || (step > 0.0) != (end >= start) && end != start {
        return Err("step must move from start towards end".to_string());
    }
    let mut out = Vec::new();
    let mut v = start;
    while (step > 0.0 && v < end) || (step < 0.0 && v > end) {
        out.push(num(v)?);
        if out.len() > 1024 {
            return Err("more than 1024 values were generated".to_string());
        }
        v += step;
    }
    Ok(Value::Array(out))
}

fn slice(a: FuncArgs) -> R {
    let l = arr_of(&a[0]);
    let (from, to) = (num_of(&a[1]) as usize, num_of(&a[2]) as usize);
    if from > to || to > l.len() {
        return Err("slice indices out of range".to_string());
    }
    Ok(Value::Array(l[from..to].to_vec()))
}

fn csvdecode(a: FuncArgs) -> R {
    let mut lines = str_of(&a[0]).lines().filter(|l| !l.is_empty());
    let header: Vec<&str> = lines
        .next()
        .map(|h| h.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != header.len() {
            return Err(format!(
                "record {} has {} fields, the header has {}",
                i + 1,
                fields.len(),
                header.len()
            ));
        }
        out.push(Value::Object(
            header
                .iter()
                .zip(fields)
                .map(|(k, v)| (k.to_string(), s(v)))
                .collect(),
        ));
    }
    Ok(Value::Array(out))
}

fn timeadd(a: FuncArgs) -> R {
    let t = chrono::DateTime::parse_from_rfc3339(str_of(&a[0]))
        .map_err(|e| format!("not an RFC 3339 timestamp: {e}"))?;
    let d = yurt_drivers::go_duration::parse_go_duration_nanos(str_of(&a[1]))
        .map_err(|e| e.to_string())?;
    let out = t + chrono::Duration::nanoseconds(d);
    Ok(s(&out.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
}

fn file_path(name: &str) -> Result<PathBuf, String> {
    FILE_ACCESS.with(|a| {
        let a = a.borrow();
        if !a.allowed {
            return Err(
                "file functions are disabled when a job is parsed through the HTTP API".to_string(),
            );
        }
        let p = Path::new(name);
        Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            a.base_dir.join(p)
        })
    })
}

fn read_file(name: &str) -> Result<Vec<u8>, String> {
    let p = file_path(name)?;
    std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcl::eval::Evaluate;

    fn eval(src: &str) -> Value {
        let mut ctx = Context::new();
        declare(&mut ctx);
        let e: hcl::Expression = src.parse().expect("expression parses");
        e.evaluate(&ctx).expect("evaluates")
    }

    #[test]
    fn string_functions() {
        assert_eq!(eval(r#"format("%s-%03d", "a", 7)"#), s("a-7"));
        assert_eq!(eval(r#"upper(trimspace("  x "))"#), s("X"));
        assert_eq!(eval(r#"replace("a-b-c", "-", "_")"#), s("a_b_c"));
        assert_eq!(eval(r##"replace("a1b22", "/[0-9]+/", "#")"##), s("a#b#"));
        assert_eq!(eval(r#"join(",", ["a", "b"])"#), s("a,b"));
        assert_eq!(
            eval(r#"regex("v([0-9]+)", "v12")"#),
            Value::Array(vec![s("12")])
        );
        assert_eq!(eval(r#"substr("hello", 1, 3)"#), s("ell"));
        assert_eq!(eval(r#"title("hello world")"#), s("Hello World"));
    }

    #[test]
    fn collection_and_encoding_functions() {
        assert_eq!(eval("range(3)"), eval("[0, 1, 2]"));
        assert_eq!(eval(r#"lookup({a = 1}, "b", 2)"#), eval("2"));
        assert_eq!(eval(r#"merge({a = 1}, {b = 2})"#), eval("{a = 1, b = 2}"));
        assert_eq!(eval(r#"coalesce("", "x")"#), s("x"));
        assert_eq!(eval(r#"jsonencode({a = [1]})"#), s(r#"{"a":[1]}"#));
        assert_eq!(eval(r#"jsondecode("{\"a\":true}").a"#), Value::Bool(true));
        assert_eq!(eval(r#"base64decode(base64encode("hi"))"#), s("hi"));
        assert_eq!(eval("length(flatten([[1], [2, [3]]]))"), eval("3"));
        assert_eq!(
            eval(r#"timeadd("2024-01-01T00:00:00Z", "1h30m")"#),
            s("2024-01-01T01:30:00Z")
        );
        assert_eq!(eval("max(1, 5, 3)"), eval("5"));
    }

    #[test]
    fn hostile_arguments_are_errors_not_panics() {
        let mut ctx = Context::new();
        declare(&mut ctx);
        for src in [
            r#"parseint("zz", 62)"#,
            r#"indent(1e18, "x")"#,
            r#"substr("abc", 5, 1)"#,
            r#"slice([1], 1, 0)"#,
            r#"element([], 1)"#,
            "range(0, 1e9)",
            r#"format("%d")"#,
            r#"regex("(", "x")"#,
        ] {
            let e: hcl::Expression = src.parse().expect("parses");
            assert!(e.evaluate(&ctx).is_err(), "{src} should be an error");
        }
    }

    #[test]
    fn file_functions_are_refused_without_access() {
        let mut ctx = Context::new();
        declare(&mut ctx);
        let e: hcl::Expression = r#"file("x")"#.parse().expect("parses");
        let err = e.evaluate(&ctx).expect_err("refused");
        assert!(err.to_string().contains("disabled"), "{err}");
    }
}
