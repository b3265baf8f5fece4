//! The registry client: pushes images to, and pulls them from, any OCI distribution registry over
//! HTTP(S), with no daemon and no other tool.
//!
//! Owns references, credentials, authentication, TLS, retries the upload protocol and the download protocol. It knows
//! blobs and manifests as bytes with digests; it never knows what an ELF is or how layers are made.

pub mod answers;
pub mod auth;
pub(crate) mod client;
pub(crate) mod error;
pub(crate) mod lazy;
pub(crate) mod progress;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod reference;
pub(crate) mod tag;

pub(crate) use client::{Client, ConnectOptions};
pub(crate) use error::RegistryError;
pub use reference::{Reference, Registry, Repository};
pub use tag::Tag;
