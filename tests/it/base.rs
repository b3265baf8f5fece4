//! `--base IMAGE`: a program packed on a base image of the user's choice. The base's layers come
//! first, byte for byte; scratchpack adds only what the base lacks, and says so; the config carries
//! on from the base's; each platform's image is on the base's image of that platform; the images
//! run under runc (and qemu for arm64) and validate.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::*;
use crate::util::*;

const BUSYBOX: &str = "/bin/busybox";

/// The manifest (or index) tagged `tag` in `layout`, whatever its media type.
fn manifest(layout: &Path, tag: &str) -> Value {
    blob_json(layout, &tagged(layout, tag))
}

/// The digest `tag` points to in `layout`.
fn tagged(layout: &Path, tag: &str) -> String {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"].as_array().unwrap().iter().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag);
    entry.unwrap_or_else(|| panic!("no {tag} in {}", layout.display()))["digest"].as_str().unwrap().to_string()
}

fn blob_json(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&std::fs::read(blob_file(layout, digest)).unwrap()).unwrap()
}

fn config_of(layout: &Path, manifest: &Value) -> Value {
    blob_json(layout, manifest["config"]["digest"].as_str().unwrap())
}

fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

/// Packs `args` and returns (the printed digest, stderr).
fn pack_ok(args: &[&str]) -> (String, String) {
    let output = run_ok(scratchpack().arg("pack").args(args));
    (digest_of(stdout(&output).trim()), stderr(&output))
}

/// Busybox packed by scratchpack into `layout:1`, with `extra` flags: a base with a shell.
fn busybox_base(layout: &Path, extra: &[&str]) -> String {
    let output = format!("oci:{}:1", layout.display());
    pack_ok(&[&[BUSYBOX, "--output", &output], extra].concat()).0
}

/// What stderr says about the base (the SBOM's note about the fixture's missing cargo-auditable
/// data left out).
fn base_lines(stderr: &str) -> String {
    stderr.lines().filter(|line| line.starts_with("base ")).map(|line| format!("{line}\n")).collect()
}

/// The files an SPDX document lists, sorted.
fn sbom_files(file: &Path) -> Vec<String> {
    let sbom: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let mut files: Vec<String> = sbom["files"].as_array().unwrap().iter().map(|f| f["fileName"].as_str().unwrap().to_string()).collect();
    files.sort();
    files
}

const SHELL: &[&str] = &["/usr/local/bin/busybox", "sh", "-c", "id -u; /usr/local/bin/hello-c"];

#[test]
fn a_program_runs_on_a_busybox_base_whose_layers_come_first() {
    let work = temp_dir();
    let base = work.path().join("base");
    let base_digest = busybox_base(&base, &[]);
    let app = work.path().join("app");
    let hello = static_c_hello();
    let sboms = work.path().join("sboms");
    let (_, said) = pack_ok(&[
        hello.to_str().unwrap(),
        "--base",
        &format!("oci:{}@{base_digest}", base.display()),
        "--output",
        &format!("oci:{}:t", app.display()),
        "--sbom",
        "spdx",
        "--sbom-dir",
        sboms.to_str().unwrap(),
    ]);
    // The base is scratchpack's own: it has passwd, group, nsswitch.conf and the CA bundle.
    assert_eq!(base_lines(&said), "");
    assert_eq!(sbom_files(&sboms.join("hello-c-linux-amd64.spdx.json")), ["./usr/local/bin/hello-c"], "the base's bundle is not ours");
    let base_manifest = manifest(&base, "1");
    let app_manifest = manifest(&app, "t");
    let base_layers = layer_digests(&base_manifest);
    let app_layers = layer_digests(&app_manifest);
    assert_eq!(app_layers[..base_layers.len()], base_layers[..]);
    assert_eq!(app_layers.len(), base_layers.len() + 1, "only the program's layer is added");
    assert_eq!(app_manifest["annotations"]["org.opencontainers.image.base.name"], format!("oci:base@{base_digest}"));
    assert_eq!(app_manifest["annotations"]["org.opencontainers.image.base.digest"], base_digest);
    let (base_config, app_config) = (config_of(&base, &base_manifest), config_of(&app, &app_manifest));
    let base_history = base_config["history"].as_array().unwrap();
    let app_history = app_config["history"].as_array().unwrap();
    assert_eq!(app_history.len(), base_history.len() + 1);
    assert_eq!(app_history[..base_history.len()], base_history[..]);
    assert_eq!(app_history.last().unwrap()["created_by"], "scratchpack: /usr/local/bin/hello-c");
    let diff_ids = app_config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids[..base_history.len()], base_config["rootfs"]["diff_ids"].as_array().unwrap()[..]);
    assert_eq!(app_config["config"]["Entrypoint"], serde_json::json!(["/usr/local/bin/hello-c"]));
    assert_eq!(run_as(&app, "t", SHELL), "65532\nhello from C, uid 65532\n");
    oci_validate(&app, "t");
}

#[test]
fn a_base_without_passwd_or_certificates_gets_scratchpacks_own_in_a_layer_of_their_own() {
    let work = temp_dir();
    let base = work.path().join("umoci");
    let image = format!("{}:1", base.display());
    run_ok(Command::new("umoci").args(["init", "--layout"]).arg(&base));
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    run_ok(Command::new("umoci").args(["insert", "--image", &image, BUSYBOX, "/usr/local/bin/busybox"]));
    run_ok(Command::new("umoci").args(["config", "--image", &image, "--config.stopsignal", "SIGQUIT", "--config.volume", "/data"]));
    run_ok(Command::new("umoci").args(["config", "--image", &image, "--config.workingdir", "/data", "--config.cmd", "sh"]));
    let app = work.path().join("app");
    let hello = static_c_hello();
    let sboms = work.path().join("sboms");
    let (_, said) = pack_ok(&[
        hello.to_str().unwrap(),
        "--base",
        &format!("oci:{image}"),
        "--output",
        &format!("oci:{}:t", app.display()),
        "--sbom",
        "spdx",
        "--sbom-dir",
        sboms.to_str().unwrap(),
    ]);
    assert_eq!(
        sbom_files(&sboms.join("hello-c-linux-amd64.spdx.json")),
        ["./etc/ssl/certs/ca-certificates.crt", "./usr/local/bin/hello-c"]
    );
    assert_eq!(
        base_lines(&said),
        "base oci:umoci:1 (linux/amd64): lacks /etc/passwd, /etc/group, /etc/nsswitch.conf, CA bundle, /tmp, /home/nonroot, which \
         scratchpack adds\n"
    );
    let base_layers = layer_digests(&manifest(&base, "1"));
    let app_manifest = manifest(&app, "t");
    let app_layers = layer_digests(&app_manifest);
    assert_eq!(app_layers.len(), base_layers.len() + 2);
    assert_eq!(app_layers[..base_layers.len()], base_layers[..]);
    let added = run_ok(Command::new("tar").arg("-tzf").arg(blob_file(&app, &app_layers[base_layers.len()])));
    assert_eq!(
        stdout(&added),
        "etc/\netc/group\netc/nsswitch.conf\netc/passwd\netc/pki/\netc/pki/tls/\netc/pki/tls/certs/\netc/pki/tls/certs/ca-bundle.crt\n\
         etc/ssl/\netc/ssl/cert.pem\netc/ssl/certs/\netc/ssl/certs/ca-certificates.crt\nhome/\nhome/nonroot/\ntmp/\n"
    );
    let config = config_of(&app, &app_manifest);
    assert_eq!(config["config"]["User"], "65532:65532", "the base names no user");
    assert_eq!(config["config"]["StopSignal"], "SIGQUIT");
    assert_eq!(config["config"]["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(config["config"]["WorkingDir"], "/data");
    assert!(config["config"].get("Cmd").is_none(), "the base's Cmd goes with its entrypoint");
    assert_eq!(
        run_as(
            &app,
            "t",
            &["/usr/local/bin/busybox", "sh", "-c", "id; test -s /etc/ssl/certs/ca-certificates.crt && echo certs; stat -c '%a %u' /tmp ~"]
        ),
        "uid=65532(nonroot) gid=65532(nonroot)\ncerts\n1777 0\n700 65532\n"
    );
    oci_validate(&app, "t");
}

#[test]
fn each_platform_is_packed_on_the_bases_image_of_that_platform() {
    ensure_arm64_binfmt();
    let work = temp_dir();
    let base = work.path().join("base");
    let (amd64, arm64) = (static_c_hello(), static_c_hello_arm64());
    let (base_digest, _) =
        pack_ok(&[amd64.to_str().unwrap(), arm64.to_str().unwrap(), "--output", &format!("oci:{}:multi", base.display())]);
    let base_index = blob_json(&base, &base_digest);
    let base_child = |arch: &str| {
        let child = base_index["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == arch).unwrap();
        child["digest"].as_str().unwrap().to_string()
    };
    let app = work.path().join("app");
    let (index_digest, _) = pack_ok(&[
        amd64.to_str().unwrap(),
        arm64.to_str().unwrap(),
        "--path",
        "/app/hello",
        "--base",
        &format!("oci:{}:multi@{base_digest}", base.display()),
        "--output",
        &format!("oci:{}:t", app.display()),
    ]);
    // --json names each image's base; the same pinned base gives the same index.
    let again = run_ok(scratchpack().arg("pack").arg(&amd64).arg(&arm64).args([
        "--path",
        "/app/hello",
        "--base",
        &format!("oci:{}:multi@{base_digest}", base.display()),
        "--output",
        &format!("oci:{}:t", work.path().join("again").display()),
        "--json",
    ]));
    let summary: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(summary["digest"], index_digest);
    for image in summary["images"].as_array().unwrap() {
        let arch = if image["platform"] == "linux/amd64" { "amd64" } else { "arm64" };
        let name = format!("oci:base:multi@{base_digest}");
        assert_eq!(image["base"], serde_json::json!({"name": name, "digest": base_child(arch)}), "{arch}");
    }
    let index = blob_json(&app, &index_digest);
    for child in index["manifests"].as_array().unwrap() {
        let arch = child["platform"]["architecture"].as_str().unwrap();
        let manifest = blob_json(&app, child["digest"].as_str().unwrap());
        assert_eq!(manifest["annotations"]["org.opencontainers.image.base.digest"], base_child(arch), "{arch}");
        let base_layers = layer_digests(&blob_json(&base, &base_child(arch)));
        assert_eq!(layer_digests(&manifest)[..base_layers.len()], base_layers[..], "{arch}");
    }
    // umoci cannot pick a platform from an index: skopeo copies each child out first.
    for (arch, base_program) in [("arm64", "/usr/local/bin/hello-c-arm64"), ("amd64", "/usr/local/bin/hello-c")] {
        let single = work.path().join(arch);
        run_ok(Command::new("skopeo").args([
            "copy",
            "--override-arch",
            arch,
            &format!("oci:{}:t", app.display()),
            &format!("oci:{}:t", single.display()),
        ]));
        assert_eq!(run_as(&single, "t", &[base_program]), "hello from C, uid 65532\n", "{arch}: the base's program");
        assert_eq!(run_as(&single, "t", &["/app/hello"]), "hello from C, uid 65532\n", "{arch}: the packed program");
    }
    oci_validate(&app, "t");
}

#[test]
fn a_base_in_docker_schema2_media_types_keeps_its_layer_bytes() {
    let work = temp_dir();
    let base = work.path().join("base");
    busybox_base(&base, &[]);
    let v2s2 = work.path().join("v2s2");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--format",
        "v2s2",
        &format!("oci:{}:1", base.display()),
        &format!("oci:{}:1", v2s2.display()),
    ]));
    let docker_manifest = manifest(&v2s2, "1");
    assert_eq!(docker_manifest["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(docker_manifest["layers"][0]["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip");
    let app = work.path().join("app");
    let hello = static_c_hello();
    let registry = Registry::plain();
    let pushed = format!("docker://{}/team/app:t", registry.host);
    let (digest, _) = pack_ok(&[
        hello.to_str().unwrap(),
        "--base",
        &format!("oci:{}:1", v2s2.display()),
        "--output",
        &format!("oci:{}:t", app.display()),
        "--output",
        &pushed,
    ]);
    let app_manifest = manifest(&app, "t");
    // The registry holds the base's layers too: the image pulls back whole, and runs.
    assert_eq!(skopeo_inspect(&pushed, &["--tls-verify=false", "--raw"]), app_manifest);
    let pulled = work.path().join("pulled");
    run_ok(Command::new("skopeo").args(["copy", "--src-tls-verify=false", &pushed, &format!("oci:{}:t", pulled.display())]));
    assert_eq!(tagged(&pulled, "t"), digest);
    assert_eq!(run_as(&pulled, "t", SHELL), "65532\nhello from C, uid 65532\n");
    let base_layers = layer_digests(&docker_manifest);
    assert_eq!(layer_digests(&app_manifest)[..base_layers.len()], base_layers[..]);
    for layer in app_manifest["layers"].as_array().unwrap() {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    }
    assert_eq!(app_manifest["annotations"]["org.opencontainers.image.base.digest"], tagged(&v2s2, "1"));
    assert_eq!(run_as(&app, "t", SHELL), "65532\nhello from C, uid 65532\n");
    oci_validate(&app, "t");
}

#[test]
fn a_base_without_the_programs_platform_is_refused_and_nothing_is_written() {
    let work = temp_dir();
    let base = work.path().join("base");
    busybox_base(&base, &[]);
    let before = tree_listing(work.path());
    let app = work.path().join("app");
    let output = scratchpack()
        .arg("pack")
        .arg(static_c_hello_arm64())
        .args(["--base", &format!("oci:{}:1", base.display()), "--output", &format!("oci:{}:t", app.display())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: --base oci:{}:1: has no linux/arm64/v8 image (it has linux/amd64)\n\
             hint: use a base that has a linux/arm64/v8 image, or build the program for a platform the base has\n",
            base.display()
        )
    );
    assert!(!app.exists(), "nothing written");
    assert_eq!(tree_listing(work.path()), before);
}

/// The busybox base pushed to a registry; `pack --base docker://REPO@sha256:…` pushes to another
/// repository of that registry. The base's layers are mounted from the base's repository, never
/// uploaded; the image runs under runc as on a local base. A second pack into a layout takes the
/// base's blobs from the layer cache: fetched once.
#[test]
fn a_base_from_a_registry_is_mounted_into_another_repository_of_it() {
    let registry = Registry::plain();
    let work = temp_dir();
    let base = work.path().join("base");
    let base_digest = busybox_base(&base, &[]);
    let base_repo = format!("{}/base/busybox", registry.host);
    run_ok(scratchpack().args(["push", &format!("oci:{}:1", base.display()), &format!("docker://{base_repo}:1")]));
    let base_layers = layer_digests(&manifest(&base, "1"));
    let cache = work.path().join("cache");
    let app_repo = format!("{}/apps/hello", registry.host);
    let output = run_ok(scratchpack().env("SCRATCHPACK_CACHE_DIR", &cache).arg("pack").arg(static_c_hello()).args([
        "--base",
        &format!("docker://{base_repo}@{base_digest}"),
        "--output",
        &format!("docker://{app_repo}:1"),
    ]));
    let pushed = digest_of(stdout(&output).trim());
    assert!(registry.wait_for_request("PUT", "/v2/apps/hello/manifests/1", 201), "{:?}", registry.requests());
    let requests = registry.requests();
    let mounted: Vec<&String> = base_layers
        .iter()
        .filter(|digest| {
            requests.iter().any(|(m, p, s)| {
                m == "POST"
                    && *s == 201
                    && p.starts_with("/v2/apps/hello/blobs/uploads/?mount=")
                    && p.contains(&digest.replace(':', "%3A"))
                    && p.contains("from=base%2Fbusybox")
            })
        })
        .collect();
    assert_eq!(mounted.len(), base_layers.len(), "every base layer mounted: {requests:?}");
    let uploads: Vec<&(String, String, u16)> =
        requests.iter().filter(|(m, p, _)| m == "PUT" && p.starts_with("/v2/apps/hello/blobs/uploads/")).collect();
    for digest in &base_layers {
        assert!(!uploads.iter().any(|(_, p, _)| p.contains(&digest.replace(':', "%3A"))), "{digest} uploaded: {uploads:?}");
    }

    // The pushed image, copied out, runs like one on a local base, and names its base.
    let out = work.path().join("out");
    run_ok(scratchpack().args(["copy", &format!("docker://{app_repo}@{pushed}"), &format!("oci:{}:t", out.display())]));
    let app_manifest = manifest(&out, "t");
    assert_eq!(layer_digests(&app_manifest)[..base_layers.len()], base_layers[..]);
    assert_eq!(app_manifest["annotations"]["org.opencontainers.image.base.name"], format!("{base_repo}@{base_digest}"));
    assert_eq!(app_manifest["annotations"]["org.opencontainers.image.base.digest"], base_digest);
    assert_eq!(run_as(&out, "t", SHELL), "65532\nhello from C, uid 65532\n");

    // Into a layout, the base's blobs come from the registry once, then from the layer cache.
    let blob_gets = || registry.requests().iter().filter(|(m, p, _)| m == "GET" && p.contains("/blobs/sha256:")).count();
    let gets_before = blob_gets();
    let local = work.path().join("local");
    let again = run_ok(scratchpack().env("SCRATCHPACK_CACHE_DIR", &cache).arg("pack").arg(static_c_hello()).args([
        "--base",
        &format!("docker://{base_repo}@{base_digest}"),
        "--output",
        &format!("oci:{}:t", local.display()),
    ]));
    assert_eq!(digest_of(stdout(&again).trim()), pushed, "the same image wherever it is written");
    assert_eq!(blob_gets(), gets_before, "the base's blobs came from the layer cache");
}

#[test]
fn the_bases_env_and_user_stand_and_its_labels_only_when_asked() {
    let work = temp_dir();
    let base = work.path().join("base");
    busybox_base(&base, &["--env", "FOO=bar", "--env", "PATH=/opt/bin:/usr/bin", "--user", "1000", "--label", "a=b", "--expose", "80"]);
    let hello = static_c_hello();
    let pack_config = |name: &str, extra: &[&str]| {
        let app = work.path().join(name);
        let base = format!("oci:{}:1", base.display());
        pack_ok(&[&[hello.to_str().unwrap(), "--base", &base, "--output", &format!("oci:{}:t", app.display())], extra].concat());
        config_of(&app, &manifest(&app, "t"))["config"].clone()
    };
    let plain = pack_config("plain", &["--label", "c=d"]);
    assert_eq!(
        plain["Env"],
        serde_json::json!([
            "FOO=bar",
            "PATH=/opt/bin:/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/bin",
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
        ])
    );
    assert_eq!(plain["User"], "1000");
    assert_eq!(plain["Labels"], serde_json::json!({"c": "d"}));
    assert_eq!(plain["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
    assert!(plain.get("Cmd").is_none());
    let inherited = pack_config("inherited", &["--inherit-labels", "--label", "c=d", "--env", "FOO=mine", "--user", "0", "--arg", "x"]);
    assert_eq!(inherited["Labels"], serde_json::json!({"a": "b", "c": "d"}));
    assert_eq!(inherited["Env"][0], "FOO=mine");
    assert_eq!(inherited["User"], "0");
    assert_eq!(inherited["Cmd"], serde_json::json!(["x"]));
    assert_eq!(run_as(&work.path().join("plain"), "t", SHELL), "1000\nhello from C, uid 1000\n");
}

#[test]
fn a_base_pinned_by_digest_gives_the_same_image_in_every_format() {
    let work = temp_dir();
    let archive = work.path().join("base.tar");
    let (base_digest, _) = pack_ok(&[BUSYBOX, "--output", &format!("oci-archive:{}:1", archive.display())]);
    let hello = static_c_hello();
    let base = format!("oci-archive:{}@{base_digest}", archive.display());
    let pack_to = |name: &str| {
        let (layout, docker) = (work.path().join(name), work.path().join(format!("{name}-docker.tar")));
        let output = run_ok(scratchpack().arg("pack").arg(&hello).args([
            "--base",
            &base,
            "--output",
            &format!("oci:{}:t", layout.display()),
            "--output",
            &format!("docker-archive:{}:app:t", docker.display()),
        ]));
        (digest_of(stdout(&output).lines().next().unwrap()), layout, docker)
    };
    let (first, layout, docker) = pack_to("one");
    let (second, _, _) = pack_to("two");
    assert_eq!(first, second);
    assert_eq!(manifest(&layout, "t")["annotations"]["org.opencontainers.image.base.name"], format!("oci-archive:base.tar@{base_digest}"));
    // The docker archive holds the base's layers too, uncompressed.
    let docker_layers = skopeo_inspect(&format!("docker-archive:{}", docker.display()), &[])["Layers"].as_array().unwrap().len();
    assert_eq!(docker_layers, layer_digests(&manifest(&layout, "t")).len());
    assert_eq!(run_as(&layout, "t", SHELL), "65532\nhello from C, uid 65532\n");
}

/// Writes `bytes` as a blob of `layout`; returns its digest.
fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let file = layout.join("blobs/sha256/new");
    std::fs::write(&file, bytes).unwrap();
    let hex = stdout(&run_ok(Command::new("sha256sum").arg(&file))).split_whitespace().next().unwrap().to_string();
    std::fs::rename(&file, layout.join("blobs/sha256").join(&hex)).unwrap();
    format!("sha256:{hex}")
}

#[test]
fn an_uncompressed_base_layer_is_reused_as_a_plain_tar() {
    use std::io::Read;
    let work = temp_dir();
    let base = work.path().join("base");
    busybox_base(&base, &[]);
    // The same image with every layer stored as a plain tar, as a `docker save` yields them.
    let mut base_manifest = manifest(&base, "1");
    for layer in base_manifest["layers"].as_array_mut().unwrap() {
        let mut tar = Vec::new();
        let gz = std::fs::read(blob_file(&base, layer["digest"].as_str().unwrap())).unwrap();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut tar).unwrap();
        *layer =
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put_blob(&base, &tar), "size": tar.len()});
    }
    let bytes = serde_json::to_vec(&base_manifest).unwrap();
    let plain_digest = put_blob(&base, &bytes);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": plain_digest, "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "plain"}}]});
    std::fs::write(base.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let (app, docker) = (work.path().join("app"), work.path().join("app.tar"));
    let hello = static_c_hello();
    let output = run_ok(scratchpack().arg("pack").arg(&hello).args([
        "--base",
        &format!("oci:{}:plain", base.display()),
        "--output",
        &format!("oci:{}:t", app.display()),
        "--output",
        &format!("docker-archive:{}:app:t", docker.display()),
    ]));
    assert_eq!(stderr(&output), "");
    let app_manifest = manifest(&app, "t");
    let base_layers = layer_digests(&base_manifest);
    assert_eq!(app_manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    assert_eq!(layer_digests(&app_manifest)[..base_layers.len()], base_layers[..]);
    let docker_layers = skopeo_inspect(&format!("docker-archive:{}", docker.display()), &[])["Layers"].clone();
    assert_eq!(docker_layers, config_of(&app, &app_manifest)["rootfs"]["diff_ids"]);
    assert_eq!(run_as(&app, "t", SHELL), "65532\nhello from C, uid 65532\n");
    oci_validate(&app, "t");
}

#[test]
fn cargo_metadata_names_the_base_and_a_base_per_binary() {
    let (_dir, ws) = cargo_fixture("cargo-ws");
    busybox_base(&ws.join("debug"), &[]);
    let hello = static_c_hello();
    pack_ok(&[hello.to_str().unwrap(), "--output", &format!("oci:{}:1", ws.join("base").display()), "--label", "from=base"]);
    let toml = std::fs::read_to_string(ws.join("Cargo.toml")).unwrap().replace(
        "[package.metadata.scratchpack]\n",
        "[package.metadata.scratchpack]\nbase = \"oci:base:1\"\nbase-overrides = { greeter-cli = \"oci:debug:1\" }\ninherit-labels = true\n",
    );
    std::fs::write(ws.join("Cargo.toml"), toml).unwrap();
    let out = ws.join("images");
    let output = cargo_scratchpack(
        &ws,
        &["--target", "x86_64-unknown-linux-musl", "--sbom", "none", "--output", &format!("oci:{}", out.display())],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    for (bin, base) in [("greeter-server", "base"), ("greeter-cli", "debug")] {
        let layout = out.join(bin);
        let app_manifest = manifest(&layout, "1.4.2");
        assert_eq!(app_manifest["annotations"]["org.opencontainers.image.base.name"], format!("oci:{base}:1"), "{bin}");
        assert_eq!(app_manifest["annotations"]["org.opencontainers.image.base.digest"], tagged(&ws.join(base), "1"), "{bin}");
        let labels = &config_of(&layout, &app_manifest)["config"]["Labels"];
        assert_eq!(labels["team"], "payments", "{bin}");
        assert_eq!(labels["from"], if base == "base" { Value::from("base") } else { Value::Null }, "{bin}: inherit-labels");
    }
    assert_eq!(
        run_as(
            &out.join("greeter-cli"),
            "1.4.2",
            &["/usr/local/bin/busybox", "sh", "-c", "id -u; test -x /usr/local/bin/greeter-cli && echo cli"]
        ),
        "65532\ncli\n"
    );
}

#[test]
fn a_base_whose_layer_is_not_what_its_config_or_digest_says_is_refused() {
    let work = temp_dir();
    let base = work.path().join("base");
    busybox_base(&base, &[]);
    let hello = static_c_hello();
    let pack_on = |tag: &str| {
        let app = work.path().join(format!("app-{tag}"));
        let output = scratchpack()
            .arg("pack")
            .arg(&hello)
            .args(["--base", &format!("oci:{}:{tag}", base.display()), "--output", &format!("oci:{}:t", app.display())])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(!app.exists(), "nothing written");
        stderr(&output)
    };
    // A config whose first diff ID is not its first layer's.
    let mut base_manifest = manifest(&base, "1");
    let mut config = config_of(&base, &base_manifest);
    let claimed = format!("sha256:{}", "0".repeat(64));
    let actual = config["rootfs"]["diff_ids"][0].as_str().unwrap().to_string();
    config["rootfs"]["diff_ids"][0] = claimed.clone().into();
    let config_bytes = serde_json::to_vec(&config).unwrap();
    base_manifest["config"] = serde_json::json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put_blob(&base, &config_bytes), "size": config_bytes.len()});
    let bytes = serde_json::to_vec(&base_manifest).unwrap();
    let lying = put_blob(&base, &bytes);
    let mut index: Value = serde_json::from_slice(&std::fs::read(base.join("index.json")).unwrap()).unwrap();
    index["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": lying, "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "lying"}}));
    std::fs::write(base.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let first_layer = base_manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        pack_on("lying"),
        format!(
            "error: --base oci:{}:lying: layer {first_layer} does not hold what its config says (its content hashes to {actual}, the config says {claimed})\n",
            base.display()
        )
    );
    // A layer file whose bytes are not its digest's.
    let file = blob_file(&base, &first_layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let said = pack_on("1");
    assert!(
        said.starts_with(&format!(
            "error: reading the base oci:{}:1: {}: blob {first_layer} does not match its digest",
            base.display(),
            base.display()
        )),
        "{said}"
    );
}

#[test]
fn a_docker_schema1_base_is_refused_with_the_conversion_to_use() {
    let work = temp_dir();
    let base = work.path().join("base");
    std::fs::create_dir_all(base.join("blobs/sha256")).unwrap();
    std::fs::write(base.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let schema1 =
        br#"{"schemaVersion":1,"name":"library/busybox","tag":"1","architecture":"amd64","fsLayers":[],"history":[],"signatures":[]}"#;
    let digest = put_blob(&base, schema1);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws", "digest": digest, "size": schema1.len(),
        "annotations": {"org.opencontainers.image.ref.name": "1"}}]});
    std::fs::write(base.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let output = scratchpack()
        .arg("pack")
        .arg(static_c_hello())
        .args(["--base", &format!("oci:{}:1", base.display()), "--output", &format!("oci:{}", work.path().join("app").display())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: reading the base oci:{dir}:1: {dir}: image {digest} is a Docker schema1 manifest, which scratchpack does not read; convert it first: skopeo copy --format v2s2\n",
            dir = base.display()
        )
    );
    assert!(!work.path().join("app").exists());
}

/// A self-signed P-256 CA certificate named `name`, as openssl writes it.
fn make_ca(dir: &Path, name: &str) -> std::path::PathBuf {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
            .args(["-subj", &format!("/CN={name}"), "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    cert
}

#[test]
fn extra_ca_is_appended_to_the_bases_own_bundle() {
    let work = temp_dir();
    let (company, private) = (make_ca(work.path(), "company-root"), make_ca(work.path(), "team-ca"));
    let base = work.path().join("base");
    busybox_base(&base, &["--ca-bundle", company.to_str().unwrap()]);
    let app = work.path().join("app");
    let hello = static_c_hello();
    let (_, said) = pack_ok(&[
        hello.to_str().unwrap(),
        "--base",
        &format!("oci:{}:1", base.display()),
        "--extra-ca",
        private.to_str().unwrap(),
        "--output",
        &format!("oci:{}:t", app.display()),
    ]);
    assert_eq!(base_lines(&said), "base oci:base:1 (linux/amd64): its CA bundle is kept, with --extra-ca appended\n");
    let bundle = std::fs::read_to_string(work.path().join("company-root.crt")).unwrap()
        + &std::fs::read_to_string(work.path().join("team-ca.crt")).unwrap();
    let listed = run_as(&app, "t", &["/usr/local/bin/busybox", "cat", "/etc/ssl/certs/ca-certificates.crt"]);
    assert_eq!(listed, bundle);
    assert!(manifest(&app, "t")["annotations"].get("dev.scratchpack.ca-bundle.version").is_none(), "the bundle is the base's");
}

#[test]
fn a_given_ca_bundle_replaces_the_bases_own() {
    let work = temp_dir();
    let (company, team) = (make_ca(work.path(), "company-root"), make_ca(work.path(), "team-ca"));
    let base = work.path().join("base");
    busybox_base(&base, &["--ca-bundle", company.to_str().unwrap()]);
    let app = work.path().join("app");
    let hello = static_c_hello();
    let (_, said) = pack_ok(&[
        hello.to_str().unwrap(),
        "--base",
        &format!("oci:{}:1", base.display()),
        "--ca-bundle",
        team.to_str().unwrap(),
        "--output",
        &format!("oci:{}:t", app.display()),
    ]);
    assert_eq!(base_lines(&said), "base oci:base:1 (linux/amd64): its CA bundle is replaced by --ca-bundle's\n");
    let listed = run_as(&app, "t", &["/usr/local/bin/busybox", "cat", "/etc/ssl/certs/ca-certificates.crt"]);
    assert_eq!(listed, std::fs::read_to_string(&team).unwrap());
    assert_eq!(manifest(&app, "t")["annotations"]["dev.scratchpack.ca-bundle.version"], "file team-ca.crt");
}

#[test]
fn a_dynamic_program_on_a_base_finds_its_libraries_after_the_bases() {
    let work = temp_dir();
    let base = work.path().join("base");
    busybox_base(&base, &["--env", "LD_LIBRARY_PATH=/opt/lib"]);
    let app = work.path().join("app");
    let hello = dynamic_c_hello();
    pack_ok(&[
        hello.to_str().unwrap(),
        "--library-path",
        "/lib/x86_64-linux-gnu",
        "--base",
        &format!("oci:{}:1", base.display()),
        "--output",
        &format!("oci:{}:t", app.display()),
    ]);
    let config = config_of(&app, &manifest(&app, "t"));
    assert_eq!(config["config"]["Env"][0], "LD_LIBRARY_PATH=/opt/lib:/lib/x86_64-linux-gnu");
    assert_eq!(run_image(&app, "t"), "hello from C, uid 65532\n");
}

#[test]
fn only_the_platforms_packed_are_read_from_the_base() {
    let work = temp_dir();
    let base = work.path().join("base");
    let (amd64, arm64) = (static_c_hello(), static_c_hello_arm64());
    let (base_digest, _) = pack_ok(&[amd64.to_str().unwrap(), arm64.to_str().unwrap(), "--output", &format!("oci:{}:1", base.display())]);
    // The arm64 image's own layer is gone: a pack for amd64 alone never needs it.
    let arm64_manifest = blob_json(&base, blob_json(&base, &base_digest)["manifests"][1]["digest"].as_str().unwrap());
    assert_eq!(blob_json(&base, &base_digest)["manifests"][1]["platform"]["architecture"], "arm64");
    std::fs::remove_file(blob_file(&base, arm64_manifest["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap()))
        .unwrap();
    let app = work.path().join("app");
    pack_ok(&[
        amd64.to_str().unwrap(),
        "--path",
        "/app/hello",
        "--base",
        &format!("oci:{}:1", base.display()),
        "--output",
        &format!("oci:{}:t", app.display()),
    ]);
    assert_eq!(run_as(&app, "t", &["/app/hello"]), "hello from C, uid 65532\n");
}

/// The busybox base pushed to `registry` as `base/REPO:1`; returns its digest and largest layer
/// (digest, size).
fn busybox_in_registry(registry: &Registry, repo: &str, work: &Path) -> (String, (String, u64)) {
    let base = work.join(format!("base-{}", repo.replace('/', "-")));
    let digest = busybox_base(&base, &[]);
    run_ok(scratchpack().args(["push", &format!("oci:{}:1", base.display()), &format!("docker://{}/{repo}:1", registry.host)]));
    let manifest = manifest(&base, "1");
    let largest = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["digest"].as_str().unwrap().to_string(), l["size"].as_u64().unwrap()))
        .max_by_key(|(_, size)| *size)
        .unwrap();
    (digest, largest)
}

/// A base layer whose connection drops halfway is resumed: the image is the one an undisturbed
/// pack gives.
#[test]
fn a_base_layer_cut_off_halfway_still_gives_the_right_image() {
    let registry = Registry::plain();
    let work = temp_dir();
    let (digest, (layer, size)) = busybox_in_registry(&registry, "base/cut", work.path());
    let pack_on = |host: &str, name: &str| {
        let out = work.path().join(name);
        let output = run_ok(
            scratchpack().env("SCRATCHPACK_CACHE_DIR", work.path().join(format!("cache-{name}"))).arg("pack").arg(static_c_hello()).args([
                "--base",
                &format!("docker://{host}/base/cut@{digest}"),
                "--output",
                &format!("oci:{}:t", out.display()),
            ]),
        );
        (digest_of(stdout(&output).trim()), out)
    };
    let (undisturbed, _) = pack_on(&registry.host, "direct");
    let proxy = FaultProxy::start(&registry.host);
    let leaked: &'static str = Box::leak(format!("/blobs/{layer}").into_boxed_str());
    proxy.add(Fault::TruncateResponse { method: "GET", path_contains: leaked, after_bytes: (size / 2) as usize, times: 1 });
    let (through_faults, out) = pack_on(&proxy.host, "faulty");
    assert_eq!(proxy.faults_left(), vec![0], "the fault was hit");
    let gets: Vec<u16> = proxy.requests().iter().filter(|(m, p, _)| m == "GET" && p.ends_with(leaked)).map(|(_, _, s)| *s).collect();
    assert_eq!(gets, vec![200, 206], "cut off, then resumed from where it stopped");
    // The base's name differs (another host); everything else is the same.
    let (a, b) = (manifest(&work.path().join("direct"), "t"), manifest(&out, "t"));
    assert_eq!(layer_digests(&a), layer_digests(&b));
    assert_eq!(a["config"], b["config"]);
    assert_ne!(undisturbed, through_faults, "the base.name annotation names the proxy");
    assert_eq!(run_as(&out, "t", SHELL), "65532\nhello from C, uid 65532\n");
}

/// A base layer whose bytes in the registry do not match its digest is refused, naming it;
/// nothing is written.
#[test]
fn a_base_layer_that_does_not_match_its_digest_is_refused_naming_it() {
    let registry = Registry::plain();
    let work = temp_dir();
    let (digest, (layer, _)) = busybox_in_registry(&registry, "base/bad", work.path());
    registry.tamper_blob(&layer);
    let out = work.path().join("out");
    let output = scratchpack()
        .env("SCRATCHPACK_CACHE_DIR", work.path().join("cache"))
        .arg("pack")
        .arg(static_c_hello())
        .args(["--base", &format!("docker://{}/base/bad@{digest}", registry.host), "--output", &format!("oci:{}:t", out.display())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains(&layer), "{}", stderr(&output));
    assert!(!out.exists());
}
