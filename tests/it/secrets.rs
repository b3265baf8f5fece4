//! Credentials go to the registry's own host only: not to an upload URL on another host, not
//! through a redirect to another host. Two small servers stand in where no real registry can:
//! the reference registry never redirects an upload elsewhere.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::support::http::{read_head, read_request_body};
use crate::util::*;

type Seen = Arc<Mutex<Vec<(String, String, bool)>>>;
/// `(method, path, authorized) -> (status, headers)`.
type Respond = dyn Fn(&str, &str, bool) -> (u16, Vec<(String, String)>) + Send + Sync;

/// Serves `respond(method, path, authorized) -> (status, headers)` on 127.0.0.1, recording
/// (method, path, had Authorization) for each request.
fn serve(respond: impl Fn(&str, &str, bool) -> (u16, Vec<(String, String)>) + Send + Sync + 'static) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let respond = Arc::new(respond);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let record = Arc::clone(&record);
            let respond = Arc::clone(&respond);
            std::thread::spawn(move || handle(stream, &record, respond.as_ref()));
        }
    });
    (host, seen)
}

fn handle(stream: TcpStream, seen: &Seen, respond: &Respond) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Ok(Some(head)) = read_head(&mut reader) {
        let _ = read_request_body(&mut reader, &head);
        let (method, path) = head.request_parts();
        let authorized = head.header("authorization").is_some();
        seen.lock().unwrap().push((method.clone(), path.clone(), authorized));
        let (status, headers) = respond(&method, &path, authorized);
        let mut response = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n");
        for (name, value) in headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn authorization_never_leaves_the_registry_host() {
    // Storage: where uploads are sent and the tag probe is redirected to. It wants no credentials.
    let (storage, storage_seen) = serve(|method, _, _| match method {
        "PUT" => (201, vec![]),
        _ => (404, vec![]),
    });
    let storage_host = storage.clone();
    let (registry, registry_seen) = serve(move |method, path, authorized| {
        if !authorized {
            return (401, vec![("WWW-Authenticate".into(), "Basic realm=\"test\"".into())]);
        }
        match (method, path) {
            ("GET", "/v2/") => (200, vec![]),
            ("HEAD", p) if p.contains("/blobs/") => (404, vec![]),
            ("POST", p) if p.contains("/blobs/uploads/") => {
                (202, vec![("Location".into(), format!("http://{storage_host}/upload/1?state=abc"))])
            }
            ("HEAD", p) if p.contains("/manifests/") => (307, vec![("Location".into(), format!("http://{storage_host}/probe"))]),
            ("PUT", p) if p.contains("/manifests/") => (201, vec![]),
            _ => (404, vec![]),
        }
    });
    let password = "Sup3r-secret-pw";
    let output = scratchpack()
        .arg("pack")
        .arg(static_c_hello())
        .args(["--output", &format!("docker://{registry}/team/app:1"), "--creds", &format!("bot:{password}"), "-vv"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains(password));
    let storage_requests = storage_seen.lock().unwrap().clone();
    assert!(
        storage_requests.iter().filter(|(m, p, _)| m == "PUT" && p.starts_with("/upload/1?state=abc&digest=sha256%3A")).count() == 3,
        "{storage_requests:?}"
    );
    assert!(storage_requests.iter().any(|(m, p, _)| m == "HEAD" && p == "/probe"), "the redirect was followed: {storage_requests:?}");
    assert!(storage_requests.iter().all(|(_, _, authorized)| !authorized), "credentials leaked to another host: {storage_requests:?}");
    let registry_requests = registry_seen.lock().unwrap().clone();
    assert!(registry_requests.iter().any(|(m, p, a)| m == "PUT" && p == "/v2/team/app/manifests/1" && *a), "{registry_requests:?}");
}
