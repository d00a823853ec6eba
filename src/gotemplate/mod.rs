//! Go `text/template` rendering, the one place yurt names a template engine: the CLI's `-t`
//! flag renders JSON data with it, and task templates render with the helper functions of
//! [`funcs`] plus the client's own (`env`, `nomadVar`, …). JSON objects become Go-struct-like
//! values, so a misspelt field is an error naming it rather than an empty string.

pub mod delims;
pub mod funcs;
mod sprig;

use std::collections::HashMap;

use gtmpl::{Context, Template};
pub use gtmpl::{Func, FuncError, Value};
use serde_json::Value as Json;

/// Why a template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template text does not parse.
    #[error("template: {0}")]
    Parse(String),
    /// The template parsed but failed against the data (a missing field, a bad call).
    #[error("template: {0}")]
    Execute(String),
}

/// Renders `text` with `data` as its dot (`{{.ID}}`, `{{range .}}…{{end}}`).
pub fn render(text: &str, data: &Json) -> Result<String, TemplateError> {
    let mut tmpl = Template::default();
    tmpl.add_funcs(&sprig::functions());
    tmpl.parse(text)
        .map_err(|e| TemplateError::Parse(e.to_string()))?;
    tmpl.render(&Context::from(to_value(data)))
        .map_err(|e| TemplateError::Execute(e.to_string()))
}

/// How [`render_with`] reads and runs a template.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// The action delimiters (`{{` and `}}` when empty).
    pub left_delim: &'a str,
    pub right_delim: &'a str,
    /// Functions beyond Go's builtins, by the name templates call them.
    pub funcs: &'a [(&'static str, Func)],
}

/// Renders `text` with `dot` as its data, the extra functions and delimiters of `opts`.
pub fn render_with(text: &str, dot: Value, opts: &Options<'_>) -> Result<String, TemplateError> {
    let text =
        delims::translate(text, opts.left_delim, opts.right_delim).map_err(TemplateError::Parse)?;
    let mut tmpl = Template::default();
    tmpl.add_funcs(opts.funcs);
    tmpl.parse(text.as_ref())
        .map_err(|e| TemplateError::Parse(e.to_string()))?;
    tmpl.render(&Context::from(dot))
        .map_err(|e| TemplateError::Execute(e.to_string()))
}

/// A JSON value as template data: objects become structs (a missing field is an error).
pub fn to_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        Json::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// A JSON value as template data whose objects are maps: a missing key renders as
/// `<no value>` (Go's default for maps) instead of failing.
pub fn to_map_value(v: &Json) -> Value {
    match v {
        Json::Array(items) => Value::Array(items.iter().map(to_map_value).collect()),
        Json::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), to_map_value(v)))
                .collect::<HashMap<_, _>>(),
        ),
        other => to_value(other),
    }
}

/// Template data back as JSON (for `toJSON`); functions and "no value" become null.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Json::Null, Json::Number)
            }
        }
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        // Sorted, as Go's encoding/json writes map keys.
        Value::Object(m) | Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_ranges_and_conditionals() {
        let alloc = json!({"ID": "abc", "Count": 3, "Tags": ["a", "b"], "Nested": {"Name": "web"}});
        assert_eq!(render("{{.ID}}", &alloc).unwrap(), "abc");
        assert_eq!(
            render("{{.Nested.Name}}:{{.Count}}", &alloc).unwrap(),
            "web:3"
        );
        assert_eq!(
            render("{{range .Tags}}[{{.}}]{{end}}", &alloc).unwrap(),
            "[a][b]"
        );
        assert_eq!(
            render("{{if eq .Count 3}}three{{else}}other{{end}}", &alloc).unwrap(),
            "three"
        );
        let list = json!([{"ID": "a"}, {"ID": "b"}]);
        assert_eq!(render("{{range .}}{{.ID}} {{end}}", &list).unwrap(), "a b ");
    }

    #[test]
    fn sprig_functions_take_the_piped_value_last() {
        let job = json!({"ID": "example-web", "Tags": ["a", "b"], "Count": 3, "Empty": ""});
        for (tmpl, want) in [
            ("{{ .ID | sprig_upper }}", "EXAMPLE-WEB"),
            ("{{ .ID | sprig_trunc 7 }}", "example"),
            ("{{ .ID | sprig_trunc -3 }}", "web"),
            ("{{ .Tags | sprig_join \",\" }}", "a,b"),
            ("{{ .ID | sprig_replace \"-\" \"_\" }}", "example_web"),
            ("{{ if sprig_hasPrefix \"exa\" .ID }}yes{{ end }}", "yes"),
            ("{{ .Empty | sprig_default \"none\" }}", "none"),
            ("{{ .ID | sprig_quote }}", "\"example-web\""),
            ("{{ sprig_add .Count 2 }}", "5"),
            ("{{ .Tags | sprig_toJson }}", "[\"a\",\"b\"]"),
            (
                "{{ range sprig_splitList \"-\" .ID }}[{{ . }}]{{ end }}",
                "[example][web]",
            ),
        ] {
            assert_eq!(render(tmpl, &job).ok().as_deref(), Some(want), "{tmpl}");
        }
        assert!(render("{{ sprig_repeat 100000 .ID }}", &job).is_err());
    }

    #[test]
    fn bad_templates_and_missing_fields_are_errors() {
        assert!(matches!(
            render("{{.ID", &json!({})),
            Err(TemplateError::Parse(_))
        ));
        let err = render("{{.Nope}}", &json!({"ID": "x"})).unwrap_err();
        assert!(matches!(err, TemplateError::Execute(_)), "{err}");
        assert!(err.to_string().contains("Nope"), "{err}");
    }
}
