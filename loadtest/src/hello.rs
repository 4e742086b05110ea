//! `herald-load hello-server`: the peer for the `rest` scenario, a bare hyper 1 HTTP/1.1 server
//! that reads each request's body and answers `200` with a small fixed JSON body, on keep-alive.
//!
//! It is as lean as a hyper server gets: the same tokio multi-thread runtime herald uses (one
//! worker per CPU it may run on), `TCP_NODELAY` like herald, one task per connection, no routing,
//! no parsing. The body is still read to the end, because HTTP/1.1 keep-alive needs it consumed
//! before the next request and herald does that work too. What herald adds on top (routing, auth,
//! JSON parsing, the publish itself, the answer's formatting) is what the ratio measures.

use std::convert::Infallible;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::cli::HelloArgs;
use crate::target::loopback_v4;

/// The answer: about the size of herald's `{"status":"published",…}` reply.
const BODY: &[u8] = br#"{"status":"published","topic":"hello","seq":1}"#;

/// Largest request body read; a bigger one is answered `413` and the connection closed.
const MAX_BODY: usize = 1 << 20;

/// Serves until the process is killed (compare.sh sends SIGTERM).
pub async fn serve(args: HelloArgs) -> Result<()> {
    let addr = loopback_v4(&args.host, args.port)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("hello-server: listening on http://{addr}");
    serve_listener(listener).await
}

/// Accepts and serves connections on `listener` forever.
async fn serve_listener(listener: TcpListener) -> Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off rather than spin; connections will close.
                eprintln!("hello-server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    let status = match body.collect().await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::PAYLOAD_TOO_LARGE,
    };
    Ok(answer(status))
}

fn answer(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{self, HttpConn};

    /// The hello server answers keep-alive POSTs, several on one connection.
    #[tokio::test]
    async fn answers_posts_on_keep_alive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_listener(listener));
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut conn = HttpConn::new(stream);
        for _ in 0..3 {
            let request = http::request("POST", &addr.to_string(), "/publish", Some(b"{\"a\":1}"));
            let response = conn.send(&request).await.unwrap();
            assert_eq!(response.status, 200);
            assert_eq!(&response.body[..], BODY);
            assert!(!response.close);
        }
        server.abort();
    }
}
