//! `GET /`: the web playground. One page, its script and its style sheet are compiled into the
//! binary (no asset directory to deploy, no build step), and a Content-Security-Policy keeps every
//! resource and request on the server's own origin (the page must work without internet).

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const PAGE: &str = include_str!("../../assets/playground.html");
const SCRIPT: &str = include_str!("../../assets/playground.js");
const STYLE: &str = include_str!("../../assets/playground.css");

/// Same-origin only; `blob:` for the `<audio>` element (MediaSource and whole-file playback),
/// `data:` for the empty favicon.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The playground's routes; the router merges them next to the API.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/playground.js", get(script))
        .route("/playground.css", get(style))
}

pub async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            // The assets change with the binary; revalidating costs nothing on localhost.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Every URL an asset refers to (`src=`, `href=`, CSS `url()`, `fetch(`), for the same-origin check.
pub fn referenced_urls(text: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for marker in ["src=\"", "href=\"", "url(", "fetch(\"", "fetch(`"] {
        let mut rest = text;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            let end = rest.find(['"', '`', ')', ' ', '\n']).unwrap_or(rest.len());
            urls.push(rest[..end].trim_matches(['\'', '"']).to_string());
        }
    }
    urls
}

/// True for a URL that stays on the page's own origin (a path, a fragment, `data:`, `blob:`).
pub fn is_same_origin(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    !(lower.starts_with("//") || lower.contains("://") || lower.starts_with("javascript:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_reference_only_same_origin_urls() {
        for (name, text) in [("html", PAGE), ("js", SCRIPT), ("css", STYLE)] {
            let urls = referenced_urls(text);
            let foreign: Vec<_> = urls.iter().filter(|u| !is_same_origin(u)).collect();
            assert!(
                foreign.is_empty(),
                "{name} refers to other origins: {foreign:?}"
            );
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{name} contains an absolute URL"
            );
        }
        let page_urls = referenced_urls(PAGE);
        assert!(page_urls.contains(&"/playground.js".to_string()));
        assert!(page_urls.contains(&"/playground.css".to_string()));
    }

    #[test]
    fn the_same_origin_check_rejects_other_origins() {
        assert!(!is_same_origin("https://cdn.example.com/lib.js"));
        assert!(!is_same_origin("//cdn.example.com/lib.js"));
        assert!(!is_same_origin("javascript:alert(1)"));
        assert!(is_same_origin("/playground.js"));
        assert!(is_same_origin("data:,"));
        assert!(referenced_urls("<script src=\"https://x.test/a.js\">")
            .iter()
            .any(|u| !is_same_origin(u)));
    }

    #[test]
    fn every_form_control_has_a_label() {
        // Accessibility: each id'd input/select/textarea is named by a <label for=…>.
        for tag in ["<input id=\"", "<select id=\"", "<textarea id=\""] {
            let mut rest = PAGE;
            while let Some(at) = rest.find(tag) {
                rest = &rest[at + tag.len()..];
                let id = &rest[..rest.find('"').unwrap_or(0)];
                assert!(
                    PAGE.contains(&format!("<label for=\"{id}\"")),
                    "control #{id} has no <label for>"
                );
            }
        }
    }

    #[tokio::test]
    async fn page_is_served_as_html_with_a_same_origin_policy() {
        let response = page().await;
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
        assert_eq!(
            script().await.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
    }
}
