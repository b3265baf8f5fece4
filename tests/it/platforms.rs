//! Platforms: multi-platform indexes, and `inspect`.

use crate::util::*;

#[test]
fn two_platforms_make_one_index() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let lines = pack(
        &[static_c_hello().to_str().unwrap(), static_c_hello_arm64().to_str().unwrap(), "--output", &format!("oci:{}", layout.display())],
        |_| {},
    );
    let digest = digest_of(&lines[0]);
    let index_bytes = std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&index_bytes).unwrap();
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap(),
                m["platform"]["variant"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64/", "linux/arm64/v8"]);
    oci_validate(&layout, "latest");
    let arm = skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--override-arch", "arm64"]);
    assert_eq!(arm["Architecture"], "arm64");
    let amd = skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--override-arch", "amd64"]);
    assert_eq!(amd["Architecture"], "amd64");
    // Same base layer, different app layer.
    assert_eq!(arm["Layers"][0], amd["Layers"][0]);
    assert_ne!(arm["Layers"][1], amd["Layers"][1]);
    // umoci 0.4.7 cannot pick a platform from an index: skopeo picks the amd64 child first.
    let amd64_only = work.path().join("amd64");
    run_ok(std::process::Command::new("skopeo").args([
        "copy",
        "--override-arch",
        "amd64",
        &format!("oci:{}:latest", layout.display()),
        &format!("oci:{}:latest", amd64_only.display()),
    ]));
    assert_eq!(run_image(&amd64_only, "latest"), "hello from C, uid 65532\n");
}

#[test]
fn two_binaries_of_one_platform_are_refused() {
    let work = temp_dir();
    let output = scratchpack()
        .arg("pack")
        .arg(static_c_hello())
        .arg(static_rust_hello())
        .arg("--output")
        .arg(format!("oci:{}", work.path().join("out").display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: {} and {} are both linux/amd64: an image index holds one image per platform\n\
             hint: to put both programs into one image, give the second with --also: --also {}\n",
            static_c_hello().display(),
            static_rust_hello().display(),
            static_rust_hello().display()
        )
    );
    assert!(tree_listing(work.path()).is_empty());
}

#[test]
fn inspect_json_lists_one_path_per_file() {
    let json: serde_json::Value =
        serde_json::from_slice(&run_ok(scratchpack().args(["inspect", "--json"]).arg(static_c_hello())).stdout).unwrap();
    assert_eq!(
        json["files"],
        serde_json::json!([
            "/usr/local/bin/hello-c",
            "/etc/passwd",
            "/etc/group",
            "/etc/nsswitch.conf",
            "/etc/ssl/certs/ca-certificates.crt",
            "/tmp",
            "/home/nonroot"
        ])
    );
    let json: serde_json::Value =
        serde_json::from_slice(&run_ok(scratchpack().args(["inspect", "--json"]).arg(dynamic_c_hello())).stdout).unwrap();
    let files: Vec<&str> = json["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    let libraries: Vec<&str> = json["libraries"].as_array().unwrap().iter().map(|l| l["image_path"].as_str().unwrap()).collect();
    assert_eq!(files[1], "/lib64/ld-linux-x86-64.so.2");
    assert_eq!(&files[2..2 + libraries.len()], &libraries[..]);
    assert!(files.iter().all(|f| !f.contains(", ")), "{files:?}");
}

#[test]
fn inspect_text_and_json() {
    let output = run_ok(scratchpack().arg("inspect").arg(static_c_hello()));
    let text = stdout(&output);
    let size = std::fs::metadata(static_c_hello()).unwrap().len();
    assert_eq!(
        text,
        format!(
            "file:        {}\nplatform:    linux/amd64\nlinkage:     static\ninterpreter: -\nneeded:      -\nsize:        {size} bytes\nstripped:    no\n\
             hints:       -\nimage files:\n  /usr/local/bin/hello-c\n  \
             /etc/passwd, /etc/group, /etc/nsswitch.conf, /etc/ssl/certs/ca-certificates.crt, /tmp, /home/nonroot\n",
            static_c_hello().display()
        )
    );
    let output = run_ok(scratchpack().args(["inspect", "--json"]).arg(dynamic_c_hello()));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["linkage"], "dynamic");
    assert_eq!(json["interpreter"], "/lib64/ld-linux-x86-64.so.2");
    assert_eq!(json["needed"], serde_json::json!(["libc.so.6"]));
    assert_eq!(json["platform"], serde_json::json!({"os": "linux", "architecture": "amd64"}));
    let output = run_ok(scratchpack().args(["inspect", "--json"]).arg(static_rust_hello()));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["linkage"], "static-pie");
    let output = run_ok(scratchpack().args(["inspect", "--json"]).arg(static_c_hello_arm64()));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["platform"], serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"}));
}
