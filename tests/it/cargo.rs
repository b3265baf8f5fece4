//! `cargo scratchpack` on a fixture workspace (two binaries, metadata in Cargo.toml), run through
//! cargo itself, for x86_64 and aarch64 musl targets.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;
use crate::util::*;

/// A fresh copy of tests/fixtures/cargo-ws in its own git repository; builds share one target dir.
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let (dir, ws) = cargo_fixture("cargo-ws");
    run_ok(Command::new("git").args(["init", "-q"]).current_dir(&ws));
    run_ok(Command::new("git").args(["add", "-A"]).current_dir(&ws));
    run_ok(
        Command::new("git")
            .args(["-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-qm", "fixture"])
            .env("GIT_COMMITTER_DATE", "1700000000 +0000")
            .env("GIT_AUTHOR_DATE", "1700000000 +0000")
            .current_dir(&ws),
    );
    (dir, ws)
}

fn git_head(ws: &Path) -> String {
    stdout(&run_ok(Command::new("git").args(["rev-parse", "HEAD"]).current_dir(ws))).trim().to_string()
}

#[test]
fn two_binaries_two_targets_make_two_indexes_with_annotations() {
    ensure_arm64_binfmt();
    let (_dir, ws) = workspace();
    let out = ws.join("images");
    let output = cargo_scratchpack(&ws, &["--output", &format!("oci:{}", out.display())], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("Finished"), "cargo's own output stays on stderr: {}", stderr(&output));
    let lines: Vec<String> = stdout(&output).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "one image per binary: {lines:?}");
    assert!(lines[0].starts_with(&format!("oci:{}/greeter-cli:1.4.2@sha256:", out.display())), "{lines:?}");
    assert!(lines[1].starts_with(&format!("oci:{}/greeter-server:1.4.2@sha256:", out.display())), "{lines:?}");

    let layout = out.join("greeter-server");
    let index = skopeo_inspect(&format!("oci:{}:1.4.2", layout.display()), &["--raw"]);
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let platforms: Vec<String> =
        index["manifests"].as_array().unwrap().iter().map(|m| m["platform"]["architecture"].as_str().unwrap().to_string()).collect();
    assert_eq!(platforms, ["arm64", "amd64"], "sorted by target triple");
    let a = &index["annotations"];
    assert_eq!(a["org.opencontainers.image.title"], "greeter-server");
    assert_eq!(a["org.opencontainers.image.version"], "1.4.2");
    assert_eq!(a["org.opencontainers.image.description"], "A fixture for cargo scratchpack's tests");
    assert_eq!(a["org.opencontainers.image.licenses"], "MIT OR Apache-2.0");
    assert_eq!(a["org.opencontainers.image.authors"], "Ada Lovelace <ada@example.com>, Grace Hopper");
    assert_eq!(a["org.opencontainers.image.source"], "https://example.com/greeter");
    assert_eq!(a["org.opencontainers.image.url"], "https://greeter.example.com");
    assert_eq!(a["org.opencontainers.image.documentation"], "https://docs.example.com/greeter");
    assert_eq!(a["org.opencontainers.image.revision"], git_head(&ws).as_str());
    assert_eq!(a["org.opencontainers.image.created"], "2023-11-14T22:13:20Z", "the commit's time, for reproducible builds");
    for (arch, tag) in [("arm64", "1.4.2"), ("amd64", "latest")] {
        let inspected = skopeo_inspect(&format!("oci:{}:{tag}", layout.display()), &["--override-arch", arch]);
        assert_eq!(inspected["Architecture"], arch);
        let manifest_annotations = skopeo_inspect(&format!("oci:{}:{tag}", layout.display()), &["--override-arch", arch, "--raw"]);
        let _ = manifest_annotations;
    }
    let amd64 = ws.join("amd64");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--override-arch",
        "amd64",
        &format!("oci:{}:1.4.2", layout.display()),
        &format!("oci:{}:run", amd64.display()),
    ]));
    assert_eq!(run_image(&amd64, "run"), "hello from greeter-server 1.4.2\n");
    let arm64 = ws.join("arm64");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--override-arch",
        "arm64",
        &format!("oci:{}:1.4.2", layout.display()),
        &format!("oci:{}:run", arm64.display()),
    ]));
    assert_eq!(run_image(&arm64, "run"), "hello from greeter-server 1.4.2\n");
}

#[test]
fn metadata_is_honoured_and_flags_override_it() {
    let (_dir, ws) = workspace();
    let out = ws.join("img");
    let output = cargo_scratchpack(
        &ws,
        &[
            "--bin",
            "greeter-server",
            "--target",
            "x86_64-unknown-linux-musl",
            "--env",
            "GREETING=hi",
            "--tag",
            "custom",
            "--compression",
            "zstd",
            "--output",
            &format!("oci:{}", out.display()),
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 1);
    let config = skopeo_inspect(&format!("oci:{}:custom", out.display()), &["--config"]);
    let env = config["config"]["Env"].as_array().unwrap();
    assert!(env.contains(&"GREETING=hi".into()), "the flag wins: {env:?}");
    assert!(env.contains(&"RUST_LOG=info".into()), "metadata env stays: {env:?}");
    assert_eq!(config["config"]["Labels"], serde_json::json!({"team": "payments"}));
    assert_eq!(config["config"]["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
    assert_eq!(config["config"]["User"], "65532:65532", "from [workspace.metadata.scratchpack]");
    assert_eq!(config["architecture"], "amd64");
    let manifest = skopeo_inspect(&format!("oci:{}:custom", out.display()), &["--raw"]);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json", "one target: no index");
    assert!(manifest["layers"].as_array().unwrap().iter().all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"));
    assert_eq!(manifest["annotations"]["org.opencontainers.image.title"], "greeter", "one binary: the package's name");
}

#[test]
fn created_caps_and_owners_come_from_metadata_and_layers_keep_the_commit_time() {
    let (_dir, ws) = workspace();
    let args = |out: &Path| {
        ["--bin", "greeter-server", "--target", "x86_64-unknown-linux-musl", "--output", &format!("oci:{}", out.display())]
            .map(str::to_string)
    };
    let plain = ws.join("plain");
    let output = cargo_scratchpack(&ws, &args(&plain).each_ref().map(String::as_str), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = ws.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "compression = \"gzip\"",
        "compression = \"gzip\"\ncreated = \"2026-01-02T03:04:05Z\"\ncaps = [\"net_bind_service\"]\nmkdir = [\"/var/cache/greeter::65532:65532\"]",
    );
    std::fs::write(&manifest, text).unwrap();
    let dated = ws.join("dated");
    let output = cargo_scratchpack(&ws, &args(&dated).each_ref().map(String::as_str), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let reference = |out: &Path| format!("oci:{}:1.4.2", out.display());
    let config = skopeo_inspect(&reference(&dated), &["--config"]);
    assert_eq!(config["created"], "2026-01-02T03:04:05Z");
    let manifest = skopeo_inspect(&reference(&dated), &["--raw"]);
    assert_eq!(manifest["annotations"]["org.opencontainers.image.created"], "2026-01-02T03:04:05Z");
    assert_eq!(skopeo_inspect(&reference(&plain), &["--config"])["created"], "2023-11-14T22:13:20Z", "the commit's time by default");
    let layers = |out: &Path| skopeo_inspect(&reference(out), &[])["Layers"].as_array().unwrap().clone();
    let (plain_layers, dated_layers) = (layers(&plain), layers(&dated));
    assert_eq!(dated_layers.len(), plain_layers.len() + 1, "the --mkdir layer");
    assert_eq!(dated_layers[0], plain_layers[0], "the base layer");
    assert_ne!(dated_layers.last(), plain_layers.last(), "the program's layer has its capability");
    let bundle_dir = temp_dir();
    let rootfs = unpack(&dated, "1.4.2", bundle_dir.path()).join("rootfs");
    let meta = std::fs::metadata(rootfs.join("var/cache/greeter")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid(), meta.mode()), (65532, 65532, 0o40755));
    let mtime = std::fs::metadata(rootfs.join("usr/local/bin/greeter-server")).unwrap().mtime();
    assert_eq!(mtime, 1_700_000_000, "layer times stay the commit's");
}

#[test]
fn unknown_metadata_keys_are_errors_that_name_the_key() {
    let (_dir, ws) = workspace();
    let manifest = ws.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace("compression = \"gzip\"", "compresion = \"gzip\"");
    std::fs::write(&manifest, text).unwrap();
    let output = cargo_scratchpack(&ws, &["--output", "oci:x"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("[package.metadata.scratchpack]: unknown field `compresion`, expected one of"), "{err}");
    assert!(!ws.join("x").exists());
}

#[test]
fn docker_archive_from_the_subcommand_reads_back_with_skopeo() {
    let (_dir, ws) = workspace();
    let archive = ws.join("server.tar");
    let output = cargo_scratchpack(
        &ws,
        &[
            "--bin",
            "greeter-server",
            "--target",
            "x86_64-unknown-linux-musl",
            "--output",
            &format!("docker-archive:{}:greeter:1.4.2", archive.display()),
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let inspected = skopeo_inspect(&format!("docker-archive:{}", archive.display()), &[]);
    assert_eq!(inspected["Architecture"], "amd64");
    // skopeo finds the image by the reference it was saved under.
    let by_name = skopeo_inspect(&format!("docker-archive:{}:greeter:1.4.2", archive.display()), &[]);
    assert_eq!(by_name["Digest"], inspected["Digest"]);
    let manifest = stdout(&run_ok(Command::new("tar").arg("-xOf").arg(&archive).arg("manifest.json")));
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["greeter:1.4.2"]));
}

#[test]
fn scratchpack_repo_names_where_bare_outputs_go() {
    let registry = Registry::plain();
    let (_dir, ws) = workspace();
    let output = cargo_scratchpack(
        &ws,
        &["--bin", "greeter-cli", "--target", "x86_64-unknown-linux-musl", "--tag", "{git_short_sha}", "--output", "cli", "-q"],
        &[("SCRATCHPACK_REPO", format!("{}/team", registry.host))],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let line = stdout(&output);
    assert!(line.starts_with(&format!("{}/team/cli@sha256:", registry.host)), "{line}");
    let short = &git_head(&ws)[..7];
    let inspected = skopeo_inspect(&format!("docker://{}/team/cli:{short}", registry.host), &["--tls-verify=false"]);
    assert_eq!(inspected["Digest"].as_str().unwrap(), digest_of(line.trim()));
}
