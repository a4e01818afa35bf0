//! Query strings with repeated keys (`status=a&status=b`), which Hetzner
//! uses for multi-valued filters.

pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Query(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The last value given for `key`.
    pub(crate) fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_encoded_keys() {
        let q = Query::parse(Some(
            "status=running&status=off&label_selector=a%3Db%2C%21c&page=2",
        ));
        assert_eq!(q.all("status"), ["running", "off"]);
        assert_eq!(q.one("label_selector"), Some("a=b,!c"));
        assert_eq!(q.one("page"), Some("2"));
        assert_eq!(q.one("nope"), None);
    }
}
