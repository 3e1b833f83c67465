//! MapLibre styles at `/styles/{name}.json`: `command` (dark, fill-extrusion buildings by use, for
//! the big screen) and `planning` (light, flat). Templates are `assets/styles/*.json` (compiled
//! in); placeholders are filled per request: `{{tilejson}}` → the absolute TileJSON URL of the
//! model's tileset (or `?tileset=NAME`), `{{glyphs}}` → `…/fonts/{fontstack}/{range}.pbf`,
//! `{{label}}` → the label expression: Chinese names by default
//! (`["coalesce", ["get","name"], ["get","name_en"]]`), `?lang=en` → English with the Chinese name
//! as fallback.

use crate::state::{AppState, Build};
use crate::tiles_http::base_url;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub const STYLES: [(&str, &str); 2] =
    [("command", include_str!("../../assets/styles/command.json")), ("planning", include_str!("../../assets/styles/planning.json"))];

fn fill(v: &mut Value, vars: &[(&str, &str)], label: &Value) {
    match v {
        Value::String(s) if s == "{{label}}" => *v = label.clone(),
        Value::String(s) if s.contains("{{") => {
            for (k, val) in vars {
                *s = s.replace(&format!("{{{{{k}}}}}"), val);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| fill(x, vars, label)),
        Value::Object(o) => o.values_mut().for_each(|x| fill(x, vars, label)),
        _ => {}
    }
}

/// The style `name` with absolute URLs under `base`, for tileset `tileset` and language `lang`,
/// opening at `center` (`[lon, lat, zoom]`, the tileset's centre) when given.
pub fn render(name: &str, base: &str, tileset: &str, lang: &str, center: Option<[f64; 3]>) -> Option<Value> {
    let tpl = STYLES.iter().find(|(n, _)| *n == name)?.1;
    let mut v: Value = serde_json::from_str(tpl).expect("bundled style templates are valid JSON");
    let label = if lang == "en" {
        json!(["coalesce", ["get", "name_en"], ["get", "name"]])
    } else {
        json!(["coalesce", ["get", "name"], ["get", "name_en"]])
    };
    let tilejson = format!("{base}/tiles/{tileset}.json");
    let glyphs = format!("{base}/fonts/{{fontstack}}/{{range}}.pbf");
    fill(&mut v, &[("tilejson", &tilejson), ("glyphs", &glyphs), ("lang", lang)], &label);
    if let Some([lon, lat, z]) = center {
        v["center"] = json!([lon, lat]);
        v["zoom"] = json!(z);
    }
    Some(v)
}

/// The tileset a style uses by default: the one named like the model, else the first.
fn default_tileset(b: &Build) -> Option<String> {
    let name = scenes::build::tileset_name(&b.loaded.model.info.name);
    if b.tilesets.contains_key(&name) {
        return Some(name);
    }
    b.tilesets.keys().next().cloned()
}

pub async fn style(
    State(s): State<AppState>,
    Extension(b): Extension<Arc<Build>>,
    Path(file): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let e = |st: StatusCode, m: String| (st, Json(json!({ "error": m }))).into_response();
    let Some(name) = file.strip_suffix(".json") else {
        return e(StatusCode::NOT_FOUND, format!("no style '{file}' (styles are /styles/NAME.json)"));
    };
    let lang = q.get("lang").map(String::as_str).unwrap_or("zh");
    if lang != "zh" && lang != "en" {
        return e(StatusCode::BAD_REQUEST, format!("lang must be zh or en, got '{lang}'"));
    }
    let tileset = match q.get("tileset") {
        Some(t) if b.tilesets.contains_key(t) => t.clone(),
        Some(t) => return e(StatusCode::NOT_FOUND, format!("unknown tileset '{t}'")),
        None => match default_tileset(&b) {
            Some(t) => t,
            None => return e(StatusCode::NOT_FOUND, "this model has no tilesets (build it with tiles)".into()),
        },
    };
    // Open where the data is: the model's built-in centre for the built-in city (市府广场),
    // else the archive's centre.
    let center = if b.loaded.model.info.generated {
        None
    } else {
        b.tilesets.get(&tileset).map(|t| {
            let h = t.reader.header();
            [h.center[0], h.center[1], h.center_zoom.clamp(h.min_zoom, h.max_zoom) as f64]
        })
    };
    match render(name, &base_url(&s, &headers), &tileset, lang, center) {
        Some(v) => {
            let mut r = Json(v).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => e(
            StatusCode::NOT_FOUND,
            format!("no style '{name}' (available: {})", STYLES.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")),
        ),
    }
}

/// `GET /fonts/{fontstack}/{range}.pbf`.
pub async fn glyph_range(State(s): State<AppState>, Path((stack, file)): Path<(String, String)>) -> Response {
    let e = |st: StatusCode, m: String| (st, Json(json!({ "error": m }))).into_response();
    let fonts = match s.fonts.resolve(&stack) {
        Ok(f) => f,
        Err(n) => return e(StatusCode::NOT_FOUND, format!("unknown font '{n}' (available: {})", s.fonts.names().join(", "))),
    };
    let start = match crate::glyphs::parse_range(&file) {
        Ok(v) => v,
        Err(m) => return e(StatusCode::BAD_REQUEST, m),
    };
    let body = match s.fonts.cached(&fonts, start) {
        Some(b) => b,
        None => {
            let s2 = s.clone();
            match tokio::task::spawn_blocking(move || s2.fonts.range(&fonts, start)).await {
                Ok(b) => b,
                Err(err) => return e(StatusCode::INTERNAL_SERVER_ERROR, format!("glyph rendering failed: {err}")),
            }
        }
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    r
}
