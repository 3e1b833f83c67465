//! Dispatch units: seeded from the model's stations, status + position, assignment to events
//! (event → dispatched and unit → en_route in ONE transaction) and the k-nearest recommendation.
//!
//! Recommendation ranks by travel time over the model's road network (`scenes::routing`, the
//! graph is built once per loaded build: `Build::roads`) with route geometry; without a routable
//! network it falls back to straight-line distance × a detour factor at each kind's speed
//! ([`straight_line_eta`]) and says so (`method`, `note`).

use super::db::{Conn, DbResult, NewChange, Row, Tx, Val};
use super::events::{append_log, load_event_tx, save_event};
use super::{parse_body, LiveError, LiveState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use scenes::model::PoiKind;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use twin_protocol::{ts_from_ms, AssignRequest, Bbox, Event, EventState, LonLat, Recommendation, Topic, Unit, UnitKind, UnitStatus};

pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE units (id BIGINT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
        lon DOUBLE PRECISION NOT NULL, lat DOUBLE PRECISION NOT NULL, base_lon DOUBLE PRECISION NOT NULL, base_lat DOUBLE PRECISION NOT NULL,
        station_poi BIGINT, event_id BIGINT, updated_ms BIGINT NOT NULL);
     CREATE INDEX units_status ON units (status, kind);
     CREATE INDEX units_event ON units (event_id);",
];

pub const UNIT_COLS: &str = "id, kind, name, status, lon, lat, base_lon, base_lat, station_poi, event_id, updated_ms";

pub fn unit_from_row(r: &Row) -> DbResult<Unit> {
    let bad = |w: &str| super::db::DbError(format!("unit {}: bad {w} in the store", r.i64(0)));
    Ok(Unit {
        id: r.i64(0),
        kind: UnitKind::parse(r.str(1)).ok_or_else(|| bad("kind"))?,
        name: r.str(2).to_string(),
        status: UnitStatus::parse(r.str(3)).ok_or_else(|| bad("status"))?,
        position: LonLat { lon: r.f64(4), lat: r.f64(5) },
        base: LonLat { lon: r.f64(6), lat: r.f64(7) },
        station_poi: r.opt_i64(8).map(|v| v as u32),
        event_id: r.opt_i64(9),
        updated_at: ts_from_ms(r.i64(10)),
    })
}

pub fn load_units(c: &mut dyn Conn, bbox: Option<Bbox>) -> DbResult<Vec<Unit>> {
    let rows = match bbox {
        None => c.query(&format!("SELECT {UNIT_COLS} FROM units ORDER BY id"), &[])?,
        Some(b) => c.query(
            &format!("SELECT {UNIT_COLS} FROM units WHERE lon >= $1 AND lon <= $2 AND lat >= $3 AND lat <= $4 ORDER BY id"),
            &[b.0[0].into(), b.0[2].into(), b.0[1].into(), b.0[3].into()],
        )?,
    };
    rows.iter().map(unit_from_row).collect()
}

fn load_unit_tx(tx: &mut Tx, id: i64) -> DbResult<Option<Unit>> {
    tx.query(&format!("SELECT {UNIT_COLS} FROM units WHERE id = $1"), &[id.into()])?.first().map(unit_from_row).transpose()
}

/// Writes a unit's status/position/event and appends its `units` change.
pub fn save_unit(tx: &mut Tx, u: &mut Unit, kind: &str) -> DbResult<i64> {
    u.updated_at = ts_from_ms(tx.now_ms());
    tx.exec(
        "UPDATE units SET status = $2, lon = $3, lat = $4, event_id = $5, updated_ms = $6 WHERE id = $1",
        &[u.id.into(), u.status.as_str().into(), u.position.lon.into(), u.position.lat.into(), u.event_id.into(), tx.now_ms().into()],
    )?;
    tx.append_change(NewChange {
        topic: Topic::Units,
        kind: kind.into(),
        entity: u.id.to_string(),
        lon: Some(u.position.lon),
        lat: Some(u.position.lat),
        payload: json!({"unit": u}),
    })
}

/// Moves the event's units with its new state (called inside the transition's transaction):
/// handling → en-route units on scene at the event; feedback → returning; back to reported or a
/// terminal state → released (available at their base).
pub fn follow_event(tx: &mut Tx, e: &mut Event) -> DbResult<()> {
    let rows = tx.query(&format!("SELECT {UNIT_COLS} FROM units WHERE event_id = $1 ORDER BY id"), &[e.id.into()])?;
    for r in rows {
        let mut u = unit_from_row(&r)?;
        let before = (u.status, u.event_id);
        match e.state {
            EventState::Handling => {
                if u.status == UnitStatus::EnRoute {
                    u.status = UnitStatus::OnScene;
                    u.position = e.location;
                }
            }
            EventState::Feedback => {
                if matches!(u.status, UnitStatus::EnRoute | UnitStatus::OnScene) {
                    u.status = UnitStatus::Returning;
                }
            }
            EventState::Reported | EventState::Closed | EventState::Cancelled | EventState::Rejected => {
                if u.status != UnitStatus::OutOfService {
                    u.status = UnitStatus::Available;
                }
                u.position = u.base;
                u.event_id = None;
            }
            EventState::Dispatched => {}
        }
        if (u.status, u.event_id) != before {
            save_unit(tx, &mut u, "status")?;
        }
    }
    if e.state == EventState::Reported {
        e.units.clear();
    }
    Ok(())
}

/// Units per station kind: police stations 2 police, fire stations 2 fire engines, hospitals 1
/// ambulance, government offices 1 city-management and 1 gas-emergency crew.
fn station_units(k: PoiKind) -> &'static [UnitKind] {
    match k {
        PoiKind::PoliceStation => &[UnitKind::Police, UnitKind::Police],
        PoiKind::FireStation => &[UnitKind::Fire, UnitKind::Fire],
        PoiKind::Hospital => &[UnitKind::Ambulance],
        PoiKind::Government => &[UnitKind::CityManagement, UnitKind::GasEmergency],
        _ => &[],
    }
}

/// Seeds units from the model's stations when the table is empty (deterministic: POIs in id
/// order). Returns how many were created.
pub async fn seed_from_model(live: &LiveState) -> DbResult<usize> {
    let b = live.app.current.load_full();
    let mut plan: Vec<(UnitKind, LonLat, u32)> = Vec::new();
    for p in &b.loaded.model.pois {
        for k in station_units(p.kind) {
            plan.push((*k, LonLat { lon: p.location.x(), lat: p.location.y() }, p.id));
        }
    }
    live.db
        .write(move |tx| -> DbResult<usize> {
            if tx.backend() == super::db::Backend::Postgres {
                tx.query("SELECT pg_advisory_xact_lock(7346510294)", &[])?;
            }
            if tx.query("SELECT COUNT(*) FROM units", &[])?.first().map(|r| r.i64(0)).unwrap_or(0) > 0 {
                return Ok(0);
            }
            let mut per_kind: HashMap<UnitKind, usize> = HashMap::new();
            for (kind, at, poi) in &plan {
                let id = tx.next_id("units")?;
                let n = per_kind.entry(*kind).or_default();
                *n += 1;
                let name = format!("{}-{}", kind.name_zh(), n);
                tx.exec(
                    &format!("INSERT INTO units ({UNIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"),
                    &[id.into(), kind.as_str().into(), name.into(), "available".into(), at.lon.into(), at.lat.into(), at.lon.into(), at.lat.into(), (*poi).into(), Val::Null, tx.now_ms().into()],
                )?;
            }
            Ok(plan.len())
        })
        .await
}

/// Speed assumed for a unit kind without a road network (km/h).
pub fn kind_speed_kmh(k: UnitKind) -> f64 {
    match k {
        UnitKind::Police => 45.0,
        UnitKind::Fire => 40.0,
        UnitKind::Ambulance => 45.0,
        UnitKind::CityManagement => 30.0,
        UnitKind::GasEmergency => 35.0,
    }
}

/// Great-circle metres (haversine, mean Earth radius).
pub fn distance_m(a: LonLat, b: LonLat) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dp = p2 - p1;
    let dl = (b.lon - a.lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * h.sqrt().asin()
}

/// Detour factor from straight line to road distance in a grid city.
pub const DETOUR: f64 = 1.3;

pub fn straight_line_eta(u: &Unit, to: LonLat) -> (f64, f64) {
    let d = distance_m(u.position, to) * DETOUR;
    (d / (kind_speed_kmh(u.kind) / 3.6), d)
}

/// Upper bound of the road-network search: units more than an hour away are not recommended.
pub const MAX_ETA_S: f64 = 3600.0;

/// A ranking and how it was computed.
pub struct Ranking {
    pub recommendations: Vec<Recommendation>,
    /// `road_network` or `straight_line`.
    pub method: &'static str,
    /// Why the road network was not used, when it was not.
    pub note: Option<String>,
}

/// Ranks candidate units for an event, fastest first: by travel time over the model's road
/// network (`scenes::routing`: the k fastest within [`MAX_ETA_S`], each with its route
/// geometry; units that cannot reach the event are left out), else — a model without routable
/// roads, or an event outside the network — by [`straight_line_eta`], saying why in `note`.
pub fn rank_units(graph: Option<&scenes::routing::RoadGraph>, candidates: Vec<Unit>, e: &Event, k: usize) -> Ranking {
    let to = (e.location.lon, e.location.lat);
    let note = match graph {
        Some(g) => {
            let cands: Vec<(usize, f64, f64)> = candidates.iter().enumerate().map(|(i, u)| (i, u.position.lon, u.position.lat)).collect();
            match g.nearest_units(to, &cands, k, MAX_ETA_S) {
                Ok(ranked) => {
                    let recommendations = ranked
                        .into_iter()
                        .map(|r| {
                            let unit = candidates[r.id].clone();
                            let route = g
                                .route((unit.position.lon, unit.position.lat), to)
                                .map(|rt| rt.geometry.0.iter().map(|c| [c.x, c.y]).collect())
                                .ok();
                            Recommendation { unit, eta_s: r.eta_s, distance_m: r.distance_m, method: "road_network".into(), route }
                        })
                        .collect();
                    return Ranking { recommendations, method: "road_network", note: None };
                }
                Err(err) => format!("road network not usable for event {}: {err}; straight-line estimate", e.id),
            }
        }
        None => "the model has no routable road network; straight-line estimate".to_string(),
    };
    let mut recs: Vec<Recommendation> = candidates
        .into_iter()
        .map(|u| {
            let (eta_s, distance_m) = straight_line_eta(&u, e.location);
            Recommendation { unit: u, eta_s, distance_m, method: "straight_line".into(), route: None }
        })
        .collect();
    recs.sort_by(|a, b| a.eta_s.total_cmp(&b.eta_s).then(a.unit.id.cmp(&b.unit.id)));
    recs.truncate(k);
    Ranking { recommendations: recs, method: "straight_line", note: Some(note) }
}

// ---------------------------------------------------------------- HTTP

fn parse_id(what: &str, s: &str) -> Result<i64, LiveError> {
    s.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| LiveError::bad("bad_id", format!("{what} id must be a positive integer: '{s}'")))
}

/// `GET /api/units[?status=&kind=&bbox=]`.
pub async fn list_route(State(live): State<LiveState>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, LiveError> {
    let bbox = match q.get("bbox") {
        Some(b) => Some(Bbox::parse(b).ok_or_else(|| LiveError::bad("bad_query", format!("GET /api/units: bbox must be west,south,east,north: '{b}'")))?),
        None => None,
    };
    let status = match q.get("status") {
        Some(s) => Some(UnitStatus::parse(s).ok_or_else(|| LiveError::bad("bad_query", format!("GET /api/units: unknown status '{s}'")))?),
        None => None,
    };
    let kind = match q.get("kind") {
        Some(s) => Some(UnitKind::parse(s).ok_or_else(|| LiveError::bad("bad_query", format!("GET /api/units: unknown kind '{s}'")))?),
        None => None,
    };
    let units: Vec<Unit> = live
        .db
        .read(move |c| load_units(c, bbox))
        .await?
        .into_iter()
        .filter(|u| status.is_none_or(|s| u.status == s) && kind.is_none_or(|k| u.kind == k))
        .collect();
    Ok(Json(json!({"count": units.len(), "units": units})))
}

pub async fn get_route(State(live): State<LiveState>, Path(id): Path<String>) -> Result<Json<Unit>, LiveError> {
    let id = parse_id("unit", &id)?;
    live.db
        .read(move |c| c.query(&format!("SELECT {UNIT_COLS} FROM units WHERE id = $1"), &[id.into()])?.first().map(unit_from_row).transpose())
        .await?
        .map(Json)
        .ok_or_else(|| LiveError::not_found(format!("no unit {id}")))
}

/// `POST /api/events/{id}/assign {unit_id, actor[, note]}`: in one transaction the unit (must be
/// available) goes en route to the event, and the event goes reported → dispatched (or, already
/// dispatched or handling, gets a reinforcement). Anything else is 409 and changes nothing.
pub async fn assign_route(State(live): State<LiveState>, Path(id): Path<String>, body: Result<Bytes, BytesRejection>) -> Result<Json<Value>, LiveError> {
    let id = parse_id("event", &id)?;
    let at = format!("POST /api/events/{id}/assign");
    let req: AssignRequest = parse_body(body, &at)?;
    if req.actor.trim().is_empty() {
        return Err(LiveError::bad("invalid_field", format!("{at}: actor must not be empty")));
    }
    let cats = live.cats.clone();
    let (e, u) = live
        .db
        .write(move |tx| -> Result<(Event, Unit), LiveError> {
            let (mut e, since) = load_event_tx(tx, id)?.ok_or_else(|| LiveError::not_found(format!("no event {id}")))?;
            let mut u = load_unit_tx(tx, req.unit_id)?.ok_or_else(|| LiveError::not_found(format!("{at}: no unit {}", req.unit_id)))?;
            if !matches!(e.state, EventState::Reported | EventState::Dispatched | EventState::Handling) {
                return Err(LiveError::conflict(
                    "invalid_transition",
                    format!("event {id} is {} ({}); units can be assigned only while reported, dispatched or handling", e.state.as_str(), e.state.name_zh()),
                ));
            }
            if u.status != UnitStatus::Available {
                return Err(LiveError::conflict(
                    "unit_unavailable",
                    format!("unit {} ({}) is {} ({}){}; only an available unit can be assigned", u.id, u.name, u.status.as_str(), u.status.name_zh(),
                        u.event_id.map(|x| format!(" on event {x}")).unwrap_or_default()),
                ));
            }
            let now = tx.now_ms();
            u.status = UnitStatus::EnRoute;
            u.event_id = Some(id);
            save_unit(tx, &mut u, "assigned")?;
            e.units.push(u.id);
            e.updated_at = ts_from_ms(now);
            let note = req.note.clone().unwrap_or_else(|| format!("unit {} ({})", u.id, u.name));
            let (log, stage_since) = if e.state == EventState::Reported {
                e.state = EventState::Dispatched;
                e.due_at = cats.due_for(e.category, e.state, now).map(ts_from_ms);
                (append_log(tx, id, Some(EventState::Reported), EventState::Dispatched, "assigned", &req.actor, Some(&note), None)?, now)
            } else {
                (append_log(tx, id, Some(e.state), e.state, "assigned", &req.actor, Some(&note), None)?, since)
            };
            save_event(tx, &e, stage_since, "assigned", false, &log)?;
            Ok((e, u))
        })
        .await?;
    Ok(Json(json!({"event": e, "unit": u})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusRequest {
    status: UnitStatus,
    actor: String,
    #[serde(default)]
    position: Option<LonLat>,
}

/// `POST /api/units/{id}/status {status, actor[, position]}`: field reports (position updates,
/// back in service, out of service). A unit made available or out of service leaves its event.
pub async fn status_route(State(live): State<LiveState>, Path(id): Path<String>, body: Result<Bytes, BytesRejection>) -> Result<Json<Unit>, LiveError> {
    let id = parse_id("unit", &id)?;
    let at = format!("POST /api/units/{id}/status");
    let req: StatusRequest = parse_body(body, &at)?;
    if req.actor.trim().is_empty() {
        return Err(LiveError::bad("invalid_field", format!("{at}: actor must not be empty")));
    }
    if let Some(p) = req.position {
        if !(p.lon.is_finite() && p.lat.is_finite() && (-180.0..=180.0).contains(&p.lon) && (-90.0..=90.0).contains(&p.lat)) {
            return Err(LiveError::bad("out_of_range", format!("{at}: position {}, {} is not a WGS-84 lon/lat", p.lon, p.lat)));
        }
    }
    if matches!(req.status, UnitStatus::EnRoute) {
        return Err(LiveError::conflict("invalid_transition", format!("{at}: a unit goes en_route only by POST /api/events/{{id}}/assign")));
    }
    let u = live
        .db
        .write(move |tx| -> Result<Unit, LiveError> {
            let mut u = load_unit_tx(tx, id)?.ok_or_else(|| LiveError::not_found(format!("no unit {id}")))?;
            u.status = req.status;
            if let Some(p) = req.position {
                u.position = p;
            }
            if matches!(req.status, UnitStatus::Available | UnitStatus::OutOfService) {
                u.event_id = None;
            }
            save_unit(tx, &mut u, "status")?;
            Ok(u)
        })
        .await?;
    Ok(Json(u))
}

/// `GET /api/events/{id}/recommend[?k=3]`: the k available units of the kinds the event's
/// category calls for, fastest first.
pub async fn recommend_route(State(live): State<LiveState>, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, LiveError> {
    let id = parse_id("event", &id)?;
    let k = match q.get("k") {
        None => 3,
        Some(v) => v.parse::<usize>().ok().filter(|k| (1..=100).contains(k)).ok_or_else(|| LiveError::bad("bad_query", format!("k must be 1–100: '{v}'")))?,
    };
    let (e, units) = live
        .db
        .read_snapshot(move |c| {
            let e = super::events::load_event(c, id)?;
            let units = c.query(&format!("SELECT {UNIT_COLS} FROM units WHERE status = 'available' ORDER BY id"), &[])?.iter().map(unit_from_row).collect::<DbResult<Vec<_>>>()?;
            Ok((e, units))
        })
        .await?;
    let e = e.ok_or_else(|| LiveError::not_found(format!("no event {id}")))?;
    let kinds = &live.cats.get(e.category).units;
    let candidates: Vec<Unit> = units.into_iter().filter(|u| kinds.contains(&u.kind)).collect();
    let graph = live.app.current.load().roads.clone();
    let kinds_json = json!(kinds);
    let r = tokio::task::spawn_blocking(move || rank_units(graph.as_deref(), candidates, &e, k))
        .await
        .map_err(|err| LiveError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("recommendation for event {id}: {err}")))?;
    let mut body = json!({"event_id": id, "kinds": kinds_json, "method": r.method, "recommendations": r.recommendations});
    if r.method == "straight_line" {
        body["detour_factor"] = json!(DETOUR);
    }
    if let Some(n) = r.note {
        body["note"] = json!(n);
    }
    Ok(Json(body))
}
