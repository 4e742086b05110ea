use super::*;
use crate::protocol::deflate::compress;

/// A masked client frame.
fn frame(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![b0];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The frames in `wire` as (first byte, unmasked payload).
fn frames(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let (b0, b1) = (wire[0], wire[1]);
        let (mut at, len) = match b1 & 0x7F {
            126 => (4, usize::from(u16::from_be_bytes([wire[2], wire[3]]))),
            127 => (
                10,
                u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize,
            ),
            n => (2, usize::from(n)),
        };
        let mask: [u8; 4] = wire[at..at + 4].try_into().unwrap();
        at += 4;
        let payload = wire[at..at + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        out.push((b0, payload));
        wire = &wire[at + len..];
    }
    out
}

/// Feeds `wire` in pieces of `step` bytes, asking for at most `want` bytes out per call.
fn run(
    inflater: &mut Inflater,
    wire: &[u8],
    step: usize,
    want: usize,
) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for piece in wire.chunks(step) {
        pending.extend_from_slice(piece);
        loop {
            let mut got = Vec::new();
            let used = inflater.feed(&pending, &mut got, want)?;
            out.extend(got);
            pending.drain(..used);
            if used == 0 || pending.is_empty() {
                break;
            }
        }
    }
    assert!(pending.is_empty());
    Ok(out)
}

/// The messages (opcode, joined payload) and control frames in `frames`.
fn messages(frames: &[(u8, Vec<u8>)]) -> Vec<(u8, Vec<u8>)> {
    let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut current: Option<(u8, Vec<u8>)> = None;
    for (b0, payload) in frames {
        let op = b0 & 0x0F;
        assert_eq!(b0 & 0x70, 0, "reserved bits cleared");
        if op >= 8 {
            out.push((op, payload.clone()));
            continue;
        }
        let cur = current.get_or_insert((op, Vec::new()));
        cur.1.extend_from_slice(payload);
        if b0 & 0x80 != 0 {
            out.extend(current.take());
        }
    }
    assert!(current.is_none());
    out
}

fn text(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("{{\"n\":{i},\"note\":\"the same words again\"}}"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn whole_and_fragmented_messages_inflate_with_pings_kept_in_place() {
    let big = text(3_000);
    let packed = compress(&big).unwrap();
    let (a, b) = packed.split_at(packed.len() / 3);
    let (b, c) = b.split_at(b.len() / 2);
    let mut wire = frame(0xC1, &compress(&text(5)).unwrap(), [1, 2, 3, 4]);
    wire.extend(frame(0x81, b"plain", [9, 9, 9, 9]));
    wire.extend(frame(0x41, a, [5, 6, 7, 8]));
    wire.extend(frame(0x89, b"p1", [1, 1, 1, 1]));
    wire.extend(frame(0x00, b, [0, 0, 0, 1]));
    wire.extend(frame(0x8A, b"", [0, 0, 0, 0]));
    wire.extend(frame(0x80, c, [3, 3, 3, 3]));
    wire.extend(frame(0x88, &[0x03, 0xE8], [2, 2, 2, 2]));
    for (step, want) in [(wire.len(), usize::MAX), (1, 7), (100, 3_000), (4096, 1)] {
        let mut inflater = Inflater::new(1 << 20);
        let out = run(&mut inflater, &wire, step, want).unwrap();
        let got = messages(&frames(&out));
        let expected: Vec<(u8, Vec<u8>)> = vec![
            (1, text(5)),
            (1, b"plain".to_vec()),
            (9, b"p1".to_vec()),
            (10, Vec::new()),
            (1, big.clone()),
            (8, vec![0x03, 0xE8]),
        ];
        assert_eq!(got, expected, "step {step}, want {want}");
        assert!(
            !inflater.is_inflating(),
            "no inflate state after the message"
        );
    }
}

#[test]
fn plain_frames_pass_through_unchanged() {
    let mut wire = frame(0x81, &text(50), [1, 2, 3, 4]);
    wire.extend(frame(0x01, b"part", [0, 0, 0, 0]));
    wire.extend(frame(0x80, b"end", [7, 7, 7, 7]));
    // Unmasked and RSV2 frames too: the reader behind refuses them.
    wire.extend([0x81, 0x01, b'x', 0xA1, 0x80, 0, 0, 0, 0]);
    for step in [1, 3, wire.len()] {
        assert_eq!(
            run(&mut Inflater::new(1 << 20), &wire, step, 5).unwrap(),
            wire
        );
    }
}

#[test]
fn a_bomb_is_refused_at_the_limit() {
    let zeros = vec![b'0'; 48 << 20];
    let packed = compress(&zeros).unwrap();
    assert!(packed.len() < 64 * 1024, "{}", packed.len());
    let wire = frame(0xC1, &packed, [1, 2, 3, 4]);
    let mut inflater = Inflater::new(1 << 20);
    let mut out = Vec::new();
    let mut used = 0;
    let err = loop {
        match inflater.feed(&wire[used..], &mut out, usize::MAX) {
            Ok(n) => used += n,
            Err(e) => break e,
        }
        assert!(out.len() < (1 << 20) + 64 * 1024, "output past the limit");
    };
    assert_eq!(err, InflateError::TooBig);
    assert!(out.len() <= (1 << 20) + 2 * STEP_OUT);
}

#[test]
fn broken_framing_and_data_are_errors() {
    let packed = compress(&text(100)).unwrap();
    let (a, b) = packed.split_at(10);
    let cases: Vec<(Vec<u8>, InflateError)> = vec![
        // RSV1 on a continuation.
        (
            [frame(0x41, a, [0; 4]), frame(0xC0, b, [0; 4])].concat(),
            InflateError::Protocol,
        ),
        // A new message before the compressed one ended.
        (
            [frame(0x41, a, [0; 4]), frame(0x81, b, [0; 4])].concat(),
            InflateError::Protocol,
        ),
        // Unmasked compressed frame.
        (vec![0xC1, 0x02, 0xAB, 0xCD], InflateError::Protocol),
        // Not deflate data (reserved block type 3).
        (
            frame(0xC1, &[0xFF, 0xFF, 0xFF], [0; 4]),
            InflateError::Corrupt,
        ),
        // A compressed frame far larger than any message.
        (
            [
                vec![0xC1, 0xFF],
                u64::MAX.to_be_bytes().to_vec(),
                vec![0; 4],
            ]
            .concat(),
            InflateError::TooBig,
        ),
    ];
    for (wire, expected) in cases {
        assert_eq!(
            run(&mut Inflater::new(1 << 20), &wire, 1, 64),
            Err(expected)
        );
    }
}

#[test]
fn an_empty_final_fragment_and_a_final_block_end_the_message() {
    let packed = compress(&text(40)).unwrap();
    let mut wire = frame(0x41, &packed, [4, 3, 2, 1]);
    wire.extend(frame(0x80, &[], [0; 4]));
    // A message that ends its deflate stream with a final block (BFINAL) instead of a flush.
    let mut last = Vec::with_capacity(256);
    flate2::Compress::new(flate2::Compression::default(), false)
        .compress_vec(
            b"abcabcabcabcabcabcabcabcabcabc",
            &mut last,
            flate2::FlushCompress::Finish,
        )
        .unwrap();
    wire.extend(frame(0xC1, &last, [8, 8, 8, 8]));
    let out = run(&mut Inflater::new(1 << 20), &wire, 2, 10).expect("inflates");
    assert_eq!(
        messages(&frames(&out)),
        vec![
            (1, text(40)),
            (1, b"abcabcabcabcabcabcabcabcabcabc".to_vec())
        ]
    );
}
