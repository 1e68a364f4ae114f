//! The protocol's JSON Schemas (`docs/schemas/`): every control frame the
//! proxy writes in a scenario is checked against its schema by the helpers
//! that receive frames (`recv_json`, `recv_type`, the upstream's `recv`).

use std::sync::LazyLock;

use jsonschema::Validator;
use serde_json::Value;

/// A schema file's text, by its path under `docs/schemas/`.
macro_rules! schema_file {
    ($path:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schemas/", $path))
    };
}

/// The frames wsguard writes to the client (default dialect): type and schema.
const SERVER_FRAMES: [(&str, &str); 6] = [
    ("AUTHENTICATED", schema_file!("server/authenticated.json")),
    ("auth_required", schema_file!("server/auth_required.json")),
    ("TOKEN_EXPIRED", schema_file!("server/token_expired.json")),
    ("error", schema_file!("server/error.json")),
    ("reconnect", schema_file!("server/reconnect.json")),
    ("idle_warning", schema_file!("server/idle_warning.json")),
];

/// The frames a client sends (default dialect), by file name.
pub const CLIENT_FRAMES: [(&str, &str); 2] = [
    ("auth", schema_file!("client/auth.json")),
    ("reauth", schema_file!("client/reauth.json")),
];

/// The notice wsguard writes to the upstream.
const NOTICE: &str = schema_file!("upstream/identity_refreshed.json");

/// Compiles a schema's text (formats checked too).
pub fn compile(text: &str) -> Validator {
    let schema: Value = serde_json::from_str(text).expect("a schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("a schema does not compile: {e}"))
}

/// The client-frame validators, compiled once.
static SERVER: LazyLock<Vec<(&'static str, Validator)>> = LazyLock::new(|| {
    SERVER_FRAMES
        .iter()
        .map(|(kind, text)| (*kind, compile(text)))
        .collect()
});

/// The notice's validator, compiled once.
static NOTICE_SCHEMA: LazyLock<Validator> = LazyLock::new(|| compile(NOTICE));

/// The errors of `frame` against `validator`, one per line ("" if valid).
fn errors(validator: &Validator, frame: &Value) -> String {
    validator
        .iter_errors(frame)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Panics unless `frame` matches the schema of its type, when its type is
/// one wsguard writes to clients in the default dialect (other frames are
/// application data and pass unchecked).
pub fn check_client_bound(frame: &Value) {
    let Some(kind) = frame.get("type").and_then(Value::as_str) else {
        return;
    };
    if let Some((_, validator)) = SERVER.iter().find(|(name, _)| *name == kind) {
        let found = errors(validator, frame);
        assert!(
            found.is_empty(),
            "{kind} frame against docs/schemas: {found}\n{frame}"
        );
    }
}

/// Panics unless `text`, when it is a notice wsguard wrote (JSON of type
/// `identity_refreshed` with a top-level `key`), matches the notice's schema.
pub fn check_upstream_bound(text: &str) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if frame.get("type").and_then(Value::as_str) == Some("identity_refreshed")
        && frame.get("key").is_some()
    {
        let found = errors(&NOTICE_SCHEMA, &frame);
        assert!(
            found.is_empty(),
            "identity_refreshed against docs/schemas: {found}\n{frame}"
        );
    }
}

/// Whether `frame` is valid against a compiled schema (for tests of the schemas themselves).
pub fn is_valid(validator: &Validator, frame: &Value) -> bool {
    validator.is_valid(frame)
}
