//! IoT sensing (issue 5 item 1): the OGC SensorThings API 1.1 data model and a REST subset under
//! `/api/sta/v1.1/` ([`sta`]), the `$filter` AST → SQL compiler ([`filter`]), city sensor types with
//! UCUM units and valid ranges (`twin_protocol::sensors`), batch ingest over HTTP and MQTT
//! ([`mqtt`]) with per-observation rejects, thresholds → events ([`thresholds`]) and the in-memory
//! latest value per datastream (`GET /api/sensors/latest`). Semantics: docs/LIVE.md "Sensors".

pub mod filter;
pub mod mqtt;
pub mod simulate;
pub mod sta;
pub mod thresholds;

use super::db::{Row, Tx, Val, NewChange};
use super::{LiveError, LiveState};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use thresholds::{Input, ThState};
use twin_protocol::sensors::{sensor_type, LatestValue, ResultKind, SensorType, Thresholds};
use twin_protocol::Topic;

pub const MIGRATIONS: &[&str] = &["
CREATE TABLE sta_things (id BIGINT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, properties TEXT);
CREATE TABLE sta_locations (id BIGINT PRIMARY KEY, thing_id BIGINT, name TEXT NOT NULL, description TEXT NOT NULL, encoding_type TEXT NOT NULL, location TEXT NOT NULL, lon DOUBLE PRECISION, lat DOUBLE PRECISION);
CREATE INDEX sta_locations_thing ON sta_locations (thing_id);
CREATE TABLE sta_sensors (id BIGINT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, encoding_type TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE TABLE sta_observed_properties (id BIGINT PRIMARY KEY, name TEXT NOT NULL, definition TEXT NOT NULL, description TEXT NOT NULL);
CREATE TABLE sta_datastreams (id BIGINT PRIMARY KEY, thing_id BIGINT NOT NULL, sensor_id BIGINT NOT NULL, observed_property_id BIGINT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL, observation_type TEXT NOT NULL, unit TEXT NOT NULL, sensor_type TEXT NOT NULL, properties TEXT, lon DOUBLE PRECISION, lat DOUBLE PRECISION);
CREATE INDEX sta_datastreams_thing ON sta_datastreams (thing_id);
CREATE TABLE sta_observations (id BIGINT PRIMARY KEY, datastream_id BIGINT NOT NULL, phenomenon_ms BIGINT NOT NULL, result_time_ms BIGINT, result DOUBLE PRECISION, result_str TEXT);
CREATE INDEX sta_observations_ds_time ON sta_observations (datastream_id, phenomenon_ms);
CREATE TABLE sta_threshold_state (datastream_id BIGINT PRIMARY KEY, level BIGINT NOT NULL, pending_since_ms BIGINT, last_ms BIGINT, event_id BIGINT, episodes BIGINT NOT NULL, updated_ms BIGINT NOT NULL);
"];

/// What the ingest path needs of a datastream (immutable once created, so cached).
#[derive(Debug, Clone)]
pub struct DsMeta {
    pub id: i64,
    pub name: String,
    pub ty: &'static SensorType,
    pub thresholds: Option<Thresholds>,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
}

#[derive(Default)]
pub struct Counters {
    pub accepted: Mutex<BTreeMap<&'static str, u64>>,
    pub rejected: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    pub mqtt_messages: AtomicU64,
    pub mqtt_malformed: AtomicU64,
    pub mqtt_connects: AtomicU64,
    pub mqtt_connected: AtomicU64,
    pub events_raised: AtomicU64,
}

/// The sensors module's in-process state.
#[derive(Default)]
pub struct Sensors {
    pub ds: RwLock<HashMap<i64, Arc<DsMeta>>>,
    pub latest: RwLock<HashMap<i64, LatestValue>>,
    pub counters: Counters,
}

impl Sensors {
    pub fn reject(&self, transport: &'static str, reason: &'static str) {
        super::metrics::METRICS.reject(reason);
        *self.counters.rejected.lock().unwrap().entry((transport, reason)).or_default() += 1;
    }
    pub fn metrics_text(&self) -> String {
        use std::fmt::Write;
        let c = &self.counters;
        let mut s = String::from("# HELP citytwin_sensor_observations_total Observations stored, by transport.\n# TYPE citytwin_sensor_observations_total counter\n");
        for (t, n) in c.accepted.lock().unwrap().iter() {
            let _ = writeln!(s, "citytwin_sensor_observations_total{{transport=\"{t}\"}} {n}");
        }
        s.push_str("# HELP citytwin_sensor_rejected_total Observations or messages refused, by transport and reason.\n# TYPE citytwin_sensor_rejected_total counter\n");
        for ((t, r), n) in c.rejected.lock().unwrap().iter() {
            let _ = writeln!(s, "citytwin_sensor_rejected_total{{transport=\"{t}\",reason=\"{r}\"}} {n}");
        }
        let _ = write!(
            s,
            "# HELP citytwin_mqtt_messages_total MQTT messages received.\n# TYPE citytwin_mqtt_messages_total counter\ncitytwin_mqtt_messages_total {}\n\
             # HELP citytwin_mqtt_malformed_total MQTT messages with a malformed topic or payload.\n# TYPE citytwin_mqtt_malformed_total counter\ncitytwin_mqtt_malformed_total {}\n\
             # HELP citytwin_mqtt_connects_total MQTT (re)connections.\n# TYPE citytwin_mqtt_connects_total counter\ncitytwin_mqtt_connects_total {}\n\
             # HELP citytwin_mqtt_connected Whether the MQTT client is connected.\n# TYPE citytwin_mqtt_connected gauge\ncitytwin_mqtt_connected {}\n\
             # HELP citytwin_sensor_events_total Events raised by sensor thresholds in this process.\n# TYPE citytwin_sensor_events_total counter\ncitytwin_sensor_events_total {}\n",
            c.mqtt_messages.load(Ordering::Relaxed),
            c.mqtt_malformed.load(Ordering::Relaxed),
            c.mqtt_connects.load(Ordering::Relaxed),
            c.mqtt_connected.load(Ordering::Relaxed),
            c.events_raised.load(Ordering::Relaxed),
        );
        s
    }
}

/// Migrates the sensors tables and loads the latest values. Called from `live::start`.
pub async fn start(db: &super::db::Db) -> anyhow::Result<Arc<Sensors>> {
    use anyhow::Context;
    db.migrate("sensors", MIGRATIONS).await.context("live store: sensors schema")?;
    let s = Arc::new(Sensors::default());
    let rows = db
        .read(|c| {
            c.query(
                "SELECT o.datastream_id, o.phenomenon_ms, o.result, o.result_str, d.name, d.sensor_type, d.lon, d.lat, COALESCE(t.level, 0) \
                 FROM sta_observations o JOIN (SELECT datastream_id, MAX(phenomenon_ms) AS m FROM sta_observations GROUP BY datastream_id) x \
                   ON o.datastream_id = x.datastream_id AND o.phenomenon_ms = x.m \
                 JOIN sta_datastreams d ON d.id = o.datastream_id LEFT JOIN sta_threshold_state t ON t.datastream_id = o.datastream_id",
                &[],
            )
        })
        .await?;
    let mut latest = s.latest.write().unwrap();
    for r in rows {
        let Some(ty) = sensor_type(r.str(5)) else { continue };
        let result = match r.opt_f64(2) {
            Some(v) => json!(v),
            None => json!(r.opt_str(3)),
        };
        latest.insert(
            r.i64(0),
            LatestValue { datastream: r.i64(0), name: r.str(4).into(), sensor_type: ty.key.into(), unit: ty.unit_symbol.into(), lon: r.opt_f64(6), lat: r.opt_f64(7), result, phenomenon_time: twin_protocol::ts_from_ms(r.i64(1)), level: r.i64(8) as u8 },
        );
    }
    let n = latest.len();
    drop(latest);
    tracing::info!(datastreams = n, "sensors: latest values loaded");
    Ok(s)
}

/// One observation to ingest (parsed by `twin_protocol::payload`).
pub use twin_protocol::payload::ObsIn;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemError {
    pub index: usize,
    pub datastream: Option<i64>,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct IngestReport {
    pub accepted: usize,
    pub rejected: usize,
    /// Observation id per input index (`None`: rejected).
    #[serde(skip)]
    pub ids: Vec<Option<i64>>,
    pub errors: Vec<ItemError>,
    /// Events raised by thresholds in this batch.
    pub events: Vec<i64>,
}

fn ds_from_row(r: &Row) -> Option<DsMeta> {
    let ty = sensor_type(r.str(2))?;
    let props: Value = r.opt_str(3).and_then(|p| serde_json::from_str(p).ok()).unwrap_or(Value::Null);
    let thresholds = props.get("thresholds").and_then(|t| serde_json::from_value(t.clone()).ok());
    Some(DsMeta { id: r.i64(0), name: r.str(1).into(), ty, thresholds, lon: r.opt_f64(4), lat: r.opt_f64(5) })
}

/// Checks one observation's result against its type; the numeric or string column value.
/// A checked result: the numeric or the string column value.
type Checked = (Option<f64>, Option<String>);

fn check_result(ty: &SensorType, v: &Value) -> Result<Checked, (&'static str, String)> {
    match ty.result {
        ResultKind::Number { min, max } => {
            let x = v.as_f64().ok_or_else(|| ("invalid_observation", format!("result {v} is not a number ({} in {})", ty.key, ty.unit_symbol)))?;
            if !x.is_finite() || x < min || x > max {
                return Err(("out_of_range", format!("result {x} {} outside the valid range [{min}, {max}] of {}", ty.unit_symbol, ty.key)));
            }
            Ok((Some(x), None))
        }
        ResultKind::Enum(vals) => {
            let s = v.as_str().ok_or_else(|| ("invalid_observation", format!("result {v} is not a string (one of {})", vals.join(", "))))?;
            if !vals.contains(&s) {
                return Err(("out_of_range", format!("result '{s}' is not a valid {} value (one of {})", ty.key, vals.join(", "))));
            }
            Ok((None, Some(s.to_string())))
        }
    }
}

fn severity_for(level: u8) -> twin_protocol::Severity {
    if level >= twin_protocol::sensors::LEVEL_ALARM {
        twin_protocol::Severity::High
    } else {
        twin_protocol::Severity::Medium
    }
}

/// Reserves `n` consecutive ids of the named counter; returns the first.
fn reserve_ids(tx: &mut Tx, counter: &str, n: i64) -> super::db::DbResult<i64> {
    if let Some(r) = tx.query_one("UPDATE counters SET v = v + $2 WHERE name = $1 RETURNING v", &[counter.into(), n.into()])? {
        return Ok(r.i64(0) - n + 1);
    }
    tx.exec("INSERT INTO counters (name, v) VALUES ($1, $2)", &[counter.into(), n.into()])?;
    Ok(1)
}

const CHUNK: usize = 256;

/// Stores a batch in one transaction: valid observations are inserted (multi-row INSERTs), each
/// invalid one is reported with a reason; thresholds are stepped and raise/clear events; one
/// `sensors` change is appended for the whole batch. Updates the latest values after COMMIT.
pub async fn ingest(live: &LiveState, obs: Vec<ObsIn>, transport: &'static str) -> Result<IngestReport, LiveError> {
    let l = live.clone();
    let (report, latest) = live
        .db
        .write(move |tx: &mut Tx| -> Result<(IngestReport, Vec<LatestValue>), LiveError> { ingest_tx(&l, tx, obs) })
        .await?;
    let s = &live.sensors;
    for e in &report.errors {
        s.reject(transport, e.reason);
    }
    *s.counters.accepted.lock().unwrap().entry(transport).or_default() += report.accepted as u64;
    s.counters.events_raised.fetch_add(report.events.len() as u64, Ordering::Relaxed);
    let mut lat = s.latest.write().unwrap();
    for v in latest {
        match lat.get(&v.datastream) {
            Some(old) if old.phenomenon_time > v.phenomenon_time => {}
            _ => {
                lat.insert(v.datastream, v);
            }
        }
    }
    Ok(report)
}

fn ingest_tx(live: &LiveState, tx: &mut Tx, obs: Vec<ObsIn>) -> Result<(IngestReport, Vec<LatestValue>), LiveError> {
    let now = tx.now_ms();
    let mut rep = IngestReport { ids: vec![None; obs.len()], ..Default::default() };
    // Datastreams of the batch (cache, else the store).
    let mut metas: HashMap<i64, Option<Arc<DsMeta>>> = HashMap::new();
    for o in &obs {
        if metas.contains_key(&o.datastream) {
            continue;
        }
        let cached = live.sensors.ds.read().unwrap().get(&o.datastream).cloned();
        let m = match cached {
            Some(m) => Some(m),
            None => {
                let m = tx.query_one("SELECT id, name, sensor_type, properties, lon, lat FROM sta_datastreams WHERE id = $1", &[o.datastream.into()])?.and_then(|r| ds_from_row(&r)).map(Arc::new);
                if let Some(m) = &m {
                    live.sensors.ds.write().unwrap().insert(m.id, m.clone());
                }
                m
            }
        };
        metas.insert(o.datastream, m);
    }
    // Validate.
    struct Good {
        idx: usize,
        ds: Arc<DsMeta>,
        t: i64,
        rt: Option<i64>,
        num: Option<f64>,
        txt: Option<String>,
    }
    let mut good: Vec<Good> = Vec::with_capacity(obs.len());
    for (idx, o) in obs.into_iter().enumerate() {
        let Some(ds) = metas.get(&o.datastream).cloned().flatten() else {
            rep.errors.push(ItemError { index: idx, datastream: Some(o.datastream), reason: "unknown_datastream", message: format!("observation {idx}: no Datastream({})", o.datastream) });
            continue;
        };
        match check_result(ds.ty, &o.result) {
            Ok((num, txt)) => good.push(Good { idx, ds, t: o.phenomenon_ms.unwrap_or(now), rt: o.result_time_ms, num, txt }),
            Err((reason, m)) => rep.errors.push(ItemError { index: idx, datastream: Some(o.datastream), reason, message: format!("observation {idx} (Datastream({})): {m}", o.datastream) }),
        }
    }
    rep.rejected = rep.errors.len();
    rep.accepted = good.len();
    if good.is_empty() {
        return Ok((rep, vec![]));
    }
    // Insert.
    let first = reserve_ids(tx, "sta_observations", good.len() as i64)?;
    for (ci, chunk) in good.chunks(CHUNK).enumerate() {
        let mut sql = String::from("INSERT INTO sta_observations (id, datastream_id, phenomenon_ms, result_time_ms, result, result_str) VALUES ");
        let mut params: Vec<Val> = Vec::with_capacity(chunk.len() * 6);
        for (j, g) in chunk.iter().enumerate() {
            let id = first + (ci * CHUNK + j) as i64;
            rep.ids[g.idx] = Some(id);
            let b = params.len();
            if j > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("(${},${},${},${},${},${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6));
            params.extend([id.into(), g.ds.id.into(), g.t.into(), g.rt.into(), g.num.into(), g.txt.clone().into()]);
        }
        tx.exec(&sql, &params)?;
    }
    // Latest per datastream and thresholds, in phenomenon-time order per datastream.
    let mut by_ds: BTreeMap<i64, Vec<&Good>> = BTreeMap::new();
    for g in &good {
        by_ds.entry(g.ds.id).or_default().push(g);
    }
    let mut latest = Vec::with_capacity(by_ds.len());
    let mut summary = Vec::with_capacity(by_ds.len());
    for (id, mut gs) in by_ds {
        gs.sort_by_key(|g| (g.t, g.idx));
        let ds = gs[0].ds.clone();
        let mut level = 0u8;
        if let Some(th) = &ds.thresholds {
            let row = tx.query_one("SELECT level, pending_since_ms, last_ms, event_id, episodes FROM sta_threshold_state WHERE datastream_id = $1", &[id.into()])?;
            let mut st = ThState::default();
            let (mut event_id, mut episodes) = (None, 0i64);
            if let Some(r) = &row {
                st = ThState { level: r.i64(0) as u8, pending_since: r.opt_i64(1), last_ms: r.opt_i64(2) };
                event_id = r.opt_i64(3);
                episodes = r.i64(4);
            }
            for g in &gs {
                let input = match (&g.num, &g.txt) {
                    (Some(x), _) => Input::Num(*x),
                    (None, Some(s)) => Input::Str(s),
                    _ => continue,
                };
                let Some((from, to)) = thresholds::step(th, &mut st, g.t, input) else { continue };
                let value = g.num.map(|x| json!(x)).unwrap_or_else(|| json!(g.txt));
                if from == 0 {
                    episodes += 1;
                    let e = raise_event(live, tx, &ds, to, &value, g.t, episodes)?;
                    rep.events.push(e);
                    event_id = Some(e);
                }
                let kind = if to == 0 { "threshold_cleared" } else { "threshold_level" };
                tx.append_change(NewChange {
                    topic: Topic::Sensors,
                    kind: kind.into(),
                    entity: id.to_string(),
                    lon: ds.lon,
                    lat: ds.lat,
                    payload: json!({"datastream": id, "from": from, "to": to, "result": value, "phenomenon_time": twin_protocol::ts_from_ms(g.t), "event": event_id}),
                })?;
                if to == 0 {
                    event_id = None;
                }
            }
            tx.exec(
                "INSERT INTO sta_threshold_state (datastream_id, level, pending_since_ms, last_ms, event_id, episodes, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (datastream_id) DO UPDATE SET level = excluded.level, pending_since_ms = excluded.pending_since_ms, last_ms = excluded.last_ms, \
                 event_id = excluded.event_id, episodes = excluded.episodes, updated_ms = excluded.updated_ms",
                &[id.into(), (st.level as i64).into(), st.pending_since.into(), st.last_ms.into(), event_id.into(), episodes.into(), now.into()],
            )?;
            level = st.level;
        }
        let last = gs.last().unwrap();
        let result = last.num.map(|x| json!(x)).unwrap_or_else(|| json!(last.txt));
        summary.push(json!({"datastream": id, "n": gs.len(), "result": result, "phenomenon_time": twin_protocol::ts_from_ms(last.t), "level": level}));
        latest.push(LatestValue { datastream: id, name: ds.name.clone(), sensor_type: ds.ty.key.into(), unit: ds.ty.unit_symbol.into(), lon: ds.lon, lat: ds.lat, result, phenomenon_time: twin_protocol::ts_from_ms(last.t), level });
    }
    tx.append_change(NewChange {
        topic: Topic::Sensors,
        kind: "observations".into(),
        entity: "batch".into(),
        lon: None,
        lat: None,
        payload: json!({"count": rep.accepted, "datastreams": summary}),
    })?;
    Ok((rep, latest))
}

fn raise_event(live: &LiveState, tx: &mut Tx, ds: &DsMeta, level: u8, value: &Value, t_ms: i64, episode: i64) -> Result<i64, LiveError> {
    let category: twin_protocol::Category = serde_json::from_value(json!(ds.ty.category)).unwrap_or(twin_protocol::Category::Other);
    let (lon, lat) = (ds.lon.unwrap_or(0.0), ds.lat.unwrap_or(0.0));
    let district = super::events::district_of(live, lon, lat);
    let word = if level >= 2 { "alarm" } else { "warning" };
    let n = twin_protocol::NewEvent {
        category,
        severity: Some(severity_for(level)),
        source: twin_protocol::EventSource::SensorAlarm,
        title: format!("{} {word}: {} {}", ds.ty.name_en, value, ds.ty.unit_symbol).chars().take(200).collect(),
        description: format!("{} ({}) — Datastream({}) '{}' reached the {word} level at {}", ds.ty.name_zh, ds.ty.key, ds.id, ds.name, twin_protocol::ts_from_ms(t_ms).to_rfc3339()),
        location: twin_protocol::LonLat { lon, lat },
        actor: format!("sensor:{}", ds.id),
        reported_at: Some(twin_protocol::ts_from_ms(t_ms)),
        external_ref: Some(format!("datastream:{}:episode:{episode}", ds.id)),
    };
    let e = super::events::create_in_tx(tx, &live.cats, n, district)?;
    Ok(e.id)
}

/// `GET /api/sensors/latest?bbox=w,s,e,n&type=key`: latest value per datastream (memory).
pub async fn latest_route(
    axum::extract::State(live): axum::extract::State<LiveState>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, LiveError> {
    let bbox = match q.get("bbox") {
        None => None,
        Some(b) => Some(twin_protocol::Bbox::parse(b).ok_or_else(|| LiveError::bad("bad_query", format!("query parameter 'bbox': '{b}' is not w,s,e,n in degrees")))?),
    };
    let ty = match q.get("type") {
        None => None,
        Some(t) => Some(sensor_type(t).ok_or_else(|| {
            let keys: Vec<&str> = twin_protocol::sensors::SENSOR_TYPES.iter().map(|t| t.key).collect();
            LiveError::bad("bad_query", format!("query parameter 'type': unknown sensor type '{t}' (one of {})", keys.join(", ")))
        })?),
    };
    let lat = live.sensors.latest.read().unwrap();
    let mut v: Vec<&LatestValue> = lat
        .values()
        .filter(|l| ty.is_none_or(|t| t.key == l.sensor_type))
        .filter(|l| bbox.is_none_or(|b| matches!((l.lon, l.lat), (Some(x), Some(y)) if b.contains(x, y))))
        .collect();
    v.sort_by_key(|l| l.datastream);
    Ok(axum::Json(json!({"count": v.len(), "value": v})))
}

/// `GET /api/sensors/types`: the city sensor types, units and valid ranges.
pub async fn types_route() -> axum::Json<Value> {
    let v: Vec<Value> = twin_protocol::sensors::SENSOR_TYPES
        .iter()
        .map(|t| {
            let (min, max, values) = match t.result {
                ResultKind::Number { min, max } => (json!(min), json!(max), Value::Null),
                ResultKind::Enum(v) => (Value::Null, Value::Null, json!(v)),
            };
            json!({"key": t.key, "name_zh": t.name_zh, "name_en": t.name_en, "unitOfMeasurement": {"name": t.unit_name, "symbol": t.unit_symbol, "definition": format!("http://unitsofmeasure.org/ucum.html#{}", t.unit_ucum)},
                   "ucum": t.unit_ucum, "min": min, "max": max, "values": values, "category": t.category, "observationType": t.observation_type})
        })
        .collect();
    axum::Json(json!({"value": v}))
}

/// `POST /api/sensors/observations`: a JSON array of `{"datastream", "result", "phenomenonTime"?,
/// "resultTime"?}`; answers the accepted count and per-item errors (201, or 422 when none was
/// accepted).
pub async fn post_simple_route(
    axum::extract::State(live): axum::extract::State<LiveState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(axum::http::StatusCode, axum::Json<Value>), LiveError> {
    let items: Vec<Value> = super::parse_body(body, "POST /api/sensors/observations")?;
    let mut obs = Vec::with_capacity(items.len());
    let mut pre_errors = Vec::new();
    let mut index_map = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        match twin_protocol::payload::simple_observation(i, it) {
            Ok(o) => {
                obs.push(o);
                index_map.push(i);
            }
            Err((ds, message)) => pre_errors.push(ItemError { index: i, datastream: ds, reason: "invalid_observation", message }),
        }
    }
    for e in &pre_errors {
        live.sensors.reject("http", e.reason);
    }
    let mut rep = ingest(&live, obs, "http").await?;
    for e in &mut rep.errors {
        e.index = index_map[e.index];
    }
    rep.errors.extend(pre_errors);
    rep.errors.sort_by_key(|e| e.index);
    rep.rejected = rep.errors.len();
    let status = if rep.accepted == 0 && rep.rejected > 0 { axum::http::StatusCode::UNPROCESSABLE_ENTITY } else { axum::http::StatusCode::CREATED };
    Ok((status, axum::Json(json!(rep))))
}

/// Refuses a body whose declared `Content-Length` is over the limit before reading any of it (413).
pub async fn refuse_declared_oversize(axum::extract::State(limit): axum::extract::State<usize>, req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = req.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        return LiveError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("{} {}: body of {n} bytes is larger than the limit of {limit} bytes", req.method(), req.uri().path())).into_response();
    }
    next.run(req).await
}
