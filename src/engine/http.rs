//! A minimal HTTP/1.1 client over a unix socket: one request per connection, a body streamed out
//! in chunks, an answer read back under caps.
//!
//! It speaks what an engine's API needs and no more: a request line, a few headers, an optional
//! chunked body written as it is produced (never assembled in memory), then a status line,
//! headers, and a body framed by `Content-Length`, by chunks, or by the end of the connection.
//! Every line, the number of headers and the body have caps, and every read and write a timeout,
//! so a peer that is no engine, or one that stalls, ends in an error and never in a hang. It knows
//! nothing of images or of what the paths mean.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The longest status or header line read.
const MAX_LINE: u64 = 8 << 10;
/// The most header lines read in one answer.
const MAX_HEADERS: usize = 100;
/// The size of the chunks a streamed body is sent in.
const CHUNK: usize = 256 << 10;

/// What went wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("cannot connect")]
    Connect(#[source] io::Error),
    #[error("sending the request failed")]
    Send(#[source] io::Error),
    /// The body's producer failed (not the connection): the request was cut short on purpose.
    #[error(transparent)]
    Body(io::Error),
    #[error("reading the answer failed")]
    Receive(#[source] io::Error),
    #[error("the connection closed without an answer")]
    NoAnswer,
    #[error("the answer is not HTTP: {0}")]
    Malformed(String),
    #[error("the answer is longer than {limit} bytes")]
    TooLong { limit: u64 },
    /// A broken pipe is told apart: the error edge takes a broken pipe for a closed stdout.
    #[error("the other end closed the connection while the request was being sent")]
    Closed,
}

/// A failed write as an [`HttpError`].
fn send_error(error: io::Error) -> HttpError {
    match error.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => HttpError::Closed,
        _ => HttpError::Send(error),
    }
}

/// A request: method, path (with its query) and, for a body, its content type.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) content_type: Option<&'a str>,
    /// How long one read of the answer may wait: an engine answers a load only once it has
    /// stored the image.
    pub(crate) answer_timeout: Duration,
    /// The most bytes of answer body read.
    pub(crate) body_limit: u64,
}

/// An answer: its status and its whole body (read under the request's cap).
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What writes a request's body, into the connection (framed as chunks).
pub(crate) type BodyWriter<'a> = &'a mut dyn FnMut(&mut dyn Write) -> io::Result<()>;

/// How long one write of a request may wait for the engine to read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);

/// Connects to `socket` and sends `request`. With `body`, the body is whatever `body` writes,
/// sent in chunks as it is written; if `body` fails, the request is cut off before its last
/// chunk, so that the engine sees an incomplete body and refuses it.
pub(crate) fn send(socket: &Path, request: &Request<'_>, body: Option<BodyWriter<'_>>) -> Result<Response, HttpError> {
    let stream = UnixStream::connect(socket).map_err(HttpError::Connect)?;
    exchange(stream, request, body)
}

/// [`send`] over a connected stream.
fn exchange(stream: UnixStream, request: &Request<'_>, body: Option<BodyWriter<'_>>) -> Result<Response, HttpError> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(send_error)?;
    stream.set_read_timeout(Some(request.answer_timeout)).map_err(send_error)?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: scratchpack/{}\r\nConnection: close\r\n",
        request.method,
        request.path,
        env!("CARGO_PKG_VERSION")
    );
    if body.is_some() {
        head.push_str("Transfer-Encoding: chunked\r\n");
        if let Some(content_type) = request.content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
    }
    head.push_str("\r\n");
    let sent = (&stream).write_all(head.as_bytes()).map_err(send_error).and_then(|()| match body {
        Some(body) => send_chunked(&stream, body),
        None => Ok(()),
    });
    match sent {
        Ok(()) => read_response(&stream, request.body_limit),
        // The engine may have answered and closed while the body was still going out (a refusal
        // before reading it all): its answer says more than the broken pipe.
        Err(error @ (HttpError::Send(_) | HttpError::Closed)) => {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            match read_response(&stream, request.body_limit) {
                Err(HttpError::NoAnswer | HttpError::Receive(_)) => Err(error),
                answered => answered,
            }
        }
        Err(other) => Err(other),
    }
}

/// Writes what `body` produces as chunks, then the last chunk.
fn send_chunked(stream: &UnixStream, body: BodyWriter<'_>) -> Result<(), HttpError> {
    let mut chunked = Chunked { out: stream, buf: Vec::with_capacity(CHUNK), failed: None };
    match body(&mut chunked) {
        Ok(()) => chunked.finish().map_err(send_error),
        Err(error) => Err(match chunked.failed.take() {
            Some(sending) => send_error(sending),
            None => HttpError::Body(error),
        }),
    }
}

/// A writer that frames what it is given as HTTP chunks of up to [`CHUNK`] bytes. It remembers
/// a failure of the connection, to tell it from a failure of the producer.
struct Chunked<W: Write> {
    out: W,
    buf: Vec<u8>,
    failed: Option<io::Error>,
}

impl<W: Write> Chunked<W> {
    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let framed = write!(self.out, "{:x}\r\n", self.buf.len())
            .and_then(|()| self.out.write_all(&self.buf))
            .and_then(|()| self.out.write_all(b"\r\n"));
        self.buf.clear();
        framed.map_err(|error| {
            let copy = io::Error::new(error.kind(), error.to_string());
            self.failed = Some(error);
            copy
        })
    }

    fn finish(mut self) -> io::Result<()> {
        self.emit()?;
        self.out.write_all(b"0\r\n\r\n")?;
        self.out.flush()
    }
}

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let taken = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..taken]);
        if self.buf.len() == CHUNK {
            self.emit()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit()?;
        self.out.flush()
    }
}

/// Reads one answer (after any `1xx` interim ones) and its body.
fn read_response(stream: &UnixStream, body_limit: u64) -> Result<Response, HttpError> {
    let mut reader = BufReader::new(stream);
    loop {
        let status_line = read_line(&mut reader)?.ok_or(HttpError::NoAnswer)?;
        let status = parse_status(&status_line)?;
        let headers = read_headers(&mut reader)?;
        if (100..200).contains(&status) {
            continue;
        }
        let header = |name: &str| headers.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        let chunked = header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let body = if status == 204 || status == 304 {
            Vec::new()
        } else if chunked {
            read_chunked(&mut reader, body_limit)?
        } else if let Some(length) = header("content-length") {
            let length: u64 = length.trim().parse().map_err(|_| HttpError::Malformed(format!("Content-Length {length:?}")))?;
            if length > body_limit {
                return Err(HttpError::TooLong { limit: body_limit });
            }
            let mut body = Vec::with_capacity(length as usize);
            (&mut reader).take(length).read_to_end(&mut body).map_err(HttpError::Receive)?;
            if (body.len() as u64) < length {
                return Err(HttpError::Malformed(format!("the body ended after {} of {length} bytes", body.len())));
            }
            body
        } else {
            read_to_close(&mut reader, body_limit)?
        };
        return Ok(Response { status, body });
    }
}

/// One line without its `\r\n`; `None` at the end of the stream.
fn read_line(reader: &mut impl BufRead) -> Result<Option<String>, HttpError> {
    let mut line = Vec::new();
    reader.take(MAX_LINE + 1).read_until(b'\n', &mut line).map_err(HttpError::Receive)?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.len() as u64 > MAX_LINE {
            HttpError::Malformed(format!("a line is longer than {MAX_LINE} bytes"))
        } else {
            HttpError::Malformed("the connection closed in the middle of a line".into())
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map(Some).map_err(|_| HttpError::Malformed("a header line is not UTF-8".into()))
}

fn parse_status(line: &str) -> Result<u16, HttpError> {
    let mut parts = line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        let shown: String = line.chars().take(80).map(|c| if c.is_control() { '?' } else { c }).collect();
        return Err(HttpError::Malformed(format!("the first line is {shown:?}")));
    }
    code.parse().map_err(|_| HttpError::Malformed(format!("status {code:?}")))
}

fn read_headers(reader: &mut impl BufRead) -> Result<Vec<(String, String)>, HttpError> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| HttpError::Malformed("the connection closed in the headers".into()))?;
        if line.is_empty() {
            return Ok(headers);
        }
        if headers.len() == MAX_HEADERS {
            return Err(HttpError::Malformed(format!("more than {MAX_HEADERS} headers")));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| HttpError::Malformed("a header line has no ':'".into()))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
}

fn read_chunked(reader: &mut impl BufRead, limit: u64) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| HttpError::Malformed("the connection closed in a chunked body".into()))?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| HttpError::Malformed(format!("chunk size {size:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            read_headers(reader)?;
            return Ok(body);
        }
        if body.len() as u64 + size > limit {
            return Err(HttpError::TooLong { limit });
        }
        let before = body.len();
        reader.take(size).read_to_end(&mut body).map_err(HttpError::Receive)?;
        if ((body.len() - before) as u64) < size {
            return Err(HttpError::Malformed("the connection closed in a chunk".into()));
        }
        if read_line(reader)? != Some(String::new()) {
            return Err(HttpError::Malformed("a chunk does not end with CRLF".into()));
        }
    }
}

fn read_to_close(reader: &mut impl Read, limit: u64) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    reader.take(limit + 1).read_to_end(&mut body).map_err(HttpError::Receive)?;
    if body.len() as u64 > limit {
        return Err(HttpError::TooLong { limit });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &'static str) -> Request<'static> {
        Request {
            method,
            path: "/images/load?quiet=1",
            content_type: Some("application/x-tar"),
            answer_timeout: Duration::from_secs(5),
            body_limit: 1024,
        }
    }

    /// Runs `serve` on the far end of a socket pair: it gets what the client sent (up to the end
    /// of its request) and returns the answer's bytes.
    fn against(serve: impl FnOnce(Vec<u8>) -> Vec<u8> + Send + 'static, body: Option<&[u8]>) -> (Result<Response, HttpError>, Vec<u8>) {
        let (client, server) = UnixStream::pair().unwrap();
        let (sent_tx, sent_rx) = std::sync::mpsc::channel();
        let peer = std::thread::spawn(move || {
            let mut reader = BufReader::new(&server);
            let mut sent = Vec::new();
            // The head, then (when chunked) up to the last chunk.
            while !sent.ends_with(b"\r\n\r\n") {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line).unwrap() == 0 {
                    break;
                }
                sent.extend(line);
            }
            if String::from_utf8_lossy(&sent).contains("chunked") {
                let start = sent.len();
                while !sent[start..].ends_with(b"0\r\n\r\n") {
                    let mut line = Vec::new();
                    if reader.read_until(b'\n', &mut line).unwrap() == 0 {
                        break;
                    }
                    sent.extend(line);
                }
            }
            let answer = serve(sent.clone());
            (&server).write_all(&answer).unwrap();
            sent_tx.send(sent).unwrap();
        });
        let result = match body {
            Some(bytes) => {
                let bytes = bytes.to_vec();
                exchange(client, &request("POST"), Some(&mut |out: &mut dyn Write| out.write_all(&bytes)))
            }
            None => exchange(client, &request("GET"), None),
        };
        peer.join().unwrap();
        (result, sent_rx.recv().unwrap())
    }

    #[test]
    fn sends_a_chunked_body_and_reads_a_sized_answer() {
        let body = vec![b'x'; CHUNK + 10];
        let (answer, sent) = against(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(), Some(&body));
        let answer = answer.unwrap();
        assert_eq!((answer.status, &answer.body[..]), (200, &b"hello"[..]));
        let sent = String::from_utf8(sent).unwrap();
        let (head, chunks) = sent.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /images/load?quiet=1 HTTP/1.1\r\nHost: localhost\r\n"), "{head}");
        assert!(head.contains("\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-tar"), "{head}");
        let want = format!("{:x}\r\n{}\r\na\r\n{}\r\n0\r\n\r\n", CHUNK, "x".repeat(CHUNK), "x".repeat(10));
        assert!(chunks == want, "chunks differ");
    }

    #[test]
    fn reads_chunked_and_until_close_answers_and_skips_interim_ones() {
        let chunked =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let (answer, _) = against(|_| chunked.to_vec(), None);
        assert_eq!(answer.unwrap().body, b"abcde");
        let (answer, sent) = against(|_| b"HTTP/1.0 500 Oops\r\n\r\n{\"message\":\"no\"}".to_vec(), None);
        let answer = answer.unwrap();
        assert_eq!((answer.status, &answer.body[..]), (500, &b"{\"message\":\"no\"}"[..]));
        assert!(!String::from_utf8(sent).unwrap().contains("Transfer-Encoding"));
    }

    #[test]
    fn refuses_what_is_not_http_or_is_too_long() {
        let cases: Vec<(&[u8], &str)> = vec![
            (b"SSH-2.0-OpenSSH_9.2\r\n", "the answer is not HTTP: the first line is \"SSH-2.0-OpenSSH_9.2\""),
            (b"", "the connection closed without an answer"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n", "the answer is longer than 1024 bytes"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", "the answer is not HTTP: the body ended after 3 of 9 bytes"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "the answer is not HTTP: chunk size \"zz\""),
            (b"HTTP/1.1 200 OK\r\nX: y", "the answer is not HTTP: the connection closed in the middle of a line"),
        ];
        for (answer, want) in cases {
            let answer = answer.to_vec();
            let (result, _) = against(move |_| answer, None);
            assert_eq!(result.unwrap_err().to_string(), want);
        }
        let long_line = [b"HTTP/1.1 200 OK\r\nX: ".to_vec(), vec![b'a'; MAX_LINE as usize + 10]].concat();
        let (result, _) = against(move |_| long_line, None);
        assert_eq!(result.unwrap_err().to_string(), format!("the answer is not HTTP: a line is longer than {MAX_LINE} bytes"));
        let endless = [b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), vec![b'a'; 2000]].concat();
        let (result, _) = against(move |_| endless, None);
        assert!(matches!(result, Err(HttpError::TooLong { limit: 1024 })));
    }

    #[test]
    fn a_failing_producer_cuts_the_request_short() {
        let (client, server) = UnixStream::pair().unwrap();
        let peer = std::thread::spawn(move || {
            let mut sent = Vec::new();
            (&server).read_to_end(&mut sent).unwrap();
            sent
        });
        let result = exchange(
            client,
            &request("POST"),
            Some(&mut |out: &mut dyn Write| {
                out.write_all(b"partial")?;
                Err(io::Error::other("a layer cannot be read"))
            }),
        );
        assert_eq!(result.unwrap_err().to_string(), "a layer cannot be read");
        let sent = String::from_utf8(peer.join().unwrap()).unwrap();
        assert!(!sent.contains("partial") && !sent.ends_with("0\r\n\r\n"), "{sent:?}");
    }

    #[test]
    fn a_silent_peer_times_out() {
        let (client, _server) = UnixStream::pair().unwrap();
        let mut quick = request("GET");
        quick.answer_timeout = Duration::from_millis(50);
        let error = exchange(client, &quick, None).unwrap_err();
        assert!(
            matches!(&error, HttpError::Receive(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
            "{error:?}"
        );
    }
}
