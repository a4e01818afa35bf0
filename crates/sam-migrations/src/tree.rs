//! The append-only hash lock over the repository's migration files.
//!
//! A migration that has been applied anywhere must never change: D1 and
//! Durable Object SQLite record only that a file ran, not what it said, so an
//! edited file silently diverges databases that ran the old text from those
//! that run the new one. The lock file records each accepted file's SHA-256;
//! files not in it are new and must pass the statement rules, and their
//! numeric prefix must sort after everything already locked so they apply
//! last everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::rules::{Violation, check_statements};

/// D1 migrations, applied in file-name order by wrangler.
pub const D1_DIR: &str = "migrations";
/// Holds one directory of migrations per Durable Object class (snake case).
pub const DURABLE_OBJECT_DIR: &str = "durable-objects/migrations";
/// The lock file, relative to the repository root.
pub const LOCK_FILE: &str = "migrations/migrations.lock";

/// What is wrong with one file (or one lock line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A locked file's content no longer matches its recorded hash.
    LockedFileChanged { locked: String, actual: String },
    /// A locked file has been deleted or renamed.
    LockedFileMissing,
    /// A new file's prefix does not sort after every locked file in its directory.
    OutOfOrder { prefix: u64, latest_locked: u64 },
    /// A new file shares its numeric prefix with another file in its directory.
    DuplicatePrefix { prefix: u64, other: String },
    /// A new file is not named `<digits>_<name>.sql` without whitespace.
    BadFileName,
    /// A new file contains a forbidden statement.
    Statement(Violation),
    /// A new file is not UTF-8, so its statements cannot be checked.
    NotUtf8,
    /// A line of the lock file is not `<path> <sha256>` in sorted order.
    LockMalformed { line: usize, reason: &'static str },
    /// A `.sql` file outside any migration directory's expected layout.
    UnexpectedFile,
}

impl Problem {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::LockedFileChanged { .. } => "locked_file_changed",
            Self::LockedFileMissing => "locked_file_missing",
            Self::OutOfOrder { .. } => "out_of_order",
            Self::DuplicatePrefix { .. } => "duplicate_prefix",
            Self::BadFileName => "bad_file_name",
            Self::Statement(v) => v.code(),
            Self::NotUtf8 => "not_utf8",
            Self::LockMalformed { .. } => "lock_malformed",
            Self::UnexpectedFile => "unexpected_file",
        }
    }
}

/// One problem, attributed to a repository-relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub problem: Problem,
}

impl Finding {
    pub fn code(&self) -> &'static str {
        self.problem.code()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.path;
        match &self.problem {
            Problem::LockedFileChanged { locked, actual } => write!(
                f,
                "{path}: locked migration was edited (locked sha256 {locked}, now {actual}); \
                 revert it and add a new migration instead"
            ),
            Problem::LockedFileMissing => write!(
                f,
                "{path}: locked migration was deleted or renamed; restore it"
            ),
            Problem::OutOfOrder {
                prefix,
                latest_locked,
            } => write!(
                f,
                "{path}: prefix {prefix} must be greater than the latest locked prefix \
                 {latest_locked} in this directory"
            ),
            Problem::DuplicatePrefix { prefix, other } => {
                write!(f, "{path}: prefix {prefix} is also used by {other}")
            }
            Problem::BadFileName => write!(
                f,
                "{path}: migration files are named <digits>_<name>.sql without whitespace"
            ),
            Problem::Statement(violation) => write!(f, "{path}: {violation}"),
            Problem::NotUtf8 => write!(f, "{path}: not valid UTF-8"),
            Problem::LockMalformed { line, reason } => write!(f, "{path}:{line}: {reason}"),
            Problem::UnexpectedFile => write!(
                f,
                "{path}: Durable Object migrations belong in {DURABLE_OBJECT_DIR}/<class_snake>/"
            ),
        }?;
        write!(f, " [{}]", self.code())
    }
}

/// A migration file not yet in the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Repository-relative, `/`-separated.
    pub path: String,
    pub sha256: String,
}

/// The outcome of [`check_tree`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Everything that fails the gate; empty when the tree is acceptable.
    pub findings: Vec<Finding>,
    /// Files not yet locked (whether or not they have findings).
    pub new_files: Vec<NewFile>,
    /// How many files the lock lists.
    pub locked_files: usize,
}

impl Report {
    /// True when the gate passes.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return write!(
                f,
                "migrations ok: {} locked, {} new",
                self.locked_files,
                self.new_files.len()
            );
        }
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        write!(f, "{} migration problem(s)", self.findings.len())
    }
}

/// Why the gate could not run or refused to lock.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("could not access {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("migrations fail the gate, nothing was locked:\n{0}")]
    Rejected(Report),
}

impl MigrationError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::Rejected(_) => "rejected",
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> MigrationError + '_ {
    move |source| MigrationError::Io {
        path: path.to_owned(),
        source,
    }
}

/// SHA-256 of a file's bytes, as lowercase hex (the lock's format).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks the migration tree under `repo_root` against the lock.
pub fn check_tree(repo_root: &Path) -> Result<Report, MigrationError> {
    let mut findings = Vec::new();
    let lock = read_lock(repo_root, &mut findings)?;
    let (files, unexpected) = discover(repo_root)?;
    findings.extend(unexpected.into_iter().map(|path| Finding {
        path,
        problem: Problem::UnexpectedFile,
    }));

    for entry in &lock {
        let full = repo_root.join(&entry.path);
        let problem = match fs::read(&full) {
            Ok(bytes) => {
                let actual = sha256_hex(&bytes);
                (actual != entry.sha256).then(|| Problem::LockedFileChanged {
                    locked: entry.sha256.clone(),
                    actual,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(Problem::LockedFileMissing),
            Err(e) => return Err(io_error(&full)(e)),
        };
        findings.extend(problem.map(|problem| Finding {
            path: entry.path.clone(),
            problem,
        }));
    }

    let locked: BTreeSet<&str> = lock.iter().map(|e| e.path.as_str()).collect();
    let mut new_files = Vec::new();
    for path in files.iter().filter(|p| !locked.contains(p.as_str())) {
        let full = repo_root.join(path);
        let bytes = fs::read(&full).map_err(io_error(&full))?;
        check_new_file(path, &bytes, &lock, &files, &mut findings);
        new_files.push(NewFile {
            path: path.clone(),
            sha256: sha256_hex(&bytes),
        });
    }

    Ok(Report {
        findings,
        new_files,
        locked_files: lock.len(),
    })
}

/// Adds every new file to the lock, if the whole tree passes the gate.
///
/// Existing lines are kept byte for byte; new lines are merged in path
/// order, so the lock stays sorted and its diff is additions only. Returns
/// the newly locked paths. Refuses (locking nothing) if [`check_tree`]
/// reports any finding, so a half-valid batch can never be partly locked.
pub fn lock_tree(repo_root: &Path) -> Result<Vec<String>, MigrationError> {
    let report = check_tree(repo_root)?;
    if !report.is_clean() {
        return Err(MigrationError::Rejected(report));
    }
    if report.new_files.is_empty() {
        return Ok(Vec::new());
    }
    let lock_path = repo_root.join(LOCK_FILE);
    let existing = match fs::read_to_string(&lock_path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_error(&lock_path)(e)),
    };
    // A clean report means every existing line parsed, so keying by the
    // first field is exact; blank lines are dropped by the merge.
    let mut lines: BTreeMap<String, String> = existing
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            (
                l.split(' ').next().unwrap_or_default().to_owned(),
                l.to_owned(),
            )
        })
        .collect();
    for file in &report.new_files {
        lines.insert(file.path.clone(), format!("{} {}", file.path, file.sha256));
    }
    let mut text: String = lines.into_values().collect::<Vec<_>>().join("\n");
    text.push('\n');

    if let Some(dir) = lock_path.parent() {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    // Write then rename, so an interrupted run never leaves a truncated lock.
    let tmp = lock_path.with_extension("lock.tmp");
    fs::write(&tmp, text).map_err(io_error(&tmp))?;
    fs::rename(&tmp, &lock_path).map_err(io_error(&lock_path))?;
    Ok(report.new_files.into_iter().map(|f| f.path).collect())
}

struct LockEntry {
    path: String,
    sha256: String,
}

fn read_lock(
    repo_root: &Path,
    findings: &mut Vec<Finding>,
) -> Result<Vec<LockEntry>, MigrationError> {
    let path = repo_root.join(LOCK_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&path)(e)),
    };
    let (entries, problems) = parse_lock(&text);
    findings.extend(problems.into_iter().map(|problem| Finding {
        path: LOCK_FILE.to_owned(),
        problem,
    }));
    Ok(entries)
}

/// Parses lock text; blank lines are ignored.
fn parse_lock(text: &str) -> (Vec<LockEntry>, Vec<Problem>) {
    let mut entries: Vec<LockEntry> = Vec::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim_end();
        if raw.is_empty() {
            continue;
        }
        let parsed = raw.split_once(' ').filter(|(path, hash)| {
            !path.is_empty()
                && hash.len() == 64
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        let Some((path, hash)) = parsed else {
            problems.push(Problem::LockMalformed {
                line,
                reason: "expected `<path> <lowercase sha256 hex>`",
            });
            continue;
        };
        if entries
            .last()
            .is_some_and(|prev| prev.path.as_str() >= path)
        {
            problems.push(Problem::LockMalformed {
                line,
                reason: "paths must be unique and sorted",
            });
        }
        entries.push(LockEntry {
            path: path.to_owned(),
            sha256: hash.to_owned(),
        });
    }
    (entries, problems)
}

/// Lists migration files (sorted, repo-relative) and misplaced `.sql` files.
fn discover(repo_root: &Path) -> Result<(Vec<String>, Vec<String>), MigrationError> {
    let mut files = sql_files(repo_root, D1_DIR)?;
    let unexpected = sql_files(repo_root, DURABLE_OBJECT_DIR)?;
    for class in subdirs(repo_root, DURABLE_OBJECT_DIR)? {
        files.extend(sql_files(
            repo_root,
            &format!("{DURABLE_OBJECT_DIR}/{class}"),
        )?);
    }
    files.sort();
    Ok((files, unexpected))
}

/// Entries of `repo_root/dir` (absent directory: none), sorted by name.
fn entries(repo_root: &Path, dir: &str) -> Result<Vec<(String, fs::FileType)>, MigrationError> {
    let full = repo_root.join(dir);
    let read = match fs::read_dir(&full) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&full)(e)),
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(io_error(&full))?;
        let kind = entry.file_type().map_err(io_error(&entry.path()))?;
        // Non-UTF-8 names are kept (lossily) so they surface as bad names
        // instead of being skipped unchecked.
        out.push((entry.file_name().to_string_lossy().into_owned(), kind));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn sql_files(repo_root: &Path, dir: &str) -> Result<Vec<String>, MigrationError> {
    Ok(entries(repo_root, dir)?
        .into_iter()
        // Case-insensitive so `X.SQL` is checked rather than silently skipped.
        .filter(|(name, kind)| {
            !kind.is_dir()
                && Path::new(name)
                    .extension()
                    .is_some_and(|ext| ext.eq_ignore_ascii_case("sql"))
        })
        .map(|(name, _)| format!("{dir}/{name}"))
        .collect())
}

fn subdirs(repo_root: &Path, dir: &str) -> Result<Vec<String>, MigrationError> {
    Ok(entries(repo_root, dir)?
        .into_iter()
        .filter(|(_, kind)| kind.is_dir())
        .map(|(name, _)| name)
        .collect())
}

/// Splits `dir/0003_name.sql` into (`dir`, `Some(3)`); `None` for a bad name.
fn dir_and_prefix(path: &str) -> (&str, Option<u64>) {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    let well_formed = digits > 0
        && name.as_bytes().get(digits) == Some(&b'_')
        && name.len() > digits + 1 + ".sql".len()
        && !name.contains(|c: char| c.is_whitespace() || c.is_control() || c == '\u{FFFD}');
    let prefix = well_formed.then(|| name[..digits].parse().ok()).flatten();
    (dir, prefix)
}

fn check_new_file(
    path: &str,
    bytes: &[u8],
    lock: &[LockEntry],
    files: &[String],
    findings: &mut Vec<Finding>,
) {
    let mut report = |problem| {
        findings.push(Finding {
            path: path.to_owned(),
            problem,
        });
    };
    match std::str::from_utf8(bytes) {
        Ok(sql) => check_statements(sql)
            .into_iter()
            .for_each(|v| report(Problem::Statement(v))),
        // D1 and SQLite read SQL as UTF-8; anything else cannot be checked.
        Err(_) => report(Problem::NotUtf8),
    }
    let (dir, prefix) = dir_and_prefix(path);
    let Some(prefix) = prefix else {
        report(Problem::BadFileName);
        return;
    };
    let same_dir_prefix = |other: &str| {
        let (other_dir, other_prefix) = dir_and_prefix(other);
        (other_dir == dir).then_some(other_prefix).flatten()
    };
    if let Some(other) = files
        .iter()
        .map(String::as_str)
        .chain(lock.iter().map(|e| e.path.as_str()))
        .find(|&other| other != path && same_dir_prefix(other) == Some(prefix))
    {
        report(Problem::DuplicatePrefix {
            prefix,
            other: other.to_owned(),
        });
    }
    if let Some(latest_locked) = lock.iter().filter_map(|e| same_dir_prefix(&e.path)).max()
        && prefix < latest_locked
    {
        report(Problem::OutOfOrder {
            prefix,
            latest_locked,
        });
    }
}
