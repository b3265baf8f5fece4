//! A hostile registry: a plain-HTTP server on 127.0.0.1 whose every answer a test chooses, for the
//! answers no real registry gives (endless bodies, redirect loops, huge headers, escapes in error
//! messages). It answers a TLS hello with a plain 400, as Go's servers do, so the client's https
//! probe of a loopback registry fails at once. Stopped when dropped.

use std::io::{self, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use super::http::{read_head, request_body_kind, transfer_body, Head};
use super::server::{self, Connections, Server};

/// One request, as the handler sees it.
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub head: Head,
    /// `127.0.0.1:PORT` of this server.
    pub host: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
}

/// What the server answers.
pub enum Reply {
    /// A whole answer with a Content-Length.
    Full { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// `prefix`, then `fill` bytes without end (no Content-Length): until the client hangs up.
    Endless { status: u16, headers: Vec<(String, String)>, prefix: Vec<u8>, fill: u8 },
    /// A Content-Length of `length`, then `fill` bytes up to it, or until the client hangs up.
    Huge { status: u16, headers: Vec<(String, String)>, length: u64, fill: u8 },
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::Full { status, headers: vec![("Content-Type".into(), "application/json".into())], body: body.as_bytes().to_vec() }
    }

    pub fn empty(status: u16, headers: &[(&str, &str)]) -> Reply {
        Reply::Full { status, headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(), body: Vec::new() }
    }

    /// A distribution-spec error body with one error.
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        let body = serde_json::json!({ "errors": [{ "code": code, "message": message }] });
        Reply::json(status, &body.to_string())
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

struct State {
    handler: Box<Handler>,
    host: String,
    requests: Mutex<Vec<String>>,
    conns: Arc<Connections>,
}

/// A running hostile registry; stopped when dropped.
pub struct Hostile {
    /// `127.0.0.1:PORT`
    pub host: String,
    state: Arc<State>,
    _server: Server,
}

impl Hostile {
    /// Starts a server answering each request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Hostile {
        let (listener, host) = server::bind();
        let conns = Connections::new();
        let state =
            Arc::new(State { handler: Box::new(handler), host: host.clone(), requests: Mutex::new(Vec::new()), conns: conns.clone() });
        let serving = state.clone();
        let server = Server::start(listener, &host, conns, move |stream| {
            let _ = serve(&serving, stream);
        });
        Hostile { host, state, _server: server }
    }

    /// The `WWW-Authenticate` of a registry whose token server is this server's `/token`.
    pub fn bearer_challenge(host: &str) -> String {
        format!("Bearer realm=\"http://{host}/token\",service=x")
    }

    /// Request lines received, `METHOD /path?query`, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }
}

fn serve(state: &State, stream: TcpStream) -> io::Result<()> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first)? == 1 && first[0] == 0x16 {
        // A TLS hello on a plain-HTTP port.
        (&stream).write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(());
    }
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    while let Some(head) = read_head(&mut reader)? {
        if state.conns.stopping() {
            return Ok(());
        }
        transfer_body(&mut reader, request_body_kind(&head), None, &mut io::sink(), &mut |_| {})?;
        let (method, target) = head.request_parts();
        state.requests.lock().unwrap().push(format!("{method} {target}"));
        let request = Request { method: method.clone(), target, head, host: state.host.clone() };
        let reply = (state.handler)(&request);
        let write_head = |out: &mut TcpStream, status: u16, headers: &[(String, String)], length: Option<u64>| {
            let mut text = format!("HTTP/1.1 {status} Hostile\r\n");
            for (name, value) in headers {
                text.push_str(&format!("{name}: {value}\r\n"));
            }
            match length {
                Some(n) => text.push_str(&format!("Content-Length: {n}\r\n")),
                None => text.push_str("Connection: close\r\n"),
            }
            text.push_str("\r\n");
            out.write_all(text.as_bytes())
        };
        match reply {
            Reply::Full { status, headers, body } => {
                write_head(&mut out, status, &headers, Some(body.len() as u64))?;
                if method != "HEAD" {
                    out.write_all(&body)?;
                }
            }
            Reply::Endless { status, headers, prefix, fill } => {
                write_head(&mut out, status, &headers, None)?;
                out.write_all(&prefix)?;
                let block = vec![fill; 64 * 1024];
                while !state.conns.stopping() {
                    out.write_all(&block)?;
                }
                return Ok(());
            }
            Reply::Huge { status, headers, length, fill } => {
                write_head(&mut out, status, &headers, Some(length))?;
                let block = vec![fill; 64 * 1024];
                let mut left = length;
                while left > 0 && !state.conns.stopping() {
                    let n = left.min(block.len() as u64) as usize;
                    out.write_all(&block[..n])?;
                    left -= n as u64;
                }
            }
        }
    }
    Ok(())
}
