use std::io::Write;

use super::*;

fn tmp() -> PathBuf {
    let d = std::env::temp_dir().join(format!("yurt-artifact-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(d.join("task/local")).unwrap();
    std::fs::create_dir_all(d.join("src")).unwrap();
    d
}

fn spec(source: &str, dest: &str) -> Spec {
    Spec {
        source: source.to_string(),
        options: BTreeMap::new(),
        headers: BTreeMap::new(),
        mode: "any".into(),
        destination: dest.into(),
        insecure: false,
    }
}

#[tokio::test]
async fn a_file_url_with_a_good_checksum_lands_in_the_destination() {
    let d = tmp();
    std::fs::write(d.join("src/hello.txt"), b"hello").unwrap();
    let sum = checksum::digest_hex(Algorithm::Sha256, &b"hello"[..]).unwrap();
    let mut s = spec(&format!("file://{}/src/hello.txt", d.display()), "local/");
    s.options.insert("checksum".into(), format!("sha256:{sum}"));
    get(&s, &d.join("task"), &ArtifactConfig::default())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(d.join("task/local/hello.txt")).unwrap(),
        b"hello"
    );
    // The staging dir is gone.
    let left: Vec<_> = std::fs::read_dir(d.join("task"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".artifact-"))
        .collect();
    assert!(left.is_empty());
    std::fs::remove_dir_all(d).unwrap();
}

#[tokio::test]
async fn a_bad_checksum_fails_and_writes_nothing() {
    let d = tmp();
    std::fs::write(d.join("src/hello.txt"), b"hello").unwrap();
    let mut s = spec(&format!("{}/src/hello.txt", d.display()), "local/");
    s.options
        .insert("checksum".into(), format!("md5:{}", "0".repeat(32)));
    let err = get(&s, &d.join("task"), &ArtifactConfig::default())
        .await
        .unwrap_err();
    assert!(err.contains("checksums did not match"), "{err}");
    assert!(!d.join("task/local/hello.txt").exists());
    std::fs::remove_dir_all(d).unwrap();
}

#[tokio::test]
async fn archives_unpack_unless_archive_false_and_mode_file_names_the_file() {
    let d = tmp();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, "bin/run.sh", &b"abc"[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    std::fs::write(d.join("src/app.tar.gz"), gz.finish().unwrap()).unwrap();
    let src = format!("file://{}/src/app.tar.gz", d.display());
    let task = d.join("task");

    get(&spec(&src, "local/app"), &task, &ArtifactConfig::default())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(task.join("local/app/bin/run.sh")).unwrap(),
        b"abc"
    );

    let mut raw = spec(&src, "local/raw");
    raw.options.insert("archive".into(), "false".into());
    get(&raw, &task, &ArtifactConfig::default()).await.unwrap();
    assert!(task.join("local/raw/app.tar.gz").is_file());

    let mut file = spec(&src, "local/named.tgz");
    file.mode = "file".into();
    get(&file, &task, &ArtifactConfig::default()).await.unwrap();
    assert!(task.join("local/named.tgz").is_file());

    let tight = ArtifactConfig {
        decompression_size_limit: 2,
        ..ArtifactConfig::default()
    };
    let err = get(&spec(&src, "local/tight"), &task, &tight)
        .await
        .unwrap_err();
    assert!(err.contains("decompression_size_limit"), "{err}");
    std::fs::remove_dir_all(d).unwrap();
}

#[tokio::test]
async fn destinations_outside_the_task_dir_are_refused() {
    let d = tmp();
    std::fs::write(d.join("src/f"), b"x").unwrap();
    let src = format!("{}/src/f", d.display());
    let task = d.join("task");
    for dest in ["../", "local/../../src", "/etc"] {
        let err = get(&spec(&src, dest), &task, &ArtifactConfig::default())
            .await
            .unwrap_err();
        assert!(err.contains("escapes"), "{dest}: {err}");
    }
    // A symlink already in the task dir cannot redirect the destination either.
    std::os::unix::fs::symlink(d.join("src"), task.join("local/out")).unwrap();
    let err = get(&spec(&src, "local/out"), &task, &ArtifactConfig::default())
        .await
        .unwrap_err();
    assert!(err.contains("escapes"), "{err}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn sizes_parse_like_go_humanize() {
    assert_eq!(parse_size("100GB"), Ok(100_000_000_000));
    assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("1.5kb"), Ok(1500));
    assert!(parse_size("ten GB").is_err());
    assert!(parse_size("5 parsecs").unwrap_err().contains("parsecs"));
}

#[test]
fn sources_and_modes_are_validated() {
    assert!(matches!(
        parse_source("https://example.com/a.zip", &BTreeMap::new()),
        Ok(Source::Http(_))
    ));
    let opts = BTreeMap::from([("ref".to_string(), "v1".to_string())]);
    match parse_source("http://example.com/a?x=1", &opts) {
        Ok(Source::Http(u)) => assert_eq!(u.query(), Some("x=1&ref=v1")),
        _ => panic!("http source not parsed"),
    }
    assert!(
        parse_source("s3://bucket/key", &BTreeMap::new())
            .err()
            .is_some_and(|e| e.contains("s3"))
    );
    assert!(Mode::parse("both").is_err());
    assert_eq!(Mode::parse("dir"), Ok(Mode::Dir));
}
