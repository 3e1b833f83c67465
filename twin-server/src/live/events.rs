//! Events: the category taxonomy with SLAs, the closed-loop lifecycle (one state machine:
//! `twin_protocol::EventState::successors`), the append-only `event_log` (the truth; the
//! `events` row is its materialisation, updated in the same transaction), SLA deadlines with
//! overdue escalation, queries and replay.

use super::db::{Conn, DbResult, NewChange, Row, Tx, Val};
use super::{parse_time, LiveError, LiveState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use twin_protocol::{ts_from_ms, Bbox, Category, Event, EventSource, EventState, LonLat, NewEvent, Severity, Topic, Transition, TransitionRequest, UnitKind};

pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE events (id BIGINT PRIMARY KEY, category TEXT NOT NULL, severity BIGINT NOT NULL, source TEXT NOT NULL,
        state TEXT NOT NULL, title TEXT NOT NULL, description TEXT NOT NULL, lon DOUBLE PRECISION NOT NULL, lat DOUBLE PRECISION NOT NULL,
        district BIGINT, district_name TEXT, reported_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL, stage_since_ms BIGINT NOT NULL,
        due_ms BIGINT, escalation BIGINT NOT NULL, escalated_stage_ms BIGINT, units TEXT NOT NULL, external_ref TEXT);
     CREATE INDEX events_state ON events (state, category);
     CREATE INDEX events_reported ON events (reported_ms);
     CREATE INDEX events_due ON events (due_ms);
     CREATE TABLE event_log (id BIGINT PRIMARY KEY, event_id BIGINT NOT NULL, from_state TEXT, to_state TEXT NOT NULL,
        kind TEXT NOT NULL, actor TEXT NOT NULL, at_ms BIGINT NOT NULL, note TEXT, reason TEXT);
     CREATE INDEX event_log_event ON event_log (event_id, id);
     CREATE INDEX event_log_at ON event_log (at_ms, id);",
];

// ---------------------------------------------------------------- categories

#[derive(Debug, Clone)]
pub struct CategoryDef {
    pub id: Category,
    pub name_zh: String,
    pub name_en: String,
    pub severity: Severity,
    pub units: Vec<UnitKind>,
    /// Deadline per open stage, milliseconds.
    pub sla_ms: BTreeMap<EventState, i64>,
}

#[derive(Debug, Clone)]
pub struct Categories {
    pub by_id: BTreeMap<Category, CategoryDef>,
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatFile {
    category: Vec<CatEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatEntry {
    id: String,
    name_zh: String,
    name_en: String,
    severity: u8,
    units: Vec<String>,
    #[serde(default)]
    sla_minutes: BTreeMap<String, f64>,
    #[serde(default)]
    sla_seconds: BTreeMap<String, f64>,
}

const BUNDLED: &str = include_str!("../../../assets/events/categories.toml");

impl Categories {
    pub fn bundled() -> anyhow::Result<Categories> {
        Self::parse(BUNDLED, "assets/events/categories.toml (bundled)")
    }
    pub fn load(path: &std::path::Path) -> anyhow::Result<Categories> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read categories {}: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }
    pub fn parse(text: &str, source: &str) -> anyhow::Result<Categories> {
        let f: CatFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        let mut by_id = BTreeMap::new();
        for (i, c) in f.category.into_iter().enumerate() {
            let at = format!("{source}: category[{i}] ({})", c.id);
            let id = Category::parse(&c.id).ok_or_else(|| {
                anyhow::anyhow!("{at}: unknown id (known: {})", Category::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "))
            })?;
            let severity = Severity::try_from(c.severity).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
            let units = c
                .units
                .iter()
                .map(|u| UnitKind::parse(u).ok_or_else(|| anyhow::anyhow!("{at}: units: unknown unit kind '{u}'")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if units.is_empty() {
                anyhow::bail!("{at}: units: at least one unit kind");
            }
            let mut sla_ms = BTreeMap::new();
            for (table, factor, map) in [("sla_minutes", 60_000.0, &c.sla_minutes), ("sla_seconds", 1000.0, &c.sla_seconds)] {
                for (stage, v) in map {
                    let st = EventState::parse(stage)
                        .filter(|s| !s.is_terminal())
                        .ok_or_else(|| anyhow::anyhow!("{at}: {table}.{stage}: not an open stage (reported, dispatched, handling, feedback)"))?;
                    if !(v.is_finite() && *v > 0.0) {
                        anyhow::bail!("{at}: {table}.{stage}: must be a positive number, got {v}");
                    }
                    sla_ms.insert(st, (v * factor).round() as i64);
                }
            }
            if by_id.insert(id, CategoryDef { id, name_zh: c.name_zh, name_en: c.name_en, severity, units, sla_ms }).is_some() {
                anyhow::bail!("{at}: defined twice");
            }
        }
        for c in Category::ALL {
            if !by_id.contains_key(&c) {
                anyhow::bail!("{source}: category '{}' is not defined", c.as_str());
            }
        }
        Ok(Categories { by_id, source: source.to_string() })
    }
    pub fn get(&self, c: Category) -> &CategoryDef {
        &self.by_id[&c]
    }
    pub fn due_for(&self, c: Category, state: EventState, since_ms: i64) -> Option<i64> {
        self.get(c).sla_ms.get(&state).map(|d| since_ms + d)
    }
}

// ---------------------------------------------------------------- store

pub const EVENT_COLS: &str = "id, category, severity, source, state, title, description, lon, lat, district, district_name, reported_ms, updated_ms, due_ms, escalation, units, external_ref, stage_since_ms";

pub fn event_from_row(r: &Row) -> DbResult<Event> {
    let bad = |what: &str| super::db::DbError(format!("event {}: bad {what} in the store", r.i64(0)));
    Ok(Event {
        id: r.i64(0),
        category: Category::parse(r.str(1)).ok_or_else(|| bad("category"))?,
        severity: Severity::try_from(r.i64(2) as u8).map_err(|_| bad("severity"))?,
        source: EventSource::parse(r.str(3)).ok_or_else(|| bad("source"))?,
        state: EventState::parse(r.str(4)).ok_or_else(|| bad("state"))?,
        title: r.str(5).to_string(),
        description: r.str(6).to_string(),
        location: LonLat { lon: r.f64(7), lat: r.f64(8) },
        district: r.opt_i64(9).map(|d| d as u32),
        district_name: r.opt_str(10).map(str::to_string),
        street: None,
        reported_at: ts_from_ms(r.i64(11)),
        updated_at: ts_from_ms(r.i64(12)),
        due_at: r.opt_i64(13).map(ts_from_ms),
        escalation: r.i64(14) as u32,
        units: serde_json::from_str(r.str(15)).unwrap_or_default(),
        external_ref: r.opt_str(16).map(str::to_string),
    })
}

pub fn load_event(c: &mut dyn Conn, id: i64) -> DbResult<Option<Event>> {
    c.query(&format!("SELECT {EVENT_COLS} FROM events WHERE id = $1"), &[id.into()])?.first().map(event_from_row).transpose()
}

pub fn load_event_tx(tx: &mut Tx, id: i64) -> DbResult<Option<(Event, i64)>> {
    let rows = tx.query(&format!("SELECT {EVENT_COLS} FROM events WHERE id = $1"), &[id.into()])?;
    match rows.first() {
        Some(r) => Ok(Some((event_from_row(r)?, r.i64(17)))),
        None => Ok(None),
    }
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
        note: r.opt_str(7).map(str::to_string),
        reason: r.opt_str(8).map(str::to_string),
    }
}

const LOG_COLS: &str = "id, event_id, from_state, to_state, kind, actor, at_ms, note, reason";

/// Appends one log entry (in the caller's transaction).
#[allow(clippy::too_many_arguments)]
pub fn append_log(tx: &mut Tx, event_id: i64, from: Option<EventState>, to: EventState, kind: &str, actor: &str, note: Option<&str>, reason: Option<&str>) -> DbResult<Transition> {
    let id = tx.next_id("event_log")?;
    let at = tx.now_ms();
    tx.exec(
        &format!("INSERT INTO event_log ({LOG_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
        &[id.into(), event_id.into(), from.map(|s| s.as_str()).into(), to.as_str().into(), kind.into(), actor.into(), at.into(), note.into(), reason.into()],
    )?;
    Ok(Transition { id, event_id, from, to, kind: kind.into(), actor: actor.into(), at: ts_from_ms(at), note: note.map(Into::into), reason: reason.map(Into::into) })
}

/// Writes the materialised row (insert or full update) and appends the `events` change.
pub fn save_event(tx: &mut Tx, e: &Event, stage_since_ms: i64, kind: &str, insert: bool, log: &Transition) -> DbResult<i64> {
    let units = serde_json::to_string(&e.units).unwrap_or_else(|_| "[]".into());
    let vals: Vec<Val> = vec![
        e.id.into(),
        e.category.as_str().into(),
        (e.severity as i64).into(),
        e.source.as_str().into(),
        e.state.as_str().into(),
        (&e.title).into(),
        (&e.description).into(),
        e.location.lon.into(),
        e.location.lat.into(),
        e.district.into(),
        e.district_name.clone().into(),
        e.reported_at.timestamp_millis().into(),
        e.updated_at.timestamp_millis().into(),
        e.due_at.map(|t| t.timestamp_millis()).into(),
        (e.escalation as i64).into(),
        units.into(),
        e.external_ref.clone().into(),
        stage_since_ms.into(),
    ];
    if insert {
        tx.exec(&format!("INSERT INTO events ({EVENT_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)"), &vals)?;
    } else {
        tx.exec(
            "UPDATE events SET category=$2, severity=$3, source=$4, state=$5, title=$6, description=$7, lon=$8, lat=$9, district=$10,
             district_name=$11, reported_ms=$12, updated_ms=$13, due_ms=$14, escalation=$15, units=$16, external_ref=$17, stage_since_ms=$18 WHERE id=$1",
            &vals,
        )?;
    }
    tx.append_change(NewChange {
        topic: Topic::Events,
        kind: kind.into(),
        entity: e.id.to_string(),
        lon: Some(e.location.lon),
        lat: Some(e.location.lat),
        payload: json!({"event": e, "log": log}),
    })
}

/// District (index, zh name) containing a point, from the model being served.
pub fn district_of(live: &LiveState, lon: f64, lat: f64) -> Option<(u32, Option<String>)> {
    use geo::Contains;
    let b = live.app.current.load();
    let p = geo_types::Point::new(lon, lat);
    b.loaded.model.districts.iter().enumerate().find(|(_, d)| d.geometry.contains(&p)).map(|(i, d)| (i as u32, d.names.zh.clone().or(d.names.en.clone())))
}

/// Creates events (in the caller's transaction): row, `created` log entry, change.
pub fn create_in_tx(tx: &mut Tx, cats: &Categories, n: NewEvent, district: Option<(u32, Option<String>)>) -> DbResult<Event> {
    let id = tx.next_id("events")?;
    let now = tx.now_ms();
    let reported = n.reported_at.map(|t| t.timestamp_millis()).unwrap_or(now);
    let e = Event {
        id,
        category: n.category,
        severity: n.severity.unwrap_or(cats.get(n.category).severity),
        source: n.source,
        state: EventState::Reported,
        title: n.title.trim().to_string(),
        description: n.description,
        location: n.location,
        district: district.as_ref().map(|d| d.0),
        district_name: district.and_then(|d| d.1),
        street: None,
        reported_at: ts_from_ms(reported),
        updated_at: ts_from_ms(now),
        due_at: cats.due_for(n.category, EventState::Reported, now).map(ts_from_ms),
        escalation: 0,
        units: vec![],
        external_ref: n.external_ref,
    };
    let log = append_log(tx, id, None, EventState::Reported, "created", &n.actor, None, None)?;
    save_event(tx, &e, now, "created", true, &log)?;
    Ok(e)
}

/// Applies a transition (in the caller's transaction), including the assigned units' moves.
pub fn transition_in_tx(tx: &mut Tx, cats: &Categories, travel: &super::units::Travel, id: i64, req: &TransitionRequest) -> Result<Event, LiveError> {
    let (mut e, _) = load_event_tx(tx, id)?.ok_or_else(|| LiveError::not_found(format!("no event {id}")))?;
    if !e.state.can_move_to(req.to) {
        let allowed: Vec<&str> = e.state.successors().iter().map(|s| s.as_str()).collect();
        return Err(LiveError::conflict(
            "invalid_transition",
            format!(
                "event {id} is {} ({}); cannot move to {} ({}); allowed: {}",
                e.state.as_str(),
                e.state.name_zh(),
                req.to.as_str(),
                req.to.name_zh(),
                if allowed.is_empty() { "none (terminal state)".to_string() } else { allowed.join(", ") }
            ),
        ));
    }
    let now = tx.now_ms();
    let from = e.state;
    e.state = req.to;
    e.updated_at = ts_from_ms(now);
    e.due_at = cats.due_for(e.category, e.state, now).map(ts_from_ms);
    let log = append_log(tx, id, Some(from), req.to, "transition", &req.actor, req.note.as_deref(), req.reason.as_deref())?;
    super::units::follow_event(tx, travel, &mut e)?;
    save_event(tx, &e, now, "transition", false, &log)?;
    Ok(e)
}

// ---------------------------------------------------------------- escalation

/// Every `--sla-check-ms`: each open event past its stage deadline and not yet escalated for this
/// stage gets `escalation + 1`, an `escalated` log entry and a change. The conditional UPDATE makes
/// it idempotent across replicas (the second finds nothing to update).
pub fn spawn_escalation(live: LiveState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(live.opts.sla_check_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match escalate_once(&live).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(escalated = n, "overdue events escalated"),
                Err(e) => tracing::warn!("escalation check failed: {}", e.message),
            }
        }
    });
}

pub async fn escalate_once(live: &LiveState) -> Result<usize, LiveError> {
    let now = super::now_ms();
    let ids: Vec<i64> = live
        .db
        .read(move |c| {
            Ok(c.query(
                "SELECT id FROM events WHERE due_ms IS NOT NULL AND due_ms <= $1 AND (escalated_stage_ms IS NULL OR escalated_stage_ms <> stage_since_ms) ORDER BY id LIMIT 1000",
                &[now.into()],
            )?
            .iter()
            .map(|r| r.i64(0))
            .collect())
        })
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let n = live
        .db
        .write(move |tx| -> Result<usize, LiveError> {
            let mut n = 0;
            for id in ids {
                let changed = tx.exec(
                    "UPDATE events SET escalation = escalation + 1, escalated_stage_ms = stage_since_ms, updated_ms = $2
                     WHERE id = $1 AND due_ms IS NOT NULL AND due_ms <= $2 AND (escalated_stage_ms IS NULL OR escalated_stage_ms <> stage_since_ms)",
                    &[id.into(), tx.now_ms().into()],
                )?;
                if changed == 0 {
                    continue;
                }
                let Some((e, since)) = load_event_tx(tx, id)? else { continue };
                let overdue_s = (tx.now_ms() - e.due_at.map(|t| t.timestamp_millis()).unwrap_or(0)) / 1000;
                let note = format!("stage {} ({}) overdue by {overdue_s} s; escalation level {}", e.state.as_str(), e.state.name_zh(), e.escalation);
                let log = append_log(tx, id, Some(e.state), e.state, "escalated", "system:sla", Some(&note), None)?;
                tx.append_change(NewChange {
                    topic: Topic::Events,
                    kind: "escalated".into(),
                    entity: id.to_string(),
                    lon: Some(e.location.lon),
                    lat: Some(e.location.lat),
                    payload: json!({"event": e, "log": log, "stage_since": ts_from_ms(since)}),
                })?;
                n += 1;
            }
            Ok(n)
        })
        .await?;
    super::metrics::METRICS.escalations.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(n)
}

// ---------------------------------------------------------------- HTTP

/// `POST /api/events`: one `NewEvent` → 201 with the event; an array → 201 with all of them,
/// created atomically (all or none).
pub async fn create_route(State(live): State<LiveState>, body: Result<Bytes, BytesRejection>) -> Result<(StatusCode, Json<Value>), LiveError> {
    let (batch, items) = twin_protocol::payload::new_events(&super::body_bytes(body, "POST /api/events")?)?;
    let news: Vec<(NewEvent, _)> = items
        .into_iter()
        .map(|n| {
            let d = district_of(&live, n.location.lon, n.location.lat);
            (n, d)
        })
        .collect();
    let cats = live.cats.clone();
    let created = live
        .db
        .write(move |tx| -> Result<Vec<Event>, LiveError> { news.into_iter().map(|(n, d)| Ok(create_in_tx(tx, &cats, n, d)?)).collect() })
        .await?;
    let body = if batch { json!({"events": created}) } else { serde_json::to_value(&created[0]).unwrap_or_default() };
    Ok((StatusCode::CREATED, Json(body)))
}

fn parse_id(s: &str) -> Result<i64, LiveError> {
    s.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| LiveError::bad("bad_id", format!("event id must be a positive integer: '{s}'")))
}

pub async fn get_route(State(live): State<LiveState>, Path(id): Path<String>) -> Result<Json<Event>, LiveError> {
    let id = parse_id(&id)?;
    live.db.read(move |c| load_event(c, id)).await?.map(Json).ok_or_else(|| LiveError::not_found(format!("no event {id}")))
}

pub async fn log_route(State(live): State<LiveState>, Path(id): Path<String>) -> Result<Json<Value>, LiveError> {
    let id = parse_id(&id)?;
    let (e, log) = live
        .db
        .read_snapshot(move |c| {
            let e = load_event(c, id)?;
            let log: Vec<Transition> =
                c.query(&format!("SELECT {LOG_COLS} FROM event_log WHERE event_id = $1 ORDER BY id"), &[id.into()])?.iter().map(transition_from_row).collect();
            Ok((e, log))
        })
        .await?;
    let e = e.ok_or_else(|| LiveError::not_found(format!("no event {id}")))?;
    // The current state is derived from the log: every entry records the state after it.
    let derived = log.last().map(|t| t.to);
    Ok(Json(json!({"event_id": id, "state": e.state, "derived_state": derived, "entries": log})))
}

pub async fn transition_route(State(live): State<LiveState>, Path(id): Path<String>, body: Result<Bytes, BytesRejection>) -> Result<Json<Event>, LiveError> {
    let id = parse_id(&id)?;
    let at = format!("POST /api/events/{id}/transitions");
    let req: TransitionRequest = twin_protocol::payload::transition_request(&super::body_bytes(body, &at)?, &at)?;
    let cats = live.cats.clone();
    let travel = super::units::Travel::of(&live);
    let e = live.db.write(move |tx| transition_in_tx(tx, &cats, &travel, id, &req)).await?;
    Ok(Json(e))
}

pub async fn categories_route(State(live): State<LiveState>) -> Json<Value> {
    let cats: Vec<Value> = live
        .cats
        .by_id
        .values()
        .map(|c| {
            json!({"id": c.id, "name_zh": c.name_zh, "name_en": c.name_en, "severity": c.severity, "units": c.units,
                   "sla_s": c.sla_ms.iter().map(|(k, v)| (k.as_str().to_string(), json!(*v as f64 / 1000.0))).collect::<serde_json::Map<_, _>>()})
        })
        .collect();
    Json(json!({"source": live.cats.source, "categories": cats}))
}

/// `GET /api/events?state=&category=&district=&bbox=&from=&to=&limit=&offset=` (`from`/`to` on
/// the report time, `[from, to)`); ascending id.
pub async fn list_route(State(live): State<LiveState>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, LiveError> {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Val> = Vec::new();
    let mut push = |cond: &str, vals: Vec<Val>, conds: &mut Vec<String>| {
        let mut c = cond.to_string();
        for v in vals {
            params.push(v);
            c = c.replacen('?', &format!("${}", params.len()), 1);
        }
        conds.push(c);
    };
    for (key, k) in q.iter() {
        match key.as_str() {
            "state" | "category" => {
                let vals: Vec<String> = k.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                for v in &vals {
                    let ok = if key == "state" { EventState::parse(v).is_some() } else { Category::parse(v).is_some() };
                    if !ok {
                        return Err(LiveError::bad("bad_query", format!("GET /api/events: unknown {key} '{v}'")));
                    }
                }
                if vals.is_empty() {
                    return Err(LiveError::bad("bad_query", format!("GET /api/events: empty '{key}'")));
                }
                let ph = vec!["?"; vals.len()].join(", ");
                push(&format!("{key} IN ({ph})"), vals.into_iter().map(Val::from).collect(), &mut conds);
            }
            "district" => {
                let b = live.app.current.load();
                let ds = &b.loaded.model.districts;
                let idx = k
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < ds.len())
                    .or_else(|| ds.iter().position(|d| d.names.zh.as_deref() == Some(k) || d.names.en.as_deref() == Some(k) || d.adcode.to_string() == *k))
                    .ok_or_else(|| LiveError::bad("bad_query", format!("GET /api/events: unknown district '{k}' (an index, adcode or name of /api/districts)")))?;
                push("district = ?", vec![(idx as i64).into()], &mut conds);
            }
            "bbox" => {
                let b = Bbox::parse(k).ok_or_else(|| LiveError::bad("bad_query", format!("GET /api/events: bbox must be west,south,east,north: '{k}'")))?;
                push("lon >= ? AND lon <= ? AND lat >= ? AND lat <= ?", vec![b.0[0].into(), b.0[2].into(), b.0[1].into(), b.0[3].into()], &mut conds);
            }
            "from" => push("reported_ms >= ?", vec![parse_time("from", k)?.into()], &mut conds),
            "to" => push("reported_ms < ?", vec![parse_time("to", k)?.into()], &mut conds),
            "overdue" => push("due_ms IS NOT NULL AND due_ms <= ?", vec![super::now_ms().into()], &mut conds),
            "limit" | "offset" => {}
            other => return Err(LiveError::bad("bad_query", format!("GET /api/events: unknown parameter '{other}'"))),
        }
    }
    let limit = match q.get("limit") {
        None => 1000,
        Some(l) => l.parse::<i64>().ok().filter(|v| (1..=10_000).contains(v)).ok_or_else(|| LiveError::bad("bad_query", format!("limit must be 1–10000: '{l}'")))?,
    };
    let offset = match q.get("offset") {
        None => 0,
        Some(l) => l.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| LiveError::bad("bad_query", format!("offset must be ≥ 0: '{l}'")))?,
    };
    let wher = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
    let n = params.len();
    params.push(limit.into());
    params.push(offset.into());
    let sql = format!("SELECT {EVENT_COLS} FROM events {wher} ORDER BY id LIMIT ${} OFFSET ${}", n + 1, n + 2);
    let events = live.db.read(move |c| c.query(&sql, &params)?.iter().map(event_from_row).collect::<DbResult<Vec<_>>>()).await?;
    Ok(Json(json!({"count": events.len(), "events": events})))
}

/// `GET /api/events/replay?from=&to=[&event=ID]`: every log entry with `from ≤ at < to`, in log
/// order (commit order).
pub async fn replay_route(State(live): State<LiveState>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, LiveError> {
    let from = parse_time("from", q.get("from").ok_or_else(|| LiveError::bad("bad_query", "GET /api/events/replay: missing 'from'"))?)?;
    let to = match q.get("to") {
        Some(t) => parse_time("to", t)?,
        None => i64::MAX,
    };
    if to < from {
        return Err(LiveError::bad("bad_query", "GET /api/events/replay: 'to' is before 'from'"));
    }
    let entries = live
        .db
        .read(move |c| {
            Ok(c.query(&format!("SELECT {LOG_COLS} FROM event_log WHERE at_ms >= $1 AND at_ms < $2 ORDER BY id LIMIT 100000"), &[from.into(), to.into()])?
                .iter()
                .map(transition_from_row)
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(Json(json!({"from": ts_from_ms(from), "to": if to == i64::MAX { Value::Null } else { json!(ts_from_ms(to)) }, "count": entries.len(), "entries": entries})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_categories_cover_the_taxonomy() {
        let c = Categories::bundled().unwrap();
        assert_eq!(c.by_id.len(), Category::ALL.len());
        assert_eq!(c.get(Category::Fire).sla_ms[&EventState::Reported], 60_000);
        assert_eq!(c.get(Category::Fire).units[0], UnitKind::Fire);
    }

    #[test]
    fn bad_categories_name_the_entry() {
        let e = Categories::parse("[[category]]\nid = \"volcano\"\nname_zh=\"x\"\nname_en=\"x\"\nseverity=1\nunits=[\"police\"]\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("t.toml: category[0] (volcano): unknown id"), "{e}");
        let e = Categories::parse("[[category]]\nid = \"fire\"\nname_zh=\"x\"\nname_en=\"x\"\nseverity=1\nunits=[\"police\"]\nsla_seconds={closed=3}\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sla_seconds.closed: not an open stage"), "{e}");
    }

    #[test]
    fn state_machine() {
        use EventState::*;
        assert!(Reported.can_move_to(Dispatched));
        assert!(!Reported.can_move_to(Closed));
        assert!(!Closed.can_move_to(Reported));
        assert!(Feedback.can_move_to(Handling));
        assert!(Cancelled.needs_reason() && Rejected.needs_reason() && !Closed.needs_reason());
    }
}
