//! Files embedded in the binary and served without a key: the API documents (`/openapi.json`,
//! `/asyncapi.yaml`), the dashboard (`/dashboard`) and its icon (`/favicon.ico`). None of them holds data; the dashboard reads
//! everything through the public API with the key the user types into it.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::response::HttpResponse;

/// One embedded file.
#[derive(Debug)]
pub(super) struct Asset {
    /// The URL path it is served at.
    path: &'static str,
    /// The file's bytes.
    body: &'static [u8],
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Whether it is the HTML page, which gets the restrictive security headers.
    page: bool,
}

/// Every embedded file, by path.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/openapi.json",
        body: include_bytes!("../../api/openapi.json"),
        content_type: "application/json",
        page: false,
    },
    Asset {
        path: "/asyncapi.yaml",
        body: include_bytes!("../../api/asyncapi.yaml"),
        content_type: "application/yaml",
        page: false,
    },
    Asset {
        path: "/dashboard",
        body: include_bytes!("../../dashboard/index.html"),
        content_type: "text/html; charset=utf-8",
        page: true,
    },
    Asset {
        path: "/dashboard/app.js",
        body: include_bytes!("../../dashboard/app.js"),
        content_type: "text/javascript; charset=utf-8",
        page: false,
    },
    Asset {
        // The JavaScript client library, served so the dashboard's live tail runs the same file
        // applications import (one copy of the reconnect and resume logic).
        path: "/dashboard/herald-client.js",
        body: include_bytes!("../../clients/js/index.js"),
        content_type: "text/javascript; charset=utf-8",
        page: false,
    },
    Asset {
        path: "/dashboard/style.css",
        body: include_bytes!("../../dashboard/style.css"),
        content_type: "text/css; charset=utf-8",
        page: false,
    },
    Asset {
        // Browsers ask for /favicon.ico on every page of the origin; an SVG answers it (every
        // current browser draws SVG icons) and ends the console's 404 on each dashboard load.
        path: "/favicon.ico",
        body: include_bytes!("../../dashboard/favicon.svg"),
        content_type: "image/svg+xml",
        page: false,
    },
];

/// The page may load only its own script and style and talk only to this server, so even a
/// payload that slipped past the page's escaping could neither run nor send data elsewhere.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The embedded file at `path`, if there is one.
pub(super) fn lookup(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The 200 response carrying `asset`.
pub(super) fn serve(asset: &Asset) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(asset.body)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Revalidate every time so a restarted, upgraded server never runs an old script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset.page {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// `/topics/{name}` and `/topics/{}` compare equal.
    fn normalize(path: &str) -> String {
        path.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The routes of `http::route`, read from its match arms (`["topics", name] =>` is
    /// `/topics/{}`), so a route added there without a document entry fails this test.
    fn router_paths() -> BTreeSet<String> {
        let source = include_str!("http.rs");
        let body = source
            .split("async fn route(")
            .nth(1)
            .and_then(|s| s.split("\n}\n").next())
            .expect("http.rs has fn route");
        let mut paths = BTreeSet::new();
        for line in body.lines() {
            let line = line.trim();
            let Some(pattern) = line
                .strip_prefix('[')
                .and_then(|rest| rest.split_once("] =>"))
                .map(|(inside, _)| inside)
            else {
                continue;
            };
            let path: String = pattern
                .split(',')
                .map(|part| {
                    let part = part.trim();
                    match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                        Some(literal) => format!("/{literal}"),
                        None => "/{}".to_string(),
                    }
                })
                .collect();
            paths.insert(path);
        }
        paths.extend(ASSETS.iter().map(|a| a.path.to_string()));
        paths
    }

    #[test]
    fn every_route_is_documented_and_every_documented_path_is_routed() {
        let doc: serde_json::Value =
            serde_json::from_slice(include_bytes!("../../api/openapi.json")).expect("JSON");
        let documented: BTreeSet<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .map(|p| normalize(p))
            .collect();
        let routed = router_paths();
        assert!(routed.len() >= 15, "parsed too few routes: {routed:?}");
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routes missing from api/openapi.json: {undocumented:?}; \
             documented paths the router lacks: {unrouted:?}"
        );
    }

    #[test]
    fn every_asset_is_non_empty_and_documents_parse() {
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{} is empty", asset.path);
            assert!(std::str::from_utf8(asset.body).is_ok(), "{}", asset.path);
        }
        let openapi: serde_json::Value =
            serde_json::from_slice(lookup("/openapi.json").expect("doc").body).expect("JSON");
        assert_eq!(openapi["openapi"], "3.1.0");
    }
}
