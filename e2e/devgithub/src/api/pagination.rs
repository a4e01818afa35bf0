//! GitHub-style pagination: `page` / `per_page` (default 30, at most 100)
//! and an RFC 8288 `Link` header with `prev`, `next`, `last`, `first`.

use std::convert::Infallible;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::header::LINK;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::server::{AppState, Base};

const DEFAULT_PER_PAGE: usize = 30;
const MAX_PER_PAGE: usize = 100;

/// The requested page and what is needed to link to the others.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    number: usize,
    size: usize,
    /// `{base}{path}`, without a query.
    url: String,
    /// The query minus `page`, kept in order for the links.
    other_params: Vec<(String, String)>,
}

impl Page {
    /// Parses `page`/`per_page` the lenient way GitHub does: values that
    /// are not positive numbers fall back to the defaults.
    pub(crate) fn parse(base: &str, path: &str, query: Option<&str>) -> Self {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let number = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .filter(|n| *n >= 1)
        };
        Page {
            number: number("page").unwrap_or(1),
            size: number("per_page")
                .unwrap_or(DEFAULT_PER_PAGE)
                .min(MAX_PER_PAGE),
            url: format!("{base}{path}"),
            other_params: pairs.into_iter().filter(|(k, _)| k != "page").collect(),
        }
    }

    fn link_to(&self, page: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.other_params {
            query.append_pair(k, v);
        }
        query.append_pair("page", &page.to_string());
        format!("<{}?{}>", self.url, query.finish())
    }

    /// The requested slice of `items`, the total, and the `Link` header
    /// value (`None` when everything fits on one page).
    pub(crate) fn apply<T>(&self, items: Vec<T>) -> Paged<T> {
        let total = items.len();
        let last = total.div_ceil(self.size).max(1);
        let slice = items
            .into_iter()
            .skip((self.number - 1).saturating_mul(self.size))
            .take(self.size)
            .collect();
        let mut rels = Vec::new();
        if self.number > 1 {
            rels.push(format!(
                "{}; rel=\"prev\"",
                self.link_to((self.number - 1).min(last))
            ));
        }
        if self.number < last {
            rels.push(format!("{}; rel=\"next\"", self.link_to(self.number + 1)));
            rels.push(format!("{}; rel=\"last\"", self.link_to(last)));
        }
        if self.number > 1 {
            rels.push(format!("{}; rel=\"first\"", self.link_to(1)));
        }
        Paged {
            items: slice,
            total,
            link: (!rels.is_empty()).then(|| rels.join(", ")),
        }
    }
}

impl FromRequestParts<AppState> for Page {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let Base(base) = Base::from_request_parts(parts, state).await?;
        Ok(Page::parse(&base, parts.uri.path(), parts.uri.query()))
    }
}

/// One page of results.
#[derive(Debug)]
pub(crate) struct Paged<T> {
    pub items: Vec<T>,
    pub total: usize,
    pub link: Option<String>,
}

/// `body` as JSON with the `Link` header, if any.
pub(crate) fn respond(body: Value, link: Option<String>) -> Response {
    let mut response = Json(body).into_response();
    if let Some(value) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(LINK, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_like_github() {
        let page = Page::parse("http://h:1", "/x", Some("per_page=2&page=2&a=b"));
        let paged = page.apply((1..=5).collect::<Vec<_>>());
        assert_eq!(paged.items, [3, 4]);
        assert_eq!(paged.total, 5);
        assert_eq!(
            paged.link.unwrap(),
            "<http://h:1/x?per_page=2&a=b&page=1>; rel=\"prev\", \
             <http://h:1/x?per_page=2&a=b&page=3>; rel=\"next\", \
             <http://h:1/x?per_page=2&a=b&page=3>; rel=\"last\", \
             <http://h:1/x?per_page=2&a=b&page=1>; rel=\"first\""
        );
    }

    #[test]
    fn single_page_has_no_link_and_bad_values_default() {
        let page = Page::parse("http://h", "/x", Some("page=zero&per_page=-1"));
        assert_eq!((page.number, page.size), (1, 30));
        let paged = page.apply(vec![1, 2]);
        assert!(paged.link.is_none());
        assert_eq!(
            Page::parse("http://h", "/x", Some("per_page=1000")).size,
            100
        );
        let past_end = Page::parse("http://h", "/x", Some("page=9")).apply(vec![1]);
        assert!(past_end.items.is_empty());
        assert!(past_end.link.unwrap().contains("rel=\"prev\""));
    }
}
