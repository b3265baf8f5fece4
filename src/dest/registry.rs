//! `docker://HOST/REPO[:TAG]`: push to a registry. The line printed for it is `HOST/REPO@sha256:…`,
//! so `IMAGE=$(scratchpack pack …)` works in CD.
//!
//! Blobs this run pushed are remembered per registry, so a second repository on the same registry
//! mounts them instead of uploading them again. Blobs read lazily from a repository of the same
//! registry (`copy`, a base image: see `copy::read_lazily`) are mounted from it, with a token that
//! may pull from it; a registry that refuses a mount (202) gets the blob fetched and uploaded.
//!
//! A push starts early, while the program's layer is still being compressed (`prepare`): it asks
//! what the tags name and, on a first push (no tag there yet), uploads the shared layers (base,
//! zoneinfo, libraries) meanwhile. A tag already there is most likely a re-push, whose shared
//! layers are in the registry: nothing more is asked before the image is known, so an unchanged
//! image still costs one manifest HEAD. One early start per registry in a run, so that the other
//! repositories mount what it sent. A pack that fails after it leaves only blobs no manifest
//! references: nothing a pull can see, and what registries' garbage collection removes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{DestError, Destination, Published};
use crate::image::stored::StoredImage;
use crate::image::{Blob, Digest, ImageOrIndex};
use crate::registry::auth::credentials::Lookup;
use crate::registry::auth::Secret;
use crate::registry::push::{self, PushSet};
use crate::registry::{progress, Client, ConnectOptions, Reference, Registry, RegistryError, Repository, Tag};

/// Which repository of each registry holds a blob, learnt while pushing.
#[derive(Default)]
pub(crate) struct MountBook {
    known: HashMap<Registry, HashMap<Digest, String>>,
    /// Registries a push has started early to (see the module's comment).
    early: std::collections::HashSet<Registry>,
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

impl RegistryContext {
    /// A connection to `repository`'s registry, with the credentials found for it, asking for
    /// tokens of `scopes`.
    pub(crate) fn client(&self, repository: &Repository, scopes: Vec<String>) -> Result<Client, RegistryError> {
        let env = |name: &str| std::env::var(name).ok();
        let lookup = Lookup { creds_flag: self.creds_flag.as_ref(), env: &env };
        let credential = lookup.find(repository)?;
        Client::connect(repository.registry.clone(), credential, scopes, &self.connect)
    }
}

pub(crate) struct RegistryDestination {
    reference: Reference,
    tags: Vec<Tag>,
    context: RegistryContext,
    /// The early start, running; its error surfaces at publish.
    early: Option<std::thread::JoinHandle<Result<Early, RegistryError>>>,
}

/// What the early start leaves for the push: its connection, and what it did.
struct Early {
    client: Client,
    /// The token scopes the client asks for.
    scopes: Vec<String>,
    prior: push::Prior,
}

impl RegistryDestination {
    pub(crate) fn new(reference: Reference, tags: Vec<Tag>, context: RegistryContext) -> Self {
        RegistryDestination { reference, tags, context, early: None }
    }

    /// The token scopes of a push to this repository that mounts from `mount_from`.
    fn scopes(&self, mount_from: &HashMap<Digest, String>) -> Vec<String> {
        let path = &self.reference.repository.path;
        let mut scopes = vec![format!("repository:{path}:push,pull")];
        for source in mount_from.values() {
            let scope = format!("repository:{source}:pull");
            if source != path && !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        scopes
    }

    /// Which of `blobs` are in another repository of the registry: read from there lazily (a
    /// copy, a base image), or seen there by this run.
    fn mount_sources<'a>(&self, blobs: impl IntoIterator<Item = &'a Blob>) -> HashMap<Digest, String> {
        let registry = &self.reference.repository.registry;
        let path = &self.reference.repository.path;
        let book = self.context.mounts.lock().expect("mount book");
        let known = book.known.get(registry);
        blobs
            .into_iter()
            .filter_map(|b| {
                let remote = b.remote().filter(|r| r.registry == registry.to_string() && r.repository != *path);
                let from = remote.map(|r| &r.repository).or_else(|| known.and_then(|k| k.get(&b.digest)))?;
                Some((b.digest, from.clone()))
            })
            .collect()
    }

    /// Pushes the set, then its attachments as referrers (the tag schema where the registry has no
    /// referrers API).
    pub(crate) fn push_set_with(
        &mut self,
        set: &PushSet,
        attachments: &[crate::image::referrers::Attachment],
    ) -> Result<Published, DestError> {
        let repository = &self.reference.repository;
        let wrap = |source| DestError::Registry { reference: self.reference.to_string(), source: Box::new(source) };
        let referrer_blobs = attachments.iter().flat_map(|a| a.blobs.iter());
        let mount_from = self.mount_sources(set.blobs.iter().copied().chain(referrer_blobs));
        let early = self.early.take().map(|started| started.join().expect("the early push does not panic")).transpose().map_err(wrap)?;
        let (client, prior) = match early {
            // The early connection serves unless the image mounts from a repository its token
            // does not cover (a layer of a base image the early start was not offered).
            Some(Early { client, scopes, prior }) if self.scopes(&mount_from).iter().all(|s| scopes.contains(s)) => (client, prior),
            Some(Early { prior, .. }) => (self.context.client(repository, self.scopes(&mount_from)).map_err(wrap)?, prior),
            None => (self.context.client(repository, self.scopes(&mount_from)).map_err(wrap)?, push::Prior::default()),
        };
        let reporter = progress::for_stderr(self.context.quiet, &repository.to_string());
        push::push(&client, &repository.path, set, &self.tags, &mount_from, reporter.as_ref(), prior).map_err(wrap)?;
        push::push_referrers(&client, &repository.path, attachments, &mount_from, reporter.as_ref()).map_err(wrap)?;
        let mut book = self.context.mounts.lock().expect("mount book");
        let known = book.known.entry(repository.registry.clone()).or_default();
        for blob in &set.blobs {
            known.entry(blob.digest).or_insert_with(|| repository.path.clone());
        }
        Ok(Published { reference: repository.to_string(), digest: set.root.digest, platform: None })
    }
}

impl Destination for RegistryDestination {
    /// Starts the push in the background: the tags' HEADs, then, on a first push, the uploads of
    /// the blobs already final.
    fn prepare(&mut self, ready: &[&Blob]) -> Result<(), DestError> {
        if self.early.is_some() || ready.is_empty() {
            return Ok(());
        }
        let repository = self.reference.repository.clone();
        if !self.context.mounts.lock().expect("mount book").early.insert(repository.registry.clone()) {
            return Ok(()); // another output of this run starts early to this registry
        }
        let blobs: Vec<Blob> = ready.iter().map(|b| (*b).clone()).collect();
        let mount_from = self.mount_sources(blobs.iter());
        let scopes = self.scopes(&mount_from);
        let tags: Vec<String> = self.tags.iter().map(Tag::to_string).collect();
        let context = self.context.clone();
        self.early = Some(std::thread::spawn(move || {
            let client = context.client(&repository, scopes.clone())?;
            let mut prior = push::Prior::default();
            // Without a tag (a push by digest alone) there is nothing to ask before the image is known.
            if !tags.is_empty() {
                let current = push::current_digests(&client, &repository.path, &tags)?;
                let first_push = current.iter().all(Option::is_none);
                prior.current = Some(current);
                if !first_push {
                    return Ok(Early { client, scopes, prior });
                }
            }
            let reporter = progress::for_stderr(context.quiet, &repository.to_string());
            let sent: Vec<&Blob> = blobs.iter().collect();
            prior.report = push::upload_blobs(&client, &repository.path, &sent, &mount_from, reporter.as_ref())?;
            prior.uploaded = blobs.iter().map(|b| b.digest).collect();
            Ok(Early { client, scopes, prior })
        }));
        Ok(())
    }

    fn publish(&mut self, image: &ImageOrIndex, attachments: &[crate::image::referrers::Attachment]) -> Result<Published, DestError> {
        self.push_set_with(&PushSet::from_image(image), attachments)
    }

    fn publish_stored(&mut self, image: &StoredImage) -> Result<Published, DestError> {
        let set = PushSet { blobs: image.blobs.iter().collect(), manifests: image.manifests.iter().collect(), root: &image.root };
        self.push_set_with(&set, &image.referrers)
    }
}
