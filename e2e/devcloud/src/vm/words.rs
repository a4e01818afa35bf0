//! Splitting command lines into words the way sh (and, near enough,
//! systemd's ExecStart=/Environment=) does: whitespace separates, single
//! quotes are literal, double quotes and backslashes escape.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unterminated quote in {0:?}")]
pub(crate) struct UnterminatedQuote(pub String);

pub(crate) fn split(line: &str) -> Result<Vec<String>, UnterminatedQuote> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err(UnterminatedQuote(line.to_owned())),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => current.push(c),
                            Some(c) => {
                                current.push('\\');
                                current.push(c);
                            }
                            None => return Err(UnterminatedQuote(line.to_owned())),
                        },
                        Some(c) => current.push(c),
                        None => return Err(UnterminatedQuote(line.to_owned())),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    current.push(c);
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(split("a  b\tc").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            split(r#"A="x y" 'B=$z' C=\"q"#).unwrap(),
            ["A=x y", "B=$z", "C=\"q"]
        );
        assert_eq!(split(r#""" x"#).unwrap(), ["", "x"]);
        assert_eq!(split(r#"a"b"'c'"#).unwrap(), ["abc"]);
        assert!(split("'open").is_err());
        assert!(split("").unwrap().is_empty());
    }
}
