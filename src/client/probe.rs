//! `herald probe`: one HTTP GET of a health route, over HTTP or HTTPS, exit 0 on a 2xx answer
//! (the container health check; no curl needed in the image).

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{Config, ConfigError};

use super::target::Target;
use super::tls::Trust;
use super::transport::open;
use super::{CliError, ProbeArgs};

/// The most of a probe's answer that is read; `/livez` and `/readyz` answer a few bytes.
const PROBE_MAX_RESPONSE: u64 = 64 * 1024;
/// The most of a failing probe's body that is shown.
const PROBE_BODY_SHOWN: usize = 200;

/// Runs `herald probe`. `server` is the configuration a server started in this environment
/// would run with: where it listens, and whether over TLS; the target when `--url` is absent.
pub async fn probe(args: ProbeArgs, server: Result<Config, ConfigError>) -> Result<(), CliError> {
    let (target, trust) = match &args.url {
        Some(url) => (
            Target::parse(url, "http", &args.path)?,
            Trust::from_args(&args.tls),
        ),
        None => {
            let server = server?;
            // The server's own listener on this host, asked nothing secret: whether it answers
            // is the question, not who it is. Its certificate is for the public name, not this
            // address, and a check that verified it would fail after a certificate rotation
            // until the server restarts; --cacert still asks for a verified chain.
            let trust = match args.tls.cacert {
                Some(_) => Trust::from_args(&args.tls),
                None => Trust::Anything,
            };
            (own_listener(&server, &args.path), trust)
        }
    };
    let url = target.http_url();
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let check = async {
        let mut stream = open(&target, &trust, &url).await?;
        let head = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: herald-probe\r\nConnection: close\r\n\r\n",
            target.path,
            target.authority()
        );
        let mut response = Vec::new();
        let exchange = async {
            stream.write_all(head.as_bytes()).await?;
            stream
                .take(PROBE_MAX_RESPONSE)
                .read_to_end(&mut response)
                .await
        };
        match exchange.await {
            Ok(_) => Ok(response),
            // A TLS server may close without a close_notify; what it sent is the answer.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof && !response.is_empty() => Ok(response),
            Err(e) => Err(CliError::Connect {
                url: url.clone(),
                reason: e.to_string(),
            }),
        }
    };
    let response =
        tokio::time::timeout(timeout, check)
            .await
            .map_err(|_| CliError::Connect {
                url: url.clone(),
                reason: format!("no answer within {}s", timeout.as_secs()),
            })??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or("");
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    let body: String = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(PROBE_BODY_SHOWN)
        .collect();
    if status_line.starts_with("HTTP/1.") && status.starts_with('2') {
        println!("{status} {body}");
        Ok(())
    } else {
        Err(CliError::Unhealthy {
            url,
            status: if status.is_empty() {
                "no HTTP status".into()
            } else {
                status.to_owned()
            },
            body: if body.is_empty() {
                body
            } else {
                format!(": {body}")
            },
        })
    }
}

/// Where a server with `config` listens on this host: 0.0.0.0 and [::] read as loopback.
fn own_listener(config: &Config, path: &str) -> Target {
    let mut addr = config.addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    Target {
        tls: config.tls.is_some(),
        host: match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        },
        port: addr.port(),
        path: path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TlsFiles;

    #[test]
    fn the_default_target_is_this_hosts_listener_over_its_own_scheme() {
        let mut config = Config {
            addr: "0.0.0.0:8080".parse().unwrap(),
            ..Config::default()
        };
        assert_eq!(
            own_listener(&config, "/livez").http_url(),
            "http://127.0.0.1:8080/livez"
        );
        config.addr = "[::]:9".parse().unwrap();
        config.tls = Some(TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
        });
        assert_eq!(
            own_listener(&config, "/readyz").http_url(),
            "https://[::1]:9/readyz"
        );
        config.addr = "10.1.2.3:80".parse().unwrap();
        assert_eq!(own_listener(&config, "/livez").bare_host(), "10.1.2.3");
    }
}
