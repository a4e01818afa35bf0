//! `page`/`per_page` query handling and the `meta.pagination` object.

use serde_json::{Value, json};

use super::error::ApiError;

const DEFAULT_PER_PAGE: usize = 25;
const MAX_PER_PAGE: usize = 50;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    page: usize,
    per_page: usize,
}

impl Page {
    pub(crate) fn from_query(page: Option<&str>, per_page: Option<&str>) -> Result<Self, ApiError> {
        let number = |name: &str, raw: Option<&str>, default: usize| -> Result<usize, ApiError> {
            match raw {
                None => Ok(default),
                Some(raw) => raw
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        ApiError::invalid_fields(vec![(
                            name.to_owned(),
                            vec!["must be a positive integer".into()],
                        )])
                    }),
            }
        };
        Ok(Page {
            page: number("page", page, 1)?,
            per_page: number("per_page", per_page, DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE),
        })
    }

    /// The requested slice of `items` and the matching `meta` object.
    pub(crate) fn apply<T>(self, items: Vec<T>) -> (Vec<T>, Value) {
        let total = items.len();
        let last_page = total.div_ceil(self.per_page).max(1);
        let slice: Vec<T> = items
            .into_iter()
            .skip((self.page - 1).saturating_mul(self.per_page))
            .take(self.per_page)
            .collect();
        let meta = json!({
            "pagination": {
                "page": self.page,
                "per_page": self.per_page,
                "previous_page": (self.page > 1).then(|| (self.page - 1).min(last_page)),
                "next_page": (self.page < last_page).then_some(self.page + 1),
                "last_page": last_page,
                "total_entries": total,
            }
        });
        (slice, meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let p = Page::from_query(Some("2"), Some("2")).unwrap();
        let (items, meta) = p.apply(vec![1, 2, 3, 4, 5]);
        assert_eq!(items, [3, 4]);
        let m = &meta["pagination"];
        assert_eq!(m["previous_page"], 1);
        assert_eq!(m["next_page"], 3);
        assert_eq!(m["last_page"], 3);
        assert_eq!(m["total_entries"], 5);

        let (items, meta) = Page::from_query(None, None)
            .unwrap()
            .apply(Vec::<u8>::new());
        assert!(items.is_empty());
        assert_eq!(meta["pagination"]["last_page"], 1);
        assert!(meta["pagination"]["next_page"].is_null());
        assert!(meta["pagination"]["previous_page"].is_null());
        assert_eq!(meta["pagination"]["per_page"], 25);

        assert_eq!(Page::from_query(None, Some("500")).unwrap().per_page, 50);
        assert!(Page::from_query(Some("0"), None).is_err());
        assert!(Page::from_query(Some("x"), None).is_err());
    }
}
