//! Live operations (issue 5): the store and change log ([`db`]), events and their closed loop
//! ([`events`]), dispatch units ([`units`]), the WebSocket/SSE stream ([`stream`]) and metrics.
//! Semantics and API: docs/LIVE.md.

pub mod db;
pub mod events;
pub mod indicators;
pub mod metrics;
pub mod sensors;
pub mod stream;
pub mod units;

use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use db::{Db, DbError, DbOptions, DbUrl};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// `None`: `sqlite:<model>.live.sqlite` beside the model directory.
    pub db: Option<DbUrl>,
    pub categories: Option<PathBuf>,
    pub sla_check_ms: u64,
    pub stream_ring: usize,
    pub stream_queue: usize,
    pub max_body: usize,
    /// MQTT broker to ingest observations from (`mqtt://host:port`).
    pub mqtt: Option<String>,
    /// `USER:PASSWORD` file for the broker (instead of credentials in the URL).
    pub mqtt_credentials: Option<PathBuf>,
    /// The city simulator: `None` = on with the built-in city, off otherwise.
    pub simulate: Option<bool>,
    pub sim_speed: f64,
    pub sim_seed: u64,
    /// Indicator library directory (`None`: the bundled `assets/indicators`).
    pub indicators: Option<PathBuf>,
    /// Simulated seconds per wall-clock second of unit travel: `None` = the simulator's speed
    /// while it runs, 1 otherwise.
    pub unit_speedup: Option<f64>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions { db: None, categories: None, sla_check_ms: 5000, stream_ring: 10_000, stream_queue: 1024, max_body: 1 << 20, mqtt: None, mqtt_credentials: None, simulate: None, sim_speed: 60.0, sim_seed: 1, indicators: None, unit_speedup: None }
    }
}

/// Everything the live routes need.
pub struct Live {
    pub db: Db,
    pub cats: events::Categories,
    pub app: AppState,
    pub opts: LiveOptions,
    pub sensors: Arc<sensors::Sensors>,
    pub indicators: Arc<self::indicators::Indicators>,
    /// Unit travel speed-up (see [`LiveOptions::unit_speedup`]).
    pub speedup: f64,
    /// Whether this process runs the simulator.
    pub simulate: bool,
}

pub type LiveState = Arc<Live>;

/// The default store of a model: `<model>.live.sqlite` beside the model path (never inside the
/// immutable build directory).
pub fn default_db(model: &std::path::Path) -> DbUrl {
    let name = model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    DbUrl::Sqlite(model.with_file_name(format!("{name}.live.sqlite")))
}

/// Opens the store, migrates every live module, seeds the units and starts the periodic tasks.
pub async fn start(app: AppState, model: &std::path::Path, opts: LiveOptions) -> anyhow::Result<LiveState> {
    use anyhow::Context;
    let url = opts.db.clone().unwrap_or_else(|| default_db(model));
    let cats = match &opts.categories {
        Some(p) => events::Categories::load(p)?,
        None => events::Categories::bundled()?,
    };
    let dbopts = DbOptions { ring: opts.stream_ring, broadcast: opts.stream_queue.max(8192), ..Default::default() };
    let u = url.clone();
    let db = tokio::task::spawn_blocking(move || Db::open(&u, dbopts)).await?.with_context(|| format!("live store {}", url.display()))?;
    db.migrate("events", events::MIGRATIONS).await.context("live store: events schema")?;
    db.migrate("units", units::MIGRATIONS).await.context("live store: units schema")?;
    db.migrate("simulator", sensors::simulate::MIGRATIONS).await.context("live store: simulator schema")?;
    let sensors = sensors::start(&db).await?;
    let simulate = opts.simulate.unwrap_or_else(|| app.current.load().loaded.model.info.generated);
    let speedup = opts.unit_speedup.unwrap_or(if simulate { opts.sim_speed } else { 1.0 });
    let (ind, feeder) = self::indicators::start(&db, &app, opts.indicators.as_deref()).await?;
    let live = Arc::new(Live { db, cats, app, opts, sensors, indicators: ind, speedup, simulate });
    self::indicators::spawn(live.clone(), feeder);
    let seeded = units::seed_from_model(&live).await.context("seeding units")?;
    if seeded > 0 {
        tracing::info!(units = seeded, "units seeded from the model's stations");
    }
    events::spawn_escalation(live.clone());
    units::spawn_mover(live.clone());
    if let Some(url) = &live.opts.mqtt {
        sensors::mqtt::spawn(live.clone(), url).map_err(anyhow::Error::msg)?;
    }
    if live.simulate {
        sensors::simulate::spawn(live.clone(), sensors::simulate::SimOptions { speed: live.opts.sim_speed, seed: live.opts.sim_seed });
    }
    Ok(live)
}

/// A refused request: status, a metrics reason label and a message naming what and where.
#[derive(Debug)]
pub struct LiveError {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl LiveError {
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        LiveError { status, reason, message: message.into() }
    }
    pub fn bad(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "unknown_id", message)
    }
    pub fn conflict(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, reason, message)
    }
}

impl From<DbError> for LiveError {
    fn from(e: DbError) -> Self {
        tracing::error!("live store: {e}");
        if e.0.contains("57014") {
            // PostgreSQL's statement_timeout (= --request-timeout) cut the request off before the
            // middleware's timer did: it counts as a request timeout all the same
            crate::auth::METRICS.timeouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        LiveError::new(StatusCode::SERVICE_UNAVAILABLE, "store_error", format!("store error: {e}"))
    }
}

impl From<twin_protocol::payload::PayloadError> for LiveError {
    fn from(e: twin_protocol::payload::PayloadError) -> Self {
        LiveError::bad(e.reason, e.message)
    }
}

impl IntoResponse for LiveError {
    fn into_response(self) -> Response {
        metrics::METRICS.reject(self.reason);
        (self.status, Json(json!({"error": self.message, "reason": self.reason}))).into_response()
    }
}

/// Parses a JSON body; names the request and the line/column of a syntax or type error.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>, what: &str) -> Result<T, LiveError> {
    let bytes = body_bytes(body, what)?;
    Ok(twin_protocol::payload::json_body(&bytes, what)?)
}

/// The body's bytes, or 413 / 400 naming the request (the parsing is `twin_protocol::payload`'s).
pub fn body_bytes(body: Result<Bytes, BytesRejection>, what: &str) -> Result<Bytes, LiveError> {
    body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            LiveError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("{what}: body larger than the limit ({rej})"))
        } else {
            LiveError::bad("malformed_body", format!("{what}: cannot read the body: {rej}"))
        }
    })
}

/// The live routes in two groups, so access control (issue 8) can wrap each with one
/// `route_layer`: [`read_routes`] (leader and up) and [`write_routes`] (dispatcher: events and
/// dispatch). The stream is a read route; `/metrics` an operator route.
pub fn router(live: LiveState) -> axum::Router {
    let max_body = live.opts.max_body;
    read_routes()
        .merge(write_routes())
        .merge(admin_routes())
        .route("/metrics", axum::routing::get(metrics_route))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .merge(sensors_router(max_body))
        .with_state(live)
}

pub fn read_routes() -> axum::Router<LiveState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/events", get(events::list_route))
        .route("/api/events/replay", get(events::replay_route))
        .route("/api/events/categories", get(events::categories_route))
        .route("/api/events/{id}", get(events::get_route))
        .route("/api/events/{id}/log", get(events::log_route))
        .route("/api/events/{id}/recommend", get(units::recommend_route))
        .route("/api/units", get(units::list_route))
        .route("/api/units/{id}", get(units::get_route))
        .route("/api/stream", get(stream::stream_route))
        .merge(self::indicators::read_routes())
}

/// Admin actions (publish/retire indicator definitions): their own group so access control
/// can gate it for the admin role.
pub fn admin_routes() -> axum::Router<LiveState> {
    self::indicators::admin_routes()
}

pub fn write_routes() -> axum::Router<LiveState> {
    use axum::routing::post;
    axum::Router::new()
        .route("/api/events", post(events::create_route))
        .route("/api/events/{id}/transitions", post(events::transition_route))
        .route("/api/events/{id}/assign", post(units::assign_route))
        .route("/api/units/{id}/status", post(units::status_route))
}

async fn metrics_route(axum::extract::State(live): axum::extract::State<LiveState>) -> Response {
    let backend = match live.db.backend() {
        db::Backend::Sqlite => "sqlite",
        db::Backend::Postgres => "postgres",
    };
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics::METRICS.render(live.db.head(), live.db.ring_first(), backend) + &live.sensors.metrics_text() + &self::indicators::metrics_text(&live.indicators) + &crate::auth::metrics_text(),
    )
        .into_response()
}

/// The sensors routes (SensorThings API and ingest); ingest bodies may be 8× `--max-body`.
fn sensors_router(max_body: usize) -> axum::Router<LiveState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/sta/v1.1", get(sensors::sta::root_route))
        .route("/api/sta/v1.1/", get(sensors::sta::root_route))
        .route("/api/sta/v1.1/{*path}", get(sensors::sta::get_route).post(sensors::sta::post_route))
        .route("/api/sensors/latest", get(sensors::latest_route))
        .route("/api/sensors/types", get(sensors::types_route))
        .route("/api/sensors/observations", post(sensors::post_simple_route))
        .layer(axum::extract::DefaultBodyLimit::max(max_body.saturating_mul(8)))
        .layer(axum::middleware::from_fn_with_state(max_body.saturating_mul(8), sensors::refuse_declared_oversize))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `from`/`to` query values: RFC 3339 or milliseconds since the epoch.
pub fn parse_time(name: &str, v: &str) -> Result<i64, LiveError> {
    Ok(twin_protocol::payload::query_time(name, v)?)
}
