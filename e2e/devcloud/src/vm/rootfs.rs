//! A server's root filesystem: a host directory that guest paths are
//! rebased under, like a chroot that exists only in path arithmetic.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Directories an Ubuntu cloud image has, so `curl -o /usr/local/bin/x`
/// and unit lookups behave as on a fresh VM.
const SKELETON: &[&str] = &[
    "etc/default",
    "etc/systemd/system",
    "usr/local/bin",
    "usr/bin",
    "usr/lib/systemd/system",
    "var/lib",
    "var/log",
    "run",
    "tmp",
    "root",
    "home",
    "opt",
];

#[derive(Debug, Clone)]
pub(crate) struct RootFs {
    root: PathBuf,
}

impl RootFs {
    pub(crate) fn new(root: PathBuf) -> Self {
        RootFs { root }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.root
    }

    pub(crate) fn create_skeleton(&self) -> io::Result<()> {
        for dir in SKELETON {
            fs::create_dir_all(self.root.join(dir))?;
        }
        Ok(())
    }

    /// The host path for a guest path. Relative paths are taken relative to
    /// `/` (cloud-init's working directory), `~` means `/root`, and `..`
    /// cannot climb above the root, exactly as inside a chroot.
    pub(crate) fn host_path(&self, guest: &str) -> PathBuf {
        let guest = if guest == "~" {
            "/root".to_owned()
        } else if let Some(rest) = guest.strip_prefix("~/") {
            format!("/root/{rest}")
        } else {
            guest.to_owned()
        };
        let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
        for component in Path::new(&guest).components() {
            match component {
                Component::Normal(p) => parts.push(p),
                Component::ParentDir => {
                    parts.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        let mut host = self.root.clone();
        host.extend(parts);
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebases_and_confines() {
        let fs = RootFs::new(PathBuf::from("/state/servers/1/root"));
        let r = |p: &str| fs.host_path(p);
        assert_eq!(
            r("/etc/x.conf"),
            PathBuf::from("/state/servers/1/root/etc/x.conf")
        );
        assert_eq!(r("opt/a"), PathBuf::from("/state/servers/1/root/opt/a"));
        assert_eq!(
            r("/../../etc/passwd"),
            PathBuf::from("/state/servers/1/root/etc/passwd")
        );
        assert_eq!(r("/a/./b/../c"), PathBuf::from("/state/servers/1/root/a/c"));
        assert_eq!(
            r("~/.ssh"),
            PathBuf::from("/state/servers/1/root/root/.ssh")
        );
        assert_eq!(r("/"), PathBuf::from("/state/servers/1/root"));
    }
}
