//! The client half of the `herald` binary, like `nats sub` / `nats pub`: `herald sub` prints a
//! topic's events as JSON lines, `herald pub` publishes and prints each ack, and `herald probe`
//! is the container health check (one HTTP GET, exit 0 or 1); `herald token` mints a development
//! token from `JWT_SECRET`.
//!
//! A client, not a part of the server: it speaks the public wire contract (PROTOCOL.md §1) over
//! `/ws` and HTTP and nothing else, so it works against any herald, single node or cluster, and
//! it imports nothing from `server`, `broker` or `cluster`. Errors are one [`CliError`] each;
//! `main` prints it as one line and exits with [`CliError::exit_code`].
//!
//! - `args`: the flags of each command.
//! - `error`: why a command failed, one line each.
//! - `target`: a URL as scheme (plain or TLS), host, port and path.
//! - `tls`: which certificates a TLS connection trusts: the system's, `--cacert`, `--insecure`.
//! - `transport`: TCP, with a TLS handshake first for `https://` and `wss://`.
//! - `ws`: the WebSocket connection the commands share: connect, request and ack, close.
//! - `sub`, `publish`, `probe`, `token`: one file per command (`token` mints a development JWT).

mod args;
mod error;
mod probe;
mod publish;
mod sub;
mod target;
mod tls;
mod token;
mod transport;
mod ws;

pub use args::{ClientArgs, ProbeArgs, PubArgs, SubArgs, TlsArgs, TokenArgs};
pub use error::CliError;
pub use probe::probe;
pub use publish::publish;
pub use sub::sub;
pub use token::token;
