//! The `--add` layer's tree: `--add` files and folders, `--mkdir` folders and `--chown-to-user`
//! paths, with the owners they ask for checked against each other.
//!
//! A path made twice (by two `--add`, or an `--add` and a `--mkdir`) with two owners is an error
//! that names both, never a silent last-wins. Folders that only hold what a spec placed keep the
//! mode and owner the base layer gives them (`/home/nonroot` stays 0700 65532:65532), or 0755 root.
//! `--chown-to-user` gives the image's user a path the image holds: an `--add`/`--mkdir` path with
//! everything they put in it, a base file or folder (copied into this layer with its new owner), or
//! the program's path or a folder above it (which [`ExtraFiles::settle_program_layer`] settles in
//! the program's own layer, the last). Reads no file but through
//! `add`; knows nothing of tar.

use std::collections::BTreeMap;

use super::add::{self, mode_and_owner, AddError, AddSpec};
use super::base::{GROUP, PASSWD};
use super::{image_path, EntryKind, FileTree, PathError};

/// One parsed `--mkdir DEST[:MODE[:UID[:GID]]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MkdirSpec {
    /// As given, for messages.
    text: String,
    pub(crate) dest: String,
    pub(crate) mode: Option<u32>,
    pub(crate) owner: Option<(u32, u32)>,
}

impl std::str::FromStr for MkdirSpec {
    type Err = ExtraError;

    fn from_str(spec: &str) -> Result<Self, ExtraError> {
        let parts: Vec<&str> = spec.split(':').collect();
        let syntax = || ExtraError::MkdirSyntax { spec: spec.to_string() };
        let [dest, rest @ ..] = parts.as_slice() else { return Err(syntax()) };
        let (mode, owner) = mode_and_owner(rest).ok_or_else(syntax)?;
        if !dest.starts_with('/') {
            return Err(syntax());
        }
        Ok(MkdirSpec { text: spec.to_string(), dest: dest.to_string(), mode, owner })
    }
}

impl std::fmt::Display for MkdirSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What the `--add` layer is asked to hold.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExtraFiles {
    pub(crate) add: Vec<AddSpec>,
    pub(crate) mkdir: Vec<MkdirSpec>,
    /// `--chown-to-user`, as image paths (no leading `/`).
    pub(crate) chown_to_user: Vec<String>,
    /// The image's user and group numbers, the owner `--chown-to-user` gives.
    pub(crate) user: (u32, u32),
}

impl ExtraFiles {
    /// Settles the owners and modes of a program's own layer (`tree`, which holds the program at
    /// `program` and the folders above it as 0755 root). That layer is the image's last, so its
    /// folders are what the image ends up with: each takes what the layers below give it (the
    /// base's `/home/nonroot`, an `--add` folder's owner, a `--mkdir`), and `--chown-to-user` gives
    /// the user what it names, the program too.
    pub(crate) fn settle_program_layer(&self, tree: &mut FileTree, program: &str) {
        let base = super::base::folders();
        let mut end = 0;
        while let Some(offset) = program[end..].find('/') {
            end += offset;
            let folder = &program[..end];
            let Some(entry) = tree.get_mut(folder) else { break };
            if let Some(below) = base.get(folder) {
                (entry.mode, entry.uid, entry.gid) = (below.mode, below.uid, below.gid);
            }
            let names = |dest: &str| image_path(dest).is_ok_and(|dest| dest == folder);
            // An `--add` that placed this folder (`DEST/` with a file puts the file into it).
            let placed = |spec: &&AddSpec| names(&spec.dest) && (!spec.dest.ends_with('/') || spec.source.is_dir());
            for spec in self.add.iter().filter(placed) {
                (entry.uid, entry.gid) = spec.owner.unwrap_or((0, 0));
            }
            for spec in self.mkdir.iter().filter(|spec| names(&spec.dest)) {
                (entry.mode, (entry.uid, entry.gid)) = (spec.mode.unwrap_or(0o755), spec.owner.unwrap_or((0, 0)));
            }
            end += 1;
        }
        for path in &self.chown_to_user {
            if let Some(entry) = tree.get_mut(path) {
                (entry.uid, entry.gid) = self.user;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExtraError {
    #[error("--mkdir {spec:?}: expected DEST[:MODE[:UID[:GID]]], with DEST an absolute path in the image, MODE octal (empty for the default) and UID, GID numbers")]
    MkdirSyntax { spec: String },
    #[error(transparent)]
    Add(#[from] AddError),
    #[error("{by}")]
    Path {
        by: String,
        #[source]
        source: PathError,
    },
    #[error("/{path} is made twice with different owners: {}:{} by {first} and {}:{} by {second}", first_owner.0, first_owner.1, second_owner.0, second_owner.1)]
    Conflict { path: String, first: String, first_owner: (u32, u32), second: String, second_owner: (u32, u32) },
    #[error("--chown-to-user /{path}: the image holds no such path")]
    ChownMissing { path: String },
    #[error("--chown-to-user /{path}: {by} gives /{below} the owner {}:{}, not the user's {}:{}", owner.0, owner.1, user.0, user.1)]
    ChownConflict { path: String, below: String, by: String, owner: (u32, u32), user: (u32, u32) },
}

impl ExtraError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            ExtraError::Add(error) => error.hint(),
            ExtraError::Conflict { .. } => Some("give the path one owner, or make it once".into()),
            ExtraError::ChownMissing { path } => Some(format!("make it with --mkdir /{path} or --add SRC:/{path}")),
            ExtraError::ChownConflict { .. } => Some("drop the UID and GID of that spec, or the --chown-to-user".into()),
            ExtraError::MkdirSyntax { .. } | ExtraError::Path { .. } => None,
        }
    }
}

/// A path some spec made, with the owner it gave.
struct Made {
    owner: (u32, u32),
    /// Whether the spec named the owner (UID field), rather than took root by default.
    given: bool,
    by: String,
}

/// The tree of the `--add` layer. `base` is the base layer's tree, `programs` the programs' paths
/// (without the leading `/`).
pub(crate) fn plan(extra: &ExtraFiles, base: &FileTree, programs: &[String]) -> Result<FileTree, ExtraError> {
    let mut tree = FileTree::new();
    let mut made: BTreeMap<String, Made> = BTreeMap::new();
    for spec in &extra.add {
        let (spec_tree, dest) = add::plan_one(spec)?;
        let by = format!("--add {}:{}", spec.source.display(), spec.dest);
        merge(&mut tree, &mut made, base, &spec_tree, &dest, &by, spec.owner.is_some())?;
    }
    for spec in &extra.mkdir {
        let by = format!("--mkdir {spec}");
        let path_err = |source| ExtraError::Path { by: by.clone(), source };
        let dest = image_path(&spec.dest).map_err(path_err)?;
        let (uid, gid) = spec.owner.unwrap_or((0, 0));
        let mut spec_tree = FileTree::new();
        spec_tree.add_dir(&dest, spec.mode.unwrap_or(0o755), uid, gid).map_err(path_err)?;
        merge(&mut tree, &mut made, base, &spec_tree, &dest, &by, spec.owner.is_some())?;
    }
    for path in &extra.chown_to_user {
        chown(&mut tree, &made, base, programs, path, extra.user)?;
    }
    Ok(tree)
}

/// Joins what one spec planned (`spec_tree`, which placed `dest`) into `tree`.
fn merge(
    tree: &mut FileTree,
    made: &mut BTreeMap<String, Made>,
    base: &FileTree,
    spec_tree: &FileTree,
    dest: &str,
    by: &str,
    given: bool,
) -> Result<(), ExtraError> {
    let path_err = |source| ExtraError::Path { by: by.to_string(), source };
    for (path, entry) in spec_tree.iter() {
        let placed = path.len() == dest.len() && path == dest || path.starts_with(dest) && path.as_bytes()[dest.len()] == b'/';
        if !placed {
            // A folder that only holds what the spec placed: as the image already has it.
            if tree.get(path).is_none() {
                let kept = base.get(path).filter(|kept| matches!(kept.kind, EntryKind::Dir)).unwrap_or(entry);
                tree.insert(path, kept.clone()).map_err(path_err)?;
            }
            continue;
        }
        let owner = (entry.uid, entry.gid);
        match made.get(path) {
            Some(first) if first.owner != owner => {
                return Err(ExtraError::Conflict {
                    path: path.to_string(),
                    first: first.by.clone(),
                    first_owner: first.owner,
                    second: by.to_string(),
                    second_owner: owner,
                });
            }
            Some(_) => {}
            None => {
                made.insert(path.to_string(), Made { owner, given, by: by.to_string() });
            }
        }
        tree.insert(path, entry.clone()).map_err(path_err)?;
    }
    Ok(())
}

/// Gives `path` (and, when `--add` or `--mkdir` made it, what they put in it) to `user`.
fn chown(
    tree: &mut FileTree,
    made: &BTreeMap<String, Made>,
    base: &FileTree,
    programs: &[String],
    path: &str,
    user: (u32, u32),
) -> Result<(), ExtraError> {
    let is_program = programs.iter().any(|program| program == path || program.starts_with(&format!("{path}/")));
    if tree.get(path).is_some() {
        let below: Vec<String> = tree.under(path).map(|(below, _)| below.to_string()).collect();
        for below in below {
            if let Some(first) = made.get(&below).filter(|first| first.given && first.owner != user) {
                return Err(ExtraError::ChownConflict { path: path.to_string(), below, by: first.by.clone(), owner: first.owner, user });
            }
            let entry = tree.get_mut(&below).expect("listed just now");
            (entry.uid, entry.gid) = user;
        }
        return Ok(());
    }
    if let Some(entry) = base.get(path) {
        let path_err = |source| ExtraError::Path { by: format!("--chown-to-user /{path}"), source };
        // The folders above it as the base has them, then the entry itself, owned by the user.
        let mut end = 0;
        while let Some(offset) = path[end..].find('/') {
            end += offset;
            if let (None, Some(parent)) = (tree.get(&path[..end]), base.get(&path[..end])) {
                tree.insert(&path[..end], parent.clone()).map_err(path_err)?;
            }
            end += 1;
        }
        let mut owned = entry.clone();
        (owned.uid, owned.gid) = user;
        return tree.insert(path, owned).map_err(path_err);
    }
    if is_program {
        return Ok(()); // the program's layer gives it
    }
    Err(ExtraError::ChownMissing { path: path.to_string() })
}

/// The numbers of `--user` (`UID[:GID]` or `NAME[:GROUP]`), as a runtime finds them in the
/// image's `/etc/passwd` and `/etc/group`: a UID alone takes its passwd entry's group, or 0 when
/// it has none. `None` for a name the image does not list.
pub(crate) fn user_ids(user: &str) -> Option<(u32, u32)> {
    let entries = |file: &'static [u8]| {
        std::str::from_utf8(file).expect("templates are UTF-8").lines().map(|line| line.split(':').collect::<Vec<_>>()).collect::<Vec<_>>()
    };
    let passwd = entries(PASSWD);
    let group = entries(GROUP);
    let (name, group_name) = match user.split_once(':') {
        Some((name, group_name)) => (name, Some(group_name)),
        None => (user, None),
    };
    let (uid, primary) = match name.parse::<u32>() {
        Ok(uid) => (uid, passwd.iter().find(|entry| entry.get(2) == Some(&name)).and_then(|entry| entry.get(3)?.parse().ok()).unwrap_or(0)),
        Err(_) => {
            let entry = passwd.iter().find(|entry| entry.first() == Some(&name))?;
            (entry.get(2)?.parse().ok()?, entry.get(3)?.parse().ok()?)
        }
    };
    let gid = match group_name {
        None => primary,
        Some(text) => match text.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group.iter().find(|entry| entry.first() == Some(&text))?.get(2)?.parse().ok()?,
        },
    };
    Some((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::base::{self, BaseOptions, CaBundle};

    fn base_tree() -> FileTree {
        base::plan(&BaseOptions { ca_bundle: Some(CaBundle::None), extra_ca: vec![] }).unwrap().tree
    }

    fn listing(tree: &FileTree) -> Vec<String> {
        tree.iter().map(|(path, e)| format!("{path} {:o} {}:{}", e.mode, e.uid, e.gid)).collect()
    }

    fn mkdir(text: &str) -> MkdirSpec {
        text.parse().unwrap()
    }

    #[test]
    fn mkdir_specs_parse_and_print_back() {
        let fields = |text: &str| {
            let spec = mkdir(text);
            (spec.dest, spec.mode, spec.owner)
        };
        assert_eq!(fields("/var/cache/app::65532:65532"), ("/var/cache/app".into(), None, Some((65532, 65532))));
        assert_eq!(fields("/data:0700"), ("/data".into(), Some(0o700), None));
        assert_eq!(fields("/data::1000"), ("/data".into(), None, Some((1000, 1000))));
        assert_eq!(fields("/data"), ("/data".into(), None, None));
        assert_eq!(mkdir("/data::1000").to_string(), "/data::1000", "messages name it as given");
        for bad in ["data", "/d:9", "/d::x", "/d:0755:1:2:3", ""] {
            let err = bad.parse::<MkdirSpec>().unwrap_err().to_string();
            assert!(err.starts_with(&format!("--mkdir {bad:?}: expected DEST[:MODE[:UID[:GID]]]")), "{err}");
        }
    }

    #[test]
    fn mkdir_makes_an_owned_folder_and_its_parents_stay_as_the_image_has_them() {
        let extra = ExtraFiles {
            mkdir: vec![mkdir("/var/cache/app::65532:65532"), mkdir("/home/nonroot/data:0750:65532:65532"), mkdir("/srv")],
            ..Default::default()
        };
        let tree = plan(&extra, &base_tree(), &[]).unwrap();
        assert_eq!(
            listing(&tree),
            [
                "home 755 0:0",
                "home/nonroot 700 65532:65532",
                "home/nonroot/data 750 65532:65532",
                "srv 755 0:0",
                "var 755 0:0",
                "var/cache 755 0:0",
                "var/cache/app 755 65532:65532"
            ]
        );
    }

    #[test]
    fn added_files_and_folders_take_the_owner_given() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "k").unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/seed"), "s").unwrap();
        let add = |text: String| text.parse::<AddSpec>().unwrap();
        let extra = ExtraFiles {
            add: vec![
                add(format!("{}:/etc/app/key.pem:0640:0:65532", key.display())),
                add(format!("{}:/var/lib/app::1000", data.display())),
            ],
            ..Default::default()
        };
        let tree = plan(&extra, &base_tree(), &[]).unwrap();
        assert_eq!(
            listing(&tree),
            [
                "etc 755 0:0",
                "etc/app 755 0:0",
                "etc/app/key.pem 640 0:65532",
                "var 755 0:0",
                "var/lib 755 0:0",
                "var/lib/app 755 1000:1000",
                "var/lib/app/sub 755 1000:1000",
                "var/lib/app/sub/seed 644 1000:1000"
            ]
        );
    }

    #[test]
    fn a_path_made_twice_with_two_owners_is_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let extra = ExtraFiles {
            add: vec![format!("{}:/srv/data", data.display()).parse().unwrap()],
            mkdir: vec![mkdir("/srv/data::65532:65532")],
            ..Default::default()
        };
        let err = plan(&extra, &base_tree(), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("/srv/data is made twice with different owners: 0:0 by --add {}:/srv/data and 65532:65532 by --mkdir /srv/data::65532:65532", data.display())
        );
        assert_eq!(err.hint().unwrap(), "give the path one owner, or make it once");
        let twice = ExtraFiles { mkdir: vec![mkdir("/srv/x::1:1"), mkdir("/srv/x::2:2")], ..Default::default() };
        assert_eq!(
            plan(&twice, &base_tree(), &[]).unwrap_err().to_string(),
            "/srv/x is made twice with different owners: 1:1 by --mkdir /srv/x::1:1 and 2:2 by --mkdir /srv/x::2:2"
        );
        let same = ExtraFiles { mkdir: vec![mkdir("/srv/x:0700:1:1"), mkdir("/srv/x:0750:1:1")], ..Default::default() };
        assert_eq!(listing(&plan(&same, &base_tree(), &[]).unwrap()), ["srv 755 0:0", "srv/x 750 1:1"], "one owner: the later mode");
    }

    #[test]
    fn paths_out_of_the_image_are_refused() {
        let extra = ExtraFiles { mkdir: vec![mkdir("/var/../../etc")], ..Default::default() };
        let err = anyhow::Error::new(plan(&extra, &base_tree(), &[]).unwrap_err());
        assert_eq!(format!("{err:#}"), "--mkdir /var/../../etc: image path \"/var/../../etc\" must not contain '..'");
        let root = ExtraFiles { mkdir: vec![mkdir("/")], ..Default::default() };
        assert_eq!(
            format!("{:#}", anyhow::Error::new(plan(&root, &base_tree(), &[]).unwrap_err())),
            "--mkdir /: image path \"/\" names the image root, not a file"
        );
    }

    #[test]
    fn chown_to_user_gives_added_base_and_program_paths_to_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = dir.path().join("uploads");
        std::fs::create_dir(&uploads).unwrap();
        std::fs::write(uploads.join("seed"), "s").unwrap();
        let extra = ExtraFiles {
            add: vec![format!("{}:/srv/uploads", uploads.display()).parse().unwrap()],
            chown_to_user: vec!["srv/uploads".into(), "tmp".into(), "usr/local/bin/app".into()],
            user: (1000, 1000),
            ..Default::default()
        };
        let tree = plan(&extra, &base_tree(), &["usr/local/bin/app".into()]).unwrap();
        assert_eq!(listing(&tree), ["srv 755 0:0", "srv/uploads 755 1000:1000", "srv/uploads/seed 644 1000:1000", "tmp 1777 1000:1000"]);
        let mut program_layer = FileTree::new();
        program_layer.add_file("usr/local/bin/app", crate::rootfs::Content::Bytes(std::sync::Arc::from(&b""[..])), 0o755, 0, 0).unwrap();
        extra.settle_program_layer(&mut program_layer, "usr/local/bin/app");
        assert_eq!(
            listing(&program_layer),
            ["usr 755 0:0", "usr/local 755 0:0", "usr/local/bin 755 0:0", "usr/local/bin/app 755 1000:1000"]
        );

        let missing = ExtraFiles { chown_to_user: vec!["var/data".into()], ..Default::default() };
        let err = plan(&missing, &base_tree(), &[]).unwrap_err();
        assert_eq!(err.to_string(), "--chown-to-user /var/data: the image holds no such path");
        assert_eq!(err.hint().unwrap(), "make it with --mkdir /var/data or --add SRC:/var/data");

        let given =
            ExtraFiles { mkdir: vec![mkdir("/data::0:0")], chown_to_user: vec!["data".into()], user: (65532, 65532), ..Default::default() };
        assert_eq!(
            plan(&given, &base_tree(), &[]).unwrap_err().to_string(),
            "--chown-to-user /data: --mkdir /data::0:0 gives /data the owner 0:0, not the user's 65532:65532"
        );
    }

    #[test]
    fn the_folders_above_a_program_keep_what_the_layers_below_give_them() {
        let extra = ExtraFiles {
            add: vec!["/dev/null:/srv/app::1000:1000".parse().unwrap()],
            mkdir: vec![mkdir("/home/nonroot/bin:0750:65532:65532")],
            chown_to_user: vec!["home/nonroot/bin/app".into()],
            user: (65532, 65532),
        };
        let program = |path: &str| {
            let mut tree = FileTree::new();
            tree.add_file(path, crate::rootfs::Content::Bytes(std::sync::Arc::from(&b""[..])), 0o755, 0, 0).unwrap();
            extra.settle_program_layer(&mut tree, path);
            listing(&tree)
        };
        assert_eq!(
            program("home/nonroot/bin/app"),
            ["home 755 0:0", "home/nonroot 700 65532:65532", "home/nonroot/bin 750 65532:65532", "home/nonroot/bin/app 755 65532:65532"]
        );
        assert_eq!(program("srv/app/run"), ["srv 755 0:0", "srv/app 755 1000:1000", "srv/app/run 755 0:0"]);
    }

    #[test]
    fn the_user_is_found_as_a_runtime_finds_it() {
        assert_eq!(user_ids("65532:65532"), Some((65532, 65532)));
        assert_eq!(user_ids("65532"), Some((65532, 65532)), "the passwd entry's group");
        assert_eq!(user_ids("1000"), Some((1000, 0)), "no passwd entry: group 0");
        assert_eq!(user_ids("1000:1000"), Some((1000, 1000)));
        assert_eq!(user_ids("nonroot"), Some((65532, 65532)));
        assert_eq!(user_ids("nobody:nonroot"), Some((65534, 65532)));
        assert_eq!(user_ids("root"), Some((0, 0)));
        assert_eq!(user_ids("www-data"), None);
        assert_eq!(user_ids("1000:staff"), None);
    }
}
