//! The client file system methods an agent may call (`fs/read_text_file`,
//! `fs/write_text_file`), confined to the workspace checkout with the same
//! guards as the file routes ([`crate::confine`]): the agent names absolute
//! paths, which must lie under the checkout; symbolic links leading out are
//! refused, opens never follow a link, and `.git` is never written.
//!
//! Blocking: callers run these on the blocking pool.

use std::io::{Read as _, Write as _};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::confine::{ConfineError, RelPath, Resolve, Root};

/// Files larger than this are not read whole.
const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;

/// Why a file method failed; becomes a JSON-RPC error for the agent.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{0} is not an absolute path inside the workspace")]
    Outside(String),
    #[error("{0}")]
    Confine(#[from] ConfineError),
    #[error("the .git directory is not written through the client")]
    GitDir,
    #[error("the file is larger than {MAX_READ_BYTES} bytes")]
    TooLarge,
}

/// `path` (absolute, as the agent sends it) relative to `checkout`.
fn relative(checkout: &Path, path: &Path) -> Result<RelPath, FsError> {
    let outside = || FsError::Outside(path.display().to_string());
    let canonical_root = std::fs::canonicalize(checkout).map_err(ConfineError::from)?;
    let rest = path
        .strip_prefix(checkout)
        .or_else(|_| path.strip_prefix(&canonical_root))
        .map_err(|_| outside())?;
    let text = rest.to_str().ok_or_else(outside)?;
    Ok(RelPath::parse(text)?)
}

/// Reads a text file: from 1-based `line`, at most `limit` lines.
pub fn read_text_file(
    checkout: &Path,
    path: &Path,
    line: Option<u32>,
    limit: Option<u32>,
) -> Result<String, FsError> {
    let rel = relative(checkout, path)?;
    let root = Root::open(checkout)?;
    let resolved = root.resolve(&rel, Resolve::Existing)?;
    let (file, metadata) = root.open_file(&resolved)?;
    if metadata.len() > MAX_READ_BYTES {
        return Err(FsError::TooLarge);
    }
    let mut bytes = Vec::new();
    file.take(MAX_READ_BYTES)
        .read_to_end(&mut bytes)
        .map_err(ConfineError::from)?;
    let text = String::from_utf8_lossy(&bytes);
    if line.is_none() && limit.is_none() {
        return Ok(text.into_owned());
    }
    let skip = line.map_or(0, |l| l.saturating_sub(1) as usize);
    let take = limit.map_or(usize::MAX, |l| l as usize);
    Ok(text.split_inclusive('\n').skip(skip).take(take).collect())
}

/// Writes (creates or replaces) a text file; missing parent directories
/// are created.
pub fn write_text_file(checkout: &Path, path: &Path, content: &str) -> Result<(), FsError> {
    let rel = relative(checkout, path)?;
    let root = Root::open(checkout)?;
    let target = root.resolve(&rel, Resolve::Lenient)?;
    if target.in_git_dir() {
        return Err(FsError::GitDir);
    }
    let names = rel.components();
    let Some((name, parents)) = names.split_last() else {
        return Err(ConfineError::NotAFile.into());
    };
    let parent_rel = RelPath::parse(&parents.join("/"))?;
    // What exists of the parents is inside (checked just above); the rest
    // is created. A link swapped in meanwhile is caught by the walk below,
    // which never follows one.
    let parent_resolved = root.resolve(&parent_rel, Resolve::Lenient)?;
    let missing = root.resolve(&parent_rel, Resolve::Existing).is_err();
    if missing {
        let relative = String::from_utf8_lossy(&parent_resolved.to_bytes()).into_owned();
        std::fs::create_dir_all(checkout.join(relative)).map_err(ConfineError::from)?;
    }
    let parent = root.resolve(&parent_rel, Resolve::Existing)?;
    let dir = root.open_dir(&parent)?;
    let fd = rustix::fs::openat(
        &dir,
        name.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|errno| match errno {
        rustix::io::Errno::LOOP | rustix::io::Errno::ISDIR => ConfineError::NotAFile,
        other => other.into(),
    })?;
    let mut file = std::fs::File::from(fd);
    file.write_all(content.as_bytes())
        .map_err(ConfineError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_stay_in_the_checkout() {
        let tmp = tempfile::tempdir().unwrap();
        let checkout = tmp.path().join("repo");
        std::fs::create_dir_all(checkout.join(".git")).unwrap();
        std::fs::write(tmp.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink(tmp.path(), checkout.join("up")).unwrap();

        write_text_file(
            &checkout,
            &checkout.join("src/new/a.txt"),
            "one\ntwo\nthree\n",
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(checkout.join("src/new/a.txt")).unwrap(),
            "one\ntwo\nthree\n"
        );
        assert_eq!(
            read_text_file(&checkout, &checkout.join("src/new/a.txt"), Some(2), Some(1)).unwrap(),
            "two\n"
        );
        for path in [
            tmp.path().join("secret"),
            checkout.join("up/secret"),
            checkout.join("../secret"),
            std::path::PathBuf::from("relative.txt"),
        ] {
            assert!(
                read_text_file(&checkout, &path, None, None).is_err(),
                "{path:?}"
            );
            assert!(write_text_file(&checkout, &path, "x").is_err(), "{path:?}");
        }
        assert!(matches!(
            write_text_file(&checkout, &checkout.join(".git/config"), "x"),
            Err(FsError::GitDir)
        ));
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("secret")).unwrap(),
            "outside"
        );
    }
}
