//! Several programs in one image (`--also`, `also-bins`): each runs from the image under runc,
//! gets its libraries, must be of the image's platform, is listed in the SBOM, and the image is
//! reproducible.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::util::*;

fn static_healthcheck() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    c_fixture(&CELL, "healthcheck.c", "healthcheck", &["-static"])
}

fn dynamic_healthcheck() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    c_fixture(&CELL, "healthcheck.c", "healthcheck-dynamic", &[])
}

fn static_healthcheck_arm64() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    c_fixture_arm64(&CELL, "healthcheck.c", "healthcheck-arm64", &["-static"])
}

/// Every path in the layer `digest` of `layout`, as tar lists it.
fn layer_paths(layout: &Path, digest: &str) -> Vec<String> {
    let listing = run_ok(Command::new("tar").arg("-tzf").arg(blob_file(layout, digest)));
    stdout(&listing).lines().map(str::to_string).collect()
}

fn manifest_layers(layout: &Path, tag: &str) -> Vec<String> {
    let manifest = skopeo_inspect(&format!("oci:{}:{tag}", layout.display()), &["--raw"]);
    manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

fn sha256_hex(file: &Path) -> String {
    let output = run_ok(Command::new("sha256sum").arg(file));
    stdout(&output).split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_health_check_runs_from_the_image_beside_the_program() {
    let dir = temp_dir();
    let layout = dir.path().join("img");
    let healthcheck = static_healthcheck();
    let lines = pack(
        &[
            static_c_hello().to_str().unwrap(),
            "--also",
            &format!("{}:/usr/local/bin/", healthcheck.display()),
            "--output",
            &format!("oci:{}:t", layout.display()),
        ],
        |_| {},
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    let config = skopeo_inspect(&format!("oci:{}:t", layout.display()), &["--config"]);
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/usr/local/bin/hello-c"]), "the main program stays the entrypoint");
    let history: Vec<&str> = config["history"].as_array().unwrap().iter().map(|h| h["created_by"].as_str().unwrap()).collect();
    assert_eq!(history.last(), Some(&"scratchpack: /usr/local/bin/hello-c"), "{history:?}");
    assert!(history.contains(&"scratchpack: --also /usr/local/bin/healthcheck"), "{history:?}");
    assert_eq!(run_image(&layout, "t"), "hello from C, uid 65532\n");
    assert_eq!(run_as(&layout, "t", &["/usr/local/bin/healthcheck", "db"]), "healthcheck: ok\nchecked db\n");
}

#[test]
fn a_dynamic_second_program_gets_its_libraries_once() {
    let dir = temp_dir();
    let layout = dir.path().join("img");
    let healthcheck = dynamic_healthcheck();
    pack(
        &[
            dynamic_c_hello().to_str().unwrap(),
            "--also",
            &format!("{}:/usr/bin/healthcheck", healthcheck.display()),
            "--output",
            &format!("oci:{}:t", layout.display()),
        ],
        |_| {},
    );
    let layers = manifest_layers(&layout, "t");
    let libc: Vec<Vec<String>> =
        layers.iter().map(|digest| layer_paths(&layout, digest)).filter(|paths| paths.iter().any(|p| p.ends_with("/libc.so.6"))).collect();
    assert_eq!(libc.len(), 1, "one layer holds libc");
    assert_eq!(libc[0].iter().filter(|p| p.ends_with("/libc.so.6")).count(), 1, "once, for both programs: {:?}", libc[0]);
    assert_eq!(run_image(&layout, "t"), "hello from C, uid 65532\n");
    assert_eq!(run_as(&layout, "t", &["/usr/bin/healthcheck"]), "healthcheck: ok\n");

    // A static main program: the libraries come for the second one alone.
    let static_main = dir.path().join("static-main");
    pack(
        &[
            static_c_hello().to_str().unwrap(),
            "--also",
            &format!("{}:/usr/bin/healthcheck", healthcheck.display()),
            "--output",
            &format!("oci:{}:t", static_main.display()),
        ],
        |_| {},
    );
    let paths: Vec<String> = manifest_layers(&static_main, "t").iter().flat_map(|d| layer_paths(&static_main, d)).collect();
    assert!(paths.iter().any(|p| p.ends_with("/libc.so.6")), "{paths:?}");
    assert_eq!(run_as(&static_main, "t", &["/usr/bin/healthcheck"]), "healthcheck: ok\n");
}

#[test]
fn a_second_program_of_another_platform_is_refused_naming_both() {
    let dir = temp_dir();
    let layout = dir.path().join("img");
    let arm64 = static_healthcheck_arm64();
    let output = scratchpack()
        .arg("pack")
        .arg(static_c_hello())
        .arg("--also")
        .arg(&arm64)
        .arg("--output")
        .arg(format!("oci:{}:t", layout.display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: {}: is linux/arm64/v8, but the image is linux/amd64: an --also program must be of the image's platform\n\
             hint: build the program for linux/amd64\n",
            arm64.display()
        )
    );
    assert!(stdout(&output).is_empty());
    assert!(!layout.exists(), "nothing written");
}

#[test]
fn in_a_multi_platform_pack_each_program_joins_the_image_of_its_platform() {
    ensure_arm64_binfmt();
    let dir = temp_dir();
    let layout = dir.path().join("img");
    let hc_amd64 = format!("{}:/usr/bin/healthcheck", static_healthcheck().display());
    let hc_arm64 = format!("{}:/usr/bin/healthcheck", static_healthcheck_arm64().display());
    let hello_amd64 = static_c_hello();
    let hello_arm64 = static_c_hello_arm64();
    let mains = [hello_amd64.to_str().unwrap(), hello_arm64.to_str().unwrap()];
    let output = format!("oci:{}:t", layout.display());
    pack(&[&mains[..], &["--also", &hc_arm64, "--also", &hc_amd64, "--output", &output]].concat(), |_| {});
    for arch in ["amd64", "arm64"] {
        let single = dir.path().join(arch);
        run_ok(Command::new("skopeo").args([
            "copy",
            "--override-arch",
            arch,
            &format!("oci:{}:t", layout.display()),
            &format!("oci:{}:t", single.display()),
        ]));
        assert_eq!(run_as(&single, "t", &["/usr/bin/healthcheck", arch]), format!("healthcheck: ok\nchecked {arch}\n"));
    }

    // One platform's image without the program the other has: refused, nothing written.
    let refused = dir.path().join("refused");
    let output = scratchpack()
        .arg("pack")
        .args(mains)
        .args(["--also", &hc_amd64, "--output", &format!("oci:{}:t", refused.display())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: the linux/arm64/v8 image has no /usr/bin/healthcheck, which the linux/amd64 image holds ({})\n\
             hint: every platform's image holds the same programs: add --also PROGRAM:/usr/bin/healthcheck with a program built for linux/arm64/v8\n",
            static_healthcheck().display()
        )
    );
    assert!(!refused.exists());
}

#[test]
fn two_programs_at_one_path_are_refused() {
    let dir = temp_dir();
    let layout = dir.path().join("img");
    let hello = static_c_hello();
    let output = scratchpack()
        .arg("pack")
        .arg(&hello)
        .arg("--also")
        .arg(format!("{}:/usr/local/bin/hello-c", static_healthcheck().display()))
        .arg("--output")
        .arg(format!("oci:{}:t", layout.display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: {} and {} would both be /usr/local/bin/hello-c in the linux/amd64 image\n\
             hint: give one of them another place: --also PROGRAM:DEST\n",
            hello.display(),
            static_healthcheck().display()
        )
    );
    assert!(!layout.exists());
}

#[test]
fn the_sbom_and_the_summary_list_every_program() {
    let dir = temp_dir();
    let layout = dir.path().join("img");
    let sboms = dir.path().join("sboms");
    let healthcheck = static_healthcheck();
    let output = run_ok(
        scratchpack()
            .arg("pack")
            .arg(static_c_hello())
            .args(["--also", healthcheck.to_str().unwrap(), "--sbom", "spdx", "--sbom-dir", sboms.to_str().unwrap(), "--json", "-v"])
            .arg("--output")
            .arg(format!("oci:{}:t", layout.display())),
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["images"][0]["programs"], serde_json::json!(["/usr/local/bin/hello-c", "/usr/local/bin/healthcheck"]));
    let said = format!("linux/amd64 image: also /usr/local/bin/healthcheck ({})\n", healthcheck.display());
    assert!(stderr(&output).contains(&said), "{}", stderr(&output));

    let document = sboms.join("hello-c-linux-amd64.spdx.json");
    let sbom: Value = serde_json::from_slice(&std::fs::read(&document).unwrap()).unwrap();
    let files: Vec<(&str, &str)> = sbom["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let sha256 = f["checksums"].as_array().unwrap().iter().find(|c| c["algorithm"] == "SHA256").unwrap();
            (f["fileName"].as_str().unwrap(), sha256["checksumValue"].as_str().unwrap())
        })
        .collect();
    let hello_sha = sha256_hex(&static_c_hello());
    let healthcheck_sha = sha256_hex(&healthcheck);
    assert!(files.contains(&("./usr/local/bin/hello-c", hello_sha.as_str())), "{files:?}");
    assert!(files.contains(&("./usr/local/bin/healthcheck", healthcheck_sha.as_str())), "{files:?}");
    let validated = Command::new("pyspdxtools").arg("-i").arg(&document).output().expect("pyspdxtools (run scripts/install-test-deps.sh)");
    assert!(validated.status.success(), "{}{}", stdout(&validated), stderr(&validated));

    // CycloneDX lists it too.
    let cdx_dir = dir.path().join("cdx");
    run_ok(
        scratchpack()
            .arg("pack")
            .arg(static_c_hello())
            .args(["--also", healthcheck.to_str().unwrap(), "--sbom", "cyclonedx", "--sbom-dir", cdx_dir.to_str().unwrap()])
            .arg("--output")
            .arg(format!("oci:{}:cdx", layout.display())),
    );
    let cdx: Value = serde_json::from_slice(&std::fs::read(cdx_dir.join("hello-c-linux-amd64.cdx.json")).unwrap()).unwrap();
    let text = cdx.to_string();
    assert!(text.contains("/usr/local/bin/healthcheck") && text.contains(&healthcheck_sha), "{text}");
}

#[test]
fn the_same_inputs_give_the_same_digest() {
    let dir = temp_dir();
    let pack_into = |name: &str, extra: &[&str]| {
        let layout = dir.path().join(name);
        let lines = pack(
            &[
                &[dynamic_c_hello().to_str().unwrap(), "--also", dynamic_healthcheck().to_str().unwrap(), "--also"][..],
                &[&format!("{}:/opt/", static_healthcheck().display()), "--output", &format!("oci:{}:t", layout.display())],
                extra,
            ]
            .concat(),
            |cmd| {
                cmd.env("SOURCE_DATE_EPOCH", "1700000000");
            },
        );
        digest_of(&lines[0])
    };
    let first = pack_into("a", &[]);
    assert_eq!(first, pack_into("b", &[]));
    let stripped = pack_into("c", &["--strip"]);
    assert_eq!(stripped, pack_into("d", &["--strip"]));
    assert_ne!(first, stripped);
}

#[test]
fn cargo_also_bins_go_into_every_image_built_in_the_same_run() {
    ensure_arm64_binfmt();
    let (_dir, ws) = cargo_fixture("cargo-ws");
    let manifest = ws.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("compression = \"gzip\"", "compression = \"gzip\"\nalso-bins = [\"greeter-cli\"]");
    std::fs::write(&manifest, text).unwrap();
    let out = ws.join("images");
    let output = cargo_scratchpack(&ws, &["--output", &format!("oci:{}", out.display()), "--json"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["platforms"], serde_json::json!(["linux/arm64/v8", "linux/amd64"]), "one image, not one per binary");
    for image in summary["images"].as_array().unwrap() {
        assert_eq!(image["programs"], serde_json::json!(["/usr/local/bin/greeter-server", "/usr/local/bin/greeter-cli"]));
    }
    for arch in ["amd64", "arm64"] {
        let single = ws.join(arch);
        run_ok(Command::new("skopeo").args([
            "copy",
            "--override-arch",
            arch,
            &format!("oci:{}:1.4.2", out.display()),
            &format!("oci:{}:run", single.display()),
        ]));
        assert_eq!(run_image(&single, "run"), "hello from greeter-server 1.4.2\n");
        assert_eq!(run_as(&single, "run", &["/usr/local/bin/greeter-cli", arch]), format!("greeter-cli {arch}\n"));
    }
}

#[test]
fn an_also_bin_that_is_not_a_binary_of_the_package_is_named_before_building() {
    let (_dir, ws) = cargo_fixture("cargo-ws");
    let out = ws.join("images");
    let output = cargo_scratchpack(&ws, &["--also-bin", "healthcheck", "--output", &format!("oci:{}", out.display())], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: also-bins: \"healthcheck\" is not a binary of package greeter (its binaries: greeter-cli, greeter-server)\n"
    );
    assert!(!out.exists());
}
