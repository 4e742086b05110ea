//! permessage-deflate (RFC 7692): the handshake's answer to a client's offer, and the compression
//! of one message on its own, as `server_no_context_takeover` requires. Compressing each message
//! without a shared window is what lets one event's compressed bytes go to every subscriber.

use std::cell::RefCell;

use flate2::{Compress, Compression, FlushCompress, Status};

/// The extension's name in `Sec-WebSocket-Extensions`.
const NAME: &str = "permessage-deflate";

/// What every accepted offer is answered with: no window kept on either side, so the server
/// compresses each message alone and keeps no inflate window per connection.
const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The largest LZ77 window (bits) the compressor uses; miniz_oxide's is fixed at 32 KiB.
const WINDOW_BITS: u8 = 15;

/// The empty stored block a sync flush ends with; RFC 7692 §7.2.1 removes it from the wire.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

thread_local! {
    /// One compressor per thread, reset for every message: its tables are ≈ 300 KiB, too much to
    /// allocate per event, and a message compressed alone needs nothing from the one before.
    static COMPRESSOR: RefCell<Option<Compress>> = const { RefCell::new(None) };
}

/// The `Sec-WebSocket-Extensions` answer to the client's `offers` (every value of that header),
/// or `None` to decline them all. The first offer of permessage-deflate whose parameters herald
/// can meet is accepted (RFC 7692 §5); an offer it cannot meet is skipped, not an error.
pub fn negotiate<'a>(offers: impl IntoIterator<Item = &'a str>) -> Option<String> {
    offers
        .into_iter()
        .flat_map(|value| value.split(','))
        .find_map(accept)
}

/// The answer to one offer (`permessage-deflate; param[=value]; …`), if herald can meet it.
fn accept(offer: &str) -> Option<String> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case(NAME) {
        return None;
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut server_bits = None;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        // RFC 7692 §7: a repeated parameter makes the offer invalid.
        if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            return None;
        }
        seen.push(name);
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" if value.is_none() => {}
            // The client can inflate with at most this window; ours is fixed at 15 bits.
            "server_max_window_bits" => server_bits = Some(window_bits(value?)?),
            // The client may be told a smaller window; the inflater takes any, so say nothing.
            "client_max_window_bits" => {
                if let Some(v) = value {
                    window_bits(v)?;
                }
            }
            _ => return None,
        }
    }
    match server_bits {
        None => Some(ANSWER.to_string()),
        Some(WINDOW_BITS) => Some(format!("{ANSWER}; server_max_window_bits={WINDOW_BITS}")),
        Some(_) => None,
    }
}

/// A window size parameter: 8 to 15, no leading zero (RFC 7692 §7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    let bits: u8 = value.parse().ok()?;
    ((8..=15).contains(&bits) && !value.starts_with('0')).then_some(bits)
}

/// `message` compressed alone (raw deflate, sync-flushed, the tail removed), or `None` when that
/// would not be shorter.
pub fn compress(message: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with_borrow_mut(|slot| {
        let compressor = slot.get_or_insert_with(|| Compress::new(Compression::default(), false));
        compressor.reset();
        let mut out = Vec::with_capacity(message.len() / 2 + 64);
        loop {
            let consumed = compressor.total_in() as usize;
            if out.len() == out.capacity() {
                out.reserve(message.len() / 4 + 64);
            }
            let status = compressor
                .compress_vec(&message[consumed..], &mut out, FlushCompress::Sync)
                .ok()?;
            // Done once all input is in and the flush left spare room (so it completed).
            let done =
                compressor.total_in() as usize == message.len() && out.len() < out.capacity();
            if done || status == Status::StreamEnd {
                break;
            }
        }
        if !out.ends_with(&TAIL) {
            return None;
        }
        out.truncate(out.len() - TAIL.len());
        (out.len() < message.len()).then_some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    fn inflate(data: &[u8]) -> Vec<u8> {
        let mut input = data.to_vec();
        input.extend_from_slice(&TAIL);
        let mut d = Decompress::new(false);
        let mut out = Vec::with_capacity(8 << 20);
        d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .unwrap();
        out
    }

    #[test]
    fn offers_are_answered_or_declined_per_rfc_7692() {
        let answer = Some(ANSWER.to_string());
        // Chromium, Firefox, Python websockets.
        assert_eq!(
            negotiate(["permessage-deflate; client_max_window_bits"]),
            answer
        );
        assert_eq!(negotiate(["permessage-deflate"]), answer);
        assert_eq!(
            negotiate([
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"
            ]),
            answer
        );
        assert_eq!(
            negotiate(["permessage-deflate; server_max_window_bits=15"]),
            Some(format!("{ANSWER}; server_max_window_bits=15"))
        );
        // A smaller server window cannot be met: that offer is declined, the next one taken.
        assert_eq!(
            negotiate(["permessage-deflate; server_max_window_bits=10"]),
            None
        );
        assert_eq!(
            negotiate(["permessage-deflate; server_max_window_bits=10, permessage-deflate"]),
            answer
        );
        assert_eq!(
            negotiate(["x-webkit-deflate-frame", "permessage-deflate"]),
            answer
        );
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=08",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; mystery",
            "deflate-frame",
            "",
        ] {
            assert_eq!(negotiate([bad]), None, "{bad}");
        }
    }

    #[test]
    fn a_message_compresses_alone_and_inflates_back() {
        let text = r#"{"type":"event","topic":"news","message":{"payload":"the quick brown fox jumps over the lazy dog, again and again"}}"#.repeat(20);
        let packed = compress(text.as_bytes()).expect("text compresses");
        assert!(packed.len() < text.len() / 4);
        assert!(!packed.ends_with(&TAIL));
        assert_eq!(inflate(&packed), text.as_bytes());
        // No context carried over: the same input compresses to the same bytes every time.
        assert_eq!(compress(text.as_bytes()), Some(packed));
        assert_eq!(compress(b"ab"), None, "not shorter: sent plain");
        let big: Vec<u8> = (0..300_000u32)
            .flat_map(|i| i.to_string().into_bytes())
            .collect();
        assert!(inflate(&compress(&big).unwrap()) == big);
    }
}
