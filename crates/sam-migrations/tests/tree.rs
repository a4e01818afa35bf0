//! The append-only lock over a migration tree, exercised in temp dirs, plus
//! the gate run over this repository's own migrations.

use std::fs;
use std::path::{Path, PathBuf};

use sam_migrations::{LOCK_FILE, MigrationError, Report, check_tree, lock_tree, sha256_hex};
use tempfile::TempDir;

const CREATE_NODES: &str = "CREATE TABLE nodes (id TEXT PRIMARY KEY);\n";
const ADD_COLUMN: &str = "ALTER TABLE nodes ADD COLUMN status TEXT;\n";

fn write(root: &Path, path: &str, text: &str) {
    let full = root.join(path);
    fs::create_dir_all(full.parent().expect("path has a parent")).expect("create dirs");
    fs::write(full, text).expect("write file");
}

fn codes(report: &Report) -> Vec<(&str, &str)> {
    report
        .findings
        .iter()
        .map(|f| (f.path.as_str(), f.code()))
        .collect()
}

fn lock_text(root: &Path) -> String {
    fs::read_to_string(root.join(LOCK_FILE)).expect("read lock file")
}

/// A tree with one locked D1 migration and one locked Durable Object migration.
fn locked_tree() -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "migrations/0001_nodes.sql", CREATE_NODES);
    write(
        dir.path(),
        "durable-objects/migrations/node_session/0001_init.sql",
        "CREATE TABLE events (seq INTEGER PRIMARY KEY);\n",
    );
    let locked = lock_tree(dir.path()).expect("initial lock");
    assert_eq!(
        locked,
        [
            "durable-objects/migrations/node_session/0001_init.sql",
            "migrations/0001_nodes.sql"
        ]
    );
    dir
}

#[test]
fn empty_tree_is_clean_and_locking_it_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let report = check_tree(dir.path()).unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(report.new_files.is_empty());
    assert_eq!(lock_tree(dir.path()).unwrap(), Vec::<String>::new());
    assert!(!dir.path().join(LOCK_FILE).exists());
}

#[test]
fn lock_records_sorted_paths_and_hashes() {
    let dir = locked_tree();
    assert_eq!(
        lock_text(dir.path()),
        format!(
            "durable-objects/migrations/node_session/0001_init.sql {}\nmigrations/0001_nodes.sql {}\n",
            sha256_hex(b"CREATE TABLE events (seq INTEGER PRIMARY KEY);\n"),
            sha256_hex(CREATE_NODES.as_bytes()),
        )
    );
    let report = check_tree(dir.path()).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.locked_files, 2);
    assert!(report.new_files.is_empty());
}

#[test]
fn editing_a_locked_file_is_rejected() {
    let dir = locked_tree();
    write(
        dir.path(),
        "migrations/0001_nodes.sql",
        "CREATE TABLE nodes (id TEXT);\n",
    );
    let report = check_tree(dir.path()).unwrap();
    assert_eq!(
        codes(&report),
        [("migrations/0001_nodes.sql", "locked_file_changed")]
    );
    // Even a whitespace change counts: the applied text is what matters.
    write(
        dir.path(),
        "migrations/0001_nodes.sql",
        &format!("{CREATE_NODES}\n"),
    );
    let report = check_tree(dir.path()).unwrap();
    assert_eq!(
        codes(&report),
        [("migrations/0001_nodes.sql", "locked_file_changed")]
    );
}

#[test]
fn removing_a_locked_file_is_rejected() {
    let dir = locked_tree();
    fs::remove_file(
        dir.path()
            .join("durable-objects/migrations/node_session/0001_init.sql"),
    )
    .unwrap();
    let report = check_tree(dir.path()).unwrap();
    assert_eq!(
        codes(&report),
        [(
            "durable-objects/migrations/node_session/0001_init.sql",
            "locked_file_missing"
        )]
    );
}

#[test]
fn new_file_with_a_forbidden_statement_is_rejected() {
    let dir = locked_tree();
    write(
        dir.path(),
        "migrations/0002_cleanup.sql",
        "-- tidy up\nDELETE FROM nodes;\n",
    );
    let report = check_tree(dir.path()).unwrap();
    assert_eq!(
        codes(&report),
        [("migrations/0002_cleanup.sql", "delete_without_where")]
    );
    let message = report.findings[0].to_string();
    assert!(
        message.starts_with("migrations/0002_cleanup.sql: line 2"),
        "{message}"
    );
}

#[test]
fn new_file_out_of_order_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "migrations/0001_nodes.sql", CREATE_NODES);
    write(dir.path(), "migrations/0003_status.sql", ADD_COLUMN);
    lock_tree(dir.path()).unwrap();
    write(
        dir.path(),
        "migrations/0002_late.sql",
        "CREATE INDEX i ON nodes (id);\n",
    );
    let report = check_tree(dir.path()).unwrap();
    assert_eq!(
        codes(&report),
        [("migrations/0002_late.sql", "out_of_order")]
    );
}

#[test]
fn prefixes_are_ordered_per_directory() {
    // A Durable Object class starts its own numbering at 0001 even though
    // D1 is already further along.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "migrations/0001_nodes.sql", CREATE_NODES);
    write(dir.path(), "migrations/0002_status.sql", ADD_COLUMN);
    lock_tree(dir.path()).unwrap();
    write(
        dir.path(),
        "durable-objects/migrations/workspace/0001_init.sql",
        "CREATE TABLE w (x);\n",
    );
    let report = check_tree(dir.path()).unwrap();
    assert!(report.is_clean(), "{report}");
}

#[test]
fn duplicate_prefix_is_rejected() {
    let dir = locked_tree();
    write(dir.path(), "migrations/0001_again.sql", ADD_COLUMN);
    write(dir.path(), "migrations/0002_a.sql", ADD_COLUMN);
    write(dir.path(), "migrations/2_b.sql", ADD_COLUMN);
    let report = check_tree(dir.path()).unwrap();
    assert_eq!(
        codes(&report),
        [
            ("migrations/0001_again.sql", "duplicate_prefix"),
            ("migrations/0002_a.sql", "duplicate_prefix"),
            ("migrations/2_b.sql", "duplicate_prefix"),
        ]
    );
}

#[test]
fn badly_named_and_misplaced_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "migrations/nodes.sql", CREATE_NODES);
    write(dir.path(), "migrations/0001_has space.sql", CREATE_NODES);
    write(
        dir.path(),
        "durable-objects/migrations/0001_init.sql",
        CREATE_NODES,
    );
    // Files that are not SQL are ignored.
    write(dir.path(), "migrations/README.md", "notes\n");
    let report = check_tree(dir.path()).unwrap();
    assert_eq!(
        codes(&report),
        [
            (
                "durable-objects/migrations/0001_init.sql",
                "unexpected_file"
            ),
            ("migrations/0001_has space.sql", "bad_file_name"),
            ("migrations/nodes.sql", "bad_file_name"),
        ]
    );
}

#[test]
fn lock_tree_appends_without_touching_existing_lines() {
    let dir = locked_tree();
    let before = lock_text(dir.path());
    write(dir.path(), "migrations/0002_status.sql", ADD_COLUMN);
    write(
        dir.path(),
        "durable-objects/migrations/node_session/0002_more.sql",
        "CREATE INDEX e ON events (seq);\n",
    );
    let report = check_tree(dir.path()).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.new_files.len(), 2);

    let locked = lock_tree(dir.path()).unwrap();
    assert_eq!(
        locked,
        [
            "durable-objects/migrations/node_session/0002_more.sql",
            "migrations/0002_status.sql"
        ]
    );
    let after = lock_text(dir.path());
    for line in before.lines() {
        assert!(after.lines().any(|l| l == line), "lost line {line}");
    }
    let paths: Vec<&str> = after
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    assert_eq!(paths, sorted);
    assert_eq!(after.lines().count(), 4);
    assert!(after.contains(&format!(
        "migrations/0002_status.sql {}\n",
        sha256_hex(ADD_COLUMN.as_bytes())
    )));
    assert!(check_tree(dir.path()).unwrap().new_files.is_empty());
}

#[test]
fn lock_tree_refuses_and_locks_nothing_when_the_gate_fails() {
    let dir = locked_tree();
    let before = lock_text(dir.path());
    write(dir.path(), "migrations/0002_ok.sql", ADD_COLUMN);
    write(dir.path(), "migrations/0003_bad.sql", "DROP TABLE nodes;\n");
    let err = lock_tree(dir.path()).unwrap_err();
    assert_eq!(err.code(), "rejected");
    let MigrationError::Rejected(report) = err else {
        panic!("expected a rejection");
    };
    assert_eq!(codes(&report), [("migrations/0003_bad.sql", "drop_table")]);
    assert_eq!(lock_text(dir.path()), before);
}

#[test]
fn malformed_or_unsorted_lock_is_rejected() {
    let dir = locked_tree();
    let text = lock_text(dir.path());
    let reversed: Vec<&str> = text.lines().rev().collect();
    fs::write(
        dir.path().join(LOCK_FILE),
        format!("{}\nnot a lock line\n", reversed.join("\n")),
    )
    .unwrap();
    let report = check_tree(dir.path()).unwrap();
    assert_eq!(
        codes(&report),
        [(LOCK_FILE, "lock_malformed"), (LOCK_FILE, "lock_malformed")]
    );
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn repository_migrations_pass_the_gate() {
    let root = repo_root();
    assert!(
        root.join("Cargo.toml").is_file() && root.join("crates").is_dir(),
        "{} is not the repository root",
        root.display()
    );
    let report = check_tree(&root).unwrap();
    assert!(report.is_clean(), "{report}");
}
