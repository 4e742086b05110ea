//! Request routing, auth (PROTOCOL.md §4), CORS and the JSON error body every failure carries.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tracing::debug;

use super::request::{percent_decode, with_credentials};
use super::response::{error, json, redirect, HttpResponse};
use super::{assets, rest, upgrade, State};
use crate::error::{ApiError, ErrorCode};

/// Entry point of every HTTP request on the listener.
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    let method = req.method().clone();
    let template = route_template(req.uri().path());
    let mut response = route(state.clone(), req).await;
    let status = response.status().as_u16();
    state.metrics.http_request(template, &method, status);
    debug!(%method, route = template, status, "request");
    // The API is meant to be called from browser dashboards on other origins; auth is by key,
    // never by cookie, so a wildcard origin exposes nothing.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(response)
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if req.method() == Method::OPTIONS {
        return preflight();
    }
    // Probes are for load balancers, which hold no key.
    match segments.as_slice() {
        ["livez"] => {
            return allow(&req, &[Method::GET, Method::HEAD])
                .unwrap_or_else(|| json(StatusCode::OK, r#"{"status":"ok"}"#.into()))
        }
        ["readyz"] => {
            return allow(&req, &[Method::GET, Method::HEAD]).unwrap_or_else(|| {
                match state.unready() {
                    Some(why) => json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(r#"{{"status":"{why}"}}"#),
                    ),
                    None => json(StatusCode::OK, r#"{"status":"ready"}"#.into()),
                }
            })
        }
        // The page links its files relatively (so it works behind a path prefix); at
        // `/dashboard/` they would resolve one level too deep. The relative target keeps a prefix.
        ["dashboard", ""] => {
            return allow(&req, &[Method::GET, Method::HEAD])
                .unwrap_or_else(|| redirect("../dashboard"))
        }
        _ => {}
    }
    // The API documents and the dashboard's files hold no data (PROTOCOL.md §4 lists what needs a key).
    if let Some(asset) = assets::lookup(&path) {
        return allow(&req, &[Method::GET, Method::HEAD]).unwrap_or_else(|| assets::serve(asset));
    }
    let websocket = matches!(segments.as_slice(), ["ws"] | ["ws", "sub", _]);
    let caller = match with_credentials(&req, websocket, |c| state.node.caller(c)) {
        Ok(caller) => caller,
        Err(e) => return error(&e),
    };
    let get = [Method::GET];
    let post = [Method::POST];
    let result = match segments.as_slice() {
        ["ws"] => match allow(&req, &get) {
            Some(r) => Ok(r),
            None => upgrade::upgrade(state, caller, req, None).await,
        },
        ["ws", "sub", topic] => match allow(&req, &get) {
            Some(r) => Ok(r),
            None => {
                let topic = percent_decode(topic);
                upgrade::upgrade(state, caller, req, Some(topic)).await
            }
        },
        ["topics"] => match *req.method() {
            Method::GET | Method::HEAD => rest::list_topics(&state, &caller),
            Method::POST => rest::create_topic(&state, &caller, req).await,
            _ => Ok(method_not_allowed(&[Method::GET, Method::POST])),
        },
        ["topics", name] => {
            let name = percent_decode(name);
            match *req.method() {
                Method::GET | Method::HEAD => rest::get_topic(&state, &caller, &name),
                Method::DELETE => rest::delete_topic(&state, &caller, &name).await,
                _ => Ok(method_not_allowed(&[Method::GET, Method::DELETE])),
            }
        }
        ["topics", name, "history"] => match allow(&req, &get) {
            Some(r) => Ok(r),
            None => rest::history(&state, &caller, &percent_decode(name), req.uri().query()),
        },
        ["topics", name, "presence"] => match allow(&req, &get) {
            Some(r) => Ok(r),
            None => rest::presence(&state, &caller, &percent_decode(name)),
        },
        ["publish"] => match allow(&req, &post) {
            Some(r) => Ok(r),
            None => rest::publish(&state, &caller, req).await,
        },
        ["pub", topic] => match allow(&req, &post) {
            Some(r) => Ok(r),
            None => {
                let topic = percent_decode(topic);
                rest::publish_raw(&state, &caller, &topic, req).await
            }
        },
        ["health"] => allow(&req, &get).map_or_else(|| rest::health(&state, &caller), Ok),
        ["stats"] => allow(&req, &get).map_or_else(|| rest::stats(&state, &caller), Ok),
        ["metrics"] => allow(&req, &get).map_or_else(|| rest::metrics(&state, &caller), Ok),
        _ => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no route for {path}"),
        )),
    };
    // The one place a route's error becomes its JSON body and status.
    result.unwrap_or_else(|e| error(&e))
}

/// The route template of `path`, for metrics and logs: never the raw path, so the label set
/// stays small whatever clients send, and no topic name or query string reaches a log line.
/// Keep in step with [`route`]; unknown paths are `other`.
pub(crate) fn route_template(path: &str) -> &'static str {
    let mut segments = path.trim_start_matches('/').split('/');
    let segments = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    );
    match segments {
        (Some("ws"), None, ..) => "/ws",
        (Some("ws"), Some("sub"), Some(_), None) => "/ws/sub/{topic}",
        (Some("topics"), None, ..) => "/topics",
        (Some("topics"), Some(_), None, _) => "/topics/{name}",
        (Some("topics"), Some(_), Some("history"), None) => "/topics/{name}/history",
        (Some("topics"), Some(_), Some("presence"), None) => "/topics/{name}/presence",
        (Some("publish"), None, ..) => "/publish",
        (Some("pub"), Some(_), None, _) => "/pub/{topic}",
        (Some("health"), None, ..) => "/health",
        (Some("stats"), None, ..) => "/stats",
        (Some("metrics"), None, ..) => "/metrics",
        (Some("livez"), None, ..) => "/livez",
        (Some("readyz"), None, ..) => "/readyz",
        (Some("openapi.json"), None, ..) => "/openapi.json",
        (Some("asyncapi.yaml"), None, ..) => "/asyncapi.yaml",
        (Some("dashboard"), None, ..) => "/dashboard",
        (Some("dashboard"), Some(""), None, _) => "/dashboard/",
        (Some("dashboard"), Some("herald-client.js"), None, _) => "/dashboard/herald-client.js",
        (Some("favicon.ico"), None, ..) => "/favicon.ico",
        (Some("dashboard"), Some("app.js"), None, _) => "/dashboard/app.js",
        (Some("dashboard"), Some("style.css"), None, _) => "/dashboard/style.css",
        _ => "other",
    }
}

/// `None` when the request's method is allowed, else the 405 response.
fn allow<B>(req: &Request<B>, methods: &[Method]) -> Option<HttpResponse> {
    if methods.contains(req.method())
        || (req.method() == Method::HEAD && methods.contains(&Method::GET))
    {
        None
    } else {
        Some(method_not_allowed(methods))
    }
}

fn method_not_allowed(methods: &[Method]) -> HttpResponse {
    // Every GET route answers HEAD too (`allow` above), so the header says so.
    let head =
        (methods.contains(&Method::GET) && !methods.contains(&Method::HEAD)).then_some("HEAD");
    let allow = methods
        .iter()
        .map(Method::as_str)
        .chain(head)
        .chain(std::iter::once("OPTIONS"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut response = error(&ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method not allowed; allowed: {allow}"),
    ));
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// CORS preflight: any origin, the methods and headers the API uses.
fn preflight() -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, authorization, x-api-key"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates_never_echo_the_path() {
        assert_eq!(route_template("/topics/secret-name"), "/topics/{name}");
        assert_eq!(
            route_template("/topics/a/history"),
            "/topics/{name}/history"
        );
        assert_eq!(route_template("/ws/sub/x"), "/ws/sub/{topic}");
        assert_eq!(route_template("/ws"), "/ws");
        assert_eq!(route_template("/pub/x"), "/pub/{topic}");
        assert_eq!(route_template("/nope/1/2/3/4"), "other");
        assert_eq!(route_template("/"), "other");
        assert_eq!(route_template("/metrics/x"), "other");
        assert_eq!(route_template("/dashboard/app.js"), "/dashboard/app.js");
        assert_eq!(route_template("/dashboard/x.js"), "other");
        assert_eq!(route_template("/dashboard/"), "/dashboard/");
        assert_eq!(route_template("/favicon.ico"), "/favicon.ico");
    }
}
