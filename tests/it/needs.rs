//! What programs need beyond their libraries: NSS, time zones, TLS hints; missing libraries.

use std::process::Command;
use std::sync::OnceLock;

use crate::util::*;

fn static_nss() -> std::path::PathBuf {
    static CELL: OnceLock<std::path::PathBuf> = OnceLock::new();
    c_fixture(&CELL, "nss.c", "nss-static", &["-static"])
}

fn dynamic_localtime() -> std::path::PathBuf {
    static CELL: OnceLock<std::path::PathBuf> = OnceLock::new();
    c_fixture(&CELL, "localtime.c", "localtime-dynamic", &[])
}

#[test]
fn static_glibc_resolves_localhost_and_nonroot_inside_the_image() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let output = run_ok(scratchpack().arg("pack").arg(static_nss()).arg("--output").arg(format!("oci:{}", layout.display())).arg("-v"));
    assert!(stderr(&output).contains("nss: string \"libnss_%s.so\""), "{}", stderr(&output));
    assert_eq!(run_image(&layout, "latest"), "localhost is 127.0.0.1\nnonroot is 65532:65532, home /home/nonroot\n");
}

#[test]
fn local_time_follows_tzdata() {
    let work = temp_dir();
    let with = work.path().join("with");
    let without = work.path().join("without");
    let program = dynamic_localtime();
    pack(&[program.to_str().unwrap(), "--env", "TZ=Europe/Paris", "--output", &format!("oci:{}", with.display())], |_| {});
    pack(
        &[program.to_str().unwrap(), "--env", "TZ=Europe/Paris", "--tzdata", "no", "--output", &format!("oci:{}", without.display())],
        |_| {},
    );
    assert_eq!(run_image(&with, "latest"), "2023-11-14 23:13 +0100\n", "Paris time with --tzdata auto");
    assert_eq!(run_image(&without, "latest"), "2023-11-14 22:13 +0000\n", "UTC without zoneinfo");
    let layers = |layout: &std::path::Path| {
        skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--raw"])["layers"].as_array().unwrap().len()
    };
    assert_eq!(layers(&with), 4, "base, zoneinfo, libraries, app");
    assert_eq!(layers(&without), 3);
    // A static C program that never reads time zones gets none with auto.
    let plain = work.path().join("plain");
    pack(&[static_c_hello().to_str().unwrap(), "--output", &format!("oci:{}", plain.display())], |_| {});
    assert_eq!(layers(&plain), 2);
}

#[test]
fn inspect_shows_hints_with_their_evidence() {
    let output = run_ok(scratchpack().arg("inspect").arg(dynamic_localtime()));
    let text = stdout(&output);
    assert!(text.contains("\nhints:\n  time-zones: symbol localtime_r, symbol strftime\n"), "{text}");
    assert!(text.contains("\n  /usr/share/zoneinfo/\n"), "{text}");
    let output = run_ok(scratchpack().args(["inspect", "--json", "/usr/bin/curl"]));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let kinds: Vec<&str> = json["hints"].as_array().unwrap().iter().map(|h| h["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"tls") && kinds.contains(&"nss"), "{kinds:?}");
    let tls = json["hints"].as_array().unwrap().iter().find(|h| h["kind"] == "tls").unwrap();
    assert!(tls["evidence"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().starts_with("library libssl.so.3 in ")), "{tls}");
}

#[test]
fn tls_without_a_ca_bundle_is_a_warning() {
    let work = temp_dir();
    let output = run_ok(
        scratchpack()
            .args(["pack", "/usr/bin/curl", "--ca-bundle", "none", "--output"])
            .arg(format!("oci:{}", work.path().join("l").display())),
    );
    assert!(stderr(&output).contains("warning: /usr/bin/curl looks like it verifies TLS certificates ("), "{}", stderr(&output));
    assert!(stderr(&output).contains("but --ca-bundle none leaves the image without CA certificates"));
    let output = run_ok(scratchpack().args(["pack", "/usr/bin/curl", "--output"]).arg(format!("oci:{}", work.path().join("m").display())));
    assert_eq!(stderr(&output), "");
}

#[test]
fn missing_libraries_are_listed_and_allow_missing_goes_on() {
    let work = temp_dir();
    let lib_dir = work.path().join("lib");
    std::fs::create_dir(&lib_dir).unwrap();
    std::fs::write(work.path().join("f.c"), "int f(void) { return 7; }\n").unwrap();
    std::fs::write(work.path().join("main.c"), "#include <stdio.h>\nint f(void);\nint main(void) { printf(\"%d\\n\", f()); return 0; }\n")
        .unwrap();
    run_ok(Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(lib_dir.join("libseven.so")).arg(work.path().join("f.c")));
    let program = work.path().join("seven");
    run_ok(
        Command::new("gcc").arg("-o").arg(&program).arg(work.path().join("main.c")).arg(format!("-L{}", lib_dir.display())).arg("-lseven"),
    );
    let out = work.path().join("out");
    let output = scratchpack().arg("pack").arg(&program).arg("--output").arg(format!("oci:{}", out.display())).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: {}: a library was not found: libseven.so (needed by seven)\n\
             hint: install them, add their folders with --library-path (or --sysroot for another root), or pack anyway with --allow-missing\n",
            program.display()
        )
    );
    assert!(!out.exists());
    let output =
        run_ok(scratchpack().arg("pack").arg(&program).arg("--allow-missing").arg("--output").arg(format!("oci:{}", out.display())));
    assert_eq!(stderr(&output), format!("warning: {}: libseven.so (needed by seven) was not found; packing anyway\n", program.display()));
    // With the folder named, it is found, bundled where the folder is, and runs.
    let fixed = work.path().join("fixed");
    pack(
        &[program.to_str().unwrap(), "--library-path", lib_dir.to_str().unwrap(), "--output", &format!("oci:{}", fixed.display())],
        |_| {},
    );
    let json: serde_json::Value = serde_json::from_slice(
        &run_ok(scratchpack().args(["inspect", "--json", "--library-path", lib_dir.to_str().unwrap()]).arg(&program)).stdout,
    )
    .unwrap();
    assert_eq!(json["libraries"][0]["name"], "libseven.so");
    assert_eq!(json["libraries"][0]["rule"], "library-path");
    // The image's ld.so is told where the library is: LD_LIBRARY_PATH in the config.
    let config = skopeo_inspect(&format!("oci:{}:latest", fixed.display()), &["--config"]);
    assert!(config["config"]["Env"].as_array().unwrap().contains(&format!("LD_LIBRARY_PATH={}", lib_dir.display()).into()), "{config}");
    assert_eq!(run_image(&fixed, "latest"), "7\n");
}

#[test]
fn dt_needed_cycles_resolve_once_and_run() {
    let work = temp_dir();
    let dir = work.path();
    std::fs::write(dir.join("a.c"), "int b(void); int a(void) { return 40; } int a_calls_b(void) { return b(); }\n").unwrap();
    std::fs::write(dir.join("b.c"), "int a(void); int b(void) { return 2; } int b_calls_a(void) { return a(); }\n").unwrap();
    std::fs::write(
        dir.join("main.c"),
        "#include <stdio.h>\nint a(void); int a_calls_b(void);\nint main(void) { printf(\"%d\\n\", a() + a_calls_b()); return 0; }\n",
    )
    .unwrap();
    let gcc = |args: &[&str]| run_ok(Command::new("gcc").args(args).current_dir(dir));
    gcc(&["-shared", "-fPIC", "-o", "libb.so", "b.c", "-Wl,--allow-shlib-undefined"]);
    gcc(&["-shared", "-fPIC", "-o", "liba.so", "a.c", "-L.", "-lb"]);
    gcc(&["-shared", "-fPIC", "-o", "libb.so", "b.c", "-L.", "-la"]); // now libb needs liba: a cycle
    let rpath = format!("-Wl,-rpath,{}", dir.display());
    // DT_RPATH (not RUNPATH): inherited, so liba's own need for libb is found there too.
    gcc(&["-o", "cycle", "main.c", "-L.", "-la", &rpath, "-Wl,--disable-new-dtags"]);
    let json: serde_json::Value =
        serde_json::from_slice(&run_ok(scratchpack().args(["inspect", "--json"]).arg(dir.join("cycle"))).stdout).unwrap();
    let names: Vec<&str> = json["libraries"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["liba.so", "libc.so.6", "libb.so"], "each once, in load order");
    let layout = dir.join("layout");
    pack(&[dir.join("cycle").to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |_| {});
    assert_eq!(run_image(&layout, "latest"), "42\n");
}
