//! The size budget: `--max-size` refuses an image larger than it, compressed, before anything is
//! written; without it, an image over 10 MB gets a warning that lists what each layer costs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::*;

/// `bytes` bytes that do not compress (an AES-CTR keystream from a fixed key: the same on every run).
fn incompressible(dir: &Path, bytes: u64) -> PathBuf {
    let file = dir.join("blob");
    let out = std::fs::File::create(&file).unwrap();
    let zeros = std::process::Stdio::piped();
    let mut head = Command::new("head").arg("-c").arg(bytes.to_string()).arg("/dev/zero").stdout(zeros).spawn().unwrap();
    let status = Command::new("openssl")
        .args(["enc", "-aes-128-ctr", "-nosalt", "-pbkdf2", "-pass", "pass:scratchpack-size-budget"])
        .stdin(head.stdout.take().unwrap())
        .stdout(out)
        .status()
        .unwrap();
    assert!(status.success() && head.wait().unwrap().success());
    assert_eq!(std::fs::metadata(&file).unwrap().len(), bytes);
    file
}

/// Packs the static C program, with `extra` flags, into `layout`.
fn pack_into(layout: &Path, extra: &[&str]) -> Output {
    scratchpack().arg("pack").arg(static_c_hello()).args(extra).arg("--output").arg(format!("oci:{}", layout.display())).output().unwrap()
}

/// What the image of a layout's only manifest costs: its layers and config, compressed.
fn image_size(layout: &Path) -> u64 {
    let read = |path: PathBuf| -> serde_json::Value { serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap() };
    let index = read(layout.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().replace(':', "/");
    let manifest = read(layout.join("blobs").join(manifest_digest));
    let layers: u64 = manifest["layers"].as_array().unwrap().iter().map(|layer| layer["size"].as_u64().unwrap()).sum();
    layers + manifest["config"]["size"].as_u64().unwrap()
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[test]
fn an_image_over_max_size_fails_and_nothing_is_written() {
    let work = temp_dir();
    let blob = incompressible(work.path(), 11_000_000);
    let add = format!("{}:/data/blob", blob.display());
    let reference = work.path().join("reference");
    let output = pack_into(&reference, &["--add", &add]);
    assert!(output.status.success(), "{}", stderr(&output));
    let size = image_size(&reference);

    let sbom_dir = work.path().join("sboms");
    let fail_into = |layout: &Path| {
        let output = pack_into(layout, &["--add", &add, "--max-size", "10MB", "--sbom", "spdx", "--sbom-dir", sbom_dir.to_str().unwrap()]);
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert_eq!(stdout(&output), "");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines[0], format!("error: the image is {}, over --max-size 10MB", megabytes(size)), "{stderr}");
        assert_eq!(lines[1], "   11.0 MB  --add layer: /data/blob (11.0 MB)", "{stderr}");
        assert!(lines[2..].iter().any(|line| line.contains("  program layer: /usr/local/bin/hello-c (")), "{stderr}");
        assert!(lines[2..].iter().any(|line| line.contains("  base layer: /etc/ssl/certs/ca-certificates.crt (")), "{stderr}");
        assert_eq!(
            lines.last().copied(),
            Some(
                "hint: shrink the largest layers: --strip drops a program's debug info, a static build needs no libraries layer; \
                 or raise --max-size"
            ),
            "{stderr}"
        );
    };
    // A new layout is never made.
    let fresh = work.path().join("fresh");
    fail_into(&fresh);
    assert!(!fresh.exists(), "{:?}", tree_listing(&fresh));
    // A layout that holds another image keeps exactly what it had: the shared layers it was
    // offered before the program's layer was done are taken back.
    let existing = work.path().join("existing");
    let output = pack_into(&existing, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let before = tree_listing(&existing);
    fail_into(&existing);
    assert_eq!(tree_listing(&existing), before);
    assert!(!sbom_dir.exists(), "{:?}", tree_listing(&sbom_dir));
    assert_eq!(tree_listing(work.path()).iter().filter(|p| p.contains(".scratchpack-")).count(), 0, "no staging folder left");
}

#[test]
fn an_image_within_max_size_packs_as_without_it() {
    let work = temp_dir();
    let blob = incompressible(work.path(), 11_000_000);
    let add = format!("{}:/data/blob", blob.display());
    let without = pack_into(&work.path().join("without"), &["--add", &add]);
    assert!(without.status.success(), "{}", stderr(&without));
    let size = image_size(&work.path().join("without"));
    // The limit is inclusive: an image of exactly --max-size bytes fits, one byte less does not.
    for (limit, fits) in [("20MB".to_string(), true), (size.to_string(), true), ((size - 1).to_string(), false)] {
        let layout = work.path().join(format!("limit-{limit}"));
        let output = pack_into(&layout, &["--add", &add, "--max-size", &limit]);
        let stderr = stderr(&output);
        if fits {
            assert!(output.status.success(), "--max-size {limit}: {stderr}");
            assert_eq!(stderr, "", "--max-size {limit}: a budget met says nothing");
            assert_eq!(digest_of(stdout(&output).trim()), digest_of(stdout(&without).trim()), "the budget does not change the image");
        } else {
            assert_eq!(output.status.code(), Some(1), "{stderr}");
            let first = stderr.lines().next().unwrap_or_default().to_string();
            assert_eq!(
                first,
                format!("error: the image is {} ({size} bytes, over {}), over --max-size {limit}", megabytes(size), size - 1)
            );
            assert!(!layout.exists());
        }
    }
}

#[test]
fn an_image_over_10_mb_warns_without_max_size_and_a_small_one_does_not() {
    let work = temp_dir();
    let blob = incompressible(work.path(), 11_000_000);
    let add = format!("{}:/data/blob", blob.display());
    let big = work.path().join("big");
    let output = pack_into(&big, &["--add", &add]);
    let stderr_text = stderr(&output);
    assert!(output.status.success(), "{stderr_text}");
    let lines: Vec<&str> = stderr_text.lines().collect();
    assert_eq!(lines[0], format!("warning: the image is {}, over 10 MB", megabytes(image_size(&big))), "{stderr_text}");
    assert_eq!(lines[1], "   11.0 MB  --add layer: /data/blob (11.0 MB)", "{stderr_text}");
    assert_eq!(
        lines.last().copied(),
        Some(
            "hint: shrink the largest layers: --strip drops a program's debug info, a static build needs no libraries layer; \
             --max-size SIZE makes this an error"
        ),
        "{stderr_text}"
    );
    // -q silences the warning, as every warning.
    let quiet = scratchpack()
        .args(["-q", "pack"])
        .arg(static_c_hello())
        .args(["--add", &add, "--output"])
        .arg(format!("oci:{}", work.path().join("quiet").display()))
        .output()
        .unwrap();
    assert!(quiet.status.success());
    assert_eq!(stderr(&quiet), "");

    let small = pack_into(&work.path().join("small"), &[]);
    assert!(small.status.success(), "{}", stderr(&small));
    assert_eq!(stderr(&small), "");
}

/// Each platform's image of a multi-platform index must fit on its own: the layers they share
/// count in each, and their sum does not matter.
#[test]
fn each_platform_image_must_fit_on_its_own() {
    let work = temp_dir();
    let blob = incompressible(work.path(), 6_000_000);
    let add = format!("{}:/data/blob", blob.display());
    let pack_both = |layout: &Path, limit: &str| {
        scratchpack()
            .arg("pack")
            .arg(static_c_hello())
            .arg(static_c_hello_arm64())
            .args(["--add", &add, "--max-size", limit, "--output"])
            .arg(format!("oci:{}", layout.display()))
            .output()
            .unwrap()
    };
    let both = work.path().join("both");
    let output = pack_both(&both, "10MB");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let sizes = platform_sizes(&both);
    assert_eq!(sizes.iter().map(|(platform, _)| platform.as_str()).collect::<Vec<_>>(), ["linux/amd64", "linux/arm64"]);
    assert!(sizes.iter().map(|(_, size)| size).sum::<u64>() > 10_000_000, "{sizes:?}: together over the limit");

    let refused = work.path().join("refused");
    let output = pack_both(&refused, "6MB");
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().next().unwrap_or_default(),
        format!("error: the linux/amd64 image is {}, over --max-size 6MB", megabytes(sizes[0].1)),
        "{stderr}"
    );
    assert!(!refused.exists());
}

/// Each platform of a layout's index, with what its image costs.
fn platform_sizes(layout: &Path) -> Vec<(String, u64)> {
    let read = |digest: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(layout.join("blobs").join(digest.replace(':', "/"))).unwrap()).unwrap()
    };
    let top: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let index = read(top["manifests"][0]["digest"].as_str().unwrap());
    let entries = index["manifests"].as_array().unwrap();
    entries
        .iter()
        .map(|entry| {
            let manifest = read(entry["digest"].as_str().unwrap());
            let layers: u64 = manifest["layers"].as_array().unwrap().iter().map(|layer| layer["size"].as_u64().unwrap()).sum();
            let platform = format!("{}/{}", entry["platform"]["os"].as_str().unwrap(), entry["platform"]["architecture"].as_str().unwrap());
            (platform, layers + manifest["config"]["size"].as_u64().unwrap())
        })
        .collect()
}
