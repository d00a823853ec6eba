//! Turns the `job` block into the API's JSON job, following the table in `schema`: every
//! argument and block is either mapped to its field or reported as an error with its
//! position; `dynamic` blocks are expanded on the way.

use hcl::Value;
use hcl::eval::Context;
use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Block, Body, Structure};
use serde_json::{Map, Value as Json};

use super::error::{ErrorKind, JobspecError, Result};
use super::eval::{Scope, eval};
use super::literal;
use super::schema::{self, Blk, Kind, Multi, Spec, Ty};
use super::source::Source;

pub struct Decoder<'a> {
    pub src: &'a Source,
    /// HCL1 semantics: values are read literally (no variables, functions or `dynamic`
    /// blocks), blocks may be written as object assignments, scalars are weakly typed as
    /// Nomad's HCL1 decoder types them.
    pub hcl1: bool,
}

/// One block to decode: its body and labels, possibly produced by a `dynamic` block (then
/// `ctx`/`scope` carry the iterator).
/// Files one block a `dynamic` block generated.
type Emit<'e> = dyn FnMut(&str, Item, &Context, &Scope, &mut Map<String, Json>) -> Result<()> + 'e;

struct Item<'b> {
    ident_span: Option<std::ops::Range<usize>>,
    labels: Vec<String>,
    body: &'b Body,
}

impl Decoder<'_> {
    fn err(&self, span: Option<std::ops::Range<usize>>, kind: ErrorKind) -> JobspecError {
        self.src.error(span, kind)
    }

    /// The value of an argument: evaluated in HCL2, read literally in HCL1.
    fn value(&self, ctx: &Context, expr: &Expression, scope: &Scope) -> Result<Value> {
        if self.hcl1 {
            literal::read(self.src, expr)
        } else {
            eval(ctx, self.src, expr, scope)
        }
    }

    /// Decodes a block body against its spec into `out`.
    pub fn body(
        &self,
        body: &Body,
        spec: &'static Spec,
        ctx: &Context,
        scope: &Scope,
        out: &mut Map<String, Json>,
    ) -> Result<()> {
        match spec.kind {
            Kind::Fields => self.fields(body, spec, ctx, scope, out),
            Kind::Free => self.free(body, ctx, scope, out),
            Kind::StrMap => self.str_map(body, ctx, scope, out),
            Kind::Generic => self.generic(body, ctx, scope, out),
        }
    }

    fn fields(
        &self,
        body: &Body,
        spec: &'static Spec,
        ctx: &Context,
        scope: &Scope,
        out: &mut Map<String, Json>,
    ) -> Result<()> {
        let mut seen_attrs: Vec<&str> = Vec::new();
        for s in body.iter() {
            match s {
                Structure::Attribute(attr) => {
                    let name = attr.key.as_str();
                    if self.hcl1
                        && spec.attr(name).is_none()
                        && let Some(blk) = spec.block(name)
                    {
                        self.assigned_blocks(blk, attr, out)?;
                        continue;
                    }
                    let Some(field) = spec.attr(name) else {
                        return Err(self.err(
                            attr.key.span(),
                            ErrorKind::UnknownArgument {
                                name: name.to_string(),
                                expected: spec.expected(),
                            },
                        ));
                    };
                    let is_map = matches!(field.ty, Ty::StrMap | Ty::Any);
                    // HCL1 merges repeated map arguments (`meta = {..}` twice, or with a
                    // `meta {..}` block), as it merges repeated blocks.
                    let merge = self.hcl1 && is_map;
                    if seen_attrs.contains(&name) && !merge {
                        return Err(self.err(
                            attr.key.span(),
                            ErrorKind::DuplicateArgument(name.to_string()),
                        ));
                    }
                    seen_attrs.push(name);
                    let v = self.value(ctx, &attr.value, scope)?;
                    if let Some(j) = self.typed(&v, field.ty, name, &attr.value)? {
                        match (out.get_mut(field.api), j) {
                            (Some(Json::Object(have)), Json::Object(more)) if merge => {
                                have.extend(more);
                            }
                            (_, j) => {
                                out.insert(field.api.to_string(), j);
                            }
                        }
                    }
                }
                Structure::Block(block) => {
                    let name = block.ident.as_str();
                    if name == "dynamic" && !self.hcl1 {
                        let mut emit =
                            |target: &str,
                             item: Item,
                             c: &Context,
                             sc: &Scope,
                             o: &mut Map<String, Json>| {
                                match spec.block(target) {
                                    Some(blk) => self.nested(blk, item, c, sc, o),
                                    None => Err(self.err(
                                        block.labels.first().and_then(|l| l.span()),
                                        ErrorKind::UnknownBlock {
                                            name: target.to_string(),
                                            expected: spec.expected(),
                                        },
                                    )),
                                }
                            };
                        self.dynamic(block, ctx, scope, out, &mut emit)?;
                        continue;
                    }
                    // `meta { ... }`, `env { ... }`, `config { ... }`: a map written as a block.
                    if let Some(field) = spec
                        .attr(name)
                        .filter(|f| matches!(f.ty, Ty::StrMap | Ty::Any))
                    {
                        self.no_labels(block, 0)?;
                        let mut m = match out.remove(field.api) {
                            Some(Json::Object(m)) => m,
                            _ => Map::new(),
                        };
                        let inner = if field.ty == Ty::StrMap {
                            &schema::STR_MAP
                        } else {
                            &schema::FREE
                        };
                        self.body(&block.body, inner, ctx, scope, &mut m)?;
                        out.insert(field.api.to_string(), Json::Object(m));
                        continue;
                    }
                    let Some(blk) = spec.block(name) else {
                        return Err(self.err(
                            block.ident.span(),
                            ErrorKind::UnknownBlock {
                                name: name.to_string(),
                                expected: spec.expected(),
                            },
                        ));
                    };
                    let labels = block
                        .labels
                        .iter()
                        .map(|l| l.as_str().to_string())
                        .collect();
                    let item = Item {
                        ident_span: block.ident.span(),
                        labels,
                        body: &block.body,
                    };
                    self.nested(blk, item, ctx, scope, out)?;
                }
            }
        }
        Ok(())
    }

    fn no_labels(&self, block: &Block, want: usize) -> Result<()> {
        if block.labels.len() != want {
            return Err(self.err(
                block.ident.span(),
                ErrorKind::Labels {
                    block: block.ident.as_str().to_string(),
                    want,
                    got: block.labels.len(),
                },
            ));
        }
        Ok(())
    }

    /// Decodes one nested block and files it under its API field.
    fn nested(
        &self,
        blk: &'static Blk,
        item: Item,
        ctx: &Context,
        scope: &Scope,
        out: &mut Map<String, Json>,
    ) -> Result<()> {
        let want = usize::from(blk.label.is_some());
        if item.labels.len() != want {
            return Err(self.err(
                item.ident_span,
                ErrorKind::Labels {
                    block: blk.hcl.to_string(),
                    want,
                    got: item.labels.len(),
                },
            ));
        }
        if self.hcl1 && blk.hcl == "port" {
            self.hcl1_port_label(&item, out)?;
        }
        let mut obj = Map::new();
        let task_scaling = std::ptr::eq(blk.spec, &schema::TASK_SCALING);
        if let (Some(field), Some(label)) = (blk.label, item.labels.first())
            && !task_scaling
        {
            obj.insert(field.to_string(), Json::String(label.clone()));
        }
        self.body(item.body, blk.spec, ctx, scope, &mut obj)?;
        if task_scaling {
            self.task_scaling_type(&item, &mut obj, out)?;
        }
        if std::ptr::eq(blk.spec, &schema::SCALING) {
            self.group_scaling(&item, &obj)?;
        }
        // HCL1 reads one network per group or task resources.
        if self.hcl1 && std::ptr::eq(blk.spec, &schema::NETWORK) && out.contains_key(blk.api) {
            return Err(self.err(item.ident_span, ErrorKind::Duplicate("network".to_string())));
        }
        if std::ptr::eq(blk.spec, &schema::CONSTRAINT) || std::ptr::eq(blk.spec, &schema::AFFINITY)
        {
            // HCL1 drops a `distinct_hosts = false` constraint and writes `true` out.
            if self.hcl1 && obj.get("distinct_hosts") == Some(&Json::Bool(false)) {
                return Ok(());
            }
            if self.hcl1 && obj.get("distinct_hosts") == Some(&Json::Bool(true)) {
                obj.insert("RTarget".to_string(), Json::String("true".to_string()));
            }
            constraint_shorthands(&mut obj);
        }
        match blk.multi {
            Multi::One => {
                if out.contains_key(blk.api) {
                    return Err(
                        self.err(item.ident_span, ErrorKind::Duplicate(blk.hcl.to_string()))
                    );
                }
                out.insert(blk.api.to_string(), Json::Object(obj));
            }
            Multi::List => match out
                .entry(blk.api.to_string())
                .or_insert_with(|| Json::Array(Vec::new()))
            {
                Json::Array(list) => list.push(Json::Object(obj)),
                _ => {
                    return Err(
                        self.err(item.ident_span, ErrorKind::Duplicate(blk.hcl.to_string()))
                    );
                }
            },
            Multi::Map => {
                let label = item.labels.first().cloned().unwrap_or_default();
                match out
                    .entry(blk.api.to_string())
                    .or_insert_with(|| Json::Object(Map::new()))
                {
                    Json::Object(m) if !m.contains_key(&label) => {
                        m.insert(label, Json::Object(obj));
                    }
                    _ => {
                        return Err(self.err(
                            item.ident_span,
                            ErrorKind::Duplicate(format!("{} {label:?}", blk.hcl)),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A task's `scaling "cpu" { ... }` / `scaling "mem" { ... }`: the label names the
    /// policy type (`vertical_cpu` / `vertical_mem`); a `type` argument must agree with it.
    fn task_scaling_type(
        &self,
        item: &Item,
        obj: &mut Map<String, Json>,
        out: &Map<String, Json>,
    ) -> Result<()> {
        let label = item.labels.first().map(|l| l.to_lowercase());
        let policy_type = match label.as_deref() {
            Some("cpu") => "vertical_cpu",
            Some("mem") => "vertical_mem",
            _ => {
                return Err(self.err(
                    item.ident_span.clone(),
                    ErrorKind::InvalidValue {
                        field: "scaling".to_string(),
                        message: format!(
                            "scaling policy name must be \"cpu\" or \"mem\", got {:?}",
                            item.labels.first().map_or("", String::as_str)
                        ),
                    },
                ));
            }
        };
        if let Some(t) = obj.get("Type").and_then(Json::as_str)
            && t != policy_type
        {
            return Err(self.err(
                item.ident_span.clone(),
                ErrorKind::InvalidValue {
                    field: "scaling.type".to_string(),
                    message: format!("policy type {t:?} does not match the block's name: expected {policy_type:?}"),
                },
            ));
        }
        let taken = out
            .get("ScalingPolicies")
            .and_then(Json::as_array)
            .is_some_and(|l| l.iter().any(|p| p["Type"] == policy_type));
        if taken {
            return Err(self.err(
                item.ident_span.clone(),
                ErrorKind::Duplicate(format!("scaling {:?}", label.unwrap_or_default())),
            ));
        }
        obj.insert("Type".to_string(), Json::String(policy_type.to_string()));
        Ok(())
    }

    /// HCL1 port labels are letters, digits and `_`, unique regardless of case.
    fn hcl1_port_label(&self, item: &Item, out: &Map<String, Json>) -> Result<()> {
        let label = item.labels.first().map_or("", String::as_str);
        if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(self.err(
                item.ident_span.clone(),
                ErrorKind::InvalidValue {
                    field: "port".to_string(),
                    message: format!(
                        "port label {label:?} must be letters, digits and underscores"
                    ),
                },
            ));
        }
        let taken = out
            .get("DynamicPorts")
            .and_then(Json::as_array)
            .is_some_and(|ports| {
                ports.iter().any(|p| {
                    p["Label"]
                        .as_str()
                        .is_some_and(|l| l.eq_ignore_ascii_case(label))
                })
            });
        if taken {
            return Err(self.err(
                item.ident_span.clone(),
                ErrorKind::Duplicate(format!("port {label:?} (port labels ignore case)")),
            ));
        }
        Ok(())
    }

    /// A group scales horizontally, up to a `max` it must give.
    fn group_scaling(&self, item: &Item, obj: &Map<String, Json>) -> Result<()> {
        if !obj.contains_key("Max") {
            return Err(self.err(
                item.ident_span.clone(),
                ErrorKind::InvalidValue {
                    field: "scaling.max".to_string(),
                    message: "a group scaling policy needs \"max\"".to_string(),
                },
            ));
        }
        match obj.get("Type").and_then(Json::as_str) {
            None | Some("horizontal") => Ok(()),
            Some(t) => Err(self.err(
                item.ident_span.clone(),
                ErrorKind::InvalidValue {
                    field: "scaling.type".to_string(),
                    message: format!("a group scaling policy is \"horizontal\", not {t:?}"),
                },
            )),
        }
    }

    /// HCL1 writes an unlabelled block as an assignment too: `update = { ... }`, or a list of
    /// them for a repeatable block (`constraint = [{ ... }, { ... }]`).
    fn assigned_blocks(
        &self,
        blk: &'static Blk,
        attr: &hcl_edit::structure::Attribute,
        out: &mut Map<String, Json>,
    ) -> Result<()> {
        if blk.label.is_some() {
            return Err(self.err(
                attr.key.span(),
                ErrorKind::Labels {
                    block: blk.hcl.to_string(),
                    want: 1,
                    got: 0,
                },
            ));
        }
        let objects: Vec<&hcl_edit::expr::Object> = match &attr.value {
            Expression::Object(o) => vec![o],
            Expression::Array(a) if blk.multi == Multi::List => a
                .iter()
                .map(|e| match e {
                    Expression::Object(o) => Ok(o),
                    other => Err(self.err(
                        other.span(),
                        ErrorKind::WrongType {
                            field: blk.hcl.to_string(),
                            expected: "an object",
                            got: "another value".to_string(),
                        },
                    )),
                })
                .collect::<Result<_>>()?,
            other => {
                return Err(self.err(
                    other.span(),
                    ErrorKind::WrongType {
                        field: blk.hcl.to_string(),
                        expected: "a block or an object",
                        got: "another value".to_string(),
                    },
                ));
            }
        };
        for o in objects {
            let body = self.object_body(o)?;
            let item = Item {
                ident_span: attr.key.span(),
                labels: Vec::new(),
                body: &body,
            };
            self.nested(blk, item, &Context::new(), &Scope::default(), out)
                .map_err(|mut e| {
                    // The body's names are made here and have no position: point at the
                    // assignment instead of the file's start.
                    if e.pos == (super::error::Pos { line: 1, column: 1 })
                        && let Some(span) = attr.key.span()
                    {
                        e.pos = self.src.pos(span.start);
                    }
                    e
                })?;
        }
        Ok(())
    }

    /// An object value as a block body of the same arguments (nested objects stay
    /// assignments, which `fields` again reads as blocks where the schema has one).
    fn object_body(&self, o: &hcl_edit::expr::Object) -> Result<Body> {
        let mut attrs = Vec::new();
        for (k, v) in o.iter() {
            let (name, span) = match k {
                hcl_edit::expr::ObjectKey::Ident(i) => (i.as_str().to_string(), i.span()),
                hcl_edit::expr::ObjectKey::Expression(e) => match literal::read(self.src, e)? {
                    Value::String(s) => (s, e.span()),
                    _ => {
                        return Err(self.err(
                            e.span(),
                            ErrorKind::WrongType {
                                field: "object key".to_string(),
                                expected: "a name",
                                got: "another value".to_string(),
                            },
                        ));
                    }
                },
            };
            let ident = hcl_edit::Ident::try_new(name.as_str()).map_err(|_| {
                self.err(
                    span,
                    ErrorKind::InvalidValue {
                        field: name.clone(),
                        message: "not a valid argument name".to_string(),
                    },
                )
            })?;
            attrs.push(hcl_edit::structure::Attribute::new(
                hcl_edit::Decorated::new(ident),
                v.expr().clone(),
            ));
        }
        Ok(Body::builder().attributes(attrs).build())
    }

    /// `dynamic "<type>" { for_each = ..., iterator = "x", labels = [...], content { ... } }`:
    /// one `<type>` block per element, with `<iterator>.key` / `<iterator>.value` in scope.
    /// `emit` files each generated block (its type name, body and labels) into `out`.
    fn dynamic(
        &self,
        block: &Block,
        ctx: &Context,
        scope: &Scope,
        out: &mut Map<String, Json>,
        emit: &mut Emit,
    ) -> Result<()> {
        self.no_labels(block, 1)?;
        let target = block.labels[0].as_str().to_string();
        let mut for_each = None;
        let mut iterator = target.clone();
        let mut labels_expr = None;
        let mut content = None;
        for s in block.body.iter() {
            match s {
                Structure::Attribute(a) => match a.key.as_str() {
                    "for_each" => for_each = Some(&a.value),
                    "labels" => labels_expr = Some(&a.value),
                    "iterator" => {
                        iterator = match &a.value {
                            Expression::Variable(v) => v.as_str().to_string(),
                            other => match self.value(ctx, other, scope)? {
                                Value::String(s) => s,
                                _ => {
                                    return Err(self.err(
                                        a.value.span(),
                                        ErrorKind::WrongType {
                                            field: "iterator".to_string(),
                                            expected: "an identifier",
                                            got: "another value".to_string(),
                                        },
                                    ));
                                }
                            },
                        };
                    }
                    other => {
                        return Err(self.err(
                            a.key.span(),
                            ErrorKind::UnknownArgument {
                                name: other.to_string(),
                                expected: "for_each, iterator, labels, content".to_string(),
                            },
                        ));
                    }
                },
                Structure::Block(b) if b.ident.as_str() == "content" => content = Some(&b.body),
                Structure::Block(b) => {
                    return Err(self.err(
                        b.ident.span(),
                        ErrorKind::UnknownBlock {
                            name: b.ident.as_str().to_string(),
                            expected: "content".to_string(),
                        },
                    ));
                }
            }
        }
        let for_each = for_each.ok_or_else(|| {
            self.err(
                block.ident.span(),
                ErrorKind::Unsupported("a dynamic block needs \"for_each\"".to_string()),
            )
        })?;
        let content = content.ok_or_else(|| {
            self.err(
                block.ident.span(),
                ErrorKind::Unsupported("a dynamic block needs a \"content\" block".to_string()),
            )
        })?;
        let elements: Vec<(Value, Value)> = match self.value(ctx, for_each, scope)? {
            Value::Array(l) => l
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::from(i as u64), v))
                .collect(),
            Value::Object(o) => o.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
            Value::Null => Vec::new(),
            _ => {
                return Err(self.err(
                    for_each.span(),
                    ErrorKind::WrongType {
                        field: "for_each".to_string(),
                        expected: "a list, set or map",
                        got: "another value".to_string(),
                    },
                ));
            }
        };
        let inner_scope = Scope {
            bound: {
                let mut b = scope.bound.clone();
                b.push(iterator.clone());
                b
            },
            ..scope.clone()
        };
        for (key, value) in elements {
            let mut it = hcl::Map::new();
            it.insert("key".to_string(), key);
            it.insert("value".to_string(), value);
            let mut inner = ctx.clone();
            inner.declare_var(iterator.as_str(), Value::Object(it));
            let labels = match labels_expr {
                None => Vec::new(),
                Some(e) => match eval(&inner, self.src, e, &inner_scope)? {
                    Value::Array(l) => l
                        .iter()
                        .map(super::functions::to_str)
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|m| {
                            self.err(
                                e.span(),
                                ErrorKind::InvalidValue {
                                    field: "labels".to_string(),
                                    message: m,
                                },
                            )
                        })?,
                    _ => {
                        return Err(self.err(
                            e.span(),
                            ErrorKind::WrongType {
                                field: "labels".to_string(),
                                expected: "a list of strings",
                                got: "another value".to_string(),
                            },
                        ));
                    }
                },
            };
            let item = Item {
                ident_span: block.ident.span(),
                labels,
                body: content,
            };
            emit(&target, item, &inner, &inner_scope, out)?;
        }
        Ok(())
    }

    /// Arbitrary arguments kept by name; nested blocks become lists of objects.
    fn free(
        &self,
        body: &Body,
        ctx: &Context,
        scope: &Scope,
        out: &mut Map<String, Json>,
    ) -> Result<()> {
        for s in body.iter() {
            match s {
                Structure::Attribute(attr) => {
                    let v = self.value(ctx, &attr.value, scope)?;
                    out.insert(attr.key.as_str().to_string(), to_json(&v));
                }
                Structure::Block(block) if block.ident.as_str() == "dynamic" && !self.hcl1 => {
                    let mut emit = |target: &str,
                                    item: Item,
                                    c: &Context,
                                    sc: &Scope,
                                    o: &mut Map<String, Json>| {
                        self.free_block(target, &item, c, sc, o)
                    };
                    self.dynamic(block, ctx, scope, out, &mut emit)?;
                }
                Structure::Block(block) => {
                    let item = Item {
                        ident_span: block.ident.span(),
                        labels: block
                            .labels
                            .iter()
                            .map(|l| l.as_str().to_string())
                            .collect(),
                        body: &block.body,
                    };
                    self.free_block(block.ident.as_str(), &item, ctx, scope, out)?;
                }
            }
        }
        Ok(())
    }

    /// A block inside a free-form body: appended to the list under its name (HCL2 ignores
    /// labels there, as Nomad's HCL2 decoder does).
    fn free_block(
        &self,
        name: &str,
        item: &Item,
        ctx: &Context,
        scope: &Scope,
        out: &mut Map<String, Json>,
    ) -> Result<()> {
        let mut m = Map::new();
        self.free(item.body, ctx, scope, &mut m)?;
        // HCL1 nests a labelled block under its labels: `a "b" { x = 1 }` is
        // `a = [{ b = [{ x = 1 }] }]`.
        if self.hcl1 {
            for label in item.labels.iter().rev() {
                let mut outer = Map::new();
                outer.insert(label.clone(), Json::Array(vec![Json::Object(m)]));
                m = outer;
            }
        }
        match out
            .entry(name.to_string())
            .or_insert_with(|| Json::Array(Vec::new()))
        {
            Json::Array(l) => {
                l.push(Json::Object(m));
                Ok(())
            }
            _ => Err(self.err(
                item.ident_span.clone(),
                ErrorKind::DuplicateArgument(name.to_string()),
            )),
        }
    }

    fn str_map(
        &self,
        body: &Body,
        ctx: &Context,
        scope: &Scope,
        out: &mut Map<String, Json>,
    ) -> Result<()> {
        for s in body.iter() {
            match s {
                Structure::Attribute(attr) => {
                    let v = self.value(ctx, &attr.value, scope)?;
                    let text = super::functions::to_str(&v).map_err(|_| {
                        self.err(
                            attr.value.span(),
                            ErrorKind::WrongType {
                                field: attr.key.as_str().to_string(),
                                expected: "string",
                                got: kind_of(&v),
                            },
                        )
                    })?;
                    out.insert(attr.key.as_str().to_string(), Json::String(text));
                }
                Structure::Block(b) => {
                    return Err(self.err(
                        b.ident.span(),
                        ErrorKind::Unsupported(format!(
                            "a map of strings holds arguments only, not a {:?} block",
                            b.ident.as_str()
                        )),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Snake_case names turned into API field names (for deep trees such as `connect`).
    fn generic(
        &self,
        body: &Body,
        ctx: &Context,
        scope: &Scope,
        out: &mut Map<String, Json>,
    ) -> Result<()> {
        for s in body.iter() {
            match s {
                Structure::Attribute(attr) => {
                    let name = attr.key.as_str();
                    let v = self.value(ctx, &attr.value, scope)?;
                    let j = if schema::GENERIC_DURATIONS.contains(&name) {
                        self.typed(&v, Ty::Dur, name, &attr.value)?
                    } else {
                        Some(to_json(&v))
                    };
                    if let Some(j) = j {
                        out.insert(generic_name(name), j);
                    }
                }
                Structure::Block(block) => {
                    let name = block.ident.as_str();
                    // Blocks with a typed shape of their own (a sidecar task's resources).
                    if let Some(blk) = schema::GENERIC_TYPED.iter().find(|b| b.hcl == name) {
                        let labels = block
                            .labels
                            .iter()
                            .map(|l| l.as_str().to_string())
                            .collect();
                        let item = Item {
                            ident_span: block.ident.span(),
                            labels,
                            body: &block.body,
                        };
                        self.nested(blk, item, ctx, scope, out)?;
                        continue;
                    }
                    let mut m = Map::new();
                    match name {
                        "config" | "policy" => self.free(&block.body, ctx, scope, &mut m)?,
                        "meta" | "env" => self.str_map(&block.body, ctx, scope, &mut m)?,
                        _ => self.generic(&block.body, ctx, scope, &mut m)?,
                    }
                    let api = generic_name(name);
                    let listed = schema::GENERIC_LISTS.iter().any(|(h, _)| *h == name);
                    match block.labels.as_slice() {
                        [] if listed => {
                            match out.entry(api).or_insert_with(|| Json::Array(Vec::new())) {
                                Json::Array(l) => l.push(Json::Object(m)),
                                _ => {
                                    return Err(self.err(
                                        block.ident.span(),
                                        ErrorKind::Duplicate(name.to_string()),
                                    ));
                                }
                            }
                        }
                        [] => {
                            if out.contains_key(&api) {
                                return Err(self.err(
                                    block.ident.span(),
                                    ErrorKind::Duplicate(name.to_string()),
                                ));
                            }
                            out.insert(api, Json::Object(m));
                        }
                        [label] => match out.entry(api).or_insert_with(|| Json::Object(Map::new()))
                        {
                            Json::Object(o) => {
                                o.insert(label.as_str().to_string(), Json::Object(m));
                            }
                            _ => {
                                return Err(self.err(
                                    block.ident.span(),
                                    ErrorKind::Duplicate(name.to_string()),
                                ));
                            }
                        },
                        _ => {
                            return Err(self.err(
                                block.ident.span(),
                                ErrorKind::Labels {
                                    block: name.to_string(),
                                    want: 1,
                                    got: block.labels.len(),
                                },
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Converts an evaluated argument to its API type; `None` for `null` (unset).
    fn typed(&self, v: &Value, ty: Ty, field: &str, expr: &Expression) -> Result<Option<Json>> {
        if v.is_null() {
            return Ok(None);
        }
        let wrong = |expected: &'static str| {
            self.err(
                expr.span(),
                ErrorKind::WrongType {
                    field: field.to_string(),
                    expected,
                    got: kind_of(v),
                },
            )
        };
        let j = match ty {
            Ty::Str => Json::String(super::functions::to_str(v).map_err(|_| wrong("string"))?),
            Ty::Int if self.hcl1 => match v {
                Value::Bool(b) => Json::from(i64::from(*b)),
                _ => Json::from(int_of(v).ok_or_else(|| wrong("whole number"))?),
            },
            Ty::Int => Json::from(int_of(v).ok_or_else(|| wrong("whole number"))?),
            Ty::Bool if self.hcl1 => Json::Bool(weak_bool(v).ok_or_else(|| wrong("bool"))?),
            Ty::Bool => match v {
                Value::Bool(b) => Json::Bool(*b),
                Value::String(s) if s == "true" || s == "false" => Json::Bool(s == "true"),
                _ => return Err(wrong("bool")),
            },
            // HCL1 takes a single value where a list is expected.
            Ty::StrList if self.hcl1 && !matches!(v, Value::Array(_)) => {
                Json::Array(vec![Json::String(
                    super::functions::to_str(v).map_err(|_| wrong("list of strings"))?,
                )])
            }
            Ty::Dur => match v {
                Value::String(s) => {
                    let ns =
                        yurt_drivers::go_duration::parse_go_duration_nanos(s).map_err(|e| {
                            self.err(
                                expr.span(),
                                ErrorKind::InvalidValue {
                                    field: field.to_string(),
                                    message: format!("{s:?} is not a duration: {e}"),
                                },
                            )
                        })?;
                    Json::from(ns)
                }
                Value::Number(_) => Json::from(int_of(v).ok_or_else(|| wrong("duration"))?),
                _ => return Err(wrong("duration string such as \"10s\"")),
            },
            Ty::StrList => match v {
                Value::Array(l) => Json::Array(
                    l.iter()
                        .map(|x| super::functions::to_str(x).map(Json::String))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| wrong("list of strings"))?,
                ),
                _ => return Err(wrong("list of strings")),
            },
            Ty::StrMap => match v {
                Value::Object(o) => Json::Object(
                    o.iter()
                        .map(|(k, x)| {
                            super::functions::to_str(x).map(|s| (k.clone(), Json::String(s)))
                        })
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| wrong("map of strings"))?,
                ),
                _ => return Err(wrong("map of strings")),
            },
            Ty::Any => to_json(v),
        };
        Ok(Some(j))
    }
}

fn generic_name(name: &str) -> String {
    schema::GENERIC_LISTS
        .iter()
        .find(|(h, _)| *h == name)
        .map_or_else(|| schema::pascal(name), |(_, api)| api.to_string())
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A bool as Nomad's HCL1 decoder reads one: a bool, a number (non-zero is true) or one of
/// Go's `strconv.ParseBool` spellings (an empty string is false).
fn weak_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
            "" | "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
    .to_string()
}

/// An evaluated HCL value as JSON.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(Json::from)
            .or_else(|| n.as_u64().map(Json::from))
            .or_else(|| {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Json::Number)
            })
            .unwrap_or(Json::Null),
        Value::String(s) => Json::String(s.clone()),
        Value::Array(l) => Json::Array(l.iter().map(to_json).collect()),
        Value::Object(o) => Json::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

/// Constraint and affinity operator shorthands (`version = ">= 1"`, `distinct_hosts = true`,
/// ...) become `Operand` + `RTarget` as Nomad decodes them.
fn constraint_shorthands(obj: &mut Map<String, Json>) {
    for op in [
        "version",
        "semver",
        "regexp",
        "set_contains",
        "set_contains_all",
        "set_contains_any",
    ] {
        if let Some(v) = obj.remove(op)
            && v.as_str().is_some_and(|s| !s.is_empty())
        {
            obj.insert("Operand".to_string(), Json::String(op.to_string()));
            obj.insert("RTarget".to_string(), v);
        }
    }
    if let Some(v) = obj.remove("distinct_hosts")
        && v.as_bool() == Some(true)
    {
        obj.insert(
            "Operand".to_string(),
            Json::String("distinct_hosts".to_string()),
        );
    }
    if let Some(v) = obj.remove("distinct_property")
        && v.as_str().is_some_and(|s| !s.is_empty())
    {
        obj.insert(
            "Operand".to_string(),
            Json::String("distinct_property".to_string()),
        );
        obj.insert("LTarget".to_string(), v);
    }
    for f in ["LTarget", "RTarget"] {
        obj.entry(f.to_string())
            .or_insert_with(|| Json::String(String::new()));
    }
    // Nomad's parser writes the implicit equality operator out.
    if obj
        .get("Operand")
        .and_then(Json::as_str)
        .is_none_or(str::is_empty)
    {
        obj.insert("Operand".to_string(), Json::String("=".to_string()));
    }
}
