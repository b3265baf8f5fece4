//! Minimal HTTP/1.1 pieces on `std::net`: message heads, body framing (Content-Length, chunked,
//! close-delimited), and a tiny client for raw requests in tests. Shared by the token server and
//! the fault proxy. Plain HTTP only, 127.0.0.1 only.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Longest message head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Read/write timeout of the test client.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// A parsed start line plus headers, in order, names as received.
#[derive(Clone, Debug)]
pub struct Head {
    pub start_line: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Request line parts: (method, target). Empty strings if malformed.
    pub fn request_parts(&self) -> (String, String) {
        let mut parts = self.start_line.split(' ');
        (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string())
    }

    /// Status code of a response head (0 if malformed).
    pub fn status(&self) -> u16 {
        self.start_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    /// Whether the message asks to close the connection after it (`Connection: close`, or HTTP/1.0
    /// without keep-alive).
    pub fn wants_close(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if connection.split(',').any(|t| t.trim() == "close") {
            return true;
        }
        self.start_line.contains("HTTP/1.0") && !connection.split(',').any(|t| t.trim() == "keep-alive")
    }

    /// Serializes the head back to bytes (CRLF line endings, blank line at the end).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(self.start_line.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// The first value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Reads one message head. `Ok(None)` on a clean end of stream before its first byte.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            if lines.is_empty() && total == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of stream inside a message head"));
        }
        total += n;
        if total > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "message head too long"));
        }
        let text = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string();
        if text.is_empty() {
            if lines.is_empty() {
                continue; // tolerate stray CRLF between messages
            }
            break;
        }
        lines.push(text);
    }
    let start_line = lines.remove(0);
    let headers = lines.into_iter().filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))).collect();
    Ok(Some(Head { start_line, headers }))
}

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn is_chunked(head: &Head) -> bool {
    head.header("transfer-encoding").is_some_and(|te| te.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked")))
}

/// Body framing of a request: chunked, Content-Length, or none.
pub fn request_body_kind(head: &Head) -> BodyKind {
    if is_chunked(head) {
        BodyKind::Chunked
    } else {
        match head.header("content-length").and_then(|v| v.parse::<u64>().ok()) {
            Some(0) | None => BodyKind::None,
            Some(n) => BodyKind::Length(n),
        }
    }
}

/// Body framing of a response to `method`: none for HEAD, 1xx, 204 and 304.
pub fn response_body_kind(method: &str, head: &Head) -> BodyKind {
    let status = head.status();
    if method.eq_ignore_ascii_case("HEAD") || (100..200).contains(&status) || status == 204 || status == 304 {
        BodyKind::None
    } else if is_chunked(head) {
        BodyKind::Chunked
    } else {
        match head.header("content-length").and_then(|v| v.parse::<u64>().ok()) {
            Some(0) => BodyKind::None,
            Some(n) => BodyKind::Length(n),
            None => BodyKind::UntilClose,
        }
    }
}

/// Moves one body from `src`: its bytes exactly as framed go to `raw_out` (for forwarding), its
/// payload goes to `data_out`. Stops after `limit` payload bytes if given. Returns whether the body
/// was complete (false when cut by `limit`).
pub fn transfer_body(
    src: &mut impl BufRead,
    kind: BodyKind,
    limit: Option<u64>,
    raw_out: &mut dyn Write,
    data_out: &mut dyn FnMut(&[u8]),
) -> io::Result<bool> {
    let mut budget = limit.unwrap_or(u64::MAX);
    let mut buf = vec![0u8; 64 * 1024];
    let mut copy = |src: &mut dyn BufRead, n: Option<u64>, budget: &mut u64, raw_out: &mut dyn Write| {
        copy_payload(src, n, budget, &mut buf, raw_out, data_out)
    };
    match kind {
        BodyKind::None => Ok(true),
        BodyKind::Length(n) => copy(src, Some(n), &mut budget, raw_out),
        BodyKind::UntilClose => copy(src, None, &mut budget, raw_out),
        BodyKind::Chunked => loop {
            let mut line = Vec::new();
            if src.read_until(b'\n', &mut line)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of stream inside a chunked body"));
            }
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size line {text:?}")))?;
            if size > 0 && budget == 0 {
                return Ok(false);
            }
            raw_out.write_all(&line)?;
            if size == 0 {
                // Trailer section, up to the blank line.
                loop {
                    let mut trailer = Vec::new();
                    if src.read_until(b'\n', &mut trailer)? == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of stream inside chunked trailers"));
                    }
                    raw_out.write_all(&trailer)?;
                    if trailer == b"\r\n" || trailer == b"\n" {
                        return Ok(true);
                    }
                }
            }
            if !copy(src, Some(size), &mut budget, raw_out)? {
                return Ok(false);
            }
            let mut crlf = Vec::new();
            src.read_until(b'\n', &mut crlf)?;
            raw_out.write_all(&crlf)?;
        },
    }
}

/// Copies up to `n` payload bytes (all of them until end of stream if `n` is None) within
/// `budget`; false if cut by the budget.
fn copy_payload(
    src: &mut dyn BufRead,
    n: Option<u64>,
    budget: &mut u64,
    buf: &mut [u8],
    raw_out: &mut dyn Write,
    data_out: &mut dyn FnMut(&[u8]),
) -> io::Result<bool> {
    let mut left = n.unwrap_or(u64::MAX);
    while left > 0 {
        if *budget == 0 {
            return Ok(false);
        }
        let want = left.min(*budget).min(buf.len() as u64) as usize;
        let got = src.read(&mut buf[..want])?;
        if got == 0 {
            if n.is_none() {
                return Ok(true);
            }
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of stream inside a body"));
        }
        raw_out.write_all(&buf[..got])?;
        data_out(&buf[..got]);
        left -= got as u64;
        *budget -= got as u64;
    }
    Ok(true)
}

/// A response read by the test client.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One keep-alive client connection to `127.0.0.1:PORT`, for raw requests in tests.
pub struct HttpConnection {
    host: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl HttpConnection {
    /// Connects to `host` (`127.0.0.1:PORT`; anything else is refused).
    pub fn connect(host: &str) -> io::Result<HttpConnection> {
        assert!(host.starts_with("127.0.0.1:"), "tests only ever target 127.0.0.1, not {host}");
        let stream = TcpStream::connect(host)?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(HttpConnection { host: host.to_string(), reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    /// Sends one request (adding Host, and Content-Length when there is a body or the method is
    /// PUT/POST/PATCH, unless `headers` set framing) and reads the response.
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<HttpResponse> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let framed = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding"));
        if !framed && (!body.is_empty() || matches!(method, "PUT" | "POST" | "PATCH")) {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut message = head.into_bytes();
        message.extend_from_slice(body);
        self.writer.write_all(&message)?;
        self.writer.flush()?;
        self.read_response(method)
    }

    /// Reads one response to a request made with `method` (after writing a request by hand with
    /// [`HttpConnection::stream`]).
    pub fn read_response(&mut self, method: &str) -> io::Result<HttpResponse> {
        loop {
            let head = read_head(&mut self.reader)?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"))?;
            let status = head.status();
            if (100..200).contains(&status) {
                continue;
            }
            let mut body = Vec::new();
            let kind = response_body_kind(method, &head);
            transfer_body(&mut self.reader, kind, None, &mut io::sink(), &mut |d| body.extend_from_slice(d))?;
            return Ok(HttpResponse { status, headers: head.headers, body });
        }
    }

    /// The raw stream, to write requests by hand (chunked bodies, partial writes...).
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.writer
    }
}

/// One request on a fresh connection (`Connection: close`). `host` is `127.0.0.1:PORT`; `path` is
/// the request target (path and query), or an absolute `http://127.0.0.1:PORT/...` URL whose
/// host must equal `host` (handy with `Location` headers).
pub fn http_request(host: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<HttpResponse> {
    let target = match path.strip_prefix("http://") {
        Some(rest) => {
            let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            assert_eq!(authority, host, "absolute URL {path} is not on {host}");
            if target.is_empty() {
                "/"
            } else {
                target
            }
        }
        None => path,
    };
    let mut all = headers.to_vec();
    all.push(("Connection", "close"));
    HttpConnection::connect(host)?.send(method, target, &all, body)
}

/// Reads a whole request body into memory (for the token server's forms).
pub fn read_request_body(reader: &mut impl BufRead, head: &Head) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    transfer_body(reader, request_body_kind(head), None, &mut io::sink(), &mut |d| body.extend_from_slice(d))?;
    Ok(body)
}
