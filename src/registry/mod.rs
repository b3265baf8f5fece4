//! The registry client: pushes images to any OCI distribution registry over HTTP(S), with no
//! daemon and no other tool.
//!
//! Owns references, credentials, authentication, TLS, retries and the upload protocol. It knows
//! blobs and manifests as bytes with digests; it never knows what an ELF is or how layers are made.

pub mod auth;
pub mod client;
pub mod error;
pub mod progress;
pub mod push;
pub mod reference;
pub mod tag;

pub use client::{Client, ConnectOptions};
pub use error::RegistryError;
pub use reference::{Reference, Registry, Repository};
pub use tag::{Tag, TagError};
