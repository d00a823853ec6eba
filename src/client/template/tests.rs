use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::*;
use crate::structs::variable::{VariableDecrypted, VariableMetadata};

/// The store's index and, by path, each variable's index and items.
type Store = (u64, BTreeMap<String, (u64, BTreeMap<String, String>)>);

/// Variables in memory, with an index that grows on every write; reads block like the
/// server's until the index passes the caller's.
#[derive(Default)]
struct FakeVars {
    vars: Mutex<Store>,
    changed: Notify,
    reads: Mutex<Vec<(String, u64)>>,
}

impl FakeVars {
    fn set(&self, path: &str, items: &[(&str, &str)]) {
        let mut g = self.vars.lock().unwrap();
        g.0 += 1;
        let index = g.0;
        g.1.insert(
            path.to_string(),
            (
                index,
                items
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        );
        drop(g);
        self.changed.notify_waiters();
    }
}

#[async_trait]
impl VarSource for FakeVars {
    async fn read(
        &self,
        path: &str,
        min_index: u64,
        wait: Duration,
    ) -> Result<(u64, Option<VariableDecrypted>), RpcError> {
        self.reads
            .lock()
            .unwrap()
            .push((path.to_string(), min_index));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            let (index, var) = {
                let g = self.vars.lock().unwrap();
                match g.1.get(path) {
                    Some((i, items)) => (
                        *i,
                        Some(VariableDecrypted {
                            meta: VariableMetadata::bare("default", path),
                            items: items.clone().into_iter().collect(),
                        }),
                    ),
                    None => (g.0, None),
                }
            };
            if index > min_index || tokio::time::Instant::now() >= deadline {
                return Ok((index, var));
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    async fn list(
        &self,
        prefix: &str,
        min_index: u64,
        wait: Duration,
    ) -> Result<(u64, Vec<VariableMetadata>), RpcError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            let (index, metas) = {
                let g = self.vars.lock().unwrap();
                let metas =
                    g.1.iter()
                        .filter(|(p, _)| p.starts_with(prefix))
                        .map(|(p, (i, _))| {
                            let mut m = VariableMetadata::bare("default", p);
                            m.modify_index = *i;
                            m
                        })
                        .collect();
                (g.0, metas)
            };
            if index > min_index || tokio::time::Instant::now() >= deadline {
                return Ok((index, metas));
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

struct Dirs {
    root: PathBuf,
    alloc: PathBuf,
    task: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let root = std::env::temp_dir().join(format!("yurt-tmpl-{}", uuid::Uuid::new_v4()));
        let alloc = root.join("alloc-1");
        let task = alloc.join("web");
        std::fs::create_dir_all(task.join("local")).unwrap();
        Dirs { root, alloc, task }
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.task.join(rel)).unwrap()
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn tmpl(data: &str, dest: &str) -> Template {
    Template {
        embedded_tmpl: data.to_string(),
        dest_path: dest.to_string(),
        change_mode: "restart".into(),
        perms: "0644".into(),
        ..Template::default()
    }
}

fn set_of(dirs: &Dirs, templates: &[Template], vars: Arc<FakeVars>) -> TemplateSet {
    let specs = templates
        .iter()
        .map(|t| Spec::new(t, &dirs.task, Some(&dirs.alloc), &|s| s.to_string()).unwrap())
        .collect();
    let env = BTreeMap::from([
        ("NOMAD_TASK_NAME".to_string(), "web".to_string()),
        ("GREETING".to_string(), "hello".to_string()),
    ]);
    TemplateSet::new(
        specs,
        env,
        dirs.task.clone(),
        Some(dirs.alloc.clone()),
        vars,
    )
}

#[tokio::test]
async fn renders_env_files_and_variables_then_waits_for_a_change() {
    let dirs = Dirs::new();
    std::fs::write(dirs.task.join("local/motd"), "be nice").unwrap();
    let vars = Arc::new(FakeVars::default());
    vars.set("nomad/jobs/web", &[("user", "ann"), ("port", "8080")]);
    let mut set = set_of(
        &dirs,
        &[
            tmpl(
                r#"{{ env "GREETING" }} {{ env "NOMAD_TASK_NAME" }} {{ file "local/motd" }}
{{ with nomadVar "nomad/jobs/web" }}user={{ .user }} port={{ .port }}{{ end }}
{{ if nomadVarExists "nomad/jobs/none" }}yes{{ else }}no{{ end }}
{{ range nomadVarList "nomad/" }}{{ .Path }};{{ end }}"#,
                "local/app.conf",
            ),
            {
                let mut t = tmpl(
                    "{{ with nomadVar \"nomad/jobs/web\" }}APP_USER={{ .user }}{{ end }}\n",
                    "secrets/app.env",
                );
                t.envvars = true;
                t
            },
        ],
        vars.clone(),
    );
    let pass = set.render().await.unwrap();
    assert!(pass.missing.is_empty(), "{:?}", pass.missing);
    assert_eq!(pass.written, vec![0, 1]);
    assert_eq!(
        dirs.read("local/app.conf"),
        "hello web be nice\nuser=ann port=8080\nno\nnomad/jobs/web;"
    );
    assert_eq!(set.env_vars().unwrap()["APP_USER"], "ann");

    // Nothing changed: a second render writes nothing.
    assert!(set.render().await.unwrap().written.is_empty());

    let waiter = {
        let vars = vars.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            vars.set("nomad/jobs/web", &[("user", "bob"), ("port", "8080")]);
        })
    };
    tokio::time::timeout(Duration::from_secs(10), set.wait_for_change())
        .await
        .expect("the change is seen");
    waiter.await.unwrap();
    let pass = set.render().await.unwrap();
    assert_eq!(pass.written, vec![0, 1]);
    assert!(dirs.read("local/app.conf").contains("user=bob"));
    assert_eq!(set.env_vars().unwrap()["APP_USER"], "bob");
    // Watching is by blocking query from the last index, not by re-reading from 0.
    assert!(
        vars.reads
            .lock()
            .unwrap()
            .iter()
            .any(|(p, i)| p == "nomad/jobs/web" && *i > 0)
    );
}

#[tokio::test]
async fn a_missing_variable_blocks_only_its_template() {
    let dirs = Dirs::new();
    let vars = Arc::new(FakeVars::default());
    let mut set = set_of(
        &dirs,
        &[
            tmpl("static", "local/a"),
            tmpl(
                r#"{{ with nomadVar "app/db" }}{{ .pw }}{{ end }}"#,
                "local/b",
            ),
        ],
        vars.clone(),
    );
    let pass = set.render().await.unwrap();
    assert_eq!(
        pass.missing.iter().cloned().collect::<Vec<_>>(),
        vec![Dep::Var("app/db".into())]
    );
    assert_eq!(
        Dep::Var("app/db".into()).describe("default", "global"),
        "nomad.var.block(app/db@default.global)"
    );
    assert_eq!(pass.written, vec![0]);
    assert!(!dirs.task.join("local/b").exists());
    vars.set("app/db", &[("pw", "s3cret")]);
    tokio::time::timeout(Duration::from_secs(10), set.wait_for_change())
        .await
        .expect("the new variable is seen");
    let pass = set.render().await.unwrap();
    assert!(pass.missing.is_empty());
    assert_eq!(dirs.read("local/b"), "s3cret");
}

#[tokio::test]
async fn missing_keys_print_no_value_unless_they_are_errors() {
    let dirs = Dirs::new();
    let vars = Arc::new(FakeVars::default());
    vars.set("v", &[("a", "1")]);
    let text = r#"{{ with nomadVar "v" }}{{ .nope }}{{ end }}"#;
    let mut set = set_of(&dirs, &[tmpl(text, "local/x")], vars.clone());
    set.render().await.unwrap();
    assert_eq!(dirs.read("local/x"), "<no value>");

    let mut strict = tmpl(text, "local/y");
    strict.error_on_missing_key = true;
    let mut set = set_of(&dirs, &[strict], vars);
    let err = set.render().await.unwrap_err();
    assert!(err.contains("nope"), "{err}");
}

#[tokio::test]
async fn custom_delimiters_and_bad_templates() {
    let dirs = Dirs::new();
    let vars = Arc::new(FakeVars::default());
    let mut t = tmpl(r#"[[ env "GREETING" ]] {{ literal }}"#, "local/d");
    t.left_delim = "[[".into();
    t.right_delim = "]]".into();
    let mut set = set_of(&dirs, &[t], vars.clone());
    set.render().await.unwrap();
    assert_eq!(dirs.read("local/d"), "hello {{ literal }}");

    let mut set = set_of(&dirs, &[tmpl("{{ nosuchfunc }}", "local/e")], vars.clone());
    let err = set.render().await.unwrap_err();
    assert!(err.contains("template 1"), "{err}");

    // `file` cannot read outside the alloc dir.
    let mut set = set_of(
        &dirs,
        &[tmpl(r#"{{ file "../../../etc/passwd" }}"#, "local/f")],
        vars,
    );
    let err = set.render().await.unwrap_err();
    assert!(err.contains("escapes"), "{err}");
}

#[test]
fn specs_check_their_fields() {
    let dirs = Dirs::new();
    let spec = |t: Template| Spec::new(&t, &dirs.task, Some(&dirs.alloc), &|s| s.to_string());
    let err = spec(tmpl("x", "../../outside")).unwrap_err();
    assert_eq!(err, "template destination path escapes alloc directory");
    let mut t = tmpl("", "local/x");
    t.source_path = "../../etc/hosts".into();
    assert_eq!(
        spec(t).unwrap_err(),
        "template source path escapes alloc directory"
    );
    let mut t = tmpl("x", "local/x");
    t.perms = "9".into();
    assert!(spec(t).unwrap_err().contains("octal"));
    let mut t = tmpl("x", "local/x");
    t.change_mode = "signal".into();
    assert!(spec(t).unwrap_err().contains("signal"));
    let mut t = tmpl("x", "local/x");
    t.change_mode = "signal".into();
    t.change_signal = "sighup".into();
    assert_eq!(spec(t).unwrap().change, ChangeMode::Signal("SIGHUP".into()));
    let mut t = tmpl("x", "local/x");
    t.wait = Some(Box::new(
        serde_json::json!({"Min": 5_000_000_000u64, "Max": 1_000_000_000u64}),
    ));
    assert!(spec(t).unwrap_err().contains("greater than max"));
    let mut t = tmpl("x", "local/x");
    t.change_mode = "script".into();
    t.change_script = Some(Box::new(
        serde_json::json!({"Command": "/bin/reload", "Args": ["-a"]}),
    ));
    match spec(t).unwrap().change {
        ChangeMode::Script(s) => {
            assert_eq!((s.command.as_str(), s.args.len()), ("/bin/reload", 1));
            assert_eq!(s.timeout, Duration::from_secs(5));
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(
        dirs.task.join("local/in.tpl"),
        "from {{ env \"GREETING\" }}",
    )
    .unwrap();
    let mut t = tmpl("", "local/out");
    t.source_path = "local/in.tpl".into();
    assert_eq!(spec(t).unwrap().text, "from {{ env \"GREETING\" }}");
}
