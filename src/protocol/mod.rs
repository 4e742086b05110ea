//! The vocabulary every layer above shares, and the wire format: client frames in ([`client`]),
//! server frames out ([`server`]), topic names, the frame type, and what a publish or subscribe
//! carries and answers. Pure functions, no I/O, so every rule of PROTOCOL.md §1 is unit-tested here.

pub mod client;
pub mod deflate;
mod frame;
pub mod inflate;
pub mod json_error;
mod message;
mod name;
mod pattern;
pub mod presence;
pub mod server;

pub use client::{
    decode, decode_publish, ClientFrame, FrameError, Kind, PublishRequest, RequestId,
};
pub use frame::Frame;
pub use message::{Dialect, Payload, Published, Replay, SubscribeAck};
pub use name::TopicName;
pub use pattern::TopicPattern;
pub use presence::PresenceList;
