//! A local container engine, Docker or podman, reached through the API on its unix socket: which
//! socket, which platform the engine runs, loading a docker archive, removing a name.
//!
//! A leaf: it speaks the Engine API over [`http`] and knows no image, layer or pipeline. What it
//! loads is a stream someone else writes. Every text an engine sends that reaches an error is
//! made safe to print first.
//!
//! Docker is spoken to through its Engine API (`POST /images/load`, a stream of JSON lines); podman
//! through its native libpod API (`POST /v4.0.0/libpod/images/load`), because that answers with
//! the exact names it stored as a JSON list, where its Docker-compatible endpoint joins them in a
//! line of text. Paths without a version prefix
//! reach the Docker engine's current API version: a pinned old version is refused by newer
//! engines.

pub(crate) mod http;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{BodyWriter, HttpError, Request, Response};

/// The most bytes read of an engine's answer (a version document, a load report, an error).
const MAX_ANSWER: u64 = 4 << 20;
/// How long a short request (version, delete) may wait for its answer.
const QUICK: Duration = Duration::from_secs(30);
/// How long a load may wait for the engine's answer once the archive is sent: the engine
/// answers after it has unpacked and stored every layer.
const LOAD: Duration = Duration::from_secs(10 * 60);
/// The longest engine text shown, in characters.
const MAX_SHOWN_CHARS: usize = 2000;
/// The API version of podman's native paths (podman 4.0 and later serve it).
const LIBPOD: &str = "/v4.0.0/libpod";

/// Which engine: each has its own socket, variable and API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EngineKind {
    Docker,
    Podman,
}

impl EngineKind {
    /// The engine as messages name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            EngineKind::Docker => "Docker engine",
            EngineKind::Podman => "podman service",
        }
    }

    /// The variable that names the engine's socket.
    pub(crate) fn variable(self) -> &'static str {
        match self {
            EngineKind::Docker => "DOCKER_HOST",
            EngineKind::Podman => "CONTAINER_HOST",
        }
    }

    fn api(self, path: &str) -> String {
        match self {
            EngineKind::Docker => path.to_string(),
            EngineKind::Podman => format!("{LIBPOD}{path}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EngineError {
    #[error("{variable}={value:?}: scratchpack reaches engines through unix:// sockets only")]
    NotUnix { variable: &'static str, value: String },
    #[error("cannot find the podman socket: CONTAINER_HOST and XDG_RUNTIME_DIR are not set")]
    NoPodmanSocket,
    #[error("cannot reach the {} at {}", kind.name(), socket.display())]
    Unreachable {
        kind: EngineKind,
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("talking to the {} at {}", kind.name(), socket.display())]
    Exchange {
        kind: EngineKind,
        socket: PathBuf,
        #[source]
        source: HttpError,
    },
    #[error("{} does not answer as a {}: {detail}", socket.display(), kind.name())]
    NotAnEngine { kind: EngineKind, socket: PathBuf, detail: String },
    #[error("the {} at {} refused the image: {message}", kind.name(), socket.display())]
    Refused { kind: EngineKind, socket: PathBuf, message: String, removed: Vec<String>, left: Vec<String> },
    #[error("writing the archive for the {}", kind.name())]
    Archive {
        kind: EngineKind,
        #[source]
        source: io::Error,
    },
}

impl EngineError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            EngineError::NotUnix { variable, .. } => {
                Some(format!("point {variable} at the engine's socket (unix:///PATH), or write docker-archive:FILE and load it with `docker load -i FILE`"))
            }
            EngineError::NoPodmanSocket => Some(
                "start the socket (`systemctl --user start podman.socket`, or `podman system service`) and set CONTAINER_HOST=unix:///PATH/podman.sock"
                    .into(),
            ),
            EngineError::Unreachable { kind, source, .. } if source.kind() == io::ErrorKind::PermissionDenied => Some(match kind {
                EngineKind::Docker => "this user may not use the socket: join the `docker` group, or set DOCKER_HOST to a socket you may use".into(),
                EngineKind::Podman => "this user may not use the socket: use your own (rootless) podman socket, or set CONTAINER_HOST".into(),
            }),
            EngineError::Unreachable { kind, .. } => Some(match kind {
                EngineKind::Docker => "is the daemon running? set DOCKER_HOST=unix:///PATH to reach another socket".into(),
                EngineKind::Podman => "is the service running (`systemctl --user start podman.socket`, or `podman system service`)? set CONTAINER_HOST=unix:///PATH to reach another socket".into(),
            }),
            EngineError::NotAnEngine { kind, .. } => Some(format!("set {} to the engine's own socket", kind.variable())),
            EngineError::Refused { left, .. } if !left.is_empty() => Some(format!(
                "the engine stored {} before it failed, and removing it failed too: remove it by hand",
                left.join(", ")
            )),
            EngineError::Refused { removed, .. } if !removed.is_empty() => {
                Some(format!("the engine had stored {} before it failed; it was removed", removed.join(", ")))
            }
            _ => None,
        }
    }
}

/// The platform an engine runs, as its `/version` says: `GOOS` and `GOARCH` spelling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EnginePlatform {
    pub(crate) os: String,
    pub(crate) architecture: String,
}

impl std::fmt::Display for EnginePlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)
    }
}

/// An engine and the socket it is reached at.
#[derive(Clone, Debug)]
pub(crate) struct Engine {
    pub(crate) kind: EngineKind,
    pub(crate) socket: PathBuf,
}

impl Engine {
    /// The engine this process's environment names.
    pub(crate) fn from_env(kind: EngineKind) -> Result<Engine, EngineError> {
        // SAFETY: geteuid cannot fail and touches no memory.
        let root = unsafe { libc::geteuid() } == 0;
        let socket = locate(kind, |name| std::env::var_os(name), root)?;
        Ok(Engine { kind, socket })
    }

    fn send(&self, request: &Request<'_>, body: Option<BodyWriter<'_>>) -> Result<Response, EngineError> {
        http::send(&self.socket, request, body).map_err(|error| match error {
            HttpError::Connect(source) => EngineError::Unreachable { kind: self.kind, socket: self.socket.clone(), source },
            HttpError::Body(source) => EngineError::Archive { kind: self.kind, source },
            HttpError::Malformed(detail) => EngineError::NotAnEngine {
                kind: self.kind,
                socket: self.socket.clone(),
                detail: format!("its answer is not HTTP ({detail})"),
            },
            source => EngineError::Exchange { kind: self.kind, socket: self.socket.clone(), source },
        })
    }

    /// The platform the engine runs.
    pub(crate) fn platform(&self) -> Result<EnginePlatform, EngineError> {
        let path = self.kind.api("/version");
        let answer =
            self.send(&Request { method: "GET", path: &path, content_type: None, answer_timeout: QUICK, body_limit: MAX_ANSWER }, None)?;
        let not_engine = |detail: String| EngineError::NotAnEngine { kind: self.kind, socket: self.socket.clone(), detail };
        if !answer.is_success() {
            return Err(not_engine(format!("GET {path} answered {}: {}", answer.status, error_message(&answer.body))));
        }
        let version: serde_json::Value =
            serde_json::from_slice(&answer.body).map_err(|_| not_engine(format!("GET {path} answered something that is not JSON")))?;
        let field = |name: &str| version.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(engine_text);
        match (field("Os"), field("Arch")) {
            (Some(os), Some(architecture)) => Ok(EnginePlatform { os, architecture }),
            _ => Err(not_engine(format!("GET {path} names no Os and Arch"))),
        }
    }

    /// Loads the docker archive `archive` writes, streamed as it is written. Returns the names
    /// the engine reports it stored. When the engine fails after it stored some names, they are
    /// removed again (best effort; the error says which were left).
    pub(crate) fn load(&self, archive: BodyWriter<'_>) -> Result<Vec<String>, EngineError> {
        let path = match self.kind {
            // quiet: one line per image, no progress bars.
            EngineKind::Docker => "/images/load?quiet=1".to_string(),
            EngineKind::Podman => self.kind.api("/images/load"),
        };
        let request =
            Request { method: "POST", path: &path, content_type: Some("application/x-tar"), answer_timeout: LOAD, body_limit: MAX_ANSWER };
        let answer = self.send(&request, Some(archive))?;
        let report = match self.kind {
            EngineKind::Docker => docker_load_report(&answer),
            EngineKind::Podman => podman_load_report(&answer),
        };
        match report.error {
            None => Ok(report.names),
            Some(message) => {
                let (mut removed, mut left) = (Vec::new(), Vec::new());
                for name in report.names {
                    match self.remove(&name) {
                        Ok(()) => removed.push(name),
                        Err(_) => left.push(name),
                    }
                }
                Err(EngineError::Refused { kind: self.kind, socket: self.socket.clone(), message, removed, left })
            }
        }
    }

    /// Removes the name `name` (the image goes with its last name).
    pub(crate) fn remove(&self, name: &str) -> Result<(), EngineError> {
        let path = self.kind.api(&format!("/images/{}", escape_path(name)));
        let answer =
            self.send(&Request { method: "DELETE", path: &path, content_type: None, answer_timeout: QUICK, body_limit: MAX_ANSWER }, None)?;
        if answer.is_success() {
            Ok(())
        } else {
            Err(EngineError::Refused {
                kind: self.kind,
                socket: self.socket.clone(),
                message: error_message(&answer.body),
                removed: vec![],
                left: vec![],
            })
        }
    }
}

/// Where `kind`'s socket is, from the environment (`var`) and whether this is root: the
/// variable when set (unix:// only), else the engine's default socket.
fn locate(kind: EngineKind, var: impl Fn(&str) -> Option<OsString>, root: bool) -> Result<PathBuf, EngineError> {
    let variable = kind.variable();
    if let Some(value) = var(variable).filter(|v| !v.is_empty()) {
        let text = value.to_string_lossy();
        return match text.strip_prefix("unix://") {
            Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
            _ => {
                // Only the scheme is shown: an ssh:// or tcp:// value may hold a user name.
                let scheme = text.split_once("://").map_or("a value without unix://".to_string(), |(scheme, _)| format!("{scheme}://…"));
                Err(EngineError::NotUnix { variable, value: scheme })
            }
        };
    }
    Ok(match kind {
        EngineKind::Docker => PathBuf::from("/var/run/docker.sock"),
        // As podman's own clients: root's service listens in /run, a user's in its runtime folder.
        EngineKind::Podman if root => PathBuf::from("/run/podman/podman.sock"),
        EngineKind::Podman => {
            let runtime = var("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()).ok_or(EngineError::NoPodmanSocket)?;
            Path::new(&runtime).join("podman/podman.sock")
        }
    })
}

/// What a load answer says: the names stored, and the engine's error if it failed.
#[derive(Debug, Default, PartialEq, Eq)]
struct LoadReport {
    names: Vec<String>,
    error: Option<String>,
}

/// Docker's load answer: JSON lines, `{"stream":"Loaded image: NAME\n"}` per name, and
/// `{"errorDetail":{"message":…},"error":…}` when it fails, even under a 200 status.
fn docker_load_report(answer: &Response) -> LoadReport {
    let mut report = LoadReport::default();
    if !answer.is_success() {
        report.error = Some(format!("{} (status {})", error_message(&answer.body), answer.status));
        return report;
    }
    let mut decoded = serde_json::Deserializer::from_slice(&answer.body).into_iter::<serde_json::Value>();
    for line in decoded.by_ref() {
        let Ok(line) = line else {
            report.error = Some("the load answer is not JSON lines".into());
            break;
        };
        let detail = line.pointer("/errorDetail/message").or_else(|| line.get("error")).and_then(|v| v.as_str());
        if let Some(message) = detail {
            report.error = Some(engine_text(message));
            break;
        }
        if let Some(stream) = line.get("stream").and_then(|v| v.as_str()) {
            if let Some(name) = stream.trim().strip_prefix("Loaded image: ") {
                // podman's compatible API joins the names with ',' in one line; no name holds one.
                report.names.extend(name.split(',').map(|n| engine_text(n.trim())));
            }
        }
    }
    report
}

/// podman's native load answer: `{"Names":[…]}`, or an error document under a failing status.
fn podman_load_report(answer: &Response) -> LoadReport {
    if !answer.is_success() {
        return LoadReport { names: vec![], error: Some(format!("{} (status {})", error_message(&answer.body), answer.status)) };
    }
    match serde_json::from_slice::<serde_json::Value>(&answer.body).ok().and_then(|v| v.get("Names").cloned()) {
        Some(serde_json::Value::Array(names)) => {
            LoadReport { names: names.iter().filter_map(|n| n.as_str()).map(engine_text).collect(), error: None }
        }
        _ => LoadReport { names: vec![], error: Some("the load answer names no image".into()) },
    }
}

/// The message of an engine's error body (`{"message":…}` for both engines), else its text.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().and_then(|v| v.get("message")).and_then(|m| m.as_str()) {
        Some(message) => engine_text(message),
        None if body.is_empty() => "no message".into(),
        None => engine_text(&String::from_utf8_lossy(body)),
    }
}

/// Engine text made safe to print: trimmed, control characters escaped but for line breaks,
/// which indent what follows (no line can pass for one of scratchpack's own), and shortened.
fn engine_text(text: &str) -> String {
    let mut shown = String::new();
    let mut chars = text.trim().chars();
    for c in chars.by_ref().take(MAX_SHOWN_CHARS) {
        match c {
            '\n' => shown.push_str("\n    "),
            c if c.is_control() => shown.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => shown.push(c),
        }
    }
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
}

/// A name as one path segment: `/` stays (the engines route names with slashes), anything but
/// the characters a reference may hold is percent-encoded.
fn escape_path(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b':' | b'/' | b'@' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn finds_each_engines_socket() {
        let docker = |pairs: &[(&str, &str)]| locate(EngineKind::Docker, env(pairs), false);
        assert_eq!(docker(&[]).unwrap(), Path::new("/var/run/docker.sock"));
        assert_eq!(docker(&[("DOCKER_HOST", "")]).unwrap(), Path::new("/var/run/docker.sock"));
        assert_eq!(docker(&[("DOCKER_HOST", "unix:///tmp/d.sock")]).unwrap(), Path::new("/tmp/d.sock"));
        assert_eq!(docker(&[("CONTAINER_HOST", "unix:///tmp/p.sock")]).unwrap(), Path::new("/var/run/docker.sock"));
        let refused = docker(&[("DOCKER_HOST", "tcp://me:secret@10.0.0.1:2376")]).unwrap_err();
        assert_eq!(refused.to_string(), "DOCKER_HOST=\"tcp://…\": scratchpack reaches engines through unix:// sockets only");
        assert!(!format!("{refused:?}").contains("secret"));
        assert!(matches!(docker(&[("DOCKER_HOST", "/var/run/docker.sock")]), Err(EngineError::NotUnix { .. })));
        assert!(matches!(docker(&[("DOCKER_HOST", "unix://")]), Err(EngineError::NotUnix { .. })));

        let podman = |pairs: &[(&str, &str)], root| locate(EngineKind::Podman, env(pairs), root);
        assert_eq!(podman(&[("XDG_RUNTIME_DIR", "/run/user/1000")], false).unwrap(), Path::new("/run/user/1000/podman/podman.sock"));
        assert_eq!(podman(&[("XDG_RUNTIME_DIR", "/run/user/0")], true).unwrap(), Path::new("/run/podman/podman.sock"));
        assert_eq!(podman(&[("CONTAINER_HOST", "unix:///tmp/p.sock")], true).unwrap(), Path::new("/tmp/p.sock"));
        assert!(matches!(podman(&[], false), Err(EngineError::NoPodmanSocket)));
        assert!(matches!(podman(&[("CONTAINER_HOST", "ssh://core@host/run/podman.sock")], false), Err(EngineError::NotUnix { .. })));
    }

    fn answer(status: u16, body: &str) -> Response {
        Response { status, body: body.as_bytes().to_vec() }
    }

    #[test]
    fn reads_what_a_load_stored_and_why_it_failed() {
        let loaded = answer(200, "{\"stream\":\"Loaded image: app:1.0\\n\"}\r\n{\"stream\":\"Loaded image: app:latest\\n\"}\r\n");
        assert_eq!(docker_load_report(&loaded), LoadReport { names: vec!["app:1.0".into(), "app:latest".into()], error: None });
        let podman_compat = answer(200, r#"{"stream":"Loaded image: localhost/app:1.0,localhost/app:latest"}"#);
        assert_eq!(docker_load_report(&podman_compat).names, ["localhost/app:1.0", "localhost/app:latest"]);
        let failed = answer(
            200,
            "{\"stream\":\"Loaded image: app:1.0\\n\"}\n{\"errorDetail\":{\"message\":\"no space left\\u001b[2K\"},\"error\":\"no space left\"}\n",
        );
        assert_eq!(
            docker_load_report(&failed),
            LoadReport { names: vec!["app:1.0".into()], error: Some("no space left\\u{1b}[2K".into()) }
        );
        let refused = answer(500, "{\"message\":\"failed to load image: unexpected EOF\\nerror: forged\",\"response\":500}");
        assert_eq!(docker_load_report(&refused).error.unwrap(), "failed to load image: unexpected EOF\n    error: forged (status 500)");
        assert_eq!(docker_load_report(&answer(200, "<html>")).error.unwrap(), "the load answer is not JSON lines");

        assert_eq!(podman_load_report(&answer(200, r#"{"Names":["localhost/app:1.0"]}"#)).names, ["localhost/app:1.0"]);
        assert_eq!(
            podman_load_report(&answer(500, r#"{"cause":"x","message":"unable to load image: x"}"#)).error.unwrap(),
            "unable to load image: x (status 500)"
        );
        assert_eq!(podman_load_report(&answer(200, "{}")).error.unwrap(), "the load answer names no image");
        assert_eq!(error_message(b""), "no message");
        assert_eq!(engine_text(&"é".repeat(3000)).chars().count(), MAX_SHOWN_CHARS + 1);
    }

    /// A stand-in engine on a socket in `dir`: answers each connection in turn with the next of
    /// `answers`, after reading its request to the end; returns the request lines it got.
    fn fake_engine(dir: &Path, answers: Vec<&'static str>) -> (Engine, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead, BufReader};
        let socket = dir.join("engine.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for answer in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(&stream);
                let mut head = String::new();
                while !head.ends_with("\r\n\r\n") {
                    reader.read_line(&mut head).unwrap();
                }
                lines.push(head.lines().next().unwrap().to_string());
                if head.contains("chunked") {
                    let mut body = String::new();
                    while !body.ends_with("0\r\n\r\n") {
                        if reader.read_line(&mut body).unwrap() == 0 {
                            break;
                        }
                    }
                }
                (&stream).write_all(answer.as_bytes()).unwrap();
            }
            lines
        });
        (Engine { kind: EngineKind::Docker, socket }, server)
    }

    #[test]
    fn what_an_engine_stored_before_it_failed_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let failing_load = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n\
             {\"stream\":\"Loaded image: app:1\\n\"}\n{\"errorDetail\":{\"message\":\"quota exceeded\"},\"error\":\"quota exceeded\"}\n";
        let (engine, server) = fake_engine(dir.path(), vec![failing_load, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]"]);
        let error = engine.load(&mut |out| out.write_all(b"archive")).unwrap_err();
        assert_eq!(error.to_string(), format!("the Docker engine at {} refused the image: quota exceeded", engine.socket.display()));
        assert_eq!(error.hint().unwrap(), "the engine had stored app:1 before it failed; it was removed");
        assert_eq!(server.join().unwrap(), ["POST /images/load?quiet=1 HTTP/1.1", "DELETE /images/app:1 HTTP/1.1"]);

        let dir = tempfile::tempdir().unwrap();
        let refused_delete = "HTTP/1.1 409 Conflict\r\nContent-Length: 26\r\n\r\n{\"message\":\"image in use\"}";
        let (engine, server) = fake_engine(dir.path(), vec![failing_load, refused_delete]);
        let error = engine.load(&mut |out| out.write_all(b"archive")).unwrap_err();
        assert_eq!(error.hint().unwrap(), "the engine stored app:1 before it failed, and removing it failed too: remove it by hand");
        server.join().unwrap();
    }

    #[test]
    fn names_are_escaped_as_path_segments() {
        assert_eq!(escape_path("localhost/app:1.0"), "localhost/app:1.0");
        assert_eq!(escape_path("a b?c#d"), "a%20b%3Fc%23d");
    }
}
