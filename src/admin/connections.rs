//! `GET /connections?sub=&limit=&cursor=`: live connections from the
//! registry, ordered by connection id, a page at a time.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::metrics::State;
use crate::registry::{Entry, Registry};
use crate::rescue::HttpError;
use crate::upstream::decode_query_name;

/// Connections per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// Most connections per page.
pub const MAX_LIMIT: usize = 1000;

/// The parsed query.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Only connections of this `sub`.
    pub sub: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Only connections whose id sorts after this (the previous page's `next_cursor`).
    pub cursor: Option<String>,
}

impl Query {
    /// Parses `sub`, `limit` and `cursor`; other parameters are ignored.
    pub fn parse(query: Option<&str>) -> Result<Query, HttpError> {
        let mut q = Query {
            limit: DEFAULT_LIMIT,
            ..Query::default()
        };
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode_query_name(value).ok_or(HttpError::AdminBadQuery)?;
            match name {
                "sub" => q.sub = Some(value),
                "cursor" => q.cursor = Some(value),
                "limit" => {
                    q.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or(HttpError::AdminBadQuery)?
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

/// One page: `{"connections": [...], "next_cursor": id or null}`.
pub fn page(registry: &Registry, query: &Query) -> Value {
    let mut entries = registry.find(|e| {
        query.sub.as_deref().is_none_or(|s| e.identity.sub == s)
            && query.cursor.as_deref().is_none_or(|c| &*e.id > c)
    });
    entries.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let more = entries.len() > query.limit;
    entries.truncate(query.limit);
    let next = more.then(|| entries.last().map(|e| e.id.to_string()));
    let now = SystemTime::now();
    let listed: Vec<Value> = entries.iter().map(|e| describe(e, now)).collect();
    json!({ "connections": listed, "next_cursor": next.flatten() })
}

/// One connection as JSON.
fn describe(entry: &Entry, now: SystemTime) -> Value {
    let state = State::from_u8(entry.state.load(std::sync::atomic::Ordering::Relaxed));
    let age = now
        .duration_since(entry.started)
        .map_or(0.0, |d| d.as_secs_f64());
    json!({
        "id": &*entry.id,
        "sub": entry.identity.sub,
        "iss": entry.identity.iss,
        "provider": &*entry.identity.provider,
        "state": state.name(),
        "expires_at": entry.identity.exp,
        "remote_addr": entry.peer.to_string(),
        "age_seconds": (age * 1000.0).round() / 1000.0,
        "worker": entry.worker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_and_bad_ones_are_refused() {
        let q = Query::parse(Some("sub=al%20ice&limit=2&cursor=x-c1&other")).expect("parse");
        assert_eq!(q.sub.as_deref(), Some("al ice"));
        assert_eq!(q.limit, 2);
        assert_eq!(q.cursor.as_deref(), Some("x-c1"));
        assert_eq!(Query::parse(None).map(|q| q.limit), Ok(DEFAULT_LIMIT));
        for bad in ["limit=0", "limit=1001", "limit=x", "sub=%zz"] {
            assert_eq!(
                Query::parse(Some(bad)),
                Err(HttpError::AdminBadQuery),
                "{bad}"
            );
        }
    }
}
