//! One job template: a job file of the Cluster API's directory, read into a job (or the
//! parser's refusal) plus the flags the API lists with it.

use std::path::{Path, PathBuf};

use crate::jobspec::{self, ParseConfig};
use crate::structs::{DEFAULT_NAMESPACE, Job, JobSubmission};

/// The job `meta` key saying whether `startall` starts the template (default true).
pub const META_AUTOSTART: &str = "autostart";
/// The job `meta` key saying whether the job runs in every region (default false).
pub const META_BY_CLUSTER: &str = "byCluster";

/// The file names the catalogue reads as templates: HCL (`.hcl`, `.nomad`) or JSON.
pub fn is_template_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    // Editors' swap and backup files, and hidden files, are never templates.
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("hcl" | "nomad" | "json")
    )
}

/// A template as read from its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The job ID; the file's name without its extensions when the file does not parse.
    pub name: String,
    /// The namespace the job is registered in.
    pub namespace: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// The job, or why there is none (the parser's message).
    pub job: Result<Job, String>,
    /// Started by `startall`.
    pub autostart: bool,
    /// Registered in every region the server knows.
    pub by_cluster: bool,
    /// Written in HCL1, which yurt does not parse.
    pub hclv1: bool,
    /// The source, kept with the job versions it registers.
    pub submission: JobSubmission,
}

impl Template {
    /// Reads a template from `text`, the content of `file`.
    pub fn read(file: &Path, text: &str) -> Template {
        let json = file.extension().is_some_and(|e| e == "json")
            || (text.trim_start().starts_with('{')
                && serde_json::from_str::<serde_json::Value>(text).is_ok());
        let (job, hclv1, format) = if json {
            (json_job(text), false, "json")
        } else {
            match hcl_job(file, text) {
                Ok(job) => (Ok(job), false, "hcl2"),
                Err(e) => match crate::jobspec::hcl1_form(text).map(|f| f.what) {
                    Some(form) => (
                        Err(format!(
                            "{e}\n(the file is HCL1: it uses {form}, an HCL1 form yurt cannot read)"
                        )),
                        true,
                        "hcl1",
                    ),
                    None => (Err(e), false, "hcl2"),
                },
            }
        };
        let job = job.and_then(|j| {
            if j.id.is_empty() {
                Err("the job has no ID".to_string())
            } else {
                Ok(j)
            }
        });
        let flags = job.as_ref().ok().map(|j| {
            (
                meta_flag(j, META_AUTOSTART, true),
                meta_flag(j, META_BY_CLUSTER, false),
            )
        });
        let (job, autostart, by_cluster) = match flags {
            Some((Ok(a), Ok(b))) => (job, a, b),
            Some((a, b)) => {
                let e = a.err().or(b.err()).unwrap_or_default();
                (Err(e), true, false)
            }
            None => (job, true, false),
        };
        let name = match &job {
            Ok(j) => j.id.clone(),
            Err(_) => file_stem(file),
        };
        let namespace = match &job {
            Ok(j) if !j.namespace.is_empty() => j.namespace.clone(),
            _ => DEFAULT_NAMESPACE.to_string(),
        };
        Template {
            name,
            namespace,
            file: file.to_path_buf(),
            job,
            autostart,
            by_cluster,
            hclv1,
            submission: JobSubmission {
                source: text.to_string(),
                format: format.to_string(),
                ..JobSubmission::default()
            },
        }
    }

    /// The template marked unusable (e.g. a second file naming the same job).
    pub fn refused(mut self, why: String) -> Template {
        self.job = Err(why);
        self.name = file_stem(&self.file);
        self
    }
}

/// `{"Job": {...}}` or the job itself, as `PUT /v1/jobs` takes it.
fn json_job(text: &str) -> Result<Job, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON job: {e}"))?;
    let v = match v.get("Job") {
        Some(job) if job.is_object() => job.clone(),
        _ => v,
    };
    serde_json::from_value(v).map_err(|e| format!("invalid JSON job: {e}"))
}

/// An HCL2 job file, with its variables' defaults; file functions read relative to the
/// template directory.
fn hcl_job(file: &Path, text: &str) -> Result<Job, String> {
    let cfg = ParseConfig {
        path: file.display().to_string(),
        body: text.to_string(),
        allow_fs: true,
        ..ParseConfig::default()
    };
    jobspec::parse(&cfg)
        .and_then(|p| p.to_job())
        .map_err(|e| e.to_string())
}

/// A `"true"`/`"false"` job meta value; `default` when the key is absent.
fn meta_flag(job: &Job, key: &str, default: bool) -> Result<bool, String> {
    match job
        .meta
        .as_ref()
        .and_then(|m| m.get(key))
        .map(String::as_str)
    {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!(
            "meta.{key}: expected \"true\" or \"false\", got {other:?}"
        )),
    }
}

/// `web.nomad.hcl` → `web`.
fn file_stem(file: &Path) -> String {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.split('.').next().unwrap_or(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, text: &str) -> Template {
        Template::read(Path::new(name), text)
    }

    #[test]
    fn json_templates_take_the_job_id_and_meta_flags() {
        let t = read(
            "/t/web.json",
            r#"{"Job": {"ID": "web", "Namespace": "ops", "Meta": {"autostart": "false", "byCluster": "true"},
                "TaskGroups": [{"Name": "g", "Count": 2}]}}"#,
        );
        assert_eq!(t.name, "web");
        assert_eq!(t.namespace, "ops");
        assert!(!t.autostart);
        assert!(t.by_cluster);
        assert!(!t.hclv1);
        assert_eq!(t.submission.format, "json");
        assert_eq!(t.job.unwrap().groups()[0].count, 2);
    }

    #[test]
    fn flags_default_to_autostart_and_not_by_cluster() {
        let t = read("/t/a.json", r#"{"ID": "a"}"#);
        assert!(t.autostart);
        assert!(!t.by_cluster);
        assert_eq!(t.namespace, "default");
    }

    #[test]
    fn a_bad_meta_flag_is_an_error_naming_the_key() {
        let t = read("/t/a.json", r#"{"ID": "a", "Meta": {"autostart": "yes"}}"#);
        let e = t.job.unwrap_err();
        assert!(e.contains("meta.autostart"), "{e}");
        assert_eq!(t.name, "a");
    }

    #[test]
    fn hcl_templates_parse_with_variable_defaults() {
        let text = r#"
variable "n" {
  default = 3
}
job "api" {
  meta {
    autostart = "false"
  }
  group "g" {
    count = var.n
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
      }
    }
  }
}
"#;
        let t = read("/t/api.nomad.hcl", text);
        assert_eq!(t.name, "api");
        assert!(!t.autostart);
        assert_eq!(t.submission.format, "hcl2");
        assert_eq!(t.job.unwrap().groups()[0].count, 3);
    }

    #[test]
    fn unparseable_templates_are_named_after_their_file() {
        let t = read("/t/broken.nomad.hcl", "job \"x\" {\n  group \"g\" {\n");
        assert_eq!(t.name, "broken");
        assert!(!t.hclv1);
        assert!(t.job.is_err());
    }

    #[test]
    fn hcl1_templates_are_flagged() {
        let text = "job \"old\" {\n  meta {\n    \"team.name\" = \"x\"\n  }\n}\n";
        let t = read("/t/old.hcl", text);
        assert!(t.hclv1);
        let e = t.job.unwrap_err();
        assert!(e.contains("HCL1"), "{e}");
        assert_eq!(t.name, "old");
    }

    #[test]
    fn template_files_are_recognised_by_extension() {
        assert!(is_template_file(Path::new("/d/a.json")));
        assert!(is_template_file(Path::new("/d/a.nomad")));
        assert!(is_template_file(Path::new("/d/a.nomad.hcl")));
        assert!(!is_template_file(Path::new("/d/.a.hcl")));
        assert!(!is_template_file(Path::new("/d/a.hcl~")));
        assert!(!is_template_file(Path::new("/d/README.md")));
    }
}
