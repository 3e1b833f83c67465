//! HTTP service over a built model directory (axum). Model queries so far:
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | liveness |
//! | `GET /api/openapi.json` | the OpenAPI 3.1 document of the whole HTTP API (`openapi/openapi.json`) |
//! | `GET /api/model` | the model's manifest.json |
//! | `GET /api/districts` | districts as a GeoJSON FeatureCollection |
//! | `GET /api/streets[?district=]` | streets (街道/乡镇) without geometry: id, code, names, district, area, bbox |
//! | `GET /api/buildings?bbox=w,s,e,n[&limit=N]` | buildings intersecting a bbox (GeoJSON; `limit` ≤ 10,000, default 1,000; `truncated` tells) |
//! | `GET /api/buildings/{id}` | one building (GeoJSON Feature) |
//! | `GET /api/pick?lon=&lat=` | the building containing the point, 404 if none |
//! | `GET /api/nearest?lon=&lat=[&k=5][&layer=buildings\|pois][&kind=hospital]` | k nearest, with metres |
//! | `GET /3dtiles/{name}/tileset.json`, `/3dtiles/{name}/{*path}` | the 3D Tiles tileset (`threed_http.rs`) |
//! | `/api/events…`, `/api/units…`, `/api/stream`, `/metrics` | live operations (`live/`, docs/LIVE.md) |
//!
//! Errors are JSON `{"error": "..."}` with 400 for bad parameters and 404 for unknown ids.

use crate::cli::ServeOptions;
use anyhow::{Context, Result};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use scenes::model::{Building, CityModel, PoiKind};
use crate::state::{AppState, Build, Shared, Tileset};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub const MAX_LIMIT: usize = 10_000;


struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn geometry_json<G: Into<geo_types::Geometry<f64>>>(g: G) -> Value {
    let g: geo_types::Geometry<f64> = g.into();
    fn ring(ls: &geo_types::LineString<f64>) -> Value {
        Value::Array(ls.0.iter().map(|c| json!([c.x, c.y])).collect())
    }
    fn poly(p: &geo_types::Polygon<f64>) -> Value {
        let mut rings = vec![ring(p.exterior())];
        rings.extend(p.interiors().iter().map(ring));
        Value::Array(rings)
    }
    match &g {
        geo_types::Geometry::Point(p) => json!({"type": "Point", "coordinates": [p.x(), p.y()]}),
        geo_types::Geometry::LineString(l) => json!({"type": "LineString", "coordinates": ring(l)}),
        geo_types::Geometry::Polygon(p) => json!({"type": "Polygon", "coordinates": poly(p)}),
        geo_types::Geometry::MultiPolygon(mp) => {
            json!({"type": "MultiPolygon", "coordinates": mp.0.iter().map(poly).collect::<Vec<_>>()})
        }
        _ => Value::Null,
    }
}

fn building_feature(m: &CityModel, b: &Building) -> Value {
    json!({
        "type": "Feature",
        "id": b.id,
        "geometry": geometry_json(b.footprint.clone()),
        "properties": {
            "id": b.id,
            "height": b.height,
            "min_height": b.min_height,
            "height_source": b.height_source,
            "levels": b.levels,
            "use": b.use_.as_str(),
            "name_zh": b.names.zh,
            "name_en": b.names.en,
            "name": b.names.display(),
            "district": b.district.and_then(|d| m.districts.get(d as usize)).map(|d| d.names.zh.clone().or(d.names.en.clone())),
            "level": b.level,
            "lod": b.solid.as_ref().map(|s| s.lod),
            "source": m.sources.get(b.source.source as usize).map(|s| s.path.clone()),
            "source_id": b.source.id,
        }
    })
}

fn parse_f64(q: &HashMap<String, String>, k: &str) -> Result<f64, ApiError> {
    let v = q.get(k).ok_or_else(|| bad(format!("missing query parameter '{k}'")))?;
    let x: f64 = v.parse().map_err(|_| bad(format!("query parameter '{k}' is not a number: '{v}'")))?;
    if !x.is_finite() {
        return Err(bad(format!("query parameter '{k}' must be finite")));
    }
    Ok(x)
}

fn parse_lonlat(q: &HashMap<String, String>) -> Result<(f64, f64), ApiError> {
    let (lon, lat) = (parse_f64(q, "lon")?, parse_f64(q, "lat")?);
    if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
        return Err(bad(format!("lon/lat out of range: {lon}, {lat}")));
    }
    Ok((lon, lat))
}

async fn healthz() -> &'static str {
    "ok"
}

/// The OpenAPI 3.1 document of the whole HTTP API (checked in: twin-server/openapi/openapi.json;
/// tests/openapi.rs keeps it equal to the routers' routes and validates it).
pub const OPENAPI: &str = include_str!("../openapi/openapi.json");

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn model_manifest(Extension(s): Extension<Arc<Build>>) -> Json<Value> {
    Json(s.loaded.manifest.clone())
}

async fn districts(Extension(s): Extension<Arc<Build>>) -> Json<Value> {
    let m = &s.loaded.model;
    let feats: Vec<Value> = m
        .districts
        .iter()
        .map(|d| {
            json!({"type": "Feature", "id": d.id, "geometry": geometry_json(d.geometry.clone()),
                   "properties": {"id": d.id, "adcode": d.adcode, "name_zh": d.names.zh, "name_en": d.names.en, "area_km2": d.area_km2}})
        })
        .collect();
    Json(json!({"type": "FeatureCollection", "features": feats}))
}

/// `GET /api/streets?district=INDEX|ADCODE|NAME`: the streets (街道/乡镇) of the model (or of one
/// district), without geometry: `{count, streets: [{id, code, name_zh, name_en, district,
/// district_name, area_km2, bbox}]}`.
async fn streets(Extension(s): Extension<Arc<Build>>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, ApiError> {
    use geo::BoundingRect;
    if let Some(k) = q.keys().find(|k| k.as_str() != "district") {
        return Err(bad(format!("GET /api/streets: unknown parameter '{k}' (district)")));
    }
    let m = &s.loaded.model;
    let district = match q.get("district") {
        None => None,
        Some(v) => {
            let by_index = v.parse::<usize>().ok().filter(|i| *i < m.districts.len());
            let by_code = v.parse::<u32>().ok().and_then(|a| m.districts.iter().position(|d| d.adcode == a && a != 0));
            let by_name = m.districts.iter().position(|d| d.names.zh.as_deref() == Some(v) || d.names.en.as_deref() == Some(v));
            Some(by_index.or(by_code).or(by_name).ok_or_else(|| {
                bad(format!("GET /api/streets: unknown district '{v}' (an index 0–{}, adcode or name of /api/districts)", m.districts.len().saturating_sub(1)))
            })? as u16)
        }
    };
    let list: Vec<Value> = m
        .streets
        .iter()
        .filter(|st| district.is_none_or(|d| st.district == Some(d)))
        .map(|st| {
            let bbox = st.geometry.bounding_rect().map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]);
            let dname = st.district.and_then(|d| m.districts.get(d as usize)).and_then(|d| d.names.zh.clone().or(d.names.en.clone()));
            json!({"id": st.id, "code": st.code, "name_zh": st.names.zh, "name_en": st.names.en, "district": st.district,
                   "district_name": dname, "area_km2": st.area_km2, "bbox": bbox})
        })
        .collect();
    Ok(Json(json!({"count": list.len(), "streets": list})))
}

#[derive(Deserialize)]
struct BboxQuery {
    bbox: Option<String>,
    limit: Option<String>,
}

async fn buildings(Extension(s): Extension<Arc<Build>>, Query(q): Query<BboxQuery>) -> Result<Json<Value>, ApiError> {
    let bbox_s = q.bbox.ok_or_else(|| bad("missing query parameter 'bbox' (west,south,east,north)"))?;
    let parts: Vec<f64> = bbox_s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(format!("bbox must be four numbers west,south,east,north: '{bbox_s}'")))?;
    if parts.len() != 4 || parts.iter().any(|v| !v.is_finite()) || parts[0] > parts[2] || parts[1] > parts[3] {
        return Err(bad(format!("bbox must be four finite numbers west,south,east,north with west ≤ east and south ≤ north: '{bbox_s}'")));
    }
    let limit = match q.limit {
        None => 1000,
        Some(l) => l.parse::<usize>().map_err(|_| bad(format!("limit must be a positive integer: '{l}'")))?,
    };
    if limit == 0 || limit > MAX_LIMIT {
        return Err(bad(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let m = &s.loaded.model;
    let ids = s.loaded.index.buildings_in_bbox(m, [parts[0], parts[1], parts[2], parts[3]]);
    let total = ids.len();
    let feats: Vec<Value> = ids.iter().take(limit).map(|&i| building_feature(m, &m.buildings[i as usize])).collect();
    Ok(Json(json!({"type": "FeatureCollection", "total": total, "truncated": total > limit, "features": feats})))
}

async fn building_by_id(Extension(s): Extension<Arc<Build>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let m = &s.loaded.model;
    let i: usize = id.parse().map_err(|_| bad(format!("building id must be a non-negative integer: '{id}'")))?;
    let b = m.buildings.get(i).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no building {i}")))?;
    Ok(Json(building_feature(m, b)))
}

async fn pick(Extension(s): Extension<Arc<Build>>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, ApiError> {
    let (lon, lat) = parse_lonlat(&q)?;
    let m = &s.loaded.model;
    match s.loaded.index.pick_building(m, lon, lat) {
        Some(id) => Ok(Json(building_feature(m, &m.buildings[id as usize]))),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no building at {lon}, {lat}"))),
    }
}

fn poi_kind(s: &str) -> Option<PoiKind> {
    [
        PoiKind::Hospital,
        PoiKind::FireStation,
        PoiKind::PoliceStation,
        PoiKind::School,
        PoiKind::Parking,
        PoiKind::GasStation,
        PoiKind::Government,
        PoiKind::Park,
        PoiKind::Station,
        PoiKind::Landmark,
        PoiKind::Other,
    ]
    .into_iter()
    .find(|k| k.as_str() == s)
}

async fn nearest(Extension(s): Extension<Arc<Build>>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, ApiError> {
    let (lon, lat) = parse_lonlat(&q)?;
    let k = match q.get("k") {
        None => 5,
        Some(v) => v.parse::<usize>().map_err(|_| bad(format!("k must be a positive integer: '{v}'")))?,
    };
    if k == 0 || k > 1000 {
        return Err(bad("k must be between 1 and 1000"));
    }
    let m = &s.loaded.model;
    let layer = q.get("layer").map(String::as_str).unwrap_or("buildings");
    let results: Vec<Value> = match layer {
        "buildings" => s
            .loaded
            .index
            .nearest_buildings(m, lon, lat, k)
            .into_iter()
            .map(|h| json!({"distance_m": h.distance_m, "feature": building_feature(m, &m.buildings[h.id as usize])}))
            .collect(),
        "pois" => {
            let kind = match q.get("kind") {
                None => None,
                Some(kd) => Some(poi_kind(kd).ok_or_else(|| bad(format!("unknown POI kind '{kd}'")))?),
            };
            s.loaded
                .index
                .nearest_pois(m, lon, lat, k, kind)
                .into_iter()
                .map(|h| {
                    let p = &m.pois[h.id as usize];
                    json!({"distance_m": h.distance_m, "feature": {"type": "Feature", "id": p.id,
                        "geometry": geometry_json(p.location),
                        "properties": {"id": p.id, "kind": p.kind.as_str(), "name_zh": p.names.zh, "name_en": p.names.en, "capacity": p.capacity}}})
                })
                .collect()
        }
        other => return Err(bad(format!("unknown layer '{other}' (buildings or pois)"))),
    };
    Ok(Json(json!({"results": results})))
}

/// The whole service. With `auth`, [`crate::auth::guard`] checks every route against
/// `auth::POLICY` (inside the request counter, so refusals are counted too).
pub fn router(state: AppState, live: Option<crate::live::LiveState>, auth: Option<crate::auth::AuthState>) -> Router {
    let live_routes = live.map(crate::live::router).unwrap_or_default();
    let auth_routes = auth.clone().map(crate::auth::routes).unwrap_or_default();
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/api/openapi.json", get(openapi))
        .route("/api/model", get(model_manifest))
        .route("/api/districts", get(districts))
        .route("/api/streets", get(streets))
        .route("/api/buildings", get(buildings))
        .route("/api/buildings/{id}", get(building_by_id))
        .route("/api/pick", get(pick))
        .route("/api/nearest", get(nearest))
        .route("/tiles", get(crate::tiles_http::list))
        .route("/tiles/{file}", get(crate::tiles_http::tilejson_route))
        .route("/tiles/{name}/{z}/{x}/{y}", get(crate::tiles_http::tile))
        .route("/styles/{file}", get(crate::styles::style))
        .route("/fonts/{stack}/{range}", get(crate::styles::glyph_range))
        .route("/3dtiles/{name}/{*path}", axum::routing::any(crate::threed_http::handle))
        .with_state(state.clone())
        .merge(live_routes)
        .merge(auth_routes);
    let app = match auth {
        Some(a) => app.layer(axum::middleware::from_fn_with_state(a, crate::auth::guard)),
        None => app,
    };
    app.layer(axum::middleware::from_fn(crate::live::metrics::count_requests))
        .layer(axum::middleware::from_fn_with_state(state, crate::state::snapshot_mw))
}

pub async fn serve(opts: ServeOptions) -> Result<()> {
    let t0 = std::time::Instant::now();
    let o = opts.clone();
    let (build, extra, fonts) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut extra = Vec::new();
        for (name, path) in &o.tilesets {
            extra.push(Arc::new(Tileset::open(name, path)?));
        }
        let build = crate::state::load_build(&o.model, &extra)?;
        let fonts = crate::glyphs::Fonts::load(o.fonts.as_deref())?;
        Ok((build, extra, fonts))
    })
    .await??;
    tracing::info!(
        model = %opts.model.display(),
        dir = %build.dir.display(),
        build_id = %build.id,
        buildings = build.loaded.model.buildings.len(),
        tilesets = ?build.tilesets.keys().collect::<Vec<_>>(),
        secs = format!("{:.2}", t0.elapsed().as_secs_f64()),
        "model loaded"
    );
    let name = build.loaded.model.info.name.clone();
    let state = Shared::new(build, opts.model.clone(), extra, opts.public_url.clone(), fonts);
    crate::state::spawn_watchers(state.clone());
    crate::live::db::pg::STATEMENT_TIMEOUT_MS.store(opts.auth.request_timeout.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    let live = crate::live::start(state.clone(), &opts.model, opts.live.clone()).await?;
    let auth = crate::auth::Auth::start(live.db.clone(), opts.auth.clone()).await?;
    let listener = tokio::net::TcpListener::bind(opts.addr).await.with_context(|| format!("cannot listen on {}", opts.addr))?;
    let local = listener.local_addr()?;
    println!("CityTwin serving model '{name}' at http://{local}/  (try http://{local}/api/model, /tiles, /styles/command.json)");
    tracing::info!(addr = %local, "listening");
    let app = router(state, Some(live), Some(auth));
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
        .await?;
    Ok(())
}
