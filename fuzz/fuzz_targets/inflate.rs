//! Any bytes as client frames through the inflating reader (permessage-deflate): it never
//! panics, takes its input in any split the same way, refuses what inflates past the limit, and
//! a message compressed by herald's own compressor, framed (cut in two, a ping between) and fed
//! back, comes out as exactly that message.
#![no_main]

use herald::protocol::deflate::compress;
use herald::protocol::inflate::{InflateError, Inflater};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64 * 1024;

/// Feeds `wire` in pieces of `step` bytes; the frames made, or the first error.
fn run(wire: &[u8], step: usize, want: usize) -> Result<Vec<u8>, InflateError> {
    let mut inflater = Inflater::new(MAX);
    let mut out = Vec::new();
    let mut pending = Vec::new();
    for piece in wire.chunks(step.max(1)) {
        pending.extend_from_slice(piece);
        loop {
            let limit = out.len().saturating_add(want);
            let used = inflater.feed(&pending, &mut out, limit)?;
            pending.drain(..used);
            if used == 0 || pending.is_empty() {
                break;
            }
        }
    }
    Ok(out)
}

/// A masked client frame.
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0xA5, 0x5A, 0x0F, 0xF0];
    let mut out = vec![b0];
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&knob, rest)) = data.split_first() else {
        return;
    };
    // Arbitrary frames: one split against another gives the same result.
    let whole = run(rest, rest.len(), usize::MAX);
    let split = run(rest, usize::from(knob % 17) + 1, usize::from(knob) + 1);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => {
            // The frames may be cut differently; their unmasked payload bytes may not differ.
            assert_eq!(payload_bytes(a), payload_bytes(b));
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        // Input that stops mid-frame may fail in one split only once the rest arrives; both
        // saw all of it, so they agree.
        _ => panic!("split changed the outcome: {whole:?} vs {split:?}"),
    }
    // A real compressed message round-trips.
    if let Some(packed) = compress(rest) {
        let cut = usize::from(knob) % (packed.len() + 1);
        let mut wire = frame(0x41, &packed[..cut]);
        wire.extend(frame(0x89, b"ping"));
        wire.extend(frame(0x80, &packed[cut..]));
        match run(&wire, usize::from(knob % 7) + 1, 512) {
            Ok(out) => assert_eq!(message_of(&out), rest, "round trip"),
            Err(InflateError::TooBig) => assert!(rest.len() > MAX),
            Err(e) => panic!("herald's own compressed message refused: {e:?}"),
        }
    }
});

/// The unmasked payloads of the frames in `wire`, concatenated (what the reader behind sees).
fn payload_bytes(wire: &[u8]) -> Vec<u8> {
    frames(wire).into_iter().flat_map(|(_, p)| p).collect()
}

/// The data payload (control frames left out) of the frames in `wire`.
fn message_of(wire: &[u8]) -> Vec<u8> {
    frames(wire)
        .into_iter()
        .filter(|(b0, _)| b0 & 0x08 == 0)
        .flat_map(|(_, p)| p)
        .collect()
}

/// Frames as (first byte, unmasked payload); stops at an incomplete one.
fn frames(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while wire.len() >= 2 {
        let (b0, b1) = (wire[0], wire[1]);
        let (mut at, len) = match b1 & 0x7F {
            126 if wire.len() >= 4 => (4, u64::from(u16::from_be_bytes([wire[2], wire[3]]))),
            127 if wire.len() >= 10 => (10, u64::from_be_bytes(wire[2..10].try_into().unwrap())),
            126 | 127 => break,
            n => (2, u64::from(n)),
        };
        let mut mask = [0u8; 4];
        if b1 & 0x80 != 0 {
            if wire.len() < at + 4 {
                break;
            }
            mask.copy_from_slice(&wire[at..at + 4]);
            at += 4;
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let end = at.saturating_add(len).min(wire.len());
        let payload = wire[at..end]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        out.push((b0, payload));
        wire = &wire[end..];
    }
    out
}
