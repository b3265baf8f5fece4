//! What is inside the image: the conventions, --add, --extra-ca, config settings, and the size.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::util::*;

fn mode_owner(path: &Path) -> String {
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{:o} {}:{}", meta.permissions().mode() & 0o7777, meta.uid(), meta.gid())
}

#[test]
fn base_files_follow_the_conventions() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&[static_c_hello().to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |_| {});
    let bundle = unpack(&layout, "latest", work.path());
    let root = bundle.join("rootfs");
    let expected = [
        ("usr/local/bin/hello-c", "755 0:0"),
        ("etc/passwd", "644 0:0"),
        ("etc/group", "644 0:0"),
        ("etc/nsswitch.conf", "644 0:0"),
        ("etc/ssl/certs/ca-certificates.crt", "644 0:0"),
        ("tmp", "1777 0:0"),
        ("root", "700 0:0"),
        ("home", "755 0:0"),
        ("home/nonroot", "700 65532:65532"),
    ];
    for (path, want) in expected {
        assert_eq!(mode_owner(&root.join(path)), want, "{path}");
    }
    assert_eq!(std::fs::read_link(root.join("etc/ssl/cert.pem")).unwrap(), Path::new("certs/ca-certificates.crt"));
    assert_eq!(std::fs::read_link(root.join("etc/pki/tls/certs/ca-bundle.crt")).unwrap(), Path::new("/etc/ssl/certs/ca-certificates.crt"));
    assert_eq!(
        std::fs::read_to_string(root.join("etc/passwd")).unwrap(),
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
    );
    let nsswitch = std::fs::read_to_string(root.join("etc/nsswitch.conf")).unwrap();
    assert!(nsswitch.contains("hosts:     files dns\n"));
    assert!(!nsswitch.contains("compat") || nsswitch.lines().filter(|l| !l.starts_with('#')).all(|l| !l.contains("compat")));
    let bundle_pem = std::fs::read(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert_eq!(bundle_pem, std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/ca-certificates.crt")).unwrap());
    // The CA bundle's version is recorded on the manifest.
    let manifest = skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--raw"]);
    let version = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/VERSION")).unwrap();
    assert_eq!(manifest["annotations"]["dev.scratchpack.ca-bundle.version"], version.trim());
}

#[test]
fn add_and_extra_ca_land_with_their_modes() {
    let work = temp_dir();
    let conf = work.path().join("app.toml");
    std::fs::write(&conf, "port = 8080\n").unwrap();
    let site = work.path().join("site");
    std::fs::create_dir_all(site.join("js")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>hi</h1>").unwrap();
    std::fs::write(site.join("js/run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(site.join("js/run.sh"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let ca = work.path().join("corp-ca.pem");
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=corp test CA", "-keyout"])
            .arg(work.path().join("ca.key"))
            .arg("-out")
            .arg(&ca),
    );
    let layout = work.path().join("layout");
    pack(
        &[
            static_c_hello().to_str().unwrap(),
            "--output",
            &format!("oci:{}", layout.display()),
            "--add",
            &format!("{}:/etc/app/app.toml:0600", conf.display()),
            "--add",
            &format!("{}:/srv/site", site.display()),
            "--extra-ca",
            ca.to_str().unwrap(),
        ],
        |_| {},
    );
    oci_validate(&layout, "latest");
    let bundle = unpack(&layout, "latest", work.path());
    let root = bundle.join("rootfs");
    assert_eq!(mode_owner(&root.join("etc/app/app.toml")), "600 0:0");
    assert_eq!(std::fs::read_to_string(root.join("etc/app/app.toml")).unwrap(), "port = 8080\n");
    assert_eq!(mode_owner(&root.join("etc/app")), "755 0:0");
    assert_eq!(mode_owner(&root.join("srv/site/index.html")), "644 0:0");
    assert_eq!(mode_owner(&root.join("srv/site/js/run.sh")), "755 0:0");
    let pem = std::fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    let extra = std::fs::read_to_string(&ca).unwrap();
    assert!(pem.ends_with(&extra), "the private CA is appended to the bundle");
    assert_eq!(
        pem.matches("BEGIN CERTIFICATE").count(),
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/ca-certificates.crt"))
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count()
            + 1
    );
    assert_eq!(mode_owner(&root.join("etc/ssl/certs/ca-certificates.crt")), "644 0:0");
    // The three layers: base, --add files, the binary.
    let manifest = skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--raw"]);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 3);
}

#[test]
fn config_carries_the_runtime_settings() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(
        &[
            static_c_hello().to_str().unwrap(),
            "--output",
            &format!("oci:{}", layout.display()),
            "--path",
            "/app/server",
            "--env",
            "RUST_LOG=info",
            "--workdir",
            "/srv",
            "--expose",
            "8080",
            "--expose",
            "53/udp",
            "--label",
            "team=payments",
            "--annotation",
            "org.opencontainers.image.source=https://example.com/app",
            "--arg",
            "serve",
            "--ca-bundle",
            "none",
        ],
        |_| {},
    );
    let config = skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--config"]);
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/app/server"]));
    assert_eq!(c["Cmd"], serde_json::json!(["serve"]));
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["Env"], serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "RUST_LOG=info"]));
    assert_eq!(c["ExposedPorts"], serde_json::json!({"53/udp": {}, "8080/tcp": {}}));
    assert_eq!(c["Labels"], serde_json::json!({"team": "payments"}));
    let manifest = skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--raw"]);
    assert_eq!(manifest["annotations"], serde_json::json!({"org.opencontainers.image.source": "https://example.com/app"}));
    let bundle = unpack(&layout, "latest", work.path());
    assert!(!bundle.join("rootfs/etc/ssl").exists(), "--ca-bundle none leaves out the bundle");
    assert_eq!(mode_owner(&bundle.join("rootfs/app/server")), "755 0:0");
}

#[test]
fn everything_but_the_binary_costs_at_most_150_kb() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let binary = static_c_hello();
    pack(&[binary.to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |_| {});
    let sizes = blob_sizes(&layout);
    let image_size: u64 = sizes.iter().map(|(_, size)| size).sum();
    let gzipped = run_ok(Command::new("gzip").args(["-c"]).arg(&binary)).stdout.len() as u64;
    let overhead = image_size.saturating_sub(gzipped);
    assert!(overhead <= 150_000, "image {image_size} bytes, gzipped binary {gzipped}: overhead {overhead} bytes");
    // Measured without the binary's own compression: every blob but the app layer.
    let manifest = skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--raw"]);
    let app_layer = manifest["layers"][1]["size"].as_u64().unwrap();
    assert!(image_size - app_layer <= 150_000, "everything but the binary: {} bytes", image_size - app_layer);
}

#[test]
fn zstd_layers_unpack_and_run() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&[static_c_hello().to_str().unwrap(), "--output", &format!("oci:{}", layout.display()), "--compression", "zstd"], |_| {});
    let manifest = skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--raw"]);
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd");
    }
    // umoci 0.4.7 predates zstd layers: skopeo converts them, then the image runs.
    let converted = work.path().join("gz");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--dest-compress-format",
        "gzip",
        &format!("oci:{}:latest", layout.display()),
        &format!("oci:{}:latest", converted.display()),
    ]));
    assert_eq!(run_image(&converted, "latest"), "hello from C, uid 65532\n");
}

#[test]
fn a_dynamic_binary_brings_its_loader_and_libraries_and_runs() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let output = run_ok(scratchpack().arg("pack").arg(dynamic_c_hello()).arg("--output").arg(format!("oci:{}", layout.display())));
    assert_eq!(stderr(&output), "");
    oci_validate(&layout, "latest");
    let manifest = skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--raw"]);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 3, "base, libraries, app");
    let bundle = unpack(&layout, "latest", work.path());
    let root = bundle.join("rootfs");
    // The host's merged /usr comes along: /lib64 -> usr/lib64, /lib -> usr/lib.
    assert_eq!(std::fs::read_link(root.join("lib64")).unwrap(), Path::new("usr/lib64"));
    assert_eq!(std::fs::read_link(root.join("lib")).unwrap(), Path::new("usr/lib"));
    assert_eq!(mode_owner(&root.join("usr/lib/x86_64-linux-gnu/libc.so.6")), "755 0:0");
    assert_eq!(run_image(&layout, "latest"), "hello from C, uid 65532\n");

    let refused = scratchpack()
        .arg("pack")
        .arg(dynamic_c_hello())
        .args(["--static-only", "--output"])
        .arg(format!("oci:{}", work.path().join("no").display()))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        format!(
            "error: {}: is dynamically linked (interpreter /lib64/ld-linux-x86-64.so.2), and --static-only refuses dynamic programs\n\
             hint: build a static binary, for example `cargo build --target x86_64-unknown-linux-musl`, or drop --static-only\n",
            dynamic_c_hello().display()
        )
    );
    assert!(!work.path().join("no").exists());
}
