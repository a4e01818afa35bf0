//! Forbidden-statement rules: each is caught in its usual spellings, and
//! the same words in harmless positions are not.

use sam_migrations::{Rule, check_statements};

fn codes(sql: &str) -> Vec<&'static str> {
    check_statements(sql)
        .iter()
        .map(sam_migrations::Violation::code)
        .collect()
}

fn assert_rejected(sql: &str, code: &str) {
    assert_eq!(codes(sql), [code], "{sql}");
}

fn assert_allowed(sql: &str) {
    assert_eq!(codes(sql), Vec::<&str>::new(), "{sql}");
}

#[test]
fn drop_table_is_rejected() {
    for sql in [
        "DROP TABLE nodes;",
        "drop table nodes",
        "DROP   TABLE\n\tIF EXISTS \"nodes\";",
        "Drop/* comment */Table nodes;",
        "-- header\nDROP TABLE main.nodes;",
    ] {
        assert_rejected(sql, "drop_table");
    }
}

#[test]
fn delete_without_where_is_rejected() {
    for sql in [
        "DELETE FROM nodes;",
        "delete from nodes",
        "DELETE\nFROM nodes RETURNING id;",
        "DELETE FROM nodes -- WHERE id = 1\n;",
        "DELETE FROM nodes /* WHERE id = 1 */;",
        "DELETE FROM \"where\";",
        "WITH old AS (SELECT id FROM nodes WHERE status = 'gone') DELETE FROM nodes;",
    ] {
        assert_rejected(sql, "delete_without_where");
    }
}

#[test]
fn update_without_where_is_rejected() {
    for sql in [
        "UPDATE nodes SET status = 'ready';",
        "update nodes set status = 'where'",
        "UPDATE OR IGNORE nodes SET n = 1;",
        "UPDATE nodes SET n = (SELECT max(n) FROM other WHERE other.id = 1);",
        "WITH x AS (SELECT 1) UPDATE nodes SET n = 1;",
    ] {
        assert_rejected(sql, "update_without_where");
    }
}

#[test]
fn foreign_keys_off_is_rejected() {
    for sql in [
        "PRAGMA foreign_keys = OFF;",
        "pragma foreign_keys=off;",
        "PRAGMA   FOREIGN_KEYS   =   Off",
        "PRAGMA foreign_keys = 0;",
        "PRAGMA foreign_keys=false;",
        "PRAGMA foreign_keys = no;",
        "PRAGMA foreign_keys = 'off';",
        "PRAGMA foreign_keys(0);",
        "PRAGMA main.foreign_keys = OFF;",
        "PRAGMA \"foreign_keys\" = OFF;",
        "PRAGMA foreign_keys = -1;",
        "PRAGMA foreign_keys = banana;",
        "PRAGMA foreign_keys\n=\n0\n;",
    ] {
        assert_rejected(sql, "foreign_keys_off");
    }
}

#[test]
fn unterminated_literals_are_rejected() {
    let violations =
        check_statements("CREATE TABLE a (x);\nINSERT INTO a VALUES ('oops);\nDROP TABLE a;");
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].rule, Rule::UnterminatedLiteral);
    assert_eq!(violations[0].statement_index, 1);
    assert_eq!(violations[0].line, 2);
}

#[test]
fn violations_carry_statement_index_and_line() {
    let sql = "CREATE TABLE a (x);\n\n-- cleanup\nDELETE FROM a;\nUPDATE a SET x = 1\n  WHERE x = 2;\nUPDATE a SET x = 3;";
    let violations = check_statements(sql);
    let found: Vec<(&str, usize, usize)> = violations
        .iter()
        .map(|v| (v.code(), v.statement_index, v.line))
        .collect();
    assert_eq!(
        found,
        [
            ("delete_without_where", 1, 4),
            ("update_without_where", 3, 7)
        ]
    );
    assert_eq!(
        violations[0].to_string(),
        "line 4 (statement 1): DELETE without WHERE removes every row [delete_without_where]"
    );
}

#[test]
fn every_pattern_is_reported_in_one_file() {
    let sql = "DROP TABLE a; DELETE FROM b; UPDATE c SET x = 1; PRAGMA foreign_keys = OFF;";
    assert_eq!(
        codes(sql),
        [
            "drop_table",
            "delete_without_where",
            "update_without_where",
            "foreign_keys_off"
        ]
    );
}

#[test]
fn ordinary_migrations_are_allowed() {
    for sql in [
        "CREATE TABLE nodes (id TEXT PRIMARY KEY, status TEXT NOT NULL) STRICT;",
        "CREATE TABLE IF NOT EXISTS t (a INTEGER REFERENCES nodes(id) ON DELETE CASCADE ON UPDATE CASCADE);",
        "CREATE INDEX nodes_status ON nodes (status);",
        "DROP INDEX nodes_status;",
        "DROP INDEX IF EXISTS nodes_status;",
        "DROP VIEW v; DROP TRIGGER t;",
        "ALTER TABLE nodes ADD COLUMN region TEXT;",
        "DELETE FROM nodes WHERE status = 'deleted';",
        "delete from nodes where id in (select id from gone)",
        "UPDATE nodes SET status = 'ready' WHERE status IS NULL;",
        "WITH x AS (SELECT id FROM a) UPDATE nodes SET n = 1 WHERE id IN (SELECT id FROM x);",
        "INSERT INTO nodes (id) VALUES ('a') ON CONFLICT (id) DO UPDATE SET status = excluded.status;",
        "INSERT INTO t SELECT * FROM nodes;",
        "PRAGMA foreign_keys = ON;",
        "PRAGMA foreign_keys=1;",
        "PRAGMA foreign_keys(true);",
        "PRAGMA foreign_keys;",
        "PRAGMA defer_foreign_keys = ON;",
        "PRAGMA defer_foreign_keys = OFF;",
        "BEGIN TRANSACTION; CREATE TABLE a (x); COMMIT;",
    ] {
        assert_allowed(sql);
    }
}

#[test]
fn forbidden_words_in_strings_identifiers_and_comments_are_allowed() {
    for sql in [
        "INSERT INTO notes (body) VALUES ('DROP TABLE nodes; DELETE FROM nodes;');",
        "INSERT INTO notes (body) VALUES ('it''s fine; DROP TABLE x');",
        "-- DROP TABLE nodes;\nCREATE TABLE a (x);",
        "/* DELETE FROM nodes;\n UPDATE nodes SET x = 1; */ CREATE TABLE a (x);",
        "CREATE TABLE \"DROP TABLE x; DELETE FROM y\" (\"update\" TEXT);",
        "CREATE TABLE [delete from x] (`update y set z` TEXT);",
        "INSERT INTO notes VALUES ('PRAGMA foreign_keys = OFF');",
        "SELECT 'a' /* ; DROP TABLE t; */ ;",
    ] {
        assert_allowed(sql);
    }
}

#[test]
fn trigger_bodies_are_one_statement_and_allowed() {
    let sql = "\
CREATE TRIGGER nodes_touch AFTER UPDATE ON nodes
FOR EACH ROW WHEN NEW.status <> OLD.status
BEGIN
  UPDATE nodes SET updated_at = CASE WHEN NEW.updated_at IS NULL THEN 0 ELSE NEW.updated_at END
    WHERE id = NEW.id;
  DELETE FROM node_cache WHERE node_id = OLD.id;
  INSERT INTO audit (msg) VALUES ('DROP TABLE; DELETE FROM x;');
END;
CREATE TEMP TRIGGER t2 BEFORE DELETE ON nodes BEGIN SELECT RAISE(ABORT, 'no'); END;
CREATE TABLE after_trigger (x);";
    assert_allowed(sql);
    assert_eq!(sam_migrations::split_statements(sql).unwrap().len(), 3);
}

#[test]
fn statements_inside_trigger_bodies_are_still_checked() {
    // A trigger body runs on every firing, so a blanket delete there is no
    // safer than one at top level.
    let sql = "CREATE TABLE a (x);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n  SELECT 1;\n  DELETE FROM b;\nEND;";
    let violations = check_statements(sql);
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].rule, Rule::DeleteWithoutWhere);
    assert_eq!(violations[0].statement_index, 1);
    assert_eq!(violations[0].line, 4);
}
