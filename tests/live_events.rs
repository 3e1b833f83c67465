//! Events, units and their closed loop over HTTP against a real server, once per store backend
//! (SQLite file and a throw-away PostgreSQL 15 cluster): lifecycle, every invalid transition,
//! reasons, atomic assignment, recommendation order, queries against hand-computed sets, replay
//! order, SLA escalation, bad input with its metrics.

#[macro_use]
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const STATES: [&str; 7] = ["reported", "dispatched", "handling", "feedback", "closed", "cancelled", "rejected"];

struct T {
    s: Server,
    _db: LiveDb,
    _dir: tempfile::TempDir,
}

fn start(b: LiveBackend, extra: &[&str]) -> T {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(b);
    let mut args = vec!["--db", db.url.as_str()];
    args.extend_from_slice(extra);
    let s = serve_with(&model, &args);
    T { s, _db: db, _dir: dir }
}

fn new_event(category: &str, lon: f64, lat: f64, title: &str) -> Value {
    json!({"category": category, "source": "hotline_12345", "title": title, "location": {"lon": lon, "lat": lat}, "actor": "operator-1"})
}

fn transition(base: &str, id: i64, to: &str, reason: Option<&str>) -> (u16, Value) {
    let mut b = json!({"to": to, "actor": "dispatcher-7", "note": format!("to {to}")});
    if let Some(r) = reason {
        b["reason"] = r.into();
    }
    post_json(&format!("{base}/api/events/{id}/transitions"), &b)
}

fn state_of(base: &str, id: i64) -> String {
    let (st, e) = get_json(&format!("{base}/api/events/{id}"));
    assert_eq!(st, 200);
    e["state"].as_str().unwrap().to_string()
}

/// From the current state, every target outside `allowed` is 409 naming the event, its state
/// and the target, and changes nothing.
fn refuse_all_but(base: &str, id: i64, current: &str, allowed: &[&str]) {
    for to in STATES {
        if allowed.contains(&to) {
            continue;
        }
        let (st, body) = transition(base, id, to, Some("because"));
        assert_eq!(st, 409, "{current} → {to} must be refused: {body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains(&format!("event {id} is {current}")) && msg.contains(&format!("cannot move to {to}")), "{msg}");
        assert_eq!(body["reason"], "invalid_transition");
        assert_eq!(state_of(base, id), current, "a refused transition changed the state");
    }
}

fn unit(base: &str, id: i64) -> Value {
    let (st, u) = get_json(&format!("{base}/api/units/{id}"));
    assert_eq!(st, 200, "{u}");
    u
}

/// Metres between two lon/lat points, equirectangular (independent of the server's haversine;
/// < 0.01 % apart at these distances).
fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
    let phi = ((a.1 + b.1) / 2.0).to_radians();
    let dx = (b.0 - a.0).to_radians() * phi.cos() * 6_371_008.8;
    let dy = (b.1 - a.1).to_radians() * 6_371_008.8;
    (dx * dx + dy * dy).sqrt()
}

fn closed_loop(b: LiveBackend) {
    let t = start(b, &[]);
    let base = &t.s.base;
    // Units seeded from the model's stations, in POI order.
    let (_, units) = get_json(&format!("{base}/api/units"));
    let kinds: Vec<&str> = units["units"].as_array().unwrap().iter().map(|u| u["kind"].as_str().unwrap()).collect();
    // … then the crews of the district without a government office (东区) at the police station
    // nearest its centroid (西区派出所).
    assert_eq!(kinds, ["police", "police", "fire", "fire", "ambulance", "city_management", "gas_emergency", "city_management", "gas_emergency"]);
    assert_eq!(units["units"][7]["base"], json!({"lon": 123.41, "lat": 41.80}));

    let (st, e) = post_json(&format!("{base}/api/events"), &new_event("fire", 123.445, 41.805, "厨房起火"));
    assert_eq!(st, 201, "{e}");
    let id = e["id"].as_i64().unwrap();
    assert_eq!(e["state"], "reported");
    assert_eq!(e["severity"], 4, "fire's default severity");
    assert_eq!(e["district"], 1);
    assert_eq!(e["district_name"], "东区");
    let due = chrono::DateTime::parse_from_rfc3339(e["due_at"].as_str().unwrap()).unwrap();
    let upd = chrono::DateTime::parse_from_rfc3339(e["updated_at"].as_str().unwrap()).unwrap();
    assert_eq!((due - upd).num_milliseconds(), 60_000, "fire: 1 minute to dispatch");

    refuse_all_but(base, id, "reported", &["dispatched", "cancelled", "rejected"]);
    // cancel / reject need a reason.
    for to in ["cancelled", "rejected"] {
        for r in [None, Some("   ")] {
            let (st, body) = transition(base, id, to, r);
            assert_eq!(st, 400, "{body}");
            assert_eq!(body["reason"], "missing_reason");
            assert!(body["error"].as_str().unwrap().contains("needs a non-empty 'reason'"));
        }
    }

    // Recommendation: fire, ambulance, police units, fastest first; straight line × 1.3 at the
    // kind's speed (fire 40 km/h, ambulance/police 45 km/h).
    let (st, rec) = get_json(&format!("{base}/api/events/{id}/recommend?k=7"));
    assert_eq!(st, 200, "{rec}");
    let recs = rec["recommendations"].as_array().unwrap();
    let ev = (123.445, 41.805);
    let mut want: Vec<(f64, i64)> = vec![
        (metres((123.45, 41.80), ev) * 1.3 / (40.0 / 3.6), 3),
        (metres((123.45, 41.80), ev) * 1.3 / (40.0 / 3.6), 4),
        (metres((123.43, 41.81), ev) * 1.3 / (45.0 / 3.6), 5),
        (metres((123.41, 41.80), ev) * 1.3 / (45.0 / 3.6), 1),
        (metres((123.41, 41.80), ev) * 1.3 / (45.0 / 3.6), 2),
    ];
    want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    assert_eq!(recs.len(), 5, "only fire, ambulance and police units: {rec}");
    for (r, (eta, uid)) in recs.iter().zip(&want) {
        assert_eq!(r["unit"]["id"].as_i64().unwrap(), *uid, "{rec}");
        assert!((r["eta_s"].as_f64().unwrap() - eta).abs() < eta * 0.001, "eta {} vs {eta}", r["eta_s"]);
    }

    // Assign: event dispatched + unit en route, together.
    let (st, a) = post_json(&format!("{base}/api/events/{id}/assign"), &json!({"unit_id": 3, "actor": "dispatcher-7"}));
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["event"]["state"], "dispatched");
    assert_eq!(a["event"]["units"], json!([3]));
    let u3 = unit(base, 3);
    assert_eq!((u3["status"].as_str(), u3["event_id"].as_i64()), (Some("en_route"), Some(id)));
    let (st, body) = post_json(&format!("{base}/api/events/{id}/assign"), &json!({"unit_id": 3, "actor": "dispatcher-7"}));
    assert_eq!(st, 409, "{body}");
    assert_eq!(body["reason"], "unit_unavailable");
    assert!(body["error"].as_str().unwrap().contains(&format!("unit 3 (消防-1) is en_route (出动中) on event {id}")), "{body}");
    let (st, _) = post_json(&format!("{base}/api/events/{id}/assign"), &json!({"unit_id": 999, "actor": "d"}));
    assert_eq!(st, 404);
    // A refused assignment changed nothing.
    assert_eq!(state_of(base, id), "dispatched");
    assert_eq!(unit(base, 4)["status"], "available");

    refuse_all_but(base, id, "dispatched", &["handling", "reported", "cancelled"]);
    assert_eq!(transition(base, id, "handling", None).0, 200);
    let u3 = unit(base, 3);
    assert_eq!(u3["status"], "on_scene");
    assert_eq!(u3["position"], json!({"lon": 123.445, "lat": 41.805}));
    refuse_all_but(base, id, "handling", &["feedback", "cancelled"]);
    assert_eq!(transition(base, id, "feedback", None).0, 200);
    assert_eq!(unit(base, 3)["status"], "returning");
    refuse_all_but(base, id, "feedback", &["closed", "handling"]);
    let (st, closed) = transition(base, id, "closed", None);
    assert_eq!(st, 200);
    assert_eq!(closed["due_at"], Value::Null, "no deadline after closing");
    // Released, and driving home (straight line: this model has no roads).
    let u3 = unit(base, 3);
    assert_eq!((u3["status"].as_str(), u3["event_id"].as_i64()), (Some("returning"), None));
    let home = &u3["route"];
    assert_eq!((home["purpose"].as_str(), home["method"].as_str()), (Some("to_base"), Some("straight_line")), "{u3}");
    assert_eq!(home["geometry"], json!([[123.445, 41.805], [123.45, 41.80]]));
    assert!(home["note"].as_str().unwrap().contains("no routable road network"), "{home}");
    let trip = metres((123.445, 41.805), (123.45, 41.80)) * 1.3 / (40.0 / 3.6);
    assert!((home["travel_time_s"].as_f64().unwrap() - trip).abs() < 0.01 * trip, "{home}");
    refuse_all_but(base, id, "closed", &[]);
    let (st, body) = post_json(&format!("{base}/api/events/{id}/assign"), &json!({"unit_id": 4, "actor": "d"}));
    assert_eq!(st, 409, "{body}");
    assert_eq!(unit(base, 4)["status"], "available");

    // The log is the truth: every step in order with actor and note; the state derives from it.
    let (_, log) = get_json(&format!("{base}/api/events/{id}/log"));
    let entries = log["entries"].as_array().unwrap();
    let steps: Vec<(&str, Option<&str>, &str)> = entries.iter().map(|e| (e["kind"].as_str().unwrap(), e["from"].as_str(), e["to"].as_str().unwrap())).collect();
    assert_eq!(
        steps,
        [
            ("created", None, "reported"),
            ("assigned", Some("reported"), "dispatched"),
            ("transition", Some("dispatched"), "handling"),
            ("transition", Some("handling"), "feedback"),
            ("transition", Some("feedback"), "closed"),
        ]
    );
    assert_eq!(entries[0]["actor"], "operator-1");
    assert_eq!(entries[2]["actor"], "dispatcher-7");
    assert_eq!(entries[2]["note"], "to handling");
    assert_eq!(log["state"], "closed");
    assert_eq!(log["derived_state"], "closed");

    // Reject with a reason, and a recall (dispatched → reported) releases the unit.
    let (_, e2) = post_json(&format!("{base}/api/events"), &new_event("city_management", 123.41, 41.79, "占道经营"));
    let id2 = e2["id"].as_i64().unwrap();
    assert_eq!(e2["district_name"], "西区");
    let (st, r) = transition(base, id2, "rejected", Some("重复上报"));
    assert_eq!(st, 200, "{r}");
    let (_, log2) = get_json(&format!("{base}/api/events/{id2}/log"));
    assert_eq!(log2["entries"][1]["reason"], "重复上报");
    let (_, e3) = post_json(&format!("{base}/api/events"), &new_event("public_security", 123.42, 41.80, "纠纷"));
    let id3 = e3["id"].as_i64().unwrap();
    assert_eq!(post_json(&format!("{base}/api/events/{id3}/assign"), &json!({"unit_id": 1, "actor": "d"})).0, 200);
    assert_eq!(transition(base, id3, "reported", None).0, 200);
    // Released: back at base at once if it had not moved yet, else driving home.
    let u1 = unit(base, 1);
    assert_eq!(u1["event_id"], Value::Null);
    assert!(u1["status"] == "available" || (u1["status"] == "returning" && u1["route"]["purpose"] == "to_base"), "{u1}");
    let (_, e3) = get_json(&format!("{base}/api/events/{id3}"));
    assert_eq!(e3["units"], json!([]));
}
both!(closed_loop);

fn queries_and_replay(b: LiveBackend) {
    let t = start(b, &[]);
    let base = &t.s.base;
    let t0 = chrono::Utc::now() - chrono::Duration::seconds(1);
    // (category, lon, lat, reported_at hour offset from 2026-01-01T00:00Z)
    let spec: [(&str, f64, f64, i64); 8] = [
        ("fire", 123.41, 41.79, 0),            // 1 西区
        ("fire", 123.45, 41.81, 1),            // 2 东区
        ("traffic_accident", 123.42, 41.81, 2), // 3 西区
        ("flooding", 123.44, 41.79, 3),        // 4 东区
        ("fire", 123.455, 41.785, 4),          // 5 东区
        ("medical", 123.405, 41.815, 5),       // 6 西区
        ("gas_leak", 123.50, 41.90, 6),        // 7 outside both districts
        ("traffic_accident", 123.435, 41.80, 7), // 8 东区
    ];
    let batch: Vec<Value> = spec
        .iter()
        .map(|(c, lon, lat, h)| {
            let mut e = new_event(c, *lon, *lat, &format!("{c} at {h}"));
            e["reported_at"] = format!("2026-01-01T{:02}:00:00Z", h).into();
            e
        })
        .collect();
    let (st, created) = post_json(&format!("{base}/api/events"), &Value::Array(batch));
    assert_eq!(st, 201, "{created}");
    let ids: Vec<i64> = created["events"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>());
    assert_eq!(created["events"][6]["district"], Value::Null);
    // States: 2 dispatched (unit 3), 3 handling, 4 closed, 6 cancelled; the rest reported.
    assert_eq!(post_json(&format!("{base}/api/events/2/assign"), &json!({"unit_id": 3, "actor": "d"})).0, 200);
    assert_eq!(post_json(&format!("{base}/api/events/3/assign"), &json!({"unit_id": 1, "actor": "d"})).0, 200);
    assert_eq!(transition(base, 3, "handling", None).0, 200);
    for to in ["dispatched", "handling", "feedback", "closed"] {
        assert_eq!(transition(base, 4, to, None).0, 200);
    }
    assert_eq!(transition(base, 6, "cancelled", Some("误报")).0, 200);

    let q = |query: &str| -> Vec<i64> {
        let (st, v) = get_json(&format!("{base}/api/events?{query}"));
        assert_eq!(st, 200, "{query}: {v}");
        v["events"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect()
    };
    assert_eq!(q(""), (1..=8).collect::<Vec<_>>());
    assert_eq!(q("state=reported"), [1, 5, 7, 8]);
    assert_eq!(q("state=dispatched,handling"), [2, 3]);
    assert_eq!(q("category=fire"), [1, 2, 5]);
    assert_eq!(q("category=fire&state=reported"), [1, 5]);
    assert_eq!(q("district=1"), [2, 4, 5, 8]);
    assert_eq!(q("district=%E8%A5%BF%E5%8C%BA"), [1, 3, 6], "by name 西区");
    assert_eq!(q("district=910002&category=traffic_accident"), [8], "by adcode");
    assert_eq!(q("bbox=123.40,41.78,123.43,41.80"), [1]);
    assert_eq!(q("bbox=123.43,41.78,123.46,41.80"), [4, 5, 8]);
    assert_eq!(q("from=2026-01-01T02:00:00Z&to=2026-01-01T05:00:00Z"), [3, 4, 5]);
    assert_eq!(q(&format!("from={}", 1767229200000i64)), [2, 3, 4, 5, 6, 7, 8], "ms since epoch (01:00Z)");
    assert_eq!(q("limit=2&offset=3"), [4, 5]);
    for bad in ["state=done", "category=volcano", "district=99", "bbox=1,2,3", "from=yesterday", "limit=0", "colour=red"] {
        let (st, v) = get_json(&format!("{base}/api/events?{bad}"));
        assert_eq!(st, 400, "{bad}: {v}");
    }

    // Replay: every log entry in the window, in commit order.
    let (st, r) = get_json(&format!("{base}/api/events/replay?from={}", t0.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
    assert_eq!(st, 200, "{r}");
    let entries = r["entries"].as_array().unwrap();
    let seen: Vec<(i64, &str, &str)> = entries.iter().map(|e| (e["event_id"].as_i64().unwrap(), e["kind"].as_str().unwrap(), e["to"].as_str().unwrap())).collect();
    let mut want: Vec<(i64, &str, &str)> = (1..=8).map(|i| (i, "created", "reported")).collect();
    want.extend([
        (2, "assigned", "dispatched"),
        (3, "assigned", "dispatched"),
        (3, "transition", "handling"),
        (4, "transition", "dispatched"),
        (4, "transition", "handling"),
        (4, "transition", "feedback"),
        (4, "transition", "closed"),
        (6, "transition", "cancelled"),
    ]);
    assert_eq!(seen, want);
    let log_ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(log_ids.windows(2).all(|w| w[0] < w[1]));
    // Compare instants, not strings: RFC 3339 drops the fraction on a whole second ("…08Z"),
    // which sorts after "…08.5Z" as text.
    let ats: Vec<chrono::DateTime<chrono::FixedOffset>> =
        entries.iter().map(|e| chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap()).collect();
    assert!(ats.windows(2).all(|w| w[0] <= w[1]), "replay in time order: {ats:?}");
    // A window that ends before the transitions holds only the creations.
    let cut = &entries[8]["at"];
    let (_, r2) = get_json(&format!("{base}/api/events/replay?from={}&to={}", t0.timestamp_millis(), cut.as_str().unwrap()));
    let kinds2: Vec<&str> = r2["entries"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(entries[7]["at"] != *cut, "creations and the first assignment in distinct milliseconds");
    assert_eq!(kinds2, vec!["created"; 8], "[from, to) excludes the entry at `to`");
    let (st, _) = get_json(&format!("{base}/api/events/replay"));
    assert_eq!(st, 400, "from is required");
}
both!(queries_and_replay);

fn categories_with_short_sla(dir: &std::path::Path) -> String {
    let mut s = String::new();
    for id in ["fire", "traffic_accident", "gas_leak", "flooding", "city_management", "public_security", "medical", "air_quality", "infrastructure", "other"] {
        let sla = if id == "fire" { "sla_seconds = { reported = 1, dispatched = 1 }" } else { "sla_minutes = { reported = 60 }" };
        s.push_str(&format!("[[category]]\nid = \"{id}\"\nname_zh = \"{id}\"\nname_en = \"{id}\"\nseverity = 2\nunits = [\"fire\", \"police\"]\n{sla}\n\n"));
    }
    let p = dir.join("cats.toml");
    std::fs::write(&p, s).unwrap();
    p.to_string_lossy().into_owned()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sla_escalation(b: LiveBackend) {
    let cdir = tempfile::tempdir().unwrap();
    let cats = categories_with_short_sla(cdir.path());
    let t = start(b, &["--categories", &cats, "--sla-check-ms", "100"]);
    let base = &t.s.base;
    let (_, fire) = post_json(&format!("{base}/api/events"), &new_event("fire", 123.41, 41.80, "仓库起火"));
    let (_, other) = post_json(&format!("{base}/api/events"), &new_event("city_management", 123.42, 41.80, "井盖缺失"));
    let (fid, oid) = (fire["id"].as_i64().unwrap(), other["id"].as_i64().unwrap());
    assert_eq!(fire["severity"], 2, "default severity from --categories");
    let escalation = |id: i64| get_json(&format!("{base}/api/events/{id}")).1["escalation"].as_i64().unwrap();
    wait_for("first escalation", 15, || escalation(fid) == 1);
    // Once per stage: still 1 well after the next checks.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(escalation(fid), 1);
    let (_, overdue) = get_json(&format!("{base}/api/events?overdue=1"));
    assert_eq!(overdue["events"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect::<Vec<_>>(), [fid]);
    // A new stage has a new deadline and escalates again.
    assert_eq!(post_json(&format!("{base}/api/events/{fid}/assign"), &json!({"unit_id": 3, "actor": "d"})).0, 200);
    wait_for("second escalation", 15, || escalation(fid) == 2);
    let (_, log) = get_json(&format!("{base}/api/events/{fid}/log"));
    let esc: Vec<&Value> = log["entries"].as_array().unwrap().iter().filter(|e| e["kind"] == "escalated").collect();
    assert_eq!(esc.len(), 2);
    assert_eq!(esc[0]["to"], "reported");
    assert_eq!(esc[1]["to"], "dispatched");
    assert_eq!(esc[0]["actor"], "system:sla");
    assert!(esc[0]["note"].as_str().unwrap().contains("stage reported (发现) overdue"), "{}", esc[0]);
    assert_eq!(log["derived_state"], "dispatched", "escalations do not change the state");
    assert_eq!(escalation(oid), 0, "an hour-long SLA is not overdue");
    let m = get_text(&format!("{base}/metrics"));
    assert_eq!(metric(&m, "citytwin_event_escalations_total"), 2.0);
}
both!(sla_escalation);

/// POST with `Content-Length: len` but only the first 1.125 MiB of the body (past the 1 MiB limit):
/// the server answers 413 as soon as it has read past the limit (a client pushing the whole body
/// would race the server's close of the connection).
fn post_oversized(base: &str, path: &str, len: usize) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TEST_ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n").unwrap();
    let _ = s.write_all(&vec![b' '; (1 << 20) + (1 << 17)]);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    // The body may be chunked: take the JSON object in it.
    let json = body.find('{').and_then(|i| body.rfind('}').map(|j| &body[i..=j])).unwrap_or("null");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

fn bad_input(b: LiveBackend) {
    let t = start(b, &[]);
    let base = &t.s.base;
    let (_, good) = post_json(&format!("{base}/api/events"), &new_event("medical", 123.42, 41.80, "老人摔倒"));
    let id = good["id"].as_i64().unwrap();
    let (_, before) = get_json(&format!("{base}/api/events/{id}"));
    let ev = format!("{base}/api/events");
    let cases: Vec<(&str, u16, &str, &str, (u16, Value))> = vec![
        ("malformed JSON", 400, "malformed_json", "line 1 column", post_raw(&ev, b"{\"category\": \"fire\",".to_vec())),
        ("unknown category", 400, "invalid_field", "unknown variant `volcano`", post_json(&ev, &new_event("volcano", 123.4, 41.8, "x"))),
        ("out-of-range location", 400, "out_of_range", "is not a WGS-84 lon/lat", post_json(&ev, &new_event("fire", 223.4, 41.8, "x"))),
        ("empty title", 400, "invalid_field", "title must be", post_json(&ev, &new_event("fire", 123.4, 41.8, " "))),
        ("batch names the item", 400, "invalid_field", "[1]: unknown variant", post_json(&ev, &json!([new_event("fire", 123.4, 41.8, "a"), new_event("x", 123.4, 41.8, "b")]))),
        ("unknown field", 400, "invalid_field", "unknown field `colour`", post_json(&format!("{ev}/{id}/transitions"), &json!({"to": "dispatched", "actor": "a", "colour": 1}))),
        ("unknown event", 404, "unknown_id", "no event 424242", post_json(&format!("{ev}/424242/transitions"), &json!({"to": "dispatched", "actor": "a"}))),
        ("bad id", 400, "bad_id", "positive integer", get_json(&format!("{ev}/abc"))),
        ("oversized body", 413, "body_too_large", "larger than the limit", post_oversized(base, "/api/events", 2 << 20)),
        ("invalid transition", 409, "invalid_transition", "cannot move to closed", post_json(&format!("{ev}/{id}/transitions"), &json!({"to": "closed", "actor": "a"}))),
    ];
    let mut per_reason = std::collections::BTreeMap::<&str, f64>::new();
    for (what, status, reason, msg, (st, body)) in &cases {
        assert_eq!(st, status, "{what}: {body}");
        assert_eq!(body["reason"], *reason, "{what}: {body}");
        assert!(body["error"].as_str().unwrap().contains(msg), "{what}: {body}");
        *per_reason.entry(reason).or_default() += 1.0;
    }
    // The server keeps serving, the earlier event is intact, the rejected batch created nothing.
    let (st, after) = get_json(&format!("{base}/api/events/{id}"));
    assert_eq!(st, 200);
    assert_eq!(after, before);
    let (_, all) = get_json(&format!("{base}/api/events"));
    assert_eq!(all["count"], 1, "nothing of the refused requests was stored");
    let m = get_text(&format!("{base}/metrics"));
    for (reason, n) in per_reason {
        assert_eq!(metric(&m, &format!("citytwin_rejected_inputs_total{{reason=\"{reason}\"}}")), n, "{reason}\n{m}");
    }
    assert_eq!(metric(&m, "citytwin_http_requests_total{route=\"/api/events\",method=\"POST\",status=\"413\"}"), 1.0, "{m}");
    let backend = if b == LiveBackend::Sqlite { "sqlite" } else { "postgres" };
    // The gauge is the tailer's head, which follows commits asynchronously (on PostgreSQL through
    // NOTIFY or its 250 ms poll): wait for it to reach the one accepted change, then require exactly that.
    let key = format!("citytwin_changes_seq{{backend=\"{backend}\"}}");
    let mut seq = metric(&m, &key);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seq < 1.0 && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(100));
        seq = metric(&get_text(&format!("{base}/metrics")), &key);
    }
    assert_eq!(seq, 1.0, "one accepted change");
}
both!(bad_input);

/// Great-circle metres (haversine, R = 6,371,008.8 m), for the road lengths below.
fn haversine(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (p1, p2) = (a.1.to_radians(), b.1.to_radians());
    let (dp, dl) = (p2 - p1, (b.0 - a.0).to_radians());
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * h.sqrt().asin()
}

/// A river between two parallel primary roads (41.800 and 41.815) that meet only through a
/// secondary road at the west end (123.400); the event is at the north end of a residential
/// spur (123.45, 41.800 → 41.810) off the south road. Station A stands on the north road right
/// across the river from the event (555 m straight), station B on the south road 2.5 km west:
/// by straight line A's units come first, over the roads B's do — the recommendation must rank
/// by the roads, with these hand-derived travel times (class speeds of docs/ARCHITECTURE.md
/// "Routing" × 0.67: primary 50, secondary 40, residential 20 km/h).
const RIVER_CITY: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"amenity":"police","name":"南岸派出所"},"geometry":{"type":"Point","coordinates":[123.42,41.80]}},
{"type":"Feature","properties":{"amenity":"police","name":"北岸派出所"},"geometry":{"type":"Point","coordinates":[123.45,41.815]}},
{"type":"Feature","properties":{"highway":"primary","name":"南滨路"},"geometry":{"type":"LineString","coordinates":[[123.40,41.80],[123.42,41.80],[123.45,41.80],[123.46,41.80]]}},
{"type":"Feature","properties":{"highway":"primary","name":"北滨路"},"geometry":{"type":"LineString","coordinates":[[123.40,41.815],[123.45,41.815],[123.46,41.815]]}},
{"type":"Feature","properties":{"highway":"secondary","name":"西桥路"},"geometry":{"type":"LineString","coordinates":[[123.40,41.80],[123.40,41.815]]}},
{"type":"Feature","properties":{"highway":"residential","name":"支路"},"geometry":{"type":"LineString","coordinates":[[123.45,41.80],[123.45,41.81]]}}
]}"#;

#[test]
fn recommend_by_road_network() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("river.geojson");
    std::fs::write(&src, RIVER_CITY).unwrap();
    let model = dir.path().join("river");
    let o = twin(&["build", "--source", &src.to_string_lossy(), "--out", &model.to_string_lossy(), "--no-tiles", "--no-3dtiles"]);
    assert!(o.status.success(), "build failed: {}", stderr(&o));
    let db = LiveDb::new(LiveBackend::Sqlite);
    let s = serve_with(&model, &["--db", db.url.as_str()]);
    let base = &s.base;

    let ev = (123.45, 41.81);
    let (st, e) = post_json(&format!("{base}/api/events"), &new_event("public_security", ev.0, ev.1, "纠纷"));
    assert_eq!(st, 201, "{e}");
    let id = e["id"].as_i64().unwrap();
    let (st, rec) = get_json(&format!("{base}/api/events/{id}/recommend?k=4"));
    assert_eq!(st, 200, "{rec}");
    assert_eq!(rec["method"], "road_network", "{rec}");

    let v = |kmh: f64| kmh * 0.67 / 3.6;
    let spur = haversine((123.45, 41.80), ev);
    // B: east along 南滨路 123.42 → 123.45, then up the spur.
    let b_len = haversine((123.42, 41.80), (123.45, 41.80)) + spur;
    let b_eta = haversine((123.42, 41.80), (123.45, 41.80)) / v(50.0) + spur / v(20.0);
    // A: west along 北滨路 to 123.40, over 西桥路, east along 南滨路 to 123.45, up the spur.
    let (north, bridge, south) = (
        haversine((123.45, 41.815), (123.40, 41.815)),
        haversine((123.40, 41.815), (123.40, 41.80)),
        haversine((123.40, 41.80), (123.45, 41.80)),
    );
    let a_len = north + bridge + south + spur;
    let a_eta = (north + south) / v(50.0) + bridge / v(40.0) + spur / v(20.0);
    assert!(metres((123.45, 41.815), ev) < metres((123.42, 41.80), ev), "A is nearer by straight line");

    let recs = rec["recommendations"].as_array().unwrap();
    let got: Vec<(i64, f64, f64)> =
        recs.iter().map(|r| (r["unit"]["id"].as_i64().unwrap(), r["eta_s"].as_f64().unwrap(), r["distance_m"].as_f64().unwrap())).collect();
    let want = [(1, b_eta, b_len), (2, b_eta, b_len), (3, a_eta, a_len), (4, a_eta, a_len)];
    assert_eq!(got.len(), 4, "{rec}");
    for ((gid, geta, glen), (wid, weta, wlen)) in got.iter().zip(want) {
        assert_eq!(*gid, wid, "{rec}");
        assert!((geta - weta).abs() < weta * 1e-3, "unit {gid}: eta {geta} vs hand-computed {weta}");
        assert!((glen - wlen).abs() < wlen * 1e-3, "unit {gid}: length {glen} vs hand-computed {wlen}");
    }
    // Each route runs from the unit's station to the event along the roads.
    for r in recs {
        let route = r["route"].as_array().expect("route geometry");
        let first = (route[0][0].as_f64().unwrap(), route[0][1].as_f64().unwrap());
        let last = route.last().map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())).unwrap();
        let pos = (r["unit"]["position"]["lon"].as_f64().unwrap(), r["unit"]["position"]["lat"].as_f64().unwrap());
        assert!(metres(first, pos) < 1.0 && metres(last, ev) < 1.0, "route {first:?} → {last:?}");
        let len: f64 = route.windows(2).map(|w| haversine((w[0][0].as_f64().unwrap(), w[0][1].as_f64().unwrap()), (w[1][0].as_f64().unwrap(), w[1][1].as_f64().unwrap()))).sum();
        assert!((len - r["distance_m"].as_f64().unwrap()).abs() < 1.0, "geometry length {len} vs distance_m {}", r["distance_m"]);
    }
    // The straight-line fallback (a model without roads) is what closed_loop checks.
}

fn river_model(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("river.geojson");
    std::fs::write(&src, RIVER_CITY).unwrap();
    let model = dir.join("river");
    let o = twin(&["build", "--source", &src.to_string_lossy(), "--out", &model.to_string_lossy(), "--no-tiles", "--no-3dtiles"]);
    assert!(o.status.success(), "build failed: {}", stderr(&o));
    model
}

fn ll(v: &Value) -> (f64, f64) {
    (v[0].as_f64().unwrap(), v[1].as_f64().unwrap())
}

fn pos(u: &Value) -> (f64, f64) {
    (u["position"]["lon"].as_f64().unwrap(), u["position"]["lat"].as_f64().unwrap())
}

fn ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().timestamp_millis()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Where a unit on `route` is `elapsed_s` after departure, computed here from the returned
/// geometry and vertex times (linear between vertices, as scenes::routing::Route::position_at).
fn along(route: &Value, elapsed_s: f64) -> (f64, f64) {
    let g: Vec<(f64, f64)> = route["geometry"].as_array().unwrap().iter().map(ll).collect();
    let t: Vec<f64> = route["vertex_time_s"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(g.len(), t.len());
    if elapsed_s <= 0.0 {
        return g[0];
    }
    for i in 0..g.len() - 1 {
        if elapsed_s <= t[i + 1] {
            let f = if t[i + 1] > t[i] { (elapsed_s - t[i]) / (t[i + 1] - t[i]) } else { 1.0 };
            return (g[i].0 + f * (g[i + 1].0 - g[i].0), g[i].1 + f * (g[i + 1].1 - g[i].1));
        }
    }
    *g.last().unwrap()
}

/// Metres from p to the segment a–b (equirectangular, fine at these distances).
fn to_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let k = (41.8f64).to_radians().cos();
    let (ax, ay, bx, by, px, py) = (a.0 * k, a.1, b.0 * k, b.1, p.0 * k, p.1);
    let (dx, dy) = (bx - ax, by - ay);
    let l2 = dx * dx + dy * dy;
    let f = if l2 > 0.0 { (((px - ax) * dx + (py - ay) * dy) / l2).clamp(0.0, 1.0) } else { 0.0 };
    let (qx, qy) = (ax + f * dx, ay + f * dy);
    ((px - qx).powi(2) + (py - qy).powi(2)).sqrt().to_radians() * 6_371_008.8
}

/// Assignment plans a road route; the unit's position between writes is derived from it and the
/// clock (checked against an interpolation of the returned geometry and vertex times, and against
/// the roads themselves); the mover commits the arrival (on scene at the event, event → handling
/// with an `arrived` log entry); feedback sends it home along a route and it becomes available at
/// its base. `--unit-speedup 60`: the hand-derived 566 s trip takes 9.4 s.
fn unit_moves_along_its_route(b: LiveBackend) {
    let dir = tempfile::tempdir().unwrap();
    let model = river_model(dir.path());
    let db = LiveDb::new(b);
    let s = serve_with(&model, &["--db", db.url.as_str(), "--unit-speedup", "60"]);
    let base = &s.base;
    let ev = (123.45, 41.81);
    let (_, e) = post_json(&format!("{base}/api/events"), &new_event("public_security", ev.0, ev.1, "纠纷"));
    let id = e["id"].as_i64().unwrap();
    let (st, a) = post_json(&format!("{base}/api/events/{id}/assign"), &json!({"unit_id": 1, "actor": "dispatcher-7"}));
    assert_eq!(st, 200, "{a}");
    let u = &a["unit"];
    assert_eq!(u["status"], "en_route");
    let r = u["route"].clone();
    assert_eq!((r["method"].as_str(), r["purpose"].as_str()), (Some("road_network"), Some("to_event")), "{r}");
    // The trip is the hand-derived one of recommend_by_road_network: 南滨路 east, then the spur.
    let v = |kmh: f64| kmh * 0.67 / 3.6;
    let (south, spur) = (haversine((123.42, 41.80), (123.45, 41.80)), haversine((123.45, 41.80), ev));
    let (t_south, t_spur) = (south / v(50.0), spur / v(20.0));
    assert!((r["length_m"].as_f64().unwrap() - (south + spur)).abs() < 1.0, "{r}");
    assert!((r["travel_time_s"].as_f64().unwrap() - (t_south + t_spur)).abs() < 0.5, "{r}");
    let (depart, eta) = (ms(&r["depart_at"]), ms(&r["eta_at"]));
    let wall = (t_south + t_spur) / 60.0;
    assert!(((eta - depart) as f64 / 1000.0 - wall).abs() < 0.01, "eta - depart = {} ms, want {wall} s", eta - depart);
    assert!(metres(ll(&r["geometry"][0]), (123.42, 41.80)) < 1.0 && metres(ll(r["geometry"].as_array().unwrap().last().unwrap()), ev) < 1.0, "{r}");

    // Half-way: on the spur (the south road takes 268 of the 566 s), where the route says.
    let half = depart + (wall * 500.0) as i64;
    std::thread::sleep(Duration::from_millis((half - now_ms()).max(0) as u64));
    let t0 = now_ms();
    let got = unit(base, 1);
    let t1 = now_ms();
    assert_eq!(got["status"], "en_route");
    assert_eq!(got["route"], r, "the route is persisted as assigned");
    let p = pos(&got);
    let (p0, p1) = (along(&r, (t0 - depart) as f64 / 1000.0), along(&r, (t1 - depart) as f64 / 1000.0));
    // The position the server derived at some instant in [t0, t1] lies between the two.
    assert!(to_segment(p, p0, p1) < 2.0, "position {p:?} not between {p0:?} and {p1:?} (the route at the request's start and end)");
    // …and on the roads: at half the trip time (283 s) the unit is 15 s up the 299 s spur.
    let on_south = to_segment(p, (123.42, 41.80), (123.45, 41.80));
    let on_spur = to_segment(p, (123.45, 41.80), ev);
    assert!(on_south.min(on_spur) < 1.0, "off the road: {p:?}");
    let elapsed = ((t0 + t1) as f64 / 2.0 - depart as f64) / 1000.0 * 60.0;
    let want = if elapsed > t_south { (123.45, 41.80 + (elapsed - t_south) / t_spur * 0.01) } else { (123.42 + elapsed / t_south * 0.03, 41.80) };
    assert!(metres(p, want) < 10.0 + (t1 - t0) as f64 / 1000.0 * 60.0 * v(50.0), "at {elapsed:.1} s of travel: {p:?} vs hand-derived {want:?}");
    let (_, listed) = get_json(&format!("{base}/api/units?status=en_route"));
    assert_eq!(listed["count"], 1);

    // Arrival: committed by the mover once the ETA has passed.
    wait_for("arrival", 30, || unit(base, 1)["status"] == "on_scene");
    let u1 = unit(base, 1);
    assert_eq!(pos(&u1), ev, "on scene at the event");
    assert_eq!(u1["route"], Value::Null);
    assert!(now_ms() >= eta);
    assert_eq!(state_of(base, id), "handling", "the first arrival starts 处置");
    let (_, log) = get_json(&format!("{base}/api/events/{id}/log"));
    let kinds: Vec<(&str, &str, &str)> = log["entries"].as_array().unwrap().iter().map(|e| (e["kind"].as_str().unwrap(), e["to"].as_str().unwrap(), e["actor"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("created", "reported", "operator-1"), ("assigned", "dispatched", "dispatcher-7"), ("arrived", "handling", "unit:1")]);

    // Feedback: it drives home along a road route; closing releases it; it arrives available.
    assert_eq!(transition(base, id, "feedback", None).0, 200);
    let u1 = unit(base, 1);
    assert_eq!((u1["status"].as_str(), u1["route"]["purpose"].as_str()), (Some("returning"), Some("to_base")), "{u1}");
    let back = u1["route"].clone();
    assert!(metres(ll(back["geometry"].as_array().unwrap().last().unwrap()), (123.42, 41.80)) < 1.0, "{back}");
    assert_eq!(transition(base, id, "closed", None).0, 200);
    let u1 = unit(base, 1);
    assert_eq!((u1["status"].as_str(), u1["event_id"].as_i64()), (Some("returning"), None), "released, still driving home: {u1}");
    wait_for("return to base", 30, || unit(base, 1)["status"] == "available");
    let u1 = unit(base, 1);
    assert_eq!(pos(&u1), (123.42, 41.80));
    assert_eq!(u1["route"], Value::Null);
    let m = get_text(&format!("{base}/metrics"));
    assert_eq!(metric(&m, "citytwin_unit_arrivals_total"), 2.0, "one arrival at the event, one at base");

    // An event 208 m off the road: the route ends at the event itself, through a straight access
    // leg (15 km/h) from the point it snaps to (the spur's end).
    let off = (123.4525, 41.81);
    let (_, e2) = post_json(&format!("{base}/api/events"), &new_event("public_security", off.0, off.1, "院内纠纷"));
    let (st, a2) = post_json(&format!("{base}/api/events/{}/assign", e2["id"]), &json!({"unit_id": 2, "actor": "d"}));
    assert_eq!(st, 200, "{a2}");
    let r2 = &a2["unit"]["route"];
    let g = r2["geometry"].as_array().unwrap();
    assert_eq!(ll(g.last().unwrap()), off, "{r2}");
    assert!(metres(ll(&g[g.len() - 2]), ev) < 1.0, "{r2}");
    let leg = haversine(ev, off);
    assert!((r2["length_m"].as_f64().unwrap() - (south + spur + leg)).abs() < 1.0, "{r2}");
    assert!((r2["travel_time_s"].as_f64().unwrap() - (t_south + t_spur + leg / (15.0 / 3.6))).abs() < 0.5, "{r2}");
}
both!(unit_moves_along_its_route);

/// Messages of a WebSocket until it is quiet for `quiet`.
fn drain(ws: &mut tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>, quiet: Duration) -> Vec<Value> {
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(quiet)).unwrap();
    }
    let mut out = vec![];
    while let Ok(m) = ws.read() {
        if let tungstenite::Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "delta" {
                out.push(v);
            }
        }
    }
    out
}

/// Two replicas on one PostgreSQL, both checking SLAs every 100 ms and both running the mover:
/// each overdue stage is escalated exactly once (one log entry, one delta on each stream, one
/// escalation counted over both processes) and the unit's arrival is committed exactly once.
#[test]
fn two_replicas_escalate_once_and_commit_arrival_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = river_model(dir.path());
    let cats = categories_with_short_sla(dir.path());
    let db = LiveDb::new(LiveBackend::Postgres);
    let args = ["--db", db.url.as_str(), "--categories", cats.as_str(), "--sla-check-ms", "100", "--unit-speedup", "60"];
    let a = serve_with(&model, &args);
    let b = serve_with(&model, &args);
    let open = |base: &str| {
        let url = format!("ws://{}/api/stream?topics=events,units", base.trim_start_matches("http://"));
        tungstenite::connect(url).expect("websocket").0
    };
    let (mut wa, mut wb) = (open(&a.base), open(&b.base));
    // Both snapshots taken before the first change: every change arrives as a delta.
    for w in [&mut wa, &mut wb] {
        loop {
            if let tungstenite::Message::Text(t) = w.read().expect("stream message") {
                if serde_json::from_str::<Value>(t.as_str()).unwrap()["type"] == "snapshot" {
                    break;
                }
            }
        }
    }
    let (_, e) = post_json(&format!("{}/api/events", a.base), &new_event("fire", 123.45, 41.81, "仓库起火"));
    let id = e["id"].as_i64().unwrap();
    let escalation = |base: &str| get_json(&format!("{base}/api/events/{id}")).1["escalation"].as_i64().unwrap();
    wait_for("the reported stage's escalation", 15, || escalation(&a.base) == 1);
    std::thread::sleep(Duration::from_millis(1500)); // ≥ 10 more checks on each replica
    assert_eq!(escalation(&b.base), 1);
    // Dispatched through B (1 s SLA again): escalated once more; the unit arrives once.
    assert_eq!(post_json(&format!("{}/api/events/{id}/assign", b.base), &json!({"unit_id": 1, "actor": "d"})).0, 200);
    wait_for("arrival", 40, || state_of(&a.base, id) == "handling");
    std::thread::sleep(Duration::from_millis(1500)); // ≥ 3 more mover ticks on each replica
    let (_, log) = get_json(&format!("{}/api/events/{id}/log", b.base));
    let kinds: Vec<(&str, &str)> = log["entries"].as_array().unwrap().iter().map(|e| (e["kind"].as_str().unwrap(), e["to"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("created", "reported"), ("escalated", "reported"), ("assigned", "dispatched"), ("escalated", "dispatched"), ("arrived", "handling")], "{log}");
    let (ma, mb) = (get_text(&format!("{}/metrics", a.base)), get_text(&format!("{}/metrics", b.base)));
    let sum = |k: &str| metric(&ma, k) + metric(&mb, k);
    assert_eq!(sum("citytwin_event_escalations_total"), 2.0, "A:\n{ma}\nB:\n{mb}");
    assert_eq!(sum("citytwin_unit_arrivals_total"), 1.0);
    assert_eq!(unit(&a.base, 1)["status"], "on_scene");
    // Both streams carry the same changes once each: 2 escalations, 1 unit arrival + 1 event arrival.
    let (da, db_) = (drain(&mut wa, Duration::from_secs(2)), drain(&mut wb, Duration::from_secs(2)));
    let seqs = |d: &[Value]| d.iter().map(|x| x["seq"].as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(seqs(&da), seqs(&db_));
    let count = |kind: &str, topic: &str| da.iter().filter(|x| x["kind"] == kind && x["topic"] == topic).count();
    assert_eq!(count("escalated", "events"), 2);
    assert_eq!(count("arrived", "units"), 1);
    assert_eq!(count("arrived", "events"), 1);
}
