//! The .deb: `cargo deb` packs the binaries this test run built (no release build), dpkg
//! installs it into a scratch root (maintainer scripts included, run against that root), every
//! file lands where and with the mode it should, the default config loads without a warning,
//! `systemd-analyze verify` accepts the installed unit, a user's edit of the conffile
//! survives a reinstall, and a purge removes the package but keeps /var/lib/yurt.
//!
//! Needs root (dpkg writes root-owned files), `cargo deb` (tests/run-all.sh installs it),
//! dpkg and systemd-analyze; without them it fails, naming what is missing.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::TempDir;

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed with {}:\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// True when both files hold the same bytes.
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(x), Ok(y)) = (std::fs::read(a), std::fs::read(b)) else {
        return false;
    };
    x == y
}

/// Builds the .deb from the binaries next to this test's `yurt` into `out`.
fn build_deb(out: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let probe = Command::new(&cargo).args(["deb", "--version"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "`cargo deb` is not installed (tests/run-all.sh installs it: cargo install cargo-deb --locked); {probe:?}"
    );
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_yurt"));
    // <target>/debug/yurt: the dev profile's binaries, already built for this test run.
    let target_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir of the yurt binary");
    run(Command::new(&cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", target_dir)
        .args([
            "deb",
            "-p",
            "yurt",
            "--no-build",
            "--profile",
            "dev",
            "--no-strip",
            "--no-dbgsym",
            "--fast",
            "--quiet",
            "-o",
        ])
        .arg(out));
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("read output dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one .deb: {debs:?}");
    debs[0].clone()
}

/// A root dpkg can install into; maintainer scripts run on the host with DPKG_ROOT set.
fn dpkg(root: &Path) -> Command {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={}", root.display()))
        .arg("--force-script-chrootless")
        // libc6, libgcc-s1 and procps are the host's; the scratch root has no database of them.
        .arg("--force-depends")
        .env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

/// `systemd-analyze verify` of `unit` as installed under `root`. The scratch root gets the
/// host's targets and /bin/kill (from procps, a dependency), which the unit refers to.
fn verify_unit(root: &Path, unit: &str) -> Output {
    let units = root.join("lib/systemd/system");
    for entry in std::fs::read_dir("/lib/systemd/system").expect("host unit dir") {
        let path = entry.expect("host unit").path();
        let is_target = path.extension().is_some_and(|e| e == "target");
        let dest = units.join(path.file_name().expect("unit name"));
        if is_target && path.is_file() && !dest.exists() {
            std::fs::copy(&path, &dest).expect("copy target unit");
        }
    }
    std::fs::create_dir_all(root.join("bin")).expect("bin dir");
    let kill = root.join("bin/kill");
    if !kill.exists() {
        std::fs::copy("/bin/kill", &kill).expect("/bin/kill (procps) on the host");
    }
    Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(format!("/lib/systemd/system/{unit}"))
        .output()
        .expect("run systemd-analyze")
}

#[test]
fn deb_installs_binaries_config_unit_and_data_dir() {
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "needs root: dpkg installs root-owned files"
    );
    let work = TempDir::new("deb");
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).expect("output dir");
    let deb = build_deb(&out);

    // Control data: the conffile and the maintainer scripts are in the package.
    let ctrl = work.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&ctrl));
    let conffiles = std::fs::read_to_string(ctrl.join("conffiles")).expect("conffiles");
    assert_eq!(conffiles.trim(), "/etc/yurt.d/yurt.hcl");
    for script in ["postinst", "prerm", "postrm"] {
        assert_eq!(mode(&ctrl.join(script)), 0o755, "{script}");
    }
    let control = std::fs::read_to_string(ctrl.join("control")).expect("control");
    assert!(control.contains("Package: yurt\n"), "{control}");
    assert!(
        control.contains("Depends: libc6 (>= 2.34), libgcc-s1, procps"),
        "{control}"
    );

    let root = work.path().join("root");
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(dir)).expect("dpkg admin dir");
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").expect("dpkg status");
    run(dpkg(&root).arg("-i").arg(&deb));

    let built = PathBuf::from(env!("CARGO_BIN_EXE_yurt"));
    let supervisor = built.with_file_name("yurt-supervisor");
    let expect = [
        ("usr/bin/yurt", 0o755),
        ("usr/bin/yurt-supervisor", 0o755),
        ("etc/yurt.d/yurt.hcl", 0o644),
        ("lib/systemd/system/yurt.service", 0o644),
        ("usr/share/doc/yurt/quickstart.md", 0o644),
        ("var/lib/yurt", 0o700),
    ];
    for (path, want) in expect {
        assert_eq!(mode(&root.join(path)), want, "mode of /{path}");
    }
    assert!(root.join("var/lib/yurt").is_dir());
    assert!(same_file(&root.join("usr/bin/yurt"), &built));
    assert!(same_file(
        &root.join("usr/bin/yurt-supervisor"),
        &supervisor
    ));
    assert!(same_file(
        &root.join("etc/yurt.d/yurt.hcl"),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/yurt.hcl")
    ));
    // The installed binary runs.
    let version = run(Command::new(root.join("usr/bin/yurt")).arg("version"));
    assert!(!version.stdout.is_empty());

    // The default config is what an agent accepts, without an unknown key.
    let loaded = yurt::agent::load_paths(&[root.join("etc/yurt.d")]).expect("default config");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = yurt::agent::AgentConfig::resolve(loaded.config, false, loaded.warnings)
        .expect("default config resolves");
    assert_eq!(config.data_dir(), Path::new("/var/lib/yurt"));

    let unit = std::fs::read_to_string(root.join("lib/systemd/system/yurt.service")).expect("unit");
    for line in [
        "ExecStart=/usr/bin/yurt agent -config /etc/yurt.d",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillMode=process",
        "KillSignal=SIGINT",
        "Delegate=yes",
        "Restart=on-failure",
        "WantedBy=multi-user.target",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "unit lacks {line:?}:\n{unit}"
        );
    }
    let verified = verify_unit(&root, "yurt.service");
    assert!(
        verified.status.success() && verified.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}",
        verified.status,
        String::from_utf8_lossy(&verified.stderr)
    );
    // The same check rejects a unit whose program is missing or whose setting is wrong.
    let broken = unit
        .replace("/usr/bin/yurt agent", "/usr/bin/yurt-missing agent")
        .replace("KillMode=process", "KillMode=sometimes");
    std::fs::write(root.join("lib/systemd/system/broken.service"), broken).expect("write unit");
    let rejected = verify_unit(&root, "broken.service");
    let complaint = String::from_utf8_lossy(&rejected.stderr);
    assert!(!rejected.status.success(), "{complaint}");
    assert!(complaint.contains("/usr/bin/yurt-missing"), "{complaint}");
    assert!(complaint.contains("sometimes"), "{complaint}");
    std::fs::remove_file(root.join("lib/systemd/system/broken.service")).expect("remove unit");

    // A reinstall (the upgrade path) keeps a user's edit of the conffile.
    let conf = root.join("etc/yurt.d/yurt.hcl");
    let edited = std::fs::read_to_string(&conf).expect("config") + "\n# site edit\n";
    std::fs::write(&conf, &edited).expect("edit config");
    run(dpkg(&root).args(["--force-confold", "-i"]).arg(&deb));
    assert_eq!(std::fs::read_to_string(&conf).expect("config"), edited);

    // Purge removes the package and its conffile, never the state of running tasks.
    std::fs::write(root.join("var/lib/yurt/marker"), "state").expect("state file");
    run(dpkg(&root).args(["--purge", "yurt"]));
    for gone in [
        "usr/bin/yurt",
        "usr/bin/yurt-supervisor",
        "etc/yurt.d/yurt.hcl",
        "lib/systemd/system/yurt.service",
    ] {
        assert!(!root.join(gone).exists(), "/{gone} removed by purge");
    }
    assert!(
        root.join("var/lib/yurt/marker").exists(),
        "/var/lib/yurt kept"
    );
}
