//! Bad input over WebSocket: every malformed frame gets an error frame (with its `request_id` when
//! one could be read) and the connection keeps working; size limits, binary frames, auto-create
//! off and the per-connection subscription cap.

mod common;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use common::assert::assert_error_frame;
use common::rest::get_json;
use common::{http, TestServer, WsClient};

/// The connection still answers: ping with `rid` -> pong with `rid`.
async fn assert_alive(ws: &mut WsClient, rid: &str, after: &str) {
    ws.send_json(json!({"type": "ping", "request_id": rid}))
        .await;
    let pong = ws.recv_json_no_heartbeat().await;
    assert_eq!(pong["type"], "pong", "after {after}: {pong}");
    assert_eq!(pong["request_id"], rid, "after {after}: {pong}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_bad_request_and_the_connection_survives() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;

    // Frames that are not a JSON object, or whose request_id cannot be read: no request_id.
    let raw: &[(&str, &str)] = &[
        ("invalid JSON", r#"{"type":"#),
        ("not JSON at all", "hello"),
        ("empty frame", ""),
        ("JSON array", r#"[{"type":"ping","request_id":"x"}]"#),
        ("JSON string", r#""ping""#),
        ("JSON number", "42"),
        ("JSON null", "null"),
        ("trailing garbage", r#"{"type":"ping"} x"#),
        (
            "request_id an object",
            r#"{"type":"ping","request_id":{"a":1}}"#,
        ),
        ("request_id a float", r#"{"type":"ping","request_id":1.5}"#),
    ];
    for (i, (what, text)) in raw.iter().enumerate() {
        ws.send_text(text).await;
        let v = ws.recv_json_no_heartbeat().await;
        assert_error_frame(&v, "BAD_REQUEST", None, what);
        assert_alive(&mut ws, &format!("raw-{i}"), what).await;
    }

    // Objects: each is sent without a request_id, with a string one and with an integer one.
    let long_topic = "a".repeat(256);
    let long_id = "i".repeat(256);
    let objects: Vec<(&str, Value)> = vec![
        ("unknown type", json!({"type": "explode", "topic": "bad"})),
        ("missing type", json!({"topic": "bad"})),
        ("type not a string", json!({"type": 5, "topic": "bad"})),
        ("subscribe without topic", json!({"type": "subscribe"})),
        ("unsubscribe without topic", json!({"type": "unsubscribe"})),
        (
            "publish without topic",
            json!({"type": "publish", "message": {"payload": 1}}),
        ),
        ("topic null", json!({"type": "subscribe", "topic": null})),
        (
            "topic with a space",
            json!({"type": "subscribe", "topic": "a b"}),
        ),
        (
            "topic of 256 chars",
            json!({"type": "subscribe", "topic": long_topic}),
        ),
        ("empty topic", json!({"type": "subscribe", "topic": ""})),
        (
            "topic with a slash",
            json!({"type": "publish", "topic": "a/b", "data": 1}),
        ),
        ("topic a number", json!({"type": "subscribe", "topic": 5})),
        (
            "topic an object",
            json!({"type": "publish", "topic": {"name": "bad"}, "data": 1}),
        ),
        (
            "message a string",
            json!({"type": "publish", "topic": "bad", "message": "x"}),
        ),
        (
            "message.id a number",
            json!({"type": "publish", "topic": "bad", "message": {"id": 1, "payload": 1}}),
        ),
        (
            "message.id over 255 bytes",
            json!({"type": "publish", "topic": "bad", "message": {"id": long_id, "payload": 1}}),
        ),
        (
            "message without payload",
            json!({"type": "publish", "topic": "bad", "message": {"id": "m"}}),
        ),
        (
            "publish without message or data",
            json!({"type": "publish", "topic": "bad"}),
        ),
        (
            "last_n a string",
            json!({"type": "subscribe", "topic": "bad", "last_n": "5"}),
        ),
        (
            "last_n negative",
            json!({"type": "subscribe", "topic": "bad", "last_n": -1}),
        ),
        (
            "last_n 1.5",
            json!({"type": "subscribe", "topic": "bad", "last_n": 1.5}),
        ),
        (
            "last_n 2^53",
            json!({"type": "subscribe", "topic": "bad", "last_n": 9_007_199_254_740_992u64}),
        ),
        (
            "last_n 2^64-1",
            json!({"type": "subscribe", "topic": "bad", "last_n": u64::MAX}),
        ),
        (
            "since_seq negative",
            json!({"type": "subscribe", "topic": "bad", "since_seq": -1}),
        ),
        (
            "since_seq a string",
            json!({"type": "subscribe", "topic": "bad", "since_seq": "3"}),
        ),
        (
            "epoch a number",
            json!({"type": "subscribe", "topic": "bad", "since_seq": 1, "epoch": 7}),
        ),
        (
            "client_id a number",
            json!({"type": "subscribe", "topic": "bad", "client_id": 7}),
        ),
    ];
    for (i, (what, frame)) in objects.iter().enumerate() {
        let rids = [None, Some(json!(format!("req-{i}"))), Some(json!(1000 + i))];
        for rid in rids {
            let mut frame = frame.clone();
            if let Some(rid) = &rid {
                frame["request_id"] = rid.clone();
            }
            ws.send_json(frame.clone()).await;
            let v = ws.recv_json_no_heartbeat().await;
            assert_error_frame(&v, "BAD_REQUEST", rid.as_ref(), &format!("{what}: {frame}"));
            assert_alive(&mut ws, &format!("obj-{i}"), what).await;
        }
    }

    // Nothing above had an effect: no topic was created.
    let topics: Value = get_json(&server.url("/topics")).await;
    assert_eq!(
        topics["topics"],
        json!([]),
        "rejected frames created topics: {topics}"
    );

    // And the connection still does real work.
    let ack = ws.subscribe("good").await;
    assert_eq!(ack["topic"], "good");
    let mut publisher = server.ws().await;
    publisher.publish("good", json!(1)).await;
    let ev = ws.recv_json_no_heartbeat().await;
    assert_eq!(ev["type"], "event", "{ev}");
    assert_eq!(ev["topic"], "good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_with_utf8_json_work_like_text() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    let send_binary = |v: Value| Message::binary(v.to_string().into_bytes());

    ws.inner
        .send(send_binary(json!({"type": "ping", "request_id": "b1"})))
        .await
        .unwrap();
    let pong = ws.recv_json_no_heartbeat().await;
    assert_eq!(
        (pong["type"].clone(), pong["request_id"].clone()),
        (json!("pong"), json!("b1"))
    );

    ws.inner
        .send(send_binary(
            json!({"type": "subscribe", "topic": "bin", "request_id": "b2"}),
        ))
        .await
        .unwrap();
    let ack = ws.recv_json_no_heartbeat().await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["request_id"], "b2");

    ws.inner
        .send(send_binary(
            json!({"type": "publish", "topic": "bin", "request_id": "b3",
            "message": {"id": "m-1", "payload": {"k": "v"}}}),
        ))
        .await
        .unwrap();
    let mut got_ack = false;
    let mut got_event = false;
    for _ in 0..2 {
        let v = ws.recv_json_no_heartbeat().await;
        match v["type"].as_str() {
            Some("ack") => {
                assert_eq!(v["request_id"], "b3");
                assert_eq!(v["id"], "m-1");
                got_ack = true;
            }
            Some("event") => {
                assert_eq!(v["message"], json!({"id": "m-1", "payload": {"k": "v"}}));
                got_event = true;
            }
            _ => panic!("unexpected {v}"),
        }
    }
    assert!(got_ack && got_event);

    // A binary frame that is UTF-8 but not JSON is a bad request like its text twin.
    ws.inner
        .send(Message::binary(b"nope".to_vec()))
        .await
        .unwrap();
    let v = ws.recv_json_no_heartbeat().await;
    assert_error_frame(&v, "BAD_REQUEST", None, "binary non-JSON");
    assert_alive(&mut ws, "b4", "binary non-JSON").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frame_with_invalid_utf8_is_a_bad_request() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    ws.inner
        .send(Message::binary(vec![0xff, 0xfe, b'{', 0x80]))
        .await
        .unwrap();
    let v = ws.recv_json_no_heartbeat().await;
    assert_error_frame(&v, "BAD_REQUEST", None, "binary invalid UTF-8");
    assert_alive(&mut ws, "u1", "binary invalid UTF-8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_frame_with_invalid_utf8_closes_with_1007() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    let frame = Frame::message(vec![b'"', 0xff, 0xfe, b'"'], OpCode::Data(Data::Text), true);
    ws.inner.send(Message::Frame(frame)).await.unwrap();
    let close = ws.recv_close().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Invalid, "{close:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_over_max_message_bytes_is_rejected_and_the_connection_stays() {
    const MAX: usize = 1024;
    let server = TestServer::start_with(|c| c.max_message_bytes = MAX).await;
    let mut sub = server.ws().await;
    sub.subscribe("big").await;
    let mut ws = server.ws().await;

    // The payload's JSON is exactly MAX bytes (a string of MAX - 2 chars plus quotes): accepted.
    let ack = ws.publish("big", json!("x".repeat(MAX - 2))).await;
    assert_eq!(ack["seq"], 1);

    // One byte more: rejected, whichever form the publish takes.
    let too_big = json!("x".repeat(MAX - 1));
    let frames = [
        json!({"type": "publish", "topic": "big", "request_id": "p1",
            "message": {"payload": too_big}}),
        json!({"type": "publish", "topic": "big", "request_id": "p2", "data": too_big}),
        json!({"type": "publish", "topic": "big", "request_id": "p3",
            "message": {"payload": {"nested": [too_big]}}}),
    ];
    for frame in frames {
        let rid = frame["request_id"].clone();
        ws.send_json(frame).await;
        let v = ws.recv_json_no_heartbeat().await;
        assert_error_frame(
            &v,
            "PAYLOAD_TOO_LARGE",
            Some(&rid),
            "payload over the limit",
        );
        assert_alive(&mut ws, "alive", "PAYLOAD_TOO_LARGE").await;
    }

    // Nothing was published: the next message gets seq 2 and the subscriber sees 1 then 2.
    let ack = ws.publish("big", json!("small")).await;
    assert_eq!(
        ack["seq"], 2,
        "a rejected publish must not take a seq: {ack}"
    );
    for want in [1, 2] {
        let ev = sub.recv_json_no_heartbeat().await;
        assert_eq!(ev["seq"], want, "{ev}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_beyond_the_websocket_limit_closes_with_1009() {
    const MAX: usize = 1024;
    let server = TestServer::start_with(|c| c.max_message_bytes = MAX).await;
    let mut ws = server.ws().await;
    assert_alive(&mut ws, "before", "connect").await;
    // A well-formed publish whose frame is past MAX_MESSAGE_BYTES + 64 KiB.
    let frame = json!({"type": "publish", "topic": "big",
        "data": "y".repeat(MAX + 65_536 + 100)});
    ws.send_json(frame).await;
    let close = ws
        .recv_close()
        .await
        .expect("a close frame, not just a dropped socket");
    assert_eq!(close.code, CloseCode::Size, "{close:?}");

    // Other connections are unaffected.
    let mut other = server.ws().await;
    assert_alive(&mut other, "other", "1009 on another connection").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_create_off_answers_topic_not_found() {
    let server = TestServer::start_with(|c| c.auto_create_topics = false).await;
    let mut ws = server.ws().await;

    let cases = [
        json!({"type": "subscribe", "topic": "nope", "request_id": "s"}),
        json!({"type": "subscribe", "topic": "nope", "request_id": "s2", "last_n": 3}),
        json!({"type": "publish", "topic": "nope", "request_id": "p", "message": {"payload": 1}}),
        json!({"type": "publish", "topic": "nope", "request_id": "p2", "data": 1}),
    ];
    for frame in cases {
        let rid = frame["request_id"].clone();
        ws.send_json(frame.clone()).await;
        let v = ws.recv_json_no_heartbeat().await;
        assert_error_frame(&v, "TOPIC_NOT_FOUND", Some(&rid), &frame.to_string());
        assert_alive(&mut ws, "alive", &frame.to_string()).await;
    }
    // Without a request_id too.
    ws.send_json(json!({"type": "subscribe", "topic": "nope"}))
        .await;
    let v = ws.recv_json_no_heartbeat().await;
    assert_error_frame(&v, "TOPIC_NOT_FOUND", None, "subscribe without request_id");

    // The topic was not created by any of that.
    let resp = http().get(server.url("/topics/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);

    // Once created over REST, the same connection can use it.
    let resp = http()
        .post(server.url("/topics"))
        .json(&json!({"name": "yes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    ws.subscribe("yes").await;
    let mut publisher = server.ws().await;
    let ack = publisher.publish("yes", json!({"ok": true})).await;
    assert_eq!(ack["seq"], 1);
    let ev = ws.recv_json_no_heartbeat().await;
    assert_eq!(ev["type"], "event", "{ev}");
    assert_eq!(ev["message"]["payload"], json!({"ok": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_cap_per_connection_gives_limit_exceeded() {
    let server = TestServer::start_with(|c| c.max_subscriptions_per_connection = 3).await;
    let mut ws = server.ws().await;
    for t in ["a", "b", "c"] {
        ws.subscribe(t).await;
    }
    ws.send_json(json!({"type": "subscribe", "topic": "d", "request_id": "fourth"}))
        .await;
    let v = ws.recv_json_no_heartbeat().await;
    assert_error_frame(
        &v,
        "LIMIT_EXCEEDED",
        Some(&json!("fourth")),
        "4th subscription",
    );
    assert_alive(&mut ws, "alive", "LIMIT_EXCEEDED").await;

    // Re-subscribing an existing topic is not a new subscription.
    let ack = ws
        .request(json!({"type": "subscribe", "topic": "a", "request_id": "again"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["request_id"], "again");

    // The refused topic delivers nothing to this connection; the others still do.
    let mut publisher = server.ws().await;
    publisher.publish("d", json!("to-d")).await;
    publisher.publish("a", json!("to-a")).await;
    let ev = ws.recv_json_no_heartbeat().await;
    assert_eq!(
        (ev["topic"].clone(), ev["message"]["payload"].clone()),
        (json!("a"), json!("to-a"))
    );

    // The cap is per connection, and freeing a slot makes room.
    let mut other = server.ws().await;
    for t in ["d", "e", "f"] {
        other.subscribe(t).await;
    }
    let ack = ws
        .request(json!({"type": "unsubscribe", "topic": "c"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let ack = ws.subscribe("d").await;
    assert_eq!(ack["topic"], "d");
}

/// A frame that is not JSON is explained in words a user knows, as over REST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_errors_say_what_was_expected_and_where() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    let cases = [
        ("hello", "expected a JSON object at byte 0, found `h`"),
        (
            r#"{"type":"#,
            "unexpected end of input after byte 7: an object or array is not closed",
        ),
        (
            r#"{"type":"ping" "request_id":"x"}"#,
            "unexpected `\"` at byte 15 inside an object: expected a double-quoted key, `,` or `}`",
        ),
        (
            r#"{"type":"publish","topic":"t","data":tru}"#,
            "invalid value at byte 37: only `true` starts with `t` (strings need double quotes)",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        ws.send_text(text).await;
        let v = ws.recv_json_no_heartbeat().await;
        assert_error_frame(&v, "BAD_REQUEST", None, text);
        assert_eq!(
            v["error"]["message"],
            format!("invalid JSON: {expected}"),
            "{text}"
        );
        assert_alive(&mut ws, &format!("json-{i}"), text).await;
    }
}
