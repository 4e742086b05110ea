//! [`Frame`]: one ready-to-send text frame, the unit every queue, ring and writer passes around.

use std::fmt;

use bytes::Bytes;

/// A ready-to-send text frame: validated UTF-8 in a reference-counted `Bytes`, so one serialized
/// event is shared by every subscriber and the replay ring, and cloning it costs one increment.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Frame(Bytes);

impl Frame {
    /// A frame over static text.
    pub const fn from_static(text: &'static str) -> Self {
        Self(Bytes::from_static(text.as_bytes()))
    }

    /// The frame as text.
    pub fn as_str(&self) -> &str {
        // Every constructor takes text or checks UTF-8, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The frame's bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Self(Bytes::from(text))
    }
}

impl TryFrom<Bytes> for Frame {
    type Error = std::str::Utf8Error;

    /// Checks the bytes are UTF-8.
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
