//! Nomad-style paging: `?per_page=N&next_token=K` over a list sorted by key. A page starts at
//! the first item whose key is ≥ `next_token`; the key of the first item left over becomes
//! the `X-Nomad-NextToken` of the response.

use super::QueryOptions;

/// One page of results and the token for the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items on this page, in input order.
    pub items: Vec<T>,
    /// Key of the first item of the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// Pages `items`, which must already be in ascending key order (descending with
/// `?reverse=true`, in which case a page starts at the first key ≤ `next_token`).
///
/// `per_page` of `None` returns everything after `next_token`, unpaged.
pub fn paginate<T, I, F>(items: I, opts: &QueryOptions, key: F) -> Page<T>
where
    I: IntoIterator<Item = T>,
    F: Fn(&T) -> String,
{
    paginate_raw(
        items,
        opts.per_page,
        opts.next_token.as_deref(),
        opts.reverse,
        key,
    )
}

/// `paginate` with the paging parameters given explicitly.
pub fn paginate_raw<T, I, F>(
    items: I,
    per_page: Option<u32>,
    next_token: Option<&str>,
    reverse: bool,
    key: F,
) -> Page<T>
where
    I: IntoIterator<Item = T>,
    F: Fn(&T) -> String,
{
    let before_start = |item: &T| match next_token {
        None => false,
        Some(tok) if reverse => key(item).as_str() > tok,
        Some(tok) => key(item).as_str() < tok,
    };
    let mut rest = items.into_iter().skip_while(|item| before_start(item));
    let Some(limit) = per_page.map(|n| n as usize) else {
        return Page {
            items: rest.collect(),
            next_token: None,
        };
    };
    let items: Vec<T> = rest.by_ref().take(limit).collect();
    let next_token = rest.next().map(|item| key(&item));
    Page { items, next_token }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<&'static str> {
        vec!["a", "b", "c", "d", "e"]
    }

    fn page(per_page: Option<u32>, tok: Option<&str>) -> Page<&'static str> {
        paginate_raw(ids(), per_page, tok, false, |s| s.to_string())
    }

    #[test]
    fn unpaged_returns_all() {
        assert_eq!(page(None, None).items, ids());
        assert_eq!(page(None, None).next_token, None);
        assert_eq!(page(None, Some("c")).items, vec!["c", "d", "e"]);
    }

    #[test]
    fn walks_pages_with_tokens() {
        let p1 = page(Some(2), None);
        assert_eq!(p1.items, vec!["a", "b"]);
        assert_eq!(p1.next_token.as_deref(), Some("c"));
        let p2 = page(Some(2), p1.next_token.as_deref());
        assert_eq!(p2.items, vec!["c", "d"]);
        assert_eq!(p2.next_token.as_deref(), Some("e"));
        let p3 = page(Some(2), p2.next_token.as_deref());
        assert_eq!(p3.items, vec!["e"]);
        assert_eq!(p3.next_token, None);
    }

    #[test]
    fn exact_fit_has_no_next_token() {
        let p = page(Some(5), None);
        assert_eq!(p.items.len(), 5);
        assert_eq!(p.next_token, None);
    }

    #[test]
    fn token_between_keys_and_past_end() {
        assert_eq!(page(Some(2), Some("bb")).items, vec!["c", "d"]);
        assert!(page(Some(2), Some("z")).items.is_empty());
    }

    #[test]
    fn reverse_order() {
        let rev: Vec<_> = ids().into_iter().rev().collect();
        let p = paginate_raw(rev.clone(), Some(2), None, true, |s| s.to_string());
        assert_eq!(p.items, vec!["e", "d"]);
        assert_eq!(p.next_token.as_deref(), Some("c"));
        let p = paginate_raw(rev, Some(2), Some("c"), true, |s| s.to_string());
        assert_eq!(p.items, vec!["c", "b"]);
    }

    #[test]
    fn uses_query_options() {
        let opts = QueryOptions {
            per_page: Some(1),
            next_token: Some("b".into()),
            ..QueryOptions::default()
        };
        let p = paginate(ids(), &opts, |s| s.to_string());
        assert_eq!(p.items, vec!["b"]);
        assert_eq!(p.next_token.as_deref(), Some("c"));
    }
}
