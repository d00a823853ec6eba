//! The ACL objects on the wire (Nomad's `ACLPolicy`, `ACLToken`, `ACLRole` and their list
//! stubs). A token's `SecretID` is never printed by `Debug`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::de::null_default;

/// Token type granting everything.
pub const TOKEN_TYPE_MANAGEMENT: &str = "management";
/// Token type granted by its policies and roles.
pub const TOKEN_TYPE_CLIENT: &str = "client";
/// Name of the policy that applies to requests without a token.
pub const ANONYMOUS_POLICY: &str = "anonymous";

/// A named set of rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclPolicy {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub description: String,
    /// The rules as written (HCL or JSON).
    #[serde(deserialize_with = "null_default")]
    pub rules: String,
    #[serde(rename = "JobACL", skip_serializing_if = "Option::is_none")]
    pub job_acl: Option<serde_json::Value>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A policy as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AclPolicyListStub {
    pub name: String,
    pub description: String,
    pub create_index: u64,
    pub modify_index: u64,
}

impl From<&AclPolicy> for AclPolicyListStub {
    fn from(p: &AclPolicy) -> Self {
        Self {
            name: p.name.clone(),
            description: p.description.clone(),
            create_index: p.create_index,
            modify_index: p.modify_index,
        }
    }
}

/// A role or policy a token or role points at (by ID or by name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclRoleLink {
    #[serde(rename = "ID", deserialize_with = "null_default")]
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
}

/// A policy a role grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclPolicyLink {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
}

/// A named set of policies tokens can be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclRole {
    #[serde(rename = "ID", deserialize_with = "null_default")]
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub description: String,
    #[serde(deserialize_with = "null_default")]
    pub policies: Vec<AclPolicyLink>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A token. `secret_id` is the bearer credential.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclToken {
    #[serde(rename = "AccessorID", deserialize_with = "null_default")]
    pub accessor_id: String,
    #[serde(rename = "SecretID", deserialize_with = "null_default")]
    pub secret_id: String,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub r#type: String,
    #[serde(deserialize_with = "null_default")]
    pub policies: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub roles: Vec<AclRoleLink>,
    pub global: bool,
    pub create_time: Option<DateTime<Utc>>,
    pub expiration_time: Option<DateTime<Utc>>,
    /// Nanoseconds; on create, sets `expiration_time` from `create_time`.
    #[serde(rename = "ExpirationTTL", deserialize_with = "super::de::int")]
    pub expiration_ttl: i64,
    pub create_index: u64,
    pub modify_index: u64,
}

impl fmt::Debug for AclToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AclToken")
            .field("accessor_id", &self.accessor_id)
            .field("secret_id", &"<redacted>")
            .field("name", &self.name)
            .field("type", &self.r#type)
            .field("policies", &self.policies)
            .field("roles", &self.roles)
            .field("expiration_time", &self.expiration_time)
            .finish()
    }
}

impl AclToken {
    /// True for a management token.
    pub fn is_management(&self) -> bool {
        self.r#type == TOKEN_TYPE_MANAGEMENT
    }

    /// True once its expiration time has passed.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiration_time.is_some_and(|t| t <= now)
    }
}

/// A token as listed: without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AclTokenListStub {
    #[serde(rename = "AccessorID")]
    pub accessor_id: String,
    pub name: String,
    pub r#type: String,
    pub policies: Vec<String>,
    pub roles: Vec<AclRoleLink>,
    pub global: bool,
    pub create_time: Option<DateTime<Utc>>,
    pub expiration_time: Option<DateTime<Utc>>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl From<&AclToken> for AclTokenListStub {
    fn from(t: &AclToken) -> Self {
        Self {
            accessor_id: t.accessor_id.clone(),
            name: t.name.clone(),
            r#type: t.r#type.clone(),
            policies: t.policies.clone(),
            roles: t.roles.clone(),
            global: t.global,
            create_time: t.create_time,
            expiration_time: t.expiration_time,
            create_index: t.create_index,
            modify_index: t.modify_index,
        }
    }
}

/// A short-lived secret that can be exchanged once for the token it was made for (the UI's
/// sign-in links).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct OneTimeToken {
    #[serde(rename = "OneTimeSecretID", deserialize_with = "null_default")]
    pub one_time_secret_id: String,
    #[serde(rename = "AccessorID", deserialize_with = "null_default")]
    pub accessor_id: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl fmt::Debug for OneTimeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeToken")
            .field("accessor_id", &self.accessor_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/acl/bootstrap` body.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclBootstrapRequest {
    #[serde(deserialize_with = "null_default")]
    pub bootstrap_secret: String,
}

impl fmt::Debug for AclBootstrapRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AclBootstrapRequest { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let t = AclToken {
            accessor_id: "acc".into(),
            secret_id: "s3cr3t-value".into(),
            ..AclToken::default()
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("acc"));
    }

    #[test]
    fn token_json_uses_nomad_names() {
        let t: AclToken = serde_json::from_str(
            r#"{"Name":"x","Type":"client","Policies":["a"],"ExpirationTTL":1000000000,"Roles":null}"#,
        )
        .unwrap();
        assert_eq!(t.expiration_ttl, 1_000_000_000);
        let v = serde_json::to_value(&t).unwrap();
        for k in [
            "AccessorID",
            "SecretID",
            "ExpirationTTL",
            "ExpirationTime",
            "CreateTime",
            "Global",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
    }
}
