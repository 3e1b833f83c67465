//! Indicators (issue 6): the `indicators` engine fed by the live store, its HTTP API, the
//! stream topic `indicators`, and runtime publish/retire. Contract: docs/INDICATORS.md
//! "API contract for twin-server"; stream semantics: docs/LIVE.md "Indicators".
//!
//! * **One engine per process**, behind a mutex ([`Indicators`]). At start the library (bundled
//!   `assets/indicators/*.toml` or `--indicators DIR`) is loaded, the published/retired
//!   definitions stored in `indicator_defs` are applied in order, and the engine is backfilled
//!   from one consistent read of the stores (events as created + their log + their final
//!   snapshot, observations) over the last max-window (≤ 92 days) — the same `Engine::push` path
//!   as live feeding.
//! * **Feeding** is one task per process ([`feeder`]) that follows the change log in seq order
//!   (`Db::changes_after`, woken by the store's broadcast): `events` changes carry the event and
//!   its log entry; an `observations` change makes it read the observations stored since the
//!   last one it fed (`sta_observations.id` ascends in commit order: its counter row is locked
//!   until commit); `indicators` changes publish or retire a definition (another replica's admin
//!   action). Every replica therefore computes the same values from the same log.
//! * **Ticks** once a second: `Engine::tick(now)`, then the values that changed since the last
//!   push go to the stream subscribers of `indicators` (an in-process broadcast, derived data:
//!   no seq of its own).
//! * **Admin** requests (publish, retire) are executed by the feeder task between two change
//!   batches, so the stored inputs replayed into a published definition are exactly those the
//!   engine has been fed (observations up to the last id fed, log entries up to the last id fed).

use super::db::{Conn, Db, DbError, DbResult, NewChange, Row};
use super::{LiveError, LiveState};
use crate::state::AppState;
use ::indicators::{
    Area, CalendarUnit, DefError, DefErrors, DefState, Definition, Engine, EngineConfig, Input, Library, Observation, Spatial, Window,
};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value as JsonValue};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use twin_protocol::{ts_from_ms, Event, EventState, ServerMessage, Topic, Transition};

pub const MIGRATIONS: &[&str] = &["CREATE TABLE indicator_defs (seq BIGINT PRIMARY KEY, id TEXT NOT NULL, version BIGINT NOT NULL, action TEXT NOT NULL,
        toml TEXT NOT NULL, actor TEXT NOT NULL, at_ms BIGINT NOT NULL);
     CREATE INDEX indicator_defs_id ON indicator_defs (id, version);"];

/// The default library, compiled in (a test checks it lists every file of `assets/indicators`).
pub const BUNDLED: &[(&str, &str)] = &[
    ("city_life.toml", include_str!("../../../assets/indicators/city_life.toml")),
    ("city_plan.toml", include_str!("../../../assets/indicators/city_plan.toml")),
    ("command.toml", include_str!("../../../assets/indicators/command.toml")),
    ("environment.toml", include_str!("../../../assets/indicators/environment.toml")),
];

const DAY: i64 = 86_400_000;
/// The longest backfill span (the engine's longest window).
const MAX_SPAN: i64 = 92 * DAY;
/// The file name posted definitions are validated under (errors name it with the line).
pub const REQUEST_FILE: &str = "(request body)";

/// The sensors module's type keys → (indicators sensor type, observed property). `gas_ppm` has
/// no counterpart in the indicators vocabulary (its unit is ppm, not %LEL) and is not fed.
pub fn map_sensor(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "pm25" => ("air_quality", "pm25"),
        "aqi" => ("air_quality", "aqi"),
        "water_level" => ("water_level", "water_level"),
        "gas_lel" => ("gas", "gas_concentration"),
        "traffic_flow" => ("traffic", "traffic_flow"),
        "traffic_speed" => ("traffic", "traffic_speed"),
        "parking_occupancy" => ("parking", "parking_occupancy"),
        "elevator_status" => ("elevator", "elevator_status"),
        "manhole_tilt" => ("manhole", "manhole_tilt"),
        "noise" => ("noise", "noise"),
        _ => return None,
    })
}

/// An observation's numeric value for the engine: the number, or for `elevator_status` 0 when
/// the elevator runs (`normal`, `maintenance`) and 1 when it is out of service (`stopped`,
/// `fault`, `trapped`).
fn obs_value(num: Option<f64>, text: Option<&str>) -> Option<f64> {
    match (num, text) {
        (Some(x), _) => Some(x),
        (None, Some("normal" | "maintenance")) => Some(0.0),
        (None, Some("stopped" | "fault" | "trapped")) => Some(1.0),
        _ => None,
    }
}

/// Indices of the model district and street (街道/乡镇) containing the point.
fn areas_at(app: &AppState, lon: f64, lat: f64) -> (Option<u32>, Option<u32>) {
    use geo::{BoundingRect, Contains};
    let b = app.current.load();
    let m = &b.loaded.model;
    let p = geo_types::Point::new(lon, lat);
    let inside = |g: &geo_types::MultiPolygon<f64>| g.bounding_rect().is_some_and(|r| r.contains(&p)) && g.contains(&p);
    let district = m.districts.iter().position(|d| inside(&d.geometry)).map(|i| i as u32);
    let street = m.streets.iter().position(|s| inside(&s.geometry)).map(|i| i as u32);
    (district, street)
}

/// A street of the served model as the indicator API names it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreetName {
    pub code: u64,
    pub name: String,
    pub district: Option<u32>,
}

/// District and street names of the served model (refreshed when the model is hot-swapped).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AreaNames {
    /// The build these names come from.
    pub build_id: String,
    /// District names by model index (zh, else en).
    pub districts: Vec<String>,
    pub streets: Vec<StreetName>,
}

impl AreaNames {
    pub fn of(app: &AppState) -> AreaNames {
        let b = app.current.load();
        let m = &b.loaded.model;
        AreaNames {
            build_id: b.id.clone(),
            districts: m.districts.iter().enumerate().map(|(i, d)| d.names.zh.clone().or(d.names.en.clone()).unwrap_or_else(|| format!("district {i}"))).collect(),
            streets: m
                .streets
                .iter()
                .enumerate()
                .map(|(i, s)| StreetName {
                    code: s.code,
                    name: s.names.zh.clone().or(s.names.en.clone()).or(s.names.local.clone()).unwrap_or_else(|| format!("street {i}")),
                    district: s.district.map(u32::from),
                })
                .collect(),
        }
    }
    fn street_districts(&self) -> Vec<Option<u32>> {
        self.streets.iter().map(|s| s.district).collect()
    }
}

/// An admin request executed by the feeder.
enum Admin {
    Publish { text: String, actor: String, reply: oneshot::Sender<Result<Definition, AdminError>> },
    Retire { id: String, actor: String, reply: oneshot::Sender<Result<Definition, AdminError>> },
}

#[derive(Debug)]
pub enum AdminError {
    /// 422: the posted definition (or the set with it) is invalid.
    Invalid(DefErrors),
    /// 409: retire refused (used by a derived indicator) or a conflicting version.
    Conflict(DefErrors),
    NotFound(String),
    Store(DbError),
}

/// The process's indicator engine and its outlets.
pub struct Indicators {
    engine: Mutex<Engine>,
    /// District and street names of the served model (swapped with the model).
    names: Mutex<Arc<AreaNames>>,
    push: broadcast::Sender<Arc<ServerMessage>>,
    admin: mpsc::Sender<Admin>,
    /// The change-log seq the engine has been fed up to.
    head: AtomicI64,
    /// Inputs fed live (after the backfill) and their total cost, for /metrics.
    pub fed: AtomicU64,
    pub fed_ns: AtomicU64,
    /// Time spent reading and mapping new observations from the store.
    pub read_ns: AtomicU64,
}

/// What the feeder task owns.
pub struct Feeder {
    rx: mpsc::Receiver<Admin>,
    next: i64,
    last_obs: i64,
    last_log: i64,
    applied: HashSet<i64>,
    /// District and street of each datastream fed (by its location), for the build `ds_build`.
    ds: HashMap<i64, (Option<u32>, Option<u32>)>,
    ds_build: String,
    last_pushed: HashMap<(String, Area), (u32, Option<f64>)>,
}

fn engine_span(e: &Engine) -> i64 {
    e.definitions()
        .filter(|d| d.is_active())
        .map(|d| match d.window {
            Window::Rolling { ms } => ms,
            Window::Calendar { unit: CalendarUnit::Day } => DAY,
            Window::Calendar { unit: CalendarUnit::Week } => 7 * DAY,
            Window::Calendar { unit: CalendarUnit::Month } => 31 * DAY,
            _ => 0,
        })
        .max()
        .unwrap_or(0)
        .min(MAX_SPAN)
}

fn open_states_sql() -> String {
    EventState::ALL.iter().filter(|s| !s.is_terminal()).map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(",")
}

fn transition_from_row(r: &Row) -> Transition {
    Transition {
        id: r.i64(0),
        event_id: r.i64(1),
        from: r.opt_str(2).and_then(EventState::parse),
        to: EventState::parse(r.str(3)).unwrap_or(EventState::Reported),
        kind: r.str(4).to_string(),
        actor: r.str(5).to_string(),
        at: ts_from_ms(r.i64(6)),
        note: None,
        reason: None,
    }
}

/// Stored inputs for a backfill, in feeding order: events reported since `from`, still open, or
/// with log entries since `from` (each as created, then its log entries up to `max_log`, then its
/// current snapshot), and the observations since `from` with ids up to `max_obs`. Observations
/// later than `until` are left out (a bad clock must not move the engine clock); events stamped
/// later are kept (the engine caps the clock they move, see `Engine::push`).
fn load_inputs(c: &mut dyn Conn, app: &AppState, from: i64, until: i64, max_obs: i64, max_log: i64) -> DbResult<Vec<Input>> {
    // (sort key, order, input)
    let mut items: Vec<(i64, u64, Input)> = Vec::new();
    let mut n = 0u64;
    let mut add = |key: i64, i: Input, items: &mut Vec<(i64, u64, Input)>| {
        n += 1;
        items.push((key, n, i));
    };
    let events: Vec<Event> = c
        .query(
            &format!(
                "SELECT {} FROM events WHERE id IN (SELECT event_id FROM event_log WHERE kind = 'created' AND id <= $2)
                 AND (reported_ms >= $1 OR state IN ({}) OR id IN (SELECT event_id FROM event_log WHERE at_ms >= $1 AND id <= $2)) ORDER BY id",
                super::events::EVENT_COLS,
                open_states_sql()
            ),
            &[from.into(), max_log.into()],
        )?
        .iter()
        .map(super::events::event_from_row)
        .collect::<DbResult<_>>()?;
    let ids: HashSet<i64> = events.iter().map(|e| e.id).collect();
    let mut logs: HashMap<i64, Vec<Transition>> = HashMap::new();
    if !events.is_empty() {
        let min_id = events.iter().map(|e| e.id).min().unwrap_or(0);
        for r in c.query(
            "SELECT id, event_id, from_state, to_state, kind, actor, at_ms FROM event_log WHERE event_id >= $1 AND id <= $2 ORDER BY id",
            &[min_id.into(), max_log.into()],
        )? {
            let t = transition_from_row(&r);
            if ids.contains(&t.event_id) {
                logs.entry(t.event_id).or_default().push(t);
            }
        }
    }
    for mut e in events {
        e.street = areas_at(app, e.location.lon, e.location.lat).1;
        let created = Input::event_as_created(&e);
        let mut key = created.time();
        add(key, created, &mut items);
        for t in logs.remove(&e.id).unwrap_or_default() {
            key = key.max(t.at.timestamp_millis());
            add(key, Input::Transition(t), &mut items);
        }
        let fin = Input::Event(e);
        key = key.max(fin.time());
        add(key, fin, &mut items);
    }
    let mut ds_district: HashMap<i64, (Option<u32>, Option<u32>)> = HashMap::new();
    // In id ranges (primary key), so the raw rows of only one page are held beside the inputs.
    const PAGE: i64 = 100_000;
    let mut lo = 0i64;
    while lo < max_obs {
        let hi = (lo + PAGE).min(max_obs);
        let rows = c.query(
            "SELECT o.datastream_id, o.phenomenon_ms, o.result, o.result_str, d.sensor_type, d.lon, d.lat FROM sta_observations o
             JOIN sta_datastreams d ON d.id = o.datastream_id WHERE o.id > $3 AND o.id <= $4 AND o.phenomenon_ms >= $1 AND o.phenomenon_ms <= $2",
            &[from.into(), until.into(), lo.into(), hi.into()],
        )?;
        for r in rows {
            if let Some(o) = observation_from_row(&r, app, &mut ds_district) {
                add(o.phenomenon_time.timestamp_millis(), Input::Observation(o), &mut items);
            }
        }
        lo = hi;
    }
    // Observations later than `until` were not read; an event reported later (a client's or
    // the simulator's clock ahead) is still open in the store and is fed, sorted at `until`.
    for x in items.iter_mut() {
        x.0 = x.0.min(until);
    }
    items.sort_by_key(|x| (x.0, x.1));
    Ok(items.into_iter().map(|x| x.2).collect())
}

/// Row: datastream_id, phenomenon_ms, result, result_str, sensor_type, lon, lat.
fn observation_from_row(r: &Row, app: &AppState, cache: &mut HashMap<i64, (Option<u32>, Option<u32>)>) -> Option<Observation> {
    let (sensor_type, prop) = map_sensor(r.str(4))?;
    let value = obs_value(r.opt_f64(2), r.opt_str(3))?;
    let ds = r.i64(0);
    let (lon, lat) = (r.opt_f64(5), r.opt_f64(6));
    let (district, street) = *cache.entry(ds).or_insert_with(|| match (lon, lat) {
        (Some(lon), Some(lat)) => areas_at(app, lon, lat),
        _ => (None, None),
    });
    Some(Observation {
        datastream: ds.to_string(),
        sensor_type: sensor_type.into(),
        observed_property: prop.into(),
        district,
        street,
        location: lon.zip(lat).map(|(lon, lat)| twin_protocol::LonLat { lon, lat }),
        value,
        phenomenon_time: ts_from_ms(r.i64(1)),
    })
}

/// The library: `dir` or the bundled one.
pub fn load_library(dir: Option<&std::path::Path>) -> Result<Library, DefErrors> {
    match dir {
        Some(d) => Library::load_dir(d),
        None => Library::from_sources(&BUNDLED.iter().map(|(f, t)| (format!("assets/indicators/{f}"), t.to_string())).collect::<Vec<_>>()),
    }
}

/// Builds the engine (library, stored definitions, backfill); returns the shared state and the
/// feeder to [`spawn`] once the live state exists.
pub async fn start(db: &Db, app: &AppState, dir: Option<&std::path::Path>) -> anyhow::Result<(Arc<Indicators>, Feeder)> {
    use anyhow::Context;
    db.migrate("indicators", MIGRATIONS).await.context("live store: indicators schema")?;
    let lib = load_library(dir).map_err(|e| anyhow::anyhow!("indicator library {}: {e}", dir.map(|d| d.display().to_string()).unwrap_or_else(|| "(bundled)".into())))?;
    let names = AreaNames::of(app);
    let mut engine = Engine::new(lib, EngineConfig { districts: names.districts.clone(), street_districts: names.street_districts(), ..Default::default() });
    let now = super::now_ms();
    let t0 = std::time::Instant::now();
    // Stored definitions first (so the backfill feeds them), then the inputs, from one snapshot.
    let defs = db
        .read(|c| {
            Ok(c.query("SELECT seq, id, version, action, toml FROM indicator_defs ORDER BY seq", &[])?
                .iter()
                .map(|r| (r.i64(0), r.str(1).to_string(), r.i64(2), r.str(3).to_string(), r.str(4).to_string()))
                .collect::<Vec<_>>())
        })
        .await?;
    let mut applied = HashSet::new();
    for (seq, id, version, action, toml) in defs {
        applied.insert(seq);
        let r = match action.as_str() {
            "publish" => engine.publish(&stored_file(seq, &id, version), &toml, std::iter::empty()),
            _ => engine.retire(&id),
        };
        if let Err(e) = r {
            tracing::warn!(seq, id = %id, version, action = %action, "stored indicator definition not applied: {e}");
        }
    }
    let span = engine_span(&engine);
    let app2 = app.clone();
    let (head, max_obs, max_log, inputs) = db
        .read_snapshot(move |c| {
            let head = c.query("SELECT v FROM change_seq WHERE id = 1", &[])?.first().map(|r| r.i64(0)).unwrap_or(0);
            let max_obs = c.query("SELECT MAX(id) FROM sta_observations", &[])?.first().and_then(|r| r.opt_i64(0)).unwrap_or(0);
            let max_log = c.query("SELECT MAX(id) FROM event_log", &[])?.first().and_then(|r| r.opt_i64(0)).unwrap_or(0);
            let inputs = load_inputs(c, &app2, now - span, now + 3_600_000, max_obs, max_log)?;
            Ok((head, max_obs, max_log, inputs))
        })
        .await?;
    let n = inputs.len();
    engine.set_wall(now);
    let fed = engine.backfill(inputs);
    engine.tick(now);
    tracing::info!(
        indicators = engine.definitions().filter(|d| d.is_active()).count(),
        inputs = n,
        fed,
        span_days = span as f64 / DAY as f64,
        head,
        secs = format!("{:.2}", t0.elapsed().as_secs_f64()),
        "indicators: engine backfilled"
    );
    let (tx, rx) = mpsc::channel(16);
    let ind = Arc::new(Indicators {
        engine: Mutex::new(engine),
        names: Mutex::new(Arc::new(names.clone())),
        push: broadcast::channel(64).0,
        admin: tx,
        head: AtomicI64::new(head),
        fed: AtomicU64::new(0),
        fed_ns: AtomicU64::new(0),
        read_ns: AtomicU64::new(0),
    });
    let feeder = Feeder { rx, next: head + 1, last_obs: max_obs, last_log: max_log, applied, ds: HashMap::new(), ds_build: names.build_id.clone(), last_pushed: HashMap::new() };
    Ok((ind, feeder))
}

fn stored_file(seq: i64, id: &str, version: i64) -> String {
    format!("indicator_defs#{seq} ({id} v{version})")
}

impl Indicators {
    /// Receives the value pushes (`indicator_values`) of this process.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ServerMessage>> {
        self.push.subscribe()
    }

    pub fn head(&self) -> i64 {
        self.head.load(Ordering::Acquire)
    }

    /// The district and street names of the served model.
    pub fn names(&self) -> Arc<AreaNames> {
        self.names.lock().unwrap().clone()
    }

    /// Takes the names of a newly served model (hot swap) into the API and the engine.
    fn set_names(&self, names: AreaNames) {
        self.engine.lock().unwrap().set_areas(names.districts.clone(), names.street_districts());
        *self.names.lock().unwrap() = Arc::new(names);
    }

    fn area_json(n: &AreaNames, a: Area) -> JsonValue {
        match a {
            Area::City => json!("city"),
            Area::District(d) => json!({"district": d, "name": n.districts.get(d as usize)}),
            Area::Street(s) => {
                let st = n.streets.get(s as usize);
                json!({"street": s, "code": st.map(|x| x.code), "name": st.map(|x| &x.name), "district": st.and_then(|x| x.district)})
            }
        }
    }

    fn value_json(n: &AreaNames, v: &::indicators::Value) -> JsonValue {
        json!({"id": v.id, "version": v.version, "area": Self::area_json(n, v.area), "at": v.at, "value": v.value, "unit": v.unit,
               "band": v.band, "color": v.color, "on_target": v.on_target})
    }

    fn values_json(&self, vals: &[::indicators::Value]) -> Vec<JsonValue> {
        let n = self.names();
        vals.iter().map(|v| Self::value_json(&n, v)).collect()
    }

    /// The areas of a definition: the city, every model district when it is per district, and
    /// every street too at street grain.
    fn areas(n: &AreaNames, d: &Definition) -> Vec<Area> {
        let mut a = vec![Area::City];
        if d.spatial.per_district() {
            a.extend((0..n.districts.len() as u32).map(Area::District));
        }
        if d.spatial == Spatial::Street {
            a.extend((0..n.streets.len() as u32).map(Area::Street));
        }
        a
    }

    /// Current values of the active definitions that `keep` accepts, at `now`; with `only`, just
    /// that area (a district or a street).
    fn values_where(&self, now: i64, keep: impl Fn(&Definition) -> bool, only: Option<Area>) -> Vec<::indicators::Value> {
        let names = self.names();
        let mut e = self.engine.lock().unwrap();
        let wanted: Vec<(String, Vec<Area>)> = e
            .definitions()
            .filter(|d| d.is_active() && keep(d))
            .map(|d| (d.id.clone(), Self::areas(&names, d).into_iter().filter(|a| only.is_none_or(|x| *a == x)).collect()))
            .collect();
        let mut out = Vec::new();
        for (id, areas) in wanted {
            for a in areas {
                if let Some(v) = e.value(&id, a, now) {
                    out.push(v);
                }
            }
        }
        out
    }

    /// Every current value as JSON (the stream snapshot).
    pub fn all_values_json(&self) -> Vec<JsonValue> {
        self.values_json(&self.values_where(super::now_ms(), |_| true, None))
    }

    /// A push message with every current value (a stream resume, or a subscriber that lagged).
    pub fn full_push(&self) -> ServerMessage {
        ServerMessage::IndicatorValues { at: ts_from_ms(super::now_ms()), head: self.head(), values: self.all_values_json() }
    }

    fn district_param(&self, v: &str) -> Result<u32, LiveError> {
        let n = self.names();
        if let Ok(i) = v.parse::<u32>() {
            if (i as usize) < n.districts.len() {
                return Ok(i);
            }
        } else if let Some(i) = n.districts.iter().position(|x| x == v) {
            return Ok(i as u32);
        }
        Err(LiveError::bad("bad_query", format!("query parameter 'district': '{v}' is not a district of the model (0–{} or a name: {})", n.districts.len().saturating_sub(1), n.districts.join(", "))))
    }

    /// `street=`: a street index of the model, its NBS code (9 or 12 digits) or its name.
    fn street_param(&self, v: &str) -> Result<u32, LiveError> {
        let n = self.names();
        let found = match v.parse::<u64>() {
            Ok(i) if (i as usize) < n.streets.len() => Some(i as usize),
            Ok(code) => n.streets.iter().position(|s| s.code == code && code != 0),
            Err(_) => n.streets.iter().position(|s| s.name == v),
        };
        found.map(|i| i as u32).ok_or_else(|| {
            LiveError::bad(
                "bad_query",
                if n.streets.is_empty() {
                    format!("query parameter 'street': '{v}': the model has no streets (街道/乡镇)")
                } else {
                    format!("query parameter 'street': '{v}' is not a street of the model (an index 0–{}, an NBS code or a name; GET /api/streets lists them)", n.streets.len() - 1)
                },
            )
        })
    }

    /// The area of `district=` / `street=` (at most one of them).
    fn area_param(&self, q: &HashMap<String, String>, what: &str) -> Result<Option<Area>, LiveError> {
        match (q.get("district"), q.get("street")) {
            (Some(_), Some(_)) => Err(LiveError::bad("bad_query", format!("{what}: give 'district' or 'street', not both"))),
            (Some(d), None) => Ok(Some(Area::District(self.district_param(d)?))),
            (None, Some(s)) => Ok(Some(Area::Street(self.street_param(s)?))),
            (None, None) => Ok(None),
        }
    }
}

// ---------------------------------------------------------------- feeding

/// Starts the feeder task (after the live state exists).
pub fn spawn(live: LiveState, feeder: Feeder) {
    tokio::spawn(async move {
        if let Err(e) = run(live, feeder).await {
            tracing::error!("indicators: feeder stopped: {e}");
        }
    });
}

async fn run(live: LiveState, mut f: Feeder) -> DbResult<()> {
    let mut rx = live.db.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let mut ticked = false;
        let mut admin = None;
        tokio::select! {
            r = rx.recv() => if let Err(broadcast::error::RecvError::Closed) = r { return Ok(()) },
            _ = tick.tick() => ticked = true,
            a = f.rx.recv() => admin = a,
        }
        if let Err(e) = drain(&live, &mut f).await {
            tracing::warn!("indicators: reading the change log: {e}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if let Some(a) = admin {
            handle_admin(&live, &mut f, a).await;
        }
        if ticked {
            push_tick(&live, &mut f);
        }
    }
}

/// Feeds every change after the last one fed.
async fn drain(live: &LiveState, f: &mut Feeder) -> DbResult<()> {
    let ind = &live.indicators;
    loop {
        let batch = live.db.changes_after(f.next - 1, 1000).await?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut inputs: Vec<Input> = Vec::new();
        let mut obs = false;
        let mut defs = Vec::new();
        for c in &batch {
            if c.seq < f.next {
                continue;
            }
            f.next = c.seq + 1;
            match c.topic {
                Topic::Events => {
                    let ev = c.payload.get("event").and_then(|v| serde_json::from_value::<Event>(v.clone()).ok());
                    let log = c.payload.get("log").and_then(|v| serde_json::from_value::<Transition>(v.clone()).ok());
                    if let Some(l) = &log {
                        f.last_log = f.last_log.max(l.id);
                    }
                    // Created: the event first (so its log entry sees its category); otherwise
                    // the log entry first (it moves the state and counts the escalation), then
                    // the snapshot (due time, district).
                    let created = c.kind == "created";
                    let ev = ev.map(|mut e| {
                        e.street = areas_at(&live.app, e.location.lon, e.location.lat).1;
                        e
                    });
                    match (ev, log) {
                        (Some(e), Some(l)) if created => inputs.extend([Input::Event(e), Input::Transition(l)]),
                        (e, l) => {
                            inputs.extend(l.map(Input::Transition));
                            inputs.extend(e.map(Input::Event));
                        }
                    }
                }
                Topic::Sensors if c.kind == "observations" => obs = true,
                Topic::Indicators => defs.push(c.clone()),
                _ => {}
            }
        }
        if obs {
            refresh_names(live, f);
            let (last, app) = (f.last_obs, live.app.clone());
            let t_read = std::time::Instant::now();
            let mut cache = std::mem::take(&mut f.ds);
            let (rows, max, cache) = live
                .db
                .read(move |c| {
                    let rows = c.query(
                        "SELECT o.datastream_id, o.phenomenon_ms, o.result, o.result_str, d.sensor_type, d.lon, d.lat, o.id FROM sta_observations o
                         JOIN sta_datastreams d ON d.id = o.datastream_id WHERE o.id > $1 ORDER BY o.id",
                        &[last.into()],
                    )?;
                    let max = rows.last().map(|r| r.i64(7)).unwrap_or(last);
                    let obs: Vec<Observation> = rows.iter().filter_map(|r| observation_from_row(r, &app, &mut cache)).collect();
                    Ok((obs, max, cache))
                })
                .await?;
            f.ds = cache;
            ind.read_ns.fetch_add(t_read.elapsed().as_nanos() as u64, Ordering::Relaxed);
            f.last_obs = max;
            inputs.extend(rows.into_iter().map(Input::Observation));
        }
        if !inputs.is_empty() {
            let t0 = std::time::Instant::now();
            let mut e = ind.engine.lock().unwrap();
            for i in &inputs {
                e.push(i);
            }
            drop(e);
            ind.fed.fetch_add(inputs.len() as u64, Ordering::Relaxed);
            ind.fed_ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        for c in defs {
            apply_def_change(live, f, &c.payload).await;
        }
        ind.head.store(f.next - 1, Ordering::Release);
    }
}

/// Another replica's (or an earlier, not yet applied) publish/retire from the change log.
async fn apply_def_change(live: &LiveState, f: &mut Feeder, p: &JsonValue) {
    let seq = p["def_seq"].as_i64().unwrap_or(-1);
    if !f.applied.insert(seq) {
        return;
    }
    let id = p["id"].as_str().unwrap_or("").to_string();
    let version = p["version"].as_i64().unwrap_or(0);
    let r = match p["action"].as_str() {
        Some("publish") => {
            let toml = p["toml"].as_str().unwrap_or("").to_string();
            match history(live, f).await {
                Ok(h) => live.indicators.engine.lock().unwrap().publish(&stored_file(seq, &id, version), &toml, h),
                Err(e) => {
                    tracing::error!(seq, id = %id, "indicators: cannot read the stores to backfill a published definition: {e}");
                    return;
                }
            }
        }
        _ => live.indicators.engine.lock().unwrap().retire(&id),
    };
    match r {
        Ok(()) => tracing::info!(seq, id = %id, version, action = ?p["action"], "indicators: definition change from the log applied"),
        Err(e) => tracing::warn!(seq, id = %id, version, "indicators: definition change from the log not applied: {e}"),
    }
}

/// The stored inputs the engine has been fed, over the backfill span.
async fn history(live: &LiveState, f: &Feeder) -> DbResult<Vec<Input>> {
    let span = engine_span(&live.indicators.engine.lock().unwrap()).max(MAX_SPAN);
    let now = super::now_ms();
    let (app, max_obs, max_log) = (live.app.clone(), f.last_obs, f.last_log);
    live.db.read_snapshot(move |c| load_inputs(c, &app, now - span, now + 3_600_000, max_obs, max_log)).await
}

async fn handle_admin(live: &LiveState, f: &mut Feeder, a: Admin) {
    match a {
        Admin::Publish { text, actor, reply } => {
            let r = publish(live, f, &text, &actor).await;
            let _ = reply.send(r);
        }
        Admin::Retire { id, actor, reply } => {
            let r = retire(live, f, &id, &actor).await;
            let _ = reply.send(r);
        }
    }
}

fn one_error(file: &str, line: usize, field: String, message: String) -> DefErrors {
    DefErrors(vec![DefError { file: file.into(), line, field, message }])
}

/// Checks a posted definition against the current set (what `Engine::publish` checks, so the
/// store only ever holds definitions this engine accepts).
fn check_publish(e: &Engine, text: &str) -> Result<Definition, DefErrors> {
    let mut errs = vec![];
    let mut new = ::indicators::load::parse_file(REQUEST_FILE, text, &mut errs);
    if errs.is_empty() && new.len() != 1 {
        errs.push(DefError { file: REQUEST_FILE.into(), line: 1, field: "indicator".into(), message: format!("publish takes exactly one [[indicator]], got {}", new.len()) });
    }
    if !errs.is_empty() {
        return Err(DefErrors(errs));
    }
    let def = new.remove(0);
    let mut defs: Vec<Definition> = e.definitions().cloned().collect();
    match defs.iter().position(|d| d.id == def.id) {
        Some(i) => {
            if def.version <= defs[i].version {
                return Err(one_error(REQUEST_FILE, def.line, format!("{}: version", def.id), format!("version {} must be higher than the current version {}", def.version, defs[i].version)));
            }
            defs[i] = def.clone();
        }
        None => defs.push(def.clone()),
    }
    ::indicators::load::validate_set(&defs, &mut errs);
    if !errs.is_empty() {
        return Err(DefErrors(errs));
    }
    Ok(def)
}

async fn store_def(live: &LiveState, id: &str, version: i64, action: &'static str, toml: &str, actor: &str) -> Result<i64, AdminError> {
    let (id, toml, actor) = (id.to_string(), toml.to_string(), actor.to_string());
    live.db
        .write(move |tx| -> Result<i64, AdminError> {
            if action == "publish" {
                let max = tx.query_one("SELECT MAX(version) FROM indicator_defs WHERE id = $1 AND action = 'publish'", &[(&id).into()])?.and_then(|r| r.opt_i64(0));
                if let Some(m) = max.filter(|m| *m >= version) {
                    return Err(AdminError::Conflict(one_error(REQUEST_FILE, 1, format!("{id}: version"), format!("version {m} of {id} is already stored (published by another replica?); publish a higher version"))));
                }
            }
            let seq = tx.next_id("indicator_defs")?;
            let at = tx.now_ms();
            tx.exec(
                "INSERT INTO indicator_defs (seq, id, version, action, toml, actor, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[seq.into(), (&id).into(), version.into(), action.into(), (&toml).into(), (&actor).into(), at.into()],
            )?;
            tx.append_change(NewChange {
                topic: Topic::Indicators,
                kind: if action == "publish" { "published".into() } else { "retired".into() },
                entity: id.clone(),
                lon: None,
                lat: None,
                payload: json!({"def_seq": seq, "id": id, "version": version, "action": action, "toml": toml, "actor": actor}),
            })?;
            Ok(seq)
        })
        .await
}

impl From<DbError> for AdminError {
    fn from(e: DbError) -> Self {
        AdminError::Store(e)
    }
}

async fn publish(live: &LiveState, f: &mut Feeder, text: &str, actor: &str) -> Result<Definition, AdminError> {
    let def = check_publish(&live.indicators.engine.lock().unwrap(), text).map_err(AdminError::Invalid)?;
    let seq = store_def(live, &def.id, def.version as i64, "publish", text, actor).await?;
    f.applied.insert(seq);
    let h = history(live, f).await?;
    let mut e = live.indicators.engine.lock().unwrap();
    // Checked above against the same engine (only this task changes definitions).
    e.publish(&stored_file(seq, &def.id, def.version as i64), text, h).map_err(AdminError::Invalid)?;
    tracing::info!(id = %def.id, version = def.version, seq, actor, "indicators: published");
    Ok(e.definition(&def.id).cloned().unwrap_or(def))
}

async fn retire(live: &LiveState, f: &mut Feeder, id: &str, actor: &str) -> Result<Definition, AdminError> {
    let def = {
        let e = live.indicators.engine.lock().unwrap();
        let d = e.definition(id).cloned().ok_or_else(|| AdminError::NotFound(format!("no indicator '{id}'")))?;
        if d.state == DefState::Retired {
            return Err(AdminError::Conflict(one_error(&d.file, d.line, format!("{id}: state"), format!("{id} is already retired"))));
        }
        let mut defs: Vec<Definition> = e.definitions().cloned().collect();
        for x in &mut defs {
            if x.id == id {
                x.state = DefState::Retired;
            }
        }
        let mut errs = vec![];
        ::indicators::load::validate_set(&defs, &mut errs);
        if !errs.is_empty() {
            return Err(AdminError::Conflict(DefErrors(errs)));
        }
        d
    };
    let seq = store_def(live, id, def.version as i64, "retire", "", actor).await?;
    f.applied.insert(seq);
    let mut e = live.indicators.engine.lock().unwrap();
    e.retire(id).map_err(AdminError::Conflict)?;
    tracing::info!(id, seq, actor, "indicators: retired");
    Ok(e.definition(id).cloned().unwrap_or(def))
}

/// When the served model changed (hot swap): its district and street names go to the API and
/// the engine, and the per-datastream district/street cache is dropped (recomputed against the
/// new boundaries as observations arrive). Kept state is not re-bucketed: past inputs stay in
/// the areas they were counted in.
fn refresh_names(live: &LiveState, f: &mut Feeder) {
    let id = live.app.current.load().id.clone();
    if id == f.ds_build {
        return;
    }
    let names = AreaNames::of(&live.app);
    tracing::info!(build = %id, districts = names.districts.len(), streets = names.streets.len(), "indicators: model swapped, district/street names refreshed");
    f.ds.clear();
    f.ds_build = id;
    live.indicators.set_names(names);
}

/// Ticks the engine and pushes the values that changed since the last push.
fn push_tick(live: &LiveState, f: &mut Feeder) {
    refresh_names(live, f);
    let ind = &live.indicators;
    let now = super::now_ms();
    ind.engine.lock().unwrap().tick(now);
    let vals = ind.values_where(now, |_| true, None);
    let mut changed = Vec::new();
    for v in &vals {
        let key = (v.id.clone(), v.area);
        let cur = (v.version, v.value);
        if f.last_pushed.get(&key) != Some(&cur) {
            f.last_pushed.insert(key, cur);
            changed.push(v);
        }
    }
    if !changed.is_empty() && ind.push.receiver_count() > 0 {
        let names = ind.names();
        let values = changed.into_iter().map(|v| Indicators::value_json(&names, v)).collect();
        let _ = ind.push.send(Arc::new(ServerMessage::IndicatorValues { at: ts_from_ms(now), head: ind.head(), values }));
    }
}

// ---------------------------------------------------------------- HTTP

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::Invalid(e) => {
                super::metrics::METRICS.reject("invalid_definition");
                (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"error": e.to_string(), "reason": "invalid_definition", "errors": e.0}))).into_response()
            }
            AdminError::Conflict(e) => {
                super::metrics::METRICS.reject("conflict");
                (StatusCode::CONFLICT, Json(json!({"error": e.to_string(), "reason": "conflict", "errors": e.0}))).into_response()
            }
            AdminError::NotFound(m) => LiveError::not_found(m).into_response(),
            AdminError::Store(e) => LiveError::from(e).into_response(),
        }
    }
}

fn check_params(q: &HashMap<String, String>, what: &str, allowed: &[&str]) -> Result<(), LiveError> {
    for k in q.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(LiveError::bad("bad_query", format!("{what}: unknown parameter '{k}' ({})", allowed.join(", "))));
        }
    }
    Ok(())
}

fn check_theme(q: &HashMap<String, String>) -> Result<Option<String>, LiveError> {
    match q.get("theme") {
        None => Ok(None),
        Some(t) if ::indicators::THEMES.iter().any(|x| x.0 == t.as_str() || x.1 == t.as_str()) => {
            Ok(::indicators::THEMES.iter().find(|x| x.0 == t.as_str() || x.1 == t.as_str()).map(|x| x.0.to_string()))
        }
        Some(t) => Err(LiveError::bad("bad_query", format!("query parameter 'theme': unknown theme '{t}' (one of {})", ::indicators::THEMES.iter().map(|x| x.0).collect::<Vec<_>>().join(", ")))),
    }
}

/// `GET /api/indicators?theme=&state=`: the definitions.
pub async fn list_route(State(live): State<LiveState>, Query(q): Query<HashMap<String, String>>) -> Result<Json<JsonValue>, LiveError> {
    check_params(&q, "GET /api/indicators", &["theme", "state"])?;
    let theme = check_theme(&q)?;
    let state = match q.get("state") {
        None => None,
        Some(s) => Some(DefState::parse(s).ok_or_else(|| LiveError::bad("bad_query", format!("query parameter 'state': '{s}' is not draft, published or retired")))?),
    };
    let e = live.indicators.engine.lock().unwrap();
    let defs: Vec<&Definition> = e.definitions().filter(|d| theme.as_ref().is_none_or(|t| &d.theme == t) && state.is_none_or(|s| d.state == s)).collect();
    Ok(Json(json!({"count": defs.len(), "indicators": defs})))
}

/// `GET /api/indicators/{id}`: one definition with its earlier `versions`.
pub async fn get_route(State(live): State<LiveState>, Path(id): Path<String>) -> Result<Json<JsonValue>, LiveError> {
    let e = live.indicators.engine.lock().unwrap();
    let d = e.definition(&id).ok_or_else(|| LiveError::not_found(format!("no indicator '{id}'")))?;
    let mut v = serde_json::to_value(d).unwrap_or_default();
    v["versions"] = json!(e.versions(&id));
    Ok(Json(v))
}

/// `GET /api/indicators/values?theme=&district=|street=`: current values.
pub async fn values_route(State(live): State<LiveState>, Query(q): Query<HashMap<String, String>>) -> Result<Json<JsonValue>, LiveError> {
    let what = "GET /api/indicators/values";
    check_params(&q, what, &["theme", "district", "street"])?;
    let theme = check_theme(&q)?;
    let ind = &live.indicators;
    let only = ind.area_param(&q, what)?;
    let now = super::now_ms();
    let vals = ind.values_where(now, |d| theme.as_ref().is_none_or(|t| &d.theme == t), only);
    Ok(Json(json!({"at": ts_from_ms(now), "head": ind.head(), "values": ind.values_json(&vals)})))
}

/// `GET /api/indicators/{id}/values`: the city and every district of one indicator.
pub async fn one_values_route(State(live): State<LiveState>, Path(id): Path<String>) -> Result<Json<JsonValue>, LiveError> {
    let ind = &live.indicators;
    if ind.engine.lock().unwrap().definition(&id).is_none() {
        return Err(LiveError::not_found(format!("no indicator '{id}'")));
    }
    let now = super::now_ms();
    let vals = ind.values_where(now, |d| d.id == id, None);
    Ok(Json(json!({"id": id, "at": ts_from_ms(now), "head": ind.head(), "values": ind.values_json(&vals)})))
}

/// `GET /api/indicators/{id}/series?district=&from=&to=&step=`: the kept history resampled.
pub async fn series_route(State(live): State<LiveState>, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Result<Json<JsonValue>, LiveError> {
    let what = format!("GET /api/indicators/{id}/series");
    check_params(&q, &what, &["district", "street", "from", "to", "step"])?;
    let ind = &live.indicators;
    let grain = ind.engine.lock().unwrap().definition(&id).map(|d| d.grain_ms).ok_or_else(|| LiveError::not_found(format!("no indicator '{id}'")))?;
    let area = ind.area_param(&q, &what)?.unwrap_or(Area::City);
    let to = q.get("to").map(|v| super::parse_time("to", v)).transpose()?.unwrap_or_else(super::now_ms);
    let from = q.get("from").map(|v| super::parse_time("from", v)).transpose()?.unwrap_or(to - DAY);
    let step = match q.get("step") {
        None => grain,
        Some(s) => ::indicators::parse_duration(s)
            .or_else(|| s.parse::<i64>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| LiveError::bad("bad_query", format!("{what}: query parameter 'step': '{s}' is not an ISO 8601 duration (PT1H, P1D …) or milliseconds > 0")))?,
    };
    let pts = ind.engine.lock().unwrap().series(&id, area, from, to, step).map_err(|e| match e {
        ::indicators::SeriesError::Unknown(_) => LiveError::not_found(format!("no indicator '{id}'")),
        other => LiveError::bad("bad_range", format!("{what}: {other} (from {}, to {}, step {step} ms; at most 10,000 points)", ts_from_ms(from).to_rfc3339(), ts_from_ms(to).to_rfc3339())),
    })?;
    Ok(Json(json!({"id": id, "area": Indicators::area_json(&ind.names(), area), "step": step, "from": ts_from_ms(from), "to": ts_from_ms(to),
                   "points": pts.iter().map(|(t, v)| json!([ts_from_ms(*t), v])).collect::<Vec<_>>()})))
}

fn body_text(body: Result<Bytes, BytesRejection>, what: &str) -> Result<String, LiveError> {
    let b = body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            LiveError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("{what}: body larger than the limit ({rej})"))
        } else {
            LiveError::bad("malformed_body", format!("{what}: cannot read the body: {rej}"))
        }
    })?;
    String::from_utf8(b.to_vec()).map_err(|e| LiveError::bad("malformed_body", format!("{what}: the body is not UTF-8 TOML ({e})")))
}

/// Who publishes: the API key's name when the request carries one (the auth layer's identity),
/// else `?actor=` (servers embedded without the auth layer), else `admin`.
fn actor_of(id: Option<&crate::auth::Identity>, q: &HashMap<String, String>) -> String {
    match id {
        Some(i) if i.token_id.is_some() => i.name.clone(),
        _ => q.get("actor").cloned().unwrap_or_else(|| "admin".into()),
    }
}

async fn ask(live: &LiveState, a: Admin) -> Result<(), LiveError> {
    live.indicators.admin.send(a).await.map_err(|_| LiveError::new(StatusCode::SERVICE_UNAVAILABLE, "store_error", "the indicator engine is not running"))
}

/// `POST /api/admin/indicators`: the TOML of one `[[indicator]]`; 200 with the definition once
/// it is live, 422 `{errors: [{file, line, field, message}]}`.
pub async fn publish_route(State(live): State<LiveState>, id: Option<axum::Extension<crate::auth::Identity>>, Query(q): Query<HashMap<String, String>>, body: Result<Bytes, BytesRejection>) -> Response {
    let text = match body_text(body, "POST /api/admin/indicators") {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let (tx, rx) = oneshot::channel();
    if let Err(e) = ask(&live, Admin::Publish { text, actor: actor_of(id.as_deref(), &q), reply: tx }).await {
        return e.into_response();
    }
    match rx.await {
        Ok(Ok(d)) => Json(d).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => LiveError::new(StatusCode::SERVICE_UNAVAILABLE, "store_error", "the indicator engine stopped").into_response(),
    }
}

/// `POST /api/admin/indicators/{id}/retire`: 200 with the retired definition, 409 while a
/// derived indicator uses it, 404 for an unknown id.
pub async fn retire_route(State(live): State<LiveState>, who: Option<axum::Extension<crate::auth::Identity>>, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let (tx, rx) = oneshot::channel();
    if let Err(e) = ask(&live, Admin::Retire { id, actor: actor_of(who.as_deref(), &q), reply: tx }).await {
        return e.into_response();
    }
    match rx.await {
        Ok(Ok(d)) => Json(d).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => LiveError::new(StatusCode::SERVICE_UNAVAILABLE, "store_error", "the indicator engine stopped").into_response(),
    }
}

pub fn read_routes() -> axum::Router<LiveState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/indicators", get(list_route))
        .route("/api/indicators/values", get(values_route))
        .route("/api/indicators/{id}", get(get_route))
        .route("/api/indicators/{id}/values", get(one_values_route))
        .route("/api/indicators/{id}/series", get(series_route))
}

/// Admin actions (issue 8 gates this router for the admin role).
pub fn admin_routes() -> axum::Router<LiveState> {
    use axum::routing::post;
    axum::Router::new().route("/api/admin/indicators", post(publish_route)).route("/api/admin/indicators/{id}/retire", post(retire_route))
}

/// Prometheus lines: live inputs fed and their cost.
pub fn metrics_text(ind: &Indicators) -> String {
    let (n, ns) = (ind.fed.load(Ordering::Relaxed), ind.fed_ns.load(Ordering::Relaxed));
    let e = ind.engine.lock().unwrap();
    format!(
        "# HELP citytwin_indicator_inputs_total Inputs fed to the indicator engine since start (live, after the backfill).\n# TYPE citytwin_indicator_inputs_total counter\ncitytwin_indicator_inputs_total {n}\n\
         # HELP citytwin_indicator_feed_seconds_total Time spent feeding them.\n# TYPE citytwin_indicator_feed_seconds_total counter\ncitytwin_indicator_feed_seconds_total {}\n\
         # HELP citytwin_indicator_read_seconds_total Time spent reading new observations from the store for it.\n# TYPE citytwin_indicator_read_seconds_total counter\ncitytwin_indicator_read_seconds_total {}\n\
         # HELP citytwin_indicator_refused_total Inputs refused as stamped in the future.\n# TYPE citytwin_indicator_refused_total counter\ncitytwin_indicator_refused_total {}\n\
         # HELP citytwin_indicator_head Change-log seq the indicator engine has been fed up to.\n# TYPE citytwin_indicator_head gauge\ncitytwin_indicator_head {}\n",
        ns as f64 / 1e9,
        ind.read_ns.load(Ordering::Relaxed) as f64 / 1e9,
        e.refused(),
        ind.head()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_library_is_the_asset_directory() {
        let dir = ::indicators::default_library_dir();
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        files.sort();
        let bundled: Vec<String> = BUNDLED.iter().map(|x| x.0.to_string()).collect();
        assert_eq!(files, bundled, "add new assets/indicators files to BUNDLED");
        for (f, t) in BUNDLED {
            assert_eq!(std::fs::read_to_string(dir.join(f)).unwrap(), *t);
        }
        let lib = load_library(None).unwrap();
        assert_eq!(lib.defs.len(), 66);
    }

    #[test]
    fn every_numeric_sensor_type_maps_onto_the_vocabulary_but_gas_ppm() {
        for t in twin_protocol::sensors::SENSOR_TYPES {
            match map_sensor(t.key) {
                Some((st, prop)) => {
                    assert!(::indicators::SENSOR_TYPES.contains(&st), "{st}");
                    assert!(::indicators::OBSERVED_PROPERTIES.iter().any(|p| p.0 == prop), "{prop}");
                }
                None => assert_eq!(t.key, "gas_ppm"),
            }
        }
        assert_eq!(obs_value(None, Some("trapped")), Some(1.0));
        assert_eq!(obs_value(None, Some("normal")), Some(0.0));
        assert_eq!(obs_value(Some(3.5), None), Some(3.5));
    }
}
