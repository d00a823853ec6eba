//! Periodic jobs: the next launch time of a cron spec (Nomad's dialect), and the launcher that
//! derives a child job `<parent>/periodic-<unix seconds>` at each launch.
//!
//! Launch times are not stored separately: the children in the jobs table are the record
//! (their IDs carry the launch second), so after a restart the launcher resumes from the
//! newest child and runs one launch that was missed while the server was down, as Nomad does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use croner::parser::{CronParser, Seconds};

use super::ops::jobs::{JobRegisterRequest, JobRegisterResponse};
use super::state::{Table, Tables};
use super::{Server, ServerError};
use crate::structs::{Job, JobStatus, PeriodicConfig};

/// Separates the parent's ID from the launch second in a child's ID.
pub const PERIODIC_SUFFIX: &str = "/periodic-";
/// Longest the launcher sleeps before looking again (clock changes, missed wake-ups).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// One cron spec in Nomad's dialect turned into croner's: 5 fields (minute..weekday), 6
/// fields (…, year) or 7 fields (second, …, year). Only `*` is supported as the year.
fn croner_pattern(spec: &str) -> Result<String, String> {
    let spec = spec.trim();
    if spec.starts_with('@') {
        return Ok(spec.to_string());
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    let (fields, year) = match fields.len() {
        5 => (fields, None),
        6 => (fields[..5].to_vec(), Some(fields[5])),
        7 => (fields[..6].to_vec(), Some(fields[6])),
        n => return Err(format!("Invalid cron spec {spec:?}: {n} fields")),
    };
    if let Some(y) = year
        && y != "*"
    {
        return Err(format!(
            "Invalid cron spec {spec:?}: a year field other than \"*\" is not supported"
        ));
    }
    Ok(fields.join(" "))
}

/// The next launch strictly after `after`, over every spec of the config, in its time zone.
pub fn next_launch(
    cfg: &PeriodicConfig,
    after: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, String> {
    let specs: Vec<&str> = match cfg.specs.as_deref() {
        Some(list) if !list.is_empty() => list.iter().map(String::as_str).collect(),
        _ => vec![cfg.spec.as_str()],
    };
    let parser = CronParser::builder().seconds(Seconds::Optional).build();
    let tz: chrono_tz::Tz = match cfg.time_zone.as_str() {
        "" | "UTC" | "Local" => chrono_tz::UTC,
        name => name
            .parse()
            .map_err(|_| format!("Invalid time zone {name:?}"))?,
    };
    let local = tz.from_utc_datetime(&after.naive_utc());
    let mut best: Option<DateTime<Utc>> = None;
    for spec in specs {
        let cron = parser
            .parse(&croner_pattern(spec)?)
            .map_err(|e| format!("Invalid cron spec {spec:?}: {e}"))?;
        if let Ok(next) = cron.find_next_occurrence(&local, false) {
            let next = next.with_timezone(&Utc);
            best = Some(best.map_or(next, |b| b.min(next)));
        }
    }
    Ok(best)
}

/// Checks a periodic block at register time (400 with the reason).
pub fn validate(cfg: &PeriodicConfig) -> Result<(), String> {
    if !cfg.enabled {
        return Ok(());
    }
    if !cfg.spec_type.is_empty() && cfg.spec_type != "cron" {
        return Err(format!(
            "Unknown periodic specification type {:?}",
            cfg.spec_type
        ));
    }
    if cfg.spec.is_empty() && cfg.specs.as_ref().is_none_or(Vec::is_empty) {
        return Err("Must specify a spec".into());
    }
    next_launch(cfg, Utc::now()).map(drop)
}

/// The periodic children of `parent` with the launch second their IDs record.
fn children(tables: &Tables, parent: &Job) -> Vec<(i64, Arc<Job>)> {
    let prefix = format!("{}{PERIODIC_SUFFIX}", parent.id);
    tables
        .jobs_with_prefix(&parent.namespace, &prefix)
        .into_iter()
        .filter(|c| c.parent_id == parent.id)
        .filter_map(|c| Some((c.id[prefix.len()..].parse().ok()?, c)))
        .collect()
}

/// When the launcher should next launch `job` (None: never, e.g. disabled or stopped): the
/// first occurrence after the newest of its registration, its newest child and `handled`
/// (the launcher's own record of launches it already dealt with, skipped ones included).
pub fn due(tables: &Tables, job: &Job, handled: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    let cfg = job.periodic.as_ref().filter(|p| p.enabled)?;
    if job.stop {
        return None;
    }
    let last_child = children(tables, job).into_iter().map(|(at, _)| at).max();
    let submitted = job.submit_time / 1_000_000_000;
    let base = last_child.map_or(submitted, |l| l.max(submitted));
    let mut base = Utc.timestamp_opt(base, 0).single()?;
    if let Some(h) = handled {
        base = base.max(h);
    }
    next_launch(cfg, base).ok().flatten()
}

impl Server {
    /// Derives and registers the child of `parent` for the launch at `at` (Nomad's
    /// `deriveJob`); with `prohibit_overlap`, a live earlier child skips the launch unless
    /// `force`.
    pub async fn launch_periodic(
        &self,
        parent: &Job,
        at: DateTime<Utc>,
        force: bool,
    ) -> Result<Option<JobRegisterResponse>, ServerError> {
        let snap = self.state.snapshot();
        let overlap = parent.periodic.as_ref().is_some_and(|p| p.prohibit_overlap);
        if overlap && !force {
            let live = children(&snap, parent)
                .iter()
                .any(|(_, c)| c.status != Some(JobStatus::Dead));
            if live {
                tracing::debug!(job_id = %parent.id, "skipping periodic launch: an earlier child is still running");
                return Ok(None);
            }
        }
        let mut child =
            parent.derive_child(format!("{}{PERIODIC_SUFFIX}{}", parent.id, at.timestamp()));
        child.periodic = None;
        let resp = self
            .register_job(
                JobRegisterRequest {
                    job: Some(child),
                    ..JobRegisterRequest::default()
                },
                Some(&parent.namespace),
            )
            .await?;
        Ok(Some(resp))
    }

    /// `POST /v1/job/:id/periodic/force`: launches a child now, overlap or not.
    pub async fn force_periodic(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Result<JobRegisterResponse, ServerError> {
        let job = self
            .state
            .snapshot()
            .job(namespace, job_id)
            .ok_or_else(|| ServerError::NotFound(format!("job {job_id:?} not found")))?;
        // Nomad answers these with a 500; the caller's mistake is a 400 here.
        if !job.periodic.as_ref().is_some_and(|p| p.enabled) {
            return Err(ServerError::BadRequest(
                "can't force launch non-periodic job".into(),
            ));
        }
        // A forced launch in the same second as a scheduled one gets the next second's ID.
        let mut at = Utc::now();
        let snap = self.state.snapshot();
        while snap
            .job(
                namespace,
                &format!("{job_id}{PERIODIC_SUFFIX}{}", at.timestamp()),
            )
            .is_some()
        {
            at += chrono::Duration::seconds(1);
        }
        self.launch_periodic(&job, at, true)
            .await?
            .ok_or_else(|| ServerError::Refused("periodic launch skipped".into()))
    }
}

/// The launcher: sleeps until the earliest due launch (or a job change), launches what is due.
pub async fn run(server: Arc<Server>) {
    let mut jobs = server.state.watch(Table::Jobs);
    let mut handled: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
    loop {
        let now = Utc::now();
        let snap = server.state.snapshot();
        let mut earliest: Option<DateTime<Utc>> = None;
        for job in snap.jobs.values() {
            let key = (job.namespace.clone(), job.id.clone());
            let Some(at) = due(&snap, job, handled.get(&key).copied()) else {
                continue;
            };
            if at <= now {
                if let Err(e) = server.launch_periodic(job, at, false).await {
                    tracing::warn!(job_id = %job.id, error = %e, "periodic launch failed");
                }
                // Launched, skipped (overlap) or failed, this occurrence is done; counting
                // from now also means only one of several missed launches is run.
                handled.insert(key, now);
                continue;
            }
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
        }
        handled.retain(|(ns, id), _| snap.job(ns, id).is_some());
        let wait = earliest
            .and_then(|at| (at - Utc::now()).to_std().ok())
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = jobs.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(spec: &str, tz: &str) -> PeriodicConfig {
        PeriodicConfig {
            enabled: true,
            spec: spec.into(),
            time_zone: tz.into(),
            ..PeriodicConfig::default()
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(spec: &str, tz: &str, after: &str) -> Result<Option<DateTime<Utc>>, String> {
        next_launch(&cfg(spec, tz), at(after))
    }

    #[test]
    fn nomad_cron_dialect() {
        // Five fields: minute .. weekday.
        assert_eq!(
            next("*/15 * * * *", "", "2026-01-15T10:07:30Z").unwrap(),
            Some(at("2026-01-15T10:15:00Z"))
        );
        // Seven fields: second .. year.
        assert_eq!(
            next("*/2 * * * * * *", "", "2026-01-15T10:00:00Z").unwrap(),
            Some(at("2026-01-15T10:00:02Z"))
        );
        // Six fields: minute .. weekday, year.
        assert_eq!(
            next("0 3 * * * *", "UTC", "2026-01-15T10:00:00Z").unwrap(),
            Some(at("2026-01-16T03:00:00Z"))
        );
        assert_eq!(
            next("@daily", "", "2026-01-15T10:00:00Z").unwrap(),
            Some(at("2026-01-16T00:00:00Z"))
        );
        // Sunday is 0 (and 7).
        assert_eq!(
            next("0 0 * * 0", "", "2026-01-15T10:00:00Z").unwrap(),
            Some(at("2026-01-18T00:00:00Z"))
        );
        assert!(next("0 0 * * * 2027", "", "2026-01-15T10:00:00Z").is_err());
        assert!(next("not a spec", "", "2026-01-15T10:00:00Z").is_err());
    }

    #[test]
    fn time_zones_and_several_specs() {
        // 09:00 in New York in January is 14:00 UTC.
        assert_eq!(
            next("0 9 * * *", "America/New_York", "2026-01-15T00:00:00Z").unwrap(),
            Some(at("2026-01-15T14:00:00Z"))
        );
        assert!(next("0 9 * * *", "Mars/Olympus", "2026-01-15T00:00:00Z").is_err());
        let mut c = cfg("", "");
        c.specs = Some(vec!["0 12 * * *".into(), "30 6 * * *".into()]);
        assert_eq!(
            next_launch(&c, at("2026-01-15T00:00:00Z")).unwrap(),
            Some(at("2026-01-15T06:30:00Z"))
        );
        assert!(validate(&c).is_ok());
        c.specs = None;
        assert_eq!(validate(&c).unwrap_err(), "Must specify a spec");
    }
}
