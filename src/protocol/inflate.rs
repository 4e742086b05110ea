//! [`Inflater`]: client frames in, the same frames out with every compressed message (RSV1,
//! RFC 7692) inflated, for a frame reader that knows no extensions (tungstenite's).
//!
//! Frames that are not part of a compressed message — plain messages, pings, closes, and
//! anything malformed — pass through byte for byte, so the reader behind still checks masking,
//! sizes, reserved bits, UTF-8 and the close handshake exactly as before. A compressed message is
//! re-framed as masked (key zero) text or binary fragments of its inflated bytes; control frames
//! between its fragments keep their place. The inflated size is bounded by the message limit as
//! it is produced, so a small frame that would inflate to gigabytes is refused after at most the
//! limit (and one chunk) has been made. The inflate state exists only while a compressed message
//! is being read (`client_no_context_takeover`): an idle connection holds none.

use flate2::{Decompress, FlushDecompress, Status};

use super::deflate::TAIL;

/// Deflate input unmasked and inflated per step.
const STEP_IN: usize = 1024;
/// Inflated bytes made per call into the decompressor (one re-framed fragment at most).
const STEP_OUT: usize = 16 * 1024;
/// Longest client frame header: 2 bytes, a 64-bit length, a masking key.
const MAX_HEAD: usize = 14;

/// Why a compressed message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// It inflates past the message limit (close 1009).
    #[error("compressed message inflates past the size limit")]
    TooBig,
    /// Its deflate data is invalid (close 1007).
    #[error("compressed message is not valid deflate data")]
    Corrupt,
    /// Its framing breaks RFC 6455 or 7692 (RSV1 on a continuation, an unmasked fragment, a new
    /// message before the compressed one ended).
    #[error("compressed message is badly framed")]
    Protocol,
}

/// Where the reader is inside the current frame.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// Reading a header.
    Head,
    /// Copying this many more payload bytes of a frame that is passed through.
    Pass(u64),
    /// Inflating this many more payload bytes of a compressed message's fragment.
    Deflated {
        left: u64,
        mask: [u8; 4],
        /// Payload bytes of this frame already read (the masking key's phase).
        at: u64,
        fin: bool,
    },
}

/// A compressed message being read.
struct Message {
    inflate: Decompress,
    /// Text (1) or binary (2): the opcode of the first re-framed fragment.
    opcode: u8,
    /// Whether a fragment went out already (later ones are continuations).
    started: bool,
    /// Inflated bytes so far.
    total: usize,
    /// The deflate stream ended (a final block): what follows is ignored.
    ended: bool,
}

/// Turns client frames with compressed messages into plain ones (see the module doc).
pub struct Inflater {
    /// Largest inflated message.
    max_message: usize,
    head: [u8; MAX_HEAD],
    head_len: usize,
    part: Part,
    /// Boxed and absent between compressed messages: the decompressor's window and tables
    /// (≈ 40 KiB) exist only while one is read.
    message: Option<Box<Message>>,
}

impl Inflater {
    /// An inflater for messages of at most `max_message` inflated bytes.
    pub fn new(max_message: usize) -> Self {
        Self {
            max_message,
            head: [0; MAX_HEAD],
            head_len: 0,
            part: Part::Head,
            message: None,
        }
    }

    /// Whether a compressed message is being read (its inflate state is held).
    pub fn is_inflating(&self) -> bool {
        self.message.is_some()
    }

    /// Reads frames from `input` and appends them, compressed messages inflated, to `out`,
    /// stopping once `out` holds `want` bytes or `input` is used up. Returns how many input bytes
    /// were taken; the rest must be offered again. Takes at least one byte of non-empty input
    /// unless `out` is already full.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        want: usize,
    ) -> Result<usize, InflateError> {
        let mut used = 0;
        loop {
            // A fragment whose payload is all read ends here, whatever `want` says: nothing
            // else would bring it back once the input is used up.
            if let Part::Deflated { left: 0, fin, .. } = self.part {
                if fin {
                    self.finish(out)?;
                }
                self.part = Part::Head;
            }
            let rest = &input[used..];
            if out.len() >= want || rest.is_empty() {
                break;
            }
            match self.part {
                Part::Deflated { left: 0, .. } => {}
                Part::Head => used += self.read_head(rest, out)?,
                Part::Pass(left) => {
                    let n = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&rest[..n]);
                    used += n;
                    let left = left - n as u64;
                    self.part = if left == 0 {
                        Part::Head
                    } else {
                        Part::Pass(left)
                    };
                }
                Part::Deflated {
                    left,
                    mask,
                    at,
                    fin,
                } => {
                    let n = rest
                        .len()
                        .min(STEP_IN)
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    let mut chunk = [0u8; STEP_IN];
                    for (i, (c, b)) in chunk.iter_mut().zip(&rest[..n]).enumerate() {
                        *c = b ^ mask[((at + i as u64) % 4) as usize];
                    }
                    self.inflate(&chunk[..n], out)?;
                    used += n;
                    self.part = Part::Deflated {
                        left: left - n as u64,
                        mask,
                        at: at + n as u64,
                        fin,
                    };
                }
            }
        }
        Ok(used)
    }

    /// Takes header bytes from `rest`; once the header is whole, decides what the frame is.
    fn read_head(&mut self, rest: &[u8], out: &mut Vec<u8>) -> Result<usize, InflateError> {
        let need = self.head_need();
        let n = rest.len().min(need - self.head_len);
        self.head[self.head_len..self.head_len + n].copy_from_slice(&rest[..n]);
        self.head_len += n;
        // The length byte may have shown that more header follows.
        if self.head_len < self.head_need() {
            return Ok(n);
        }
        let head = &self.head[..self.head_len];
        let (b0, b1) = (head[0], head[1]);
        let (fin, rsv1, opcode) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0F);
        let masked = b1 & 0x80 != 0;
        let len = match b1 & 0x7F {
            126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
            127 => u64::from_be_bytes(head[2..10].try_into().unwrap_or_default()),
            n => u64::from(n),
        };
        let mut mask = [0u8; 4];
        if masked {
            mask.copy_from_slice(&head[self.head_len - 4..self.head_len]);
        }
        self.head_len = 0;
        let clean = b0 & 0x70 == 0;
        let inside = self.message.is_some();
        self.part = match opcode {
            1 | 2 if rsv1 && !inside => {
                if !masked || b0 & 0x30 != 0 {
                    return Err(InflateError::Protocol);
                }
                self.message = Some(Box::new(Message {
                    inflate: Decompress::new(false),
                    opcode,
                    started: false,
                    total: 0,
                    ended: false,
                }));
                self.deflated(len, mask, fin)?
            }
            0 if inside => {
                if !masked || !clean {
                    return Err(InflateError::Protocol);
                }
                self.deflated(len, mask, fin)?
            }
            1 | 2 if inside => return Err(InflateError::Protocol),
            // Plain frames, control frames, and whatever the reader behind must refuse itself.
            _ => {
                out.extend_from_slice(&self.head[..self.head_need_for(b1)]);
                if len == 0 {
                    Part::Head
                } else {
                    Part::Pass(len)
                }
            }
        };
        Ok(n)
    }

    /// The state for a compressed fragment of `len` payload bytes.
    fn deflated(&self, len: u64, mask: [u8; 4], fin: bool) -> Result<Part, InflateError> {
        // Deflate never grows data by more than a few bytes per 16 KiB block.
        let limit = self.max_message as u64 + self.max_message as u64 / 1024 + 1024;
        if len > limit {
            return Err(InflateError::TooBig);
        }
        Ok(Part::Deflated {
            left: len,
            mask,
            at: 0,
            fin,
        })
    }

    /// Header bytes needed, given what was read so far.
    fn head_need(&self) -> usize {
        if self.head_len < 2 {
            2
        } else {
            self.head_need_for(self.head[1])
        }
    }

    /// Header length given its second byte (mask bit and length code).
    fn head_need_for(&self, b1: u8) -> usize {
        let ext = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
    }

    /// Inflates `input` (unmasked deflate data) into re-framed fragments appended to `out`.
    fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), InflateError> {
        let max = self.max_message;
        let Some(message) = self.message.as_deref_mut() else {
            return Err(InflateError::Protocol);
        };
        let mut buf = [0u8; STEP_OUT];
        loop {
            if message.ended {
                return Ok(());
            }
            let (before_in, before_out) = (message.inflate.total_in(), message.inflate.total_out());
            let status = message
                .inflate
                .decompress(input, &mut buf, FlushDecompress::None)
                .map_err(|_| InflateError::Corrupt)?;
            let took = (message.inflate.total_in() - before_in) as usize;
            let made = (message.inflate.total_out() - before_out) as usize;
            input = &input[took..];
            message.total += made;
            if message.total > max {
                return Err(InflateError::TooBig);
            }
            if made > 0 {
                message.fragment(&buf[..made], false, out);
            }
            if status == Status::StreamEnd {
                message.ended = true;
            }
            // Done when the input is used up and the output had room to spare (nothing held back).
            if input.is_empty() && made < buf.len() {
                return Ok(());
            }
            if took == 0 && made == 0 && !message.ended {
                return Err(InflateError::Corrupt);
            }
        }
    }

    /// The compressed message's last fragment was read: inflate the tail, send the final
    /// fragment, and drop the inflate state.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), InflateError> {
        self.inflate(&TAIL, out)?;
        if let Some(mut message) = self.message.take() {
            message.fragment(&[], true, out);
        }
        Ok(())
    }
}

impl Message {
    /// Appends a masked (key zero) fragment carrying `payload`.
    fn fragment(&mut self, payload: &[u8], fin: bool, out: &mut Vec<u8>) {
        let opcode = if self.started { 0 } else { self.opcode };
        self.started = true;
        out.push(if fin { 0x80 } else { 0 } | opcode);
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if let Ok(len) = u16::try_from(len) {
            out.push(0x80 | 126);
            out.extend_from_slice(&len.to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(payload);
    }
}

#[cfg(test)]
#[path = "inflate_tests.rs"]
mod tests;
