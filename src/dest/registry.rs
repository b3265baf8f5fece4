//! `docker://HOST/REPO[:TAG]`: push to a registry. The line printed for it is `HOST/REPO@sha256:…`,
//! so `IMAGE=$(scratchpack pack …)` works in CD.
//!
//! Blobs this run pushed are remembered per registry, so a second repository on the same registry
//! mounts them instead of uploading them again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{DestError, Destination, Published};
use crate::image::{Digest, ImageOrIndex};
use crate::registry::auth::credentials::Lookup;
use crate::registry::auth::Secret;
use crate::registry::push::{self, PushSet};
use crate::registry::{progress, Client, ConnectOptions, Reference, Registry, Tag};

/// Which repository of each registry holds a blob, learnt while pushing.
#[derive(Default)]
pub(crate) struct MountBook {
    known: HashMap<Registry, HashMap<Digest, String>>,
}

/// What every registry destination of one run shares.
#[derive(Clone)]
pub(crate) struct RegistryContext {
    pub(crate) connect: ConnectOptions,
    pub(crate) creds_flag: Option<Secret>,
    pub(crate) quiet: bool,
    pub(crate) mounts: Arc<Mutex<MountBook>>,
}

impl std::fmt::Debug for RegistryContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryContext")
            .field("connect", &self.connect)
            .field("creds_flag", &self.creds_flag)
            .field("quiet", &self.quiet)
            .finish()
    }
}

impl Default for RegistryContext {
    fn default() -> Self {
        RegistryContext {
            connect: ConnectOptions::default(),
            creds_flag: None,
            quiet: false,
            mounts: Arc::new(Mutex::new(MountBook::default())),
        }
    }
}

pub(crate) struct RegistryDestination {
    reference: Reference,
    tags: Vec<Tag>,
    context: RegistryContext,
}

impl RegistryDestination {
    pub(crate) fn new(reference: Reference, tags: Vec<Tag>, context: RegistryContext) -> Self {
        RegistryDestination { reference, tags, context }
    }

    /// Pushes a set of blobs and manifests, then its attachments as referrers (the tag schema
    /// where the registry has no referrers API); names it `HOST/REPO@DIGEST`.
    pub(crate) fn push_set_with(&self, set: &PushSet, attachments: &[crate::image::referrers::Attachment]) -> Result<Published, DestError> {
        let repository = &self.reference.repository;
        let wrap = |source| DestError::Registry { reference: self.reference.to_string(), source: Box::new(source) };
        let env = |name: &str| std::env::var(name).ok();
        let lookup = Lookup { creds_flag: self.context.creds_flag.as_ref(), env: &env };
        let credential = lookup.find(repository).map_err(|e| wrap(e.into()))?;
        let mount_from: HashMap<Digest, String> = {
            let book = self.context.mounts.lock().expect("mount book");
            let known = book.known.get(&repository.registry);
            set.blobs.iter().filter_map(|b| known.and_then(|k| k.get(&b.digest)).map(|repo| (b.digest, repo.clone()))).collect()
        };
        let mut scopes = vec![format!("repository:{}:push,pull", repository.path)];
        for source in mount_from.values() {
            let scope = format!("repository:{source}:pull");
            if source != &repository.path && !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        let client = Client::connect(repository.registry.clone(), credential, scopes, &self.context.connect).map_err(wrap)?;
        let reporter = progress::for_stderr(self.context.quiet, &repository.to_string());
        push::push(&client, &repository.path, set, &self.tags, &mount_from, reporter.as_ref()).map_err(wrap)?;
        push::push_referrers(&client, &repository.path, attachments, reporter.as_ref()).map_err(wrap)?;
        let mut book = self.context.mounts.lock().expect("mount book");
        let known = book.known.entry(repository.registry.clone()).or_default();
        for blob in &set.blobs {
            known.entry(blob.digest).or_insert_with(|| repository.path.clone());
        }
        Ok(Published { reference: repository.to_string(), digest: set.root.digest })
    }
}

impl Destination for RegistryDestination {
    fn publish(&mut self, image: &ImageOrIndex, attachments: &[crate::image::referrers::Attachment]) -> Result<Published, DestError> {
        self.push_set_with(&PushSet::from_image(image), attachments)
    }
}
