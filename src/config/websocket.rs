//! `[websocket]`: message limits and buffers of both legs.

use super::*;

/// Default limit on one message on either leg.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Default largest single read on a leg. Reads go into a buffer on the
/// stack, so this costs no memory per idle connection.
pub const DEFAULT_READ_BUFFER_BYTES: usize = 16 * 1024;

/// `[websocket]`: the same limits apply to the client and the upstream leg.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketLimits {
    /// Largest message (after reassembly of fragments).
    pub max_message_bytes: usize,
    /// Largest single frame.
    pub max_frame_bytes: usize,
    /// Largest single read on a leg (256 to 65536 bytes).
    pub read_buffer_bytes: usize,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        WebSocketLimits {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_frame_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            read_buffer_bytes: DEFAULT_READ_BUFFER_BYTES,
        }
    }
}

impl Config {
    /// `[websocket]`'s limits and `session.max_auth_frame_bytes`, which must fit them.
    pub(super) fn check_sizes(&self) -> Result<(), ConfigError> {
        let w = &self.websocket;
        require(
            w.max_message_bytes >= 125,
            "websocket.max_message_bytes",
            "must be at least 125",
        )?;
        require(
            (1..=w.max_message_bytes).contains(&w.max_frame_bytes),
            "websocket.max_frame_bytes",
            "must be between 1 and websocket.max_message_bytes",
        )?;
        require(
            (1..=w.max_message_bytes).contains(&self.session.max_auth_frame_bytes),
            "session.max_auth_frame_bytes",
            "must be between 1 and websocket.max_message_bytes",
        )?;
        require(
            (256..=crate::relay::MAX_READ).contains(&w.read_buffer_bytes),
            "websocket.read_buffer_bytes",
            "must be between 256 and 65536",
        )
    }
}
