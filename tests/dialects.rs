//! The two dialect styles end to end: lowercase (`auth` for auth and re-auth, no AUTHENTICATED) and upper-case (AUTHENTICATE / REAUTH → AUTHENTICATED, TOKEN_EXPIRED).

mod support;
use support::lifecycle::*;
use support::*;

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const LOWERCASE: &str = "auth = [\"auth\"]\nreauth = [\"auth\"]\nauthenticated = \"\"\nauth_required = \"auth_required\"\nerror = \"error\"";

const UPPERCASE: &str = "auth = [\"AUTHENTICATE\"]\nreauth = [\"REAUTH\"]\nauthenticated = \"AUTHENTICATED\"\ntoken_expired = \"TOKEN_EXPIRED\"";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test]
async fn lowercase_dialect_end_to_end() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .session("reauth_lead = \"2s\"\nreauth_min_interval = \"0s\"")
        .dialect(LOWERCASE)
        .start()
        .await;

    // No AUTHENTICATED: the first frame the client sees comes from the upstream.
    let (t1, exp1) = token("alice", 4);
    let mut ws = connect(&proxy, "/").await;
    send(&mut ws, control("auth", "a1", &t1)).await;
    let mut up = upstream.accept().await;
    assert_eq!(up.header("x-auth-subject").as_deref(), Some("alice"));
    up.send(Message::text(r#"{"type":"welcome"}"#));
    assert_eq!(recv_text(&mut ws).await, r#"{"type":"welcome"}"#);

    let v = recv_type(&mut ws, "auth_required").await;
    assert_eq!(v["payload"]["expires_at"], rfc3339(exp1), "{v}");

    // Re-auth with `auth`: consumed, and no answer on success.
    let (t2, exp2) = token("alice", 5);
    assert!(exp2 > exp1);
    send(&mut ws, control("auth", "r1", &t2)).await;
    // REAUTH is not a control frame in this dialect: it is data.
    let upper = json!({"type": "REAUTH", "id": "x", "payload": {"token": t2}}).to_string();
    send_text(&mut ws, &upper).await;
    assert_eq!(
        up_text(&mut up).await,
        upper,
        "`auth` leaked or REAUTH consumed"
    );
    // A bad re-auth gets an error.
    send(&mut ws, control("auth", "r2", "not.a.jwt")).await;
    let v = recv_type(&mut ws, "error").await;
    assert_eq!(v["payload"]["code"], "invalid_token", "{v}");
    assert_eq!(v["payload"]["in_reply_to"], "r2", "{v}");

    // The swapped token is in force: the next notice is for t2, and it comes
    // after t1's exp (had t1 stayed, TOKEN_EXPIRED would come first).
    let v = recv_type(&mut ws, "auth_required").await;
    assert_eq!(v["payload"]["expires_at"], rfc3339(exp2), "{v}");
    assert!(now() >= exp1, "notice for t2 came before t1 expired");
    send_text(&mut ws, "data").await;
    assert_eq!(up_text(&mut up).await, "data");
    up.send(Message::text("reply"));
    assert_eq!(recv_text(&mut ws).await, "reply");
    up_silence(&mut up, ms(200)).await;

    // Only `auth` opens a connection.
    let mut ws = connect(&proxy, "/").await;
    send(
        &mut ws,
        control("AUTHENTICATE", "a2", &token("alice", 60).0),
    )
    .await;
    assert_eq!(expect_close(&mut ws).await, (1008, "auth required".into()));
}

#[tokio::test]
async fn uppercase_dialect_end_to_end() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .session("reauth_lead = \"1s\"\ngrace = \"3s\"\nreauth_min_interval = \"0s\"")
        .dialect(UPPERCASE)
        .start()
        .await;

    let (t1, exp1) = token("alice", 3);
    let mut ws = connect(&proxy, "/").await;
    send(&mut ws, control("AUTHENTICATE", "a1", &t1)).await;
    let v = recv_type(&mut ws, "AUTHENTICATED").await;
    assert_eq!(v["payload"]["in_reply_to"], "a1", "{v}");
    assert_eq!(v["payload"]["sub"], "alice", "{v}");
    assert_eq!(v["payload"]["exp"], exp1, "{v}");
    assert!(v["payload"]["connection_id"].is_string(), "{v}");
    let mut up = upstream.accept().await;

    // `auth` is not a re-auth type here: it is data, echoed back.
    let lower = json!({"type": "auth", "id": "x", "payload": {"token": t1}}).to_string();
    round_trip(&mut ws, &lower).await;
    assert_eq!(up_text(&mut up).await, lower);

    recv_type(&mut ws, "auth_required").await;
    let v = recv_type(&mut ws, "TOKEN_EXPIRED").await;
    assert_eq!(v["payload"]["expired_at"], rfc3339(exp1), "{v}");
    assert_eq!(v["payload"]["grace"], 3, "{v}");

    let (t2, exp2) = token("alice", 60);
    send(&mut ws, control("REAUTH", "r1", &t2)).await;
    let v = recv_type(&mut ws, "AUTHENTICATED").await;
    assert_eq!(v["payload"]["in_reply_to"], "r1", "{v}");
    assert_eq!(v["payload"]["exp"], exp2, "{v}");
    round_trip(&mut ws, "resumed").await;
    assert_eq!(up_text(&mut up).await, "resumed");

    // Only AUTHENTICATE opens a connection.
    let mut ws = connect(&proxy, "/").await;
    send(&mut ws, auth_frame(&token("alice", 60).0)).await;
    assert_eq!(expect_close(&mut ws).await, (1008, "auth required".into()));
}
