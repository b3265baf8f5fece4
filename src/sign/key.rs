//! Keys: the private key a pack signs with (PKCS#8 PEM, ECDSA P-256, as `openssl genpkey` writes
//! it), and the public key `verify` checks with. A private key never reaches any output: its
//! `Debug` shows the public key's fingerprint only, and no error quotes what was read.

use std::path::Path;

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};

use super::Signer;

/// The most bytes a key file may hold.
const KEY_FILE_CAP: u64 = 64 << 10;
/// The environment variable that holds the private key's PEM itself.
pub(crate) const KEY_ENV: &str = "SCRATCHPACK_SIGN_KEY";

#[derive(Debug, thiserror::Error)]
pub(crate) enum SignError {
    #[error("{what}: cannot read")]
    Read {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    BadKey { what: String, reason: &'static str },
    #[error("signing failed")]
    Sign,
}

impl SignError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            SignError::BadKey { reason, .. } if reason.contains("encrypted") => Some(format!(
                "give the key decrypted through the environment, never on disk: {KEY_ENV}=\"$(openssl pkey -in KEY.pem -passin env:KEY_PASSWORD)\""
            )),
            SignError::BadKey { reason, .. } if reason.contains("private") => {
                Some("make one with: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem".into())
            }
            SignError::BadKey { .. } => Some("the public key of a signing key: openssl pkey -in key.pem -pubout -out key.pub".into()),
            SignError::Read { .. } | SignError::Sign => None,
        }
    }
}

/// Signs with an ECDSA P-256 private key held in memory. Signatures are deterministic (RFC 6979):
/// the same key and payload give the same bytes.
pub(crate) struct KeySigner {
    key: SigningKey,
}

impl std::fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySigner").field("public_key", &self.fingerprint()).field("private_key", &"<redacted>").finish()
    }
}

impl KeySigner {
    /// The key in `path` (`what` names it in errors).
    pub(crate) fn from_file(path: &Path) -> Result<Self, SignError> {
        let what = format!("--sign-key {}", path.display());
        let bytes = crate::input_file::read(path, KEY_FILE_CAP).map_err(|source| SignError::Read { what: what.clone(), source })?;
        let text = String::from_utf8(bytes).map_err(|_| SignError::BadKey { what: what.clone(), reason: NOT_PEM })?;
        Self::from_pem(&text, &what)
    }

    /// The key whose PEM is `text`; `what` names where it came from (never the text itself).
    pub(crate) fn from_pem(text: &str, what: &str) -> Result<Self, SignError> {
        let bad = |reason| SignError::BadKey { what: what.to_string(), reason };
        let text = text.trim();
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || text.contains("ENCRYPTED SIGSTORE PRIVATE KEY") {
            return Err(bad("an encrypted private key, which scratchpack does not decrypt"));
        }
        if text.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(bad("a public key: signing takes the private key"));
        }
        if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            return p256::SecretKey::from_sec1_pem(text)
                .map(|secret| KeySigner { key: SigningKey::from(secret) })
                .map_err(|_| bad("not an ECDSA P-256 private key"));
        }
        if !text.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(bad(NOT_PEM));
        }
        SigningKey::from_pkcs8_pem(text).map(|key| KeySigner { key }).map_err(|_| bad("not an ECDSA P-256 private key"))
    }

    /// `sha256:<hex>` of the public key (DER): names the key without showing it.
    pub(crate) fn fingerprint(&self) -> String {
        PublicKey { key: *self.key.verifying_key() }.fingerprint()
    }
}

const NOT_PEM: &str = "not a PEM private key (PKCS#8, as `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes it)";

impl Signer for KeySigner {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignError> {
        let signature: Signature = self.key.try_sign(payload).map_err(|_| SignError::Sign)?;
        let der: DerSignature = signature.to_der();
        Ok(der.as_bytes().to_vec())
    }

    fn public_key(&self) -> PublicKey {
        PublicKey { key: *self.key.verifying_key() }
    }

    /// The hex SHA-256 of the public key (DER), so that a verifier holding several keys knows
    /// which one to try.
    fn key_id(&self) -> String {
        self.fingerprint().trim_start_matches("sha256:").to_string()
    }
}

/// A public key that signatures are checked against.
#[derive(Clone, Debug)]
pub(crate) struct PublicKey {
    key: VerifyingKey,
}

impl PublicKey {
    pub(crate) fn from_file(path: &Path) -> Result<Self, SignError> {
        let what = format!("--key {}", path.display());
        let bytes = crate::input_file::read(path, KEY_FILE_CAP).map_err(|source| SignError::Read { what: what.clone(), source })?;
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("PRIVATE KEY-----") {
            return Err(SignError::BadKey { what, reason: "a private key: verify takes the public key" });
        }
        VerifyingKey::from_public_key_pem(text.trim())
            .map(|key| PublicKey { key })
            .map_err(|_| SignError::BadKey { what, reason: "not a PEM ECDSA P-256 public key" })
    }

    /// Whether `signature` (DER, or the 64 raw bytes r‖s) signs `payload` with this key.
    pub(crate) fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        let parsed = Signature::from_der(signature).or_else(|_| Signature::from_slice(signature));
        parsed.is_ok_and(|signature| self.key.verify(payload, &signature).is_ok())
    }

    #[cfg(test)]
    pub(crate) fn pem(&self) -> String {
        self.key.to_public_key_pem(p256::pkcs8::LineEnding::LF).expect("a P-256 public key encodes")
    }

    pub(crate) fn fingerprint(&self) -> String {
        let der = self.key.to_public_key_der().expect("a P-256 public key encodes");
        crate::image::Digest::of(der.as_bytes()).to_string()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A throwaway P-256 key, as `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` wrote it.
    pub(crate) const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2/zfPUBatfC5EErG
zgdvWSP2xjj45a/2Pza60n8mdxShRANCAARvIH0zx6BJdEQHXrEJ9/9GV35YD3Bi
krrYjfiP/NGT6sDa3wCqMiIgbmFijYrQLRpbS/m+pNLZm8tomVOP+PNn
-----END PRIVATE KEY-----
";

    #[test]
    fn a_signature_verifies_with_the_public_key_only() {
        let signer = KeySigner::from_pem(TEST_KEY, "test").unwrap();
        let signature = signer.sign(b"payload").unwrap();
        assert_eq!(signature, signer.sign(b"payload").unwrap(), "RFC 6979: deterministic");
        let public = PublicKey { key: VerifyingKey::from_public_key_pem(&signer.public_key().pem()).unwrap() };
        assert!(public.verifies(b"payload", &signature));
        assert!(!public.verifies(b"other", &signature));
        let debug = format!("{signer:?}");
        assert!(debug.contains("<redacted>") && !debug.contains("MIGHAgEA"), "{debug}");
    }

    #[test]
    fn keys_that_are_not_plain_p256_private_keys_are_refused_without_quoting_them() {
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let error = KeySigner::from_pem(encrypted, "SCRATCHPACK_SIGN_KEY").unwrap_err();
        assert_eq!(error.to_string(), "SCRATCHPACK_SIGN_KEY: an encrypted private key, which scratchpack does not decrypt");
        assert!(error.hint().unwrap().contains("openssl pkey"));
        let error = KeySigner::from_pem("MIGHAgEAMBMG", "x").unwrap_err();
        assert!(!error.to_string().contains("MIGH"));
    }
}
