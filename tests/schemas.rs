//! The JSON Schemas of `docs/schemas/` themselves: they compile, they take
//! the frames of docs/protocol.md's examples and our own client frames, and
//! they refuse frames that break the protocol (so the check every scenario
//! runs through the helpers can fail).

mod support;

use serde_json::{json, Value};
use support::schema::{check_client_bound, compile, is_valid, CLIENT_FRAMES};

/// The JSON of every `P→C` / `C→P` example line of docs/protocol.md that is whole JSON.
fn protocol_examples(arrow: &str) -> Vec<Value> {
    let text = include_str!("../docs/protocol.md");
    text.lines()
        .filter_map(|line| line.split_once(arrow).map(|(_, rest)| rest.trim()))
        .filter_map(|rest| {
            let end = rest.rfind('}')?;
            serde_json::from_str::<Value>(&rest[..=end]).ok()
        })
        .collect()
}

#[test]
fn the_protocol_pages_examples_match_the_schemas() {
    let server = protocol_examples("P→C ");
    assert!(server.len() >= 8, "examples found: {server:?}");
    for frame in &server {
        check_client_bound(frame);
    }
    let auth = compile(CLIENT_FRAMES[0].1);
    let reauth = compile(CLIENT_FRAMES[1].1);
    let client = protocol_examples("C→P ");
    let controls: Vec<&Value> = client
        .iter()
        .filter(|v| matches!(v["type"].as_str(), Some("auth" | "REAUTH")))
        .collect();
    assert!(controls.len() >= 5, "client examples found: {controls:?}");
    for frame in controls {
        let ok = if frame["type"] == "auth" {
            is_valid(&auth, frame)
        } else {
            is_valid(&reauth, frame)
        };
        assert!(ok, "{frame}");
    }
    assert!(is_valid(
        &auth,
        &json!({"type": "AUTHENTICATE", "payload": {"token": "t"}})
    ));
    assert!(!is_valid(
        &auth,
        &json!({"type": "REAUTH", "payload": {"token": "t"}})
    ));
    assert!(!is_valid(
        &reauth,
        &json!({"type": "REAUTH", "payload": {}})
    ));
}

/// A valid AUTHENTICATED frame, to break one part at a time.
fn authenticated() -> Value {
    json!({"type": "AUTHENTICATED", "id": "3f9c2a7b1d04-101", "timestamp": "2025-06-01T12:00:00.031Z",
           "payload": {"sub": "alice", "exp": 1748780100, "expires_at": "2025-06-01T12:15:00Z",
                       "connection_id": "3f9c2a7b1d04-c42", "in_reply_to": "1"}})
}

#[test]
fn the_check_refuses_frames_that_break_the_protocol() {
    check_client_bound(&authenticated());
    check_client_bound(&json!({"type": "message", "anything": [1, 2]}));
    let broken: [fn(&mut Value); 5] = [
        |v| {
            v["payload"]
                .as_object_mut()
                .map(|p| p.remove("connection_id"))
                .map(drop)
                .unwrap_or(())
        },
        |v| v["payload"]["exp"] = json!("1748780100"),
        |v| v["timestamp"] = json!("2025-06-01 12:00:00"),
        |v| v["extra"] = json!(1),
        |v| v["payload"]["code"] = json!("invalid_token"),
    ];
    for (i, breaking) in broken.iter().enumerate() {
        let mut frame = authenticated();
        breaking(&mut frame);
        let refused = std::panic::catch_unwind(|| check_client_bound(&frame)).is_err();
        assert!(refused, "broken frame {i} passed: {frame}");
    }
    let unknown_code = json!({"type": "error", "id": "x-1", "timestamp": "2025-06-01T12:00:00.031Z",
                              "payload": {"code": "nope", "message": "m"}});
    assert!(std::panic::catch_unwind(|| check_client_bound(&unknown_code)).is_err());
}
