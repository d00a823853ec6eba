//! `/v1/vars` and `/v1/var/:path`: list, read, write (with `cas`), delete, and the lock
//! operations (`?lock-acquire`, `?lock-renew`, `?lock-release`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use super::{App, read};
use crate::acl::VarOp;
use crate::http::respond::HEADER_INDEX;
use crate::http::{
    Caller, HttpError, JsonReply, QueryOptions, QueryParams, WriteOptions, decode_optional_json,
};
use crate::server::ops::variables::{Applied, VarWrite};
use crate::server::state::{Table, Tables};
use crate::structs::variable::{VariableDecrypted, VariableMetadata};

const LOCK_ACQUIRE: &str = "lock-acquire";
const LOCK_RENEW: &str = "lock-renew";
const LOCK_RELEASE: &str = "lock-release";

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/vars", get(list))
        .route("/v1/var", any(missing_path))
        .route("/v1/var/", any(missing_path))
        .route(
            "/v1/var/{*path}",
            get(read_one).put(write).post(write).delete(delete),
        )
}

async fn missing_path() -> HttpError {
    HttpError::bad_request("missing variable path")
}

async fn list(
    State(app): State<App>,
    Caller(acl): Caller,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let management = acl.is_management();
    let items = |snap: &Tables| {
        snap.vars
            .with_prefix(&opts.namespace, &opts.prefix)
            .iter()
            .filter(|v| acl.allow_variable_op(&v.meta.namespace, &v.meta.path, VarOp::List))
            .map(|v| shown(v.meta.clone(), management))
            .collect()
    };
    let key = |m: &VariableMetadata| format!("{}.{}", m.namespace, m.path);
    read::paged(&app, &opts, &[Table::Variables], items, key).await
}

/// What a caller sees of a variable's metadata: the lock only with a management token.
fn shown(mut meta: VariableMetadata, management: bool) -> VariableMetadata {
    if !management {
        meta.lock = None;
    }
    meta
}

async fn read_one(
    State(app): State<App>,
    Caller(acl): Caller,
    Path(path): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    let (index, found) = read::find_object(&app, &opts, &[Table::Variables], |snap| {
        snap.vars
            .get(&opts.namespace, &path)
            .map(|v| (v.meta.modify_index, v))
    })
    .await?;
    let var = found.ok_or_else(|| HttpError::not_found("variable not found"))?;
    let mut var = app.server.open_variable(&var)?;
    var.meta = shown(var.meta, acl.is_management());
    Ok(JsonReply::query(&opts, index, var).into_response())
}

/// The one lock operation a request names, if any.
fn lock_operation(params: &QueryParams) -> Result<Option<&'static str>, HttpError> {
    let named: Vec<&'static str> = [LOCK_ACQUIRE, LOCK_RENEW, LOCK_RELEASE]
        .into_iter()
        .filter(|op| params.get(op).is_some())
        .collect();
    match named.as_slice() {
        [] => Ok(None),
        [op] => Ok(Some(op)),
        _ => Err(HttpError::bad_request("multiple lock operations")),
    }
}

/// `?cas=<index>`, when given.
fn cas(params: &QueryParams) -> Result<Option<u64>, HttpError> {
    match params.non_empty("cas") {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|e| HttpError::bad_request(format!("can not parse cas: {e}"))),
    }
}

async fn write(
    State(app): State<App>,
    Caller(acl): Caller,
    Path(path): Path<String>,
    params: QueryParams,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let lock_op = lock_operation(&params)?;
    let cas = cas(&params)?;
    if cas.is_some() && lock_op.is_some() {
        return Err(HttpError::bad_request(
            "CAS can't be used with lock operations",
        ));
    }
    // An empty body and `null` are both a variable with nothing in it (a lock operation
    // needs nothing more).
    let mut var = decode_optional_json::<Option<VariableDecrypted>>(&body)?
        .flatten()
        .unwrap_or_default();
    // The path in the URL is the one written, whatever the body says.
    var.meta.path = path;
    if var.meta.namespace.is_empty() {
        var.meta.namespace = opts.namespace.clone();
    }
    let op = match lock_op {
        None if var.items.is_empty() => {
            return Err(HttpError::bad_request(
                "variable missing required Items object",
            ));
        }
        None => cas.map_or(VarWrite::Set, VarWrite::Cas),
        Some(LOCK_RENEW) => {
            let lock_id = var.meta.lock_id().unwrap_or("");
            let meta =
                app.server
                    .renew_variable_lock(&var.meta.namespace, &var.meta.path, lock_id)?;
            return Ok(JsonReply::write(&opts, meta.modify_index, meta).into_response());
        }
        Some(LOCK_ACQUIRE) => VarWrite::LockAcquire,
        Some(_) => VarWrite::LockRelease,
    };
    let applied = app.server.apply_variable(op, var, &acl).await?;
    Ok(answer(&opts, applied, StatusCode::OK))
}

async fn delete(
    State(app): State<App>,
    Caller(acl): Caller,
    Path(path): Path<String>,
    params: QueryParams,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let op = cas(&params)?.map_or(VarWrite::Delete, VarWrite::DeleteCas);
    let var = VariableDecrypted {
        meta: VariableMetadata::bare(&opts.namespace, &path),
        ..VariableDecrypted::default()
    };
    let applied = app.server.apply_variable(op, var, &acl).await?;
    Ok(answer(&opts, applied, StatusCode::NO_CONTENT))
}

/// A write's answer: the variable written (or `ok` with no body), or a 409 carrying the
/// variable as it is, indexed at its own ModifyIndex as Nomad does.
fn answer(opts: &WriteOptions, applied: Applied, ok: StatusCode) -> Response {
    match applied {
        Applied::Done {
            index,
            output: Some(var),
        } if ok == StatusCode::OK => JsonReply::write(opts, index, var).into_response(),
        Applied::Done { index, .. } => {
            let mut resp = ok.into_response();
            resp.headers_mut()
                .insert(HEADER_INDEX, HeaderValue::from(index.max(1)));
            resp
        }
        Applied::Conflict { index, current } => {
            let shown_index = match current.meta.modify_index {
                0 => index,
                i => i,
            };
            let mut resp = JsonReply::write(opts, shown_index, current).into_response();
            *resp.status_mut() = StatusCode::CONFLICT;
            resp
        }
    }
}
