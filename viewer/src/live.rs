//! The live side of the cockpit: a background thread reads the server's `/api/stream` (SSE, one
//! JSON `twin_protocol::ServerMessage` per `data:` line) and polls `/api/indicators/values` and
//! `/api/sensors/latest`; the render loop drains what arrived into a [`LiveModel`] each frame, so
//! no I/O ever runs on the render thread.
//!
//! Reconnect: when the stream ends or fails (server stopped, `resync`), the thread reports
//! `Reconnecting`, waits with backoff (0.25 s doubling to 5 s) and reconnects with
//! `since = last seq received` (deltas resume where they stopped; no snapshot); a `resync` after a
//! `since` that the server can no longer serve falls back to a fresh snapshot. The model keeps what
//! it has meanwhile, so the view never goes blank.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};
use twin_protocol::{Event, ServerMessage, Topic};

/// What the I/O thread hands to the render loop.
#[derive(Debug)]
pub enum Feed {
    /// connected (after `hello`), with the server's head seq
    Connected { head: i64, resumed_from: Option<i64> },
    /// the stream is down; the thread retries after `retry_in`
    Reconnecting { error: String, retry_in: Duration },
    Msg(ServerMessage),
    Sensors(Vec<twin_protocol::sensors::LatestValue>),
    /// `/api/indicators/values` (Err: unavailable, with why)
    Indicators(Result<Vec<Value>, String>),
}

/// A unit as drawn: position now, and its route when the server sends one — the server's
/// `UnitRoute` object (`route: {geometry: [[lon, lat], …], vertex_time_s, depart_at, eta_at, …}`,
/// docs/LIVE.md), or a bare `route: [[lon, lat], …]` with `depart_at`/`eta_at` (RFC 3339) or
/// `eta_s` beside it; without them the unit stands at `position`.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitView {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub status: String,
    pub lon: f64,
    pub lat: f64,
    pub route: Option<Vec<[f64; 2]>>,
    pub depart_ms: Option<i64>,
    pub eta_ms: Option<i64>,
    /// Seconds from departure at each route vertex (the server's `vertex_time_s`): the unit's
    /// position follows the road speeds, not just the length share.
    pub vertex_time_s: Option<Vec<f64>>,
}

impl UnitView {
    pub fn from_json(v: &Value) -> Option<UnitView> {
        let ts_in = |o: &Value, k: &str| o.get(k).and_then(|t| t.as_str()).and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| t.timestamp_millis());
        let ts = |k: &str| ts_in(v, k);
        let (route, depart_ms, eta_ms, vertex_time_s) = match v.get("route") {
            // The server's UnitRoute.
            Some(r) if r.is_object() => {
                let geom = r.get("geometry").and_then(|g| serde_json::from_value::<Vec<[f64; 2]>>(g.clone()).ok()).filter(|g| g.len() >= 2);
                let times = r.get("vertex_time_s").and_then(|t| serde_json::from_value::<Vec<f64>>(t.clone()).ok());
                let times = times.filter(|t| geom.as_ref().is_some_and(|g| g.len() == t.len()));
                (geom, ts_in(r, "depart_at"), ts_in(r, "eta_at"), times)
            }
            r => {
                let route = r.and_then(|r| serde_json::from_value::<Vec<[f64; 2]>>(r.clone()).ok()).filter(|r| r.len() >= 2);
                let depart_ms = ts("depart_at").or_else(|| ts("departed_at"));
                let eta_ms = ts("eta_at").or_else(|| ts("eta")).or_else(|| Some(depart_ms? + (v.get("eta_s")?.as_f64()? * 1e3) as i64));
                (route, depart_ms, eta_ms, None)
            }
        };
        Some(UnitView {
            id: v.get("id")?.as_i64()?,
            kind: v.get("kind")?.as_str()?.to_string(),
            name: v.get("name").and_then(|n| n.as_str()).unwrap_or("").to_string(),
            status: v.get("status")?.as_str()?.to_string(),
            lon: v.get("position")?.get("lon")?.as_f64()?,
            lat: v.get("position")?.get("lat")?.as_f64()?,
            route,
            depart_ms,
            eta_ms,
            vertex_time_s,
        })
    }

    /// Where the unit is at `now_ms`: along its route by the fraction of its travel time elapsed
    /// (by length), else its reported position.
    pub fn position_at(&self, now_ms: i64) -> (f64, f64) {
        let (Some(r), Some(d), Some(e)) = (&self.route, self.depart_ms, self.eta_ms) else { return (self.lon, self.lat) };
        if !matches!(self.status.as_str(), "en_route" | "returning") || e <= d {
            return (self.lon, self.lat);
        }
        let f = ((now_ms - d) as f64 / (e - d) as f64).clamp(0.0, 1.0);
        match &self.vertex_time_s {
            Some(t) if t.last().is_some_and(|&total| total > 0.0) => point_at_time(r, t, f * t[t.len() - 1]),
            _ => point_along(r, f),
        }
    }
}

/// The point `t` seconds along a polyline whose vertices are reached at `times` (non-decreasing,
/// same length as `r`), linear within a segment.
pub fn point_at_time(r: &[[f64; 2]], times: &[f64], t: f64) -> (f64, f64) {
    for (w, tw) in r.windows(2).zip(times.windows(2)) {
        if t <= tw[1] {
            let span = tw[1] - tw[0];
            let u = if span > 0.0 { ((t - tw[0]) / span).clamp(0.0, 1.0) } else { 1.0 };
            return (w[0][0] + (w[1][0] - w[0][0]) * u, w[0][1] + (w[1][1] - w[0][1]) * u);
        }
    }
    let last = r[r.len() - 1];
    (last[0], last[1])
}

/// The point at fraction `f` (0…1) of a polyline's length (lon/lat, local flat metric).
pub fn point_along(r: &[[f64; 2]], f: f64) -> (f64, f64) {
    let k = r[0][1].to_radians().cos();
    let seg = |a: [f64; 2], b: [f64; 2]| (((b[0] - a[0]) * k).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
    let total: f64 = r.windows(2).map(|w| seg(w[0], w[1])).sum();
    if total <= 0.0 {
        return (r[0][0], r[0][1]);
    }
    let mut left = f.clamp(0.0, 1.0) * total;
    for w in r.windows(2) {
        let l = seg(w[0], w[1]);
        if left <= l && l > 0.0 {
            let t = left / l;
            return (w[0][0] + (w[1][0] - w[0][0]) * t, w[0][1] + (w[1][1] - w[0][1]) * t);
        }
        left -= l;
    }
    let p = r[r.len() - 1];
    (p[0], p[1])
}

#[derive(Debug, Clone, PartialEq)]
pub struct SensorView {
    pub datastream: i64,
    pub name: String,
    pub sensor_type: String,
    pub lon: f64,
    pub lat: f64,
    pub level: u8,
    pub result: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    Connecting,
    Connected,
    Reconnecting,
}

/// Everything live the viewer knows, built from the feed. Pure: tested without a server.
#[derive(Debug)]
pub struct LiveModel {
    pub events: BTreeMap<i64, Event>,
    pub units: BTreeMap<i64, UnitView>,
    pub sensors: BTreeMap<i64, SensorView>,
    pub last_seq: Option<i64>,
    pub state: StreamState,
    pub last_error: Option<String>,
    /// connections after the first one
    pub reconnects: u32,
    pub connects: u32,
    pub snapshots: u32,
    pub deltas: u64,
    pub resyncs: u32,
    pub stale_deltas: u64,
    pub head: Option<i64>,
    /// when each event was first seen (markers pulse while new)
    pub first_seen: HashMap<i64, Instant>,
    /// indicator values by (id, area key "city" / district index)
    pub indicators: BTreeMap<(String, String), Value>,
    pub indicators_error: Option<String>,
    pub indicators_polled: bool,
    /// the newest alarms (sensor level 2, events of severity ≥ 3), newest first
    pub alarms: Vec<(Instant, String)>,
}

impl Default for LiveModel {
    fn default() -> Self {
        LiveModel {
            events: BTreeMap::new(),
            units: BTreeMap::new(),
            sensors: BTreeMap::new(),
            last_seq: None,
            state: StreamState::Connecting,
            last_error: None,
            reconnects: 0,
            connects: 0,
            snapshots: 0,
            deltas: 0,
            resyncs: 0,
            stale_deltas: 0,
            head: None,
            first_seen: HashMap::new(),
            indicators: BTreeMap::new(),
            indicators_error: None,
            indicators_polled: false,
            alarms: vec![],
        }
    }
}

fn area_key(v: &Value) -> String {
    match v.get("area") {
        Some(Value::String(s)) => s.clone(),
        // a street area also names its district: key it apart from the district's own value
        Some(a) => match (a.get("street"), a.get("district")) {
            (Some(st), _) => format!("street:{st}"),
            (None, Some(d)) => d.to_string(),
            (None, None) => a.to_string(),
        },
        None => "city".into(),
    }
}

impl LiveModel {
    pub fn apply(&mut self, f: Feed) {
        match f {
            Feed::Connected { head, .. } => {
                if self.connects > 0 {
                    self.reconnects += 1;
                }
                self.connects += 1;
                self.state = StreamState::Connected;
                self.head = Some(head);
                self.last_error = None;
            }
            Feed::Reconnecting { error, .. } => {
                self.state = StreamState::Reconnecting;
                self.last_error = Some(error);
            }
            Feed::Sensors(v) => {
                for s in v {
                    let (Some(lon), Some(lat)) = (s.lon, s.lat) else { continue };
                    self.sensors.insert(
                        s.datastream,
                        SensorView { datastream: s.datastream, name: s.name, sensor_type: s.sensor_type, lon, lat, level: s.level, result: s.result },
                    );
                }
            }
            Feed::Indicators(Ok(vals)) => {
                self.indicators_polled = true;
                self.indicators_error = None;
                for v in vals {
                    if let Some(id) = v.get("id").and_then(|i| i.as_str()) {
                        self.indicators.insert((id.to_string(), area_key(&v)), v.clone());
                    }
                }
            }
            Feed::Indicators(Err(e)) => {
                self.indicators_polled = true;
                self.indicators_error = Some(e);
            }
            Feed::Msg(m) => self.apply_msg(m),
        }
    }

    fn apply_msg(&mut self, m: ServerMessage) {
        match m {
            ServerMessage::Hello { head, .. } => self.head = Some(head),
            ServerMessage::Snapshot { seq, events, units, sensors, indicators } => {
                self.merge_indicator_values(&indicators);
                self.snapshots += 1;
                let now = Instant::now();
                self.events = events.into_iter().filter(|e| !e.state.is_terminal()).map(|e| (e.id, e)).collect();
                for id in self.events.keys() {
                    self.first_seen.entry(*id).or_insert(now);
                }
                self.units = units.iter().filter_map(|u| serde_json::to_value(u).ok()).filter_map(|u| UnitView::from_json(&u)).map(|u| (u.id, u)).collect();
                let _ = sensors; // the server sends sensors through /api/sensors/latest
                // a fresh viewer starts its ticker with the open severe events, newest first
                if self.alarms.is_empty() {
                    let mut severe: Vec<&Event> = self.events.values().filter(|e| (e.severity as u8) >= 3).collect();
                    severe.sort_by(|a, b| b.reported_at.cmp(&a.reported_at).then(b.id.cmp(&a.id)));
                    self.alarms = severe.iter().take(20).map(|e| (now, format!("{} #{} {}", e.category.name_zh(), e.id, e.title))).collect();
                }
                self.last_seq = Some(seq);
            }
            ServerMessage::Delta(c) => {
                if self.last_seq.is_some_and(|s| c.seq <= s) {
                    self.stale_deltas += 1;
                    return;
                }
                self.last_seq = Some(c.seq);
                self.head = Some(self.head.unwrap_or(0).max(c.seq));
                self.deltas += 1;
                match c.topic {
                    Topic::Events => {
                        if let Some(e) = c.payload.get("event").and_then(|e| serde_json::from_value::<Event>(e.clone()).ok()) {
                            if e.state.is_terminal() {
                                self.events.remove(&e.id);
                                self.first_seen.remove(&e.id);
                            } else {
                                if c.kind == "created" && (e.severity as u8) >= 3 {
                                    self.alarm(format!("{} #{} {}", e.category.name_zh(), e.id, e.title));
                                }
                                self.first_seen.entry(e.id).or_insert_with(Instant::now);
                                self.events.insert(e.id, e);
                            }
                        }
                    }
                    Topic::Units => {
                        if let Some(u) = c.payload.get("unit").and_then(UnitView::from_json) {
                            self.units.insert(u.id, u);
                        }
                    }
                    Topic::Sensors => self.apply_sensor_change(&c),
                    Topic::Indicators => {
                        if let Some(vals) = c.payload.get("values").and_then(|v| v.as_array()) {
                            self.merge_indicator_values(vals);
                        }
                    }
                }
            }
            // Derived pushes (no seq): the values that changed, merged by (id, area).
            ServerMessage::IndicatorValues { values, .. } => self.merge_indicator_values(&values),
            ServerMessage::Resync { .. } => self.resyncs += 1,
            ServerMessage::Ping { head } => self.head = Some(head),
            ServerMessage::Error { message } => self.last_error = Some(message),
        }
    }

    /// Indicator values (`{id, area, value, …}` as `/api/indicators/values` serves them) replace
    /// the kept value of the same indicator and area.
    fn merge_indicator_values(&mut self, vals: &[Value]) {
        for v in vals {
            if let Some(id) = v.get("id").and_then(|i| i.as_str()) {
                self.indicators.insert((id.to_string(), area_key(v)), v.clone());
            }
        }
    }

    fn apply_sensor_change(&mut self, c: &twin_protocol::Change) {
        let level_of = |v: &Value| v.get("level").and_then(|l| l.as_u64()).map(|l| l.min(2) as u8);
        if let Some(ds) = c.payload.get("datastreams").and_then(|d| d.as_array()) {
            for d in ds {
                let Some(id) = d.get("datastream").and_then(|i| i.as_i64()) else { continue };
                if let Some(s) = self.sensors.get_mut(&id) {
                    if let Some(l) = level_of(d) {
                        s.level = l;
                    }
                    if let Some(r) = d.get("result") {
                        s.result = r.clone();
                    }
                }
            }
            return;
        }
        let Ok(id) = c.entity.parse::<i64>() else { return };
        // threshold changes carry {datastream, from, to, result, …}
        let level = if c.kind == "threshold_cleared" {
            Some(0)
        } else {
            c.payload.get("to").and_then(|l| l.as_u64()).map(|l| l.min(2) as u8).or_else(|| level_of(&c.payload))
        };
        if let Some(l) = level {
            if let Some(s) = self.sensors.get_mut(&id) {
                s.level = l;
                if l == 2 {
                    let msg = format!("{} {}", s.sensor_type, s.name);
                    self.alarm(msg);
                }
            } else if let (Some(lon), Some(lat)) = (c.lon, c.lat) {
                self.sensors.insert(id, SensorView { datastream: id, name: String::new(), sensor_type: String::new(), lon, lat, level: l, result: Value::Null });
            }
        }
    }

    fn alarm(&mut self, s: String) {
        self.alarms.insert(0, (Instant::now(), s));
        self.alarms.truncate(20);
    }

    /// A city-level indicator value (`None`: not served / unknown id).
    pub fn indicator(&self, id: &str) -> Option<&Value> {
        self.indicators.get(&(id.to_string(), "city".to_string()))
    }

    /// Open events sorted for the list: severity descending, then SLA deadline ascending (none
    /// last), then id.
    pub fn sorted_events(&self) -> Vec<&Event> {
        let mut v: Vec<&Event> = self.events.values().collect();
        v.sort_by(|a, b| {
            (b.severity as u8).cmp(&(a.severity as u8)).then_with(|| match (a.due_at, b.due_at) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }).then(a.id.cmp(&b.id))
        });
        v
    }
}

/// Connection settings of the live thread.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub server: String,
    pub token: Option<String>,
    pub bbox: Option<[f64; 4]>,
    pub indicators_every: Duration,
}

impl LiveConfig {
    /// The bearer token for the next request: the process's current one (a renewed login session
    /// key) else the configured one.
    fn bearer(&self) -> Option<String> {
        crate::fetch::token().or_else(|| self.token.clone())
    }
}

fn agent(stream: bool) -> ureq::Agent {
    let mut c = ureq::Agent::config_builder().http_status_as_error(false).timeout_connect(Some(Duration::from_secs(3)));
    if !stream {
        c = c.timeout_global(Some(Duration::from_secs(20)));
    } else {
        // pings come every 15 s: a silent minute means the connection is dead
        c = c.timeout_recv_response(Some(Duration::from_secs(10)));
    }
    c.build().into()
}

fn get_json(agent: &ureq::Agent, url: &str, token: &Option<String>) -> Result<Value, String> {
    let mut rq = agent.get(url);
    if let Some(t) = token {
        rq = rq.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = rq.call().map_err(|e| format!("GET {url}: {e}"))?;
    let st = r.status().as_u16();
    if st != 200 {
        return Err(format!("GET {url}: HTTP {st}"));
    }
    r.body_mut().read_json::<Value>().map_err(|e| format!("GET {url}: {e}"))
}

/// Starts the stream and polling threads; the receiver is drained by the render loop.
pub fn spawn(cfg: LiveConfig) -> Receiver<Feed> {
    let (tx, rx) = channel();
    let c2 = cfg.clone();
    let tx2 = tx.clone();
    std::thread::Builder::new().name("live-stream".into()).spawn(move || stream_loop(cfg, tx)).expect("spawn live thread");
    std::thread::Builder::new().name("live-poll".into()).spawn(move || poll_loop(c2, tx2)).expect("spawn poll thread");
    rx
}

fn poll_loop(cfg: LiveConfig, tx: Sender<Feed>) {
    let a = agent(false);
    loop {
        let r = get_json(&a, &format!("{}/api/indicators/values", cfg.server), &cfg.bearer()).and_then(|v| {
            // `[...]` per the contract; `{"values": [...]}` accepted too
            let arr = if v.is_array() { v } else { v.get("values").cloned().unwrap_or(Value::Null) };
            arr.as_array().cloned().ok_or_else(|| "indicator values: not a JSON array".to_string())
        });
        if tx.send(Feed::Indicators(r)).is_err() {
            return;
        }
        std::thread::sleep(cfg.indicators_every);
    }
}

/// Backoff after the n-th consecutive failure: 0.25 s doubling, capped at 5 s.
pub fn reconnect_delay(failures: u32) -> Duration {
    Duration::from_secs_f64((0.25 * 2f64.powi(failures.saturating_sub(1).min(8) as i32)).min(5.0))
}

fn stream_loop(cfg: LiveConfig, tx: Sender<Feed>) {
    let a = agent(true);
    let pa = agent(false);
    let mut last_seq: Option<i64> = None;
    let mut failures = 0u32;
    loop {
        let mut url = format!("{}/api/stream?topics=events,units,sensors,indicators", cfg.server);
        if let Some(b) = cfg.bbox {
            url.push_str(&format!("&bbox={},{},{},{}", b[0], b[1], b[2], b[3]));
        }
        let resumed_from = last_seq;
        if let Some(s) = last_seq {
            url.push_str(&format!("&since={s}"));
        }
        let err = match run_stream(&a, &pa, &cfg, &url, resumed_from, &mut last_seq, &tx, &mut failures) {
            Ok(Some(reason)) => reason,
            Ok(None) => "the server closed the stream".to_string(),
            Err(e) => e,
        };
        if tx.send(Feed::Reconnecting { error: err.clone(), retry_in: Duration::ZERO }).is_err() {
            return;
        }
        failures += 1;
        let d = reconnect_delay(failures);
        eprintln!("viewer: stream: {err}; reconnecting in {:.2} s (since={last_seq:?})", d.as_secs_f64());
        std::thread::sleep(d);
    }
}

#[allow(clippy::too_many_arguments)]
fn run_stream(
    a: &ureq::Agent,
    pa: &ureq::Agent,
    cfg: &LiveConfig,
    url: &str,
    resumed_from: Option<i64>,
    last_seq: &mut Option<i64>,
    tx: &Sender<Feed>,
    failures: &mut u32,
) -> Result<Option<String>, String> {
    let mut rq = a.get(url).header("Accept", "text/event-stream");
    if let Some(t) = &cfg.bearer() {
        rq = rq.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = rq.call().map_err(|e| format!("GET {url}: {e}"))?;
    let st = r.status().as_u16();
    if st != 200 {
        return Err(format!("GET {url}: HTTP {st}"));
    }
    let reader = std::io::BufReader::new(r.body_mut().with_config().limit(u64::MAX).reader());
    let mut data = String::new();
    for line in reader.lines() {
        let line = line.map_err(|e| format!("stream read: {e}"))?;
        if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
            continue;
        }
        if !line.is_empty() || data.is_empty() {
            continue;
        }
        let msg: ServerMessage = match serde_json::from_str(&data) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("viewer: stream: unreadable message ({e}): {}", &data[..data.len().min(200)]);
                data.clear();
                continue;
            }
        };
        data.clear();
        match &msg {
            ServerMessage::Hello { head, .. } => {
                *failures = 0;
                if tx.send(Feed::Connected { head: *head, resumed_from }).is_err() {
                    return Ok(None);
                }
                eprintln!("viewer: stream connected (head {head}, since {resumed_from:?})");
                // sensors are not in the snapshot: their latest values come from the overview
                match get_json(pa, &format!("{}/api/sensors/latest", cfg.server), &cfg.bearer())
                    .and_then(|v| serde_json::from_value::<Vec<twin_protocol::sensors::LatestValue>>(v.get("value").cloned().unwrap_or(Value::Null)).map_err(|e| e.to_string()))
                {
                    Ok(v) => {
                        let _ = tx.send(Feed::Sensors(v));
                    }
                    Err(e) => eprintln!("viewer: sensors overview unavailable: {e}"),
                }
            }
            ServerMessage::Snapshot { seq, .. } => *last_seq = Some(*seq),
            ServerMessage::Delta(c) => *last_seq = Some(last_seq.unwrap_or(i64::MIN).max(c.seq)),
            ServerMessage::Resync { reason, last_sent } => {
                let reason = format!("resync requested ({reason})");
                // a `since` the server cannot serve: start over with a snapshot
                if last_sent.is_none() && resumed_from.is_some() {
                    *last_seq = None;
                }
                let _ = tx.send(Feed::Msg(msg));
                return Ok(Some(reason));
            }
            _ => {}
        }
        if tx.send(Feed::Msg(msg)).is_err() {
            return Ok(None);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, sev: u8, due: Option<&str>, state: &str) -> Value {
        serde_json::json!({"id": id, "category": "fire", "severity": sev, "source": "manual", "state": state, "title": format!("e{id}"),
            "location": {"lon": 123.4, "lat": 41.8}, "district": null, "reported_at": "2026-11-22T10:00:00Z", "updated_at": "2026-11-22T10:00:00Z",
            "due_at": due})
    }

    fn delta(seq: i64, topic: &str, kind: &str, payload: Value) -> Feed {
        Feed::Msg(serde_json::from_value(serde_json::json!({"type": "delta", "seq": seq, "topic": topic, "kind": kind, "entity": "1",
            "lon": null, "lat": null, "at": "2026-11-22T10:00:00Z", "payload": payload})).unwrap())
    }

    #[test]
    fn snapshot_then_deltas_by_seq_terminal_events_leave_duplicates_ignored() {
        let mut m = LiveModel::default();
        let snap: ServerMessage = serde_json::from_value(serde_json::json!({"type": "snapshot", "seq": 10,
            "events": [ev(1, 2, None, "reported"), ev(2, 4, None, "handling")], "units": []})).unwrap();
        m.apply(Feed::Connected { head: 10, resumed_from: None });
        m.apply(Feed::Msg(snap));
        assert_eq!((m.events.len(), m.last_seq), (2, Some(10)));
        m.apply(delta(11, "events", "created", serde_json::json!({"event": ev(3, 3, None, "reported")})));
        m.apply(delta(13, "events", "transition", serde_json::json!({"event": ev(1, 2, None, "cancelled")})));
        // a repeat (seq not above the last) changes nothing
        m.apply(delta(12, "events", "created", serde_json::json!({"event": ev(9, 1, None, "reported")})));
        assert_eq!(m.events.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!((m.last_seq, m.deltas, m.stale_deltas), (Some(13), 2, 1));
        // the snapshot's open critical event #2, then the new severity-3 event #3 before it
        assert_eq!(m.alarms.iter().map(|a| a.1.as_str()).collect::<Vec<_>>(), vec!["火灾 #3 e3", "火灾 #2 e2"], "severe events are alarms, newest first");
        // a reconnect counts, the model keeps its state meanwhile
        m.apply(Feed::Reconnecting { error: "gone".into(), retry_in: Duration::ZERO });
        assert_eq!((m.state, m.events.len()), (StreamState::Reconnecting, 2));
        m.apply(Feed::Connected { head: 13, resumed_from: Some(13) });
        assert_eq!((m.state, m.reconnects), (StreamState::Connected, 1));
    }

    #[test]
    fn event_list_sorts_by_severity_then_deadline() {
        let mut m = LiveModel::default();
        let snap: ServerMessage = serde_json::from_value(serde_json::json!({"type": "snapshot", "seq": 1, "events": [
            ev(1, 2, Some("2026-11-22T11:00:00Z"), "reported"), ev(2, 4, None, "reported"), ev(3, 4, Some("2026-11-22T12:00:00Z"), "reported"),
            ev(4, 2, Some("2026-11-22T10:30:00Z"), "reported"), ev(5, 1, None, "reported")], "units": []})).unwrap();
        m.apply(Feed::Msg(snap));
        assert_eq!(m.sorted_events().iter().map(|e| e.id).collect::<Vec<_>>(), vec![3, 2, 4, 1, 5]);
    }

    #[test]
    fn units_move_along_their_route_when_they_carry_one() {
        let u = UnitView::from_json(&serde_json::json!({"id": 7, "kind": "fire", "name": "消防-1", "status": "en_route",
            "position": {"lon": 123.0, "lat": 41.0}, "route": [[123.0, 41.0], [123.0, 41.01], [123.01, 41.01]],
            "depart_at": "2026-11-22T10:00:00Z", "eta_s": 100.0})).unwrap();
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().timestamp_millis();
        assert_eq!(u.position_at(t0 - 5000), (123.0, 41.0));
        // the two legs: 0.01° north (1 unit) and 0.01° east (cos 41° ≈ 0.7547 units): half the length
        // lies on the first leg at (0.5 · 1.7547) = 0.877 of it
        let (lon, lat) = u.position_at(t0 + 50_000);
        assert!((lon - 123.0).abs() < 1e-12 && (lat - (41.0 + 0.01 * 0.5 * (1.0 + 41f64.to_radians().cos()))).abs() < 1e-9, "{lon} {lat}");
        assert_eq!(u.position_at(t0 + 500_000), (123.01, 41.01));
        // no route fields: the reported position
        let v = UnitView::from_json(&serde_json::json!({"id": 8, "kind": "police", "status": "available", "position": {"lon": 1.0, "lat": 2.0}})).unwrap();
        assert_eq!(v.position_at(t0), (1.0, 2.0));
        assert!(UnitView::from_json(&serde_json::json!({"id": 8})).is_none());
    }

    #[test]
    fn units_follow_the_servers_unit_route_by_its_vertex_times() {
        // Two legs: 100 s on the first (fast road), 300 s on the second; depart 10:00:00, eta 10:06:40.
        let u = UnitView::from_json(&serde_json::json!({"id": 3, "kind": "police", "name": "公安-1", "status": "returning",
            "position": {"lon": 123.0, "lat": 41.0},
            "route": {"id": 1, "purpose": "return", "method": "road_network", "geometry": [[123.0, 41.0], [123.0, 41.01], [123.01, 41.01]],
                      "vertex_time_s": [0.0, 100.0, 400.0], "length_m": 1950.0, "travel_time_s": 400.0, "speedup": 1.0,
                      "depart_at": "2026-11-22T10:00:00Z", "eta_at": "2026-11-22T10:06:40Z"}})).unwrap();
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().timestamp_millis();
        assert_eq!(u.vertex_time_s.as_deref(), Some(&[0.0, 100.0, 400.0][..]));
        // 50 s: half of the first leg; 250 s: half of the second (150 of its 300 s).
        let (lon, lat) = u.position_at(t0 + 50_000);
        assert!((lon - 123.0).abs() < 1e-12 && (lat - 41.005).abs() < 1e-12, "{lon} {lat}");
        let (lon, lat) = u.position_at(t0 + 250_000);
        assert!((lon - 123.005).abs() < 1e-12 && (lat - 41.01).abs() < 1e-12, "{lon} {lat}");
        assert_eq!(u.position_at(t0 + 999_000), (123.01, 41.01));
    }

    #[test]
    fn sensor_levels_follow_batches_and_threshold_changes() {
        let mut m = LiveModel::default();
        m.apply(Feed::Sensors(vec![serde_json::from_value(serde_json::json!({"datastream": 5, "name": "s5", "sensor_type": "pm25", "unit": "ug/m3",
            "lon": 123.4, "lat": 41.8, "result": 10.0, "phenomenon_time": "2026-11-22T10:00:00Z", "level": 0})).unwrap()]));
        m.apply(delta(1, "sensors", "observations", serde_json::json!({"count": 1, "datastreams": [{"datastream": 5, "n": 1, "result": 80.0, "level": 1}]})));
        assert_eq!(m.sensors[&5].level, 1);
        let mut c = delta(2, "sensors", "threshold_level", serde_json::json!({"datastream": 5, "from": 1, "to": 2, "result": 300.0}));
        if let Feed::Msg(ServerMessage::Delta(d)) = &mut c {
            d.entity = "5".into();
        }
        m.apply(c);
        assert_eq!(m.sensors[&5].level, 2);
        assert_eq!(m.alarms.len(), 1);
    }

    #[test]
    fn reconnect_backoff_doubles_to_five_seconds() {
        assert_eq!(reconnect_delay(1), Duration::from_millis(250));
        assert_eq!(reconnect_delay(3), Duration::from_secs(1));
        assert_eq!(reconnect_delay(30), Duration::from_secs(5));
    }
}
