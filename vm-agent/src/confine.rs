//! Path confinement: a client names a file by a path relative to a
//! workspace's checkout, and nothing outside that checkout may be read,
//! listed or written through it.
//!
//! Three steps, each a guard of its own:
//!
//! 1. [`RelPath::parse`] checks the path *lexically*: relative, `/`-separated,
//!    no `.`/`..`/empty components, no NUL, components of at most
//!    [`MAX_NAME_BYTES`] and a whole of at most [`MAX_PATH_BYTES`].
//!    Percent-decoding is not done here: the router's query extractor decodes
//!    a query string exactly once, and what reaches `parse` is taken
//!    literally (a file called `%2e%2e` is a file called `%2e%2e`).
//! 2. [`Root::resolve`] resolves symbolic links: it canonicalises the longest
//!    prefix of the path that exists and refuses it unless it stays under the
//!    (canonical) root. A link inside the checkout pointing elsewhere inside
//!    is followed; one leading out is `path_outside_workspace`, whether or
//!    not anything exists behind it, so the answer says nothing about the
//!    world outside. The result is a path relative to the root that contains
//!    no symbolic link (except, when asked, the final component itself).
//! 3. Files and directories are then opened by walking that symlink-free path
//!    from a descriptor of the root, one component at a time, each with
//!    `O_NOFOLLOW`. If anything was swapped for a symbolic link between
//!    steps 2 and 3, the open fails instead of following it (no TOCTOU), and
//!    since the path has no `..`, the walk can only descend from the root.
//!
//! Writes get their own directory descriptor and create, check and rename
//! entries relative to it (`openat`, `renameat`), never through a path.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Longest file name most Linux file systems accept.
pub const MAX_NAME_BYTES: usize = 255;
/// `PATH_MAX`.
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a path was refused. Each has a stable [`code`](ConfineError::code).
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// The path is malformed: see the message.
    #[error("invalid path: {0}")]
    Invalid(&'static str),
    /// A symbolic link along the path leads out of the workspace.
    #[error("the path leads outside the workspace")]
    Outside,
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotADirectory,
    #[error("not a regular file")]
    NotAFile,
    #[error("permission denied")]
    PermissionDenied,
    /// Anything else the file system said; logged, not shown.
    #[error("file system error")]
    Io(#[source] io::Error),
}

impl ConfineError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "path_invalid",
            Self::Outside => "path_outside_workspace",
            Self::NotFound => "not_found",
            Self::NotADirectory => "not_a_directory",
            Self::NotAFile => "not_a_file",
            Self::PermissionDenied => "permission_denied",
            Self::Io(_) => "io_error",
        }
    }
}

impl From<io::Error> for ConfineError {
    fn from(err: io::Error) -> Self {
        match err.raw_os_error().map(Errno::from_raw_os_error) {
            Some(Errno::NOENT) => Self::NotFound,
            Some(Errno::NOTDIR) => Self::NotADirectory,
            Some(Errno::ACCESS | Errno::PERM) => Self::PermissionDenied,
            Some(Errno::LOOP) => Self::Invalid("a symbolic link loop, or a link where none may be"),
            Some(Errno::NAMETOOLONG) => Self::Invalid("name too long"),
            _ => Self::Io(err),
        }
    }
}

impl From<Errno> for ConfineError {
    fn from(errno: Errno) -> Self {
        io::Error::from(errno).into()
    }
}

/// How strictly a single file name is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// Names that may already exist: anything Linux allows but NUL and `/`.
    Existing,
    /// Names of files we are about to create: also no control characters
    /// and no backslash (a client-side path separator, e.g. `C:\x`).
    New,
}

/// Checks one path component.
pub fn check_name(name: &str, rule: NameRule) -> Result<(), ConfineError> {
    match name {
        "" => return Err(ConfineError::Invalid("empty path component")),
        "." | ".." => return Err(ConfineError::Invalid("`.` and `..` are not allowed")),
        _ => {}
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(ConfineError::Invalid("a name is longer than 255 bytes"));
    }
    if name.contains('\0') {
        return Err(ConfineError::Invalid("NUL in path"));
    }
    if name.contains('/') {
        return Err(ConfineError::Invalid("a name may not contain `/`"));
    }
    if rule == NameRule::New {
        if name.chars().any(char::is_control) {
            return Err(ConfineError::Invalid("control character in a name"));
        }
        if name.contains('\\') {
            return Err(ConfineError::Invalid("a name may not contain `\\`"));
        }
    }
    Ok(())
}

/// A lexically valid path relative to a workspace root; empty is the root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelPath {
    components: Vec<String>,
    /// Written with a trailing `/`: then it must name a directory.
    dir_only: bool,
}

impl RelPath {
    /// The root itself.
    pub fn root() -> Self {
        Self::default()
    }

    /// Parses a path as a client sent it (already percent-decoded, once).
    /// `""` and `"."` name the root; one trailing `/` is tolerated.
    pub fn parse(raw: &str) -> Result<Self, ConfineError> {
        if raw.len() > MAX_PATH_BYTES {
            return Err(ConfineError::Invalid("the path is longer than 4096 bytes"));
        }
        if raw.contains('\0') {
            return Err(ConfineError::Invalid("NUL in path"));
        }
        if raw.starts_with('/') {
            return Err(ConfineError::Invalid("the path must be relative"));
        }
        if raw.is_empty() || raw == "." {
            return Ok(Self::root());
        }
        let trimmed = raw.strip_suffix('/');
        let components = trimmed
            .unwrap_or(raw)
            .split('/')
            .map(|name| check_name(name, NameRule::Existing).map(|()| name.to_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            components,
            dir_only: trimmed.is_some(),
        })
    }

    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// `a/b/c`; empty for the root.
    pub fn as_str(&self) -> String {
        self.components.join("/")
    }

    /// This path with `name` appended (checked as [`NameRule::New`]).
    pub fn join_new(&self, name: &str) -> Result<Self, ConfineError> {
        check_name(name, NameRule::New)?;
        let mut components = self.components.clone();
        components.push(name.to_owned());
        let joined = Self {
            components,
            dir_only: false,
        };
        if joined.as_str().len() > MAX_PATH_BYTES {
            return Err(ConfineError::Invalid("the path is longer than 4096 bytes"));
        }
        Ok(joined)
    }
}

/// How [`Root::resolve`] treats the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// Follow every link; the whole path must exist.
    Existing,
    /// Follow links in the parent directories, which must exist; the final
    /// component is taken as it is (it may be missing, or a link that is not
    /// followed). For creating or replacing an entry.
    Parent,
    /// Like `Parent`, but the parents need only exist as far as they do:
    /// links are followed as far as the path exists, and the rest is kept as
    /// written. For naming paths that may have been deleted (git pathspecs;
    /// git itself never follows a link in the working tree).
    Lenient,
}

/// A path under a [`Root`] with no symbolic link in it (except possibly its
/// final component, for [`Resolve::Parent`] and [`Resolve::Lenient`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    components: Vec<OsString>,
}

impl Resolved {
    /// The path relative to the root, `/`-separated, as raw bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, component) in self.components.iter().enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(component.as_bytes());
        }
        out
    }

    /// Whether any component is `.git` (in any case): git's own directory,
    /// which is never written through the file routes.
    pub fn in_git_dir(&self) -> bool {
        self.components
            .iter()
            .any(|c| c.as_bytes().eq_ignore_ascii_case(b".git"))
    }

    fn split_last(&self) -> Option<(&OsStr, &[OsString])> {
        self.components
            .split_last()
            .map(|(last, parents)| (last.as_os_str(), parents))
    }
}

/// A workspace checkout: its canonical path and a descriptor of it that
/// every open starts from.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    fd: OwnedFd,
}

impl Root {
    /// Opens the root directory; `NotFound` if it does not exist.
    pub fn open(path: &Path) -> Result<Self, ConfineError> {
        let path = std::fs::canonicalize(path)?;
        // Canonical, so no link in it; one swapped in since is not followed.
        let fd = rustix::fs::open(
            &path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self { path, fd })
    }

    /// Resolves `rel` under the root (see the module documentation).
    pub fn resolve(&self, rel: &RelPath, how: Resolve) -> Result<Resolved, ConfineError> {
        let names = rel.components();
        let (to_follow, kept_last) = match (how, names.split_last()) {
            (Resolve::Parent | Resolve::Lenient, Some((last, parents))) => (parents, Some(last)),
            (Resolve::Parent, None) => {
                return Err(ConfineError::Invalid("the root has no parent"));
            }
            _ => (names, None),
        };
        // The longest prefix of `to_follow` that exists, canonicalised.
        let mut existing = to_follow.len();
        let canonical = loop {
            let candidate: PathBuf = std::iter::once(self.path.as_os_str())
                .chain(to_follow[..existing].iter().map(|n| OsStr::new(n.as_str())))
                .collect();
            match std::fs::canonicalize(&candidate) {
                Ok(canonical) => break canonical,
                Err(err)
                    if existing > 0
                        && matches!(
                            err.raw_os_error().map(Errno::from_raw_os_error),
                            Some(Errno::NOENT | Errno::NOTDIR)
                        ) =>
                {
                    existing -= 1;
                }
                Err(err) => return Err(err.into()),
            }
        };
        let inside = canonical
            .strip_prefix(&self.path)
            .map_err(|_| ConfineError::Outside)?;
        if existing < to_follow.len() && how != Resolve::Lenient {
            return Err(ConfineError::NotFound);
        }
        // `file/` names nothing, as in POSIX.
        if how == Resolve::Existing && rel.dir_only && !canonical.is_dir() {
            return Err(ConfineError::NotADirectory);
        }
        let mut components = Vec::new();
        for component in inside.components() {
            match component {
                Component::Normal(name) => components.push(name.to_owned()),
                // A canonical path below the root has only normal components.
                _ => return Err(ConfineError::Outside),
            }
        }
        components.extend(to_follow[existing..].iter().map(OsString::from));
        components.extend(kept_last.map(OsString::from));
        Ok(Resolved { components })
    }

    /// Walks `names` from the root, refusing any symbolic link, and returns
    /// an `O_PATH` descriptor of the directory reached.
    fn walk(&self, names: &[OsString]) -> Result<OwnedFd, ConfineError> {
        let mut fd = self.fd.try_clone()?;
        for name in names {
            fd = rustix::fs::openat(
                &fd,
                name.as_os_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
        }
        Ok(fd)
    }

    /// The directory `resolved` names, opened for reading and for creating
    /// entries relative to it.
    pub fn open_dir(&self, resolved: &Resolved) -> Result<OwnedFd, ConfineError> {
        let (parent, name) = match resolved.split_last() {
            Some((name, parents)) => (self.walk(parents)?, name),
            None => (self.fd.try_clone()?, OsStr::new(".")),
        };
        let fd = rustix::fs::openat(
            &parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| match errno {
            // A regular file, or a symbolic link (which was not followed).
            Errno::NOTDIR | Errno::LOOP => ConfineError::NotADirectory,
            other => other.into(),
        })?;
        Ok(fd)
    }

    /// The regular file `resolved` names, opened for reading, with its
    /// metadata (from the descriptor, so both describe the same file).
    pub fn open_file(&self, resolved: &Resolved) -> Result<(File, Metadata), ConfineError> {
        let (name, parents) = resolved.split_last().ok_or(ConfineError::NotAFile)?;
        let parent = self.walk(parents)?;
        // Non-blocking, so a FIFO cannot hang the open; refused just below.
        let fd = rustix::fs::openat(
            &parent,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| match errno {
            Errno::LOOP => ConfineError::NotAFile,
            other => other.into(),
        })?;
        let file = File::from(fd);
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(ConfineError::NotAFile);
        }
        rustix::fs::fcntl_setfl(&file, OFlags::empty())?;
        Ok((file, metadata))
    }

    /// The metadata of `resolved` itself (a link is not followed).
    pub fn lstat(&self, resolved: &Resolved) -> Result<Metadata, ConfineError> {
        let fd = match resolved.split_last() {
            Some((name, parents)) => rustix::fs::openat(
                self.walk(parents)?,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?,
            None => self.fd.try_clone()?,
        };
        Ok(File::from(fd).metadata()?)
    }

    /// The target of the symbolic link `resolved` names.
    pub fn read_link(&self, resolved: &Resolved) -> Result<Vec<u8>, ConfineError> {
        let (name, parents) = resolved.split_last().ok_or(ConfineError::NotFound)?;
        let parent = self.walk(parents)?;
        Ok(rustix::fs::readlinkat(&parent, name, Vec::new())?.into_bytes())
    }
}

/// The metadata of the entry `name` in directory `dir` (not following a
/// link), or `None` if it is gone.
pub fn entry_metadata(dir: impl AsFd, name: &OsStr) -> Result<Option<Metadata>, ConfineError> {
    match rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(File::from(fd).metadata()?)),
        Err(Errno::NOENT) => Ok(None),
        Err(errno) => Err(errno.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn invalid(raw: &str) -> bool {
        matches!(RelPath::parse(raw), Err(ConfineError::Invalid(_)))
    }

    #[test]
    fn lexical_checks_refuse_hostile_paths() {
        for raw in [
            "/etc/passwd",
            "//x",
            "..",
            "../x",
            "a/../b",
            "a/..",
            "./a",
            "a/./b",
            "a//b",
            "a/b//",
            "a\0b",
            "\0",
        ] {
            assert!(invalid(raw), "{raw:?} should be invalid");
        }
        assert!(invalid(&"a".repeat(256)));
        assert!(!invalid(&"a".repeat(255)));
        assert!(invalid(&"a/".repeat(2049)));
    }

    #[test]
    fn lexical_checks_accept_ordinary_and_odd_names() {
        assert!(RelPath::parse("").unwrap().is_root());
        assert!(RelPath::parse(".").unwrap().is_root());
        assert_eq!(RelPath::parse("src/").unwrap().as_str(), "src");
        assert_ne!(
            RelPath::parse("src/").unwrap(),
            RelPath::parse("src").unwrap()
        );
        for raw in [
            "a b/c d.txt",
            "%2e%2e",
            "..%2f..",
            "...",
            "..\\..",
            "\u{ff0e}\u{ff0e}/\u{2215}etc",
            "line\nbreak",
            ".git/config",
            ".hidden",
        ] {
            assert_eq!(RelPath::parse(raw).unwrap().as_str(), raw, "{raw:?}");
        }
    }

    #[test]
    fn new_names_are_stricter() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\nb", "a\u{7f}", "a\0"] {
            assert!(check_name(bad, NameRule::New).is_err(), "{bad:?}");
        }
        assert!(check_name("a\nb", NameRule::Existing).is_ok());
        assert!(check_name("résumé (1).pdf", NameRule::New).is_ok());
        assert!(RelPath::root().join_new("x/y").is_err());
        assert_eq!(
            RelPath::parse("a").unwrap().join_new("b").unwrap().as_str(),
            "a/b"
        );
    }

    struct Tree {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    /// `<tmp>/root` with links in and out, and `<tmp>/outside/secret`.
    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("sub/deep")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("sub/file.txt"), "inside").unwrap();
        std::fs::write(outside.join("secret"), "secret").unwrap();
        symlink(&outside, root.join("out_abs")).unwrap();
        symlink("../outside", root.join("out_rel")).unwrap();
        symlink("../outside/secret", root.join("out_file")).unwrap();
        symlink("sub", root.join("in_dir")).unwrap();
        symlink("sub/file.txt", root.join("in_file")).unwrap();
        symlink("../../../root/sub", root.join("sub/deep/round_trip")).unwrap();
        symlink("loop_b", root.join("loop_a")).unwrap();
        symlink("loop_a", root.join("loop_b")).unwrap();
        symlink("../outside/missing", root.join("dangling_out")).unwrap();
        Tree {
            _dir: dir,
            root,
            outside,
        }
    }

    fn resolve(root: &Root, raw: &str, how: Resolve) -> Result<String, ConfineError> {
        let resolved = root.resolve(&RelPath::parse(raw)?, how)?;
        Ok(String::from_utf8(resolved.to_bytes()).unwrap())
    }

    #[test]
    fn links_inside_are_followed_and_links_out_refused() {
        let t = tree();
        let root = Root::open(&t.root).unwrap();
        assert_eq!(resolve(&root, "", Resolve::Existing).unwrap(), "");
        assert_eq!(
            resolve(&root, "in_dir/file.txt", Resolve::Existing).unwrap(),
            "sub/file.txt"
        );
        assert_eq!(
            resolve(&root, "in_file", Resolve::Existing).unwrap(),
            "sub/file.txt"
        );
        assert_eq!(
            resolve(&root, "sub/deep/round_trip/file.txt", Resolve::Existing).unwrap(),
            "sub/file.txt"
        );
        for raw in [
            "out_abs",
            "out_abs/secret",
            "out_rel/secret",
            "out_file",
            "out_abs/does/not/exist",
        ] {
            assert!(
                matches!(
                    resolve(&root, raw, Resolve::Existing),
                    Err(ConfineError::Outside)
                ),
                "{raw}"
            );
        }
        // The final link itself is fine when it is not followed...
        assert_eq!(
            resolve(&root, "out_abs", Resolve::Parent).unwrap(),
            "out_abs"
        );
        // ...but not a path through it.
        assert!(matches!(
            resolve(&root, "out_abs/new", Resolve::Parent),
            Err(ConfineError::Outside)
        ));
        assert!(matches!(
            resolve(&root, "loop_a", Resolve::Existing),
            Err(ConfineError::Invalid(_))
        ));
        assert!(matches!(
            resolve(&root, "dangling_out", Resolve::Existing),
            Err(ConfineError::NotFound)
        ));
        assert!(matches!(
            resolve(&root, "sub/nothing", Resolve::Existing),
            Err(ConfineError::NotFound)
        ));
        assert!(matches!(
            resolve(&root, "sub/file.txt/x", Resolve::Existing),
            Err(ConfineError::NotFound)
        ));
        assert!(matches!(
            resolve(&root, "sub/file.txt/", Resolve::Existing),
            Err(ConfineError::NotADirectory)
        ));
        assert_eq!(resolve(&root, "in_dir/", Resolve::Existing).unwrap(), "sub");
        assert_eq!(
            resolve(&root, "in_dir/gone/file", Resolve::Lenient).unwrap(),
            "sub/gone/file"
        );
        assert!(matches!(
            resolve(&root, "out_rel/gone", Resolve::Lenient),
            Err(ConfineError::Outside)
        ));
        assert_eq!(
            resolve(&root, "out_rel", Resolve::Lenient).unwrap(),
            "out_rel"
        );
        assert_eq!(
            resolve(&root, "gone/with/parents", Resolve::Lenient).unwrap(),
            "gone/with/parents"
        );
    }

    #[test]
    fn opening_refuses_links_and_non_files() {
        let t = tree();
        let root = Root::open(&t.root).unwrap();
        let file = root
            .resolve(&RelPath::parse("in_file").unwrap(), Resolve::Existing)
            .unwrap();
        let (_, metadata) = root.open_file(&file).unwrap();
        assert_eq!(metadata.len(), 6);
        let dir = root
            .resolve(&RelPath::parse("sub").unwrap(), Resolve::Existing)
            .unwrap();
        assert!(matches!(root.open_file(&dir), Err(ConfineError::NotAFile)));
        assert!(matches!(
            root.open_dir(&file),
            Err(ConfineError::NotADirectory)
        ));
        root.open_dir(&dir).unwrap();

        // A path that was resolved, then had a directory swapped for a link
        // out: the walk refuses it instead of following.
        let resolved = root
            .resolve(&RelPath::parse("sub/file.txt").unwrap(), Resolve::Existing)
            .unwrap();
        std::fs::rename(t.root.join("sub"), t.root.join("sub.old")).unwrap();
        symlink(&t.outside, t.root.join("sub")).unwrap();
        std::fs::write(t.outside.join("file.txt"), "secret").unwrap();
        assert!(root.open_file(&resolved).is_err());
        assert!(root.open_dir(&dir).is_err());

        // A final link swapped in is not followed either.
        std::fs::remove_file(t.root.join("sub")).unwrap();
        std::fs::rename(t.root.join("sub.old"), t.root.join("sub")).unwrap();
        std::fs::remove_file(t.root.join("sub/file.txt")).unwrap();
        symlink(t.outside.join("secret"), t.root.join("sub/file.txt")).unwrap();
        assert!(matches!(
            root.open_file(&resolved),
            Err(ConfineError::NotAFile)
        ));
        // The link itself can be inspected without following it.
        assert!(root.lstat(&resolved).unwrap().file_type().is_symlink());
        assert_eq!(
            root.read_link(&resolved).unwrap(),
            t.outside.join("secret").as_os_str().as_bytes()
        );
    }

    #[test]
    fn fifos_do_not_hang_an_open() {
        let t = tree();
        let status = std::process::Command::new("mkfifo")
            .arg(t.root.join("pipe"))
            .status();
        if !status.is_ok_and(|s| s.success()) {
            return; // no mkfifo here; nothing to test
        }
        let root = Root::open(&t.root).unwrap();
        let pipe = root
            .resolve(&RelPath::parse("pipe").unwrap(), Resolve::Existing)
            .unwrap();
        assert!(matches!(root.open_file(&pipe), Err(ConfineError::NotAFile)));
    }

    #[test]
    fn git_dirs_are_recognised_in_any_case() {
        let t = tree();
        let root = Root::open(&t.root).unwrap();
        for raw in [".git", ".git/x", ".GIT/x", "sub/.Git"] {
            let r = root
                .resolve(&RelPath::parse(raw).unwrap(), Resolve::Lenient)
                .unwrap();
            assert!(r.in_git_dir(), "{raw}");
        }
        let r = root
            .resolve(&RelPath::parse(".gitignore").unwrap(), Resolve::Lenient)
            .unwrap();
        assert!(!r.in_git_dir());
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(ConfineError::Invalid("x").code(), "path_invalid");
        assert_eq!(ConfineError::Outside.code(), "path_outside_workspace");
        assert_eq!(ConfineError::NotFound.code(), "not_found");
        assert_eq!(
            ConfineError::from(io::Error::from_raw_os_error(Errno::LOOP.raw_os_error())).code(),
            "path_invalid"
        );
    }
}
