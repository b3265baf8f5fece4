//! `scratchpack inspect IMAGE` on an OCI layout, an OCI archive and the real registry: platforms,
//! config, each layer's sizes, file count and largest files, and the SBOM referrer, in text and
//! JSON. The expected values come from GNU tar and gzip reading the packed layers themselves.

use std::path::Path;
use std::process::Command;

use crate::copy::copy_ok;
use crate::support::*;
use crate::util::*;

/// What GNU tar and gzip say of a gzip layer: its uncompressed size, its regular files and the
/// largest one `(size, path)`.
fn tar_view(blob: &Path) -> (u64, usize, (u64, String)) {
    let uncompressed = run_ok(Command::new("gzip").arg("-dc").arg(blob)).stdout.len() as u64;
    let listing = stdout(&run_ok(Command::new("tar").args(["--numeric-owner", "-tvzf"]).arg(blob)));
    let files: Vec<(u64, String)> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields[2].parse().unwrap(), format!("/{}", fields[5].trim_start_matches("./")))
        })
        .collect();
    let largest = files.iter().max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1))).unwrap().clone();
    (uncompressed, files.len(), largest)
}

fn inspect(reference: &str, json: bool) -> String {
    let mut cmd = scratchpack();
    cmd.args(["inspect", reference]);
    if json {
        cmd.arg("--json");
    }
    stdout(&run_ok(&mut cmd))
}

#[test]
fn an_image_is_inspected_alike_in_a_layout_an_archive_and_a_registry() {
    let registry = Registry::plain();
    let work = temp_dir();
    let layout = work.path().join("layout");
    let lines = pack(&["--sbom", "spdx", "--output", &format!("oci:{}:v1", layout.display())], |cmd| {
        cmd.arg(static_c_hello());
    });
    let digest = digest_of(&lines[0]);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(blob_file(&layout, &digest)).unwrap()).unwrap();
    let referrers_tag = format!("sha256-{}", digest.trim_start_matches("sha256:"));
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let listed = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == referrers_tag.as_str())
        .unwrap();
    let referrers: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_file(&layout, listed["digest"].as_str().unwrap())).unwrap()).unwrap();
    let sbom = &referrers["manifests"][0];

    let oci = format!("oci:{}:v1", layout.display());
    let text = inspect(&oci, false);
    let mut expected = vec![
        format!("image:       {oci}"),
        format!("digest:      {digest}"),
        "media type:  application/vnd.oci.image.manifest.v1+json".to_string(),
        "platforms:   linux/amd64".to_string(),
        format!("linux/amd64 {digest}"),
        "  created:     1970-01-01T00:00:00Z".to_string(),
        "  user:        65532:65532".to_string(),
        "  entrypoint:  [\"/usr/local/bin/hello-c\"]".to_string(),
        "  cmd:         -".to_string(),
        "  env:         PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        "  referrers:".to_string(),
        format!("    {} application/spdx+json ({} bytes)", sbom["digest"].as_str().unwrap(), sbom["size"]),
    ];
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let mut views = Vec::new();
    for layer in layers {
        let layer_digest = layer["digest"].as_str().unwrap();
        let view = tar_view(&blob_file(&layout, layer_digest));
        let (uncompressed, files, (largest_size, largest_path)) = &view;
        expected.push(format!(
            "    {layer_digest}  {} bytes ({uncompressed} uncompressed), {files} file{}",
            layer["size"],
            if *files == 1 { "" } else { "s" }
        ));
        expected.push(format!("      {largest_size:>10}  {largest_path}"));
        views.push(view);
    }
    // The program's own layer: one file, the program.
    assert_eq!(
        (views[1].1, views[1].2.clone()),
        (1, (std::fs::metadata(static_c_hello()).unwrap().len(), "/usr/local/bin/hello-c".into()))
    );
    for line in &expected {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }

    // The same image, read from an archive and from the registry, shows the same.
    let cache = work.path().join("cache");
    let archive = work.path().join("image.tar");
    copy_ok(&oci, &format!("oci-archive:{}", archive.display()), &cache);
    let remote = format!("docker://{}/inspect/hello:v1", registry.host);
    copy_ok(&oci, &remote, &cache);
    let body = |text: &str| text.lines().skip(1).map(str::to_string).collect::<Vec<_>>();
    for other in [format!("oci-archive:{}:v1", archive.display()), remote.clone()] {
        let shown = inspect(&other, false);
        assert_eq!(shown.lines().next().unwrap(), format!("image:       {other}"));
        assert_eq!(body(&shown), body(&text), "{other}");
    }

    let json: serde_json::Value = serde_json::from_str(&inspect(&remote, true)).unwrap();
    assert_eq!(json["reference"], remote.as_str());
    assert_eq!(json["digest"], digest.as_str());
    assert_eq!(json["platforms"], serde_json::json!(["linux/amd64"]));
    let image = &json["images"][0];
    assert_eq!(image["config"]["user"], "65532:65532");
    assert_eq!(image["config"]["entrypoint"], serde_json::json!(["/usr/local/bin/hello-c"]));
    assert_eq!(image["config"]["created"], "1970-01-01T00:00:00Z");
    for (shown, (layer, (uncompressed, files, (size, path)))) in image["layers"].as_array().unwrap().iter().zip(layers.iter().zip(&views)) {
        assert_eq!(shown["digest"], layer["digest"]);
        assert_eq!(shown["size"], layer["size"]);
        assert_eq!(shown["uncompressed_size"], *uncompressed);
        assert_eq!(shown["files"], *files as u64);
        assert_eq!(shown["largest"][0], serde_json::json!({"path": path, "size": size}));
    }
    assert_eq!(
        image["referrers"],
        serde_json::json!([{"digest": sbom["digest"], "artifact_type": "application/spdx+json", "size": sbom["size"]}])
    );

    // A file stays a binary to inspect.
    assert!(inspect(static_c_hello().to_str().unwrap(), false).starts_with("file:"));
}

#[test]
fn a_multi_platform_index_lists_each_platform() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&["--output", &format!("oci:{}:v1", layout.display()), "--label", "evil=\x1b[2J\rerror: forged"], |cmd| {
        cmd.arg(static_c_hello()).arg(static_c_hello_arm64());
    });
    let text = inspect(&format!("oci:{}", layout.display()), false);
    // What the image says reaches the terminal escaped: no cursor moves, no forged line.
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    assert!(text.lines().any(|l| l == r"  labels:      evil=\u{1b}[2J\u{d}error: forged"), "{text}");
    assert!(text.lines().any(|l| l == "platforms:   linux/amd64, linux/arm64/v8"), "{text}");
    assert!(text.lines().any(|l| l == "media type:  application/vnd.oci.image.index.v1+json"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&inspect(&format!("oci:{}", layout.display()), true)).unwrap();
    let platforms: Vec<&str> = json["images"].as_array().unwrap().iter().map(|i| i["platform"].as_str().unwrap()).collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
    assert_eq!(json["images"][1]["layers"][1]["largest"][0]["path"], "/usr/local/bin/hello-c-arm64");
}
