//! What clients and the engine say to each other, independent of the wire: what a publish carries,
//! what a subscribe asks to replay, and what both answer.

/// How a subscription was made, which fixes the shape its events take on the way out
/// (PROTOCOL.md §2): seed clients read their own server's shape, not herald's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// herald's own frames (`type`), and seed a's `/ws/sub/{topic}`: the event frame of §1.
    #[default]
    Canonical,
    /// Frames that name their kind with `action` (seed c): events as seed c's `Message` struct.
    SeedC,
}

/// What a subscribe asks to replay before live events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Live events only.
    None,
    /// The last N stored events (capped at the ring size).
    LastN(u64),
    /// Every stored event after `seq`, if `epoch` (when given) is still the topic's.
    Since {
        /// Last `seq` the client saw.
        seq: u64,
        /// The topic epoch the client saw it in.
        epoch: Option<String>,
    },
}

/// The facts a subscribe ack reports.
#[derive(Debug)]
pub struct SubscribeAck<'a> {
    /// The topic's latest `seq` when the subscription took effect.
    pub seq: u64,
    /// The topic's epoch.
    pub epoch: &'a str,
    /// Whether the requested replay is complete; `None` when none was requested.
    pub recovered: Option<bool>,
}

/// The payload of a publish, written straight into the event frame.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A JSON value parsed from a client frame.
    Value(&'a simd_json::BorrowedValue<'a>),
    /// Text that is sent as a JSON string.
    Text(&'a str),
}

/// The outcome of a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The message id as a JSON string literal (with quotes), ready to splice into a reply.
    pub id_json: Box<str>,
    /// The `seq` the message got.
    pub seq: u64,
}
