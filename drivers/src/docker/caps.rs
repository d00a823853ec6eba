//! Linux capability sets for containers: Nomad's defaults and its `cap_add`/`cap_drop` delta.

use std::collections::BTreeSet;

/// Nomad's default capability set (`capabilities.NomadDefaults`): also the default `allow_caps`.
/// The same list the exec driver uses; kept in one place.
pub const NOMAD_DEFAULTS: &[&str] = &crate::isolation::caps::NOMAD_EXEC_DEFAULT_CAPS;

/// Canonical spelling: upper case without the optional `CAP_` prefix (`all` stays `ALL`).
pub fn normalize(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    upper
        .strip_prefix("CAP_")
        .map(str::to_string)
        .unwrap_or(upper)
}

/// The container's CapAdd/CapDrop lists, Nomad's `capabilities.Delta` for docker.
///
/// Docker starts from its own default set (Nomad's defaults plus NET_RAW); everything in that
/// basis the operator did not allow is dropped, and `cap_add` must stay within `allow_caps`.
pub fn delta(
    allow_caps: &[String],
    cap_add: &[String],
    cap_drop: &[String],
) -> Result<(Vec<String>, Vec<String>), String> {
    let allowed: BTreeSet<String> = allow_caps.iter().map(|c| normalize(c)).collect();
    let allow_all = allowed.contains("ALL");
    let add: Vec<String> = cap_add.iter().map(|c| normalize(c)).collect();
    let drop: Vec<String> = cap_drop.iter().map(|c| normalize(c)).collect();

    let missing: Vec<&String> = add
        .iter()
        .filter(|c| !allow_all && !allowed.contains(*c))
        .collect();
    if !missing.is_empty() {
        let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err(format!(
            "Docker driver doesn't have the following caps allowlisted on this Nomad agent: [{}]",
            list.join(" ")
        ));
    }
    if add.iter().any(|c| c == "ALL") {
        return Ok((vec!["ALL".to_string()], Vec::new()));
    }
    if drop.iter().any(|c| c == "ALL") {
        return Ok((add, vec!["ALL".to_string()]));
    }
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    if !allow_all {
        for cap in NOMAD_DEFAULTS.iter().copied().chain(["NET_RAW"]) {
            if !allowed.contains(cap) && !add.iter().any(|a| a == cap) {
                dropped.insert(cap.to_string());
            }
        }
    }
    dropped.extend(drop);
    Ok((add, dropped.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        NOMAD_DEFAULTS.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn net_raw_dropped_by_default() {
        let (add, drop) = delta(&defaults(), &[], &[]).unwrap();
        assert!(add.is_empty());
        assert_eq!(drop, vec!["NET_RAW".to_string()]);
    }

    #[test]
    fn cap_add_outside_allow_list_fails() {
        let err = delta(&defaults(), &["sys_admin".into()], &[]).unwrap_err();
        assert!(err.contains("SYS_ADMIN"), "{err}");
    }

    #[test]
    fn cap_drop_and_prefix_are_normalized() {
        let mut allow = defaults();
        allow.push("NET_RAW".into());
        let (add, drop) = delta(&allow, &["cap_net_raw".into()], &["chown".into()]).unwrap();
        assert_eq!(add, vec!["NET_RAW".to_string()]);
        assert_eq!(drop, vec!["CHOWN".to_string()]);
    }
}
