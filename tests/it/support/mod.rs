//! Test harness for registry integration tests: real `docker-registry` (distribution 2.8) instances
//! on 127.0.0.1 (plain, TLS with a private CA, htpasswd, bearer tokens), a small token server, and a
//! fault-injecting HTTP/1.1 proxy. Everything binds 127.0.0.1 on a free port, keeps its files under
//! `CARGO_TARGET_TMPDIR`, and stops when its handle is dropped. No new crates: certificates and JWT
//! signatures come from the `openssl` CLI, HTTP is plain `std::net`.
//!
//! `tests/it/harness.rs` proves these helpers against skopeo.

#![allow(dead_code)]

pub mod containerd;
pub mod hostile;
pub mod http;
pub mod pki;
pub mod podman;
pub mod proxy;
pub mod registry;
pub mod server;
pub mod token;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

// Re-exports for tests (`use crate::support::*`); not all used yet.
#[allow(unused_imports)]
pub use http::{http_request, HttpResponse};
pub use proxy::{Fault, FaultProxy};
pub use registry::{start_upload_raw, upload_blob_raw, Registry, RegistryAuth, RegistryOptions};
#[allow(unused_imports)]
pub use token::{JwtKeyHeader, TokenServer, TokenServerConfig};

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed). Another process
/// may take it before it is used: callers that hand it to a child process retry on failure.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// Packs the static C hello fixture with the project's binary into an OCI layout at `dir` (tag
/// `latest`) and returns the skopeo reference `oci:DIR:latest`.
pub fn sample_oci_layout(dir: &Path) -> String {
    let reference = format!("oci:{}:latest", dir.display());
    let hello = crate::util::static_c_hello();
    crate::util::run_ok(crate::util::scratchpack().arg("pack").arg(&hello).args(["--output", &reference]));
    reference
}

/// Runs skopeo with `args`; returns (success, stdout + stderr). For tests that expect failures.
pub fn skopeo(args: &[&str]) -> (bool, String) {
    let output = Command::new("skopeo").args(args).output().expect("skopeo (run scripts/install-test-deps.sh)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64_std(data: &[u8]) -> String {
    base64_with(data, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", true)
}

/// URL-safe base64 without padding (RFC 4648 §5), as JWTs use.
pub fn base64_url(data: &[u8]) -> String {
    base64_with(data, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", false)
}

fn base64_with(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = chunk.len() + 1;
        for i in 0..4 {
            if i < symbols {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard or URL-safe base64, padded or not. `None` on a bad symbol.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Percent-decodes a URL query component (`+` is a space).
pub fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `a=1&b=2&b=3` into decoded pairs, in order.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(p), String::new()),
        })
        .collect()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// `secs` since the epoch as RFC 3339 UTC (`2024-01-02T03:04:05Z`): the crate's own formatter.
pub fn rfc3339(secs: u64) -> String {
    scratchpack::image::config::rfc3339(secs)
}

#[test]
fn helpers_encode_and_decode() {
    assert_eq!(base64_std(b"foob"), "Zm9vYg==");
    assert_eq!(base64_std(b"fooba"), "Zm9vYmE=");
    assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    assert_eq!(base64_decode("Zm9vYmE=").unwrap(), b"fooba");
    assert_eq!(base64_decode("-_8").unwrap(), [0xfb, 0xff]);
    assert_eq!(url_decode("repository%3Atest%2Fapp%3Apull%2Cpush"), "repository:test/app:pull,push");
    assert_eq!(url_decode("a+b%"), "a b%");
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
}
