//! Dispatch units: seeded from the model's stations, status + position, assignment to events
//! (event → dispatched and unit → en_route in ONE transaction) and the k-nearest recommendation.
//!
//! Recommendation ranks by travel time over the model's road network (`scenes::routing`, the
//! graph is built once per loaded build: `Build::roads`) with route geometry; without a routable
//! network it falls back to straight-line distance × a detour factor at each kind's speed
//! ([`straight_line_eta`]) and says so (`method`, `note`).

use super::db::{Conn, DbResult, NewChange, Row, Tx, Val};
use super::events::{append_log, load_event_tx, save_event};
use super::{LiveError, LiveState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use scenes::model::PoiKind;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use twin_protocol::{ts_from_ms, AssignRequest, Bbox, Event, EventState, LonLat, Recommendation, RoutePurpose, Topic, Unit, UnitKind, UnitRoute, UnitStatus};

pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE units (id BIGINT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
        lon DOUBLE PRECISION NOT NULL, lat DOUBLE PRECISION NOT NULL, base_lon DOUBLE PRECISION NOT NULL, base_lat DOUBLE PRECISION NOT NULL,
        station_poi BIGINT, event_id BIGINT, updated_ms BIGINT NOT NULL);
     CREATE INDEX units_status ON units (status, kind);
     CREATE INDEX units_event ON units (event_id);",
    // Routes: the trip a unit drives (JSON `UnitRoute`), its id (the mover's arrival condition)
    // and its arrival time (what the mover scans).
    "ALTER TABLE units ADD COLUMN route TEXT;
     ALTER TABLE units ADD COLUMN route_id BIGINT;
     ALTER TABLE units ADD COLUMN eta_ms BIGINT;
     CREATE INDEX units_eta ON units (eta_ms);",
];

pub const UNIT_COLS: &str = "id, kind, name, status, lon, lat, base_lon, base_lat, station_poi, event_id, updated_ms, route";

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
        route: match r.opt_str(11) {
            Some(t) => Some(serde_json::from_str(t).map_err(|e| super::db::DbError(format!("unit {}: bad route in the store: {e}", r.i64(0))))?),
            None => None,
        },
    })
    .map(|mut u| {
        derive_position(&mut u, super::now_ms());
        u
    })
}

/// A moving unit's position is its route's at `now_ms` (deterministic: every replica and every
/// stream client with the route computes the same one without writes).
pub fn derive_position(u: &mut Unit, now_ms: i64) {
    if let (Some(r), UnitStatus::EnRoute | UnitStatus::Returning) = (&u.route, u.status) {
        u.position = r.position_at_ms(now_ms);
    }
}

/// Units (with their current, derived positions), optionally those inside a bbox now.
pub fn load_units(c: &mut dyn Conn, bbox: Option<Bbox>) -> DbResult<Vec<Unit>> {
    let rows = c.query(&format!("SELECT {UNIT_COLS} FROM units ORDER BY id"), &[])?;
    let units = rows.iter().map(unit_from_row).collect::<DbResult<Vec<_>>>()?;
    Ok(match bbox {
        None => units,
        Some(b) => units.into_iter().filter(|u| u.position.lon >= b.0[0] && u.position.lon <= b.0[2] && u.position.lat >= b.0[1] && u.position.lat <= b.0[3]).collect(),
    })
}

fn load_unit_tx(tx: &mut Tx, id: i64) -> DbResult<Option<Unit>> {
    tx.query(&format!("SELECT {UNIT_COLS} FROM units WHERE id = $1"), &[id.into()])?.first().map(unit_from_row).transpose()
}

/// Writes a unit's status/position/event and appends its `units` change.
/// A unit keeps a route only while it drives it (en route or returning).
pub fn save_unit(tx: &mut Tx, u: &mut Unit, kind: &str) -> DbResult<i64> {
    u.updated_at = ts_from_ms(tx.now_ms());
    if !matches!(u.status, UnitStatus::EnRoute | UnitStatus::Returning) {
        u.route = None;
    }
    let route = match &u.route {
        Some(r) => Val::Text(serde_json::to_string(r).map_err(|e| super::db::DbError(format!("unit {}: route: {e}", u.id)))?),
        None => Val::Null,
    };
    tx.exec(
        "UPDATE units SET status = $2, lon = $3, lat = $4, event_id = $5, updated_ms = $6, route = $7, route_id = $8, eta_ms = $9 WHERE id = $1",
        &[
            u.id.into(),
            u.status.as_str().into(),
            u.position.lon.into(),
            u.position.lat.into(),
            u.event_id.into(),
            tx.now_ms().into(),
            route,
            u.route.as_ref().map(|r| r.id).into(),
            u.route.as_ref().map(|r| r.eta_ms()).into(),
        ],
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

/// Speed of the straight access legs between a station or an event and the road it snaps to.
pub const ACCESS_KMH: f64 = 15.0;

/// What planning a trip needs: the served build's road graph and the time speed-up.
#[derive(Clone)]
pub struct Travel {
    pub graph: Option<Arc<scenes::routing::RoadGraph>>,
    pub speedup: f64,
}

impl Travel {
    pub fn of(live: &LiveState) -> Travel {
        Travel { graph: live.app.current.load().roads.clone(), speedup: live.speedup }
    }
}

/// Plans a trip from `from` to `to` departing at `depart_ms`: over the road network when the
/// model has one and both ends are near it, else straight line × [`DETOUR`] at the kind's speed
/// (with a note saying why). Vertex times are wall-clock seconds (travel time ÷ speed-up).
pub fn plan_route(travel: &Travel, id: i64, kind: UnitKind, purpose: RoutePurpose, from: LonLat, to: LonLat, depart_ms: i64) -> UnitRoute {
    let speedup = if travel.speedup.is_finite() && travel.speedup > 0.0 { travel.speedup } else { 1.0 };
    let (geometry, times, length_m, travel_s, method, note) = match travel.graph.as_deref().map(|g| g.route((from.lon, from.lat), (to.lon, to.lat))) {
        Some(Ok(r)) if r.geometry.0.len() >= 2 => {
            // The route runs between the points snapped onto the roads; a station or an event
            // off the road is joined to it by a straight access leg at ACCESS_KMH, so the unit
            // leaves from where it stands and stops at the event itself.
            let mut geometry: Vec<[f64; 2]> = r.geometry.0.iter().map(|c| [c.x, c.y]).collect();
            let mut times = r.vertex_time_s.clone();
            let (mut len, mut dur) = (r.length_m, r.duration_s);
            let access = |a: LonLat, b: [f64; 2]| distance_m(a, LonLat { lon: b[0], lat: b[1] });
            let d0 = access(from, geometry[0]);
            if d0 >= 1.0 {
                let t = d0 / (ACCESS_KMH / 3.6);
                times.iter_mut().for_each(|x| *x += t);
                geometry.insert(0, [from.lon, from.lat]);
                times.insert(0, 0.0);
                len += d0;
                dur += t;
            }
            let d1 = access(to, geometry[geometry.len() - 1]);
            if d1 >= 1.0 {
                let t = d1 / (ACCESS_KMH / 3.6);
                geometry.push([to.lon, to.lat]);
                len += d1;
                dur += t;
                times.push(dur);
            }
            (geometry, times, len, dur, "road_network", None)
        }
        other => {
            let note = match other {
                Some(Err(e)) => format!("road network not usable: {e}; straight line"),
                Some(Ok(_)) => "start and destination snap to the same point of the road network; straight line".to_string(),
                None => "the model has no routable road network; straight line".to_string(),
            };
            let d = distance_m(from, to) * DETOUR;
            let t = d / (kind_speed_kmh(kind) / 3.6);
            (vec![[from.lon, from.lat], [to.lon, to.lat]], vec![0.0, t], d, t, "straight_line", Some(note))
        }
    };
    let vertex_time_s: Vec<f64> = times.iter().map(|t| t / speedup).collect();
    let wall_s = travel_s / speedup;
    UnitRoute {
        id,
        purpose,
        method: method.into(),
        geometry,
        vertex_time_s,
        length_m,
        travel_time_s: travel_s,
        speedup,
        depart_at: ts_from_ms(depart_ms),
        eta_at: ts_from_ms(depart_ms + (wall_s * 1000.0).ceil() as i64),
        note,
    }
}

/// Sends a unit (inside the caller's transaction) driving: to `to` en route, or home returning.
pub fn send_unit(tx: &mut Tx, travel: &Travel, u: &mut Unit, status: UnitStatus, to: LonLat) -> DbResult<()> {
    let id = tx.next_id("unit_routes")?;
    let purpose = if status == UnitStatus::Returning { RoutePurpose::ToBase } else { RoutePurpose::ToEvent };
    let r = plan_route(travel, id, u.kind, purpose, u.position, to, tx.now_ms());
    u.status = status;
    u.route = Some(r);
    Ok(())
}

/// Moves the event's units with its new state (called inside the transition's transaction):
/// handling → en-route units on scene at the event (an operator's word overrides the route);
/// feedback → the units drive back to base (returning); back to reported or a terminal state →
/// released (no event) and driving back unless already at base.
pub fn follow_event(tx: &mut Tx, travel: &Travel, e: &mut Event) -> DbResult<()> {
    let rows = tx.query(&format!("SELECT {UNIT_COLS} FROM units WHERE event_id = $1 ORDER BY id"), &[e.id.into()])?;
    for r in rows {
        let mut u = unit_from_row(&r)?;
        let before = (u.status, u.event_id);
        let home = |tx: &mut Tx, u: &mut Unit| -> DbResult<()> {
            if distance_m(u.position, u.base) < 1.0 {
                u.status = UnitStatus::Available;
                u.position = u.base;
                Ok(())
            } else {
                let base = u.base;
                send_unit(tx, travel, u, UnitStatus::Returning, base)
            }
        };
        match e.state {
            EventState::Handling => {
                if u.status == UnitStatus::EnRoute {
                    u.status = UnitStatus::OnScene;
                    u.position = e.location;
                }
            }
            EventState::Feedback => {
                if matches!(u.status, UnitStatus::EnRoute | UnitStatus::OnScene) {
                    home(tx, &mut u)?;
                }
            }
            EventState::Reported | EventState::Closed | EventState::Cancelled | EventState::Rejected => {
                if matches!(u.status, UnitStatus::EnRoute | UnitStatus::OnScene) {
                    home(tx, &mut u)?;
                }
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

/// City-management and gas-emergency crews are based at government offices; a city has few of
/// those (the built-in Shenyang has one, the municipal government), which would leave one crew of
/// each kind for the whole city. So every district without a government office inside it gets
/// one city-management and one gas-emergency crew at its first police station (POI id order),
/// or, without one, at the police station nearest its centroid.
pub fn district_crews(m: &scenes::model::CityModel) -> Vec<(UnitKind, LonLat, u32)> {
    use geo::{Centroid, Contains};
    let mut out = Vec::new();
    for d in &m.districts {
        let inside = |k: PoiKind| m.pois.iter().filter(move |p| p.kind == k && d.geometry.contains(&p.location));
        if inside(PoiKind::Government).next().is_some() {
            continue;
        }
        // Its first police station, else the police station nearest its centroid.
        let station = inside(PoiKind::PoliceStation).min_by_key(|p| p.id).or_else(|| {
            let c = d.geometry.centroid()?;
            m.pois.iter().filter(|p| p.kind == PoiKind::PoliceStation).min_by(|a, b| {
                let da = distance_m(LonLat { lon: a.location.x(), lat: a.location.y() }, LonLat { lon: c.x(), lat: c.y() });
                let db = distance_m(LonLat { lon: b.location.x(), lat: b.location.y() }, LonLat { lon: c.x(), lat: c.y() });
                da.total_cmp(&db).then(a.id.cmp(&b.id))
            })
        });
        if let Some(p) = station {
            for k in [UnitKind::CityManagement, UnitKind::GasEmergency] {
                out.push((k, LonLat { lon: p.location.x(), lat: p.location.y() }, p.id));
            }
        }
    }
    out
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
    plan.extend(district_crews(&b.loaded.model));
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
                    "INSERT INTO units (id, kind, name, status, lon, lat, base_lon, base_lat, station_poi, event_id, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
/// available) goes en route to the event along its planned route, and the event goes reported →
/// dispatched (or, already dispatched or handling, gets a reinforcement). Anything else is 409 and
/// changes nothing.
pub async fn assign_route(State(live): State<LiveState>, Path(id): Path<String>, body: Result<Bytes, BytesRejection>) -> Result<Json<Value>, LiveError> {
    let id = parse_id("event", &id)?;
    let at = format!("POST /api/events/{id}/assign");
    let req: AssignRequest = twin_protocol::payload::assign_request(&super::body_bytes(body, &at)?, &at)?;
    let (e, u) = assign(&live, id, req).await?;
    Ok(Json(json!({"event": e, "unit": u})))
}

/// The assignment itself (the HTTP route and the simulator's dispatcher).
pub async fn assign(live: &LiveState, id: i64, req: AssignRequest) -> Result<(Event, Unit), LiveError> {
    let at = format!("POST /api/events/{id}/assign");
    let cats = live.cats.clone();
    let travel = Travel::of(live);
    live.db
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
            send_unit(tx, &travel, &mut u, UnitStatus::EnRoute, e.location)?;
            u.event_id = Some(id);
            save_unit(tx, &mut u, "assigned")?;
            e.units.push(u.id);
            e.updated_at = ts_from_ms(now);
            let eta = u.route.as_ref().map(|r| format!(", ETA {:.0} s ({})", r.travel_time_s, r.method)).unwrap_or_default();
            let note = req.note.clone().unwrap_or_else(|| format!("unit {} ({}){eta}", u.id, u.name));
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
        .await
}

// ---------------------------------------------------------------- the mover

/// Every 500 ms each replica commits the arrivals that are due: a unit en route whose trip has
/// reached its ETA goes on scene at its event (and a dispatched event goes to handling: 处置 starts
/// when the first unit arrives); a returning unit becomes available at its base. The claim is a
/// conditional UPDATE on (id, status, route_id): the first replica to commit wins, the other's
/// UPDATE matches no row and writes nothing, so each arrival is committed exactly once.
pub fn spawn_mover(live: LiveState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match move_once(&live).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(arrivals = n, "units arrived"),
                Err(e) => tracing::warn!("unit mover: {}", e.message),
            }
        }
    });
}

/// Commits the arrivals due now; returns how many this process committed.
pub async fn move_once(live: &LiveState) -> Result<usize, LiveError> {
    let now = super::now_ms();
    let due: Vec<(i64, i64, String)> = live
        .db
        .read(move |c| {
            Ok(c.query("SELECT id, route_id, status FROM units WHERE route_id IS NOT NULL AND eta_ms <= $1 AND status IN ('en_route', 'returning') ORDER BY id", &[now.into()])?
                .iter()
                .map(|r| (r.i64(0), r.i64(1), r.str(2).to_string()))
                .collect())
        })
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let cats = live.cats.clone();
    let n = live
        .db
        .write(move |tx| -> Result<usize, LiveError> {
            let mut n = 0;
            for (id, route_id, status) in due {
                // The claim: only while still driving this very trip.
                if tx.exec("UPDATE units SET route_id = NULL WHERE id = $1 AND route_id = $2 AND status = $3", &[id.into(), route_id.into(), status.as_str().into()])? == 0 {
                    continue;
                }
                let Some(mut u) = load_unit_tx(tx, id)? else { continue };
                if u.status == UnitStatus::Returning {
                    u.status = UnitStatus::Available;
                    u.position = u.base;
                    u.event_id = None;
                    save_unit(tx, &mut u, "arrived")?;
                } else {
                    let ev = match u.event_id {
                        Some(eid) => load_event_tx(tx, eid)?,
                        None => None,
                    };
                    u.status = UnitStatus::OnScene;
                    if let Some((e, _)) = &ev {
                        u.position = e.location;
                    }
                    save_unit(tx, &mut u, "arrived")?;
                    if let Some((mut e, _)) = ev.filter(|(e, _)| e.state == EventState::Dispatched) {
                        let from = e.state;
                        let now = tx.now_ms();
                        e.state = EventState::Handling;
                        e.updated_at = ts_from_ms(now);
                        e.due_at = cats.due_for(e.category, e.state, now).map(ts_from_ms);
                        let note = format!("unit {} ({}) on scene", u.id, u.name);
                        let log = append_log(tx, e.id, Some(from), EventState::Handling, "arrived", &format!("unit:{}", u.id), Some(&note), None)?;
                        save_event(tx, &e, now, "arrived", false, &log)?;
                    }
                }
                n += 1;
            }
            Ok(n)
        })
        .await?;
    super::metrics::METRICS.arrivals.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(n)
}

/// `POST /api/units/{id}/status {status, actor[, position]}`: field reports (position updates,
/// back in service, out of service). A unit made available or out of service leaves its event.
pub async fn status_route(State(live): State<LiveState>, Path(id): Path<String>, body: Result<Bytes, BytesRejection>) -> Result<Json<Unit>, LiveError> {
    let id = parse_id("unit", &id)?;
    let at = format!("POST /api/units/{id}/status");
    let req = twin_protocol::payload::status_request(&super::body_bytes(body, &at)?, &at)?;
    if matches!(req.status, UnitStatus::EnRoute) {
        return Err(LiveError::conflict("invalid_transition", format!("{at}: a unit goes en_route only by POST /api/events/{{id}}/assign")));
    }
    let travel = Travel::of(&live);
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
            if req.status == UnitStatus::Returning {
                let base = u.base;
                send_unit(tx, &travel, &mut u, UnitStatus::Returning, base)?;
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
    let (kinds, r) = recommend(&live, id, k).await?;
    let mut body = json!({"event_id": id, "kinds": kinds, "method": r.method, "recommendations": r.recommendations});
    if r.method == "straight_line" {
        body["detour_factor"] = json!(DETOUR);
    }
    if let Some(n) = r.note {
        body["note"] = json!(n);
    }
    Ok(Json(body))
}

/// The recommendation itself (the HTTP route and the simulator's dispatcher): the category's
/// unit kinds and the ranking.
pub async fn recommend(live: &LiveState, id: i64, k: usize) -> Result<(Vec<UnitKind>, Ranking), LiveError> {
    let (e, units) = live
        .db
        .read_snapshot(move |c| {
            let e = super::events::load_event(c, id)?;
            let units = c.query(&format!("SELECT {UNIT_COLS} FROM units WHERE status = 'available' ORDER BY id"), &[])?.iter().map(unit_from_row).collect::<DbResult<Vec<_>>>()?;
            Ok((e, units))
        })
        .await?;
    let e = e.ok_or_else(|| LiveError::not_found(format!("no event {id}")))?;
    let kinds = live.cats.get(e.category).units.clone();
    let candidates: Vec<Unit> = units.into_iter().filter(|u| kinds.contains(&u.kind)).collect();
    let graph = live.app.current.load().roads.clone();
    let r = tokio::task::spawn_blocking(move || rank_units(graph.as_deref(), candidates, &e, k))
        .await
        .map_err(|err| LiveError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("recommendation for event {id}: {err}")))?;
    Ok((kinds, r))
}
