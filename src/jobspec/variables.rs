//! Input variables (`variable` / `variables` blocks) and `locals`: declarations, values from
//! every source (default < `NOMAD_VAR_<name>` < var files and the API's `Variables` < `-var`),
//! type conversion and `validation` blocks.

use std::collections::BTreeSet;

use hcl::eval::Context;
use hcl::{Map, Value};
use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Block, Body, Structure};

use super::error::{ErrorKind, JobspecError, Result};
use super::eval::{Scope, eval};
use super::functions;
use super::source::Source;

/// A variable's declared type.
#[derive(Debug, Clone, PartialEq)]
pub enum VarType {
    Any,
    String,
    Number,
    Bool,
    List(Box<VarType>),
    Set(Box<VarType>),
    Map(Box<VarType>),
    Object(Vec<(String, VarType)>),
    /// `optional(T)` as an object attribute's type: may be left out (then `null`).
    Optional(Box<VarType>),
    Tuple(Vec<VarType>),
}

impl VarType {
    /// Values of these types are given on the command line as plain text.
    pub fn is_primitive(&self) -> bool {
        matches!(
            self,
            VarType::Any | VarType::String | VarType::Number | VarType::Bool
        )
    }
}

/// A `validation` block of a variable.
#[derive(Debug, Clone)]
struct Validation {
    condition: Expression,
    message: String,
}

/// A declared variable and the value it ends up with.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub ty: VarType,
    pub description: String,
    pub sensitive: bool,
    pub value: Option<Value>,
    span: Option<std::ops::Range<usize>>,
    validations: Vec<Validation>,
}

/// A function-only context, for defaults and var files (which may not reference variables).
pub fn base_context() -> Context<'static> {
    let mut ctx = Context::new();
    functions::declare(&mut ctx);
    ctx
}

/// Reads `variable` and `variables` blocks of the file body.
pub fn declare(src: &Source, body: &Body) -> Result<Vec<Variable>> {
    let ctx = base_context();
    let mut vars: Vec<Variable> = Vec::new();
    let push = |v: Variable, vars: &mut Vec<Variable>| -> Result<()> {
        if vars.iter().any(|o| o.name == v.name) {
            return Err(src.error(
                v.span.clone(),
                ErrorKind::InvalidValue {
                    field: format!("variable {:?}", v.name),
                    message: "declared twice".to_string(),
                },
            ));
        }
        vars.push(v);
        Ok(())
    };
    for block in body.blocks() {
        match block.ident.as_str() {
            "variable" => push(variable_block(src, &ctx, block)?, &mut vars)?,
            "variables" => {
                for s in block.body.iter() {
                    let Structure::Attribute(attr) = s else {
                        return Err(src.error(
                            s.span(),
                            ErrorKind::Unsupported(
                                "a \"variables\" block holds arguments only".to_string(),
                            ),
                        ));
                    };
                    let value = eval(&ctx, src, &attr.value, &Scope::default())?;
                    push(
                        Variable {
                            name: attr.key.as_str().to_string(),
                            ty: VarType::Any,
                            description: String::new(),
                            sensitive: false,
                            value: Some(value),
                            span: attr.span(),
                            validations: Vec::new(),
                        },
                        &mut vars,
                    )?;
                }
            }
            _ => {}
        }
    }
    Ok(vars)
}

fn variable_block(src: &Source, ctx: &Context, block: &Block) -> Result<Variable> {
    let [label] = block.labels.as_slice() else {
        return Err(src.error(
            block.ident.span(),
            ErrorKind::Labels {
                block: "variable".to_string(),
                want: 1,
                got: block.labels.len(),
            },
        ));
    };
    let mut v = Variable {
        name: label.as_str().to_string(),
        ty: VarType::Any,
        description: String::new(),
        sensitive: false,
        value: None,
        span: block.ident.span(),
        validations: Vec::new(),
    };
    let mut default = None;
    for s in block.body.iter() {
        match s {
            Structure::Attribute(attr) => match attr.key.as_str() {
                "type" => v.ty = parse_type(src, &attr.value)?,
                "default" => {
                    default = Some((
                        eval(ctx, src, &attr.value, &Scope::default())?,
                        attr.value.span(),
                    ))
                }
                "description" => v.description = string_attr(src, ctx, &attr.value, "description")?,
                "sensitive" => {
                    v.sensitive = eval(ctx, src, &attr.value, &Scope::default())?
                        .as_bool()
                        .ok_or_else(|| wrong_type(src, &attr.value, "sensitive", "bool"))?;
                }
                other => {
                    return Err(src.error(
                        attr.key.span(),
                        ErrorKind::UnknownArgument {
                            name: other.to_string(),
                            expected: "type, default, description, sensitive, validation"
                                .to_string(),
                        },
                    ));
                }
            },
            Structure::Block(b) if b.ident.as_str() == "validation" => {
                let cond = b.body.get_attribute("condition").ok_or_else(|| {
                    src.error(
                        b.ident.span(),
                        ErrorKind::Unsupported(
                            "a validation block needs a \"condition\"".to_string(),
                        ),
                    )
                })?;
                let message = match b.body.get_attribute("error_message") {
                    Some(m) => string_attr(src, ctx, &m.value, "error_message")?,
                    None => String::new(),
                };
                v.validations.push(Validation {
                    condition: cond.value.clone(),
                    message,
                });
            }
            Structure::Block(b) => {
                return Err(src.error(
                    b.ident.span(),
                    ErrorKind::UnknownBlock {
                        name: b.ident.as_str().to_string(),
                        expected: "validation".to_string(),
                    },
                ));
            }
        }
    }
    if let Some((d, span)) = default {
        let converted = convert(&d, &v.ty).map_err(|m| {
            src.error(
                span,
                ErrorKind::InvalidValue {
                    field: format!("variable {:?} default", v.name),
                    message: m,
                },
            )
        })?;
        v.value = Some(converted);
    }
    Ok(v)
}

fn wrong_type(src: &Source, e: &Expression, field: &str, expected: &'static str) -> JobspecError {
    src.error(
        e.span(),
        ErrorKind::WrongType {
            field: field.to_string(),
            expected,
            got: "another type".to_string(),
        },
    )
}

fn string_attr(src: &Source, ctx: &Context, e: &Expression, field: &str) -> Result<String> {
    match eval(ctx, src, e, &Scope::default())? {
        Value::String(s) => Ok(s),
        _ => Err(wrong_type(src, e, field, "string")),
    }
}

/// Reads a type expression (`string`, `list(number)`, `object({a = string})`, ...).
pub fn parse_type(src: &Source, e: &Expression) -> Result<VarType> {
    let bad = |msg: String| {
        src.error(
            e.span(),
            ErrorKind::InvalidValue {
                field: "type".to_string(),
                message: msg,
            },
        )
    };
    match e {
        Expression::Variable(v) => match v.as_str() {
            "any" => Ok(VarType::Any),
            "string" => Ok(VarType::String),
            "number" => Ok(VarType::Number),
            "bool" => Ok(VarType::Bool),
            other => Err(bad(format!("unknown type {other:?}"))),
        },
        Expression::FuncCall(f) => {
            let args: Vec<&Expression> = f.args.iter().collect();
            let [arg] = args.as_slice() else {
                return Err(bad(format!(
                    "{}() takes one argument",
                    f.name.name.as_str()
                )));
            };
            match f.name.name.as_str() {
                "list" => Ok(VarType::List(Box::new(parse_type(src, arg)?))),
                "set" => Ok(VarType::Set(Box::new(parse_type(src, arg)?))),
                "map" => Ok(VarType::Map(Box::new(parse_type(src, arg)?))),
                "optional" => Ok(VarType::Optional(Box::new(parse_type(src, arg)?))),
                "object" => {
                    let Expression::Object(o) = arg else {
                        return Err(bad(
                            "object() takes an object of attribute types".to_string()
                        ));
                    };
                    let mut attrs = Vec::new();
                    for (k, v) in o.iter() {
                        let key = match k {
                            hcl_edit::expr::ObjectKey::Ident(i) => i.as_str().to_string(),
                            hcl_edit::expr::ObjectKey::Expression(Expression::String(s)) => {
                                s.value().to_string()
                            }
                            _ => {
                                return Err(bad(
                                    "object attribute names must be identifiers".to_string()
                                ));
                            }
                        };
                        attrs.push((key, parse_type(src, v.expr())?));
                    }
                    Ok(VarType::Object(attrs))
                }
                "tuple" => {
                    let Expression::Array(a) = arg else {
                        return Err(bad("tuple() takes a list of element types".to_string()));
                    };
                    Ok(VarType::Tuple(
                        a.iter()
                            .map(|t| parse_type(src, t))
                            .collect::<Result<_>>()?,
                    ))
                }
                other => Err(bad(format!("unknown type constructor {other:?}"))),
            }
        }
        _ => Err(bad("not a type expression".to_string())),
    }
}

/// Converts a value to a declared type, the way HCL converts values on assignment.
pub fn convert(v: &Value, ty: &VarType) -> std::result::Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        VarType::Any => Ok(v.clone()),
        VarType::String => functions::to_str(v).map(Value::String),
        VarType::Number => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(s) => {
                let t = s.trim();
                t.parse::<i64>()
                    .map(hcl::Number::from)
                    .ok()
                    .or_else(|| t.parse::<f64>().ok().and_then(hcl::Number::from_f64))
                    .map(Value::Number)
                    .ok_or_else(|| format!("{s:?} is not a number"))
            }
            other => Err(format!("a number is required, got {other}")),
        },
        VarType::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) if s == "true" => Ok(Value::Bool(true)),
            Value::String(s) if s == "false" => Ok(Value::Bool(false)),
            other => Err(format!("a bool is required, got {other}")),
        },
        VarType::List(t) | VarType::Set(t) => {
            let items = v
                .as_array()
                .ok_or_else(|| format!("a list is required, got {v}"))?;
            let mut out: Vec<Value> = items
                .iter()
                .map(|i| convert(i, t))
                .collect::<std::result::Result<_, _>>()?;
            if matches!(ty, VarType::Set(_)) {
                let mut seen = Vec::new();
                out.retain(|x| {
                    let new = !seen.contains(x);
                    if new {
                        seen.push(x.clone());
                    }
                    new
                });
            }
            Ok(Value::Array(out))
        }
        VarType::Tuple(ts) => {
            let items = v
                .as_array()
                .ok_or_else(|| format!("a tuple is required, got {v}"))?;
            if items.len() != ts.len() {
                return Err(format!(
                    "a tuple of {} elements is required, got {}",
                    ts.len(),
                    items.len()
                ));
            }
            Ok(Value::Array(
                items
                    .iter()
                    .zip(ts)
                    .map(|(i, t)| convert(i, t))
                    .collect::<std::result::Result<_, _>>()?,
            ))
        }
        VarType::Map(t) => {
            let o = v
                .as_object()
                .ok_or_else(|| format!("a map is required, got {v}"))?;
            Ok(Value::Object(
                o.iter()
                    .map(|(k, x)| convert(x, t).map(|c| (k.clone(), c)))
                    .collect::<std::result::Result<_, _>>()?,
            ))
        }
        VarType::Object(attrs) => {
            let o = v
                .as_object()
                .ok_or_else(|| format!("an object is required, got {v}"))?;
            let mut out = Map::new();
            for (k, t) in attrs {
                let x = match (o.get(k), t) {
                    (Some(x), _) => x,
                    (None, VarType::Optional(_)) => &Value::Null,
                    (None, _) => return Err(format!("attribute {k:?} is required")),
                };
                out.insert(k.clone(), convert(x, t)?);
            }
            Ok(Value::Object(out))
        }
        VarType::Optional(t) => convert(v, t),
    }
}

/// Where an assigned value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Env,
    Arg,
}

/// Assigns a value given as text (`-var name=value`, `NOMAD_VAR_name`): primitive types take
/// the text as it is; other types read it as an HCL expression.
pub fn assign_text(
    vars: &mut [Variable],
    name: &str,
    text: &str,
    from: From,
    origin: &Source,
) -> Result<()> {
    let Some(v) = vars.iter_mut().find(|v| v.name == name) else {
        if from == From::Env {
            return Ok(());
        }
        return Err(
            origin.error_without_position(ErrorKind::UndefinedVariable(format!(
                "var.{name} (set by -var but not declared in a variable block)"
            ))),
        );
    };
    let raw = if v.ty.is_primitive() {
        Value::String(text.to_string())
    } else {
        let src = Source::new(format!("<value for var.{name}>"), text);
        let e: Expression = text.parse().map_err(|e: hcl_edit::parser::Error| {
            src.error(None, ErrorKind::Syntax(e.message().to_string()))
        })?;
        eval(&base_context(), &src, &e, &Scope::default())?
    };
    let value = convert(&raw, &v.ty).map_err(|m| {
        origin.error_without_position(ErrorKind::InvalidValue {
            field: format!("var.{name}"),
            message: m,
        })
    })?;
    v.value = Some(value);
    Ok(())
}

/// Assigns the values of a var file (`name = value` lines, HCL syntax).
pub fn assign_file(vars: &mut [Variable], src: &Source) -> Result<()> {
    let body = hcl_edit::parser::parse_body(&src.text).map_err(|e| syntax(src, &e))?;
    let ctx = base_context();
    for s in body.iter() {
        let Structure::Attribute(attr) = s else {
            return Err(src.error(
                s.span(),
                ErrorKind::Unsupported(
                    "a variables file holds \"name = value\" arguments only".to_string(),
                ),
            ));
        };
        let name = attr.key.as_str();
        let Some(v) = vars.iter_mut().find(|v| v.name == name) else {
            return Err(src.error(
                attr.key.span(),
                ErrorKind::UndefinedVariable(format!(
                    "var.{name} (assigned but not declared in a variable block)"
                )),
            ));
        };
        let raw = eval(&ctx, src, &attr.value, &Scope::default())?;
        v.value = Some(convert(&raw, &v.ty).map_err(|m| {
            src.error(
                attr.value.span(),
                ErrorKind::InvalidValue {
                    field: format!("var.{name}"),
                    message: m,
                },
            )
        })?);
    }
    Ok(())
}

/// A syntax error of the parser, with its position.
pub fn syntax(src: &Source, e: &hcl_edit::parser::Error) -> JobspecError {
    let loc = e.location();
    JobspecError {
        file: src.name.clone(),
        pos: super::error::Pos {
            line: loc.line(),
            column: loc.column(),
        },
        kind: ErrorKind::Syntax(e.message().to_string()),
    }
}

/// Checks every variable has a value and passes its validations; returns the `var` object.
pub fn finish(src: &Source, vars: &[Variable]) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for v in vars {
        let value = v.value.clone().ok_or_else(|| {
            src.error(v.span.clone(), ErrorKind::RequiredVariable(v.name.clone()))
        })?;
        out.insert(v.name.clone(), functions::sorted(value));
    }
    for v in vars {
        for val in &v.validations {
            let mut ctx = base_context();
            let mut only = Map::new();
            only.insert(
                v.name.clone(),
                out.get(&v.name).cloned().unwrap_or(Value::Null),
            );
            ctx.declare_var("var", Value::Object(only));
            let scope = Scope {
                vars: Some(BTreeSet::from([v.name.clone()])),
                locals: Some(BTreeSet::new()),
                bound: Vec::new(),
            };
            match eval(&ctx, src, &val.condition, &scope)? {
                Value::Bool(true) => {}
                Value::Bool(false) => {
                    let shown = if v.sensitive {
                        "(sensitive value)".to_string()
                    } else {
                        val.message.clone()
                    };
                    return Err(src.error(
                        val.condition.span(),
                        ErrorKind::VariableValidation {
                            name: v.name.clone(),
                            message: shown,
                        },
                    ));
                }
                _ => return Err(wrong_type(src, &val.condition, "condition", "bool")),
            }
        }
    }
    Ok(out)
}

/// Evaluates `locals` blocks; a local may use variables and other locals in any order.
pub fn locals(src: &Source, body: &Body, vars: &Map<String, Value>) -> Result<Map<String, Value>> {
    let mut pending: Vec<(&str, &Expression, Option<std::ops::Range<usize>>)> = Vec::new();
    for block in body.blocks().filter(|b| b.ident.as_str() == "locals") {
        for s in block.body.iter() {
            let Structure::Attribute(attr) = s else {
                return Err(src.error(
                    s.span(),
                    ErrorKind::Unsupported("a \"locals\" block holds arguments only".to_string()),
                ));
            };
            let name = attr.key.as_str();
            if pending.iter().any(|(n, _, _)| *n == name) {
                return Err(src.error(
                    attr.key.span(),
                    ErrorKind::DuplicateArgument(format!("local.{name}")),
                ));
            }
            pending.push((name, &attr.value, attr.key.span()));
        }
    }
    let names: BTreeSet<String> = pending.iter().map(|(n, _, _)| n.to_string()).collect();
    let var_names: BTreeSet<String> = vars.keys().cloned().collect();
    let mut done = Map::new();
    while !pending.is_empty() {
        let mut progressed = false;
        let mut first_err = None;
        let mut rest = Vec::new();
        for (name, expr, span) in pending {
            let mut ctx = base_context();
            ctx.declare_var("var", Value::Object(vars.clone()));
            ctx.declare_var("local", Value::Object(done.clone()));
            let scope = Scope {
                vars: Some(var_names.clone()),
                locals: Some(names.clone()),
                bound: Vec::new(),
            };
            match eval(&ctx, src, expr, &scope) {
                Ok(v) => {
                    done.insert(name.to_string(), functions::sorted(v));
                    progressed = true;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                    rest.push((name, expr, span));
                }
            }
        }
        pending = rest;
        if !progressed && let Some(e) = first_err {
            return Err(e);
        }
    }
    Ok(done)
}
