//! Evaluating one expression of a job file: variables, locals and functions are resolved;
//! references to anything else (`attr.kernel.name`, `NOMAD_ALLOC_ID`, `meta.x`, `env["X"]`)
//! are runtime interpolations the client resolves, so they are kept as `${...}` text, as
//! Nomad's parser keeps them.

use std::collections::BTreeSet;

use hcl::eval::{Context, Evaluate};
use hcl_edit::Span;
use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::template::{Directive, Element, Template};

use super::error::{ErrorKind, JobspecError};
use super::source::Source;

/// The names an expression may resolve itself: `var`, `local` and the names bound by
/// enclosing `for` expressions and `dynamic` iterators.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Declared input variables (`var.<name>`); `None` while locals and variables are still
    /// being evaluated and every name is allowed.
    pub vars: Option<BTreeSet<String>>,
    pub locals: Option<BTreeSet<String>>,
    pub bound: Vec<String>,
}

impl Scope {
    fn with(&self, names: impl IntoIterator<Item = String>) -> Scope {
        let mut s = self.clone();
        s.bound.extend(names);
        s
    }

    fn resolves(&self, root: &str) -> bool {
        root == "var" || root == "local" || self.bound.iter().any(|b| b == root)
    }
}

/// Evaluates `expr` from `src` in `ctx`.
pub fn eval(
    ctx: &Context,
    src: &Source,
    expr: &Expression,
    scope: &Scope,
) -> Result<hcl::Value, JobspecError> {
    let mut expr = expr.clone();
    let span = expr.span();
    keep_runtime_refs(&mut expr, src, scope)?;
    let expr: hcl::Expression = expr.into();
    expr.evaluate(ctx)
        .map_err(|e| src.error(span, ErrorKind::Eval(e.to_string())))
}

/// The root name of a variable or traversal expression.
fn root_name(expr: &Expression) -> Option<&str> {
    match expr {
        Expression::Variable(v) => Some(v.as_str()),
        Expression::Traversal(t) => root_name(&t.expr),
        _ => None,
    }
}

/// Replaces references the parser does not resolve with their `${...}` text, and reports
/// `var.x` / `local.x` for names never declared.
fn keep_runtime_refs(
    expr: &mut Expression,
    src: &Source,
    scope: &Scope,
) -> Result<(), JobspecError> {
    match expr {
        Expression::Variable(v) => {
            let name = v.as_str().to_string();
            if !scope.resolves(&name) {
                *expr = literal(src, expr.span(), &name);
            }
        }
        Expression::Traversal(t) => {
            let root = root_name(&t.expr).map(str::to_string);
            match root {
                Some(root) if !scope.resolves(&root) => {
                    let fallback = root.clone();
                    *expr = literal(src, expr.span(), &fallback);
                    return Ok(());
                }
                Some(root) if root == "var" || root == "local" => {
                    check_declared(t, &root, src, scope)?;
                }
                _ => keep_runtime_refs(&mut t.expr, src, scope)?,
            }
            for op in t.operators.iter_mut() {
                if let TraversalOperator::Index(e) = op.value_mut() {
                    keep_runtime_refs(e, src, scope)?;
                }
            }
        }
        Expression::Array(a) => {
            for e in a.iter_mut() {
                keep_runtime_refs(e, src, scope)?;
            }
        }
        Expression::Object(o) => {
            for (_, v) in o.iter_mut() {
                keep_runtime_refs(v.expr_mut(), src, scope)?;
            }
        }
        Expression::StringTemplate(t) => template(t, src, scope)?,
        Expression::HeredocTemplate(h) => template(&mut h.template, src, scope)?,
        Expression::Parenthesis(p) => keep_runtime_refs(p.inner_mut(), src, scope)?,
        Expression::Conditional(c) => {
            keep_runtime_refs(&mut c.cond_expr, src, scope)?;
            keep_runtime_refs(&mut c.true_expr, src, scope)?;
            keep_runtime_refs(&mut c.false_expr, src, scope)?;
        }
        Expression::FuncCall(f) => {
            for a in f.args.iter_mut() {
                keep_runtime_refs(a, src, scope)?;
            }
        }
        Expression::UnaryOp(u) => keep_runtime_refs(&mut u.expr, src, scope)?,
        Expression::BinaryOp(b) => {
            keep_runtime_refs(&mut b.lhs_expr, src, scope)?;
            keep_runtime_refs(&mut b.rhs_expr, src, scope)?;
        }
        Expression::ForExpr(f) => {
            keep_runtime_refs(&mut f.intro.collection_expr, src, scope)?;
            let mut names = vec![f.intro.value_var.as_str().to_string()];
            if let Some(k) = &f.intro.key_var {
                names.push(k.as_str().to_string());
            }
            let inner = scope.with(names);
            if let Some(k) = &mut f.key_expr {
                keep_runtime_refs(k, src, &inner)?;
            }
            keep_runtime_refs(&mut f.value_expr, src, &inner)?;
            if let Some(c) = &mut f.cond {
                keep_runtime_refs(&mut c.expr, src, &inner)?;
            }
        }
        Expression::Null(_)
        | Expression::Bool(_)
        | Expression::Number(_)
        | Expression::String(_) => {}
    }
    Ok(())
}

fn check_declared(
    t: &hcl_edit::expr::Traversal,
    root: &str,
    src: &Source,
    scope: &Scope,
) -> Result<(), JobspecError> {
    let declared = if root == "var" {
        &scope.vars
    } else {
        &scope.locals
    };
    let (Some(declared), Some(first)) = (declared, t.operators.first()) else {
        return Ok(());
    };
    let name = match first.value() {
        TraversalOperator::GetAttr(ident) => ident.as_str().to_string(),
        TraversalOperator::Index(Expression::String(s)) => s.value().to_string(),
        _ => return Ok(()),
    };
    if declared.contains(&name) || scope.bound.iter().any(|b| b == root) {
        return Ok(());
    }
    Err(src.error(
        t.span(),
        ErrorKind::UndefinedVariable(format!("{root}.{name}")),
    ))
}

fn template(t: &mut Template, src: &Source, scope: &Scope) -> Result<(), JobspecError> {
    for el in t.iter_mut() {
        match el {
            Element::Literal(_) => {}
            Element::Interpolation(i) => keep_runtime_refs(&mut i.expr, src, scope)?,
            Element::Directive(d) => match &mut **d {
                Directive::If(d) => {
                    keep_runtime_refs(&mut d.if_expr.cond_expr, src, scope)?;
                    template(&mut d.if_expr.template, src, scope)?;
                    if let Some(e) = &mut d.else_expr {
                        template(&mut e.template, src, scope)?;
                    }
                }
                Directive::For(d) => {
                    let f = &mut d.for_expr;
                    keep_runtime_refs(&mut f.collection_expr, src, scope)?;
                    let mut names = vec![f.value_var.as_str().to_string()];
                    if let Some(k) = &f.key_var {
                        names.push(k.as_str().to_string());
                    }
                    template(&mut f.template, src, &scope.with(names))?;
                }
            },
        }
    }
    Ok(())
}

/// The `${...}` text of a runtime reference, from its source when known.
fn literal(src: &Source, span: Option<std::ops::Range<usize>>, fallback: &str) -> Expression {
    let text = span
        .as_ref()
        .and_then(|s| src.slice(s))
        .map_or_else(|| fallback.to_string(), |s| s.trim().to_string());
    Expression::String(hcl_edit::Decorated::new(format!("${{{text}}}")))
}
