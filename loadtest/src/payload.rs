//! The payload every publisher sends, identical in bytes for every target: a fixed-width stamp
//! (publisher id, per-topic counter, send time) in lowercase hex, padded to the requested size.
//!
//! Hex keeps the payload a plain JSON string for herald (no escaping, no nested object to
//! parse) and a plain byte string for NATS and Redis, and decoding it is a fixed 40-byte scan.

/// Bytes taken by the stamp; payloads are at least this long.
pub const STAMP_LEN: usize = 8 + 16 + 16;

/// Filler after the stamp, up to the payload size.
const PAD: u8 = b'.';

/// What a payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the publisher that sent it.
    pub publisher: u32,
    /// The publisher's counter for this topic: 0, 1, 2, … in send order.
    pub counter: u64,
    /// `clock::now_ns()` when the publisher wrote it.
    pub sent_ns: u64,
}

/// Appends the payload for `stamp`, `size` bytes long (at least [`STAMP_LEN`]).
pub fn encode(out: &mut Vec<u8>, stamp: &Stamp, size: usize) {
    hex(out, u64::from(stamp.publisher), 8);
    hex(out, stamp.counter, 16);
    hex(out, stamp.sent_ns, 16);
    out.resize(out.len() + size.saturating_sub(STAMP_LEN), PAD);
}

/// Words of the `--text-payload` filler: the vocabulary of a typical JSON event feed (orders,
/// users, places, statuses), no quote or backslash so the payload stays a plain JSON string.
const WORDS: [&str; 64] = [
    "order",
    "filled",
    "cancelled",
    "pending",
    "user",
    "account",
    "price",
    "quantity",
    "symbol",
    "market",
    "limit",
    "status",
    "created",
    "updated",
    "shipped",
    "delivered",
    "warehouse",
    "Lisbon",
    "Nairobi",
    "Osaka",
    "Toronto",
    "Berlin",
    "Santiago",
    "customer",
    "premium",
    "standard",
    "express",
    "invoice",
    "payment",
    "card",
    "refund",
    "approved",
    "declined",
    "session",
    "login",
    "logout",
    "device",
    "mobile",
    "desktop",
    "browser",
    "region",
    "eu-west",
    "us-east",
    "ap-south",
    "latency",
    "ms",
    "request",
    "response",
    "error",
    "warning",
    "info",
    "temperature",
    "humidity",
    "wind",
    "sensor",
    "reading",
    "battery",
    "firmware",
    "version",
    "the",
    "and",
    "for",
    "with",
    "after",
];

/// Like [`encode`], but the filler after the stamp is a feed of records shaped like JSON objects
/// (`{'id':…,'user':…,'city':…,'status':…,'amount':…,'note':…}`, single quotes so the payload
/// stays one plain JSON string) with values drawn from [`WORDS`] and numbers, different for every
/// message (seeded by the stamp): a fair input for permessage-deflate, where a run of one byte
/// would flatter it and random bytes defeat it.
pub fn encode_text(out: &mut Vec<u8>, stamp: &Stamp, size: usize) {
    let end = out.len() + size.max(STAMP_LEN);
    hex(out, u64::from(stamp.publisher), 8);
    hex(out, stamp.counter, 16);
    hex(out, stamp.sent_ns, 16);
    let mut seed = stamp.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(stamp.publisher);
    let mut next = move || {
        // xorshift64*: cheap and deterministic; only the look of the text matters.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 8
    };
    let word = |r: u64| WORDS[(r % WORDS.len() as u64) as usize];
    while out.len() < end {
        let record = format!(
            "{{'id':{},'user':'{}','city':'{}','status':'{}','amount':{}.{:02},'note':'{} {} {} {}'}},",
            next() % 1_000_000,
            word(next()),
            word(next()),
            word(next()),
            next() % 10_000,
            next() % 100,
            word(next()),
            word(next()),
            word(next()),
            word(next()),
        );
        out.extend_from_slice(record.as_bytes());
    }
    out.truncate(end);
}

/// Reads the stamp at the start of a payload; `None` when it is not one of ours.
pub fn decode(payload: &[u8]) -> Option<Stamp> {
    if payload.len() < STAMP_LEN {
        return None;
    }
    Some(Stamp {
        publisher: unhex(&payload[..8])? as u32,
        counter: unhex(&payload[8..24])?,
        sent_ns: unhex(&payload[24..40])?,
    })
}

fn hex(out: &mut Vec<u8>, value: u64, digits: u32) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(DIGITS[((value >> (i * 4)) & 0xf) as usize]);
    }
}

fn unhex(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |acc, &b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size() {
        let stamp = Stamp {
            publisher: 7,
            counter: 123_456_789,
            sent_ns: u64::MAX - 3,
        };
        let mut out = Vec::new();
        encode(&mut out, &stamp, 128);
        assert_eq!(out.len(), 128);
        assert_eq!(decode(&out), Some(stamp));
        out.clear();
        encode(&mut out, &stamp, 10);
        assert_eq!(out.len(), STAMP_LEN);
    }

    #[test]
    fn text_payloads_are_text_of_the_size_and_differ() {
        let stamp = |counter| Stamp {
            publisher: 1,
            counter,
            sent_ns: 5,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_text(&mut a, &stamp(1), 4096);
        encode_text(&mut b, &stamp(2), 4096);
        assert_eq!((a.len(), b.len()), (4096, 4096));
        assert_eq!(decode(&a), Some(stamp(1)));
        assert_ne!(a[STAMP_LEN..], b[STAMP_LEN..]);
        assert!(a.iter().all(|c| c.is_ascii_graphic() || *c == b' '));
        assert!(
            !a.contains(&b'"') && !a.contains(&b'\\'),
            "a plain JSON string"
        );
    }

    #[test]
    fn rejects_foreign_payloads() {
        assert_eq!(decode(b"hello"), None);
        assert_eq!(decode(&[b'z'; 64]), None);
    }
}
