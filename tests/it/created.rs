//! `--created`: the date an image says it was made, read back by skopeo. Layer times never follow
//! it (only SOURCE_DATE_EPOCH moves them), and the defaults stay reproducible.

use std::path::Path;
use std::process::Command;

use crate::util::*;

/// Packs the static hello into `oci:LAYOUT:latest` with `args`, in `cwd`, and returns the image
/// digest, the config's `created`, its history's `created`s and the layer digests.
fn pack_created(layout: &Path, cwd: &Path, args: &[&str], envs: &[(&str, &str)]) -> (String, String, Vec<String>, Vec<String>) {
    let mut cmd = scratchpack();
    cmd.current_dir(cwd).arg("pack").arg(static_c_hello()).arg("--output").arg(format!("oci:{}", layout.display())).args(args);
    for (key, value) in envs {
        cmd.env(key, value);
    }
    let line = stdout(&run_ok(&mut cmd)).trim().to_string();
    let reference = format!("oci:{}:latest", layout.display());
    let config = skopeo_inspect(&reference, &["--config"]);
    let history = config["history"].as_array().unwrap().iter().map(|h| h["created"].as_str().unwrap().to_string()).collect();
    let layers = skopeo_inspect(&reference, &[])["Layers"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
    (digest_of(&line), config["created"].as_str().unwrap().to_string(), history, layers)
}

#[test]
fn an_rfc3339_time_is_the_configs_created_and_layers_keep_their_times() {
    let work = temp_dir();
    let (_, epoch_created, _, epoch_layers) = pack_created(&work.path().join("a"), work.path(), &[], &[]);
    assert_eq!(epoch_created, "1970-01-01T00:00:00Z", "pack defaults to epoch");
    let (_, created, history, layers) = pack_created(&work.path().join("b"), work.path(), &["--created", "2026-01-02T03:04:05Z"], &[]);
    assert_eq!(created, "2026-01-02T03:04:05Z");
    assert_eq!(history, ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"]);
    assert_eq!(layers, epoch_layers, "--created does not change any layer");
    let (_, offset, _, _) = pack_created(&work.path().join("c"), work.path(), &["--created", "2026-01-02T05:04:05+02:00"], &[]);
    assert_eq!(offset, "2026-01-02T03:04:05Z", "an offset is written as UTC");
}

#[test]
fn source_date_epoch_wins_over_created() {
    let work = temp_dir();
    let (_, created, _, _) =
        pack_created(&work.path().join("a"), work.path(), &["--created", "2026-01-02T03:04:05Z"], &[("SOURCE_DATE_EPOCH", "1700000000")]);
    assert_eq!(created, "2023-11-14T22:13:20Z");
}

#[test]
fn created_commit_is_the_commit_time_and_reproducible() {
    let work = temp_dir();
    let repo = work.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .current_dir(&repo)
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .env("GIT_COMMITTER_DATE", "2025-06-07T08:09:10Z")
                .env("GIT_AUTHOR_DATE", "2025-06-07T08:09:10Z"),
        )
    };
    git(&["init", "-q"]);
    std::fs::write(repo.join("README"), "x").unwrap();
    git(&["add", "README"]);
    git(&["commit", "-q", "-m", "first"]);
    let sub = repo.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let (first, created, _, _) = pack_created(&work.path().join("a"), &sub, &["--created", "commit"], &[]);
    assert_eq!(created, "2025-06-07T08:09:10Z");
    let (second, _, _, _) = pack_created(&work.path().join("b"), &repo, &["--created", "commit"], &[]);
    assert_eq!(first, second, "two packs of one commit are the same image");

    // Outside any repository, wherever the test's folder is (a CI checkout holds it in its own
    // target folder, inside the project's repository): git may not look above it.
    let outside = scratchpack()
        .current_dir(work.path())
        .env("GIT_CEILING_DIRECTORIES", work.path().parent().unwrap())
        .args(["pack", static_c_hello().to_str().unwrap(), "--created", "commit", "--output"])
        .arg(format!("oci:{}", work.path().join("c").display()))
        .output()
        .unwrap();
    assert_eq!(outside.status.code(), Some(1));
    let err = stderr(&outside);
    assert!(
        err.starts_with(&format!("error: --created commit: {} is not in a git repository with a commit (git log: ", work.path().display())),
        "{err}"
    );
    assert!(err.ends_with("hint: run it inside the repository, or give --created epoch, now or a time\n"), "{err}");
    assert!(!work.path().join("c").exists());
}

#[test]
fn created_now_is_today() {
    let work = temp_dir();
    let (_, created, _, _) = pack_created(&work.path().join("a"), work.path(), &["--created", "now"], &[]);
    let year: u32 = created[..4].parse().unwrap();
    assert!(year >= 2025, "{created}");
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
}

#[test]
fn a_bad_created_is_an_error_with_examples_and_nothing_is_written() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    for bad in ["2026-01-02", "2026-02-30T00:00:00Z", "yesterday"] {
        let output = scratchpack()
            .args(["pack", static_c_hello().to_str().unwrap(), "--created", bad, "--output"])
            .arg(format!("oci:{}", layout.display()))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{bad}");
        let reason = if bad.starts_with("2026-02") {
            "no such date"
        } else {
            "expected now, commit, epoch or an RFC 3339 time (YYYY-MM-DDTHH:MM:SS with Z or an offset such as +01:00)"
        };
        assert_eq!(
            stderr(&output),
            format!(
                "error: --created {bad:?}: {reason}\nhint: for example --created now, commit, epoch, 2026-01-02T03:04:05Z or 2026-01-02T04:04:05+01:00\n"
            )
        );
        assert!(output.stdout.is_empty());
        assert!(!layout.exists());
    }
}
