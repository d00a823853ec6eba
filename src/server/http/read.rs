//! The shape every read of the server API shares, written once: wait on the tables the answer
//! depends on (a blocking query when `?index` is set), read a snapshot, and reply with the
//! index headers. Handlers only say which tables and what to read.
//!
//! The index an answer reports: for a list, the highest index of its tables; for one object,
//! the object's own ModifyIndex (so a blocking read wakes only when that object changes), or
//! the index of its table when it does not exist.

use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::App;
use crate::http::filter::filter_items;
use crate::http::{HttpError, JsonReply, QueryOptions, blocking_query, paginate};
use crate::server::state::{Table, Tables};

/// Reads `value(snapshot)` as a blocking query over `tables`, with the highest of their
/// indexes.
pub(super) async fn value<T>(
    app: &App,
    opts: &QueryOptions,
    tables: &[Table],
    value: impl Fn(&Tables) -> Result<T, HttpError>,
) -> Result<(u64, T), HttpError> {
    let state = &app.server.state;
    let watches: Vec<_> = tables.iter().map(|t| state.watch(*t)).collect();
    blocking_query(&watches, opts, || {
        let snap = state.snapshot();
        std::future::ready(value(&snap).map(|v| (snap.max_index(tables), v)))
    })
    .await
}

/// A whole answer (a list, or a value that may be null) read over `tables`.
pub(super) async fn reply<T: Serialize>(
    app: &App,
    opts: &QueryOptions,
    tables: &[Table],
    value: impl Fn(&Tables) -> Result<T, HttpError>,
) -> Result<Response, HttpError> {
    let (index, value) = self::value(app, opts, tables, value).await?;
    Ok(JsonReply::query(opts, index, value).into_response())
}

/// A list answered one page at a time (`?per_page`, `?next_token`, `?reverse`) and filtered
/// by `?filter`; `items` must come in ascending `key` order.
pub(super) async fn paged<T: Serialize>(
    app: &App,
    opts: &QueryOptions,
    tables: &[Table],
    items: impl Fn(&Tables) -> Vec<T>,
    key: impl Fn(&T) -> String,
) -> Result<Response, HttpError> {
    // Filtered before paging, as Nomad does: a page holds `per_page` items that pass.
    let (index, items) = value(app, opts, tables, |snap| {
        filter_items(&opts.filter, items(snap)).map_err(|e| HttpError::bad_request(e.to_string()))
    })
    .await?;
    let page = paginate(items, opts, key);
    Ok(JsonReply::query(opts, index, page.items)
        .next_token(page.next_token)
        .into_response())
}

/// One object found by `find` (its ModifyIndex and its API form); a 404 with `not_found` when
/// there is none. `tables[0]` is the object's own table.
pub(super) async fn object<T: Serialize>(
    app: &App,
    opts: &QueryOptions,
    tables: &[Table],
    not_found: &'static str,
    find: impl Fn(&Tables) -> Option<(u64, T)>,
) -> Result<Response, HttpError> {
    let (index, found) = find_object(app, opts, tables, find).await?;
    let value = found.ok_or_else(|| HttpError::not_found(not_found))?;
    Ok(JsonReply::query(opts, index, value).into_response())
}

/// [`object`] without the reply, for a handler that still has work to do on what it found:
/// the index to report and the object, if there is one.
pub(super) async fn find_object<T>(
    app: &App,
    opts: &QueryOptions,
    tables: &[Table],
    find: impl Fn(&Tables) -> Option<(u64, T)>,
) -> Result<(u64, Option<T>), HttpError> {
    let state = &app.server.state;
    let watches: Vec<_> = tables.iter().map(|t| state.watch(*t)).collect();
    blocking_query(&watches, opts, || {
        let snap = state.snapshot();
        std::future::ready(Ok::<_, HttpError>(match find(&snap) {
            Some((modify_index, value)) => (modify_index, Some(value)),
            None => (tables.first().map_or(0, |t| snap.table_index(*t)), None),
        }))
    })
    .await
}
