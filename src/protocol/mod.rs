//! The wire format: client frames in ([`client`]), server frames out ([`server`]). Pure functions,
//! no I/O, so every rule of PROTOCOL.md §1 is unit-tested here.

pub mod client;
pub mod server;

pub use client::{decode, ClientFrame, FrameError, Kind, RequestId};
