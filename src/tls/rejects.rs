//! The one count of connections that ended before their first HTTP
//! request was served, by cause: each is also a `debug` log line where it
//! happens. A metrics exporter reads [`Rejects::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a connection ended before HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not TLS on the TLS port (plain HTTP, for example).
    NotTls,
    /// The TLS handshake took longer than `listener.tls.handshake_timeout`.
    HandshakeTimeout,
    /// The client's certificate was missing or not trusted (mTLS).
    ClientCertificate,
    /// Any other failed TLS handshake (no common version or cipher, alerts, resets).
    Handshake,
    /// The first request did not parse as HTTP/1 (a TLS client hello on the plain port, for example).
    BadHttp,
}

impl Reject {
    /// Every cause, in the order of [`Rejects::snapshot`].
    pub const ALL: [Reject; 5] = [
        Reject::NotTls,
        Reject::HandshakeTimeout,
        Reject::ClientCertificate,
        Reject::Handshake,
        Reject::BadHttp,
    ];

    /// The cause's name (a metric label).
    pub fn name(self) -> &'static str {
        match self {
            Reject::NotTls => "not_tls",
            Reject::HandshakeTimeout => "handshake_timeout",
            Reject::ClientCertificate => "client_certificate",
            Reject::Handshake => "handshake_failed",
            Reject::BadHttp => "bad_http",
        }
    }
}

/// Counters of [`Reject`]s, process-wide.
#[derive(Debug)]
pub struct Rejects {
    /// One counter per cause, indexed as [`Reject::ALL`].
    counts: [AtomicU64; 5],
}

/// The process's counters.
static REJECTS: Rejects = Rejects {
    counts: [
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ],
};

impl Rejects {
    /// The process's counters.
    pub fn global() -> &'static Rejects {
        &REJECTS
    }

    /// Counts one rejected connection.
    pub fn count(&self, reject: Reject) {
        self.counts[reject as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many of one cause so far.
    pub fn get(&self, reject: Reject) -> u64 {
        self.counts[reject as usize].load(Ordering::Relaxed)
    }

    /// Every cause with its count.
    pub fn snapshot(&self) -> [(Reject, u64); 5] {
        Reject::ALL.map(|r| (r, self.get(r)))
    }
}
