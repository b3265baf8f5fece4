//! Signing: the key a pack signs with, cosign-compatible image signatures (simple signing), DSSE
//! envelopes and in-toto statements, and checking each of them against a public key.
//!
//! Owns the cryptography (RustCrypto's `p256`: ECDSA P-256 over SHA-256, DER signatures) and the
//! shapes of the signed documents. It must not know where they go: pushing and writing are
//! `dest`'s, and what an attestation says about a build is `pack`'s. A pack signs through the
//! [`Signer`] trait only, so that another kind of signer (keyless, with a CI identity) needs no
//! change where signatures are attached.

pub(crate) mod cosign;
pub(crate) mod dsse;
pub(crate) mod key;

pub(crate) use key::{KeySigner, PublicKey, SignError};

/// Whatever signs: bytes in, a signature out, with what a verifier needs to know about the key.
pub(crate) trait Signer: Send + Sync + std::fmt::Debug {
    /// The DER signature (ECDSA over SHA-256 of `payload`).
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignError>;
    /// The public key its signatures verify with.
    fn public_key(&self) -> PublicKey;
    /// The `keyid` DSSE signatures carry; empty, as cosign writes it, when the key has no name.
    fn key_id(&self) -> String {
        String::new()
    }
}
