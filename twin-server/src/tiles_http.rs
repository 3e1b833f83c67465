//! Vector tile routes: the tileset list, TileJSON 3.0.0 and the tiles themselves.
//!
//! | route | what |
//! |---|---|
//! | `GET /tiles` | `{"tilesets": [{name, tilejson, bounds, minzoom, maxzoom, ...}]}` |
//! | `GET /tiles/{name}.json` | TileJSON 3.0.0 with absolute tile URLs and `vector_layers` |
//! | `GET /tiles/{name}/{z}/{x}/{y}.mvt` (or `.pbf`) | the tile |
//!
//! Tiles are served from the memory-mapped archive without copying: the body is a `Bytes` slice
//! of the mapping, gzip as stored when the client accepts gzip (`Content-Encoding: gzip`), else
//! decompressed. Strong `ETag` = xxh3 of the stored bytes (suffix `-identity` for the
//! decompressed representation); `If-None-Match` → 304. `Cache-Control: public, max-age=60,
//! must-revalidate`: a hot swap can change any tile, so caches may reuse a tile for a minute and
//! must then revalidate — cheap, since an unchanged tile keeps its content-hash ETag across builds
//! and answers 304. A valid address without a tile → 204; a bad z/x/y or extension → 400 naming the
//! part; an unknown tileset → 404.

use crate::state::{AppState, Build, Tileset};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::io::Read;
use std::sync::Arc;
use tiles::pmtiles::Compression;

pub const TILE_CACHE_CONTROL: &str = "public, max-age=60, must-revalidate";
pub const MAX_Z: u32 = 30;

fn err(status: StatusCode, msg: String, part: Option<&str>) -> Response {
    let mut v = json!({ "error": msg });
    if let Some(p) = part {
        v["part"] = json!(p);
    }
    (status, Json(v)).into_response()
}

/// `scheme://host` for absolute URLs: `--public-url`, else the request's Host header.
pub fn base_url(s: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &s.public_url {
        return u.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c)))
        .unwrap_or("127.0.0.1");
    let proto = match headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
        Some("https") => "https",
        _ => "http",
    };
    format!("{proto}://{host}")
}

fn unknown_tileset(b: &Build, name: &str) -> Response {
    let names: Vec<&str> = b.tilesets.keys().map(String::as_str).collect();
    err(StatusCode::NOT_FOUND, format!("unknown tileset '{name}' (available: {})", names.join(", ")), None)
}

fn meta_str<'a>(t: &'a Tileset, k: &str) -> Option<&'a str> {
    t.reader.metadata().get(k).and_then(|v| v.as_str())
}

/// TileJSON 3.0.0 of a tileset.
pub fn tilejson(b: &Build, t: &Tileset, base: &str) -> Value {
    let h = t.reader.header();
    let m = t.reader.metadata();
    let from_model = b.dir.join("tiles").join(format!("{}.pmtiles", t.name)) == t.path;
    // TileJSON wants a semver version: the build id rides as semver build metadata.
    let version = if from_model {
        format!("1.0.0+{}", b.id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-"))
    } else {
        meta_str(t, "version").unwrap_or("1.0.0").to_string()
    };
    let center_zoom = if h.center_zoom >= h.min_zoom && h.center_zoom <= h.max_zoom {
        h.center_zoom
    } else {
        h.min_zoom.max(h.max_zoom.min(14))
    };
    let mut v = json!({
        "tilejson": "3.0.0",
        "tiles": [format!("{base}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt", t.name)],
        "name": meta_str(t, "name").unwrap_or(&t.name),
        "description": meta_str(t, "description").unwrap_or(""),
        "attribution": meta_str(t, "attribution").unwrap_or(""),
        "version": version,
        "scheme": "xyz",
        "minzoom": h.min_zoom,
        "maxzoom": h.max_zoom,
        "bounds": h.bounds,
        "center": [h.center[0], h.center[1], center_zoom],
        "vector_layers": m.get("vector_layers").cloned().unwrap_or_else(|| json!([])),
    });
    if from_model {
        v["build_id"] = json!(b.id);
    }
    v
}

pub async fn list(State(s): State<AppState>, Extension(b): Extension<Arc<Build>>, headers: HeaderMap) -> Json<Value> {
    let base = base_url(&s, &headers);
    let sets: Vec<Value> = b
        .tilesets
        .values()
        .map(|t| {
            let h = t.reader.header();
            json!({
                "name": t.name,
                "tilejson": format!("{base}/tiles/{}.json", t.name),
                "description": meta_str(t, "description"),
                "bounds": h.bounds,
                "minzoom": h.min_zoom,
                "maxzoom": h.max_zoom,
                "tiles": t.reader.tile_count(),
            })
        })
        .collect();
    Json(json!({ "tilesets": sets }))
}

/// `GET /tiles/{name}.json`.
pub async fn tilejson_route(
    State(s): State<AppState>,
    Extension(b): Extension<Arc<Build>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(name) = file.strip_suffix(".json") else {
        return err(StatusCode::NOT_FOUND, format!("no such resource '/tiles/{file}' (TileJSON is /tiles/NAME.json)"), None);
    };
    let Some(t) = b.tilesets.get(name) else { return unknown_tileset(&b, name) };
    let mut r = Json(tilejson(&b, t, &base_url(&s, &headers))).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// Whether an Accept-Encoding header admits gzip (token `gzip`/`x-gzip`/`*` without q=0).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let Some(v) = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()) else { return false };
    v.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q_zero = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")).and_then(|q| q.trim().parse::<f32>().ok()) == Some(0.0)
        });
        matches!(coding.as_str(), "gzip" | "x-gzip" | "*") && !q_zero
    })
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').map(|t| t.trim()).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
    })
}

fn parse_coord(s: &str, what: &'static str, limit: u64, zs: &str) -> Result<u32, Response> {
    let bad = |why: String| Err(err(StatusCode::BAD_REQUEST, why, Some(what)));
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return bad(format!("{what} must be a non-negative integer, got '{s}'"));
    }
    match s.parse::<u64>() {
        Ok(v) if v < limit => Ok(v as u32),
        _ if what == "z" => bad(format!("z must be between 0 and {MAX_Z}, got {s}")),
        _ => bad(format!("{what} = {s} is out of range for z = {zs} (0 to {})", limit - 1)),
    }
}

/// `GET /tiles/{name}/{z}/{x}/{y}.mvt`.
pub async fn tile(Extension(b): Extension<Arc<Build>>, Path((name, zs, xs, file)): Path<(String, String, String, String)>, headers: HeaderMap) -> Response {
    let Some(t) = b.tilesets.get(&name) else { return unknown_tileset(&b, &name) };
    let (ys, ext) = file.rsplit_once('.').unwrap_or((&file, ""));
    if ext != "mvt" && ext != "pbf" {
        return err(StatusCode::BAD_REQUEST, format!("tile extension must be .mvt or .pbf, got '{file}'"), Some("extension"));
    }
    let z = match parse_coord(&zs, "z", MAX_Z as u64 + 1, &zs) {
        Ok(z) => z as u8,
        Err(r) => return r,
    };
    let n = 1u64 << z;
    let x = match parse_coord(&xs, "x", n, &zs) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let y = match parse_coord(ys, "y", n, &zs) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let h = t.reader.header();
    if z < h.min_zoom || z > h.max_zoom {
        return no_content();
    }
    let data = match t.reader.get(z, x, y) {
        Ok(Some(d)) if !d.is_empty() => d,
        Ok(_) => return no_content(),
        Err(e) => return err(StatusCode::BAD_REQUEST, format!("tile {z}/{x}/{y}: {e}"), None),
    };
    let hash = xxhash_rust::xxh3::xxh3_64(&data);
    let stored = h.tile_compression;
    let (body, encoding, etag) = if stored == Compression::Gzip && !accepts_gzip(&headers) {
        let mut out = Vec::with_capacity(data.len() * 4);
        if let Err(e) = flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut out) {
            return err(StatusCode::INTERNAL_SERVER_ERROR, format!("tile {name}/{z}/{x}/{y}: stored gzip is corrupt: {e}"), None);
        }
        (bytes::Bytes::from(out), None, format!("\"{hash:016x}-identity\""))
    } else {
        (data, stored.content_encoding(), format!("\"{hash:016x}\""))
    };
    let not_modified = etag_matches(&headers, &etag);
    let mut r = if not_modified { StatusCode::NOT_MODIFIED.into_response() } else { body.into_response() };
    let hm = r.headers_mut();
    if !not_modified {
        hm.insert(header::CONTENT_TYPE, HeaderValue::from_static(h.tile_type.content_type()));
        if let Some(enc) = encoding {
            hm.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
        }
    }
    hm.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
    hm.insert(header::CACHE_CONTROL, HeaderValue::from_static(TILE_CACHE_CONTROL));
    hm.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    r
}

fn no_content() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(TILE_CACHE_CONTROL));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_parsing() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&m)
        };
        assert!(h("gzip, deflate, br"));
        assert!(h("br;q=1.0, gzip;q=0.8"));
        assert!(h("*"));
        assert!(!h("gzip;q=0, br"));
        assert!(!h("identity"));
        assert!(!h("deflate, br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
