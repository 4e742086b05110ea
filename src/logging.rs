//! The broker's log output: text or JSON lines on stdout, the levels from `RUST_LOG` (refused when
//! it does not parse), and colour only when stdout is a terminal and `NO_COLOR` is unset.

use std::ffi::OsStr;
use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

use crate::config::ConfigError;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the global subscriber. Call once, before the first log line.
pub fn init(format: LogFormat) -> Result<(), ConfigError> {
    let filter = filter(std::env::var_os("RUST_LOG").as_deref())?;
    let colour = colour(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(colour).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
    Ok(())
}

/// The filter of `RUST_LOG`; `info` when it is unset or empty. A directive that does not parse
/// stops start-up, where tracing would drop it silently and log at a level nobody asked for.
fn filter(rust_log: Option<&OsStr>) -> Result<EnvFilter, ConfigError> {
    let text = match rust_log.map(|v| v.to_str()) {
        None => return Ok(EnvFilter::new("info")),
        Some(None) => {
            return Err(ConfigError::setting(
                "RUST_LOG",
                &rust_log.unwrap_or_default().to_string_lossy(),
                "not UTF-8",
            ))
        }
        Some(Some(text)) if text.trim().is_empty() => return Ok(EnvFilter::new("info")),
        Some(Some(text)) => text,
    };
    EnvFilter::builder().parse(text).map_err(|e| {
        ConfigError::setting(
            "RUST_LOG",
            text,
            format!(
                "{e}; expected a level (error, warn, info, debug, trace) or comma-separated \
                 target=level directives such as `herald=debug,hyper=warn`"
            ),
        )
    })
}

/// Colour codes only for a person at a terminal: in a file or a pipe they are noise, and
/// `NO_COLOR` (any non-empty value, no-color.org) turns them off everywhere.
fn colour(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }

    #[test]
    fn rust_log_is_parsed_or_refused() {
        for ok in [
            "info",
            "debug",
            "herald=debug,hyper=warn",
            "warn,herald::server=trace",
        ] {
            assert!(filter(Some(OsStr::new(ok))).is_ok(), "{ok}");
        }
        assert!(filter(None).is_ok());
        assert!(filter(Some(OsStr::new(" "))).is_ok());
        let e = filter(Some(OsStr::new("nonsense=====")))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid configuration: RUST_LOG=nonsense=====: "),
            "{e}"
        );
        assert!(e.contains("target=level"), "{e}");
    }
}
