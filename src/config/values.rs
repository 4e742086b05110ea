//! A setting's text becomes a value here, or one line saying which variable, which value and what
//! is allowed: the whole-number parser every numeric flag uses, listen addresses, browser
//! origins, NATS URLs, and clap's own errors restated in those terms.

use std::ffi::OsString;
use std::fmt::Display;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// A configuration value that cannot be used; the message is the one line shown at start-up.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub(super) String);

impl ConfigError {
    /// `NAME=value: problem`, the form every bad setting is reported in.
    pub fn setting(name: &str, value: &str, problem: impl Display) -> Self {
        Self(format!("{}: {problem}", show(name, value)))
    }
}

/// `NAME=value`, quoted when the value is empty or holds spaces or quotes, so the line shows
/// exactly what was read.
fn show(name: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\'');
    if plain {
        format!("{name}={value}")
    } else {
        format!("{name}={value:?}")
    }
}

/// The upper bound of a count that has none but its type's.
pub(super) const UNBOUNDED: u64 = u64::MAX;

/// What a whole-number setting accepts, in words.
pub(super) fn allowed(min: u64, max: u64) -> String {
    if max == UNBOUNDED {
        format!("expected a whole number, {min} or more")
    } else {
        format!("expected a whole number from {min} to {max}")
    }
}

/// clap's parser for a whole number from `MIN` to `MAX` (surrounding spaces ignored); its error
/// says what is allowed, where Rust's would say "invalid digit found in string".
pub(super) fn whole<T: TryFrom<u64>, const MIN: u64, const MAX: u64>(
    text: &str,
) -> Result<T, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (MIN..=MAX).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| allowed(MIN, MAX))
}

/// The listen address: `ADDR` when set, else `HOST` and `PORT`. An IPv6 `HOST` may come with or
/// without brackets; an empty `HOST` or `ADDR` counts as unset.
pub(super) fn listen_addr(
    addr: Option<&str>,
    host: &str,
    port: u16,
) -> Result<SocketAddr, ConfigError> {
    if let Some(addr) = addr.filter(|a| !a.trim().is_empty()) {
        return parse_addr(addr.trim()).ok_or_else(|| {
            ConfigError::setting(
                "ADDR",
                addr,
                "expected host:port, :port or [IPv6]:port (e.g. 0.0.0.0:8080, [::1]:8080)",
            )
        });
    }
    let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
    if bare.is_empty() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let bad = || {
        ConfigError::setting(
            "HOST",
            host,
            "expected an IP address (0.0.0.0, ::, 127.0.0.1, ::1) or a host name that resolves",
        )
    };
    // Not an address, and not a name either (a malformed IPv6 address, spaces): no DNS lookup.
    if !bare
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(bad());
    }
    // Host names such as `localhost` resolve once, at start-up.
    (bare, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(bad)
}

/// Parses `:8080` (Go form, all interfaces), `host:port` or `[v6]:port`.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    if let Ok(addr) = full.parse() {
        return Some(addr);
    }
    full.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
}

/// Checks one `ALLOWED_ORIGINS` entry, already trimmed and lowercased: a browser's `Origin` is
/// `scheme://host[:port]`, so anything else (a bare host, a path, `*`) would never match.
pub(super) fn check_origin(origin: &str) -> Result<(), ConfigError> {
    // `Uri::path` is "/" for no path at all; a trailing slash was trimmed before.
    let ok = origin.parse::<http::Uri>().is_ok_and(|u| {
        u.scheme().is_some() && u.authority().is_some() && u.path() == "/" && u.query().is_none()
    });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::setting(
            "ALLOWED_ORIGINS",
            origin,
            "each origin is scheme://host[:port] as browsers send it (e.g. https://app.example.com); \
             unset ALLOWED_ORIGINS to allow every origin",
        ))
    }
}

/// Checks `NATS_URL`: comma-separated server URLs (`nats://`, `tls://`, `ws://`, `wss://`, or a
/// bare `host:port`), as the NATS client will read them.
pub(super) fn check_nats_urls(urls: &str) -> Result<(), ConfigError> {
    for url in urls.split(',').map(str::trim) {
        if let Err(e) = url.parse::<async_nats::ServerAddr>() {
            return Err(ConfigError::setting(
                "NATS_URL",
                url,
                format!("{e}; expected comma-separated nats://host:port URLs"),
            ));
        }
    }
    Ok(())
}

/// clap's error as one line: a setting it could not parse is named by its variable (or by its
/// flag, when given as one) with the value and what is allowed; other errors keep clap's first
/// paragraph. `cmd` is the command that failed to parse, `argv` the command line (to tell a flag
/// from a variable).
pub fn clap_error_line(e: &clap::Error, mut cmd: clap::Command, argv: &[OsString]) -> String {
    // Arguments render as in clap's messages (`--port <PORT>`) only once built.
    cmd.build();
    if let Some(line) = bad_setting(e, &cmd, argv) {
        return line;
    }
    first_paragraph(&e.to_string())
}

/// A bad value of an argument that has an environment variable, as `invalid configuration: ...`.
fn bad_setting(e: &clap::Error, cmd: &clap::Command, argv: &[OsString]) -> Option<String> {
    if !matches!(
        e.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    let text = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let (shown, value) = (
        text(ContextKind::InvalidArg)?,
        text(ContextKind::InvalidValue)?,
    );
    let arg = all_args(cmd).find(|a| a.to_string() == shown)?;
    let env = arg.get_env()?.to_str()?;
    let long = arg.get_long().map(|l| format!("--{l}"));
    let on_command_line = long.as_ref().is_some_and(|flag| {
        argv.iter().filter_map(|a| a.to_str()).any(|a| {
            a == flag
                || a.strip_prefix(flag.as_str())
                    .is_some_and(|rest| rest.starts_with('='))
        })
    });
    let name = match (&long, on_command_line) {
        (Some(flag), true) => flag.as_str(),
        _ => env,
    };
    let problem = match (e.kind(), e.get(ContextKind::ValidValue)) {
        (ErrorKind::InvalidValue, Some(ContextValue::Strings(valid))) => {
            format!("expected one of {}", valid.join(", "))
        }
        _ => std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "not a valid value".into()),
    };
    Some(ConfigError::setting(name, value, problem).to_string())
}

/// Every argument of `cmd` and of its subcommands.
fn all_args(cmd: &clap::Command) -> Box<dyn Iterator<Item = &clap::Arg> + '_> {
    Box::new(
        cmd.get_arguments()
            .chain(cmd.get_subcommands().flat_map(all_args)),
    )
}

/// Clap's message up to its first blank line, on one line, plus its tip if it has one:
/// `the following required arguments were not provided: <TOPIC>` rather than a usage dump.
fn first_paragraph(text: &str) -> String {
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let mut line = first.join(" ").trim_start_matches("error: ").to_string();
    if line.is_empty() {
        line = "invalid arguments".into();
    }
    if let Some(tip) = text.lines().map(str::trim).find(|l| l.starts_with("tip:")) {
        line = format!("{line} ({tip})");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_say_what_is_allowed() {
        assert_eq!(whole::<usize, 1, 10>(" 7 "), Ok(7));
        assert_eq!(
            whole::<usize, 1, 10>("-1"),
            Err("expected a whole number from 1 to 10".into())
        );
        assert!(whole::<usize, 1, 10>("0").is_err());
        assert!(whole::<usize, 1, 10>("11").is_err());
        assert!(whole::<u16, 0, 65535>("65536").is_err());
        assert_eq!(
            whole::<u64, 0, UNBOUNDED>("x"),
            Err("expected a whole number, 0 or more".into())
        );
    }

    #[test]
    fn values_are_shown_exactly() {
        let line = |v: &str| ConfigError::setting("X", v, "p").to_string();
        assert_eq!(line("abc"), "invalid configuration: X=abc: p");
        assert_eq!(line(""), "invalid configuration: X=\"\": p");
        assert_eq!(line("a b"), "invalid configuration: X=\"a b\": p");
    }

    #[test]
    fn listen_addresses_take_ipv6_hosts_with_or_without_brackets() {
        let ok = |addr: Option<&str>, host: &str| listen_addr(addr, host, 8080).unwrap();
        assert_eq!(ok(None, "::1"), "[::1]:8080".parse().unwrap());
        assert_eq!(ok(None, "[::1]"), "[::1]:8080".parse().unwrap());
        assert_eq!(ok(None, "127.0.0.1"), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(ok(None, ""), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(ok(Some(":9090"), "::1"), "0.0.0.0:9090".parse().unwrap());
        assert_eq!(ok(Some(""), "::1"), "[::1]:8080".parse().unwrap());
        assert_eq!(ok(Some("[::1]:1"), ""), "[::1]:1".parse().unwrap());
        let err =
            |addr: Option<&str>, host: &str| listen_addr(addr, host, 8080).unwrap_err().to_string();
        assert!(err(Some("nonsense"), "").contains("ADDR=nonsense"));
        assert!(err(Some(":99999"), "").contains("ADDR=:99999"));
        assert!(err(None, "no such host").contains("HOST=\"no such host\""));
        assert!(err(None, "::1::2").contains("HOST=::1::2"));
        assert_eq!(ok(None, "localhost").port(), 8080);
    }

    #[test]
    fn nats_urls_are_checked_one_by_one() {
        assert!(check_nats_urls("nats://a:4222, b:4222,tls://c").is_ok());
        let e = check_nats_urls("nats://a:4222,http://b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("NATS_URL=http://b: "), "{e}");
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        for ok in [
            "https://app.example.com",
            "http://localhost:3000",
            "http://[::1]:8080",
        ] {
            assert!(check_origin(ok).is_ok(), "{ok}");
        }
        for bad in [
            "app.example.com",
            "*",
            "https://a.example/path",
            "https://",
            "null",
        ] {
            let e = check_origin(bad).unwrap_err().to_string();
            assert!(e.contains("ALLOWED_ORIGINS="), "{e}");
        }
    }
}
