//! The registry client: pushes images to any OCI distribution registry over HTTP(S), with no
//! daemon and no other tool, and reads back the manifests and small blobs that checking
//! signatures needs (`fetch`).
//!
//! Owns references, credentials, authentication, TLS, retries and the upload protocol. It knows
//! blobs and manifests as bytes with digests; it never knows what an ELF is or how layers are made.

pub mod answers;
pub mod auth;
pub(crate) mod client;
pub(crate) mod error;
pub(crate) mod fetch;
pub(crate) mod progress;
pub(crate) mod push;
pub(crate) mod reference;
pub(crate) mod tag;

pub(crate) use client::{Client, ConnectOptions};
pub(crate) use error::RegistryError;
pub use reference::{Reference, Registry, Repository};
pub use tag::Tag;
