//! Comparing two branches of a bare repository, for pull requests: how
//! many commits head has that base lacks, and which files changed since
//! their merge base (GitHub's three-dot comparison).

use std::ffi::OsStr;

use super::bare::{GitError, GitRepos, run, run_status};

/// One file of a comparison, as `git diff --name-status` and `--numstat`
/// report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileChange {
    /// GitHub's words: `added`, `removed`, `modified`, `changed`.
    pub status: &'static str,
    pub path: String,
    /// `None` for binary files.
    pub additions: Option<u64>,
    pub deletions: Option<u64>,
}

/// What a pull request compares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Comparison {
    /// Commits reachable from head but not from base.
    pub commits: u64,
    pub files: Vec<FileChange>,
}

impl Comparison {
    pub(crate) fn additions(&self) -> u64 {
        self.files.iter().filter_map(|f| f.additions).sum()
    }

    pub(crate) fn deletions(&self) -> u64 {
        self.files.iter().filter_map(|f| f.deletions).sum()
    }
}

fn status_word(letter: &str) -> &'static str {
    match letter.chars().next() {
        Some('A') => "added",
        Some('D') => "removed",
        Some('M') => "modified",
        _ => "changed",
    }
}

/// Parses `git diff -z --name-status`: `STATUS NUL path NUL` pairs.
fn parse_name_status(raw: &[u8]) -> Vec<(&'static str, String)> {
    let text = String::from_utf8_lossy(raw);
    let mut fields = text.split('\0').filter(|f| !f.is_empty());
    let mut out = Vec::new();
    while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
        out.push((status_word(status), path.to_owned()));
    }
    out
}

/// Parses `git diff -z --numstat`: `added TAB deleted TAB path NUL`, with
/// `-` for both counts of a binary file.
fn parse_numstat(raw: &[u8]) -> Vec<(Option<u64>, Option<u64>, String)> {
    let text = String::from_utf8_lossy(raw);
    text.split('\0')
        .filter_map(|record| {
            let mut parts = record.splitn(3, '\t');
            let (added, deleted, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((added.parse().ok(), deleted.parse().ok(), path.to_owned()))
        })
        .collect()
}

impl GitRepos {
    /// Compares `head` with `base` (commit SHAs). Histories without a
    /// common ancestor have no file list (GitHub refuses to compare them).
    pub(crate) async fn compare(
        &self,
        id: u64,
        base: &str,
        head: &str,
    ) -> Result<Comparison, GitError> {
        let root = self.root();
        let dir = self.dir(id);
        let dir = Some(dir.as_path());
        let range = format!("{base}..{head}");
        let count = run(
            root,
            dir,
            &["rev-list".as_ref(), "--count".as_ref(), range.as_ref()],
            None,
            &[],
        )
        .await?;
        let commits = String::from_utf8_lossy(&count).trim().parse().unwrap_or(0);

        let (status, merge_base, _) = run_status(
            root,
            dir,
            &["merge-base".as_ref(), base.as_ref(), head.as_ref()],
            None,
            &[],
        )
        .await?;
        if !status.success() {
            return Ok(Comparison {
                commits,
                files: Vec::new(),
            });
        }
        let merge_base = String::from_utf8_lossy(&merge_base).trim().to_owned();
        let diff = |mode: &'static str| {
            let merge_base = merge_base.clone();
            async move {
                let args: [&OsStr; 6] = [
                    "diff".as_ref(),
                    "-z".as_ref(),
                    "--no-renames".as_ref(),
                    mode.as_ref(),
                    merge_base.as_ref(),
                    head.as_ref(),
                ];
                run(root, dir, &args, None, &[]).await
            }
        };
        let names = parse_name_status(&diff("--name-status").await?);
        let counts = parse_numstat(&diff("--numstat").await?);
        let files = names
            .into_iter()
            .map(|(status, path)| {
                let (additions, deletions) = counts
                    .iter()
                    .find(|(_, _, p)| *p == path)
                    .map_or((Some(0), Some(0)), |(a, d, _)| (*a, *d));
                FileChange {
                    status,
                    path,
                    additions,
                    deletions,
                }
            })
            .collect();
        Ok(Comparison { commits, files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_listings_parse() {
        assert_eq!(
            parse_name_status(b"M\0README.md\0A\0src/new file.rs\0D\0old\0"),
            [
                ("modified", "README.md".to_owned()),
                ("added", "src/new file.rs".to_owned()),
                ("removed", "old".to_owned()),
            ]
        );
        assert_eq!(
            parse_numstat(b"3\t1\tREADME.md\0-\t-\tlogo.png\0"),
            [
                (Some(3), Some(1), "README.md".to_owned()),
                (None, None, "logo.png".to_owned()),
            ]
        );
    }
}
