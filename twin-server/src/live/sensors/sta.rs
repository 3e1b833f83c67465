//! SensorThings API 1.1 REST subset under `/api/sta/v1.1/`: the six entity sets (create, list,
//! get), navigation (`Things(1)/Datastreams`, `Datastreams(1)/Observations`, `Observations(1)/Datastream`,
//! …), `@iot.id`, `@iot.selfLink`, `@iot.navigationLink`, `@iot.count`, `@iot.nextLink`, the query
//! options `$top`, `$skip`, `$count`, `$orderby` and (Observations) `$filter`, and the
//! `CreateObservations` dataArray extension.

use super::{filter, ingest, ObsIn};
use crate::live::db::{Row, Tx, Val};
use crate::live::{LiveError, LiveState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use twin_protocol::sta_entity::{Entity, NewEntity};

const BASE: &str = "/api/sta/v1.1";
const SETS: [&str; 6] = ["Things", "Locations", "Sensors", "ObservedProperties", "Datastreams", "Observations"];

fn base_url(h: &HeaderMap) -> String {
    let host = h.get("host").and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}{BASE}")
}

fn table(set: &str) -> &'static str {
    match set {
        "Things" => "sta_things",
        "Locations" => "sta_locations",
        "Sensors" => "sta_sensors",
        "ObservedProperties" => "sta_observed_properties",
        "Datastreams" => "sta_datastreams",
        _ => "sta_observations",
    }
}

fn cols(set: &str) -> &'static str {
    match set {
        "Things" => "id, name, description, properties",
        "Locations" => "id, name, description, encoding_type, location, thing_id",
        "Sensors" => "id, name, description, encoding_type, metadata",
        "ObservedProperties" => "id, name, definition, description",
        "Datastreams" => "id, name, description, observation_type, unit, sensor_type, properties, thing_id, sensor_id, observed_property_id",
        _ => "id, datastream_id, phenomenon_ms, result_time_ms, result, result_str",
    }
}

fn navs(set: &str) -> &'static [&'static str] {
    match set {
        "Things" => &["Locations", "Datastreams"],
        "Locations" => &["Things"],
        "Sensors" | "ObservedProperties" => &["Datastreams"],
        "Datastreams" => &["Thing", "Sensor", "ObservedProperty", "Observations"],
        _ => &["Datastream"],
    }
}

fn json_text(s: Option<&str>) -> Value {
    s.and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null)
}

fn entity(set: &str, r: &Row, base: &str) -> Value {
    let id = r.i64(0);
    let mut m = Map::new();
    m.insert("@iot.id".into(), json!(id));
    m.insert("@iot.selfLink".into(), json!(format!("{base}/{set}({id})")));
    match set {
        "Things" => {
            m.insert("name".into(), json!(r.str(1)));
            m.insert("description".into(), json!(r.str(2)));
            m.insert("properties".into(), json_text(r.opt_str(3)));
        }
        "Locations" => {
            m.insert("name".into(), json!(r.str(1)));
            m.insert("description".into(), json!(r.str(2)));
            m.insert("encodingType".into(), json!(r.str(3)));
            m.insert("location".into(), json_text(Some(r.str(4))));
        }
        "Sensors" => {
            m.insert("name".into(), json!(r.str(1)));
            m.insert("description".into(), json!(r.str(2)));
            m.insert("encodingType".into(), json!(r.str(3)));
            m.insert("metadata".into(), json!(r.str(4)));
        }
        "ObservedProperties" => {
            m.insert("name".into(), json!(r.str(1)));
            m.insert("definition".into(), json!(r.str(2)));
            m.insert("description".into(), json!(r.str(3)));
        }
        "Datastreams" => {
            m.insert("name".into(), json!(r.str(1)));
            m.insert("description".into(), json!(r.str(2)));
            m.insert("observationType".into(), json!(r.str(3)));
            m.insert("unitOfMeasurement".into(), json_text(Some(r.str(4))));
            let mut p = json_text(r.opt_str(6));
            if !p.is_object() {
                p = json!({});
            }
            p["sensorType"] = json!(r.str(5));
            m.insert("properties".into(), p);
        }
        _ => {
            m.insert("phenomenonTime".into(), json!(twin_protocol::ts_from_ms(r.i64(2))));
            m.insert("resultTime".into(), r.opt_i64(3).map(|t| json!(twin_protocol::ts_from_ms(t))).unwrap_or(Value::Null));
            m.insert("result".into(), r.opt_f64(4).map(|v| json!(v)).unwrap_or_else(|| json!(r.opt_str(5))));
        }
    }
    for n in navs(set) {
        m.insert(format!("{n}@iot.navigationLink"), json!(format!("{base}/{set}({id})/{n}")));
    }
    Value::Object(m)
}

/// `Name` or `Name(id)`.
fn segment(s: &str) -> Result<(&str, Option<i64>), LiveError> {
    match s.find('(') {
        None => Ok((s, None)),
        Some(i) if s.ends_with(')') => {
            let id = s[i + 1..s.len() - 1].parse::<i64>().map_err(|_| LiveError::bad("bad_path", format!("path segment '{s}': the id must be an integer")))?;
            Ok((&s[..i], Some(id)))
        }
        _ => Err(LiveError::bad("bad_path", format!("path segment '{s}': expected Name or Name(id)"))),
    }
}

struct Opts {
    top: i64,
    skip: i64,
    count: bool,
    orderby: String,
    filter: Option<filter::Expr>,
}

fn parse_opts(q: &HashMap<String, String>, set: &str) -> Result<Opts, LiveError> {
    for k in q.keys() {
        if k.starts_with('$') && !matches!(k.as_str(), "$top" | "$skip" | "$count" | "$orderby" | "$filter") {
            return Err(LiveError::bad("bad_query", format!("query option '{k}' is not supported (supported: $top, $skip, $count, $orderby, $filter)")));
        }
    }
    let num = |k: &str, d: i64, max: i64| -> Result<i64, LiveError> {
        match q.get(k) {
            None => Ok(d),
            Some(v) => v.parse::<i64>().ok().filter(|n| (0..=max).contains(n)).ok_or_else(|| LiveError::bad("bad_query", format!("{k}={v}: expected an integer in 0..={max}"))),
        }
    };
    let top = num("$top", 100, 10_000)?;
    let skip = num("$skip", 0, i64::MAX / 2)?;
    let count = match q.get("$count").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(LiveError::bad("bad_query", format!("$count={v}: expected true or false"))),
    };
    let mut order = Vec::new();
    if let Some(ob) = q.get("$orderby") {
        for part in ob.split(',') {
            let mut w = part.split_whitespace();
            let prop = w.next().ok_or_else(|| LiveError::bad("bad_query", format!("$orderby '{ob}': empty item")))?;
            let col = match (set, prop) {
                (_, "id" | "@iot.id") => "id",
                ("Observations", "phenomenonTime") => "phenomenon_ms",
                ("Observations", "resultTime") => "result_time_ms",
                ("Observations", "result") => "result",
                (s, "name") if s != "Observations" => "name",
                _ => return Err(LiveError::bad("bad_query", format!("$orderby: cannot order {set} by '{prop}'"))),
            };
            let dir = match w.next() {
                None | Some("asc") => "ASC",
                Some("desc") => "DESC",
                Some(d) => return Err(LiveError::bad("bad_query", format!("$orderby: '{d}' after '{prop}' is neither asc nor desc"))),
            };
            if w.next().is_some() {
                return Err(LiveError::bad("bad_query", format!("$orderby item '{part}': expected 'property [asc|desc]'")));
            }
            order.push(format!("{col} {dir}"));
        }
    }
    order.push("id ASC".into());
    let filter = match q.get("$filter") {
        None => None,
        Some(_) if set != "Observations" => return Err(LiveError::bad("bad_query", format!("$filter is supported on Observations only, not on {set}"))),
        Some(f) => Some(filter::parse(f).map_err(|e| LiveError::bad("bad_filter", format!("$filter '{f}': {e}")))?),
    };
    Ok(Opts { top, skip, count, orderby: order.join(", "), filter })
}

fn query_string(q: &HashMap<String, String>, skip: i64) -> String {
    let mut parts: Vec<(String, String)> = q.iter().filter(|(k, _)| k.as_str() != "$skip").map(|(k, v)| (k.clone(), v.clone())).collect();
    parts.push(("$skip".into(), skip.to_string()));
    parts.sort();
    parts.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$:".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// `GET /api/sta/v1.1`: the entity sets.
pub async fn root_route(headers: HeaderMap) -> Json<Value> {
    let base = base_url(&headers);
    Json(json!({"value": SETS.iter().map(|s| json!({"name": s, "url": format!("{base}/{s}")})).collect::<Vec<_>>(),
                "serverSettings": {"conformance": ["http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel", "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities", "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data", "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete/create-entity", "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array"]}}))
}

/// GET on any resource path.
pub async fn get_route(State(live): State<LiveState>, Path(path): Path<String>, Query(q): Query<HashMap<String, String>>, headers: HeaderMap) -> Result<Json<Value>, LiveError> {
    let base = base_url(&headers);
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let (set0, id0) = segment(segs[0])?;
    let Some(set0) = SETS.iter().copied().find(|s| *s == set0) else {
        return Err(LiveError::not_found(format!("{BASE}/{path}: unknown entity set '{set0}' (one of {})", SETS.join(", "))));
    };
    match (segs.len(), id0) {
        (1, None) => list(&live, set0, None, &q, &base, &path).await,
        (1, Some(id)) => one(&live, set0, "id = $1", id, &base).await,
        (2, Some(id)) => {
            let nav = segs[1];
            if !navs(set0).contains(&nav) {
                return Err(LiveError::not_found(format!("{BASE}/{path}: {set0} has no navigation property '{nav}' (has {})", navs(set0).join(", "))));
            }
            // The parent must exist.
            let _parent = one(&live, set0, "id = $1", id, &base).await?;
            match (set0, nav) {
                ("Things", "Locations") => list(&live, "Locations", Some(("thing_id", id)), &q, &base, &path).await,
                ("Things", "Datastreams") => list(&live, "Datastreams", Some(("thing_id", id)), &q, &base, &path).await,
                ("Sensors", "Datastreams") => list(&live, "Datastreams", Some(("sensor_id", id)), &q, &base, &path).await,
                ("ObservedProperties", "Datastreams") => list(&live, "Datastreams", Some(("observed_property_id", id)), &q, &base, &path).await,
                ("Datastreams", "Observations") => list(&live, "Observations", Some(("datastream_id", id)), &q, &base, &path).await,
                ("Datastreams", "Thing") => one(&live, "Things", "id = (SELECT thing_id FROM sta_datastreams WHERE id = $1)", id, &base).await,
                ("Datastreams", "Sensor") => one(&live, "Sensors", "id = (SELECT sensor_id FROM sta_datastreams WHERE id = $1)", id, &base).await,
                ("Datastreams", "ObservedProperty") => one(&live, "ObservedProperties", "id = (SELECT observed_property_id FROM sta_datastreams WHERE id = $1)", id, &base).await,
                ("Observations", "Datastream") => one(&live, "Datastreams", "id = (SELECT datastream_id FROM sta_observations WHERE id = $1)", id, &base).await,
                ("Locations", "Things") => list(&live, "Things", Some(("id", live.db.read(move |c| Ok(c.query_one("SELECT thing_id FROM sta_locations WHERE id = $1", &[id.into()])?.and_then(|r| r.opt_i64(0)).unwrap_or(-1))).await?)), &q, &base, &path).await,
                _ => unreachable!(),
            }
        }
        _ => Err(LiveError::not_found(format!("{BASE}/{path}: unsupported resource path"))),
    }
}

async fn one(live: &LiveState, set: &'static str, cond: &'static str, id: i64, base: &str) -> Result<Json<Value>, LiveError> {
    let sql = format!("SELECT {} FROM {} WHERE {cond}", cols(set), table(set));
    let r = live.db.read(move |c| c.query_one(&sql, &[id.into()])).await?;
    match r {
        Some(r) => Ok(Json(entity(set, &r, base))),
        None => Err(LiveError::not_found(format!("no {set} for id {id}"))),
    }
}

async fn list(live: &LiveState, set: &'static str, parent: Option<(&'static str, i64)>, q: &HashMap<String, String>, base: &str, path: &str) -> Result<Json<Value>, LiveError> {
    let o = parse_opts(q, set)?;
    let mut params: Vec<Val> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    if let Some((col, id)) = parent {
        params.push(id.into());
        conds.push(format!("{col} = $1"));
    }
    if let Some(f) = &o.filter {
        conds.push(filter::to_sql(f, &mut params));
    }
    let wh = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
    let count_sql = format!("SELECT COUNT(*) FROM {}{wh}", table(set));
    let n = params.len();
    let sql = format!("SELECT {} FROM {}{wh} ORDER BY {} LIMIT ${} OFFSET ${}", cols(set), table(set), o.orderby, n + 1, n + 2);
    let mut p2 = params.clone();
    p2.push((o.top + 1).into());
    p2.push(o.skip.into());
    let want_count = o.count;
    let (rows, count) = live
        .db
        .read_snapshot(move |c| {
            let rows = c.query(&sql, &p2)?;
            let count = if want_count { Some(c.query_one(&count_sql, &params)?.map(|r| r.i64(0)).unwrap_or(0)) } else { None };
            Ok((rows, count))
        })
        .await?;
    // `$top=0` (a count-only request) has no next page.
    let more = o.top > 0 && rows.len() as i64 > o.top;
    let value: Vec<Value> = rows.iter().take(o.top as usize).map(|r| entity(set, r, base)).collect();
    let mut m = Map::new();
    if let Some(c) = count {
        m.insert("@iot.count".into(), json!(c));
    }
    if more {
        m.insert("@iot.nextLink".into(), json!(format!("{base}/{}?{}", path.trim_end_matches('/'), query_string(q, o.skip + o.top))));
    }
    m.insert("value".into(), Value::Array(value));
    Ok(Json(Value::Object(m)))
}

/// Creates (or references with `@iot.id`) an entity inside a write transaction: the body is
/// parsed by [`twin_protocol::sta_entity::entity`], then inserted.
pub(crate) fn create_entity(tx: &mut Tx, set: &str, v: &Value, at: &str, thing_ctx: Option<i64>) -> Result<i64, LiveError> {
    let e = twin_protocol::sta_entity::entity(set, v, at, thing_ctx.is_some())?;
    insert_entity(tx, &e, thing_ctx)
}

/// Inserts a parsed entity tree (deep insert) in the transaction; checks what needs the store:
/// that an `@iot.id` names an entity. `thing_ctx`: the Thing the entity is nested in.
pub(crate) fn insert_entity(tx: &mut Tx, e: &Entity, thing_ctx: Option<i64>) -> Result<i64, LiveError> {
    let n = match e {
        Entity::Ref { set, id, at } => {
            let sql = format!("SELECT id FROM {} WHERE id = $1", table(set));
            if tx.query_one(&sql, &[(*id).into()])?.is_none() {
                return Err(LiveError::bad("unknown_id", format!("{at}: no {set}({id})")));
            }
            return Ok(*id);
        }
        Entity::New(n) => &**n,
    };
    match n {
        NewEntity::Thing { name, description, properties, locations, datastreams } => {
            let id = tx.next_id("sta_things")?;
            tx.exec("INSERT INTO sta_things (id, name, description, properties) VALUES ($1, $2, $3, $4)", &[id.into(), name.clone().into(), description.clone().into(), properties.clone().into()])?;
            for l in locations {
                insert_entity(tx, l, Some(id))?;
            }
            for d in datastreams {
                insert_entity(tx, d, Some(id))?;
            }
            Ok(id)
        }
        NewEntity::Location { name, description, encoding_type, location, lon, lat, thing } => {
            let thing = match thing {
                Some(t) => Some(insert_entity(tx, t, None)?),
                None => thing_ctx,
            };
            let id = tx.next_id("sta_locations")?;
            tx.exec(
                "INSERT INTO sta_locations (id, thing_id, name, description, encoding_type, location, lon, lat) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[id.into(), thing.into(), name.clone().into(), description.clone().into(), encoding_type.clone().into(), location.clone().into(), (*lon).into(), (*lat).into()],
            )?;
            if let Some(t) = thing {
                tx.exec("UPDATE sta_datastreams SET lon = $2, lat = $3 WHERE thing_id = $1", &[t.into(), (*lon).into(), (*lat).into()])?;
            }
            Ok(id)
        }
        NewEntity::Sensor { name, description, encoding_type, metadata } => {
            let id = tx.next_id("sta_sensors")?;
            tx.exec(
                "INSERT INTO sta_sensors (id, name, description, encoding_type, metadata) VALUES ($1, $2, $3, $4, $5)",
                &[id.into(), name.clone().into(), description.clone().into(), encoding_type.clone().into(), metadata.clone().into()],
            )?;
            Ok(id)
        }
        NewEntity::ObservedProperty { name, definition, description } => {
            let id = tx.next_id("sta_observed_properties")?;
            tx.exec(
                "INSERT INTO sta_observed_properties (id, name, definition, description) VALUES ($1, $2, $3, $4)",
                &[id.into(), name.clone().into(), definition.clone().into(), description.clone().into()],
            )?;
            Ok(id)
        }
        NewEntity::Datastream { name, description, sensor_type, properties, unit, observation_type, thing, sensor, observed_property, at } => {
            let thing = match thing {
                Some(t) => insert_entity(tx, t, None)?,
                None => thing_ctx.ok_or_else(|| LiveError::bad("invalid_field", format!("{at}: 'Thing' is required")))?,
            };
            let sensor = insert_entity(tx, sensor, None)?;
            let op = insert_entity(tx, observed_property, None)?;
            let pos = tx.query_one("SELECT lon, lat FROM sta_locations WHERE thing_id = $1 ORDER BY id DESC LIMIT 1", &[thing.into()])?;
            let (lon, lat) = pos.map(|r| (r.opt_f64(0), r.opt_f64(1))).unwrap_or((None, None));
            let id = tx.next_id("sta_datastreams")?;
            tx.exec(
                "INSERT INTO sta_datastreams (id, thing_id, sensor_id, observed_property_id, name, description, observation_type, unit, sensor_type, properties, lon, lat) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    id.into(),
                    thing.into(),
                    sensor.into(),
                    op.into(),
                    name.clone().into(),
                    description.clone().into(),
                    observation_type.clone().into(),
                    unit.clone().into(),
                    (*sensor_type).into(),
                    properties.clone().into(),
                    lon.into(),
                    lat.into(),
                ],
            )?;
            Ok(id)
        }
    }
}

/// POST on an entity set, `Datastreams(id)/Observations`, or `CreateObservations`.
pub async fn post_route(State(live): State<LiveState>, Path(path): Path<String>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Response, LiveError> {
    let base = base_url(&headers);
    let at = format!("POST {BASE}/{path}");
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if segs == ["CreateObservations"] {
        return create_observations(&live, body, &base, &at).await;
    }
    let v: Value = crate::live::parse_body(body, &at)?;
    let (set, ds) = match segs.as_slice() {
        [s] => (segment(s)?, None),
        [p, "Observations"] => match segment(p)? {
            ("Datastreams", Some(id)) => (("Observations", None), Some(id)),
            _ => return Err(LiveError::not_found(format!("{at}: unsupported resource path"))),
        },
        _ => return Err(LiveError::not_found(format!("{at}: unsupported resource path"))),
    };
    let set = match set {
        (s, None) if SETS.contains(&s) => s,
        _ => return Err(LiveError::not_found(format!("{at}: POST goes to an entity set ({})", SETS.join(", ")))),
    };
    if set == "Observations" {
        let o = twin_protocol::payload::sta_observation(&v, ds, &at)?;
        let rep = ingest(&live, vec![o], "http").await?;
        if let Some(e) = rep.errors.first() {
            let status = if e.reason == "unknown_datastream" { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
            // Already counted by `ingest`: answer without counting again.
            return Ok((status, Json(json!({"error": format!("{at}: {}", e.message), "reason": e.reason}))).into_response());
        }
        let id = rep.ids[0].expect("accepted");
        return created(&base, "Observations", id, &live, &rep.events).await;
    }
    let set_s: &'static str = SETS.iter().find(|s| **s == set).unwrap();
    // parsed and validated before the write transaction; the insert checks only `@iot.id`s
    let e = twin_protocol::sta_entity::entity(set_s, &v, &at, false)?;
    let id = live.db.write(move |tx: &mut Tx| insert_entity(tx, &e, None)).await?;
    created(&base, set_s, id, &live, &[]).await
}

async fn created(base: &str, set: &'static str, id: i64, live: &LiveState, events: &[i64]) -> Result<Response, LiveError> {
    let Json(mut e) = one(live, set, "id = $1", id, base).await?;
    if !events.is_empty() {
        e["events"] = json!(events);
    }
    let loc = format!("{base}/{set}({id})");
    Ok((StatusCode::CREATED, [(axum::http::header::LOCATION, loc)], Json(e)).into_response())
}

/// `CreateObservations` (STA 1.1 dataArray extension): answers an array with the selfLink of each
/// created observation or `"error"`, in request order; `X-Accepted-Count` / `X-Rejected-Count`
/// headers give the totals (per-item reasons: `POST /api/sensors/observations`).
async fn create_observations(live: &LiveState, body: Result<Bytes, BytesRejection>, base: &str, at: &str) -> Result<Response, LiveError> {
    let v: Vec<Value> = crate::live::parse_body(body, at)?;
    let mut obs: Vec<ObsIn> = Vec::new();
    // Per item: Some(index into obs) or None (malformed).
    let mut slots: Vec<Option<usize>> = Vec::new();
    for row in twin_protocol::payload::create_observations(&v, at)? {
        match row {
            Some(o) => {
                slots.push(Some(obs.len()));
                obs.push(o);
            }
            None => {
                live.sensors.reject("http", "invalid_observation");
                slots.push(None);
            }
        }
    }
    let rep = ingest(live, obs, "http").await?;
    let out: Vec<Value> = slots.iter().map(|s| match s.and_then(|i| rep.ids[i]) {
        Some(id) => json!(format!("{base}/Observations({id})")),
        None => json!("error"),
    }).collect();
    let rejected = out.iter().filter(|v| *v == "error").count();
    let accepted = out.len() - rejected;
    Ok((StatusCode::CREATED, [("x-accepted-count", accepted.to_string()), ("x-rejected-count", rejected.to_string())], Json(Value::Array(out))).into_response())
}
