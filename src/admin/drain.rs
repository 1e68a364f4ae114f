//! `/drain` on the admin listener: `POST /drain` begins the drain and
//! answers at once (202); `GET /drain?wait=true` begins it if needed and
//! answers when it is over (200; for `preStop` hooks, and without the token
//! when `admin.drain_without_token` is set); `GET /drain` says whether the
//! proxy drains and how many connections are left.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::{json, Admin};
use crate::drain::{Drain, Waiting};
use crate::rescue::HttpError;

/// Where a connection keeps its `GET /drain?wait=true` until its answer is written.
pub type Slot = Arc<Mutex<Option<Waiting>>>;

/// Whether the query asks to wait (`wait=true`).
fn wants_wait(query: Option<&str>) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .any(|pair| pair == "wait=true")
}

/// Answers `/drain`.
pub async fn answer<B>(admin: &Admin, request: &Request<B>, slot: &Slot) -> Response<Full<Bytes>> {
    let wait = wants_wait(request.uri().query());
    let (post, get) = (
        request.method() == Method::POST,
        request.method() == Method::GET,
    );
    if !post && !get {
        return HttpError::AdminMethodNotAllowed.response();
    }
    let open = get && wait && admin.drain_without_token;
    if !open && !admin.authorized(request) {
        return HttpError::AdminUnauthorized.response();
    }
    let Some(drain) = &admin.drain else {
        return HttpError::AdminNotFound.response();
    };
    if post {
        drain.start("POST /drain");
        return status(StatusCode::ACCEPTED, drain);
    }
    if !wait {
        return status(StatusCode::OK, drain);
    }
    drain.start("GET /drain?wait=true");
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(drain.waiting());
    drain.finished().await;
    let mut response = status(StatusCode::OK, drain);
    // The process exits once this is written: the connection ends with it.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `{"draining": ..., "drained": ..., "connections": ...}`.
fn status(code: StatusCode, drain: &Drain) -> Response<Full<Bytes>> {
    json(
        code,
        &serde_json::json!({
            "draining": drain.started(),
            "drained": drain.is_finished(),
            "connections": drain.live(),
        }),
    )
}
