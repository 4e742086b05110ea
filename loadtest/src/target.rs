//! Where the load goes: the target kind, its loopback address, and the source addresses client
//! sockets bind to. Only 127.0.0.0/8 is accepted: this tool saturates whatever it points at.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use tokio::net::{TcpSocket, TcpStream};

/// Ephemeral ports one source address comfortably offers (Linux defaults to 32768–60999).
const PORTS_PER_SOURCE: usize = 20_000;

/// The server on the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// herald over WebSocket `/ws` (and REST for `rest`).
    Herald,
    /// nats-server, core NATS protocol over plain TCP.
    Nats,
    /// redis-server, RESP PUBLISH/SUBSCRIBE.
    Redis,
    /// `herald-load hello-server`: a bare hyper 1 server answering every request with a small
    /// JSON body, the peer for the `rest` scenario (REST only).
    Hello,
}

impl TargetKind {
    pub fn default_port(self) -> u16 {
        match self {
            Self::Herald => 8080,
            Self::Nats => 4222,
            Self::Redis => 6379,
            Self::Hello => 8081,
        }
    }

    /// Whether the target speaks publish/subscribe (every target but the REST-only hello server).
    pub fn is_pubsub(self) -> bool {
        self != Self::Hello
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Herald => "herald",
            Self::Nats => "nats",
            Self::Redis => "redis",
            Self::Hello => "hello",
        })
    }
}

/// A resolved, loopback-only target.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub kind: TargetKind,
    pub addr: SocketAddrV4,
    /// The WebSocket path (herald only), e.g. `/ws`.
    pub path: String,
    /// Source addresses to spread client sockets over (127.0.0.1, .2, …).
    pub sources: u8,
    /// herald: `Some` reads frames by hand and counts wire bytes; `Some(true)` also offers
    /// permessage-deflate (`--deflate`).
    pub deflate: Option<bool>,
}

impl Endpoint {
    /// Resolves `--url` or `--host`/`--port`; refuses anything outside 127.0.0.0/8.
    pub fn resolve(
        kind: TargetKind,
        url: Option<&str>,
        host: &str,
        port: Option<u16>,
        sources: u8,
        connections: usize,
    ) -> Result<Self> {
        let (host, url_port, path) = match url {
            Some(url) => split_url(url)?,
            None => (host.to_string(), None, "/ws".to_string()),
        };
        let port = url_port.or(port).unwrap_or(kind.default_port());
        let addr = loopback_v4(&host, port)?;
        let sources = if sources == 0 {
            connections.div_ceil(PORTS_PER_SOURCE).clamp(1, 250) as u8
        } else {
            sources
        };
        Ok(Self {
            kind,
            addr,
            path,
            sources,
            deflate: None,
        })
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, self.path)
    }

    /// What the report prints as the target.
    pub fn describe(&self) -> String {
        match self.kind {
            TargetKind::Herald => self.ws_url(),
            TargetKind::Nats => format!("nats://{}", self.addr),
            TargetKind::Redis => format!("redis://{}", self.addr),
            TargetKind::Hello => format!("http://{}", self.addr),
        }
    }

    /// The source address for client socket number `i`.
    pub fn source(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(self.sources)) as u8)
    }

    /// Opens client socket number `i`: bound to its source address, `TCP_NODELAY` on.
    pub async fn connect(&self, i: usize) -> io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(self.source(i).into(), 0))?;
        let stream = socket.connect(self.addr.into()).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// `scheme://host[:port][/path]` → (host, port, path). The scheme is informational.
fn split_url(url: &str) -> Result<(String, Option<u16>, String)> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/ws".to_string()),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(']') || h.ends_with(']') => {
            let port = p
                .parse::<u16>()
                .with_context(|| format!("bad port in URL {url:?}"))?;
            (h.trim_matches(['[', ']']).to_string(), Some(port))
        }
        _ => (authority.to_string(), None),
    };
    if host.is_empty() {
        bail!("no host in URL {url:?}");
    }
    Ok((host, port, path))
}

/// Resolves `host` and keeps its IPv4 loopback address, or explains why not.
pub fn loopback_v4(host: &str, port: u16) -> Result<SocketAddrV4> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host:?}"))?
        .collect();
    if let Some(v4) = addrs.iter().find_map(|a| match a {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => Some(*v4),
        _ => None,
    }) {
        return Ok(v4);
    }
    let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    bail!(
        "refusing to target {host} ({}): herald-load only sends load to loopback addresses \
         in 127.0.0.0/8; run the server locally",
        shown.join(", ")
    )
}

/// Raises this process's open-files limit to the hard limit (one descriptor per connection) and
/// returns the limit now in force, 0 when it cannot be read. Through the `rlimit` crate (herald
/// uses it too), so herald-load needs no `unsafe` of its own.
pub fn raise_nofile_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        // Raising failed: what is in force still bounds the connections.
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofile_limit_is_raised_to_the_hard_limit() {
        let limit = raise_nofile_limit();
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert_eq!(limit, soft);
        // Linux caps the soft limit at nr_open even when the hard limit is higher.
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u64::MAX);
        assert_eq!(soft, hard.min(nr_open));
    }

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("ws://127.0.0.1:9000/ws").unwrap(),
            ("127.0.0.1".into(), Some(9000), "/ws".into())
        );
        assert_eq!(
            split_url("nats://localhost").unwrap(),
            ("localhost".into(), None, "/ws".into())
        );
        assert!(split_url("ws://:80").is_err());
    }

    #[test]
    fn only_loopback_is_accepted() {
        let e = Endpoint::resolve(TargetKind::Nats, None, "127.0.0.5", None, 0, 50_000).unwrap();
        assert_eq!(e.addr, SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 5), 4222));
        assert_eq!(e.sources, 3);
        assert_eq!(e.source(4), Ipv4Addr::new(127, 0, 0, 2));
        let err = Endpoint::resolve(TargetKind::Herald, None, "10.1.2.3", None, 1, 1).unwrap_err();
        assert!(err.to_string().contains("127.0.0.0/8"), "{err}");
        assert!(Endpoint::resolve(
            TargetKind::Herald,
            Some("ws://192.168.0.1/ws"),
            "",
            None,
            1,
            1
        )
        .is_err());
    }
}
