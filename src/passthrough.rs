//! Plain HTTP requests (no upgrade) reverse-proxied to the upstream's HTTP
//! base with the same header rules as WebSocket requests (hop-by-hop headers
//! dropped, `X-Forwarded-*` set, identity headers a client sent removed).

use std::net::SocketAddr;

use http::{HeaderMap, Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::headers::ClientRequest;
use crate::listener::error;
use crate::proxy::{Body, Proxy};
use crate::rescue::HttpError;

/// Response headers that are hop-by-hop and never passed back.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-authenticate",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Forwards one request and returns the upstream's response (or a JSON error).
pub async fn forward(
    request: Request<Incoming>,
    peer: SocketAddr,
    proxy: &Proxy,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let Ok(uri) = proxy.target.http_url(path_and_query).parse::<Uri>() else {
        return error(HttpError::UpstreamUnavailable);
    };
    let client = ClientRequest {
        peer,
        headers: parts.headers,
        path_and_query: path_and_query.to_owned(),
        subprotocol: None,
    };
    let mut headers = HeaderMap::new();
    proxy
        .headers
        .forward(&client, &crate::ids::connection_id(), "http", &mut headers);
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
            let h = response.headers_mut();
            let listed: Vec<http::HeaderName> = h
                .get_all(http::header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|n| http::HeaderName::from_bytes(n.trim().as_bytes()).ok())
                .collect();
            for name in listed {
                h.remove(name);
            }
            for name in HOP_BY_HOP {
                h.remove(*name);
            }
            response.map(|b| b.boxed())
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "upstream http request failed");
            error(HttpError::UpstreamUnavailable)
        }
        Err(_) => error(HttpError::UpstreamTimeout),
    }
}
