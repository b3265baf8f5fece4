//! `docker-daemon:` and `podman:` outputs against a real podman API service (its Docker-compatible
//! API and its native one): the image is stored under the given name, runs with `podman run`, a
//! multi-platform pack loads the engine's platform only, and the engine's errors reach the user.

use std::io::Write;
use std::os::unix::net::UnixListener;

use crate::support::podman::{get, PodmanService};
use crate::util::{run_ok, scratchpack, static_c_hello, static_c_hello_arm64, stderr, stdout, temp_dir};

const HELLO: &str = "hello from C, uid 65532\n";

/// The `sha256:…` of a `REFERENCE@sha256:… (PLATFORM)` line, and the platform.
fn digest_and_platform(line: &str) -> (String, String) {
    let (_, rest) = line.rsplit_once('@').unwrap_or_else(|| panic!("no digest in {line:?}"));
    let (digest, platform) = rest.split_once(" (").unwrap_or_else(|| panic!("no platform in {line:?}"));
    (digest.to_string(), platform.trim_end_matches(')').to_string())
}

fn index_json(layout: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap()
}

/// The digest of `blob`'s JSON document in the layout.
fn blob_json(layout: &std::path::Path, digest: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(crate::util::blob_file(layout, digest)).unwrap()).unwrap()
}

#[test]
fn loads_through_the_docker_and_the_podman_api_and_runs() {
    let service = PodmanService::start();
    let dir = temp_dir();
    let layout = dir.path().join("layout");
    let output = run_ok(
        scratchpack()
            .arg("pack")
            .arg(static_c_hello())
            .args([
                "-t",
                "1.0",
                "--output",
                &format!("oci:{}", layout.display()),
                "--output",
                "docker-daemon:",
                "--output",
                "podman:engines/hello:2",
            ])
            .env("DOCKER_HOST", service.host())
            .env("CONTAINER_HOST", service.host()),
    );
    let lines: Vec<String> = stdout(&output).lines().map(str::to_string).collect();
    let manifest = index_json(&layout)["manifests"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        lines,
        [
            format!("oci:{}:1.0@{manifest}", layout.display()),
            format!("docker-daemon:hello-c:1.0@{manifest} (linux/amd64)"),
            format!("podman:engines/hello:2@{manifest} (linux/amd64)"),
        ]
    );
    // podman names a name without a registry localhost/NAME; the image is the packed one (its ID
    // is the config's digest).
    assert_eq!(service.image_names(), ["localhost/engines/hello:2", "localhost/hello-c:1.0"]);
    let config = blob_json(&layout, &manifest)["config"]["digest"].as_str().unwrap().to_string();
    let ids = run_ok(service.command().args(["images", "--no-trunc", "--format", "{{.ID}}"]));
    assert_eq!(stdout(&ids), format!("{config}\n{config}\n"));
    // The Docker API lists it too.
    let listed = get(&service.socket, "/images/json").unwrap();
    assert!(listed.contains("\"localhost/hello-c:1.0\""), "{listed}");
    assert_eq!(service.run("localhost/hello-c:1.0"), HELLO);
    assert_eq!(service.run("localhost/engines/hello:2"), HELLO);
}

#[test]
fn a_multi_platform_pack_loads_the_engines_platform() {
    let service = PodmanService::start();
    let dir = temp_dir();
    let layout = dir.path().join("layout");
    let output = run_ok(
        scratchpack()
            .arg("pack")
            .arg(static_c_hello())
            .arg(static_c_hello_arm64())
            .args(["--output", &format!("oci:{}", layout.display()), "--output", "docker-daemon:multi:1", "--output", "podman:multi:2"])
            .env("DOCKER_HOST", service.host())
            .env("CONTAINER_HOST", service.host()),
    );
    let lines: Vec<String> = stdout(&output).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let index = blob_json(&layout, index_json(&layout)["manifests"][0]["digest"].as_str().unwrap());
    let amd64 = index["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == "amd64").unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    for (line, reference) in lines[1..].iter().zip(["docker-daemon:multi:1@", "podman:multi:2@"]) {
        assert!(line.starts_with(reference), "{line}");
        assert_eq!(digest_and_platform(line), (amd64.clone(), "linux/amd64".to_string()));
    }
    assert_eq!(service.image_names(), ["localhost/multi:1", "localhost/multi:2"]);
    let architecture = run_ok(service.command().args(["image", "inspect", "--format", "{{.Architecture}}", "localhost/multi:1"]));
    assert_eq!(stdout(&architecture), "amd64\n");
    assert_eq!(service.run("localhost/multi:2"), HELLO);
}

/// Runs a pack of the hello fixture to `output` with `env`, expecting exit 1; returns stderr.
fn pack_fails(output: &str, env: &[(&str, String)]) -> String {
    let mut command = scratchpack();
    command.arg("pack").arg(static_c_hello()).args(["--output", output]).env_remove("DOCKER_HOST").env_remove("CONTAINER_HOST");
    for (name, value) in env {
        command.env(name, value);
    }
    let result = command.output().unwrap();
    assert_eq!(result.status.code(), Some(1), "{output} {env:?}\nstdout: {}\nstderr: {}", stdout(&result), stderr(&result));
    assert_eq!(stdout(&result), "");
    stderr(&result)
}

#[test]
fn a_load_the_engine_refuses_shows_its_message_and_leaves_no_image() {
    // Room for podman's own files but not for the image's layers.
    let service = PodmanService::with_storage_limit(400 << 10);
    for (output, variable, engine) in
        [("docker-daemon:full:1", "DOCKER_HOST", "Docker engine"), ("podman:full:2", "CONTAINER_HOST", "podman service")]
    {
        let err = pack_fails(output, &[(variable, service.host())]);
        let want = format!("error: writing {output}: the {engine} at {} refused the image: ", service.socket.display());
        assert!(err.starts_with(&want), "{err}");
        assert!(err.contains("no space left on device"), "{err}");
        assert!(err.trim_end().ends_with("(status 500)"), "{err}");
    }
    assert_eq!(service.image_names(), Vec::<String>::new());
}

#[test]
fn an_unreachable_engine_or_a_socket_that_is_no_engine_is_a_clear_error() {
    let dir = temp_dir();
    let missing = dir.path().join("docker.sock");
    let err = pack_fails("docker-daemon:", &[("DOCKER_HOST", format!("unix://{}", missing.display()))]);
    assert_eq!(
        err,
        format!(
            "error: writing docker-daemon:: cannot reach the Docker engine at {}: No such file or directory (os error 2)\n\
             hint: is the daemon running? set DOCKER_HOST=unix:///PATH to reach another socket\n",
            missing.display()
        )
    );

    let err = pack_fails("docker-daemon:", &[("DOCKER_HOST", "tcp://127.0.0.1:2375".into())]);
    assert!(err.starts_with("error: writing docker-daemon:: DOCKER_HOST=\"tcp://…\": scratchpack reaches engines through unix:// sockets only\nhint: point DOCKER_HOST at"), "{err}");

    // A socket whose server speaks something else.
    let socket = dir.path().join("ssh.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap();
    });
    let err = pack_fails("podman:", &[("CONTAINER_HOST", format!("unix://{}", socket.display()))]);
    server.join().unwrap();
    assert_eq!(
        err,
        format!(
            "error: writing podman:: {} does not answer as a podman service: its answer is not HTTP (the first line is \"SSH-2.0-OpenSSH_9.2\")\n\
             hint: set CONTAINER_HOST to the engine's own socket\n",
            socket.display()
        )
    );

    // A default name that is no image name: the program's file name has capitals.
    let program = dir.path().join("MyApp");
    std::fs::copy(static_c_hello(), &program).unwrap();
    let result = scratchpack().arg("pack").arg(&program).args(["--output", "docker-daemon:"]).output().unwrap();
    assert_eq!(result.status.code(), Some(1));
    assert_eq!(
        stderr(&result),
        "error: writing docker-daemon:: docker-daemon: cannot name the image MyApp:latest: invalid image reference \"MyApp:latest\": repository names must be lowercase\n\
         hint: the name comes from the program's file name: name the image with --output docker-daemon:NAME[:TAG]\n"
    );

    let err = pack_fails("docker-daemon:My/App", &[]);
    assert!(err.starts_with("error: --output \"docker-daemon:My/App\": invalid image reference \"My/App\": repository names must be lowercase\nhint: use docker.io/my/app"), "{err}");
}

#[test]
fn a_200_mib_image_is_streamed_into_the_engine_in_bounded_memory() {
    use crate::bounded_memory::{peak_rss_kb, program_with_big_rodata, PEAK_RSS_LIMIT_KB};
    let service = PodmanService::start();
    let mut pack = scratchpack();
    pack.env("SCRATCHPACK_NO_CACHE", "1")
        .env("DOCKER_HOST", service.host())
        .arg("pack")
        .arg(program_with_big_rodata())
        .args(["-o", "docker-daemon:big:1"]);
    let peak = peak_rss_kb(&pack);
    assert!(peak < PEAK_RSS_LIMIT_KB, "loading an image with a 200 MiB layer peaked at {peak} kB");
    assert_eq!(service.image_names(), ["localhost/big:1"]);
    assert_eq!(service.run("localhost/big:1"), "hello\n");
}

/// `hello.go` built for linux/riscv64 (static, cgo off).
fn go_hello_riscv64() -> std::path::PathBuf {
    static CELL: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let (home, out) = (tmp.join("go-home"), tmp.join("fixtures/hello-go-riscv64"));
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        run_ok(
            std::process::Command::new("go")
                .args(["build", "-o"])
                .arg(&out)
                .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hello.go"))
                .envs([("CGO_ENABLED", "0"), ("GOOS", "linux"), ("GOARCH", "riscv64"), ("GOTOOLCHAIN", "local"), ("GOFLAGS", "")])
                .env("HOME", &home)
                .env("GOPATH", home.join("path"))
                .env("GOCACHE", home.join("cache")),
        );
        out
    })
    .clone()
}

#[test]
fn a_pack_without_the_engines_platform_is_refused_naming_both() {
    let service = PodmanService::start();
    let mut command = scratchpack();
    command
        .arg("pack")
        .arg(static_c_hello_arm64())
        .arg(go_hello_riscv64())
        .args(["--output", "podman:"])
        .env("CONTAINER_HOST", service.host());
    let result = command.output().unwrap();
    assert_eq!(result.status.code(), Some(1), "{}", stderr(&result));
    assert_eq!(
        stderr(&result),
        format!(
            "error: writing podman:: the podman service at {} runs linux/amd64, and this pack made linux/arm64/v8, linux/riscv64\n\
             hint: add a binary built for linux/amd64 to the pack, or write oci-archive:FILE and run the image under emulation\n",
            service.socket.display()
        )
    );
    assert_eq!(service.image_names(), Vec::<String>::new());
}

#[test]
fn cargo_scratchpack_loads_each_binary_into_the_engine() {
    let service = PodmanService::start();
    let (_dir, ws) = crate::util::cargo_fixture("cargo-ws");
    let output = crate::util::cargo_scratchpack(
        &ws,
        &["--target", "x86_64-unknown-linux-musl", "--tag", "1.4.2", "--output", "podman:", "-q"],
        &[("CONTAINER_HOST", service.host())],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<String> = stdout(&output).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("podman:greeter-cli:1.4.2@sha256:") && lines[0].ends_with(" (linux/amd64)"), "{lines:?}");
    assert!(lines[1].starts_with("podman:greeter-server:1.4.2@sha256:") && lines[1].ends_with(" (linux/amd64)"), "{lines:?}");
    assert_eq!(service.image_names(), ["localhost/greeter-cli:1.4.2", "localhost/greeter-server:1.4.2"]);
    assert_eq!(service.run("localhost/greeter-server:1.4.2"), "hello from greeter-server 1.4.2\n");
}
