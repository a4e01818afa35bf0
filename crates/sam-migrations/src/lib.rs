//! Migration safety gate.
//!
//! Two checks keep schema migrations safe to apply unattended:
//!
//! * **Forbidden statements** ([`check_statements`]): no `DROP TABLE`, no
//!   `DELETE`/`UPDATE` without `WHERE`, no `PRAGMA foreign_keys = OFF`. SQL is
//!   tokenized, not grepped, so words in comments and strings do not count.
//! * **Append-only lock** ([`check_tree`], [`lock_tree`]): once a migration
//!   file is locked its bytes may never change, and new files must sort
//!   after the locked ones.
//!
//! D1 migrations live in `migrations/*.sql`; Durable Object SQLite
//! migrations in `durable-objects/migrations/<class_snake>/*.sql`. The
//! crate does file I/O only in [`check_tree`] and [`lock_tree`], relative to
//! the root it is given; it reads no environment and no clock.

mod lexer;
mod rules;
mod tree;

pub use lexer::{Statement, Token, TokenKind, Unterminated, split_statements};
pub use rules::{Rule, Violation, check_statements};
pub use tree::{
    D1_DIR, DURABLE_OBJECT_DIR, Finding, LOCK_FILE, MigrationError, NewFile, Problem, Report,
    check_tree, lock_tree, sha256_hex,
};
