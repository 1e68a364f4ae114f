//! Identifiers: connection ids (also sent upstream as `X-Request-Id`) and the
//! prefix of the ids of frames the proxy writes.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A random prefix, chosen once per process, so ids differ across restarts.
pub fn process_prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| {
        format!(
            "{:012x}",
            RandomState::new().hash_one(std::process::id()) >> 16
        )
    })
}

/// A new connection id, unique within the process and across restarts.
pub fn connection_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{}-c{}",
        process_prefix(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
