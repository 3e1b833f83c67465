//! Parsing and validation of what clients send: the live API's request bodies and query values
//! and the MQTT observation messages. Pure functions (bytes → typed request or an error naming
//! what and where), no server state, so tests/fuzz `api_payloads` and `mqtt_payload` reach them
//! without a server. The server maps a [`PayloadError`] to `400 {"error", "reason"}`.

use crate::filter::parse_datetime;
use crate::{AssignRequest, LonLat, NewEvent, TransitionRequest, UnitStatus};
use serde_json::Value;

/// A refused payload: a metrics reason label and a message naming what and where.
#[derive(Debug, Clone, PartialEq)]
pub struct PayloadError {
    pub reason: &'static str,
    pub message: String,
}

impl PayloadError {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        PayloadError { reason, message: message.into() }
    }
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A JSON body as `T`; names the request and the line/column of a syntax or type error.
pub fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, PayloadError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let reason = if e.is_syntax() || e.is_eof() { "malformed_json" } else { "invalid_field" };
        PayloadError::new(reason, format!("{what}: {e}"))
    })
}

fn lon_lat_ok(p: LonLat) -> bool {
    p.lon.is_finite() && p.lat.is_finite() && (-180.0..=180.0).contains(&p.lon) && (-90.0..=90.0).contains(&p.lat)
}

/// An actor name: 1–100 characters, not blank.
pub fn check_actor(a: &str, at: &str) -> Result<(), PayloadError> {
    if a.trim().is_empty() || a.chars().count() > 100 {
        return Err(PayloadError::new("invalid_field", format!("{at}: actor must be 1–100 characters")));
    }
    Ok(())
}

/// A new event's fields: WGS-84 location, title 1–200 characters, description ≤ 10,000, actor.
pub fn validate_new_event(n: &NewEvent, at: &str) -> Result<(), PayloadError> {
    let LonLat { lon, lat } = n.location;
    if !lon_lat_ok(n.location) {
        return Err(PayloadError::new("out_of_range", format!("{at}: location {lon}, {lat} is not a WGS-84 lon/lat")));
    }
    if n.title.trim().is_empty() || n.title.chars().count() > 200 {
        return Err(PayloadError::new("invalid_field", format!("{at}: title must be 1–200 characters")));
    }
    if n.description.chars().count() > 10_000 {
        return Err(PayloadError::new("invalid_field", format!("{at}: description longer than 10,000 characters")));
    }
    check_actor(&n.actor, at)
}

/// `POST /api/events`: one `NewEvent` or an array of 1–10,000; returns (is a batch, the events).
pub fn new_events(bytes: &[u8]) -> Result<(bool, Vec<NewEvent>), PayloadError> {
    let v: Value = json_body(bytes, "POST /api/events")?;
    let (batch, items) = match v {
        Value::Array(a) => (true, a),
        other => (false, vec![other]),
    };
    if items.is_empty() || items.len() > 10_000 {
        return Err(PayloadError::new("invalid_field", "POST /api/events: an array must hold 1–10,000 events"));
    }
    let mut news = Vec::with_capacity(items.len());
    for (i, it) in items.into_iter().enumerate() {
        let at = if batch { format!("POST /api/events: [{i}]") } else { "POST /api/events".to_string() };
        let n: NewEvent = serde_json::from_value(it).map_err(|e| PayloadError::new("invalid_field", format!("{at}: {e}")))?;
        validate_new_event(&n, &at)?;
        news.push(n);
    }
    Ok((batch, news))
}

/// `POST /api/events/{id}/transitions {to, actor[, note, reason]}`; `at` names the request.
pub fn transition_request(bytes: &[u8], at: &str) -> Result<TransitionRequest, PayloadError> {
    let req: TransitionRequest = json_body(bytes, at)?;
    check_actor(&req.actor, at)?;
    if req.to.needs_reason() && req.reason.as_deref().map(str::trim).unwrap_or("").is_empty() {
        return Err(PayloadError::new("missing_reason", format!("{at}: moving to {} ({}) needs a non-empty 'reason'", req.to.as_str(), req.to.name_zh())));
    }
    Ok(req)
}

/// `POST /api/events/{id}/assign {unit_id, actor[, note]}`.
pub fn assign_request(bytes: &[u8], at: &str) -> Result<AssignRequest, PayloadError> {
    let req: AssignRequest = json_body(bytes, at)?;
    if req.actor.trim().is_empty() {
        return Err(PayloadError::new("invalid_field", format!("{at}: actor must not be empty")));
    }
    Ok(req)
}

/// `POST /api/units/{id}/status {status, actor[, position]}`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    pub status: UnitStatus,
    pub actor: String,
    #[serde(default)]
    pub position: Option<LonLat>,
}

/// A unit status report: actor not blank, position (if any) a WGS-84 lon/lat. (Whether the
/// status may be set, e.g. not `en_route`, is the server's 409, not a payload error.)
pub fn status_request(bytes: &[u8], at: &str) -> Result<StatusRequest, PayloadError> {
    let req: StatusRequest = json_body(bytes, at)?;
    if req.actor.trim().is_empty() {
        return Err(PayloadError::new("invalid_field", format!("{at}: actor must not be empty")));
    }
    if let Some(p) = req.position {
        if !lon_lat_ok(p) {
            return Err(PayloadError::new("out_of_range", format!("{at}: position {}, {} is not a WGS-84 lon/lat", p.lon, p.lat)));
        }
    }
    Ok(req)
}

/// `from`/`to` query values: RFC 3339 or milliseconds since the epoch.
pub fn query_time(name: &str, v: &str) -> Result<i64, PayloadError> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|e| PayloadError::new("bad_query", format!("query parameter '{name}': '{v}' is neither RFC 3339 nor milliseconds since the epoch ({e})")))
}

/// `POST /api/admin/tokens {"name", "role", "expires_days"?, "expires_in_s"?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRequest<R> {
    pub name: String,
    pub role: R,
    /// Lifetime in seconds (`None`: never expires).
    pub expires_in_s: Option<f64>,
}

/// Parses a token request; `parse_role` is the server's role parser (its error is quoted).
pub fn token_request<R>(bytes: &[u8], parse_role: impl Fn(&str) -> Result<R, String>) -> Result<TokenRequest<R>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("POST /api/admin/tokens: {e}"))?;
    for k in v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
        if !matches!(k.as_str(), "name" | "role" | "expires_days" | "expires_in_s") {
            return Err(format!("POST /api/admin/tokens: unknown field '{k}' (name, role, expires_days, expires_in_s)"));
        }
    }
    let Some(name) = v["name"].as_str() else { return Err("POST /api/admin/tokens: 'name' (string) is required".into()) };
    let role = match v["role"].as_str().map(parse_role) {
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(format!("POST /api/admin/tokens: {e}")),
        None => return Err("POST /api/admin/tokens: 'role' (string) is required".into()),
    };
    let expires_in_s = match (&v["expires_days"], &v["expires_in_s"]) {
        (Value::Null, Value::Null) => None,
        (d, Value::Null) => match d.as_f64().filter(|d| *d > 0.0 && *d <= 3650.0) {
            Some(d) => Some(d * 86400.0),
            None => return Err("POST /api/admin/tokens: 'expires_days' must be a number in (0, 3650]".into()),
        },
        (Value::Null, s) => match s.as_f64().filter(|s| *s > 0.0 && *s <= 3650.0 * 86400.0) {
            Some(s) => Some(s),
            None => return Err("POST /api/admin/tokens: 'expires_in_s' must be a positive number of seconds".into()),
        },
        _ => return Err("POST /api/admin/tokens: give 'expires_days' or 'expires_in_s', not both".into()),
    };
    Ok(TokenRequest { name: name.to_string(), role, expires_in_s })
}

/// `POST /api/auth/login {"user", "password", "expires_in_s"?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginRequest {
    pub user: String,
    pub password: String,
    /// A shorter session than the server's longest (seconds, > 0).
    pub expires_in_s: Option<f64>,
}

/// Parses a login request; the error names the field.
pub fn login_request(bytes: &[u8]) -> Result<LoginRequest, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("POST /api/auth/login: {e}"))?;
    let o = v.as_object().ok_or("POST /api/auth/login: expected a JSON object {\"user\", \"password\"}")?;
    if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "user" | "password" | "expires_in_s")) {
        return Err(format!("POST /api/auth/login: unknown field '{k}' (user, password, expires_in_s)"));
    }
    let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("POST /api/auth/login: '{k}' (string) is required"));
    let (user, password) = (s("user")?, s("password")?);
    let expires_in_s = match o.get("expires_in_s") {
        None | Some(Value::Null) => None,
        Some(x) => Some(x.as_f64().filter(|x| *x > 0.0 && x.is_finite()).ok_or("POST /api/auth/login: 'expires_in_s' must be a positive number of seconds")?),
    };
    Ok(LoginRequest { user, password, expires_in_s })
}

// ---------------------------------------------------------------- observations

/// One observation to ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct ObsIn {
    pub datastream: i64,
    /// `None`: the server's time.
    pub phenomenon_ms: Option<i64>,
    pub result_time_ms: Option<i64>,
    pub result: Value,
}

/// An observation from its STA JSON (`result`, `phenomenonTime`, `resultTime`).
pub fn obs_from_json(ds: i64, v: &Value) -> Result<ObsIn, String> {
    let o = v.as_object().ok_or_else(|| format!("expected an object, found {v}"))?;
    let result = o.get("result").cloned().ok_or("'result' is missing")?;
    Ok(ObsIn { datastream: ds, phenomenon_ms: time_field(o.get("phenomenonTime"), "phenomenonTime")?, result_time_ms: time_field(o.get("resultTime"), "resultTime")?, result })
}

/// An ISO 8601 instant, or an interval `start/end` (its end), or null.
pub fn time_field(v: Option<&Value>, name: &str) -> Result<Option<i64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let t = s.rsplit('/').next().unwrap_or(s);
            parse_datetime(t).map(Some).ok_or_else(|| format!("'{name}': '{s}' is not an ISO 8601 date-time"))
        }
        Some(other) => Err(format!("'{name}': {other} is not an ISO 8601 date-time string")),
    }
}

/// `POST /api/sensors/observations` item `i`: `{"datastream" (or "Datastream": {"@iot.id"}),
/// "result", "phenomenonTime"?, "resultTime"?}`; an error carries the datastream id when known.
pub fn simple_observation(i: usize, it: &Value) -> Result<ObsIn, (Option<i64>, String)> {
    let ds = it.get("datastream").or_else(|| it.get("Datastream").and_then(|d| d.get("@iot.id"))).and_then(Value::as_i64);
    match ds {
        None => Err((None, format!("observation {i}: 'datastream' (an integer id) is missing"))),
        Some(ds) => obs_from_json(ds, it).map_err(|m| (Some(ds), format!("observation {i}: {m}"))),
    }
}

/// SensorThings `POST …/Observations`: the datastream from the path (`Datastreams(id)/…`) or
/// the body's `Datastream: {"@iot.id"}`.
pub fn sta_observation(v: &Value, ds_from_path: Option<i64>, at: &str) -> Result<ObsIn, PayloadError> {
    let ds = match ds_from_path {
        Some(d) => d,
        None => v
            .get("Datastream")
            .and_then(|d| d.get("@iot.id"))
            .and_then(Value::as_i64)
            .ok_or_else(|| PayloadError::new("invalid_field", format!("{at}: 'Datastream' {{\"@iot.id\": …}} is required")))?,
    };
    obs_from_json(ds, v).map_err(|m| PayloadError::new("invalid_observation", format!("{at}: {m}")))
}

/// SensorThings `CreateObservations` (dataArray extension): one entry per row of every group, in
/// request order: the observation, or `None` for a malformed row (answered `"error"`). A
/// malformed group (no Datastream id, components without `result`, no dataArray) refuses all.
pub fn create_observations(groups: &[Value], at: &str) -> Result<Vec<Option<ObsIn>>, PayloadError> {
    let mut out = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let at = format!("{at}: item {i}");
        let o = g.as_object().ok_or_else(|| PayloadError::new("invalid_field", format!("{at}: expected a JSON object")))?;
        let ds = o
            .get("Datastream")
            .and_then(|d| d.get("@iot.id"))
            .and_then(Value::as_i64)
            .ok_or_else(|| PayloadError::new("invalid_field", format!("{at}: 'Datastream' {{\"@iot.id\": …}} is required")))?;
        let comps: Vec<&str> = o
            .get("components")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .ok_or_else(|| PayloadError::new("invalid_field", format!("{at}: 'components' (an array of names) is required")))?;
        let ri = comps.iter().position(|c| *c == "result").ok_or_else(|| PayloadError::new("invalid_field", format!("{at}: 'components' must contain 'result'")))?;
        let pi = comps.iter().position(|c| *c == "phenomenonTime");
        let ti = comps.iter().position(|c| *c == "resultTime");
        let rows = o.get("dataArray").and_then(Value::as_array).ok_or_else(|| PayloadError::new("invalid_field", format!("{at}: 'dataArray' (an array) is required")))?;
        for row in rows {
            out.push(row.as_array().filter(|r| r.len() == comps.len()).and_then(|r| {
                Some(ObsIn {
                    datastream: ds,
                    result: r[ri].clone(),
                    phenomenon_ms: time_field(pi.map(|p| &r[p]), "phenomenonTime").ok()?,
                    result_time_ms: time_field(ti.map(|p| &r[p]), "resultTime").ok()?,
                })
            }));
        }
    }
    Ok(out)
}

/// One MQTT message on `citytwin/datastreams/{id}/observations`: an observation object or an
/// array of them; the error names the topic (and item) and what is wrong.
pub fn mqtt_message(topic: &str, payload: &[u8]) -> Result<Vec<ObsIn>, String> {
    let id = topic
        .strip_prefix("citytwin/datastreams/")
        .and_then(|r| r.strip_suffix("/observations"))
        .and_then(|id| id.parse::<i64>().ok())
        .ok_or_else(|| format!("topic '{topic}' is not citytwin/datastreams/{{id}}/observations"))?;
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("topic {topic}: payload is not JSON: {e}"))?;
    match v {
        Value::Array(a) => a.iter().enumerate().map(|(i, o)| obs_from_json(id, o).map_err(|e| format!("topic {topic}: item {i}: {e}"))).collect(),
        o => Ok(vec![obs_from_json(id, &o).map_err(|e| format!("topic {topic}: {e}"))?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_bodies_name_the_item_and_field() {
        let ok = br#"{"category":"fire","source":"manual","title":"smoke","location":{"lon":123.4,"lat":41.8},"actor":"d1"}"#;
        let (batch, ev) = new_events(ok).unwrap();
        assert!(!batch);
        assert_eq!(ev[0].title, "smoke");
        let e = new_events(br#"[{"category":"fire","source":"manual","title":" ","location":{"lon":1,"lat":2},"actor":"a"}]"#).unwrap_err();
        assert_eq!((e.reason, e.message.as_str()), ("invalid_field", "POST /api/events: [0]: title must be 1–200 characters"));
        let e = new_events(br#"{"category":"fire","source":"manual","title":"t","location":{"lon":181,"lat":2},"actor":"a"}"#).unwrap_err();
        assert_eq!(e.reason, "out_of_range");
        assert_eq!(new_events(b"[]").unwrap_err().message, "POST /api/events: an array must hold 1–10,000 events");
        assert_eq!(new_events(b"{").unwrap_err().reason, "malformed_json");
    }

    #[test]
    fn transitions_assignments_and_status_reports() {
        let at = "POST /api/events/7/transitions";
        let e = transition_request(br#"{"to":"cancelled","actor":"d"}"#, at).unwrap_err();
        assert_eq!(e.reason, "missing_reason");
        assert!(e.message.starts_with("POST /api/events/7/transitions: moving to cancelled"), "{e}");
        assert_eq!(transition_request(br#"{"to":"dispatched","actor":""}"#, at).unwrap_err().message, format!("{at}: actor must be 1–100 characters"));
        assert_eq!(assign_request(br#"{"unit_id":3,"actor":" "}"#, "A").unwrap_err().message, "A: actor must not be empty");
        assert_eq!(assign_request(br#"{"unit_id":3,"actor":"x"}"#, "A").unwrap().unit_id, 3);
        let e = status_request(br#"{"status":"available","actor":"x","position":{"lon":0,"lat":91}}"#, "S").unwrap_err();
        assert_eq!((e.reason, e.message.as_str()), ("out_of_range", "S: position 0, 91 is not a WGS-84 lon/lat"));
        assert_eq!(status_request(br#"{"status":"available","actor":"x","extra":1}"#, "S").unwrap_err().reason, "invalid_field");
    }

    #[test]
    fn token_requests() {
        let role = |s: &str| if s == "leader" { Ok(1) } else { Err(format!("unknown role '{s}'")) };
        let t = token_request(br#"{"name":"n","role":"leader","expires_days":2}"#, role).unwrap();
        assert_eq!(t, TokenRequest { name: "n".into(), role: 1, expires_in_s: Some(172_800.0) });
        assert_eq!(token_request(br#"{"name":"n","role":"x"}"#, role).unwrap_err(), "POST /api/admin/tokens: unknown role 'x'");
        assert!(token_request(br#"{"name":"n","role":"leader","expires_days":1,"expires_in_s":1}"#, role).unwrap_err().contains("not both"));
        assert!(token_request(br#"{"name":"n","role":"leader","x":1}"#, role).unwrap_err().contains("unknown field 'x'"));
    }

    #[test]
    fn login_requests() {
        let r = login_request(br#"{"user":"alice","password":"pw","expires_in_s":60}"#).unwrap();
        assert_eq!(r, LoginRequest { user: "alice".into(), password: "pw".into(), expires_in_s: Some(60.0) });
        assert_eq!(login_request(br#"{"user":"alice"}"#).unwrap_err(), "POST /api/auth/login: 'password' (string) is required");
        assert!(login_request(br#"{"user":"a","password":"b","role":"admin"}"#).unwrap_err().contains("unknown field 'role'"));
        assert!(login_request(br#"{"user":"a","password":"b","expires_in_s":-1}"#).unwrap_err().contains("positive"));
        assert!(login_request(b"[]").unwrap_err().contains("expected a JSON object"));
    }

    #[test]
    fn observations_from_http_sta_and_mqtt() {
        let o = mqtt_message("citytwin/datastreams/5/observations", br#"{"result":3.5,"phenomenonTime":"2026-01-01T00:00:00Z/2026-01-01T00:01:00Z"}"#).unwrap();
        assert_eq!(o, vec![ObsIn { datastream: 5, phenomenon_ms: Some(1_767_225_660_000), result_time_ms: None, result: serde_json::json!(3.5) }]);
        assert_eq!(mqtt_message("citytwin/datastreams/x/observations", b"{}").unwrap_err(), "topic 'citytwin/datastreams/x/observations' is not citytwin/datastreams/{id}/observations");
        assert_eq!(mqtt_message("citytwin/datastreams/5/observations", br#"[{"result":1},{"x":1}]"#).unwrap_err(), "topic citytwin/datastreams/5/observations: item 1: 'result' is missing");
        assert_eq!(simple_observation(2, &serde_json::json!({"result": 1})).unwrap_err(), (None, "observation 2: 'datastream' (an integer id) is missing".to_string()));
        let e = sta_observation(&serde_json::json!({"result": 1}), None, "P").unwrap_err();
        assert_eq!(e.reason, "invalid_field");
        let groups = serde_json::json!([{"Datastream": {"@iot.id": 4}, "components": ["phenomenonTime", "result"],
            "dataArray": [["2026-01-01T00:00:00Z", 1.5], ["bad", 2], [3]]}]);
        let rows = create_observations(groups.as_array().unwrap(), "C").unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].as_ref().unwrap().phenomenon_ms, Some(1_767_225_600_000));
        assert!(rows[1].is_none() && rows[2].is_none());
        assert_eq!(create_observations(&[serde_json::json!(1)], "C").unwrap_err().message, "C: item 0: expected a JSON object");
    }
}

#[cfg(test)]
mod seed_tests {
    use super::*;

    /// The fuzz seeds of `api_payloads` and `mqtt_payload` (tests/fuzz/seeds, written by
    /// make_seeds.py) are accepted by the parser their first byte selects.
    #[test]
    fn every_payload_seed_is_accepted() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/seeds");
        let mut n = 0;
        for e in std::fs::read_dir(root.join("api_payloads")).unwrap() {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            let (sel, body) = (data[0], &data[1..]);
            let at = "POST /api/x";
            let ok = match sel {
                0 => new_events(body).map(|_| ()).map_err(|e| e.message),
                1 => transition_request(body, at).map(|_| ()).map_err(|e| e.message),
                2 => assign_request(body, at).map(|_| ()).map_err(|e| e.message),
                3 => status_request(body, at).map(|_| ()).map_err(|e| e.message),
                4 => token_request(body, |s| if s == "operator" { Ok(()) } else { Err(s.to_string()) }).map(|_| ()),
                5 => json_body::<Vec<Value>>(body, at)
                    .map_err(|e| e.message)
                    .and_then(|v| v.iter().enumerate().try_for_each(|(i, it)| simple_observation(i, it).map(|_| ()).map_err(|e| e.1))),
                6 => sta_observation(&json_body::<Value>(body, at).unwrap(), None, at).map(|_| ()).map_err(|e| e.message),
                7 => create_observations(&json_body::<Vec<Value>>(body, at).unwrap(), at)
                    .map_err(|e| e.message)
                    .and_then(|rows| if rows.iter().all(Option::is_some) { Ok(()) } else { Err("a row was refused".into()) }),
                8 => crate::filter::parse(std::str::from_utf8(body).unwrap()).map(|_| ()).map_err(|e| e.to_string()),
                9 => {
                    let s = std::str::from_utf8(body).unwrap();
                    if crate::Bbox::parse(s).is_some() { Ok(()) } else { query_time("t", s).map(|_| ()).map_err(|e| e.message) }
                }
                11 => login_request(body).map(|_| ()),
                12 => {
                    let set = crate::sta_entity::ENTITY_SETS[body[0] as usize % crate::sta_entity::ENTITY_SETS.len()];
                    crate::sta_entity::entity(set, &json_body::<Value>(&body[1..], at).unwrap(), at, body[0] & 0x80 != 0).map(|_| ()).map_err(|e| e.message)
                }
                _ => Ok(()), // indicator definitions: checked by the indicators crate's own tests
            };
            ok.unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
        assert!(n >= 10);
        for e in std::fs::read_dir(root.join("mqtt_payload")).unwrap() {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            let (topic, payload) = if data[0] == 255 {
                let nl = data.iter().position(|&c| c == b'\n').unwrap();
                (String::from_utf8(data[1..nl].to_vec()).unwrap(), data[nl + 1..].to_vec())
            } else {
                (format!("citytwin/datastreams/{}/observations", data[0]), data[1..].to_vec())
            };
            let obs = mqtt_message(&topic, &payload).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(!obs.is_empty());
        }
    }
}
