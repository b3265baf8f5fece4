//! The libraries layer of an image's dynamic programs: each one's interpreter and every resolved
//! library, once, each as a real file at its real path, with every symlink on the way to it
//! (soname links, and a merged `/usr`'s `/lib -> usr/lib`), so ld.so finds them in the image
//! exactly where it found them here.

use std::os::unix::fs::PermissionsExt;

use super::{Content, FileTree, PathError};
use crate::elf::resolve::Resolution;
use crate::elf::root::Root;

#[derive(Debug, thiserror::Error)]
pub(crate) enum LibsError {
    #[error("{path}: cannot resolve it in {root}")]
    Resolve {
        path: String,
        root: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot be placed in the image")]
    Place {
        path: String,
        #[source]
        source: PathError,
    },
}

/// Adds `image_path` (read under `root`) to `tree`: the symlinks crossed, then the real file.
pub(crate) fn add_host_path(tree: &mut FileTree, root: &Root, image_path: &str) -> Result<(), LibsError> {
    let root_name = root.sysroot().map(|r| r.display().to_string()).unwrap_or_else(|| "/".into());
    let canonical = root.canonicalize(image_path).map_err(|source| LibsError::Resolve {
        path: image_path.to_string(),
        root: root_name.clone(),
        source,
    })?;
    let place = |source| LibsError::Place { path: image_path.to_string(), source };
    for (link, target) in &canonical.links {
        let link = super::image_path(link).map_err(place)?;
        if tree.get(&link).is_none() {
            tree.add_symlink(&link, target).map_err(place)?;
        }
    }
    let host = root.host(&canonical.real);
    let metadata =
        std::fs::metadata(&host).map_err(|source| LibsError::Resolve { path: canonical.real.clone(), root: root_name, source })?;
    let mode = if metadata.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
    let real = super::image_path(&canonical.real).map_err(place)?;
    tree.add_file(&real, Content::host_file(host, &metadata), mode, 0, 0).map_err(place)
}

/// The tree of the resolutions of the programs of one image: for each, its interpreter, then its
/// libraries in load order. A file two programs share goes in once.
pub(crate) fn plan(resolutions: &[&Resolution], root: &Root) -> Result<FileTree, LibsError> {
    let mut tree = FileTree::new();
    for resolution in resolutions {
        add_resolution(&mut tree, resolution, root)?;
    }
    Ok(tree)
}

fn add_resolution(tree: &mut FileTree, resolution: &Resolution, root: &Root) -> Result<(), LibsError> {
    if let Some((interpreter, _)) = &resolution.interpreter {
        add_host_path(tree, root, interpreter)?;
    }
    for library in &resolution.libraries {
        // A library found through the program's $ORIGIN outside the root is read from where it
        // was found and placed where ld.so will look for it in the image.
        if root.host(&library.image_path) == library.host_path {
            add_host_path(tree, root, &library.image_path)?;
            continue;
        }
        let metadata = std::fs::metadata(&library.file).map_err(|source| LibsError::Resolve {
            path: library.file.display().to_string(),
            root: "/".into(),
            source,
        })?;
        let place = |source| LibsError::Place { path: library.image_path.clone(), source };
        let path = super::image_path(&library.image_path).map_err(place)?;
        tree.add_file(&path, Content::host_file(library.file.clone(), &metadata), 0o755, 0, 0).map_err(place)?;
    }
    Ok(())
}
