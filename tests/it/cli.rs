//! The command line itself: completions, man page, usage errors.

use crate::util::*;

#[test]
fn completions_for_each_shell_and_a_man_page() {
    let bash = stdout(&run_ok(scratchpack().args(["completions", "bash"])));
    assert!(bash.contains("_scratchpack()") && bash.contains("--output") && bash.contains("--registry-ca"), "{bash}");
    let zsh = stdout(&run_ok(scratchpack().args(["completions", "zsh"])));
    assert!(zsh.starts_with("#compdef scratchpack"), "{zsh}");
    let fish = stdout(&run_ok(scratchpack().args(["completions", "fish"])));
    assert!(fish.contains("complete -c scratchpack"), "{fish}");
    let man = stdout(&run_ok(scratchpack().arg("man")));
    assert!(man.contains(".TH scratchpack 1"), "{man}");
    assert!(man.contains("inspect") && man.contains("push"), "{man}");
}

#[test]
fn usage_errors_exit_2_and_missing_output_exits_1_with_a_hint() {
    let output = scratchpack().args(["pack"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "");
    let output = scratchpack().arg("pack").arg(static_c_hello()).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: no --output given: say where the image goes\nhint: for example --output oci:out, or --output docker://ghcr.io/org/app:1.0\n"
    );
}

/// A reader that goes away before the command prints (`scratchpack man | head -0`) is no failure of
/// the command; a closed pipe under an archive written through `/dev/stdout` is: the archive is
/// incomplete, and the pack says so and exits 1.
#[test]
fn a_closed_stdout_ends_printing_quietly_but_fails_an_archive() {
    fn with_closed_stdout(args: &[&str]) -> std::process::Output {
        let mut child = scratchpack().args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        // No reader is left: the child's first write to stdout fails with EPIPE.
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    }
    for args in [&["man"][..], &["completions", "bash"]] {
        let output = with_closed_stdout(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        assert_eq!(stderr(&output), "", "{args:?}");
    }
    let binary = static_c_hello();
    let output = with_closed_stdout(&["pack", binary.to_str().unwrap(), "--output", "oci-archive:/dev/stdout"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).starts_with("error: writing oci-archive:/dev/stdout"), "{}", stderr(&output));
    assert!(stderr(&output).contains("Broken pipe"), "{}", stderr(&output));
}
