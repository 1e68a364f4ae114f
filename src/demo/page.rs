//! The demo's chat page: static files embedded at build time (the page
//! from `clients/demo/`, the client library from the committed
//! `clients/js/dist/`), so nothing is built when the demo runs.

use bytes::Bytes;
use http::Response;
use http_body_util::Full;

use super::http::file;

/// One file of the client library's `dist/`, served under `/demo/lib/`.
macro_rules! lib {
    ($name:literal) => {
        (
            concat!("lib/", $name),
            JS,
            include_bytes!(concat!("../../clients/js/dist/", $name)),
        )
    };
}

/// Where the page is, on the proxy's address (a public prefix of the demo's `[http]`).
pub const PAGE_PATH: &str = "/demo/";

/// The page's files: path under `/demo/`, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("", HTML, include_bytes!("../../clients/demo/index.html")),
    (
        "index.html",
        HTML,
        include_bytes!("../../clients/demo/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../clients/demo/style.css"),
    ),
    (
        "app.js",
        JS,
        include_bytes!("../../clients/demo/dist/app.js"),
    ),
    (
        "view.js",
        JS,
        include_bytes!("../../clients/demo/dist/view.js"),
    ),
    lib!("backoff.js"),
    lib!("client.js"),
    lib!("errors.js"),
    lib!("events.js"),
    lib!("fetch.js"),
    lib!("index.js"),
    lib!("protocol.js"),
    lib!("queue.js"),
    lib!("state.js"),
    lib!("tokens.js"),
];

/// The content type of the page.
const HTML: &str = "text/html; charset=utf-8";
/// The content type of its modules.
const JS: &str = "text/javascript; charset=utf-8";

/// The embedded file at `path` (a request's path), if there is one.
pub fn serve(path: &str) -> Option<Response<Full<Bytes>>> {
    let rest = path.strip_prefix(PAGE_PATH)?;
    FILES
        .iter()
        .find(|(name, _, _)| *name == rest)
        .map(|(_, content_type, body)| file(content_type, body))
}

/// The library files embedded, by name (for the test that none is missing).
pub fn library_files() -> impl Iterator<Item = &'static str> {
    FILES
        .iter()
        .filter_map(|(name, _, _)| name.strip_prefix("lib/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_of_the_library_is_embedded() {
        let dist = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/dist");
        let mut on_disk: Vec<String> = std::fs::read_dir(dist)
            .expect("clients/js/dist")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".js"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = library_files().map(str::to_owned).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn every_module_of_the_page_is_embedded() {
        let dist = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/demo/dist");
        for entry in std::fs::read_dir(dist).expect("clients/demo/dist") {
            let name = entry.expect("entry").file_name();
            let name = name.to_str().expect("utf-8 name");
            let path = format!("{PAGE_PATH}{name}");
            assert!(serve(&path).is_some(), "{name} is not served");
        }
    }

    #[test]
    fn only_known_paths_are_served() {
        assert!(serve("/demo/").is_some());
        assert!(serve("/demo/lib/index.js").is_some());
        assert!(serve("/demo/../Cargo.toml").is_none());
        assert!(serve("/demo/lib/").is_none());
        assert!(serve("/other/app.js").is_none());
    }
}
