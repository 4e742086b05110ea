//! The REST publisher of a soak: `POST /publish` over one keep-alive connection at a fixed rate,
//! one request in flight. It owns its topics like one more publisher of the fan-out layout, so
//! its messages reach subscribers and go through the same delivery check.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use crate::client::Finished;
use crate::clock;
use crate::http::{self, HttpConn};
use crate::latency::LatencySink;
use crate::payload::Stamp;
use crate::scenario::publisher::PublisherEnd;
use crate::scenario::subscriber::Shared;
use crate::target::Endpoint;

/// Longest wait for one response; the connection is replaced after it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the REST publisher saw besides what it sent.
#[derive(Debug, Clone, Default)]
pub struct RestStats {
    /// 200 answers.
    pub ok: u64,
    /// Other answers, and transport errors (each followed by a reconnect).
    pub rejected: u64,
    pub errors: u64,
    pub reconnects: u64,
}

/// How the REST publisher runs.
pub struct RestPlan {
    /// Its publisher index in the layout (after the WebSocket publishers).
    pub publisher: usize,
    pub endpoint: Endpoint,
    /// Client socket number (picks the source address).
    pub socket: usize,
    /// Requests/s.
    pub rate: f64,
    pub payload: usize,
    pub start: Instant,
    pub deadline: Instant,
    pub latency: Arc<LatencySink>,
}

pub async fn run(plan: RestPlan, shared: Arc<Shared>) -> (PublisherEnd, RestStats) {
    let topics = shared.layout.publisher_topics(plan.publisher);
    let names: Vec<String> = topics.iter().map(|&t| shared.topics.name(t)).collect();
    let mut counters = vec![0u64; topics.len()];
    let mut stats = RestStats::default();
    let mut first_error = None;
    let host = plan.endpoint.addr.to_string();
    let mut latency = plan.latency.recorder();
    let mut conn = None;
    let mut body = Vec::with_capacity(plan.payload + 64);
    let mut sent = 0u64;
    loop {
        let at = plan.start + Duration::from_secs_f64(sent as f64 / plan.rate);
        if at >= plan.deadline {
            break;
        }
        sleep_until(at).await;
        let http = match conn.as_mut() {
            Some(http) => http,
            None => match plan.endpoint.connect(plan.socket).await {
                Ok(stream) => conn.insert(HttpConn::new(stream)),
                Err(e) => {
                    stats.errors += 1;
                    first_error.get_or_insert_with(|| format!("REST connect: {e}"));
                    sent += 1;
                    continue;
                }
            },
        };
        let k = (sent % topics.len() as u64) as usize;
        let stamp = Stamp {
            publisher: plan.publisher as u32,
            counter: counters[k],
            sent_ns: clock::now_ns(),
        };
        let request = http::publish_request(&host, &names[k], &stamp, plan.payload, &mut body);
        // Counted as sent before the answer, like a WebSocket publish: a message that was never
        // delivered shows up as lost as well as in the errors.
        counters[k] += 1;
        shared.board.sent(topics[k]);
        sent += 1;
        let answer = http
            .send_timed(&request, REQUEST_TIMEOUT, &mut latency)
            .await;
        match answer {
            Ok(response) => {
                match response.rejection() {
                    None => stats.ok += 1,
                    Some(why) => {
                        stats.rejected += 1;
                        first_error.get_or_insert_with(|| format!("REST {why}"));
                    }
                }
                if response.close {
                    conn = None;
                    stats.reconnects += 1;
                }
            }
            Err(e) => {
                stats.errors += 1;
                first_error.get_or_insert_with(|| format!("REST: {e}"));
                conn = None;
                stats.reconnects += 1;
            }
        }
    }
    let end = PublisherEnd {
        publisher: plan.publisher,
        sent: topics.into_iter().zip(counters).collect(),
        finished: Finished {
            errors: stats.rejected + stats.errors,
            unconfirmed: 0,
            first_error,
        },
    };
    (end, stats)
}
