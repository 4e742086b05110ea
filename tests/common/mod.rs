//! Test harness shared by every file in `tests/`: a real herald on 127.0.0.1:0 (or the real
//! binary), real sockets, and the helpers more than one test file needs.
//!
//! - `server`: `TestServer`, herald run in this process on an ephemeral port.
//! - `spawned`: `Spawned`, the `herald` binary started from environment variables.
//! - `procs`: child processes of the cluster tests (nats-server, herald nodes, nginx).
//! - `ws`: `WsClient` and the handshakes and frame reads of browser-style clients.
//! - `rest`: the HTTP client, `curl`-shaped requests, JSON and text reads.
//! - `flood`: a subscriber stalled behind a flood under `drop_oldest`.
//! - `assert`: checks of timestamps, fields, `/stats` and the error shape.
//! - `pki`: a test CA and server certificates (rcgen) for the TLS tests.
//! - `jwt`: tokens minted with `jsonwebtoken`, the token settings, credentialed clients (§4).
//! - `raw_http`: requests written by hand on a raw TCP connection (a megabyte of header).
#![allow(dead_code, unused_imports)]

pub mod assert;
pub mod flood;
pub mod procs;
pub mod rest;
pub mod server;
pub mod spawned;
pub mod ws;

pub mod pki;

pub mod jwt;
pub mod raw_http;

use std::time::Duration;

pub use rest::http;
pub use server::TestServer;
pub use ws::WsClient;

/// How long a test waits for a frame it expects before failing.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// A port for a spawned `herald` binary that is free now and unlikely to be taken before the
/// child binds it: it lies below Linux's ephemeral range (32768+), from which every other test's
/// `:0` listeners and outgoing connections draw, and is checked on all interfaces. A port is
/// handed out once per test process: the tests of one binary run in parallel, and a port given
/// to one test's child that has not bound it yet would otherwise look free to the next test.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for i in 0..1000u32 {
        let port = 20_000 + (seed.wrapping_add(i.wrapping_mul(7_919)) % 12_000) as u16;
        if !handed_out.contains(&port) && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            handed_out.push(port);
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}
