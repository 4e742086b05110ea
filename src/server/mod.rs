//! The network side: one listener serves REST and WebSocket upgrades over hyper 1.
//!
//! - [`run`]: the accept loop and graceful shutdown (PROTOCOL.md §7).
//! - `http`: routing, auth and the REST routes (§2–§4).
//! - `assets`: the embedded API documents and dashboard, served without a key.
//! - `upgrade`: the WebSocket handshake on top of hyper's upgrade.
//! - `session`: one WebSocket connection: a read loop and a writer task around its outbox.

mod assets;
mod http;
mod request;
mod response;
mod rest;
mod session;
mod state;
mod upgrade;
mod wire;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, error, field, info, info_span, warn, Instrument};

use crate::broker::ConnId;
use crate::config::Config;
use crate::node::Node;
use crate::tls;

pub(crate) use state::State;

/// Serves herald on `listener` until `shutdown` resolves, then drains (PROTOCOL.md §7): stops
/// accepting, lets every WebSocket flush its queue, sends `shutting_down` and a 1001 close, and
/// returns once every connection task ended or `SHUTDOWN_TIMEOUT_SECS` (plus a small margin) passed.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future) -> io::Result<()> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let tls = match &config.tls {
        Some(files) => Some(
            tls::server_config(files)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let node = Node::new(&config)
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.message))?;
    let node = Arc::new(node);
    let state = Arc::new(State::new(config, node, tls));
    state.node.start(&state.tracker, state.shutdown.clone());
    let local = listener.local_addr()?;
    info!(
        addr = %local,
        tls = state.tls.is_some(),
        auth = %state.config.auth_summary(),
        cluster = state.node.is_cluster(),
        "herald listening"
    );
    let mut shutdown = std::pin::pin!(shutdown);
    let node = state.node.clone();
    let mut refused = std::pin::pin!(node.backplane_refused());
    let mut failure = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            line = &mut refused => {
                failure = Some(line);
                break;
            }
            accepted = listener.accept() => on_accept(&state, accepted).await,
        }
    }
    // A node that cannot run as configured was never ready: nothing to drain.
    if failure.is_none() && !state.config.drain_duration.is_zero() {
        // Lame duck: keep answering (/readyz says 503, REST still works) while the sessions are
        // closed group by group, so their clients reconnect to other nodes without a storm.
        state.draining.store(true, Ordering::Relaxed);
        info!(sessions = state.node.session_count(), duration = ?state.config.drain_duration, "draining");
        let mut drain = std::pin::pin!(drain_sessions(&state));
        loop {
            tokio::select! {
                _ = &mut drain => break,
                accepted = listener.accept() => on_accept(&state, accepted).await,
            }
        }
    }
    drop(listener);
    info!(sessions = state.node.session_count(), "shutting down");
    state.shutdown.cancel();
    state.tracker.close();
    let margin = Duration::from_secs(2);
    if tokio::time::timeout(state.config.shutdown_timeout + margin, state.tracker.wait())
        .await
        .is_err()
    {
        warn!("some connections did not finish within the shutdown timeout");
    }
    info!("stopped");
    match failure {
        Some(line) => Err(io::Error::other(line)),
        None => Ok(()),
    }
}

/// Serves an accepted connection, or backs off after an accept error.
async fn on_accept(state: &Arc<State>, accepted: io::Result<(TcpStream, SocketAddr)>) {
    match accepted {
        Ok((stream, peer)) => serve_connection(state, stream, peer),
        Err(e) if is_transient(&e) => debug!(error = %e, "accept: connection vanished"),
        Err(e) => {
            // Typically EMFILE: back off instead of spinning, connections will close.
            error!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Closes the sessions in `DRAIN_BATCHES` groups spread evenly over `DRAIN_DURATION_SECS`. The
/// first group goes after one step, which gives load balancers time to see `/readyz` fail.
async fn drain_sessions(state: &State) {
    let start = tokio::time::Instant::now();
    let step = state.config.drain_duration / state.drain_batches.len() as u32;
    for (i, batch) in state.drain_batches.iter().enumerate() {
        tokio::time::sleep_until(start + step * (i as u32 + 1)).await;
        batch.cancel();
    }
    // Let the last group send its 1012 before shutdown would close it with 1001.
    let grace = tokio::time::Instant::now() + Duration::from_secs(1);
    while state.node.session_count() > 0 && tokio::time::Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Errors that concern one connection only and need no back-off.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Spawns the connection task: the TLS handshake when configured, then HTTP/1.1 (upgrades
/// included).
fn serve_connection(state: &Arc<State>, stream: TcpStream, peer: SocketAddr) {
    // Events are small and latency matters more than packet count; batching happens in the writer.
    let _ = stream.set_nodelay(true);
    let state = state.clone();
    let conn = state.node.next_conn_id();
    // Every log line of the connection, its WebSocket session included, carries these fields;
    // `route` and `client_id` are recorded when a WebSocket upgrade names them.
    let span = info_span!(
        "conn",
        conn_id = conn.0,
        %peer,
        route = field::Empty,
        client_id = field::Empty
    );
    let tracker = state.tracker.clone();
    tracker.spawn(
        async move {
            let Some(tls) = state.tls.clone() else {
                return serve_http(state, stream, conn).await;
            };
            let accepted = tokio::select! {
                accepted = tls::accept(tls, stream, state.config.header_read_timeout) => accepted,
                _ = state.shutdown.cancelled() => return,
            };
            match accepted {
                Ok(stream) => serve_http(state, stream, conn).await,
                Err(e) => debug!(error = %e, "connection refused"),
            }
        }
        .instrument(span),
    );
}

/// Serves HTTP/1.1 on `io` until the client leaves or shutdown ends the connection.
async fn serve_http<S>(state: Arc<State>, io: S, conn: ConnId)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_state = state.clone();
    let service = service_fn(move |mut req: Request<Incoming>| {
        // The connection's id, for the WebSocket session an upgrade may start.
        req.extensions_mut().insert(conn);
        http::handle(service_state.clone(), req)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = state.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(state.config.shutdown_timeout, conn).await {
                Ok(result) => result,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "http connection ended with an error");
    }
}
