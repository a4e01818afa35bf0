//! Statements a migration must not contain.
//!
//! Migrations run unattended against production data, so anything that
//! destroys rows wholesale or switches off referential integrity is refused
//! here and has to be done another way (a new table and a copy, a
//! `WHERE` that states which rows go).

use std::fmt;

use crate::lexer::{self, Token, TokenKind};

/// A forbidden-statement rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `DROP TABLE …`
    DropTable,
    /// `DELETE FROM …` without a top-level `WHERE`.
    DeleteWithoutWhere,
    /// `UPDATE …` without a top-level `WHERE`.
    UpdateWithoutWhere,
    /// `PRAGMA foreign_keys` set to anything but on.
    ForeignKeysOff,
    /// A string or quoted identifier that never closes: the rest of the file
    /// cannot be checked.
    UnterminatedLiteral,
}

impl Rule {
    /// A stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::DropTable => "drop_table",
            Self::DeleteWithoutWhere => "delete_without_where",
            Self::UpdateWithoutWhere => "update_without_where",
            Self::ForeignKeysOff => "foreign_keys_off",
            Self::UnterminatedLiteral => "unterminated_literal",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::DropTable => "DROP TABLE destroys data; migrations are append-only",
            Self::DeleteWithoutWhere => "DELETE without WHERE removes every row",
            Self::UpdateWithoutWhere => "UPDATE without WHERE rewrites every row",
            Self::ForeignKeysOff => {
                "PRAGMA foreign_keys must not be switched off (use PRAGMA defer_foreign_keys)"
            }
            Self::UnterminatedLiteral => "unterminated string or quoted identifier",
        }
    }
}

/// One forbidden statement found in a SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    /// 0-based index of the statement (as split by
    /// [`split_statements`](crate::split_statements)); for a statement inside
    /// a trigger body, the index of the `CREATE TRIGGER`.
    pub statement_index: usize,
    /// 1-based line where the offending statement starts.
    pub line: usize,
}

impl Violation {
    pub fn code(&self) -> &'static str {
        self.rule.code()
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} (statement {}): {} [{}]",
            self.line,
            self.statement_index,
            self.rule.describe(),
            self.rule.code()
        )
    }
}

/// Checks every statement of `sql` against the forbidden-statement rules.
///
/// Keywords inside comments, string literals and quoted identifiers are not
/// statements and are ignored; statements inside a trigger body are checked
/// like top-level ones, since they run every time the trigger fires.
pub fn check_statements(sql: &str) -> Vec<Violation> {
    let statements = match lexer::split_statements(sql) {
        Ok(statements) => statements,
        Err(unterminated) => return vec![unterminated_violation(sql, unterminated)],
    };
    let mut violations = Vec::new();
    for statement in &statements {
        for (rule, line) in check_tokens(&statement.tokens) {
            violations.push(Violation {
                rule,
                statement_index: statement.index,
                line,
            });
        }
    }
    violations
}

fn unterminated_violation(sql: &str, at: lexer::Unterminated) -> Violation {
    // The text before the opening quote tokenizes cleanly; the literal
    // belongs to its last statement unless that one was closed by `;`.
    let prefix = &sql[..at.offset];
    let (count, closed) = lexer::tokenize(prefix).map_or((0, true), |tokens| {
        let count = lexer::split_statements(prefix).map_or(0, |s| s.len());
        (count, tokens.last().is_none_or(|t| t.is_punct(';')))
    });
    Violation {
        rule: Rule::UnterminatedLiteral,
        statement_index: if closed {
            count
        } else {
            count.saturating_sub(1)
        },
        line: at.line,
    }
}

/// Rules for one statement; returns each hit with the line it starts on.
fn check_tokens(tokens: &[Token<'_>]) -> Vec<(Rule, usize)> {
    let Some(first) = tokens.first() else {
        return Vec::new();
    };
    if lexer::is_create_trigger(tokens) {
        return trigger_body(tokens)
            .split(|t| t.is_punct(';'))
            .flat_map(check_tokens)
            .collect();
    }
    let mut hits = Vec::new();
    if first.is_word("DROP") && tokens.get(1).is_some_and(|t| t.is_word("TABLE")) {
        hits.push((Rule::DropTable, first.line));
    }
    if disables_foreign_keys(tokens) {
        hits.push((Rule::ForeignKeysOff, first.line));
    }
    if let Some(verb) = verb_index(tokens) {
        let rest = &tokens[verb + 1..];
        if tokens[verb].is_word("DELETE") && !has_top_level_where(rest) {
            hits.push((Rule::DeleteWithoutWhere, first.line));
        }
        if tokens[verb].is_word("UPDATE") && !has_top_level_where(rest) {
            hits.push((Rule::UpdateWithoutWhere, first.line));
        }
    }
    hits
}

/// The tokens between a trigger's `BEGIN` and its final `END`.
fn trigger_body<'t, 'a>(tokens: &'t [Token<'a>]) -> &'t [Token<'a>] {
    let start = tokens
        .iter()
        .position(|t| t.is_word("BEGIN"))
        .map_or(tokens.len(), |i| i + 1);
    let end = match tokens.last() {
        Some(last) if last.is_word("END") && tokens.len() > start => tokens.len() - 1,
        _ => tokens.len(),
    };
    &tokens[start..end]
}

/// Position of the statement's verb, looking past a `WITH …` prefix whose
/// common table expressions sit in parentheses.
fn verb_index(tokens: &[Token<'_>]) -> Option<usize> {
    if !tokens.first()?.is_word("WITH") {
        return Some(0);
    }
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(1) {
        if token.is_punct('(') {
            depth += 1;
        } else if token.is_punct(')') {
            depth = depth.saturating_sub(1);
        } else if depth == 0
            && ["SELECT", "INSERT", "REPLACE", "UPDATE", "DELETE", "VALUES"]
                .iter()
                .any(|verb| token.is_word(verb))
        {
            return Some(i);
        }
    }
    None
}

/// A `WHERE` outside any parentheses: one inside a sub-query filters the
/// sub-query, not the rows being changed.
fn has_top_level_where(tokens: &[Token<'_>]) -> bool {
    let mut depth = 0usize;
    tokens.iter().any(|token| {
        if token.is_punct('(') {
            depth += 1;
        } else if token.is_punct(')') {
            depth = depth.saturating_sub(1);
        }
        depth == 0 && token.is_word("WHERE")
    })
}

/// `PRAGMA [schema.]foreign_keys = v` or `PRAGMA [schema.]foreign_keys(v)`
/// where `v` does not switch it on.
///
/// SQLite reads any value other than a non-zero number, `on`, `yes` or
/// `true` as off (including typos and negative numbers), so this
/// allow-lists the "on" spellings rather than deny-listing "off" ones.
fn disables_foreign_keys(tokens: &[Token<'_>]) -> bool {
    if !tokens.first().is_some_and(|t| t.is_word("PRAGMA")) {
        return false;
    }
    let name_at = if tokens.get(2).is_some_and(|t| t.is_punct('.')) {
        3
    } else {
        1
    };
    let is_foreign_keys = tokens.get(name_at).is_some_and(|t| {
        matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent)
            && t.unquoted().eq_ignore_ascii_case("foreign_keys")
    });
    if !is_foreign_keys {
        return false;
    }
    let Some(op) = tokens.get(name_at + 1) else {
        // A bare `PRAGMA foreign_keys` only reads the setting.
        return false;
    };
    if !op.is_punct('=') && !op.is_punct('(') {
        return false;
    }
    let mut value = tokens.get(name_at + 2);
    // SQLite's grammar drops a leading `+`; a leading `-` stays and reads as off.
    if value.is_some_and(|t| t.is_punct('+')) {
        value = tokens.get(name_at + 3);
    }
    !value.is_some_and(switches_on)
}

fn switches_on(token: &Token<'_>) -> bool {
    if token.kind == TokenKind::Punct {
        return false;
    }
    let value = token.unquoted();
    if value.starts_with(|c: char| c.is_ascii_digit()) {
        // Like C's atoi: the leading digits decide.
        return value
            .bytes()
            .take_while(u8::is_ascii_digit)
            .any(|b| b != b'0');
    }
    ["on", "yes", "true"]
        .iter()
        .any(|word| value.eq_ignore_ascii_case(word))
}
