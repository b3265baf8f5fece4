//! `docker-daemon:[REF]` and `podman:[REF]`: the image loaded into a local engine, as `docker
//! load` would, with no archive file in between.
//!
//! The docker archive is written straight into the engine's load request, layer by layer, so
//! memory does not grow with the image. An engine holds one platform under a name: from a
//! multi-platform pack, the engine's own platform is loaded, and the result line names it. The
//! engine itself (socket, API, errors) is the `engine` module's; this only chooses what to load.

use super::docker_archive::{stored_images, write_archive};
use super::{DestError, Destination, Published};
use crate::engine::{Engine, EngineKind, EnginePlatform};
use crate::image::referrers::Attachment;
use crate::image::stored::StoredImage;
use crate::image::{Image, ImageOrIndex};
use crate::registry::Reference;

pub(crate) struct EngineDestination {
    kind: EngineKind,
    /// The names the image gets (`NAME:TAG`), in the order given.
    references: Vec<String>,
}

impl EngineDestination {
    pub(crate) fn new(kind: EngineKind, references: Vec<String>) -> Self {
        EngineDestination { kind, references }
    }

    fn scheme(&self) -> &'static str {
        match self.kind {
            EngineKind::Docker => "docker-daemon",
            EngineKind::Podman => "podman",
        }
    }
}

/// The image of `packed` an engine on `platform` runs: the only one, or the one of its platform.
fn image_for<'a>(packed: &'a ImageOrIndex, platform: &EnginePlatform) -> Option<&'a Image> {
    match packed.images() {
        [only] => Some(only),
        images => images.iter().find(|i| i.platform.os == platform.os && i.platform.architecture == platform.architecture),
    }
}

impl Destination for EngineDestination {
    /// `copy` into an engine: the engine's platform, as from a pack.
    fn publish_stored(&mut self, stored: &StoredImage) -> Result<Published, DestError> {
        let mut images = stored_images(stored)?;
        let image = match images.len() {
            1 => ImageOrIndex::Image(images.remove(0)),
            _ => ImageOrIndex::Index { index: stored.root.clone(), images },
        };
        self.publish(&image, &[])
    }

    /// An engine's image store has no place for referrers: attachments are left out.
    fn publish(&mut self, packed: &ImageOrIndex, _attachments: &[Attachment]) -> Result<Published, DestError> {
        for reference in &self.references {
            reference.parse::<Reference>().map_err(|source| DestError::EngineName {
                scheme: self.scheme(),
                name: reference.clone(),
                source: Box::new(source),
            })?;
        }
        let engine = Engine::from_env(self.kind)?;
        let platform = engine.platform()?;
        let image = image_for(packed, &platform).ok_or_else(|| DestError::EnginePlatform {
            engine: self.kind.name(),
            socket: engine.socket.clone(),
            platform: platform.to_string(),
            packed: packed.images().iter().map(|i| i.platform.to_string()).collect(),
        })?;
        let references = &self.references;
        engine.load(&mut |out| write_archive(image, references, out).map(drop))?;
        Ok(Published {
            reference: format!("{}:{}", self.scheme(), self.references[0]),
            digest: image.manifest.digest,
            platform: Some(image.platform.to_string()),
        })
    }
}
