//! A real podman API service: `podman system service --time=0 unix://SOCK`, serving the Docker
//! Engine API and podman's own libpod API, with its storage (`vfs`, so no mounts), run state and
//! temporary files in a temp folder. It is killed (by its pid) and reaped when the handle drops.
//!
//! [`PodmanService::command`] runs the podman CLI on the same storage, to list and run what was
//! loaded (`podman run` needs `--runtime runc` and explicit ulimits on these machines).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{run_ok, stdout, temp_dir};

/// How long the service may take to answer `GET /_ping` after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `podman system service`; killed when dropped.
pub struct PodmanService {
    pub socket: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

impl PodmanService {
    /// Starts a service on a socket in a fresh temp folder and waits until it answers.
    pub fn start() -> PodmanService {
        Self::start_with(None)
    }

    /// A service whose image storage is a tmpfs of `bytes` bytes, in a mount namespace of its own
    /// (`unshare -m`): loads larger than that fail inside the engine with "no space left on
    /// device". The tmpfs goes away with the process.
    pub fn with_storage_limit(bytes: u64) -> PodmanService {
        Self::start_with(Some(bytes))
    }

    fn start_with(limit: Option<u64>) -> PodmanService {
        let dir = temp_dir();
        let socket = dir.path().join("podman.sock");
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        let log = std::fs::File::create(dir.path().join("service.log")).unwrap();
        let mut args: Vec<String> = storage_args(dir.path());
        args.extend(["system", "service", "--time=0"].map(String::from));
        args.push(format!("unix://{}", socket.display()));
        let mut command = match limit {
            None => {
                let mut command = Command::new("podman");
                command.args(&args);
                command
            }
            Some(bytes) => {
                let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
                let script = format!(
                    "mount -t tmpfs -o size={bytes} tmpfs '{}' && exec podman {}",
                    dir.path().join("root").display(),
                    quoted.join(" ")
                );
                let mut command = Command::new("unshare");
                command.args(["-m", "sh", "-c", &script]);
                command
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run podman: {e} (run scripts/install-test-deps.sh)"));
        let mut service = PodmanService { socket, child, dir };
        service.wait_ready();
        service
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(answer) = get(&self.socket, "/_ping") {
                if answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("podman system service exited with {status}:\n{}", self.log());
            }
            assert!(started.elapsed() < READY_TIMEOUT, "podman system service did not answer in {READY_TIMEOUT:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }

    /// `unix://SOCKET`, for DOCKER_HOST and CONTAINER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The podman CLI on the service's storage.
    pub fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command.args(storage_args(self.dir.path()));
        command
    }

    /// `NAME:TAG` of every image in the store, sorted.
    pub fn image_names(&self) -> Vec<String> {
        let output = run_ok(self.command().args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
        let mut names: Vec<String> = stdout(&output).lines().map(str::to_string).collect();
        names.sort();
        names
    }

    /// What `podman run --rm IMAGE` prints on stdout.
    pub fn run(&self, image: &str) -> String {
        let output = run_ok(self.command().args([
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            image,
        ]));
        stdout(&output)
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn storage_args(dir: &Path) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    vec![
        "--root".into(),
        path("root"),
        "--runroot".into(),
        path("runroot"),
        "--tmpdir".into(),
        path("tmp"),
        "--storage-driver".into(),
        "vfs".into(),
        "--cgroup-manager".into(),
        "cgroupfs".into(),
        "--events-backend".into(),
        "file".into(),
    ]
}

/// A raw `GET PATH` on a unix socket: the whole answer as text.
pub fn get(socket: &Path, path: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}
