//! A private containerd (Debian `containerd`, 1.6): its own config, root, state and socket in a
//! temporary folder, the CRI plugin off, so it touches no other containerd on the machine. `ctr`
//! talks to it; it stops (by its own pid) when the handle is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Containerd {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = crate::util::temp_dir();
        let root = dir.path();
        let socket = root.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = {:?}\nstate = {:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = {:?}\n[ttrpc]\n  address = {:?}\n[debug]\n  address = {:?}\n",
            root.join("root"),
            root.join("state"),
            socket,
            root.join("containerd.sock.ttrpc"),
            root.join("debug.sock"),
        );
        std::fs::write(root.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(root.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(root.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd (run scripts/install-test-deps.sh)");
        let mut containerd = Containerd { child, socket, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if containerd.ctr().arg("version").output().is_ok_and(|out| out.status.success()) {
                return containerd;
            }
            if let Ok(Some(status)) = containerd.child.try_wait() {
                let log = std::fs::read_to_string(root_log(&containerd.socket)).unwrap_or_default();
                panic!("containerd exited with {status}:\n{log}");
            }
            assert!(Instant::now() < deadline, "containerd did not answer within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ctr` against this containerd, in the namespace `scratchpack-it`.
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.socket).args(["--namespace", "scratchpack-it"]);
        cmd
    }
}

fn root_log(socket: &Path) -> PathBuf {
    socket.with_file_name("containerd.log")
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
