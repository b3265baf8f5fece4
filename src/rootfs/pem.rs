//! CA certificate PEM files (`--extra-ca`, `--ca-bundle PATH`, `--ca-bundle host`): which bytes of
//! them may go into an image.
//!
//! Only `CERTIFICATE` blocks whose content parses as one whole X.509 certificate are kept, and
//! they are written out again from the parsed DER (`-----BEGIN CERTIFICATE-----`, base64 in lines
//! of 64, `-----END CERTIFICATE-----`): what `openssl x509` writes, so a bundle already in that form
//! goes in byte for byte. Text between blocks (comments, `subject=` lines) is left out. Any other
//! block is refused rather than skipped: a private key (`server.pem` holds the certificate and its
//! key) must never reach an image, and a block that is not what it says is a mistake to report.
//!
//! Owns the parsing only; which files are read, and how, is `base`'s.

use base64::Engine;

/// The base64 engine of PEM bodies: padded, no stray trailing bits.
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";
/// Longer labels are not PEM labels (RFC 7468 ones are a few words).
const MAX_LABEL: usize = 64;

/// Why a PEM file's certificates are refused. Block numbers count every `BEGIN` line from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("no PEM certificate in it (expected -----BEGIN CERTIFICATE----- blocks)")]
    NoCertificate,
    #[error("block {block} (line {line}) is a private key (-----BEGIN {label}-----); a private key is never copied into an image")]
    PrivateKey { block: usize, line: usize, label: String },
    #[error("block {block} (line {line}) is a {label}, not a certificate; only CERTIFICATE blocks are accepted")]
    NotCertificate { block: usize, line: usize, label: String },
    #[error("block {block} (line {line}) is not an X.509 certificate: {reason}")]
    BadCertificate { block: usize, line: usize, reason: String },
    #[error("line {line}: {problem}")]
    Malformed { line: usize, problem: String },
}

impl PemError {
    /// What to do about it; `file` is the file's name as the user gave it.
    pub(crate) fn hint(&self, file: &str) -> String {
        match self {
            PemError::NoCertificate => "convert DER certificates with `openssl x509 -inform der -in CERT -out CERT.pem`".into(),
            PemError::PrivateKey { .. } => format!("give the certificate alone, e.g. `openssl x509 -in {file} -out ca.pem`"),
            PemError::NotCertificate { .. } => {
                format!("keep only the -----BEGIN CERTIFICATE----- blocks, e.g. `openssl x509 -in {file} -out ca.pem` for the first one")
            }
            PemError::BadCertificate { .. } | PemError::Malformed { .. } => {
                format!("see what openssl makes of it: `openssl storeutl -certs -noout -text {file}`")
            }
        }
    }
}

/// The certificates of a PEM file, as PEM text of exactly their DER (see the module doc), or why
/// the file is refused. A file with no certificate at all is refused too.
pub fn certificate_pem(data: &[u8]) -> Result<Vec<u8>, PemError> {
    let blocks = blocks(data)?;
    if let Some(key) = blocks.iter().find(|b| is_private_key(&b.label)) {
        return Err(PemError::PrivateKey { block: key.number, line: key.line, label: key.label.clone() });
    }
    let mut out = Vec::new();
    for block in &blocks {
        if block.label != "CERTIFICATE" {
            return Err(PemError::NotCertificate { block: block.number, line: block.line, label: block.label.clone() });
        }
        let bad = |reason: String| PemError::BadCertificate { block: block.number, line: block.line, reason };
        let der = BASE64.decode(&block.body).map_err(|e| bad(format!("its base64 does not decode ({e})")))?;
        match x509_parser::parse_x509_certificate(&der) {
            Ok(([], _)) => {}
            Ok((rest, _)) => return Err(bad(format!("{} bytes follow the certificate", rest.len()))),
            Err(x509_parser::nom::Err::Incomplete(_)) => return Err(bad("its DER is cut short".into())),
            Err(x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e)) => {
                return Err(bad(format!("its DER does not parse ({e})")))
            }
        }
        encode(&der, &mut out);
    }
    if out.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(out)
}

fn is_private_key(label: &str) -> bool {
    label.contains("PRIVATE KEY")
}

/// One `BEGIN`…`END` block: its label, the line of its `BEGIN`, and its body without whitespace.
#[derive(Debug)]
struct Block {
    number: usize,
    line: usize,
    label: String,
    body: Vec<u8>,
}

/// The file's blocks. A structural error (a block left open, an `END` that closes nothing) is
/// returned only when no block is a private key: that is the error a user must see first.
fn blocks(data: &[u8]) -> Result<Vec<Block>, PemError> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut open: Option<Block> = None;
    let mut first_error: Option<PemError> = None;
    let mut fail = |error: PemError| {
        first_error.get_or_insert(error);
    };
    for (index, raw) in data.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let text = raw.trim_ascii();
        match marker(text) {
            Marker::None => {
                if let Some(block) = &mut open {
                    if text.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=') {
                        block.body.extend_from_slice(text);
                    } else {
                        let problem = format!("a line that is not base64 inside the block of line {}", block.line);
                        fail(PemError::Malformed { line, problem });
                        // The rest of this block cannot be trusted; keep looking for keys.
                        blocks.push(open.take().expect("a block is open"));
                    }
                }
            }
            Marker::Begin(label) => {
                if let Some(block) = open.take() {
                    fail(PemError::Malformed {
                        line,
                        problem: format!("a BEGIN line inside the block of line {}, which has no END", block.line),
                    });
                    blocks.push(block);
                }
                open = Some(Block { number: blocks.len() + 1, line, label, body: Vec::new() });
            }
            Marker::End(label) => match open.take() {
                Some(block) if block.label == label => blocks.push(block),
                Some(block) => {
                    let problem =
                        format!("-----END {label}----- does not close the -----BEGIN {}----- of line {}", block.label, block.line);
                    fail(PemError::Malformed { line, problem });
                    blocks.push(block);
                }
                None => fail(PemError::Malformed { line, problem: "an END line outside any block".into() }),
            },
            Marker::Bad(what) => fail(PemError::Malformed { line, problem: format!("a malformed {what} line") }),
        }
    }
    if let Some(block) = open.take() {
        fail(PemError::Malformed { line: block.line, problem: "this BEGIN line has no END line".into() });
        blocks.push(block);
    }
    match first_error {
        Some(error) if !blocks.iter().any(|b| is_private_key(&b.label)) => Err(error),
        _ => Ok(blocks),
    }
}

enum Marker {
    None,
    Begin(String),
    End(String),
    /// Starts like a marker but is not one: `BEGIN` or `END`.
    Bad(&'static str),
}

/// What a line (trimmed) is: an encapsulation boundary of RFC 7468, or not. Labels are printed in
/// errors, so only plain ones (capitals, digits, spaces, `-`) are labels.
fn marker(line: &[u8]) -> Marker {
    let (rest, kind) = if let Some(rest) = line.strip_prefix(BEGIN.as_bytes()) {
        (rest, "BEGIN")
    } else if let Some(rest) = line.strip_prefix(END.as_bytes()) {
        (rest, "END")
    } else {
        return Marker::None;
    };
    let Some(label) = rest.strip_suffix(DASHES.as_bytes()) else { return Marker::Bad(kind) };
    let plain = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' ' || *b == b'-';
    if label.is_empty() || label.len() > MAX_LABEL || !label.iter().all(plain) || label.ends_with(b"-") {
        return Marker::Bad(kind);
    }
    let label = String::from_utf8(label.to_vec()).expect("ASCII");
    if kind == "BEGIN" {
        Marker::Begin(label)
    } else {
        Marker::End(label)
    }
}

/// `der` as a PEM certificate block, lines of 64 characters, each ending with `\n`.
fn encode(der: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
    for line in BASE64.encode(der).as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END CERTIFICATE-----\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::base::BUILTIN_CA_BUNDLE;

    /// The builtin bundle's first certificate, as its own PEM block.
    fn first_cert() -> String {
        let text = std::str::from_utf8(BUILTIN_CA_BUNDLE).unwrap();
        let end = text.find("-----END CERTIFICATE-----\n").unwrap() + "-----END CERTIFICATE-----\n".len();
        text[..end].to_string()
    }

    fn body(pem: &str) -> &str {
        pem.trim_start_matches("-----BEGIN CERTIFICATE-----\n").trim_end_matches("-----END CERTIFICATE-----\n")
    }

    #[test]
    fn the_builtin_bundle_goes_through_byte_for_byte() {
        assert_eq!(certificate_pem(BUILTIN_CA_BUNDLE).unwrap(), BUILTIN_CA_BUNDLE);
        assert_eq!(blocks(BUILTIN_CA_BUNDLE).unwrap().len(), BUILTIN_CA_BUNDLE.windows(11).filter(|w| w == b"-----BEGIN ").count());
    }

    #[test]
    fn text_between_blocks_is_dropped_and_blocks_are_rewrapped() {
        let cert = first_cert();
        let one_line: String = body(&cert).lines().collect();
        let input = format!(
            "# Issuer: a comment\r\nsubject=CN = x\r\n-----BEGIN CERTIFICATE-----\r\n{one_line}\r\n  -----END CERTIFICATE-----  \r\n\ntrailing words\n\
             -----BEGIN CERTIFICATE-----\n\n{}-----END CERTIFICATE-----",
            body(&cert)
        );
        assert_eq!(String::from_utf8(certificate_pem(input.as_bytes()).unwrap()).unwrap(), format!("{cert}{cert}"));
    }

    #[test]
    fn private_keys_of_every_kind_are_refused_first() {
        let cert = first_cert();
        for label in ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY"] {
            let input = format!("{cert}-----BEGIN {label}-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END {label}-----\n");
            assert_eq!(
                certificate_pem(input.as_bytes()),
                Err(PemError::PrivateKey { block: 2, line: 1 + cert.lines().count(), label: label.into() }),
                "{label}"
            );
        }
        // Even when an earlier block is broken, or the key's own block is never closed.
        let input =
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n";
        let error = certificate_pem(input.as_bytes()).unwrap_err();
        assert_eq!(error, PemError::PrivateKey { block: 2, line: 4, label: "RSA PRIVATE KEY".into() });
        assert_eq!(
            error.to_string(),
            "block 2 (line 4) is a private key (-----BEGIN RSA PRIVATE KEY-----); a private key is never copied into an image"
        );
        assert_eq!(error.hint("server.pem"), "give the certificate alone, e.g. `openssl x509 -in server.pem -out ca.pem`");
    }

    #[test]
    fn junk_and_other_blocks_are_refused_with_their_number() {
        let cert = first_cert();
        let junk = format!("{cert}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let error = certificate_pem(junk.as_bytes()).unwrap_err();
        let PemError::BadCertificate { block: 2, line, ref reason } = error else { panic!("{error:?}") };
        assert_eq!(line, 1 + cert.lines().count());
        assert!(reason.starts_with("its DER does not parse ("), "{reason}");
        assert!(error.to_string().starts_with(&format!("block 2 (line {line}) is not an X.509 certificate: its DER does not parse")));

        let not_base64 = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n";
        assert!(
            matches!(certificate_pem(not_base64.as_bytes()), Err(PemError::BadCertificate { block: 1, line: 1, ref reason }) if reason.starts_with("its base64 does not decode"))
        );

        // A certificate with bytes after it is not one certificate.
        let der = BASE64.decode(body(&cert).replace('\n', "")).unwrap();
        let mut padded = Vec::new();
        encode(&[der, vec![0, 0]].concat(), &mut padded);
        assert_eq!(
            certificate_pem(&padded),
            Err(PemError::BadCertificate { block: 1, line: 1, reason: "2 bytes follow the certificate".into() })
        );

        let crl = format!("{cert}-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n");
        let error = certificate_pem(crl.as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("block 2 (line {}) is a X509 CRL, not a certificate; only CERTIFICATE blocks are accepted", 1 + cert.lines().count())
        );
        let trusted = "-----BEGIN TRUSTED CERTIFICATE-----\nAAAA\n-----END TRUSTED CERTIFICATE-----\n";
        assert!(matches!(certificate_pem(trusted.as_bytes()), Err(PemError::NotCertificate { block: 1, .. })));
    }

    #[test]
    fn block_structure_errors_name_the_line() {
        let cert = first_cert();
        // The tails follow the certificate: their line N is the file's line `before + N`, and
        // `{first}` is the tail's first line in the file.
        let before = cert.lines().count();
        let cases: &[(&str, usize, &str)] = &[
            ("-----BEGIN CERTIFICATE-----\nAAAA\n", 1, "this BEGIN line has no END line"),
            ("-----END CERTIFICATE-----\n", 1, "an END line outside any block"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n",
                3,
                "-----END X509 CRL----- does not close the -----BEGIN CERTIFICATE----- of line {first}",
            ),
            (
                "-----BEGIN CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n",
                2,
                "a BEGIN line inside the block of line {first}, which has no END",
            ),
            ("-----BEGIN CERTIFICATE\n", 1, "a malformed BEGIN line"),
            ("-----BEGIN \x1b[31mX-----\n", 1, "a malformed BEGIN line"),
            ("-----END -----\n", 1, "a malformed END line"),
            (
                "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n-----END CERTIFICATE-----\n",
                2,
                "a line that is not base64 inside the block of line {first}",
            ),
        ];
        for (tail, line_in_tail, problem) in cases {
            let input = format!("{cert}{tail}");
            let problem = problem.replace("{first}", &(before + 1).to_string());
            assert_eq!(certificate_pem(input.as_bytes()), Err(PemError::Malformed { line: before + line_in_tail, problem }), "{tail:?}");
        }
    }

    #[test]
    fn no_certificate_is_an_error() {
        for input in ["", "not a cert", "# -----BEGIN CERTIFICATE-----", "\n\n"] {
            assert_eq!(certificate_pem(input.as_bytes()), Err(PemError::NoCertificate), "{input:?}");
        }
        assert_eq!(PemError::NoCertificate.hint("x"), "convert DER certificates with `openssl x509 -inform der -in CERT -out CERT.pem`");
    }
}
