//! Hetzner labels: validation of keys and values, and the label-selector
//! query language used by `GET /servers?label_selector=...`.

use std::collections::BTreeMap;

const RESERVED_PREFIX: &str = "hetzner.cloud";

/// `[A-Za-z0-9]` at both ends, `-_.` allowed in between, at most 63 chars.
fn is_name_segment(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A DNS subdomain: dot-separated labels of alphanumerics and inner dashes.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// Why a label was refused, phrased for the `details.fields` messages.
pub(crate) fn key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix == RESERVED_PREFIX {
            return Some(format!("label key '{key}' uses the reserved prefix"));
        }
        if !is_dns_subdomain(prefix) {
            return Some(format!("label key '{key}' has an invalid prefix"));
        }
    }
    if !is_name_segment(name) {
        return Some(format!("label key '{key}' is invalid"));
    }
    None
}

pub(crate) fn value_problem(key: &str, value: &str) -> Option<String> {
    if value.is_empty() || is_name_segment(value) {
        None
    } else {
        Some(format!("label value '{value}' of key '{key}' is invalid"))
    }
}

/// All problems with a label set, in key order.
pub(crate) fn problems(labels: &BTreeMap<String, String>) -> Vec<String> {
    labels
        .iter()
        .flat_map(|(k, v)| key_problem(k).into_iter().chain(value_problem(k, v)))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Selector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label_selector: {0}")]
pub(crate) struct SelectorError(String);

impl Selector {
    pub(crate) fn parse(raw: &str) -> Result<Self, SelectorError> {
        split_top_level(raw)?
            .into_iter()
            .map(|term| parse_requirement(term.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(Selector)
    }

    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|req| match req {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            // Like Kubernetes, from which the syntax comes: a missing key
            // is "not equal" and "not in".
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        })
    }
}

/// Splits on commas that are not inside `( ... )` value lists.
fn split_top_level(raw: &str) -> Result<Vec<&str>, SelectorError> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in raw.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| SelectorError("unbalanced ')'".into()))?;
            }
            ',' if depth == 0 => {
                terms.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError("unbalanced '('".into()));
    }
    terms.push(&raw[start..]);
    Ok(terms)
}

fn parse_requirement(term: &str) -> Result<Requirement, SelectorError> {
    let key = |k: &str| -> Result<String, SelectorError> {
        let k = k.trim();
        if k.is_empty() || k.contains(char::is_whitespace) {
            Err(SelectorError(format!("bad key in '{term}'")))
        } else {
            Ok(k.to_owned())
        }
    };
    if term.is_empty() {
        return Err(SelectorError("empty requirement".into()));
    }
    if let Some(rest) = term.strip_prefix('!') {
        return Ok(Requirement::NotExists(key(rest)?));
    }
    for (op, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((k, list)) = term.split_once(op) {
            let values = parse_value_list(list.trim())
                .ok_or_else(|| SelectorError(format!("bad value list in '{term}'")))?;
            let k = key(k)?;
            return Ok(if negated {
                Requirement::NotIn(k, values)
            } else {
                Requirement::In(k, values)
            });
        }
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(key(k)?, v.trim().to_owned()));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(key(k)?, v.trim().to_owned()));
    }
    Ok(Requirement::Exists(key(term)?))
}

fn parse_value_list(list: &str) -> Option<Vec<String>> {
    let inner = list.strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selector_operators() {
        let l = labels(&[("env", "prod"), ("role", "node")]);
        let m = |s: &str| Selector::parse(s).unwrap().matches(&l);
        assert!(m("env=prod"));
        assert!(m("env==prod"));
        assert!(!m("env=dev"));
        assert!(m("env!=dev"));
        assert!(!m("env!=prod"));
        assert!(m("role"));
        assert!(!m("missing"));
        assert!(m("!missing"));
        assert!(!m("!role"));
        assert!(m("env in (dev,prod)"));
        assert!(!m("env notin (dev,prod)"));
        assert!(m("env=prod,role=node,!x"));
        assert!(!m("env=prod,role=other"));
        assert!(m("missing!=x"));
        assert!(m("env in (prod),role notin (a, b)"));
    }

    #[test]
    fn selector_syntax_errors() {
        for bad in ["", "env=prod,", "=x", "env in (a", "!", "a b=c"] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn label_rules() {
        assert!(key_problem("env").is_none());
        assert!(key_problem("example.com/my").is_none());
        assert!(key_problem("sam.dev/node-id").is_none());
        assert!(key_problem("hetzner.cloud/x").is_some());
        assert!(key_problem("-bad").is_some());
        assert!(key_problem("bad-").is_some());
        assert!(key_problem(&"k".repeat(64)).is_some());
        assert!(key_problem("bad_prefix!/x").is_some());
        assert!(key_problem("").is_some());
        assert!(value_problem("k", "").is_none());
        assert!(value_problem("k", "v1.2_3-x").is_none());
        assert!(value_problem("k", "has space").is_some());
        assert!(value_problem("k", ".dot").is_some());
        assert!(value_problem("k", &"v".repeat(64)).is_some());
    }
}
