//! Certificates and keys for the harness, made with the `openssl` CLI: a private CA with a server
//! certificate for `localhost`/`127.0.0.1` (TLS registries), and an RSA key with a self-signed
//! certificate for signing tokens. Short-lived (2 days), never trusted system-wide.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::run_ok;

/// A private CA and a server certificate it signed.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM of the CA certificate.
    pub ca_cert: PathBuf,
    /// A directory holding only `ca.crt` (the CA), for `skopeo --dest-cert-dir` / `--src-cert-dir`.
    pub ca_dir: PathBuf,
    /// PEM server certificate, SAN `DNS:localhost, IP:127.0.0.1`.
    pub server_cert: PathBuf,
    /// PEM server key (unencrypted).
    pub server_key: PathBuf,
}

fn openssl() -> Command {
    let mut cmd = Command::new("openssl");
    cmd.stdin(Stdio::null());
    cmd
}

/// Makes a CA (EC P-256) and a server certificate signed by it, in `dir`.
pub fn make_tls_files(dir: &Path) -> TlsFiles {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = dir.join("ca.key");
    let ca_cert = dir.join("ca.pem");
    run_ok(openssl().args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]).args([
        "-subj",
        "/CN=scratchpack test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        ca_key.to_str().unwrap(),
        "-out",
        ca_cert.to_str().unwrap(),
    ]));
    let server_key = dir.join("server.key");
    let csr = dir.join("server.csr");
    run_ok(openssl().args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]).args([
        "-subj",
        "/CN=localhost",
        "-keyout",
        server_key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
    ]));
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let server_cert = dir.join("server.pem");
    let serial = format!("0x{:x}{:08x}", std::process::id(), crate::support::unix_now() as u32 ^ rand_u32());
    run_ok(openssl().args(["x509", "-req", "-days", "2", "-set_serial", &serial]).args([
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca_cert.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        server_cert.to_str().unwrap(),
    ]));
    let ca_dir = dir.join("certs.d");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::copy(&ca_cert, ca_dir.join("ca.crt")).unwrap();
    TlsFiles { ca_cert, ca_dir, server_cert, server_key }
}

/// An RSA signing key with its self-signed certificate (the token server's; the registry's
/// `rootcertbundle`).
#[derive(Clone, Debug)]
pub struct SigningKey {
    pub key: PathBuf,
    pub cert: PathBuf,
    /// DER of the certificate (for a JWT `x5c` header).
    pub cert_der: Vec<u8>,
    /// libtrust key id of the public key (for a JWT `kid` header).
    pub kid: String,
}

/// Makes an RSA-2048 key and self-signed certificate in `dir`.
pub fn make_signing_key(dir: &Path) -> SigningKey {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join("signing.key");
    let cert = dir.join("signing.pem");
    run_ok(
        openssl()
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=scratchpack test token signer"])
            .args(["-keyout", key.to_str().unwrap(), "-out", cert.to_str().unwrap()]),
    );
    let cert_der = run_ok(openssl().args(["x509", "-outform", "DER", "-in", cert.to_str().unwrap()])).stdout;
    let spki_der = run_ok(openssl().args(["pkey", "-pubout", "-outform", "DER", "-in", key.to_str().unwrap()])).stdout;
    let kid = libtrust_key_id(&spki_der);
    SigningKey { key, cert, cert_der, kid }
}

/// libtrust's key id: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32, in
/// colon-separated groups of four (`ABCD:EFGH:...`, 12 groups).
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let digest = sha256(spki_der);
    let b32 = base32(&digest[..30]);
    b32.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":")
}

/// RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256) of `data` with the PEM key at `key`.
pub fn rs256_sign(key: &Path, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = openssl()
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl (run scripts/install-test-deps.sh)");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "openssl dgst -sign failed: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// SHA-256 of `data` (via `openssl dgst`).
pub fn sha256(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = openssl()
        .args(["dgst", "-sha256", "-binary"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl (run scripts/install-test-deps.sh)");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success() && output.stdout.len() == 32, "openssl dgst -sha256 failed");
    output.stdout
}

/// `sha256:<hex>` of `data`, as a registry digest.
pub fn sha256_digest(data: &[u8]) -> String {
    let hex: String = sha256(data).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u64, 0);
    for &b in data {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::support::unix_now());
    h.finish() as u32
}

#[test]
fn base32_matches_rfc4648() {
    assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    assert_eq!(base32(b"f"), "MY");
}
