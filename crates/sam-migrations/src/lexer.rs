//! A small SQLite tokenizer and statement splitter.
//!
//! It knows just enough of the grammar to find statement boundaries and
//! keywords reliably: comments are dropped, string literals and quoted
//! identifiers become single tokens (so a keyword inside them is never seen
//! as a keyword), and the `BEGIN … END` body of `CREATE TRIGGER` stays in one
//! statement even though it contains semicolons.

/// What a token is; only as fine-grained as the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A bare keyword or identifier.
    Word,
    /// `"…"`, `` `…` `` or `[…]`.
    QuotedIdent,
    /// `'…'`, with `''` escapes.
    String,
    /// Starts with a digit (`0`, `1.5`, `0x1F`).
    Number,
    /// Any other single character (`;`, `(`, `=`, `.`).
    Punct,
}

/// One token with its source text (quotes included) and 1-based line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind,
    pub text: &'a str,
    pub line: usize,
}

impl Token<'_> {
    /// True for a bare word equal to `keyword`, ignoring ASCII case.
    pub fn is_word(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(keyword)
    }

    pub fn is_punct(&self, c: char) -> bool {
        self.kind == TokenKind::Punct && self.text.len() == c.len_utf8() && self.text.starts_with(c)
    }

    /// The unquoted value of a string literal or quoted identifier, or the
    /// text itself for other tokens.
    pub fn unquoted(&self) -> String {
        match self.kind {
            TokenKind::String => strip(self.text, '\'', Some("''")),
            TokenKind::QuotedIdent => match self.text.as_bytes().first() {
                Some(b'"') => strip(self.text, '"', Some("\"\"")),
                Some(b'`') => strip(self.text, '`', Some("``")),
                _ => self
                    .text
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .unwrap_or(self.text)
                    .to_owned(),
            },
            _ => self.text.to_owned(),
        }
    }
}

fn strip(text: &str, quote: char, escape: Option<&str>) -> String {
    let inner = text.strip_prefix(quote).unwrap_or(text);
    let inner = inner.strip_suffix(quote).unwrap_or(inner);
    match escape {
        Some(e) => inner.replace(e, &quote.to_string()),
        None => inner.to_owned(),
    }
}

/// One SQL statement: its tokens (without the terminating `;`) and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// 0-based position among the non-empty statements of the file.
    pub index: usize,
    /// 1-based line of the statement's first token.
    pub line: usize,
    /// Source text from the first token to the end of the last one.
    pub text: &'a str,
    pub tokens: Vec<Token<'a>>,
}

/// The tokenizer met a literal or quoted identifier that never closes.
///
/// Reported rather than tolerated: everything after the opening quote would
/// be invisible to the rules, so the gate must not call such a file safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unterminated {
    /// 1-based line of the opening quote.
    pub line: usize,
    /// Byte offset of the opening quote.
    pub offset: usize,
}

/// Tokenizes `sql`, dropping whitespace and comments.
pub fn tokenize(sql: &str) -> Result<Vec<Token<'_>>, Unterminated> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let start_line = line;
        let kind = match c {
            b'\n' => {
                line += 1;
                i += 1;
                continue;
            }
            _ if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                // SQLite lets an unclosed block comment run to end of input.
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    line += usize::from(bytes[i] == b'\n');
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
                continue;
            }
            b'\'' | b'"' | b'`' | b'[' => {
                let close = if c == b'[' { b']' } else { c };
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(Unterminated {
                                line: start_line,
                                offset: start,
                            });
                        }
                        Some(&b) if b == close => {
                            // A doubled quote is an escaped quote (not for `[…]`).
                            if c != b'[' && bytes.get(i + 1) == Some(&close) {
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(&b) => {
                            line += usize::from(b == b'\n');
                            i += 1;
                        }
                    }
                }
                if c == b'\'' {
                    TokenKind::String
                } else {
                    TokenKind::QuotedIdent
                }
            }
            _ if c.is_ascii_digit() => {
                while bytes.get(i).is_some_and(|&b| is_word_byte(b) || b == b'.') {
                    i += 1;
                }
                TokenKind::Number
            }
            _ if is_word_byte(c) => {
                while bytes.get(i).is_some_and(|&b| is_word_byte(b)) {
                    i += 1;
                }
                TokenKind::Word
            }
            _ => {
                // One character, however many bytes it takes.
                i += sql[i..].chars().next().map_or(1, char::len_utf8);
                TokenKind::Punct
            }
        };
        tokens.push(Token {
            kind,
            text: &sql[start..i],
            line: start_line,
        });
    }
    Ok(tokens)
}

/// Identifier characters: ASCII alphanumerics, `_`, `$` and any non-ASCII
/// byte (SQLite treats all of them as identifier characters).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || !b.is_ascii()
}

/// Splits `sql` into statements at top-level semicolons.
pub fn split_statements(sql: &str) -> Result<Vec<Statement<'_>>, Unterminated> {
    let tokens = tokenize(sql)?;
    let mut statements = Vec::new();
    let mut current: Vec<Token<'_>> = Vec::new();
    let mut body = TriggerBody::default();
    for token in tokens {
        if token.is_punct(';') && !body.open {
            push_statement(sql, &mut statements, std::mem::take(&mut current));
            body = TriggerBody::default();
            continue;
        }
        body.observe(&current, &token);
        current.push(token);
    }
    push_statement(sql, &mut statements, current);
    Ok(statements)
}

/// Tracks whether the splitter is inside a trigger's `BEGIN … END`.
///
/// `CASE … END` can appear inside the body, so `END` only closes the body
/// when no `CASE` is open.
#[derive(Default)]
struct TriggerBody {
    open: bool,
    case_depth: usize,
}

impl TriggerBody {
    fn observe(&mut self, before: &[Token<'_>], token: &Token<'_>) {
        if !self.open {
            if token.is_word("BEGIN") && is_create_trigger(before) {
                self.open = true;
            }
        } else if token.is_word("CASE") {
            self.case_depth += 1;
        } else if token.is_word("END") {
            if self.case_depth > 0 {
                self.case_depth -= 1;
            } else {
                self.open = false;
            }
        }
    }
}

/// `CREATE [TEMP | TEMPORARY] TRIGGER …`
pub fn is_create_trigger(tokens: &[Token<'_>]) -> bool {
    let mut words = tokens.iter();
    if !words.next().is_some_and(|t| t.is_word("CREATE")) {
        return false;
    }
    match words.next() {
        Some(t) if t.is_word("TEMP") || t.is_word("TEMPORARY") => {
            words.next().is_some_and(|t| t.is_word("TRIGGER"))
        }
        Some(t) => t.is_word("TRIGGER"),
        None => false,
    }
}

fn push_statement<'a>(sql: &'a str, out: &mut Vec<Statement<'a>>, tokens: Vec<Token<'a>>) {
    let (Some(first), Some(last)) = (tokens.first(), tokens.last()) else {
        return;
    };
    let start = offset_in(sql, first.text);
    let end = offset_in(sql, last.text) + last.text.len();
    out.push(Statement {
        index: out.len(),
        line: first.line,
        text: &sql[start..end],
        tokens,
    });
}

/// Byte offset of `part`, which must be a sub-slice of `whole`.
fn offset_in(whole: &str, part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        split_statements(sql)
            .unwrap()
            .iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let sql =
            "CREATE TABLE a (x TEXT DEFAULT ';'); -- c;\n/* d; */ INSERT INTO \"a;b\" VALUES (1);;";
        assert_eq!(
            texts(sql),
            [
                "CREATE TABLE a (x TEXT DEFAULT ';')",
                "INSERT INTO \"a;b\" VALUES (1)"
            ]
        );
    }

    #[test]
    fn trigger_bodies_stay_in_one_statement() {
        let sql = "CREATE TRIGGER t AFTER UPDATE ON a BEGIN\n  UPDATE a SET n = CASE WHEN 1 THEN 2 END WHERE id = NEW.id;\n  DELETE FROM b WHERE x = 1;\nEND;\nSELECT 1;";
        let statements = split_statements(sql).unwrap();
        assert_eq!(statements.len(), 2);
        assert!(statements[0].text.ends_with("END"));
        assert_eq!(statements[1].text, "SELECT 1");
        assert_eq!(statements[1].line, 5);
    }

    #[test]
    fn begin_transaction_is_an_ordinary_statement() {
        assert_eq!(
            texts("BEGIN TRANSACTION; CREATE TABLE a (x); COMMIT;"),
            ["BEGIN TRANSACTION", "CREATE TABLE a (x)", "COMMIT"]
        );
    }

    #[test]
    fn escaped_quotes_and_lines_are_tracked() {
        let tokens = tokenize("SELECT 'it''s\nfine', \"a\"\"b\", [c d]\n, `e`").unwrap();
        let kinds: Vec<TokenKind> = tokens.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                TokenKind::Word,
                TokenKind::String,
                TokenKind::Punct,
                TokenKind::QuotedIdent,
                TokenKind::Punct,
                TokenKind::QuotedIdent,
                TokenKind::Punct,
                TokenKind::QuotedIdent,
            ]
        );
        assert_eq!(tokens[1].unquoted(), "it's\nfine");
        assert_eq!(tokens[3].unquoted(), "a\"b");
        assert_eq!(tokens[5].unquoted(), "c d");
        assert_eq!(tokens[6].line, 3);
        assert_eq!(tokens[7].unquoted(), "e");
    }

    #[test]
    fn unterminated_literals_are_errors() {
        assert_eq!(
            tokenize("SELECT 1;\nSELECT 'x"),
            Err(Unterminated {
                line: 2,
                offset: 17
            })
        );
        assert_eq!(
            tokenize("SELECT \"x"),
            Err(Unterminated { line: 1, offset: 7 })
        );
        // An open block comment runs to the end, as in SQLite.
        assert_eq!(tokenize("SELECT 1 /* x").unwrap().len(), 2);
    }
}
