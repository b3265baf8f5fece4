//! DSSE envelopes around in-toto Statement v1 documents: the pre-authentication encoding that is
//! signed (`DSSEv1 <len> <type> <len> <body>`), the envelope (`payload` base64, `payloadType`,
//! `signatures`), and checking one against a public key.

use base64::Engine;
use serde_json::{json, Value};

use super::{PublicKey, SignError, Signer};
use crate::image::config::canonical_json;
use crate::image::Digest;

pub(crate) const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub(crate) const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// The bytes a DSSE signature covers.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// An in-toto Statement v1 about `subjects` (name, digest), with `predicate`.
pub(crate) fn statement(subjects: &[(String, Digest)], predicate_type: &str, predicate: Value) -> Vec<u8> {
    let subject: Vec<Value> = subjects.iter().map(|(name, digest)| json!({"name": name, "digest": {"sha256": digest.hex()}})).collect();
    canonical_json(&json!({"_type": STATEMENT_TYPE, "subject": subject, "predicateType": predicate_type, "predicate": predicate}))
}

/// The envelope of `statement`, signed by `signer`; with no signer, an envelope with no signature.
pub(crate) fn envelope(statement: &[u8], signer: Option<&dyn Signer>) -> Result<Vec<u8>, SignError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut signatures = Vec::new();
    if let Some(signer) = signer {
        let signature = signer.sign(&pae(INTOTO_PAYLOAD_TYPE, statement))?;
        signatures.push(json!({"keyid": signer.key_id(), "sig": b64.encode(signature)}));
    }
    Ok(canonical_json(&json!({"payloadType": INTOTO_PAYLOAD_TYPE, "payload": b64.encode(statement), "signatures": signatures})))
}

/// An envelope read back: its statement, and whether one of its signatures is by `key`.
pub(crate) struct Opened {
    pub(crate) statement: Value,
    pub(crate) signed: bool,
    pub(crate) signature_count: usize,
}

pub(crate) fn open(envelope: &[u8], key: &PublicKey) -> Option<Opened> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let value: Value = serde_json::from_slice(envelope).ok()?;
    let payload_type = value.get("payloadType")?.as_str()?;
    let payload = b64.decode(value.get("payload")?.as_str()?).ok()?;
    let signatures = value.get("signatures").and_then(Value::as_array).cloned().unwrap_or_default();
    let signed_bytes = pae(payload_type, &payload);
    let signed = payload_type == INTOTO_PAYLOAD_TYPE
        && signatures.iter().any(|s| {
            s.get("sig").and_then(Value::as_str).and_then(|sig| b64.decode(sig).ok()).is_some_and(|sig| key.verifies(&signed_bytes, &sig))
        });
    Some(Opened { statement: serde_json::from_slice(&payload).ok()?, signed, signature_count: signatures.len() })
}

/// The `sha256` digests a statement names as its subjects.
pub(crate) fn subject_digests(statement: &Value) -> Vec<String> {
    statement["subject"]
        .as_array()
        .map(|subjects| subjects.iter().filter_map(|s| s["digest"]["sha256"].as_str().map(|hex| format!("sha256:{hex}"))).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::key::tests::TEST_KEY;
    use crate::sign::KeySigner;

    #[test]
    fn pae_is_the_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn an_envelope_opens_with_its_key_and_names_its_subjects() {
        let signer = KeySigner::from_pem(TEST_KEY, "test").unwrap();
        let digest = Digest::of(b"m");
        let statement = statement(&[("app".into(), digest)], "https://slsa.dev/provenance/v1", json!({}));
        let key = signer.public_key();
        let opened = open(&envelope(&statement, Some(&signer)).unwrap(), &key).unwrap();
        assert!(opened.signed);
        assert_eq!(subject_digests(&opened.statement), vec![digest.to_string()]);
        let unsigned = open(&envelope(&statement, None).unwrap(), &key).unwrap();
        assert!(!unsigned.signed && unsigned.signature_count == 0);
    }
}
