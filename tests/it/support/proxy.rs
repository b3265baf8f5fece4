//! A fault-injecting HTTP/1.1 proxy in front of a plain-HTTP registry, for retry and resume tests.
//!
//! Clients talk to `http://127.0.0.1:PORT` (the proxy) as if it were the registry: requests are
//! forwarded unchanged (Host header included, so the registry builds its absolute `Location` URLs
//! for the proxy already), over one upstream connection per client connection, keep-alive on both
//! sides. Content-Length, chunked and close-delimited bodies, HEAD, 1xx (`Expect: 100-continue`),
//! 204 and 304 are handled. The only rewrite: a `Location` header naming the upstream `host:port`
//! names the proxy instead.
//!
//! A TLS handshake gets Go's plain-HTTP answer (`400`, close), so clients that try HTTPS first
//! (skopeo with `--tls-verify=false`) fall back to HTTP at once; it is not recorded as a request.
//!
//! [`Fault`]s are consumed in the order added: a request takes the first fault whose method and
//! path match and that has uses left (one fault per request).

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{read_head, request_body_kind, response_body_kind, transfer_body, BodyKind, Head};
use super::server::{self, Connections, Server};

/// Idle/read timeout on both sides of a proxied connection.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// Something the proxy does instead of (or while) forwarding a request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer `status` (with optional Retry-After seconds) instead of forwarding, for the next `times`
    /// requests whose method matches and whose path contains `path_contains`. The request body is
    /// read and dropped (the connection stays open), unless the client sent `Expect: 100-continue`
    /// (then the answer comes at once and the connection closes).
    Status { method: &'static str, path_contains: &'static str, status: u16, times: usize, retry_after: Option<u64> },
    /// Forward the request, but close the connection after `after_bytes` bytes of the request body
    /// have been forwarded (connection reset mid-blob), `times` times. A shorter body is forwarded
    /// whole and the connection closed before any response (so `after_bytes: 0` on a body-less
    /// request loses the response).
    DropRequestBody { method: &'static str, path_contains: &'static str, after_bytes: usize, times: usize },
    /// Delay the response by `delay` for matching requests, `times` times (the request is forwarded
    /// at once; the upstream response is held back).
    Delay { method: &'static str, path_contains: &'static str, delay: Duration, times: usize },
    /// Forward, but cut the response after `after_bytes` bytes of its body and close, `times` times.
    TruncateResponse { method: &'static str, path_contains: &'static str, after_bytes: usize, times: usize },
    /// Forward the request without its query string, `times` times: a registry that ignores
    /// `?mount=…&from=…` and opens an upload session instead (202), as one that refuses a mount
    /// does. Recorded with the query the client sent.
    DropQuery { method: &'static str, path_contains: &'static str, times: usize },
}

impl Fault {
    fn matcher(&self) -> (&'static str, &'static str, usize) {
        match *self {
            Fault::Status { method, path_contains, times, .. }
            | Fault::DropRequestBody { method, path_contains, times, .. }
            | Fault::Delay { method, path_contains, times, .. }
            | Fault::TruncateResponse { method, path_contains, times, .. }
            | Fault::DropQuery { method, path_contains, times } => (method, path_contains, times),
        }
    }

    /// Whether this fault applies to a request (`method` `"*"` matches any method).
    fn matches(&self, method: &str, target: &str) -> bool {
        let (m, path, _) = self.matcher();
        (m == "*" || m.eq_ignore_ascii_case(method)) && target.contains(path)
    }
}

/// A running proxy; stopped (listener and every connection closed) when dropped.
pub struct FaultProxy {
    /// `127.0.0.1:PORT`
    pub host: String,
    state: Arc<State>,
    _server: Server,
}

struct State {
    upstream: String,
    own_host: String,
    /// Faults with their remaining uses.
    faults: Mutex<Vec<(Fault, usize)>>,
    requests: Mutex<Vec<(String, String, u16)>>,
    blob_bytes: AtomicU64,
    /// Hold a TLS hello's connection open without an answer, as a plain-HTTP server that
    /// ignores it does, instead of Go's quick `400`.
    silent_to_tls: AtomicBool,
    /// Open connections (both sides), closed when the proxy stops.
    conns: Arc<Connections>,
}

impl State {
    fn take_fault(&self, method: &str, target: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap();
        let (fault, left) = faults.iter_mut().find(|(f, left)| *left > 0 && f.matches(method, target))?;
        *left -= 1;
        Some(fault.clone())
    }

    fn record(&self, method: &str, target: &str, status: u16) {
        self.requests.lock().unwrap().push((method.to_string(), target.to_string(), status));
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream_host` (`127.0.0.1:PORT`, plain HTTP).
    pub fn start(upstream_host: &str) -> FaultProxy {
        assert!(upstream_host.starts_with("127.0.0.1:"), "the proxy only forwards to 127.0.0.1, not {upstream_host}");
        let (listener, host) = server::bind();
        let conns = Connections::new();
        let state = Arc::new(State {
            upstream: upstream_host.to_string(),
            own_host: host.clone(),
            faults: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            blob_bytes: AtomicU64::new(0),
            silent_to_tls: AtomicBool::new(false),
            conns: conns.clone(),
        });
        let serving = state.clone();
        let server = Server::start(listener, &host, conns, move |stream| serve_client(&serving, stream));
        FaultProxy { host, state, _server: server }
    }

    /// From now on, a TLS hello gets no answer at all: its connection is held open until the
    /// client gives up (a server that accepts TCP and never answers a TLS hello).
    pub fn ignore_tls_hellos(&self) {
        self.state.silent_to_tls.store(true, Ordering::SeqCst);
    }

    /// Adds a fault (after those already there).
    pub fn add(&self, fault: Fault) {
        let times = fault.matcher().2;
        self.state.faults.lock().unwrap().push((fault, times));
    }

    /// Removes every fault, used up or not.
    pub fn clear_faults(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    /// Uses left of every fault added, in order (0 = used up).
    pub fn faults_left(&self) -> Vec<usize> {
        self.state.faults.lock().unwrap().iter().map(|(_, left)| *left).collect()
    }

    /// (method, path with query, status returned to the client), in the order responses were
    /// started (each is recorded before the client sees it). Status 0: the connection was dropped without a response (DropRequestBody, or the
    /// client went away); 502: the upstream did not answer.
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Request body bytes of PATCH/PUT to `*/blobs/uploads/*` forwarded upstream.
    pub fn blob_bytes_uploaded(&self) -> u64 {
        self.state.blob_bytes.load(Ordering::SeqCst)
    }

    /// Clears the request list and the uploaded byte count (not the faults).
    pub fn reset_counters(&self) {
        self.state.requests.lock().unwrap().clear();
        self.state.blob_bytes.store(0, Ordering::SeqCst);
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }
}

struct Upstream {
    id: u64,
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

fn connect_upstream(state: &State) -> io::Result<Upstream> {
    let stream = TcpStream::connect(&state.upstream)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let id = state.conns.track(&stream);
    Ok(Upstream { id, reader: BufReader::new(stream.try_clone()?), writer: BufWriter::new(stream.try_clone()?), stream })
}

fn close(client: &TcpStream, upstream: Option<&Upstream>) {
    let _ = client.shutdown(Shutdown::Both);
    if let Some(up) = upstream {
        let _ = up.stream.shutdown(Shutdown::Both);
    }
}

/// The proxy's own answer (Status faults, 502).
fn synthetic_response(status: u16, retry_after: Option<u64>, head_request: bool, close: bool) -> Vec<u8> {
    let body = format!(r#"{{"errors":[{{"code":"UNAVAILABLE","message":"status {status} injected by FaultProxy","detail":null}}]}}"#);
    let mut out = format!("HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\n", reason(status));
    if let Some(secs) = retry_after {
        out.push_str(&format!("Retry-After: {secs}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", if head_request { 0 } else { body.len() }));
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    if !head_request {
        out.push_str(&body);
    }
    out.into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected",
    }
}

/// Replaces the upstream `host:port` by the proxy's in `Location` headers.
fn rewrite_location(mut head: Head, upstream: &str, own: &str) -> Head {
    for (name, value) in &mut head.headers {
        if name.eq_ignore_ascii_case("location") && value.contains(upstream) {
            *value = value.replace(upstream, own);
        }
    }
    head
}

fn serve_client(state: &State, client: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = client.set_read_timeout(Some(IO_TIMEOUT));
    let _ = client.set_write_timeout(Some(IO_TIMEOUT));
    let (Ok(read_half), Ok(write_half)) = (client.try_clone(), client.try_clone()) else { return };
    let mut client_in = BufReader::new(read_half);
    let mut client_out = BufWriter::new(write_half);
    let mut upstream: Option<Upstream> = None;
    loop {
        if state.conns.stopping() {
            break;
        }
        // A TLS ClientHello (clients with verification off try HTTPS first, as skopeo does): answer
        // at once, like Go's server, instead of waiting for a request head that never comes.
        match client_in.fill_buf() {
            Ok([0x16, ..]) if state.silent_to_tls.load(Ordering::SeqCst) => {
                let mut sink = [0u8; 4096];
                while !state.conns.stopping() && matches!(io::Read::read(&mut client_in, &mut sink), Ok(n) if n > 0) {}
                break;
            }
            Ok([0x16, ..]) => {
                let _ = client_out.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request",
                );
                let _ = client_out.flush();
                break;
            }
            Ok([]) | Err(_) => break,
            Ok(_) => {}
        }
        let Ok(Some(mut head)) = read_head(&mut client_in) else { break };
        let (method, target) = head.request_parts();
        let body_kind = request_body_kind(&head);
        let expect_continue = body_kind != BodyKind::None && head.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        let fault = state.take_fault(&method, &target);
        if let (Some(Fault::DropQuery { .. }), Some((path, _))) = (&fault, target.split_once('?')) {
            head.start_line = head.start_line.replacen(&target, path, 1);
        }

        if let Some(Fault::Status { status, retry_after, .. }) = fault {
            let close_after = head.wants_close() || expect_continue;
            if !close_after && transfer_body(&mut client_in, body_kind, None, &mut io::sink(), &mut |_| {}).is_err() {
                break;
            }
            let response = synthetic_response(status, retry_after, method == "HEAD", close_after);
            state.record(&method, &target, status);
            if client_out.write_all(&response).and_then(|()| client_out.flush()).is_err() {
                break;
            }
            if close_after {
                break;
            }
            continue;
        }

        if upstream.is_none() {
            match connect_upstream(state) {
                Ok(up) => upstream = Some(up),
                Err(_) => {
                    state.record(&method, &target, 502);
                    let _ = client_out.write_all(&synthetic_response(502, None, method == "HEAD", true));
                    let _ = client_out.flush();
                    break;
                }
            }
        }
        let up = upstream.as_mut().unwrap();
        if up.writer.write_all(&head.to_bytes()).and_then(|()| up.writer.flush()).is_err() {
            state.record(&method, &target, 502);
            let _ = client_out.write_all(&synthetic_response(502, None, method == "HEAD", true));
            let _ = client_out.flush();
            break;
        }

        // With `Expect: 100-continue`, the upstream says whether it wants the body.
        let mut early: Option<Head> = None;
        if expect_continue {
            match read_head(&mut up.reader) {
                Ok(Some(interim)) if interim.status() == 100 => {
                    if client_out.write_all(&interim.to_bytes()).and_then(|()| client_out.flush()).is_err() {
                        break;
                    }
                }
                Ok(Some(final_head)) => early = Some(final_head),
                _ => {
                    state.record(&method, &target, 0);
                    break;
                }
            }
        }

        let had_early = early.is_some();
        let mut body_failed = false;
        if !had_early {
            let drop_after = match fault {
                Some(Fault::DropRequestBody { after_bytes, .. }) => Some(after_bytes as u64),
                _ => None,
            };
            let counted = (method == "PUT" || method == "PATCH") && target.contains("/blobs/uploads/");
            let mut count = |data: &[u8]| {
                if counted {
                    state.blob_bytes.fetch_add(data.len() as u64, Ordering::SeqCst);
                }
            };
            let forwarded = transfer_body(&mut client_in, body_kind, drop_after, &mut up.writer, &mut count);
            let flushed = up.writer.flush();
            if drop_after.is_some() {
                // Reset mid-body (or, for a short body, right after it): no response.
                state.record(&method, &target, 0);
                close(&client, Some(&*up));
                break;
            }
            body_failed = forwarded.is_err() || flushed.is_err();
            if body_failed {
                // One side went away mid-body. The upstream may still have answered (e.g. 401
                // before reading a body): pass that on, then close.
                let _ = up.stream.set_read_timeout(Some(Duration::from_secs(2)));
            }
        }

        if let Some(Fault::Delay { delay, .. }) = fault {
            std::thread::sleep(delay);
        }

        let response = match early {
            Some(head) => Ok(Some(head)),
            None => loop {
                match read_head(&mut up.reader) {
                    Ok(Some(interim)) if (100..200).contains(&interim.status()) && interim.status() != 101 => {
                        if client_out.write_all(&interim.to_bytes()).and_then(|()| client_out.flush()).is_err() {
                            break Err(io::Error::other("client gone"));
                        }
                    }
                    other => break other,
                }
            },
        };
        let Ok(Some(response)) = response else {
            state.record(&method, &target, if body_failed { 0 } else { 502 });
            if !body_failed {
                let _ = client_out.write_all(&synthetic_response(502, None, method == "HEAD", true));
                let _ = client_out.flush();
            }
            break;
        };
        let status = response.status();
        let response = rewrite_location(response, &state.upstream, &state.own_host);
        let kind = response_body_kind(&method, &response);
        let truncate = match fault {
            Some(Fault::TruncateResponse { after_bytes, .. }) => Some(after_bytes as u64),
            _ => None,
        };
        // Recorded before the client can see the response, so tests may assert right after it.
        state.record(&method, &target, status);
        let sent = client_out
            .write_all(&response.to_bytes())
            .and_then(|()| transfer_body(&mut up.reader, kind, truncate, &mut client_out, &mut |_| {}))
            .and_then(|complete| client_out.flush().map(|()| complete));
        if sent.is_err() || truncate.is_some() || body_failed || had_early {
            close(&client, Some(&*up));
            break;
        }
        if kind == BodyKind::UntilClose || response.wants_close() {
            close(&client, Some(&*up));
            break;
        }
        if head.wants_close() {
            break;
        }
    }
    let _ = client_out.flush();
    close(&client, upstream.as_ref());
    if let Some(up) = upstream {
        state.conns.untrack(up.id);
    }
}

#[test]
fn location_rewrite_only_touches_the_upstream_address() {
    let head = Head {
        start_line: "HTTP/1.1 202 Accepted".into(),
        headers: vec![
            ("Location".into(), "http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=y".into()),
            ("X-Other".into(), "http://127.0.0.1:5000/".into()),
        ],
    };
    let head = rewrite_location(head, "127.0.0.1:5000", "127.0.0.1:6000");
    assert_eq!(head.header("location"), Some("http://127.0.0.1:6000/v2/a/blobs/uploads/x?_state=y"));
    assert_eq!(head.header("x-other"), Some("http://127.0.0.1:5000/"));
}
