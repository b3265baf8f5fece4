//! Which paths a stack of layers leaves in the image: each layer's tar entries listed as it streams
//! by (gzip or zstd), with the overlay rules of the image-spec (`layer.md`) applied in order: a
//! `.wh.NAME` entry hides NAME (and what lies below it) in the layers beneath, `.wh..wh..opq`
//! hides everything the layers beneath put into its folder, and a file over a folder hides that
//! folder's content. While streaming, each layer's uncompressed bytes are hashed and counted: the
//! hash must be the diff ID the config records.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use crate::image::{Compression, Digest};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// The most a kept file may hold.
const MAX_KEPT: u64 = 4 << 20;

/// The paths present in an image, without a leading `/` or `./` and without a trailing `/`; and
/// the content of the few regular files asked for ([`PresentPaths::keeping`]).
#[derive(Debug, Default)]
pub(crate) struct PresentPaths {
    paths: BTreeSet<String>,
    keep: Vec<String>,
    kept: BTreeMap<String, Vec<u8>>,
}

/// One layer as listed: its diff ID and uncompressed size, measured.
pub(crate) struct Listed {
    pub(crate) diff_id: Digest,
    pub(crate) uncompressed_size: u64,
}

impl PresentPaths {
    /// Paths that also keep the content of `files` (image paths without the leading `/`), when
    /// the top layer that has one holds it as a regular file of at most 4 MiB.
    pub(crate) fn keeping(files: &[&str]) -> PresentPaths {
        PresentPaths { keep: files.iter().map(|f| f.to_string()).collect(), ..Default::default() }
    }

    pub(crate) fn contains(&self, path: &str) -> bool {
        self.paths.contains(path.trim_start_matches('/'))
    }

    /// The content of a kept file, if the image has it as a regular file.
    pub(crate) fn kept(&self, path: &str) -> Option<&[u8]> {
        self.kept.get(path.trim_start_matches('/')).map(Vec::as_slice)
    }

    /// Puts the layer `blob` (gzip, zstd, or with `None` a plain tar) over the paths so far.
    pub(crate) fn apply(&mut self, blob: impl Read + Send, compression: Option<Compression>) -> io::Result<Listed> {
        let decoder = crate::image::layer::decompressed(io::BufReader::new(blob), compression)?;
        let mut hashed = Hashing { inner: decoder, hasher: sha2::Digest::new(), count: 0 };
        let (added, hidden, kept) = {
            // Some writers (umoci 0.4) end a layer without the last entry's padding and the
            // end-of-archive blocks, which runtimes accept: zeros stand in for them, unhashed.
            let mut archive = tar::Archive::new(Padded { inner: &mut hashed, zeros: END_BLOCKS });
            let mut added = Vec::new();
            let mut hidden = Vec::new();
            let mut kept = Vec::new();
            for entry in archive.entries()? {
                let mut entry = entry?;
                let path = entry.path()?.to_string_lossy().into_owned();
                let path = normal(&path);
                if path.is_empty() {
                    continue;
                }
                let (parent, name) = match path.rsplit_once('/') {
                    Some((parent, name)) => (parent.to_string(), name),
                    None => (String::new(), path.as_str()),
                };
                if name == OPAQUE {
                    hidden.push((parent, false));
                } else if let Some(hidden_name) = name.strip_prefix(WHITEOUT) {
                    hidden.push((join(&parent, hidden_name), true));
                } else {
                    if !entry.header().entry_type().is_dir() {
                        // A file over a folder of a layer beneath hides its content.
                        hidden.push((path.clone(), false));
                    }
                    if self.keep.contains(&path) {
                        let size = entry.header().size()?;
                        let content = match entry.header().entry_type().is_file() && size <= MAX_KEPT {
                            true => {
                                let mut content = Vec::with_capacity(size as usize);
                                entry.read_to_end(&mut content)?;
                                Some(content)
                            }
                            false => None,
                        };
                        kept.push((path.clone(), content));
                    }
                    added.push(path);
                }
            }
            (added, hidden, kept)
        };
        // What the archive did not read (the end-of-archive blocks, padding) is part of the diff ID.
        io::copy(&mut hashed, &mut io::sink())?;
        for (path, itself) in hidden {
            self.hide(&path, itself);
        }
        for path in added {
            self.add(path);
        }
        for (path, content) in kept {
            match content {
                Some(content) => self.kept.insert(path, content),
                None => self.kept.remove(&path),
            };
        }
        Ok(Listed { diff_id: Digest::from_hasher(hashed.hasher), uncompressed_size: hashed.count })
    }

    /// Removes what lies under `path`, and with `itself` the path too.
    fn hide(&mut self, path: &str, itself: bool) {
        if itself {
            self.paths.remove(path);
            self.kept.remove(path);
        }
        let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
        let under: Vec<String> = self.paths.range(prefix.clone()..).take_while(|p| p.starts_with(&prefix)).cloned().collect();
        for p in under {
            self.paths.remove(&p);
            self.kept.remove(&p);
        }
    }

    /// Adds `path` and the folders that hold it.
    fn add(&mut self, path: String) {
        let mut end = path.len();
        while let Some(slash) = path[..end].rfind('/') {
            self.paths.insert(path[..slash].to_string());
            end = slash;
        }
        self.paths.insert(path);
    }
}

fn normal(path: &str) -> String {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    path.trim_end_matches('/').to_string()
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Enough zeros to end any tar archive: the last entry's padding and two end blocks.
const END_BLOCKS: usize = 3 * 512;

/// `inner`, then at most `zeros` zero bytes.
struct Padded<R> {
    inner: R,
    zeros: usize,
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf)? {
            0 => {
                let n = buf.len().min(self.zeros);
                buf[..n].fill(0);
                self.zeros -= n;
                Ok(n)
            }
            n => Ok(n),
        }
    }
}

/// Hashes and counts what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: sha2::Sha256,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzip layer of `entries`: (path, is a folder).
    fn layer(entries: &[(&str, bool)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, dir) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(if *dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
            header.set_size(if *dir { 0 } else { 1 });
            header.set_mode(0o644);
            header.set_cksum();
            let data: &[u8] = if *dir { b"" } else { b"x" };
            builder.append_data(&mut header, path, data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn whiteouts_hide_what_the_layers_beneath_put() {
        let mut present = PresentPaths::default();
        present
            .apply(
                &layer(&[("etc/", true), ("etc/passwd", false), ("etc/ssl/certs/ca.crt", false), ("./var/lib/x", false)])[..],
                Some(Compression::Gzip),
            )
            .unwrap();
        assert!(present.contains("/etc/passwd") && present.contains("etc/ssl/certs") && present.contains("var/lib/x"));
        present
            .apply(
                &layer(&[("etc/.wh.passwd", false), ("etc/ssl/.wh..wh..opq", false), ("etc/ssl/new", false)])[..],
                Some(Compression::Gzip),
            )
            .unwrap();
        assert!(!present.contains("etc/passwd"));
        assert!(!present.contains("etc/ssl/certs/ca.crt") && !present.contains("etc/ssl/certs"));
        assert!(present.contains("etc/ssl/new") && present.contains("etc"));
        present.apply(&layer(&[("var/lib", false), ("etc/passwd", false)])[..], Some(Compression::Gzip)).unwrap();
        assert!(!present.contains("var/lib/x") && present.contains("var/lib") && present.contains("etc/passwd"));
    }

    #[test]
    fn a_kept_file_is_the_top_layers_and_goes_with_a_whiteout() {
        let mut present = PresentPaths::keeping(&["etc/ca.crt"]);
        present.apply(&layer(&[("etc/ca.crt", false), ("etc/other", false)])[..], Some(Compression::Gzip)).unwrap();
        assert_eq!(present.kept("/etc/ca.crt"), Some(&b"x"[..]));
        assert_eq!(present.kept("etc/other"), None, "not asked for");
        present.apply(&layer(&[("etc/.wh.ca.crt", false)])[..], Some(Compression::Gzip)).unwrap();
        assert_eq!(present.kept("etc/ca.crt"), None);
        present.apply(&layer(&[("etc/ca.crt", true)])[..], Some(Compression::Gzip)).unwrap();
        assert!(present.contains("etc/ca.crt"));
        assert_eq!(present.kept("etc/ca.crt"), None, "a folder has no content");
    }

    #[test]
    fn a_tar_without_its_end_blocks_is_read_to_its_last_entry() {
        let bytes = layer(&[("usr/bin/tool", false)]);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut tar).unwrap();
        tar.truncate(512 + 1);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let mut present = PresentPaths::default();
        let listed = present.apply(&gz.finish().unwrap()[..], Some(Compression::Gzip)).unwrap();
        assert!(present.contains("usr/bin/tool"));
        assert_eq!((listed.diff_id, listed.uncompressed_size), (Digest::of(&tar), 513));
    }

    #[test]
    fn the_diff_id_is_the_hash_of_the_whole_tar() {
        let bytes = layer(&[("a", false)]);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut tar).unwrap();
        let listed = PresentPaths::default().apply(&bytes[..], Some(Compression::Gzip)).unwrap();
        assert_eq!(listed.diff_id, Digest::of(&tar));
        assert_eq!(listed.uncompressed_size, tar.len() as u64);
    }
}
