//! The browser's half of the site, built into the binary: the wasm bundle, its JavaScript
//! and the stylesheet (`target/site/pkg/`, which `scripts/lib.sh build_site` writes), so
//! `tally serve` needs no directory beside it. `TALLY_SITE_ROOT` serves a directory
//! instead (development: a rebuilt bundle without rebuilding the server).

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The files of `pkg/` as they were when the server was compiled (`build.rs` makes Cargo
/// compile it again when they change). Empty if the bundle was never built: the pages
/// still render on the server and work without JavaScript.
#[derive(rust_embed::Embed)]
#[folder = "../target/site/pkg/"]
#[allow_missing = true]
struct Pkg;

/// How many files the binary carries (0 when it was built before the bundle).
pub fn embedded_files() -> usize {
    Pkg::iter().count()
}

/// `GET /pkg/{file}` from the binary, with its type and an ETag (the names carry no hash,
/// so browsers revalidate and get 304 while the file is unchanged).
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(found) = Pkg::get(&file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&found.metadata.sha256_hash()[..12]));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        found.data.into_owned().into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(found.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
