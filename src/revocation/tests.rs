use std::sync::Arc;

use super::*;

fn identity(sub: &str, iss: Option<&str>, claims: serde_json::Value) -> Identity {
    use base64::Engine;
    Identity {
        sub: sub.into(),
        iss: iss.map(str::to_owned),
        exp: unix_now() + 60,
        claims_b64: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string()),
        provider: "p".into(),
        issuer_pinned: false,
        kid: None,
    }
}

fn revocation(target: Target) -> Revocation {
    let now = unix_now();
    Revocation {
        target,
        at: now,
        until: now + 60,
    }
}

#[test]
fn a_subject_is_refused_until_it_signs_in_again() {
    let store = Revocations::default();
    let registry = Registry::default();
    let now = unix_now();
    let old = identity("alice", Some("idp"), serde_json::json!({"iat": now - 5}));
    let new = identity("alice", Some("idp"), serde_json::json!({"iat": now + 1}));
    let none = identity("alice", Some("idp"), serde_json::json!({}));
    let bob = identity("bob", Some("idp"), serde_json::json!({"iat": now - 5}));
    assert!(!store.refuses(&old), "nothing revoked yet");
    let target = Target::Sub {
        sub: "alice".into(),
        iss: None,
    };
    store.revoke(revocation(target.clone()), &registry, false);
    assert!(store.refuses(&old));
    assert!(store.refuses(&none), "no iat: refused");
    assert!(!store.refuses(&new), "issued after the revocation");
    assert!(!store.refuses(&bob));
    assert!(store.lift(&target, false));
    assert!(!store.refuses(&old));
    assert!(!store.lift(&target, false), "already lifted");
}

#[test]
fn an_issuer_narrows_a_subject_revocation() {
    let store = Revocations::default();
    let target = Target::Sub {
        sub: "alice".into(),
        iss: Some("a".into()),
    };
    store.revoke(revocation(target), &Registry::default(), false);
    assert!(store.refuses(&identity("alice", Some("a"), serde_json::json!({}))));
    assert!(!store.refuses(&identity("alice", Some("b"), serde_json::json!({}))));
    assert!(!store.refuses(&identity("alice", None, serde_json::json!({}))));
}

#[test]
fn jti_and_sid_match_their_claims() {
    let store = Revocations::default();
    let registry = Registry::default();
    store.revoke(
        revocation(Target::Jti { jti: "t1".into() }),
        &registry,
        false,
    );
    store.revoke(
        revocation(Target::Sid { sid: "s1".into() }),
        &registry,
        false,
    );
    let with = |claims| identity("alice", None, claims);
    assert!(store.refuses(&with(serde_json::json!({"jti": "t1"}))));
    assert!(store.refuses(&with(serde_json::json!({"sid": "s1"}))));
    assert!(!store.refuses(&with(serde_json::json!({"jti": "t2", "sid": "s2"}))));
    assert_eq!(store.list().len(), 2);
}

#[test]
fn revoking_closes_the_matching_live_connections() {
    let store = Revocations::default();
    let registry = Registry::new(2);
    let about = || crate::registry::About {
        peer: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        started: std::time::SystemTime::now(),
        state: Arc::default(),
    };
    let claims = serde_json::json!({"iat": unix_now() - 1});
    let a = registry.shard(0).register(
        "a".into(),
        Arc::new(identity("alice", None, claims.clone())),
        about(),
    );
    let b =
        registry
            .shard(1)
            .register("b".into(), Arc::new(identity("bob", None, claims)), about());
    let target = Target::Sub {
        sub: "alice".into(),
        iss: None,
    };
    let (_, closed) = store.revoke(revocation(target), &registry, false);
    assert_eq!(closed, 1);
    let cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert_eq!(
        a.mailbox().poll(&cx),
        Some(Command::Close(CloseCause::TokenRevoked))
    );
    assert_eq!(b.mailbox().poll(&cx), None);
    // Stored in a batch (loaded from Redis), closed in one pass.
    let (_, changed) = store.store(revocation(Target::Sub {
        sub: "bob".into(),
        iss: None,
    }));
    assert!(changed);
    assert_eq!(store.close_refused(&registry), 2, "alice's is still listed");
    assert_eq!(
        b.mailbox().poll(&cx),
        Some(Command::Close(CloseCause::TokenRevoked))
    );
    let again = store.list()[0].clone();
    assert!(!store.store(again).1, "the same again changes nothing");
}

#[test]
fn the_same_target_twice_keeps_the_later_time_and_longer_life() {
    let store = Revocations::default();
    let target = Target::Jti { jti: "t".into() };
    let mut first = revocation(target.clone());
    first.until += 100;
    store.revoke(first.clone(), &Registry::default(), false);
    let (stored, _) = store.revoke(revocation(target), &Registry::default(), false);
    assert_eq!(stored.until, first.until);
}

#[test]
fn keys_are_json_arrays() {
    let sub = Target::Sub {
        sub: "a\"b".into(),
        iss: None,
    };
    assert_eq!(sub.key(), r#"["sub",null,"a\"b"]"#);
    assert_eq!(Target::Jti { jti: "j".into() }.key(), r#"["jti","j"]"#);
}

#[test]
fn requests_are_checked() {
    let ttl = Duration::from_secs(60);
    let ok = parse_request(br#"{"sub":"alice"}"#, 1, ttl).expect("sub");
    assert_eq!(ok.until - ok.at, 60);
    let ok = parse_request(br#"{"jti":"x","ttl":"1h"}"#, 1, ttl).expect("ttl");
    assert_eq!(ok.until - ok.at, 3600);
    let ok = parse_request(br#"{"sid":"x","ttl":5}"#, 1, ttl).expect("ttl seconds");
    assert_eq!(ok.until - ok.at, 5);
    let until =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(120));
    let body = format!(r#"{{"jti":"x","until":"{until}"}}"#);
    assert!(parse_request(body.as_bytes(), 1, ttl).is_ok());
    for bad in [
        &br#"{"sub":"alice"}"#[..],
        br#"{"jti":"x","sid":"y"}"#,
        br#"{}"#,
        br#"{"jti":""}"#,
        br#"{"jti":"x","ttl":"soon"}"#,
        br#"{"jti":"x","ttl":0}"#,
        br#"{"jti":"x","until":"2000-01-01T00:00:00Z"}"#,
        br#"{"jti":"x","until":"tomorrow"}"#,
        br#"{"jti":"x","other":1}"#,
        b"not json",
    ] {
        assert!(
            parse_request(bad, 2, ttl).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn revocations_from_redis_outside_the_apis_bounds_are_not_plausible() {
    let now = unix_now();
    let jti = || Target::Jti { jti: "t".into() };
    assert!(revocation(jti()).plausible(now));
    let ended = Revocation {
        target: jti(),
        at: now - 10,
        until: now,
    };
    assert!(!ended.plausible(now), "ended");
    let far = Revocation {
        target: jti(),
        at: now,
        until: u64::MAX,
    };
    assert!(!far.plausible(now), "past the year 9999 / overflowing");
    let eleven_years = Revocation {
        target: jti(),
        at: now,
        until: now + 11 * 365 * 86_400,
    };
    assert!(!eleven_years.plausible(now), "more than ten years");
    let future_made = Revocation {
        target: jti(),
        at: u64::MAX,
        until: now + 60,
    };
    assert!(!future_made.plausible(now), "made in the future");
}
