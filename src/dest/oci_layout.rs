//! `oci:DIR[:TAG]`: an OCI image layout folder, written through [`crate::layout::write`].
//!
//! Adding to an existing layout keeps what is there. The update begins early when it can: the
//! layers shared by the binaries are placed while the program's own layer is still being compressed
//! (`prepare`), so that publishing leaves only that layer, the config, the manifest and index.json.
//! If anything fails, or the pack never publishes, the blobs this run added are removed again (and
//! the folder, if this run made it).

use std::path::PathBuf;

use super::{DestError, Destination, Published};
use crate::image::referrers::Attachment;
use crate::image::stored::StoredImage;
use crate::image::{Blob, ImageOrIndex};
use crate::layout::write::Update;
use crate::registry::Tag;

pub(crate) struct OciLayout {
    dir: PathBuf,
    tags: Vec<Tag>,
    /// The update begun by [`Destination::prepare`], if it could lock the layout then.
    update: Option<Update>,
}

impl OciLayout {
    pub(crate) fn new(dir: PathBuf, tags: Vec<Tag>) -> Self {
        OciLayout { dir, tags, update: None }
    }
}

impl Destination for OciLayout {
    fn prepare(&mut self, ready: &[&Blob]) -> Result<(), DestError> {
        if self.update.is_none() {
            self.update = Update::begin(&self.dir, false)?;
        }
        match &mut self.update {
            Some(update) => Ok(update.add(ready.iter().copied())?),
            None => Ok(()),
        }
    }

    fn publish(&mut self, image: &ImageOrIndex, attachments: &[Attachment]) -> Result<Published, DestError> {
        let update = match self.update.take() {
            Some(update) => update,
            None => Update::begin(&self.dir, true)?.expect("an update that waits for the lock begins"),
        };
        update.publish(image, &self.tags, attachments)?;
        Ok(Published { reference: format!("oci:{}:{}", self.dir.display(), self.tags[0]), digest: image.root().digest, platform: None })
    }

    fn publish_stored(&mut self, image: &StoredImage) -> Result<Published, DestError> {
        let update = Update::begin(&self.dir, true)?.expect("an update that waits for the lock begins");
        update.publish_blobs(&image.root, image.all_blobs(), &self.tags, &image.referrers)?;
        Ok(Published { reference: format!("oci:{}:{}", self.dir.display(), self.tags[0]), digest: image.root.digest, platform: None })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn blob(text: &str) -> Blob {
        Blob::from_bytes("application/vnd.oci.image.layer.v1.tar+gzip", text.as_bytes().to_vec())
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = walk(dir).into_iter().map(|p| p.strip_prefix(dir).unwrap().display().to_string()).collect();
        names.sort();
        names
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
        out
    }

    #[test]
    fn blobs_placed_early_are_taken_back_when_the_pack_never_publishes() {
        let work = tempfile::tempdir().unwrap();
        // A new layout: the whole folder goes.
        let fresh = work.path().join("fresh");
        let mut layout = OciLayout::new(fresh.clone(), vec![Tag::latest()]);
        layout.prepare(&[&blob("base"), &blob("zoneinfo")]).unwrap();
        let mut expected = vec![
            "blobs".to_string(),
            "blobs/sha256".to_string(),
            format!("blobs/sha256/{}", blob("base").digest.hex()),
            format!("blobs/sha256/{}", blob("zoneinfo").digest.hex()),
            "oci-layout".to_string(),
        ];
        expected.sort();
        assert_eq!(listing(&fresh), expected);
        drop(layout);
        assert!(!fresh.exists());

        // An existing layout: only what this pack added goes.
        let existing = work.path().join("existing");
        let mut first = OciLayout::new(existing.clone(), vec![Tag::latest()]);
        first.prepare(&[&blob("base")]).unwrap();
        first.update.take().unwrap().commit();
        let before = listing(&existing);
        let mut second = OciLayout::new(existing.clone(), vec![Tag::latest()]);
        second.prepare(&[&blob("base"), &blob("other")]).unwrap();
        assert_eq!(listing(&existing).len(), before.len() + 1);
        drop(second);
        assert_eq!(listing(&existing), before);
    }

    #[test]
    fn a_layout_locked_by_another_output_is_left_to_publish() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("layout");
        let mut first = OciLayout::new(dir.clone(), vec!["a".parse().unwrap()]);
        let mut second = OciLayout::new(dir.clone(), vec!["b".parse().unwrap()]);
        first.prepare(&[&blob("base")]).unwrap();
        // Would wait for the first's lock if it did not give up at once.
        second.prepare(&[&blob("base")]).unwrap();
        assert!(first.update.is_some() && second.update.is_none());
    }
}
