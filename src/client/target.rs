//! A server address from `--url`: scheme (plain or TLS), host, port and path.

use http::Uri;

use super::CliError;

/// Where a command connects, parsed from a URL such as `wss://host:8443/ws`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// `https://` or `wss://`: the connection starts with a TLS handshake.
    pub(super) tls: bool,
    /// The host as written in a URL (an IPv6 address in brackets).
    pub(super) host: String,
    /// The port given, or 80 / 443 by scheme.
    pub(super) port: u16,
    /// Path and query, never empty.
    pub(super) path: String,
}

impl Target {
    /// Parses `url`; a bare `host:port` takes `default_scheme`, and a URL without a path (or
    /// with `/` alone) takes `default_path`.
    pub(super) fn parse(
        url: &str,
        default_scheme: &str,
        default_path: &str,
    ) -> Result<Self, CliError> {
        let bad = |reason| CliError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let full = if url.contains("://") {
            url.to_owned()
        } else {
            format!("{default_scheme}://{url}")
        };
        let uri: Uri = full.parse().map_err(|_| bad("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("ws") | Some("http") => false,
            Some("wss") | Some("https") => true,
            _ => return Err(bad("the scheme must be ws://, wss://, http:// or https://")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let path = match uri.path_and_query().map(|p| p.as_str()) {
            None | Some("") | Some("/") => default_path.to_owned(),
            Some(p) => p.to_owned(),
        };
        if !path.starts_with('/') {
            return Err(bad("the path must start with /"));
        }
        // `Uri::port` is `None` for a port that is not a u16 as well as for no port at all.
        let authority = uri.authority().map_or("", |a| a.as_str());
        let host_and_port = authority.rsplit('@').next().unwrap_or("");
        let port = match host_and_port.rsplit_once(':').map(|(_, p)| p) {
            Some(p) if !p.contains(']') => p
                .parse()
                .map_err(|_| bad("the port must be a number from 0 to 65535"))?,
            _ if tls => 443,
            _ => 80,
        };
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The host without IPv6 brackets, to resolve and to check the certificate against.
    pub(super) fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// `host:port`, as the `Host` header and URLs write it.
    pub(super) fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The URL with a WebSocket scheme (`ws://` or `wss://`).
    pub(super) fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.authority(), self.path)
    }

    /// The URL with an HTTP scheme (`http://` or `https://`).
    pub(super) fn http_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(url: &str) -> String {
        Target::parse(url, "ws", "/ws").unwrap().ws_url()
    }

    #[test]
    fn websocket_urls_default_to_the_ws_route() {
        assert_eq!(ws("ws://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
        assert_eq!(ws("ws://h:1/"), "ws://h:1/ws");
        assert_eq!(ws("http://h:1/ws/sub/x?id=a"), "ws://h:1/ws/sub/x?id=a");
        assert_eq!(ws("localhost:9000"), "ws://localhost:9000/ws");
        assert_eq!(ws("ws://[::1]:80"), "ws://[::1]:80/ws");
        assert_eq!(ws("wss://h"), "wss://h:443/ws");
        assert_eq!(ws("https://h:8443/"), "wss://h:8443/ws");
        assert_eq!(ws("ws://h"), "ws://h:80/ws");
        for bad in ["ftp://h", "ws://", "ws://h:99999", "not a url"] {
            assert!(
                matches!(
                    Target::parse(bad, "ws", "/ws"),
                    Err(CliError::BadUrl { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn probe_urls_take_the_default_path() {
        let t = |u: &str| Target::parse(u, "http", "/livez").unwrap();
        let local = t("http://127.0.0.1:8080");
        assert_eq!(
            (local.http_url(), local.tls),
            ("http://127.0.0.1:8080/livez".into(), false)
        );
        assert_eq!(t("ws://h:9/readyz").http_url(), "http://h:9/readyz");
        assert_eq!(t("h").http_url(), "http://h:80/livez");
        let v6 = t("https://[::1]:7");
        assert_eq!((v6.bare_host(), v6.tls), ("::1", true));
        assert_eq!(v6.http_url(), "https://[::1]:7/livez");
    }
}
