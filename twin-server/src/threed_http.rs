//! 3D Tiles over HTTP: `GET /3dtiles/{name}/tileset.json` and `GET /3dtiles/{name}/{*path}`
//! (content `content/<key>.glb`), where `name` is the model's name (`shenyang` for the built-in
//! city).
//!
//! Files are read from the `3dtiles/` of the request's build snapshot (its canonical, immutable
//! directory); a request for `P` is answered from
//! `P.gz` when that exists (the build stores content gzip-compressed): sent as is with
//! `Content-Encoding: gzip` when the client accepts gzip, inflated otherwise. Every answer has a
//! strong `ETag` (a hash of the bytes sent, so the gzip and identity representations differ),
//! `If-None-Match` gives 304, `Cache-Control` (`no-cache` for tileset.json — always revalidated
//! so a rebuilt model shows — and `public, max-age=300` for content), `Vary: Accept-Encoding`,
//! CORS (`Access-Control-Allow-Origin: *`; `OPTIONS` preflight answered with 204), and the
//! content type (`application/json`, `model/gltf-binary`). Unknown names and paths, and any
//! path with an empty, `.` or `..` segment or a character outside `[A-Za-z0-9._-]`, get 404, and so
//! does a path that resolves (through a symlink) outside the tileset directory.

use axum::body::Body;
use crate::state::Build;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Extension;
use std::hash::Hasher;
use std::path::PathBuf;
use std::sync::Arc;

fn cors(h: &mut HeaderMap) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("ETag, Content-Encoding, Content-Length"));
}

fn plain(status: StatusCode, msg: String) -> Response {
    let mut r = Response::new(Body::from(serde_json::json!({ "error": msg }).to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    cors(r.headers_mut());
    r
}

/// `Some(relative path)` when every segment is a plain name.
pub fn safe_path(p: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for seg in p.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return None;
        }
        if !seg.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-') {
            return None;
        }
        out.push(seg);
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn etag(bytes: &[u8], suffix: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    format!("\"{:016x}-{}{}\"", h.finish(), bytes.len(), suffix)
}

fn accepts_gzip(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|item| {
            let mut parts = item.trim().split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q0 = parts.any(|p| matches!(p.trim().replace(' ', "").as_str(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q0
        })
    })
}

/// The route handler; `b` is the request's build snapshot (`state::snapshot_mw`), so a tileset
/// and its content always come from one build, even across a hot swap.
pub async fn handle(Extension(b): Extension<Arc<Build>>, method: Method, Path((name, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    if method == Method::OPTIONS {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        cors(h);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, OPTIONS"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned().unwrap_or(HeaderValue::from_static("*")),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        return r;
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, format!("{method} not allowed"));
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
        return r;
    }
    if name != scenes::build::tileset_name(&b.loaded.model.info.name) {
        return plain(StatusCode::NOT_FOUND, format!("no 3D tileset named '{name}'"));
    }
    let Some(rel) = safe_path(&path) else {
        return plain(StatusCode::NOT_FOUND, format!("no such 3D Tiles resource '{path}'"));
    };
    let full = b.dir.join(scenes::threed::DIR).join(&rel);
    let gz_path = {
        let mut p = full.clone().into_os_string();
        p.push(".gz");
        PathBuf::from(p)
    };
    // A symlink inside the tileset directory must not lead out of it: the file actually read
    // (after resolving every link) must lie under the directory's canonical path.
    let root = tokio::fs::canonicalize(b.dir.join(scenes::threed::DIR)).await.unwrap_or_else(|_| b.dir.join(scenes::threed::DIR));
    for p in [&gz_path, &full] {
        if let Ok(c) = tokio::fs::canonicalize(p).await {
            if !c.starts_with(&root) {
                tracing::warn!(path = %path, "3D Tiles: refused a path resolving outside the tileset directory");
                return plain(StatusCode::NOT_FOUND, format!("no such 3D Tiles resource '{path}'"));
            }
        }
    }
    let (bytes, gzipped) = match tokio::fs::read(&gz_path).await {
        Ok(b) => (b, true),
        Err(_) => match tokio::fs::read(&full).await {
            Ok(b) => (b, false),
            Err(_) => return plain(StatusCode::NOT_FOUND, format!("no such 3D Tiles resource '{path}'")),
        },
    };
    let (body, encoded) = if gzipped && !accepts_gzip(&headers) {
        use std::io::Read;
        let mut out = Vec::new();
        if let Err(e) = flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out) {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, format!("corrupt stored file '{path}': {e}"));
        }
        (out, false)
    } else {
        (bytes, gzipped)
    };
    let tag = etag(&body, if encoded { "-gz" } else { "" });
    let ctype = match rel.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("glb") => "model/gltf-binary",
        Some("gltf") => "model/gltf+json",
        Some("bin") => "application/octet-stream",
        _ => "application/octet-stream",
    };
    let cache = if rel.file_name().and_then(|f| f.to_str()) == Some(scenes::threed::TILESET_FILE) {
        "no-cache"
    } else {
        "public, max-age=300"
    };
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut r = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let len = body.len();
        let mut r = Response::new(if method == Method::HEAD { Body::empty() } else { Body::from(body) });
        r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        if encoded {
            r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(&tag).expect("ascii etag"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    cors(h);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_served() {
        assert_eq!(safe_path("tileset.json"), Some(PathBuf::from("tileset.json")));
        assert_eq!(safe_path("content/r0123.glb"), Some(PathBuf::from("content/r0123.glb")));
        for bad in ["", "..", "../manifest.json", "content/../../x", "./tileset.json", "content//a.glb", "/etc/passwd", "a\\b", "content/%2e%2e", "a b"] {
            assert_eq!(safe_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn accept_encoding_parsing() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br, gzip;q=0.8"));
        assert!(accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0, identity"));
        assert!(!accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("deflate"));
        assert!(!accepts_gzip(&h));
    }
}
