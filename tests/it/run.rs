//! Images run: umoci unpacks them and runc runs them, as the default non-root user.

use crate::util::*;

#[test]
fn static_c_program_runs_as_nonroot() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let binary = static_c_hello();
    let lines = pack(
        &[binary.to_str().unwrap(), "--output", &format!("oci:{}:v1", layout.display()), "--arg", "first", "--arg", "--second"],
        |_| {},
    );
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with(&format!("oci:{}:v1@sha256:", layout.display())), "{lines:?}");
    oci_validate(&layout, "v1");
    assert_eq!(run_image(&layout, "v1"), "hello from C, uid 65532\narg first\narg --second\n");
}

#[test]
fn static_rust_musl_program_runs_and_finds_tmp_and_certs() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let binary = static_rust_hello();
    pack(&[binary.to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |_| {});
    oci_validate(&layout, "latest");
    assert_eq!(run_image(&layout, "latest"), "hello from Rust, uid 65532\ntmp: true\nbundle: true\n");
}

#[test]
fn user_flag_changes_the_uid() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&[static_c_hello().to_str().unwrap(), "--output", &format!("oci:{}", layout.display()), "--user", "0:0"], |_| {});
    assert_eq!(run_image(&layout, "latest"), "hello from C, uid 0\n");
}

#[test]
fn arm64_static_program_packs_to_arm64_and_runs_under_qemu() {
    ensure_arm64_binfmt();
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&[static_c_hello_arm64().to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |_| {});
    oci_validate(&layout, "latest");
    let inspected = skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--override-arch", "arm64"]);
    assert_eq!(inspected["Architecture"], "arm64");
    assert_eq!(inspected["Os"], "linux");
    let config = skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--config", "--override-arch", "arm64"]);
    assert_eq!(config["variant"], "v8");
    assert_eq!(run_image(&layout, "latest"), "hello from C, uid 65532\n");
}
