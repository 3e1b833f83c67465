//! The OpenAPI 3.1 document (twin-server/openapi/openapi.json, served at GET /api/openapi.json)
//! must not drift from the server:
//! * its paths and methods are exactly the `.route("…", …)` calls of the routers' source files
//!   (a route added without documenting it fails here);
//! * an external validator (`openapi-spec-validator`, Python) accepts it as OpenAPI 3.1;
//! * real responses of a running server validate against its response schemas with the external
//!   `jsonschema` package (tests/openapi/check_responses.py), errors included, and so do the
//!   stream's messages against `components/schemas/ServerMessage`.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json")
}

fn doc() -> Value {
    serde_json::from_slice(&std::fs::read(doc_path()).unwrap()).expect("openapi.json is JSON")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `.route("PATH", …)` of the server's sources with its methods (`any(…)` = GET, HEAD,
/// OPTIONS: what the 3D Tiles handler answers), axum's `{*rest}` written as OpenAPI's `{rest}`.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut files = vec![];
    rs_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut out = BTreeSet::new();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        let mut rest = src.as_str();
        while let Some(i) = rest.find(".route(\"") {
            let after = &rest[i + 8..];
            let end = after.find('"').unwrap();
            let path = after[..end].replace("{*", "{");
            // the call's text up to its closing parenthesis
            let (mut depth, mut j) = (1i32, 0usize);
            let call = &rest[i + 7..];
            for (k, c) in call.char_indices().skip(1) {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    j = k;
                    break;
                }
            }
            let text = &call[..j];
            let mut methods = vec![];
            for m in ["get", "post", "put", "delete", "patch"] {
                let n = text.matches(&format!("{m}(")).count() - text.matches(&format!("_{m}(")).count();
                if n > 0 {
                    methods.push(m.to_string());
                }
            }
            if text.contains("any(") {
                methods.extend(["get", "head", "options"].map(String::from));
            }
            assert!(!methods.is_empty(), "{}: route {path}: no method found in `{text}`", f.display());
            for m in methods {
                out.insert((path.clone(), m));
            }
            rest = &call[j..];
        }
    }
    out
}

#[test]
fn document_has_exactly_the_routes_of_the_routers() {
    let src = routes_in_source();
    assert!(src.len() >= 30, "found only {} routes: {src:?}", src.len());
    assert!(src.contains(&("/api/events/{id}/assign".to_string(), "post".to_string())));
    let d = doc();
    let mut documented = BTreeSet::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch", "head", "options"].contains(&m.as_str()) {
                documented.insert((path.clone(), m.clone()));
            }
        }
    }
    let missing: Vec<_> = src.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&src).collect();
    assert!(missing.is_empty() && extra.is_empty(), "routes not in openapi.json: {missing:?}\ndocumented but not routed: {extra:?}");
}

#[test]
fn document_is_valid_openapi_3_1() {
    let p = doc_path();
    let o = std::process::Command::new("python3")
        .args(["-c", "import sys; from openapi_spec_validator import validate; from openapi_spec_validator.readers import read_from_filename; d, _ = read_from_filename(sys.argv[1]); validate(d); print('valid', d['openapi'])"])
        .arg(&p)
        .output()
        .expect("python3 (scripts/install-deps.sh installs openapi-spec-validator)");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "openapi-spec-validator rejects {}:\n{out}\n{}", p.display(), String::from_utf8_lossy(&o.stderr));
    assert_eq!(out.trim(), "valid 3.1.0");
}

#[test]
fn real_responses_validate_against_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(LiveBackend::Sqlite);
    let s = serve_with(&model, &["--db", db.url.as_str(), "--simulate", "off"]);
    let base = &s.base;
    let mut samples: Vec<Value> = vec![];
    fn add_to(samples: &mut Vec<Value>, path: &str, method: &str, (st, body): (u16, Value)) {
        assert!(!body.is_null(), "{method} {path}: no JSON body (status {st})");
        samples.push(json!({"path": path, "method": method, "status": st, "body": body}));
    }
    macro_rules! add {
        ($path:expr, $method:expr, $r:expr) => {
            add_to(&mut samples, $path, $method, $r)
        };
    }
    // The document the server serves is the checked-in one.
    let (st, served) = get_json(&format!("{base}/api/openapi.json"));
    assert_eq!(st, 200);
    assert_eq!(served, doc());

    // The stream: hello and snapshot now, deltas below (validated as ServerMessage).
    let (mut ws, _) = tungstenite::connect(format!("ws://{}/api/stream?topics=events,units", base.trim_start_matches("http://"))).expect("websocket");
    let read = |ws: &mut tungstenite::WebSocket<_>| loop {
        if let tungstenite::Message::Text(t) = ws.read().expect("stream message") {
            break serde_json::from_str::<Value>(t.as_str()).unwrap();
        }
    };
    let mut messages = vec![read(&mut ws), read(&mut ws)];
    let ev = json!({"category": "fire", "source": "hotline_12345", "title": "厨房起火", "location": {"lon": 123.445, "lat": 41.805}, "actor": "operator-1"});
    let created = post_json(&format!("{base}/api/events"), &ev);
    assert_eq!(created.0, 201, "{}", created.1);
    let id = created.1["id"].as_i64().unwrap();
    add!("/api/events", "post", created);
    add!("/api/events", "post", post_json(&format!("{base}/api/events"), &json!([ev, ev])));
    add!("/api/events", "get", get_json(&format!("{base}/api/events")));
    add!("/api/events/{id}", "get", get_json(&format!("{base}/api/events/{id}")));
    add!("/api/events/{id}/recommend", "get", get_json(&format!("{base}/api/events/{id}/recommend?k=3")));
    let assigned = post_json(&format!("{base}/api/events/{id}/assign"), &json!({"unit_id": 3, "actor": "dispatcher-7"}));
    assert_eq!(assigned.0, 200, "{}", assigned.1);
    assert!(assigned.1["unit"]["route"].is_object(), "the assigned unit carries its route: {}", assigned.1);
    add!("/api/events/{id}/assign", "post", assigned);
    add!("/api/events/{id}/log", "get", get_json(&format!("{base}/api/events/{id}/log")));
    // hello, snapshot, the 3 created events, the unit's assignment (with its route), the event's.
    for _ in 0..5 {
        messages.push(read(&mut ws));
    }
    let kinds: Vec<String> = messages.iter().map(|m| format!("{}:{}", m["type"].as_str().unwrap(), m["kind"].as_str().unwrap_or(""))).collect();
    assert!(messages[5]["payload"]["unit"]["route"].is_object(), "{}", messages[5]);
    for m in messages {
        samples.push(json!({"schema": "ServerMessage", "body": m}));
    }
    assert_eq!(kinds, ["hello:", "snapshot:", "delta:created", "delta:created", "delta:created", "delta:assigned", "delta:assigned"]);
    add!("/api/units", "get", get_json(&format!("{base}/api/units")));
    add!("/api/units/{id}", "get", get_json(&format!("{base}/api/units/3")));
    add!("/api/events/categories", "get", get_json(&format!("{base}/api/events/categories")));
    add!("/api/events/replay", "get", get_json(&format!("{base}/api/events/replay?from=0")));
    add!("/api/events/{id}/transitions", "post", post_json(&format!("{base}/api/events/{id}/transitions"), &json!({"to": "handling", "actor": "d"})));
    // errors: 409, 400 (malformed JSON, bad query), 404
    let conflict = post_json(&format!("{base}/api/events/{id}/transitions"), &json!({"to": "closed", "actor": "d"}));
    assert_eq!(conflict.0, 409);
    add!("/api/events/{id}/transitions", "post", conflict);
    let malformed = post_raw(&format!("{base}/api/events"), b"{\"category\": ".to_vec());
    assert_eq!(malformed.0, 400);
    add!("/api/events", "post", malformed);
    add!("/api/events", "get", get_json(&format!("{base}/api/events?state=nope")));
    add!("/api/events/{id}", "get", get_json(&format!("{base}/api/events/424242")));
    add!("/api/buildings", "get", get_json(&format!("{base}/api/buildings?bbox=1,2")));
    // sensors: a datastream by deep insert, one observation, the overview, the STA collections
    let ds = json!({"name": "PM2.5 西区", "description": "", "properties": {"sensorType": "pm25"},
        "Thing": {"name": "站点 1", "description": "", "Locations": [{"name": "l", "description": "", "encodingType": "application/geo+json", "location": {"type": "Point", "coordinates": [123.41, 41.80]}}]},
        "Sensor": {"name": "s", "description": "", "encodingType": "text/plain", "metadata": "m"},
        "ObservedProperty": {"name": "pm25", "definition": "x", "description": ""}});
    let (st, d) = post_json(&format!("{base}/api/sta/v1.1/Datastreams"), &ds);
    assert_eq!(st, 201, "{d}");
    let dsid = d["@iot.id"].as_i64().unwrap();
    add!("/api/sta/v1.1/{path}", "post", (st, d));
    add!("/api/sensors/observations", "post", post_json(&format!("{base}/api/sensors/observations"), &json!([{"datastream": dsid, "result": 35.5}, {"datastream": 999, "result": 1}])));
    add!("/api/sensors/latest", "get", get_json(&format!("{base}/api/sensors/latest")));
    add!("/api/sensors/types", "get", get_json(&format!("{base}/api/sensors/types")));
    add!("/api/sta/v1.1", "get", get_json(&format!("{base}/api/sta/v1.1")));
    add!("/api/sta/v1.1/{path}", "get", get_json(&format!("{base}/api/sta/v1.1/Things")));
    add!("/api/sta/v1.1/{path}", "get", get_json(&format!("{base}/api/sta/v1.1/Things(1)")));
    add!("/api/sta/v1.1/{path}", "get", get_json(&format!("{base}/api/sta/v1.1/Datastreams({dsid})/Observations?$count=true")));
    add!("/api/sta/v1.1/{path}", "get", get_json(&format!("{base}/api/sta/v1.1/Observations?$filter=result%20gt")));
    // the model
    add!("/api/model", "get", get_json(&format!("{base}/api/model")));
    add!("/api/districts", "get", get_json(&format!("{base}/api/districts")));
    add!("/api/nearest", "get", get_json(&format!("{base}/api/nearest?lon=123.42&lat=41.80&layer=pois&k=2")));
    add!("/api/pick", "get", get_json(&format!("{base}/api/pick?lon=123.4205&lat=41.8005")));
    let statuses: BTreeSet<u64> = samples.iter().filter_map(|s| s["status"].as_u64()).collect();
    for want in [200, 201, 400, 404, 409] {
        assert!(statuses.contains(&want), "no {want} sample: {statuses:?}");
    }
    let f = dir.path().join("samples.json");
    std::fs::write(&f, serde_json::to_vec(&samples).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/openapi/check_responses.py");
    let o = std::process::Command::new("python3").arg(&script).arg(doc_path()).arg(&f).output().expect("python3 with jsonschema");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "responses that do not match the document:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains(&format!("{n} of {n} responses valid", n = samples.len())), "{out}");
}
