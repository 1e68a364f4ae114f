//! Plain HTTP requests (no upgrade) reverse-proxied to the upstream's HTTP
//! base (`http://` or `https://`, see [`crate::tls::client`]) with the same header rules as WebSocket requests (hop-by-hop headers
//! dropped, `X-Forwarded-*` set, identity headers a client sent removed).

use std::net::SocketAddr;

use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};

use crate::headers::{remove_hop_by_hop, ClientRequest};
use crate::http_auth::Verdict;
use crate::listener::error;
use crate::proxy::{Body, Proxy};
use crate::rescue::HttpError;

/// Forwards one request (`tls`: it came over TLS) and returns the upstream's response (or a JSON error).
pub async fn forward(
    request: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
    proxy: &Proxy,
    revocations: &crate::revocation::Revocations,
) -> Response<Body> {
    // `OPTIONS *` or `host:port` would become a path under the upstream's base.
    if !crate::listener::is_origin_or_absolute_form(request.uri()) {
        return error(HttpError::BadRequestTarget);
    }
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let verified = match proxy
        .http_rules
        .check(
            proxy,
            revocations,
            &parts.method,
            &parts.headers,
            parts.uri.path(),
        )
        .await
    {
        Verdict::Pass => None,
        Verdict::Verified(identity, token) => Some((identity, token)),
        Verdict::Refused(answer) => return answer,
    };
    let Ok(uri) = proxy.target.http_url(path_and_query).parse::<Uri>() else {
        return error(HttpError::UpstreamUnavailable);
    };
    let client = ClientRequest {
        peer,
        headers: parts.headers,
        path_and_query: path_and_query.to_owned(),
        subprotocol: None,
        tls,
    };
    let mut headers = HeaderMap::new();
    proxy.headers.forward(
        &client,
        &crate::ids::connection_id(),
        client.proto(),
        &mut headers,
    );
    if let Some((identity, token)) = verified {
        proxy.headers.identity(&identity, &mut headers);
        if proxy.upstream.forward_token {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
                headers.insert(http::header::AUTHORIZATION, v);
            }
        }
    }
    set_content_length(&client.headers, &body, &mut headers);
    let mut outgoing = Request::new(body.boxed());
    *outgoing.method_mut() = parts.method;
    *outgoing.uri_mut() = uri;
    *outgoing.headers_mut() = headers;
    let sent = tokio::time::timeout(
        proxy.upstream.response_timeout,
        proxy.http.request(outgoing),
    )
    .await;
    match sent {
        Ok(Ok(mut response)) => {
            remove_hop_by_hop(response.headers_mut());
            response.map(|b| b.boxed())
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "upstream http request failed");
            error(HttpError::UpstreamUnavailable)
        }
        Err(_) => error(HttpError::UpstreamTimeout),
    }
}

/// The client's `Content-Length` as hyper parsed it (`005` and `5, 5` are
/// sent as `5`), never as written: [`crate::headers::HeaderPolicy::forward`]
/// does not copy it. hyper refuses a request whose lengths disagree or are
/// not digits, so a body with a `Content-Length` has an exact size here.
fn set_content_length(client: &HeaderMap, body: &Incoming, out: &mut HeaderMap) {
    if !client.contains_key(CONTENT_LENGTH) {
        return;
    }
    if let Some(n) = body.size_hint().exact() {
        out.insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
}
