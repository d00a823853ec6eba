//! `/v1/acl/*`: bootstrap, policies, tokens and roles. Who may call each is declared with
//! the other routes' requirements (`crate::http::permissions`); these handlers only do the
//! work.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::{App, read};
use crate::http::{
    AuthContext, Caller, HttpError, JsonReply, QueryOptions, WriteOptions, decode_json,
};
use crate::server::acl_resolve::{ResolveError, lookup_token, resolve_grant};
use crate::server::state::{Table, Tables};
use crate::structs::acl::{
    AclBootstrapRequest, AclPolicy, AclPolicyListStub, AclRole, AclToken, AclTokenListStub,
};

/// An ACL object a token other than a management one may read when it holds it.
enum Held<'a> {
    /// A policy the token has, directly or through one of its roles.
    Policy(&'a str),
    /// The token itself, by accessor ID.
    Token(&'a str),
    /// One of the token's roles, by ID.
    RoleId(&'a str),
    /// One of the token's roles, by name.
    RoleName(&'a str),
}

/// Whether the caller's token holds `what` (as Nomad lets a client token read its own
/// token, policies and roles); 403 `Permission denied` when not.
fn check_held(app: &App, secret: Option<&str>, what: Held<'_>) -> Result<(), HttpError> {
    let denied = || HttpError::Forbidden("Permission denied".into());
    let secret = secret.ok_or_else(denied)?;
    let snap = app.server.state.snapshot();
    let token = lookup_token(&snap, secret)?;
    let holds = match what {
        Held::Token(accessor) => token.accessor_id == accessor,
        Held::RoleId(id) => token.roles.iter().any(|r| r.id == id),
        Held::RoleName(name) => token.roles.iter().any(|r| {
            snap.acl
                .roles
                .get(&r.id)
                .is_some_and(|role| role.name == name)
        }),
        Held::Policy(name) => resolve_grant(&snap, Some(secret))?
            .policies
            .iter()
            .any(|p| p.name == name),
    };
    if holds { Ok(()) } else { Err(denied()) }
}

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/acl/bootstrap", post(bootstrap).put(bootstrap))
        .route("/v1/acl/policies", get(list_policies))
        .route("/v1/acl/policy/self", get(self_policies))
        .route(
            "/v1/acl/policy/{name}",
            get(read_policy)
                .post(upsert_policy)
                .put(upsert_policy)
                .delete(delete_policy),
        )
        .route("/v1/acl/tokens", get(list_tokens))
        .route("/v1/acl/token", post(create_token).put(create_token))
        .route("/v1/acl/token/self", get(self_token))
        .route(
            "/v1/acl/token/onetime",
            post(create_one_time).put(create_one_time),
        )
        .route(
            "/v1/acl/token/onetime/exchange",
            post(exchange_one_time).put(exchange_one_time),
        )
        .route(
            "/v1/acl/token/{accessor}",
            get(read_token)
                .post(update_token)
                .put(update_token)
                .delete(delete_token),
        )
        .route("/v1/acl/roles", get(list_roles))
        .route("/v1/acl/role", post(create_role).put(create_role))
        .route("/v1/acl/role/name/{name}", get(read_role_by_name))
        .route(
            "/v1/acl/role/{id}",
            get(read_role)
                .post(update_role)
                .put(update_role)
                .delete(delete_role),
        )
}

impl From<ResolveError> for HttpError {
    fn from(e: ResolveError) -> Self {
        HttpError::Forbidden(e.to_string())
    }
}

fn require_enabled(app: &App) -> Result<(), HttpError> {
    if app.server.config.acl.enabled {
        Ok(())
    } else {
        Err(HttpError::bad_request("ACL support disabled"))
    }
}

async fn bootstrap(
    State(app): State<App>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let req: AclBootstrapRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AclBootstrapRequest::default()
    } else {
        decode_json(&body)?
    };
    let token = app.server.acl_bootstrap(Some(req.bootstrap_secret)).await?;
    let index = token.modify_index;
    Ok(JsonReply::write(&opts, index, token).into_response())
}

async fn list_policies(State(app): State<App>, opts: QueryOptions) -> Result<Response, HttpError> {
    require_enabled(&app)?;
    let stubs = |snap: &Tables| {
        snap.acl
            .policies
            .values()
            .filter(|p| p.name.starts_with(&opts.prefix))
            .map(|p| AclPolicyListStub::from(p.as_ref()))
            .collect()
    };
    read::paged(&app, &opts, &[Table::AclPolicies], stubs, |s| {
        s.name.clone()
    })
    .await
}

async fn read_policy(
    State(app): State<App>,
    Caller(acl): Caller,
    Path(name): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    require_enabled(&app)?;
    if !acl.is_management() {
        check_held(&app, opts.auth.token.as_deref(), Held::Policy(&name))?;
    }
    read::object(
        &app,
        &opts,
        &[Table::AclPolicies],
        "ACL policy not found",
        |snap| {
            snap.acl
                .policies
                .get(&name)
                .map(|p| (p.modify_index, p.as_ref().clone()))
        },
    )
    .await
}

/// The policies the caller's token grants (its own and its roles').
async fn self_policies(State(app): State<App>, opts: QueryOptions) -> Result<Response, HttpError> {
    require_enabled(&app)?;
    let secret = opts.auth.token.clone();
    read::reply(
        &app,
        &opts,
        &[Table::AclPolicies, Table::AclTokens, Table::AclRoles],
        |snap| Ok(resolve_grant(snap, secret.as_deref())?.policies),
    )
    .await
}

async fn upsert_policy(
    State(app): State<App>,
    Path(name): Path<String>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let mut policy: AclPolicy = decode_json(&body)?;
    if policy.name.is_empty() {
        policy.name = name.clone();
    }
    if policy.name != name {
        return Err(HttpError::bad_request(
            "ACL policy name does not match request path",
        ));
    }
    let index = app.server.acl_upsert_policy(policy).await?;
    Ok(JsonReply::write(&opts, index, ()).into_response())
}

async fn delete_policy(
    State(app): State<App>,
    Path(name): Path<String>,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let index = app.server.acl_delete_policy(&name).await?;
    Ok(JsonReply::write(&opts, index, ()).into_response())
}

async fn list_tokens(State(app): State<App>, opts: QueryOptions) -> Result<Response, HttpError> {
    require_enabled(&app)?;
    let stubs = |snap: &Tables| {
        snap.acl
            .tokens
            .values()
            .filter(|t| t.accessor_id.starts_with(&opts.prefix))
            .map(|t| AclTokenListStub::from(t.as_ref()))
            .collect()
    };
    read::paged(&app, &opts, &[Table::AclTokens], stubs, |s| {
        s.accessor_id.clone()
    })
    .await
}

async fn read_token(
    State(app): State<App>,
    Caller(acl): Caller,
    Path(accessor): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    require_enabled(&app)?;
    if !acl.is_management() {
        check_held(&app, opts.auth.token.as_deref(), Held::Token(&accessor))?;
    }
    read::object(
        &app,
        &opts,
        &[Table::AclTokens],
        "ACL token not found",
        |snap| {
            snap.acl
                .tokens
                .get(&accessor)
                .map(|t| (t.modify_index, t.as_ref().clone()))
        },
    )
    .await
}

async fn self_token(
    State(app): State<App>,
    opts: QueryOptions,
    auth: AuthContext,
) -> Result<Response, HttpError> {
    require_enabled(&app)?;
    let Some(secret) = auth.token else {
        return Err(HttpError::Forbidden(ResolveError::NotFound.to_string()));
    };
    read::value(&app, &opts, &[Table::AclTokens], |snap| {
        Ok(lookup_token(snap, &secret)?.as_ref().clone())
    })
    .await
    .map(|(_, t)| {
        let index = t.modify_index;
        JsonReply::query(&opts, index, t).into_response()
    })
}

async fn create_one_time(
    State(app): State<App>,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let once = app
        .server
        .acl_create_one_time_token(opts.auth.token.as_deref())
        .await?;
    let index = once.modify_index;
    Ok(JsonReply::write(&opts, index, json!({ "OneTimeToken": once })).into_response())
}

async fn exchange_one_time(
    State(app): State<App>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    #[derive(serde::Deserialize)]
    struct Req {
        #[serde(rename = "OneTimeSecretID", default)]
        secret: Option<String>,
    }
    let req: Req = decode_json(&body)?;
    let secret = req
        .secret
        .filter(|s| !s.is_empty())
        .ok_or_else(|| HttpError::bad_request("missing OneTimeSecretID"))?;
    let token = app.server.acl_exchange_one_time_token(&secret).await?;
    let index = token.modify_index;
    Ok(JsonReply::write(&opts, index, json!({ "Token": token })).into_response())
}

async fn create_token(
    State(app): State<App>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let mut token: AclToken = decode_json(&body)?;
    token.accessor_id.clear();
    let token = app.server.acl_upsert_token(token).await?;
    let index = token.modify_index;
    Ok(JsonReply::write(&opts, index, token).into_response())
}

async fn update_token(
    State(app): State<App>,
    Path(accessor): Path<String>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let mut token: AclToken = decode_json(&body)?;
    if token.accessor_id.is_empty() {
        token.accessor_id = accessor.clone();
    }
    if token.accessor_id != accessor {
        return Err(HttpError::bad_request(
            "ACL token accessor does not match request path",
        ));
    }
    let token = app.server.acl_upsert_token(token).await?;
    let index = token.modify_index;
    Ok(JsonReply::write(&opts, index, token).into_response())
}

async fn delete_token(
    State(app): State<App>,
    Path(accessor): Path<String>,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let index = app.server.acl_delete_token(&accessor).await?;
    Ok(JsonReply::write(&opts, index, ()).into_response())
}

async fn list_roles(State(app): State<App>, opts: QueryOptions) -> Result<Response, HttpError> {
    require_enabled(&app)?;
    let roles = |snap: &Tables| {
        snap.acl
            .roles
            .values()
            .filter(|r| r.id.starts_with(&opts.prefix))
            .map(|r| r.as_ref().clone())
            .collect()
    };
    read::paged(&app, &opts, &[Table::AclRoles], roles, |r: &AclRole| {
        r.id.clone()
    })
    .await
}

async fn read_role(
    State(app): State<App>,
    Caller(acl): Caller,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    require_enabled(&app)?;
    if !acl.is_management() {
        check_held(&app, opts.auth.token.as_deref(), Held::RoleId(&id))?;
    }
    read::object(
        &app,
        &opts,
        &[Table::AclRoles],
        "ACL role not found",
        |snap| {
            snap.acl
                .roles
                .get(&id)
                .map(|r| (r.modify_index, r.as_ref().clone()))
        },
    )
    .await
}

async fn read_role_by_name(
    State(app): State<App>,
    Caller(acl): Caller,
    Path(name): Path<String>,
    opts: QueryOptions,
) -> Result<Response, HttpError> {
    require_enabled(&app)?;
    if !acl.is_management() {
        check_held(&app, opts.auth.token.as_deref(), Held::RoleName(&name))?;
    }
    read::object(
        &app,
        &opts,
        &[Table::AclRoles],
        "ACL role not found",
        |snap| {
            snap.acl
                .role_by_name(&name)
                .map(|r| (r.modify_index, r.as_ref().clone()))
        },
    )
    .await
}

async fn create_role(
    State(app): State<App>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let mut role: AclRole = decode_json(&body)?;
    if !role.id.is_empty() {
        return Err(HttpError::bad_request(
            "ACL role ID must not be set when creating a role",
        ));
    }
    role.id.clear();
    let role = app.server.acl_upsert_role(role).await?;
    let index = role.modify_index;
    Ok(JsonReply::write(&opts, index, role).into_response())
}

async fn update_role(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: WriteOptions,
    body: Bytes,
) -> Result<Response, HttpError> {
    let mut role: AclRole = decode_json(&body)?;
    if role.id.is_empty() {
        role.id = id.clone();
    }
    if role.id != id {
        return Err(HttpError::bad_request(
            "ACL role ID does not match request path",
        ));
    }
    let role = app.server.acl_upsert_role(role).await?;
    let index = role.modify_index;
    Ok(JsonReply::write(&opts, index, role).into_response())
}

async fn delete_role(
    State(app): State<App>,
    Path(id): Path<String>,
    opts: WriteOptions,
) -> Result<Response, HttpError> {
    let index = app.server.acl_delete_role(&id).await?;
    Ok(JsonReply::write(&opts, index, ()).into_response())
}
