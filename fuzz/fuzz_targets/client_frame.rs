//! Any bytes as a WebSocket client frame: parsing and decoding never panic, and a publish that is
//! accepted produces an event frame that is valid JSON carrying the same payload.
#![no_main]

use herald::broker::{Broker, Subscriber, Outbox, Outgoing, ConnId};
use herald::protocol::{Payload, Replay};
use herald::config::{Config, SlowConsumerPolicy};
use herald::protocol::{decode, Kind};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    let Ok(value) = simd_json::to_borrowed_value(&mut bytes) else {
        return;
    };
    let Ok(frame) = decode(&value) else {
        return;
    };
    if frame.kind != Kind::Publish {
        return;
    }
    let (Some(topic), Some(payload)) = (frame.topic, frame.payload) else {
        panic!("a decoded publish always has a topic and a payload");
    };
    let broker = Broker::new(&Config::default());
    let outbox = Arc::new(Outbox::new(4, SlowConsumerPolicy::Disconnect));
    let sub = Subscriber { conn: ConnId(1), outbox: outbox.clone(), dialect: Default::default() };
    broker.subscribe(&topic, &sub, &Replay::None, None, None).expect("auto-create");
    if broker.publish(&topic, frame.message_id, Payload::Value(payload)).is_err() {
        return;
    }
    let Some(Outgoing::Event(event)) = outbox.pop() else {
        panic!("the subscriber got no event");
    };
    let parsed: serde_json::Value =
        serde_json::from_str(event.frame.as_str()).expect("event frame is valid JSON");
    assert_eq!(parsed["topic"], topic.as_str());
    assert_eq!(parsed["seq"], 1);
    if let Some(id) = frame.message_id {
        assert_eq!(parsed["message"]["id"], id);
    }
    // The payload survives the round trip (numbers compared as JSON values).
    let original: serde_json::Value =
        serde_json::from_str(&simd_json::to_string(payload).expect("serializable"))
            .expect("simd-json writes valid JSON");
    assert_eq!(parsed["message"]["payload"], original);
});
