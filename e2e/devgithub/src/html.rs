//! Minimal HTML for the browser-facing pages (sign-in, install): escaping
//! and one plain layout. No scripts; forms and links only, so a browser
//! test can drive them and a human can read them.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for element content and double-quoted attributes.
pub(crate) fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A hidden form field, escaped.
pub(crate) fn hidden(name: &str, value: &str) -> String {
    format!(
        r#"<input type="hidden" name="{}" value="{}">"#,
        escape(name),
        escape(value)
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1f2328}\
h1{font-size:1.4rem}.note{color:#59636e;font-size:.9rem}.error{color:#d1242f;border:1px solid #d1242f;padding:.5rem 1rem;border-radius:6px}\
.button,button{display:inline-block;margin:.25rem 0;padding:.4rem .9rem;border:1px solid #d1d9e0;border-radius:6px;background:#f6f8fa;color:#1f2328;text-decoration:none;font:inherit;cursor:pointer}\
button.primary{background:#1f883d;color:#fff;border-color:#1f883d}\
fieldset{border:1px solid #d1d9e0;border-radius:6px;margin:1rem 0}label{display:block;margin:.3rem 0}input[type=text],input[type=email]{padding:.3rem;width:18rem}";

/// A complete page; `body` must already be escaped HTML.
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · devgithub</title>\
         <style>{STYLE}</style></head><body><h1>{}</h1>{body}\
         <p class=\"note\">devgithub: a local GitHub stand-in for development and tests.</p></body></html>\n",
        escape(title),
        escape(title),
    );
    (status, Html(html)).into_response()
}

/// An error page with a plain-text message.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        title,
        &format!(r#"<p class="error">{}</p>"#, escape(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
