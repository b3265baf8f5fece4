//! Real registries: `docker-registry serve CONFIG` (distribution 2.8) on 127.0.0.1, plain or TLS
//! (private CA), without auth, with `htpasswd` (bcrypt) or with `token` auth behind a
//! [`TokenServer`](super::token::TokenServer). Storage and logs live in a temp dir under
//! `CARGO_TARGET_TMPDIR`; the process is killed (by its pid) and reaped when the handle drops.
//!
//! The registry writes one access-log line per request on stdout
//! (`127.0.0.1 - - [date] "PUT /v2/... HTTP/1.1" 201 0 "" "user-agent"`); [`Registry::requests`]
//! parses those. The readiness probes use the user agent [`PROBE_USER_AGENT`] and are left out.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http::HttpConnection;
use super::pki::{make_tls_files, TlsFiles};
use super::token::TokenServerConfig;
use super::{free_port, unix_now};
use crate::util::{run_ok, temp_dir};

/// User agent of the readiness probes (filtered out of [`Registry::requests`]).
pub const PROBE_USER_AGENT: &str = "scratchpack-harness-probe";
/// How long a registry may take to answer `GET /v2/` after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at finding a free port before giving up.
const START_ATTEMPTS: usize = 5;

/// How the registry authenticates clients.
#[derive(Clone, Debug, Default)]
pub enum RegistryAuth {
    #[default]
    None,
    /// `auth: htpasswd` with one bcrypt user (realm `scratchpack-test`).
    Htpasswd { user: String, password: String },
    /// `auth: token` trusting a token server.
    Token(TokenServerConfig),
}

/// What to start.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a certificate from a fresh private CA (see [`Registry::ca_cert`]).
    pub tls: bool,
    pub auth: RegistryAuth,
}

/// A running `docker-registry`; killed when dropped.
pub struct Registry {
    /// `127.0.0.1:PORT`
    pub host: String,
    pub port: u16,
    child: Child,
    log_path: PathBuf,
    storage: PathBuf,
    tls: Option<TlsFiles>,
    dir: tempfile::TempDir,
}

enum Startup {
    Ready,
    PortTaken,
}

impl Registry {
    /// Starts a registry and waits until it answers `GET /v2/`. Panics with its log if it never does.
    pub fn start(options: RegistryOptions) -> Registry {
        let dir = temp_dir();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let tls = options.tls.then(|| make_tls_files(&dir.path().join("pki")));
        let auth = auth_section(dir.path(), &options.auth);
        let mut last_log = String::new();
        for attempt in 0..START_ATTEMPTS {
            let port = free_port();
            let config = dir.path().join(format!("config-{attempt}.yml"));
            std::fs::write(&config, config_yaml(port, &storage, tls.as_ref(), &auth)).unwrap();
            let log_path = dir.path().join(format!("registry-{attempt}.log"));
            let log = File::create(&log_path).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry (run scripts/install-test-deps.sh)");
            let mut starting = Starting { host: format!("127.0.0.1:{port}"), child, log_path, tls: tls.as_ref() };
            match starting.wait_ready() {
                Startup::Ready => {
                    let Starting { host, child, log_path, .. } = starting;
                    return Registry { host, port, child, log_path, storage, tls, dir };
                }
                Startup::PortTaken => {
                    last_log = read_log(&starting.log_path);
                    let _ = starting.child.kill();
                    let _ = starting.child.wait();
                }
            }
        }
        panic!("docker-registry could not get a free port in {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// A plain-HTTP registry without auth.
    pub fn plain() -> Registry {
        Registry::start(RegistryOptions::default())
    }

    /// A TLS registry without auth.
    pub fn tls() -> Registry {
        Registry::start(RegistryOptions { tls: true, auth: RegistryAuth::None })
    }

    /// A plain-HTTP registry with `auth: htpasswd` for one user.
    pub fn htpasswd(user: &str, password: &str) -> Registry {
        Registry::start(RegistryOptions {
            tls: false,
            auth: RegistryAuth::Htpasswd { user: user.to_string(), password: password.to_string() },
        })
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls.is_some() { "https" } else { "http" }, self.host)
    }

    /// `localhost:PORT` (the TLS certificate is valid for this name too).
    pub fn localhost(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// PEM of the private CA that signed the TLS certificate (SAN `DNS:localhost`,
    /// `IP:127.0.0.1`); None without TLS.
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|t| t.ca_cert.clone())
    }

    /// A directory containing only `ca.crt`, for `skopeo --src-cert-dir/--dest-cert-dir`; None
    /// without TLS.
    pub fn ca_dir(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|t| t.ca_dir.clone())
    }

    /// skopeo flags to push here: `--dest-tls-verify=false` (plain) or `--dest-cert-dir DIR` (TLS).
    pub fn skopeo_dest_args(&self) -> Vec<String> {
        match self.ca_dir() {
            Some(dir) => vec!["--dest-cert-dir".into(), dir.display().to_string()],
            None => vec!["--dest-tls-verify=false".into()],
        }
    }

    /// skopeo flags to read from here (`copy` source): `--src-tls-verify=false` or `--src-cert-dir`.
    pub fn skopeo_src_args(&self) -> Vec<String> {
        match self.ca_dir() {
            Some(dir) => vec!["--src-cert-dir".into(), dir.display().to_string()],
            None => vec!["--src-tls-verify=false".into()],
        }
    }

    /// skopeo flags for `inspect`/`delete`: `--tls-verify=false` or `--cert-dir`.
    pub fn skopeo_args(&self) -> Vec<String> {
        match self.ca_dir() {
            Some(dir) => vec!["--cert-dir".into(), dir.display().to_string()],
            None => vec!["--tls-verify=false".into()],
        }
    }

    /// The storage root (`storage.filesystem.rootdirectory`).
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// Flips one byte in the middle of the stored blob `digest`, its size kept: what a damaged or
    /// tampered registry serves.
    pub fn tamper_blob(&self, digest: &str) {
        let hex = digest.trim_start_matches("sha256:");
        let data = self.storage.join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data");
        let mut bytes = std::fs::read(&data).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&data, &bytes).unwrap();
    }

    /// Everything the registry printed so far (app log on stderr, access log on stdout).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// (method, path with query, status) of every request, from the access log, in order
    /// (readiness probes left out). A line appears when the registry finished the response, which
    /// may be a moment after the client saw it: see [`Registry::wait_for_request`].
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        self.log().lines().filter_map(parse_access_line).collect()
    }

    /// Number of PUT/PATCH requests to `/v2/*/blobs/uploads/*`.
    pub fn blob_upload_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|(m, p, _)| (m == "PUT" || m == "PATCH") && p.starts_with("/v2/") && p.contains("/blobs/uploads/"))
            .count()
    }

    /// Waits (up to 5 s) until the access log holds a request matching `method`, a path containing
    /// `path_contains`, and `status`; returns whether it came.
    pub fn wait_for_request(&self, method: &str, path_contains: &str, status: u16) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.requests().iter().any(|(m, p, s)| m == method && p.contains(path_contains) && *s == status) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The registry's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A registry process that has not answered yet.
struct Starting<'a> {
    host: String,
    child: Child,
    log_path: PathBuf,
    tls: Option<&'a TlsFiles>,
}

impl Starting<'_> {
    fn wait_ready(&mut self) -> Startup {
        let deadline = Instant::now() + READY_TIMEOUT;
        let listening = format!("listening on {}", self.host);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = read_log(&self.log_path);
                if log.contains("address already in use") {
                    return Startup::PortTaken;
                }
                panic!("docker-registry exited with {status} before answering GET /v2/; its log:\n{log}");
            }
            if read_log(&self.log_path).contains(&listening) && self.probe() {
                return Startup::Ready;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                panic!(
                    "docker-registry did not answer GET {scheme}://{}/v2/ within {READY_TIMEOUT:?}; its log:\n{}",
                    self.host,
                    read_log(&self.log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Whether `GET /v2/` gets any HTTP answer (200, or 401 with auth).
    fn probe(&self) -> bool {
        match &self.tls {
            None => HttpConnection::connect(&self.host)
                .and_then(|mut c| c.send("GET", "/v2/", &[("User-Agent", PROBE_USER_AGENT), ("Connection", "close")], b""))
                .is_ok_and(|r| r.status == 200 || r.status == 401),
            Some(tls) => Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "-A", PROBE_USER_AGENT, "--cacert"])
                .arg(&tls.ca_cert)
                .arg(format!("https://{}/v2/", self.host))
                .output()
                .is_ok_and(|o| matches!(o.stdout.as_slice(), b"200" | b"401")),
        }
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `127.0.0.1 - - [date] "METHOD PATH HTTP/1.1" STATUS SIZE "referer" "agent"`; None for
/// other lines and for readiness probes.
fn parse_access_line(line: &str) -> Option<(String, String, u16)> {
    let start = line.find("] \"")? + 3;
    let rest = &line[start..];
    let end = rest.find('"')?;
    let mut request = rest[..end].split(' ');
    let (method, path, protocol) = (request.next()?, request.next()?, request.next()?);
    if !protocol.starts_with("HTTP/") {
        return None;
    }
    let status = rest[end + 1..].split_whitespace().next()?.parse().ok()?;
    if line.ends_with(&format!("\"{PROBE_USER_AGENT}\"")) {
        return None;
    }
    Some((method.to_string(), path.to_string(), status))
}

fn auth_section(dir: &Path, auth: &RegistryAuth) -> String {
    match auth {
        RegistryAuth::None => String::new(),
        RegistryAuth::Htpasswd { user, password } => {
            let output = run_ok(Command::new("htpasswd").args(["-Bbn", user, password]));
            let file = dir.join("htpasswd");
            std::fs::write(&file, &output.stdout).unwrap();
            format!("auth:\n  htpasswd:\n    realm: scratchpack-test\n    path: {}\n", yaml_str(&file.display().to_string()))
        }
        RegistryAuth::Token(token) => format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            yaml_str(&token.realm),
            yaml_str(&token.service),
            yaml_str(&token.issuer),
            yaml_str(&token.rootcertbundle.display().to_string())
        ),
    }
}

fn config_yaml(port: u16, storage: &Path, tls: Option<&TlsFiles>, auth: &str) -> String {
    let tls = match tls {
        Some(t) => format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            yaml_str(&t.server_cert.display().to_string()),
            yaml_str(&t.server_key.display().to_string())
        ),
        None => String::new(),
    };
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: scratchpack-test-{secret}\n{tls}\
         health:\n  storagedriver:\n    enabled: false\n\
         {auth}",
        storage = yaml_str(&storage.display().to_string()),
        secret = unix_now(),
    )
}

/// A double-quoted YAML scalar.
fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[test]
fn access_lines_parse() {
    let line = r#"127.0.0.1 - - [26/Nov/2026:15:51:19 +0000] "PUT /v2/a/b/manifests/1?x=y HTTP/1.1" 201 0 "" "skopeo""#;
    assert_eq!(parse_access_line(line), Some(("PUT".into(), "/v2/a/b/manifests/1?x=y".into(), 201)));
    let probe = format!(r#"127.0.0.1 - - [26/Nov/2026:15:51:19 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "{PROBE_USER_AGENT}""#);
    assert_eq!(parse_access_line(&probe), None);
    assert_eq!(parse_access_line(r#"time="x" level=info msg="listening on 127.0.0.1:1""#), None);
}

/// Uploads `data` as a blob of `repo` on a plain-HTTP, auth-less registry (or a proxy in front of
/// one) at `host` (POST, then a monolithic PUT), and returns its digest. Panics on failure.
pub fn upload_blob_raw(host: &str, repo: &str, data: &[u8]) -> String {
    let digest = super::pki::sha256_digest(data);
    let location = start_upload_raw(host, repo);
    let put = super::http::http_request(
        host,
        "PUT",
        &format!("{location}{}digest={digest}", if location.contains('?') { '&' } else { '?' }),
        &[("Content-Type", "application/octet-stream")],
        data,
    )
    .expect("blob PUT");
    assert_eq!(put.status, 201, "blob PUT: {}", put.text());
    digest
}

/// `POST /v2/<repo>/blobs/uploads/` on a plain-HTTP, auth-less registry (or proxy) at `host`;
/// returns the upload `Location` (absolute, as the registry sends it). Panics unless 202.
pub fn start_upload_raw(host: &str, repo: &str) -> String {
    let post = super::http::http_request(host, "POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"").expect("upload POST");
    assert_eq!(post.status, 202, "upload POST: {}", post.text());
    post.header("location").expect("upload Location").to_string()
}
