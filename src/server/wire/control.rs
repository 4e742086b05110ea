//! [`ControlOut`]: what tungstenite writes on the reading side (pongs, close replies), held for
//! the writer so every byte on the wire is written by one task.

use std::future::poll_fn;
use std::io;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

use super::OP_CLOSE;

/// Most bytes of tungstenite's control frames (pongs, close replies) waiting for the writer. A
/// client is already limited to `MAX_CONTROL_FRAMES_PER_SEC`; past this its connection fails.
const MAX_CONTROL_BYTES: usize = 64 * 1024;

/// What tungstenite writes on the reading side (pongs, close replies), waiting for the writer.
#[derive(Default)]
pub(crate) struct ControlOut {
    bytes: Mutex<Vec<u8>>,
    /// Whether `bytes` holds anything, so the writer's checks on every wake take no lock.
    pending: AtomicBool,
    /// The writer parks here (beside the outbox's waker) while there is nothing to send.
    waker: AtomicWaker,
}

impl ControlOut {
    /// Takes the complete frames written so far.
    pub(crate) fn take(&self) -> Option<Vec<u8>> {
        if !self.pending.load(Ordering::Acquire) {
            return None;
        }
        let mut bytes = self.bytes.lock();
        self.pending.store(false, Ordering::Relaxed);
        (!bytes.is_empty()).then(|| mem::take(&mut *bytes))
    }

    /// Resolves once there are frames to send.
    pub(crate) async fn ready(&self) {
        poll_fn(|cx| {
            if self.pending.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // A write between the check and the registration found no waker; look again.
            if !self.pending.load(Ordering::Acquire) {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    pub(super) fn push(&self, data: &[u8]) -> io::Result<()> {
        let mut bytes = self.bytes.lock();
        if bytes.len() + data.len() > MAX_CONTROL_BYTES {
            return Err(io::Error::other("control frames are not being sent"));
        }
        bytes.extend_from_slice(data);
        self.pending.store(true, Ordering::Release);
        drop(bytes);
        self.waker.wake();
        Ok(())
    }
}

/// Whether `frames` (complete server frames, back to back) hold a close frame: nothing may be
/// sent after it.
pub(crate) fn has_close(mut frames: &[u8]) -> bool {
    while frames.len() >= 2 {
        if frames[0] & 0x0F == OP_CLOSE {
            return true;
        }
        let (head, len): (usize, usize) = match frames[1] & 0x7F {
            126 if frames.len() >= 4 => {
                (4, usize::from(u16::from_be_bytes([frames[2], frames[3]])))
            }
            127 if frames.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&frames[2..10]);
                (
                    10,
                    usize::try_from(u64::from_be_bytes(n)).unwrap_or(usize::MAX),
                )
            }
            126 | 127 => return false,
            n => (2, usize::from(n)),
        };
        // Server frames are unmasked, so no masking key follows the length.
        frames = frames.get(head.saturating_add(len)..).unwrap_or(&[]);
    }
    false
}
