//! The same inputs give the same digest, from any working directory; SOURCE_DATE_EPOCH changes it.

use crate::util::*;

fn pack_digest(binary: &std::path::Path, cwd: &std::path::Path, out: &str, epoch: Option<&str>) -> String {
    let mut cmd = scratchpack();
    cmd.current_dir(cwd).arg("pack").arg(binary).args(["--output", out, "--env", "MODE=prod", "--label", "b=2", "--label", "a=1"]);
    if let Some(epoch) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", epoch);
    }
    let output = run_ok(&mut cmd);
    digest_of(stdout(&output).trim())
}

#[test]
fn same_input_same_digest_other_epoch_other_digest() {
    let work = temp_dir();
    let binary = static_c_hello();
    let elsewhere = work.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let first = pack_digest(&binary, work.path(), "oci:one", None);
    let second = pack_digest(&binary, &elsewhere, &format!("oci:{}", work.path().join("two").display()), None);
    assert_eq!(first, second, "same binary and options must give the same digest");
    let epoch_zero = pack_digest(&binary, work.path(), "oci:three", Some("0"));
    assert_eq!(first, epoch_zero, "SOURCE_DATE_EPOCH defaults to 0");
    let later = pack_digest(&binary, work.path(), "oci:four", Some("1700000000"));
    assert_ne!(first, later);
    // The base layer does not move with the epoch: it is shared across every image.
    let base = |dir: &str| {
        let index: serde_json::Value = serde_json::from_slice(&std::fs::read(work.path().join(dir).join("index.json")).unwrap()).unwrap();
        let digest = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(work.path().join(dir).join("blobs/sha256").join(digest)).unwrap()).unwrap();
        manifest["layers"][0]["digest"].as_str().unwrap().to_string()
    };
    assert_eq!(base("one"), base("four"));
    let config = skopeo_inspect(&format!("oci:{}:latest", work.path().join("four").display()), &["--config"]);
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
}

#[test]
fn identical_layout_bytes_on_a_second_pack() {
    let work = temp_dir();
    let binary = static_rust_hello();
    let a = work.path().join("a.tar");
    let b = work.path().join("b.tar");
    pack(&[binary.to_str().unwrap(), "--output", &format!("oci-archive:{}", a.display())], |_| {});
    pack(&[binary.to_str().unwrap(), "--output", &format!("oci-archive:{}", b.display())], |_| {});
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "archives differ");
}

/// The layer cache gives back exactly the bytes a fresh compression makes: the digest is the same
/// with a cold cache, a warm one, and none.
#[test]
fn cached_layers_are_the_bytes_a_fresh_pack_makes() {
    let work = temp_dir();
    let binary = dynamic_c_hello();
    let cache = work.path().join("cache");
    let run = |out: &str, cache_env: &[(&str, &std::path::Path)], no_cache: bool| {
        let mut cmd = scratchpack();
        cmd.current_dir(work.path()).arg("pack").arg(&binary).args(["--tzdata", "yes", "--tzdata-source", "host", "--output", out, "-vv"]);
        for (key, value) in cache_env {
            cmd.env(key, value);
        }
        if no_cache {
            cmd.env("SCRATCHPACK_NO_CACHE", "1");
        }
        let output = run_ok(&mut cmd);
        (digest_of(stdout(&output).trim()), stderr(&output))
    };
    let (cold, cold_log) = run("oci:cold", &[("SCRATCHPACK_CACHE_DIR", &cache)], false);
    let (warm, warm_log) = run("oci:warm", &[("SCRATCHPACK_CACHE_DIR", &cache)], false);
    let (none, none_log) = run("oci:none", &[], true);
    // The default base layer ships inside the executable: no cache is needed for it.
    for log in [&cold_log, &warm_log, &none_log] {
        assert!(log.contains("base layer shipped with scratchpack"), "{log}");
    }
    for what in ["zoneinfo layer", "libraries layer"] {
        assert!(cold_log.contains(&format!("{what} written")), "{what}, cold:\n{cold_log}");
        assert!(warm_log.contains(&format!("{what} taken from the cache")), "{what}, warm:\n{warm_log}");
        assert!(none_log.contains(&format!("{what} written")), "{what}, no cache:\n{none_log}");
    }
    // The zoneinfo folder's snapshot spares the warm pack its walk.
    assert!(cold_log.contains("zoneinfo folder walked"), "cold:\n{cold_log}");
    assert!(!warm_log.contains("zoneinfo folder walked"), "warm:\n{warm_log}");
    assert_eq!(cold, warm);
    assert_eq!(cold, none);
    assert_eq!(blob_sizes(&work.path().join("warm")), blob_sizes(&work.path().join("none")));
    // Two layers remembered (zoneinfo, libraries), each blob once; neither the shipped base layer
    // nor the program's own layer is kept.
    let records = std::fs::read_dir(cache.join("layers")).unwrap().count();
    let blobs = std::fs::read_dir(cache.join("blobs/sha256")).unwrap().count();
    assert_eq!((records, blobs), (2, 2));
}

/// On a fresh machine with no layer cache, the default base layer and the built-in zoneinfo layer
/// come compressed inside the executable (`shipped-layers/`): only the program is compressed. A
/// base that differs in anything (here `--ca-bundle none`) is compressed as before.
#[test]
fn a_fresh_runner_compresses_only_the_program() {
    let work = temp_dir();
    let binary = static_c_hello();
    let shipped = |file: &str| {
        let bytes = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shipped-layers").join(file)).unwrap();
        crate::support::pki::sha256_digest(&bytes)
    };
    for (compression, extension) in [("gzip", "tar.gz"), ("zstd", "tar.zst")] {
        let out = work.path().join(compression);
        let output = run_ok(
            scratchpack()
                .env("SCRATCHPACK_NO_CACHE", "1")
                .arg("pack")
                .arg(&binary)
                .args(["--tzdata", "yes", "--compression", compression, "-vv", "--output"])
                .arg(format!("oci:{}", out.display())),
        );
        let log = stderr(&output);
        assert!(log.contains("base layer shipped with scratchpack"), "{log}");
        assert!(log.contains("built-in zoneinfo layer shipped with scratchpack"), "{log}");
        let layers: Vec<String> = manifest_layers(&out);
        assert_eq!(layers.len(), 3, "base, zoneinfo, program");
        assert_eq!(layers[0], shipped(&format!("base.{extension}")));
        assert_eq!(layers[1], shipped(&format!("zoneinfo.{extension}")));
        if compression == "gzip" {
            // umoci reads no zstd layers.
            assert_eq!(run_image(&out, "latest"), "hello from C, uid 65532\n");
        }
    }
    let output = run_ok(
        scratchpack()
            .env("SCRATCHPACK_NO_CACHE", "1")
            .arg("pack")
            .arg(&binary)
            .args(["--ca-bundle", "none", "-vv", "--output"])
            .arg(format!("oci:{}", work.path().join("no-ca").display())),
    );
    assert!(stderr(&output).contains("base layer written"), "{}", stderr(&output));
}

/// The layer digests of the image tagged `latest` in the layout `dir`, bottom first.
fn manifest_layers(dir: &std::path::Path) -> Vec<String> {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(blob_file(dir, digest)).unwrap()).unwrap();
    manifest["layers"].as_array().unwrap().iter().map(|layer| layer["digest"].as_str().unwrap().to_string()).collect()
}
