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
/// so browsers revalidate and get 304 while the file is unchanged). A browser that takes
/// gzip gets the copy `build_site` compressed beside the file (the wasm: 3.6 MB, 0.9 MB
/// gzipped), so nothing is compressed while serving.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(plain) = Pkg::get(&file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // The type of the file asked for, not of its compressed copy.
    let kind = HeaderValue::from_str(plain.metadata.mimetype()).ok();
    let gzipped = accepts_gzip(&headers)
        .then(|| Pkg::get(&format!("{file}.gz")))
        .flatten();
    let compressed = gzipped.is_some();
    let found = gzipped.unwrap_or(plain);
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
    if let Some(v) = kind {
        h.insert(header::CONTENT_TYPE, v);
    }
    if compressed {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Whether `Accept-Encoding` takes gzip (named, or `*`, without `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .is_some_and(|q| q.chars().all(|c| c == '0' || c == '.'))
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn gzip_is_taken_when_named_or_starred_without_q_zero() {
        assert!(accepts_gzip(&accept("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&accept("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(&accept("*")));
        assert!(!accepts_gzip(&accept("br, deflate")));
        assert!(!accepts_gzip(&accept("gzip;q=0")));
        assert!(!accepts_gzip(&accept("gzip; q=0.000")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
