//! `POST /reload` on the admin listener: reloads the configuration as
//! SIGHUP does and answers what happened: 200 `{"status":"reloaded",
//! "ignored":[...],"key_removed":N}`, or 400 `reload_refused` with the
//! error naming the key (the configuration in force stays).

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::{json, Admin};
use crate::rescue::HttpError;

/// Answers `/reload`.
pub async fn answer<B>(admin: &Admin, request: &Request<B>) -> Response<Full<Bytes>> {
    if request.method() != Method::POST {
        return HttpError::AdminMethodNotAllowed.response();
    }
    if !admin.authorized(request) {
        return HttpError::AdminUnauthorized.response();
    }
    let Some(reloader) = &admin.reloader else {
        return HttpError::AdminNotFound.response();
    };
    match reloader.reload("POST /reload").await {
        Ok(applied) => json(
            StatusCode::OK,
            &serde_json::json!({
                "status": "reloaded",
                "ignored": applied.ignored,
                "key_removed": applied.key_removed,
            }),
        ),
        Err(e) => HttpError::ReloadRefused.message(&e),
    }
}
