//! A subscriber stalled behind a flood under `drop_oldest`: the set-up shared by the tests that
//! count what such a subscriber misses.

use herald::config::SlowConsumerPolicy;
use serde_json::json;

use super::server::TestServer;
use super::ws::WsClient;

/// A server whose subscribers have a 4-frame queue under `drop_oldest`, with a subscriber that
/// the test does not read until the flood is over.
pub struct Stalled {
    /// The server, started for this test.
    pub server: TestServer,
    /// Subscribed to the topic; not read meanwhile.
    pub slow: WsClient,
    /// A second connection, for publishing.
    pub publisher: WsClient,
}

impl Stalled {
    /// Starts the server and subscribes `slow` to `topic`.
    pub async fn start(topic: &str) -> Self {
        let server = TestServer::start_with(|c| {
            c.subscriber_queue_size = 4;
            c.slow_consumer_policy = SlowConsumerPolicy::DropOldest;
        })
        .await;
        let mut slow = server.ws().await;
        slow.subscribe(topic).await;
        let publisher = server.ws().await;
        Self {
            server,
            slow,
            publisher,
        }
    }
}

/// Publishes `count` messages of about 32 KiB to `topic`, one request at a time (the
/// publisher's own acks share its bounded outbound queue), and returns the last seq. 600 of them
/// (~19 MiB) are far more than the socket buffers and a 4-frame queue hold.
pub async fn flood(publisher: &mut WsClient, topic: &str, count: u64) -> u64 {
    let filler = "x".repeat(32 * 1024);
    let mut last = 0;
    for i in 1..=count {
        let ack = publisher
            .request(json!({"type": "publish", "topic": topic, "data": {"i": i, "pad": filler}}))
            .await;
        assert_eq!(
            ack["type"], "ack",
            "publisher never blocked or failed: {ack}"
        );
        last = ack["seq"].as_u64().unwrap();
    }
    last
}
