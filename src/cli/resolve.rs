//! Resolving the short ID prefixes users type (`yurt alloc status 3f2a`) to the one object
//! they name, with Nomad's messages when a prefix names nothing or several objects.

use serde_json::Value;

use super::api_client::ApiClient;
use super::output::CliError;

/// A kind of object that commands take by ID prefix.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// Singular noun in messages (`allocation`).
    pub noun: &'static str,
    /// Plural noun in the "Prefix matched multiple …" message.
    pub plural: &'static str,
    /// The list endpoint that takes `?prefix=`.
    pub list_path: &'static str,
    /// The noun of the "… must contain at least two characters" message, when the kind is
    /// identified by a UUID (a one-character prefix matches too much to be useful).
    pub short_noun: Option<&'static str>,
    /// Whether the not-found message says "prefix or id" (Nomad's node commands say
    /// "prefix" only).
    pub or_id: bool,
}

pub const ALLOC: Kind = Kind {
    noun: "allocation",
    plural: "allocations",
    list_path: "/v1/allocations",
    short_noun: Some("Alloc ID"),
    or_id: true,
};

pub const EVAL: Kind = Kind {
    noun: "evaluation",
    plural: "evaluations",
    list_path: "/v1/evaluations",
    short_noun: Some("Identifier"),
    or_id: true,
};

pub const DEPLOYMENT: Kind = Kind {
    noun: "deployment",
    plural: "deployments",
    list_path: "/v1/deployments",
    short_noun: None,
    or_id: true,
};

pub const NODE: Kind = Kind {
    noun: "node",
    plural: "nodes",
    list_path: "/v1/nodes",
    short_noun: Some("Node ID"),
    or_id: false,
};

pub const JOB: Kind = Kind {
    noun: "job",
    plural: "jobs",
    list_path: "/v1/jobs",
    short_noun: None,
    or_id: true,
};

/// The list stub of the one `kind` object whose ID is `prefix` or starts with it. An exact
/// ID wins among several matches; otherwise several matches are an error listing them in
/// `table`'s layout.
pub async fn resolve(
    api: &ApiClient,
    kind: Kind,
    prefix: &str,
    table: impl Fn(&[Value]) -> String,
) -> Result<Value, CliError> {
    if let Some(noun) = kind.short_noun
        && prefix.chars().count() < 2
    {
        return Err(format!("{noun} must contain at least two characters.").into());
    }
    let found: Vec<Value> = api
        .get_json(kind.list_path, &[("prefix", prefix)])
        .await
        .map_err(|e| CliError(format!("Error querying {}: {e}", kind.noun)))?;
    pick(kind, prefix, found, table)
}

fn pick(
    kind: Kind,
    prefix: &str,
    mut found: Vec<Value>,
    table: impl Fn(&[Value]) -> String,
) -> Result<Value, CliError> {
    // UUID prefixes are matched as whole bytes server-side (an odd-length prefix loses its
    // last character), so the list can hold IDs the prefix does not start.
    found.retain(|v| v["ID"].as_str().is_some_and(|id| id.starts_with(prefix)));
    if let Some(exact) = found.iter().find(|v| v["ID"] == prefix) {
        return Ok(exact.clone());
    }
    match found.len() {
        0 => {
            let what = if kind.or_id { "prefix or id" } else { "prefix" };
            Err(format!("No {}(s) with {what} {prefix:?} found", kind.noun).into())
        }
        1 => Ok(found.into_iter().next().unwrap_or_default()),
        _ => Err(format!(
            "Prefix matched multiple {}\n\n{}",
            kind.plural,
            table(&found)
        )
        .into()),
    }
}

/// The ID of a resolved stub.
pub fn id_of(stub: &Value) -> String {
    stub["ID"].as_str().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(v: &[Value]) -> String {
        v.iter().map(id_of).collect::<Vec<_>>().join(",")
    }

    #[test]
    fn one_match_an_exact_id_or_an_error_listing_them() {
        let one = pick(EVAL, "ab", vec![json!({"ID": "abc"})], ids).unwrap();
        assert_eq!(id_of(&one), "abc");
        let exact = pick(
            JOB,
            "web",
            vec![json!({"ID": "web"}), json!({"ID": "web2"})],
            ids,
        )
        .unwrap();
        assert_eq!(id_of(&exact), "web");
        let many = pick(
            EVAL,
            "ab",
            vec![json!({"ID": "abc"}), json!({"ID": "abd"})],
            ids,
        )
        .unwrap_err();
        assert_eq!(many.0, "Prefix matched multiple evaluations\n\nabc,abd");
        let none = pick(ALLOC, "zz", vec![], ids).unwrap_err();
        assert_eq!(none.0, "No allocation(s) with prefix or id \"zz\" found");
        let odd = pick(
            EVAL,
            "abc",
            vec![json!({"ID": "abc1"}), json!({"ID": "abd2"})],
            ids,
        )
        .unwrap();
        assert_eq!(id_of(&odd), "abc1");
        let none = pick(NODE, "zz", vec![], ids).unwrap_err();
        assert_eq!(none.0, "No node(s) with prefix \"zz\" found");
    }
}
