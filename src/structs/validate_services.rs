//! What Nomad refuses in `provider = "nomad"` services: its own checks are HTTP and TCP only,
//! at least a second apart, and the Consul-only knobs (pass/fail thresholds, warnings,
//! driver addresses) are refused rather than silently ignored.

use std::time::Duration;

use super::job::{Service, ServiceCheck};
use super::service::PROVIDER_NOMAD;
use super::time::format_go_duration;

/// Nomad's shortest check interval and timeout.
const MIN_CHECK: i64 = 1_000_000_000;

fn go(nanos: i64) -> String {
    format_go_duration(Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)))
}

/// Why Nomad would refuse `c` in a Nomad service, if it would.
fn check_problem(c: &ServiceCheck) -> Option<String> {
    let ty = c.r#type.to_lowercase();
    if ty != "tcp" && ty != "http" {
        return Some(format!(
            "invalid check type ({ty:?}), must be one of tcp, http"
        ));
    }
    if ty == "http" {
        if c.path.is_empty() {
            return Some("http type must have http path".into());
        }
        if c.path.contains("://") {
            return Some("http type must have relative http path".into());
        }
    }
    let min = go(MIN_CHECK);
    if c.interval == 0 {
        return Some(format!(
            "missing required value interval. Interval cannot be less than {min}"
        ));
    }
    if c.interval < MIN_CHECK {
        return Some(format!(
            "interval ({}) cannot be lower than {min}",
            go(c.interval)
        ));
    }
    if c.timeout == 0 {
        return Some(format!(
            "missing required value timeout. Timeout cannot be less than {min}"
        ));
    }
    if c.timeout < MIN_CHECK {
        return Some(format!(
            "timeout ({}) is lower than required minimum timeout {min}",
            go(c.timeout)
        ));
    }
    if !matches!(
        c.initial_status.as_str(),
        "" | "passing" | "warning" | "critical"
    ) {
        return Some(format!(
            "invalid initial check state ({}), must be one of passing, warning, critical or empty",
            c.initial_status
        ));
    }
    if c.on_update == "ignore_warnings" {
        return Some(
            "on_update may only be set to ignore_warnings for Consul service checks".into(),
        );
    }
    if c.check_restart.as_ref().is_some_and(|r| r.ignore_warnings) {
        return Some(
            "ignore_warnings on check_restart only supported for Consul service checks".into(),
        );
    }
    if c.address_mode == "driver" {
        return Some("address_mode = driver may only be set for Consul service checks".into());
    }
    for (value, name) in [
        (c.success_before_passing, "success_before_passing"),
        (c.failures_before_critical, "failures_before_critical"),
        (c.failures_before_warning, "failures_before_warning"),
    ] {
        if value != 0 {
            return Some(format!("{name} may only be set for Consul service checks"));
        }
    }
    None
}

/// The problems of the Nomad services among `services`, each named as Nomad names them.
pub fn nomad_service_errors(services: &[Service]) -> Vec<String> {
    let mut errs = Vec::new();
    for (i, s) in services.iter().enumerate() {
        if s.provider != PROVIDER_NOMAD {
            continue;
        }
        let mut problems: Vec<String> = s
            .checks
            .iter()
            .flatten()
            .filter_map(check_problem)
            .collect();
        if s.connect.is_some() {
            problems.push("Service with provider nomad cannot include Connect blocks".into());
        }
        errs.extend(
            problems
                .into_iter()
                .map(|p| format!("service[{i}] {:?} validation failed: {p}", s.name)),
        );
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(checks: serde_json::Value) -> Vec<Service> {
        vec![
            serde_json::from_value(serde_json::json!({
                "Name": "web", "Provider": "nomad", "PortLabel": "http", "Checks": checks
            }))
            .unwrap(),
        ]
    }

    #[test]
    fn nomad_checks_are_http_or_tcp_with_sane_timing() {
        let ok = service(serde_json::json!([
            {"Type": "http", "Path": "/health", "Interval": 1_000_000_000i64, "Timeout": 1_000_000_000i64},
            {"Type": "tcp", "Interval": 5_000_000_000i64, "Timeout": 2_000_000_000i64}
        ]));
        assert!(nomad_service_errors(&ok).is_empty());
        let cases = [
            (
                serde_json::json!({"Type": "script", "Command": "true", "Interval": 1_000_000_000i64, "Timeout": 1_000_000_000i64}),
                "invalid check type (\"script\"), must be one of tcp, http",
            ),
            (
                serde_json::json!({"Type": "http", "Interval": 1_000_000_000i64, "Timeout": 1_000_000_000i64}),
                "http type must have http path",
            ),
            (
                serde_json::json!({"Type": "tcp", "Interval": 500_000_000i64, "Timeout": 1_000_000_000i64}),
                "interval (500ms) cannot be lower than 1s",
            ),
            (
                serde_json::json!({"Type": "tcp", "Interval": 1_000_000_000i64}),
                "missing required value timeout. Timeout cannot be less than 1s",
            ),
            (
                serde_json::json!({"Type": "tcp", "Interval": 1_000_000_000i64, "Timeout": 1_000_000_000i64,
                                "FailuresBeforeCritical": 2}),
                "failures_before_critical may only be set for Consul service checks",
            ),
        ];
        for (check, want) in cases {
            let errs = nomad_service_errors(&service(serde_json::json!([check])));
            assert_eq!(
                errs,
                vec![format!("service[0] \"web\" validation failed: {want}")]
            );
        }
    }

    #[test]
    fn consul_services_are_not_judged_here() {
        let mut s = service(serde_json::json!([{"Type": "script"}]));
        s[0].provider = "consul".into();
        assert!(nomad_service_errors(&s).is_empty());
    }
}
