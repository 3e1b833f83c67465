//! The city simulator (`serve --simulate on|off [--speed N] [--seed S]`, on by default with the
//! built-in city): sensors placed on the model (traffic flow/speed on primary and trunk roads, PM2.5
//! and noise per district, water level at rivers, parking occupancy at parking POIs, gas at gas
//! stations, manhole tilt on residential streets, elevators at hospitals) report every simulated
//! minute with diurnal cycles and seeded anomalies that cross their thresholds; incidents (hotline
//! 12345, patrol, video analytics) arrive per district at rates proportional to its area.
//!
//! Deterministic: every value is a pure function of (seed, sensor index, minute of the run) —
//! hashed, not drawn from a sequential generator — so the same seed gives the same sequence
//! whatever the tick timing. `--speed N`: N simulated minutes per real minute (default 60).

use super::{ingest, ObsIn};
use crate::live::LiveState;
use geo::{BoundingRect, Centroid, Contains};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimOptions {
    pub speed: f64,
    pub seed: u64,
}

/// A sensor the simulator places.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSensor {
    pub name: String,
    pub ty: &'static str,
    pub lon: f64,
    pub lat: f64,
    pub thresholds: Value,
}

/// An incident the simulator reports.
#[derive(Debug, Clone, PartialEq)]
pub struct SimIncident {
    pub minute: i64,
    pub district: usize,
    pub category: &'static str,
    pub source: &'static str,
    pub lon: f64,
    pub lat: f64,
}

/// SplitMix64 finaliser over the inputs: a well-mixed 64-bit hash.
pub fn mix(parts: &[u64]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for p in parts {
        let mut z = h ^ p.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}

/// Uniform in [0, 1).
pub fn unit(parts: &[u64]) -> f64 {
    (mix(parts) >> 11) as f64 / (1u64 << 53) as f64
}

/// Places the sensors on the model (deterministic, bounded counts).
pub fn place(model: &scenes::model::CityModel) -> Vec<SimSensor> {
    use scenes::model::{PoiKind, RoadClass};
    let mut out = Vec::new();
    let mid = |ls: &geo_types::LineString<f64>| {
        let c = &ls.0;
        let p = c[c.len() / 2];
        (p.x, p.y)
    };
    let every = |n: usize, max: usize| (n / max.max(1)).max(1);
    let major: Vec<_> = model.roads.iter().filter(|r| matches!(r.class, RoadClass::Primary | RoadClass::Trunk) && r.geometry.0.len() >= 2).collect();
    for (i, r) in major.iter().step_by(every(major.len(), 12)).take(12).enumerate() {
        let (x, y) = mid(&r.geometry);
        let name = r.names.zh.clone().or(r.names.en.clone()).unwrap_or_else(|| format!("road {}", r.id));
        out.push(SimSensor { name: format!("sim:traffic_flow:{i} {name}"), ty: "traffic_flow", lon: x, lat: y, thresholds: json!({"warning": 2600, "alarm": 3200, "hysteresis": 200, "pending_s": 600}) });
        out.push(SimSensor { name: format!("sim:traffic_speed:{i} {name}"), ty: "traffic_speed", lon: x, lat: y, thresholds: json!({"direction": "below", "warning": 15, "alarm": 8, "hysteresis": 3, "pending_s": 600}) });
    }
    for (i, d) in model.districts.iter().enumerate() {
        if let Some(c) = d.geometry.centroid() {
            let name = d.names.zh.clone().or(d.names.en.clone()).unwrap_or_default();
            out.push(SimSensor { name: format!("sim:pm25:{i} {name}"), ty: "pm25", lon: c.x(), lat: c.y(), thresholds: json!({"warning": 75, "alarm": 150, "hysteresis": 10, "pending_s": 1800}) });
            out.push(SimSensor { name: format!("sim:noise:{i} {name}"), ty: "noise", lon: c.x() + 0.002, lat: c.y(), thresholds: json!({"warning": 70, "alarm": 85, "hysteresis": 3, "pending_s": 300}) });
        }
    }
    let rivers: Vec<_> = model.water.iter().filter(|w| matches!(w.class.as_str(), "river" | "canal")).collect();
    for (i, w) in rivers.iter().step_by(every(rivers.len(), 6)).take(6).enumerate() {
        if let Some(p) = w.geometry.0.first().and_then(|p| p.exterior().0.first()) {
            out.push(SimSensor { name: format!("sim:water_level:{i}"), ty: "water_level", lon: p.x, lat: p.y, thresholds: json!({"warning": 3.0, "alarm": 3.5, "hysteresis": 0.1}) });
        }
    }
    let pois = |k: PoiKind| model.pois.iter().filter(move |p| p.kind == k).collect::<Vec<_>>();
    let park = pois(PoiKind::Parking);
    for (i, p) in park.iter().step_by(every(park.len(), 10)).take(10).enumerate() {
        out.push(SimSensor { name: format!("sim:parking_occupancy:{i}"), ty: "parking_occupancy", lon: p.location.x(), lat: p.location.y(), thresholds: json!({"warning": 95, "alarm": 99.5, "hysteresis": 3}) });
    }
    let gas = pois(PoiKind::GasStation);
    for (i, p) in gas.iter().step_by(every(gas.len(), 6)).take(6).enumerate() {
        out.push(SimSensor { name: format!("sim:gas_lel:{i}"), ty: "gas_lel", lon: p.location.x(), lat: p.location.y(), thresholds: json!({"warning": 10, "alarm": 25, "hysteresis": 3}) });
    }
    let hosp = pois(PoiKind::Hospital);
    for (i, p) in hosp.iter().take(4).enumerate() {
        out.push(SimSensor { name: format!("sim:elevator_status:{i}"), ty: "elevator_status", lon: p.location.x(), lat: p.location.y(), thresholds: json!({"warning_values": ["fault"], "alarm_values": ["trapped"]}) });
    }
    let res: Vec<_> = model.roads.iter().filter(|r| r.class == RoadClass::Residential && r.geometry.0.len() >= 2).collect();
    for (i, r) in res.iter().step_by(every(res.len(), 6)).take(6).enumerate() {
        let (x, y) = mid(&r.geometry);
        out.push(SimSensor { name: format!("sim:manhole_tilt:{i}"), ty: "manhole_tilt", lon: x, lat: y, thresholds: json!({"warning": 5, "alarm": 15, "hysteresis": 1}) });
    }
    out
}

/// Morning and evening peaks, 0..1.
fn rush(h: f64) -> f64 {
    let g = |c: f64, w: f64| (-((h - c) / w).powi(2)).exp();
    (g(8.0, 1.3) + g(18.0, 1.6)).min(1.0)
}

/// The value of sensor `i` at `minute` (minutes since the run's first midnight).
pub fn value(seed: u64, i: usize, s: &SimSensor, minute: i64) -> Value {
    let day = minute.div_euclid(1440) as u64;
    let h = minute.rem_euclid(1440) as f64 / 60.0;
    let n = |k: u64| unit(&[seed, i as u64, minute as u64, k]) - 0.5;
    let i64s = i as u64;
    // One anomaly a day for about a third of the sensors: start hour and length seeded.
    let anomalous = unit(&[seed, i64s, day, 1]) < 0.35;
    let a_start = 60.0 * (6.0 + 14.0 * unit(&[seed, i64s, day, 2]));
    let a_len = 20.0 + 70.0 * unit(&[seed, i64s, day, 3]);
    let m = minute.rem_euclid(1440) as f64;
    let in_anomaly = anomalous && m >= a_start && m < a_start + a_len;
    let base = 0.85 + 0.3 * unit(&[seed, i64s, 7]);
    let v = match s.ty {
        "traffic_flow" => (base * (300.0 + 2200.0 * rush(h) + 400.0 * (h > 6.0 && h < 22.0) as u8 as f64) + 120.0 * n(0)) * if in_anomaly { 1.45 } else { 1.0 },
        "traffic_speed" => {
            if in_anomaly {
                5.0 + 4.0 * (n(0) + 0.5)
            } else {
                base * (55.0 - 30.0 * rush(h)) + 4.0 * n(0)
            }
        }
        "pm25" => base * (40.0 + 25.0 * ((h - 20.0) / 24.0 * std::f64::consts::TAU).cos().max(-1.0)) + 6.0 * n(0) + if in_anomaly { 130.0 } else { 0.0 },
        "noise" => base * (48.0 + 17.0 * (h > 6.5 && h < 22.5) as u8 as f64 + 6.0 * rush(h)) + 3.0 * n(0) + if in_anomaly { 22.0 } else { 0.0 },
        "water_level" => 1.6 + 0.2 * base + 0.05 * n(0) + if in_anomaly { 2.1 } else { 0.0 },
        "parking_occupancy" => {
            let day_use = 25.0 + 60.0 * ((h - 6.0) / 12.0 * std::f64::consts::PI).sin().max(0.0);
            (base * day_use + 4.0 * n(0) + if in_anomaly { 40.0 } else { 0.0 }).min(100.0)
        }
        "gas_lel" => 1.0 + 0.6 * (n(0) + 0.5) + if in_anomaly { 28.0 } else { 0.0 },
        "manhole_tilt" => 0.8 + 0.4 * (n(0) + 0.5) + if in_anomaly { 20.0 } else { 0.0 },
        "elevator_status" => {
            return json!(if in_anomaly {
                if unit(&[seed, i64s, day, 4]) < 0.3 {
                    "trapped"
                } else {
                    "fault"
                }
            } else if (6.0..23.0).contains(&h) {
                "normal"
            } else {
                "stopped"
            })
        }
        _ => 0.0,
    };
    json!((v.max(0.0) * 10.0).round() / 10.0)
}

const CATS: [(&str, f64); 6] = [("city_management", 0.40), ("traffic_accident", 0.22), ("public_security", 0.15), ("medical", 0.12), ("fire", 0.06), ("infrastructure", 0.05)];
const SOURCES: [(&str, f64); 3] = [("hotline_12345", 0.5), ("patrol", 0.3), ("video_analytics", 0.2)];

fn pick<T: Copy>(xs: &[(T, f64)], u: f64) -> T {
    let mut acc = 0.0;
    for (x, w) in xs {
        acc += w;
        if u < acc {
            return *x;
        }
    }
    xs[xs.len() - 1].0
}

/// Incidents reported in `minute`: about 1 per 4 km² of district a day, busier by day.
pub fn incidents(seed: u64, model: &scenes::model::CityModel, minute: i64) -> Vec<SimIncident> {
    let h = minute.rem_euclid(1440) as f64 / 60.0;
    let diurnal = if (7.0..22.0).contains(&h) { 1.4 } else { 0.35 };
    let mut out = Vec::new();
    for (d, dist) in model.districts.iter().enumerate() {
        let per_day = (dist.area_km2 / 4.0).clamp(2.0, 60.0);
        let p = per_day / 1440.0 * diurnal;
        let k = [seed, 0x1_0c_u64, d as u64, minute as u64];
        if unit(&k) >= p {
            continue;
        }
        let Some(r) = dist.geometry.bounding_rect() else { continue };
        for t in 0..20u64 {
            let x = r.min().x + unit(&[seed, d as u64, minute as u64, 10 + t]) * r.width();
            let y = r.min().y + unit(&[seed, d as u64, minute as u64, 40 + t]) * r.height();
            if dist.geometry.contains(&geo_types::Point::new(x, y)) {
                out.push(SimIncident {
                    minute,
                    district: d,
                    category: pick(&CATS, unit(&[seed, d as u64, minute as u64, 2])),
                    source: pick(&SOURCES, unit(&[seed, d as u64, minute as u64, 3])),
                    lon: x,
                    lat: y,
                });
                break;
            }
        }
    }
    out
}

/// Midnight (UTC+8, Shenyang) of the day containing `ms`.
fn local_midnight_ms(ms: i64) -> i64 {
    const OFF: i64 = 8 * 3_600_000;
    (ms + OFF).div_euclid(86_400_000) * 86_400_000 - OFF
}

/// Creates the simulator's datastreams that are not in the store yet; returns their ids in
/// `sensors` order.
async fn ensure_datastreams(live: &LiveState, sensors: &[SimSensor]) -> Result<Vec<i64>, crate::live::LiveError> {
    let existing: std::collections::HashMap<String, i64> = live
        .db
        .read(|c| Ok(c.query("SELECT name, id FROM sta_datastreams WHERE name LIKE 'sim:%'", &[])?.iter().map(|r| (r.str(0).to_string(), r.i64(1))).collect()))
        .await?;
    let mut ids = Vec::with_capacity(sensors.len());
    let mut created = 0;
    for s in sensors {
        if let Some(id) = existing.get(&s.name) {
            ids.push(*id);
            continue;
        }
        let body = json!({
            "name": s.name, "description": "simulated", "properties": {"sensorType": s.ty, "thresholds": s.thresholds, "simulated": true},
            "Thing": {"name": s.name, "description": "simulated sensor", "properties": {"simulated": true},
                      "Locations": [{"name": s.name, "description": "", "encodingType": "application/geo+json", "location": {"type": "Point", "coordinates": [s.lon, s.lat]}}]},
            "Sensor": {"name": format!("simulated {}", s.ty), "description": "", "encodingType": "text/plain", "metadata": "citytwin simulator"},
            "ObservedProperty": {"name": s.ty, "definition": format!("citytwin:sensor-type:{}", s.ty), "description": ""}
        });
        let id = live.db.write(move |tx| super::sta::create_entity(tx, "Datastreams", &body, "simulator", None)).await?;
        ids.push(id);
        created += 1;
    }
    tracing::info!(sensors = sensors.len(), created, "simulator: sensors placed on the model");
    Ok(ids)
}

/// The simulator's lease: one row; the replica holding it (and renewing it every tick) is the
/// only one that runs the simulator on a shared store.
pub const MIGRATIONS: &[&str] = &["CREATE TABLE sim_lease (id BIGINT PRIMARY KEY, holder TEXT NOT NULL, expires_ms BIGINT NOT NULL);
     INSERT INTO sim_lease (id, holder, expires_ms) VALUES (1, '', 0);"];

/// How long a lease lasts without renewal (a replica that dies hands over after this).
pub const LEASE_MS: i64 = 10_000;

/// Takes or renews the lease for `holder`; false while another live replica holds it.
async fn take_lease(live: &LiveState, holder: &str) -> Result<bool, crate::live::LiveError> {
    let holder = holder.to_string();
    Ok(live
        .db
        .write(move |tx| -> Result<u64, crate::live::LiveError> {
            let now = tx.now_ms();
            Ok(tx.exec("UPDATE sim_lease SET holder = $1, expires_ms = $2 WHERE id = 1 AND (holder = $1 OR expires_ms < $3)", &[holder.into(), (now + LEASE_MS).into(), now.into()])?)
        })
        .await?
        == 1)
}

/// Starts the simulator task.
pub fn spawn(live: LiveState, opts: SimOptions) {
    let holder = format!("{}:{}:{}", std::process::id(), crate::live::now_ms(), mix(&[std::process::id() as u64, crate::live::now_ms() as u64]));
    tokio::spawn(async move {
        // A store error (a lost connection, a serialisation failure) stops one run, not the
        // simulator: it starts again after the newest simulated minute stored, keeping its lease.
        loop {
            if let Err(e) = run(live.clone(), opts, &holder).await {
                tracing::error!("simulator: {}; restarting in 2 s", e.message);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
}

/// The first simulated minute to run: right after the newest simulated observation of today.
async fn resume_minute(live: &LiveState, origin: i64) -> Result<i64, crate::live::LiveError> {
    let last: Option<i64> = live
        .db
        .read(move |c| {
            Ok(c.query_one("SELECT MAX(o.phenomenon_ms) FROM sta_observations o JOIN sta_datastreams d ON d.id = o.datastream_id WHERE d.name LIKE 'sim:%' AND o.phenomenon_ms >= $1", &[origin.into()])?
                .and_then(|r| r.opt_i64(0)))
        })
        .await?;
    Ok(last.map(|l| (l - origin) / 60_000 + 1).unwrap_or(0))
}

async fn run(live: LiveState, opts: SimOptions, holder: &str) -> Result<(), crate::live::LiveError> {
    let model = live.app.current.load().loaded.model.clone();
    let sensors = place(&model);
    let tick = Duration::from_secs_f64((60.0 / opts.speed).clamp(0.05, 60.0));
    // Wait for the lease: another replica may be driving the simulator on this store.
    let mut waiting_logged = false;
    while !take_lease(&live, holder).await? {
        if !waiting_logged {
            tracing::info!("simulator: another replica holds the simulator lease; standing by");
            waiting_logged = true;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let ids = ensure_datastreams(&live, &sensors).await?;
    let origin = local_midnight_ms(crate::live::now_ms());
    let mut first = resume_minute(&live, origin).await?;
    tracing::info!(seed = opts.seed, speed = opts.speed, first_minute = first, sensors = sensors.len(), "simulator running");
    let mut t0 = std::time::Instant::now();
    let mut next = first;
    let (mut n_obs, mut n_inc) = (0u64, 0u64);
    let mut last_lease = std::time::Instant::now();
    loop {
        if last_lease.elapsed() >= Duration::from_millis(1000) {
            if !take_lease(&live, holder).await? {
                tracing::warn!("simulator: lease lost to another replica; standing by");
                while !take_lease(&live, holder).await? {
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                }
                first = resume_minute(&live, origin).await?;
                next = first;
                t0 = std::time::Instant::now();
            }
            last_lease = std::time::Instant::now();
        }
        let due = first + (t0.elapsed().as_secs_f64() * opts.speed / 60.0) as i64;
        let upto = due.min(next + 120);
        if upto >= next {
            let mut obs = Vec::with_capacity(sensors.len() * (upto - next + 1) as usize);
            let mut incs = Vec::new();
            for m in next..=upto {
                let t = origin + m * 60_000;
                for (i, s) in sensors.iter().enumerate() {
                    obs.push(ObsIn { datastream: ids[i], phenomenon_ms: Some(t), result_time_ms: Some(t), result: value(opts.seed, i, s, m) });
                }
                incs.extend(incidents(opts.seed, &model, m));
            }
            n_obs += obs.len() as u64;
            ingest(&live, obs, "simulator").await?;
            if !incs.is_empty() {
                n_inc += incs.len() as u64;
                let l = live.clone();
                live.db
                    .write(move |tx| -> Result<(), crate::live::LiveError> {
                        for inc in incs {
                            let category: twin_protocol::Category = serde_json::from_value(json!(inc.category)).unwrap_or(twin_protocol::Category::Other);
                            let source: twin_protocol::EventSource = serde_json::from_value(json!(inc.source)).unwrap_or(twin_protocol::EventSource::Manual);
                            let n = twin_protocol::NewEvent {
                                category,
                                severity: None,
                                source,
                                title: format!("{} ({})", category.name_zh(), inc.source),
                                description: "simulated incident".into(),
                                location: twin_protocol::LonLat { lon: inc.lon, lat: inc.lat },
                                actor: format!("simulator:{}", inc.source),
                                reported_at: Some(twin_protocol::ts_from_ms(origin + inc.minute * 60_000)),
                                external_ref: Some(format!("sim:{}:{}:{}", opts.seed, inc.minute, inc.district)),
                            };
                            let d = crate::live::events::district_of(&l, inc.lon, inc.lat);
                            crate::live::events::create_in_tx(tx, &l.cats, n, d)?;
                        }
                        Ok(())
                    })
                    .await?;
            }
            if upto / 60 != (next - 1).max(0) / 60 || next == first {
                tracing::info!(minute = upto, observations = n_obs, incidents = n_inc, "simulator progress");
            }
            next = upto + 1;
        }
        if let Err(e) = drive_incidents(&live, opts).await {
            tracing::warn!("simulator dispatcher: {}", e.message);
        }
        tokio::time::sleep(tick).await;
    }
}

/// What happens to a simulated incident: a pure function of (seed, its external_ref).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IncidentPlan {
    /// Simulated minutes from the report to the dispatcher's decision.
    pub dispatch_min: f64,
    /// `Some(reason)`: rejected at the decision instead of dispatched.
    pub reject: Option<&'static str>,
    /// `Some(reason)`: cancelled at the decision (the caller withdrew before a unit was sent).
    pub cancel: Option<&'static str>,
    /// Simulated minutes on scene (处置) before feedback.
    pub handling_min: f64,
    /// Simulated minutes from feedback to the evaluation (评估 → closed).
    pub evaluate_min: f64,
}

/// About 4 % of incidents are rejected (duplicate or unfounded reports) and 5 % cancelled (the
/// caller withdrew) at the dispatcher's decision, which takes 1–6 simulated minutes; the rest are
/// dispatched, handled 10–60 simulated minutes after the unit arrives and evaluated 5–30 minutes
/// after feedback. Decisions never depend on timing, so the same seed gives every incident the
/// same sequence of states.
pub fn plan(seed: u64, external_ref: &str) -> IncidentPlan {
    let key = external_ref.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let u = |k: u64| unit(&[seed, key, 0x51_d1, k]);
    let r = u(0);
    IncidentPlan {
        dispatch_min: 1.0 + 5.0 * u(1),
        reject: if r < 0.025 { Some("重复上报 duplicate report") } else if r < 0.04 { Some("核实无此事件 unfounded") } else { None },
        cancel: if (0.04..0.09).contains(&r) { Some("报警人撤销 the caller withdrew") } else { None },
        handling_min: 10.0 + 50.0 * u(3),
        evaluate_min: 5.0 + 25.0 * u(4),
    }
}

/// The simulator's dispatcher and field crews, one step: for each open simulated incident,
/// decide by its plan and the simulated minutes spent in its stage — recommend + assign the
/// fastest available unit (the HTTP API's own functions), reject, cancel, feedback, close. The
/// arrival (dispatched → handling) is the unit mover's. Runs only on the lease holder.
async fn drive_incidents(live: &LiveState, opts: SimOptions) -> Result<(), crate::live::LiveError> {
    use twin_protocol::{AssignRequest, EventState, TransitionRequest};
    let prefix = format!("sim:{}:%", opts.seed);
    let open: Vec<(i64, String, i64, String)> = live
        .db
        .read(move |c| {
            Ok(c.query(
                "SELECT id, state, stage_since_ms, external_ref FROM events WHERE external_ref LIKE $1 AND state IN ('reported', 'dispatched', 'handling', 'feedback') ORDER BY id",
                &[prefix.into()],
            )?
            .iter()
            .map(|r| (r.i64(0), r.str(1).to_string(), r.i64(2), r.str(3).to_string()))
            .collect())
        })
        .await?;
    let now = crate::live::now_ms();
    // At most this many dispatch attempts a tick (each ranks units over the road graph): a
    // backlog waiting for free units is worked off over the next ticks.
    let mut attempts = 50;
    for (id, state, since, xref) in open {
        let p = plan(opts.seed, &xref);
        let in_stage_min = (now - since) as f64 * opts.speed / 60_000.0;
        let state = EventState::parse(&state).unwrap_or(EventState::Reported);
        let step: Option<(EventState, Option<&str>, &str)> = match state {
            EventState::Reported if in_stage_min >= p.dispatch_min => match (p.reject, p.cancel) {
                (Some(reason), _) => Some((EventState::Rejected, Some(reason), "simulator:dispatcher")),
                (None, Some(reason)) => Some((EventState::Cancelled, Some(reason), "simulator:caller")),
                (None, None) if attempts > 0 => {
                    attempts -= 1;
                    let (_, r) = crate::live::units::recommend(live, id, 1).await?;
                    if let Some(best) = r.recommendations.first() {
                        let req = AssignRequest { unit_id: best.unit.id, actor: "simulator:dispatcher".into(), note: None };
                        match crate::live::units::assign(live, id, req).await {
                            Ok(_) => {
                                crate::live::metrics::METRICS.sim_dispatches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(e) if e.status == axum::http::StatusCode::CONFLICT => {}
                            Err(e) => return Err(e),
                        }
                    }
                    None
                }
                (None, None) => None,
            },
            EventState::Handling if in_stage_min >= p.handling_min => Some((EventState::Feedback, None, "simulator:crew")),
            EventState::Feedback if in_stage_min >= p.evaluate_min => Some((EventState::Closed, None, "simulator:evaluator")),
            _ => None,
        };
        if let Some((to, reason, actor)) = step {
            let req = TransitionRequest { to, actor: actor.into(), note: Some("simulated".into()), reason: reason.map(Into::into) };
            let cats = live.cats.clone();
            let travel = crate::live::units::Travel::of(live);
            match live.db.write(move |tx| crate::live::events::transition_in_tx(tx, &cats, &travel, id, &req)).await {
                Ok(_) => {}
                Err(e) if e.status == axum::http::StatusCode::CONFLICT => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn city() -> scenes::model::CityModel {
        let dir = scenes::shenyang::find_boundaries(None).expect("bundled boundaries");
        scenes::shenyang::build_default(&dir, scenes::shenyang::DEFAULT_SEED, &mut scenes::report::BuildReport::default()).unwrap()
    }

    #[test]
    fn incident_plans_are_seeded_with_plausible_rates() {
        let plans: Vec<IncidentPlan> = (0..10_000).map(|i| plan(7, &format!("sim:7:{i}:3"))).collect();
        let again: Vec<IncidentPlan> = (0..10_000).map(|i| plan(7, &format!("sim:7:{i}:3"))).collect();
        assert_eq!(plans, again);
        let rejected = plans.iter().filter(|p| p.reject.is_some()).count();
        let cancelled = plans.iter().filter(|p| p.cancel.is_some()).count();
        assert!((300..500).contains(&rejected), "{rejected} of 10,000 rejected (4 % expected)");
        assert!((400..600).contains(&cancelled), "{cancelled} of 10,000 cancelled (5 % expected)");
        assert!(plans.iter().all(|p| p.reject.is_none() || p.cancel.is_none()));
        assert!(plans.iter().all(|p| (1.0..=6.0).contains(&p.dispatch_min) && (10.0..=60.0).contains(&p.handling_min) && (5.0..=30.0).contains(&p.evaluate_min)));
        assert_ne!((0..100).map(|i| plan(7, &format!("sim:7:{i}:3"))).collect::<Vec<_>>(), (0..100).map(|i| plan(8, &format!("sim:7:{i}:3"))).collect::<Vec<_>>());
    }

    #[test]
    fn same_seed_same_day_other_seed_other_day() {
        let m = city();
        let s = place(&m);
        assert!(s.len() >= 20, "{} sensors", s.len());
        for ty in ["traffic_flow", "traffic_speed", "pm25", "noise", "parking_occupancy"] {
            assert!(s.iter().any(|x| x.ty == ty), "no {ty} sensor placed");
        }
        let run = |seed: u64| -> (Vec<Value>, Vec<SimIncident>) {
            let mut v = vec![];
            let mut inc = vec![];
            for minute in 0..1440 {
                for (i, x) in s.iter().enumerate() {
                    v.push(value(seed, i, x, minute));
                }
                inc.extend(incidents(seed, &m, minute));
            }
            (v, inc)
        };
        let (a, ia) = run(7);
        let (b, ib) = run(7);
        assert_eq!(a, b);
        assert_eq!(ia, ib);
        let (c, ic) = run(8);
        assert_ne!(a, c);
        assert_ne!(ia, ic);
        // Plausible incident counts: a few hundred a day over the city, not thousands, not none.
        assert!((20..2000).contains(&ia.len()), "{} incidents", ia.len());
        // Every value is inside its type's valid range.
        for (k, v) in a.iter().enumerate() {
            let x = &s[k % s.len()];
            let ty = twin_protocol::sensors::sensor_type(x.ty).unwrap();
            if let twin_protocol::sensors::ResultKind::Number { min, max } = ty.result {
                let f = v.as_f64().unwrap();
                assert!(f >= min && f <= max, "{} = {f}", x.name);
            }
        }
        // Anomalies cross thresholds somewhere during the day.
        let th_cross = s.iter().enumerate().filter(|(i, x)| {
            let t: twin_protocol::sensors::Thresholds = serde_json::from_value(x.thresholds.clone()).unwrap();
            let mut st = super::super::thresholds::ThState::default();
            (0..1440).any(|m| {
                let v = value(7, *i, x, m);
                let inp = match &v {
                    Value::String(s) => super::super::thresholds::Input::Str(s),
                    v => super::super::thresholds::Input::Num(v.as_f64().unwrap()),
                };
                super::super::thresholds::step(&t, &mut st, m * 60_000, inp).is_some_and(|(f, _)| f == 0)
            })
        });
        assert!(th_cross.count() >= 3);
    }
}
