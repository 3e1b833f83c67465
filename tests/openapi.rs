//! The OpenAPI 3.1 document (twin-server/openapi/openapi.json, served at GET /api/openapi.json)
//! must not drift from the server:
//! * its paths and methods are exactly the `.route("…", …)` calls of the routers' source files
//!   (a route added without documenting it fails here);
//! * an external validator (`openapi-spec-validator`, Python) accepts it as OpenAPI 3.1;
//! * real responses of a running server validate against its response schemas with the external
//!   `jsonschema` package (tests/openapi/check_responses.py), errors included (401 and 429 with
//!   their documented headers), and so do the stream's messages against
//!   `components/schemas/ServerMessage`;
//! * every operation's `x-permission` is the permission the running server's policy
//!   (`GET /api/admin/policy`, i.e. `auth::POLICY`) gives it, `x-roles` its roles, and the
//!   operations the document marks as needing a key are exactly those that answer 401 without one.

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
            if !path.starts_with('/') {
                // prose (a doc comment quoting `.route("…", …)`), not a route
                rest = after;
                continue;
            }
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
    // At most 3 open stream subscriptions per client: the 4th below is refused with 429.
    let s = serve_with(&model, &["--db", db.url.as_str(), "--simulate", "off", "--max-streams", "3"]);
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
    // A sample with the response's headers (checked against the documented ones).
    macro_rules! add_h {
        ($path:expr, $method:expr, $r:expr) => {{
            let (st, h, body): (u16, Vec<(String, String)>, Value) = $r;
            assert!(!body.is_null(), "{} {}: no JSON body (status {st})", $method, $path);
            let headers: serde_json::Map<String, Value> = h.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            samples.push(json!({"path": $path, "method": $method, "status": st, "body": body, "headers": headers}));
            st
        }};
    }
    // The document the server serves is the checked-in one.
    let (st, served) = get_json(&format!("{base}/api/openapi.json"));
    assert_eq!(st, 200);
    assert_eq!(served, doc());

    // The stream: hello and snapshot now, deltas below (validated as ServerMessage).
    let open = |query: &str| {
        let (mut ws, _) = tungstenite::connect(format!("ws://{}/api/stream?{query}", base.trim_start_matches("http://"))).expect("websocket");
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
            s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        }
        ws
    };
    let read = |ws: &mut tungstenite::WebSocket<_>| loop {
        if let tungstenite::Message::Text(t) = ws.read().expect("stream message") {
            break serde_json::from_str::<Value>(t.as_str()).unwrap();
        }
    };
    let mut ws = open("topics=events,units");
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
    let (st, streets) = get_json(&format!("{base}/api/streets"));
    assert_eq!((st, streets["count"].as_u64()), (200, Some(4)), "{streets}");
    add!("/api/streets", "get", (st, streets));
    add!("/api/streets", "get", get_json(&format!("{base}/api/streets?district=1")));
    add!("/api/streets", "get", get_json(&format!("{base}/api/streets?district=nowhere")));
    add!("/api/nearest", "get", get_json(&format!("{base}/api/nearest?lon=123.42&lat=41.80&layer=pois&k=2")));
    add!("/api/pick", "get", get_json(&format!("{base}/api/pick?lon=123.4205&lat=41.8005")));

    // ---- access control: keys, who am I, audit, policy, and the 401/403/429 bodies
    let tokens = format!("{base}/api/admin/tokens");
    let leader = post_json(&tokens, &json!({"name": "wall-screen", "role": "leader", "expires_days": 30}));
    assert_eq!(leader.0, 201, "{}", leader.1);
    let leader_key = leader.1["key"].as_str().unwrap().to_string();
    add!("/api/admin/tokens", "post", leader);
    let dup = post_json(&tokens, &json!({"name": "wall-screen", "role": "leader"}));
    assert_eq!(dup.0, 409, "{}", dup.1);
    add!("/api/admin/tokens", "post", dup);
    let bad_role = post_json(&tokens, &json!({"name": "x", "role": "mayor"}));
    assert_eq!(bad_role.0, 400, "{}", bad_role.1);
    add!("/api/admin/tokens", "post", bad_role);
    let old = post_json(&tokens, &json!({"name": "old-sensor-gw", "role": "operator"}));
    assert_eq!(old.0, 201, "{}", old.1);
    let revoked = post_raw(&format!("{tokens}/{}/revoke", old.1["id"]), vec![]);
    assert_eq!((revoked.0, revoked.1["state"].as_str()), (200, Some("revoked")), "{}", revoked.1);
    add!("/api/admin/tokens/{id}/revoke", "post", revoked);
    add!("/api/admin/tokens/{id}/revoke", "post", post_raw(&format!("{tokens}/424242/revoke"), vec![]));
    add!("/api/admin/tokens/{id}/revoke", "post", post_raw(&format!("{tokens}/abc/revoke"), vec![]));
    let list = get_json(&tokens);
    assert_eq!(list.1["tokens"].as_array().map(|t| t.len()), Some(3), "bootstrap, wall-screen, old-sensor-gw: {}", list.1);
    add!("/api/admin/tokens", "get", list);
    let whoami = format!("{base}/api/auth/whoami");
    add!("/api/auth/whoami", "get", get_json(&whoami));
    // Login: a user made with the CLI on the same store; the session key; logout.
    let pw = dir.path().join("pw.txt");
    std::fs::write(&pw, "a long enough password\n").unwrap();
    let o = twin(&["user", "create", "--db", db.url.as_str(), "--role", "leader", "--name", "lea", "--password-file", &pw.to_string_lossy()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let login = format!("{base}/api/auth/login");
    let (st, _, session) = request("POST", &login, None, Some(br#"{"user":"lea","password":"a long enough password"}"#.to_vec()));
    assert_eq!(st, 200, "{session}");
    add!("/api/auth/login", "post", (st, session.clone()));
    let (st, _, bad) = request("POST", &login, None, Some(br#"{"user":"lea","password":"wrong"}"#.to_vec()));
    assert_eq!(st, 401, "{bad}");
    add!("/api/auth/login", "post", (st, bad));
    let (st, _, bad) = request("POST", &login, None, Some(br#"{"user":"lea"}"#.to_vec()));
    add!("/api/auth/login", "post", (st, bad));
    let logout = format!("{base}/api/auth/logout");
    let (st, _, out) = request("POST", &logout, session["key"].as_str(), Some(vec![]));
    assert_eq!(st, 200, "{out}");
    add!("/api/auth/logout", "post", (st, out));
    let (st, _, out) = request("POST", &logout, Some(TEST_ADMIN_TOKEN), Some(vec![]));
    assert_eq!(st, 400, "{out}");
    add!("/api/auth/logout", "post", (st, out));
    let (st, _, me) = request("GET", &whoami, Some(&leader_key), None);
    assert_eq!((st, me["role"].as_str(), me["authenticated"].as_bool()), (200, Some("leader"), Some(true)), "{me}");
    add!("/api/auth/whoami", "get", (st, me));
    let (st, _, anon) = request("GET", &whoami, None, None);
    assert_eq!((st, anon["role"].as_str()), (200, Some("anonymous")), "{anon}");
    add!("/api/auth/whoami", "get", (st, anon));
    let (st, policy) = get_json(&format!("{base}/api/admin/policy"));
    assert_eq!(st, 200);
    assert_eq!(doc()["x-anonymous-read"], policy["anonymous"], "x-anonymous-read is what --anonymous-read allows");
    add!("/api/admin/policy", "get", (st, policy));
    // 401: an unknown key (any route, a public one included), no key for a write; 403: a leader
    // writing, reading /metrics or the audit log; 429: a 4th open stream (3 are open below).
    let unknown = format!("ctk_{}", "0".repeat(48));
    assert_eq!(add_h!("/api/events", "get", request("GET", &format!("{base}/api/events"), Some(&unknown), None)), 401);
    assert_eq!(add_h!("/healthz", "get", request("GET", &format!("{base}/healthz"), Some("not-a-key"), None)), 401);
    let ev_body = serde_json::to_vec(&ev).unwrap();
    assert_eq!(add_h!("/api/events", "post", request("POST", &format!("{base}/api/events"), None, Some(ev_body.clone()))), 401);
    assert_eq!(add_h!("/api/events", "post", request("POST", &format!("{base}/api/events"), Some(&leader_key), Some(ev_body))), 403);
    assert_eq!(add_h!("/metrics", "get", request("GET", &format!("{base}/metrics"), Some(&leader_key), None)), 403);
    assert_eq!(add_h!("/api/admin/audit", "get", request("GET", &format!("{base}/api/admin/audit"), Some(&leader_key), None)), 403);
    let audit = get_json(&format!("{base}/api/admin/audit?limit=50"));
    let rows = audit.1["rows"].as_array().cloned().unwrap_or_default();
    assert!(rows.iter().any(|r| r["status"] == 403 && r["actor"] == "wall-screen"), "the 403s are audited: {}", audit.1);
    assert!(rows.iter().any(|r| r["method"] == "POST" && r["route"] == "/api/admin/tokens" && r["status"] == 201), "{}", audit.1);
    add!("/api/admin/audit", "get", audit);
    add!("/api/admin/audit", "get", get_json(&format!("{base}/api/admin/audit?limit=0")));
    add!("/api/admin/audit", "get", get_json(&format!("{base}/api/admin/audit?from=yesterday")));

    // ---- indicators: definitions, values, series, publish/retire, and the stream topic
    let ind = format!("{base}/api/indicators");
    let (st, all) = get_json(&ind);
    assert_eq!((st, all["count"].as_u64()), (200, Some(66)), "the bundled library");
    for kind in ["static", "metric", "derived"] {
        assert!(all["indicators"].as_array().unwrap().iter().any(|d| d.get(kind).is_some()), "a {kind} definition in the sample");
    }
    add!("/api/indicators", "get", (st, all));
    add!("/api/indicators", "get", get_json(&format!("{ind}?theme=%E7%94%9F%E6%80%81&state=published")));
    add!("/api/indicators", "get", get_json(&format!("{ind}?state=nope")));
    let (st, one) = get_json(&format!("{ind}/aqi_1h"));
    assert_eq!((st, one["id"].as_str()), (200, Some("aqi_1h")), "{one}");
    add!("/api/indicators/{id}", "get", (st, one));
    add!("/api/indicators/{id}", "get", get_json(&format!("{ind}/no_such")));
    let (st, vals) = get_json(&format!("{ind}/values"));
    assert!(st == 200 && vals["values"].as_array().unwrap().iter().any(|v| v["area"].is_object()), "city and district values: {vals}");
    add!("/api/indicators/values", "get", (st, vals));
    add!("/api/indicators/values", "get", get_json(&format!("{ind}/values?district=0")));
    add!("/api/indicators/values", "get", get_json(&format!("{ind}/values?district=nowhere")));
    // street grain (街道/乡镇): values of one street, the street area shape, a street's series
    let (st, sv) = get_json(&format!("{ind}/values?street=910001001"));
    assert!(st == 200 && sv["values"].as_array().unwrap().iter().any(|v| v["area"]["street"] == 0), "{sv}");
    add!("/api/indicators/values", "get", (st, sv));
    add!("/api/indicators/values", "get", get_json(&format!("{ind}/values?street=nowhere")));
    add!("/api/indicators/{id}/values", "get", get_json(&format!("{ind}/events_open/values")));
    add!("/api/indicators/{id}/series", "get", get_json(&format!("{ind}/events_open/series?street=3")));
    add!("/api/indicators/{id}/values", "get", get_json(&format!("{ind}/aqi_1h/values")));
    add!("/api/indicators/{id}/values", "get", get_json(&format!("{ind}/no_such/values")));
    let (st, series) = get_json(&format!("{ind}/aqi_1h/series?district=1&step=PT1H"));
    assert_eq!((st, series["points"].as_array().map(|p| p.len())), (200, Some(25)), "24 h at PT1H, both ends: {series}");
    add!("/api/indicators/{id}/series", "get", (st, series));
    add!("/api/indicators/{id}/series", "get", get_json(&format!("{ind}/aqi_1h/series?step=1")));
    add!("/api/indicators/{id}/series", "get", get_json(&format!("{ind}/no_such/series")));
    // The stream: a snapshot with every indicator value, and a resume (since) with one full push.
    let mut ws_ind = open("topics=indicators");
    let mut ind_msgs = vec![read(&mut ws_ind), read(&mut ws_ind)];
    assert!(ind_msgs[1]["indicators"].as_array().is_some_and(|v| !v.is_empty()), "snapshot with indicator values: {}", ind_msgs[1]);
    let mut ws_resume = open("topics=indicators&since=0");
    ind_msgs.extend([read(&mut ws_resume), read(&mut ws_resume)]);
    assert_eq!(ind_msgs[3]["type"], "indicator_values", "a resume gets every current value: {}", ind_msgs[3]);
    // A 4th subscription from this client: 429 with Retry-After.
    let (st, h, body) = request("GET", &format!("{base}/api/stream?topics=events"), None, None);
    assert_eq!((st, body["reason"].as_str()), (429, Some("too_many_streams")), "{body}");
    add_h!("/api/stream", "get", (st, h, body));
    // Publish (application/toml, then text/plain: any content type is read as TOML), retire.
    let def = |version: u32, window: &str| {
        format!(
            "[[indicator]]\nid = \"t_fire_1d\"\nname_zh = \"火情（日）\"\nname_en = \"Fires (day)\"\ntheme = \"指挥调度\"\nunit = \"{{event}}\"\n\
             owner = \"测试\"\nkind = \"metric\"\nwindow = \"{window}\"\nspatial = \"district\"\nversion = {version}\nstate = \"published\"\n\
             target = {{ value = 3, direction = \"at_most\" }}\n[indicator.metric]\ninput = \"events\"\naggregate = \"count\"\n\
             filter = {{ category = [\"fire\"] }}\n[[indicator.bands]]\nmax = 3\nlabel_zh = \"正常\"\nlabel_en = \"Normal\"\ncolor = \"#00E400\"\n\
             [[indicator.bands]]\nlabel_zh = \"偏多\"\nlabel_en = \"High\"\ncolor = \"#FF7E00\"\n"
        )
    };
    let publish = format!("{base}/api/admin/indicators");
    let (st, h, d) = request_typed("POST", &publish, Some(TEST_ADMIN_TOKEN), Some(("application/toml", def(1, "P1D").into_bytes())));
    assert_eq!((st, d["version"].as_u64(), d["state"].as_str()), (200, Some(1), Some("published")), "{d}");
    add_h!("/api/admin/indicators", "post", (st, h, d));
    // The subscriber sees the publication (a delta) and the new indicator's values (a push).
    let (mut published, mut pushed) = (false, false);
    let t0 = std::time::Instant::now();
    while !(published && pushed) {
        assert!(t0.elapsed() < std::time::Duration::from_secs(60), "no delta `published` ({published}) or push of t_fire_1d ({pushed}) within 60 s");
        let m = read(&mut ws_ind);
        published |= m["type"] == "delta" && m["topic"] == "indicators" && m["kind"] == "published";
        pushed |= m["type"] == "indicator_values" && m["values"].as_array().unwrap().iter().any(|v| v["id"] == "t_fire_1d");
        ind_msgs.push(m);
    }
    for m in ind_msgs {
        samples.push(json!({"schema": "ServerMessage", "body": m}));
    }
    let (st, h, e) = request_typed("POST", &publish, Some(TEST_ADMIN_TOKEN), Some(("text/plain", def(2, "PT1X").into_bytes())));
    assert_eq!((st, e["errors"][0]["file"].as_str(), e["errors"][0]["line"].as_u64()), (422, Some("(request body)"), Some(9)), "window is on line 9: {e}");
    add_h!("/api/admin/indicators", "post", (st, h, e));
    add!("/api/admin/indicators", "post", post_raw(&publish, vec![0xff, 0xfe]));
    let retire = format!("{base}/api/admin/indicators/t_fire_1d/retire");
    let (st, d) = post_raw(&retire, vec![]);
    assert_eq!((st, d["state"].as_str()), (200, Some("retired")), "{d}");
    add!("/api/admin/indicators/{id}/retire", "post", (st, d));
    let again = post_raw(&retire, vec![]);
    assert_eq!(again.0, 409, "{}", again.1);
    add!("/api/admin/indicators/{id}/retire", "post", again);
    add!("/api/admin/indicators/{id}/retire", "post", post_raw(&format!("{base}/api/admin/indicators/no_such/retire"), vec![]));

    let statuses: BTreeSet<u64> = samples.iter().filter_map(|s| s["status"].as_u64()).collect();
    for want in [200, 201, 400, 401, 403, 404, 409, 422, 429] {
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

/// The document's access control is the server's: every operation's `x-permission` is what the
/// running server's policy (`GET /api/admin/policy`, i.e. `auth::POLICY`) gives its route and
/// method (HEAD = GET; OPTIONS passes the guard unchecked: `public`), `x-roles` are its roles,
/// public operations (and only they) say `security: []`, every operation references the shared
/// 401/403/429 responses it can give, and — on a server without `--anonymous-read` — exactly
/// the operations not marked public answer 401 to a request without a key.
#[test]
fn every_operation_names_the_permission_the_server_enforces() {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(LiveBackend::Sqlite);
    let s = serve_auth(&model, &["--db", db.url.as_str(), "--simulate", "off"], false);
    let base = &s.base;
    let (st, p) = get_json(&format!("{base}/api/admin/policy"));
    assert_eq!(st, 200, "{p}");
    let mut policy = std::collections::BTreeMap::new();
    for r in p["routes"].as_array().unwrap() {
        let key = (r["method"].as_str().unwrap().to_lowercase(), r["route"].as_str().unwrap().replace("{*", "{"));
        assert!(policy.insert(key.clone(), r["permission"].as_str().unwrap().to_string()).is_none(), "{key:?} twice in the policy");
    }
    assert!(policy.len() >= 45, "{} policy entries", policy.len());
    let d = doc();
    assert_eq!(d["x-roles"], p["roles"], "x-roles are the server's roles");
    assert_eq!(p["anonymous"], json!([]), "no --anonymous-read");
    assert_eq!(d["security"], json!([{"bearerAuth": []}]));
    let perms: BTreeSet<&str> = d["components"]["schemas"]["Permission"]["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let admin: BTreeSet<&str> = p["roles"]["admin"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(perms, admin, "Permission lists every permission (the admin role has them all)");
    let mut documented = BTreeSet::new();
    let (mut public, mut keyed) = (0, 0);
    for (path, item) in d["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "delete", "patch", "head", "options"].contains(&m.as_str()) {
                continue;
            }
            let want = match m.as_str() {
                "options" => "public".to_string(),
                "head" => policy[&("get".to_string(), path.clone())].clone(),
                _ => policy.get(&(m.clone(), path.clone())).unwrap_or_else(|| panic!("{m} {path} is documented but not in the policy")).clone(),
            };
            documented.insert((m.clone(), path.clone()));
            let what = format!("{} {path}", m.to_uppercase());
            assert_eq!(op["x-permission"], json!(want), "{what}: x-permission");
            let desc = op["description"].as_str().unwrap_or("");
            let is_public = want == "public";
            if is_public {
                assert_eq!(op["security"], json!([]), "{what}: public, so `security: []`");
                assert!(desc.contains("Public: no key needed"), "{what}: description says public: {desc}");
            } else {
                assert!(op.get("security").is_none_or(|s| s.as_array().is_some_and(|a| !a.is_empty() && !a.contains(&json!({})))), "{what}: needs a key");
                assert!(desc.contains(&format!("Needs permission `{want}`")), "{what}: description names `{want}`: {desc}");
            }
            let r = &op["responses"];
            let refd = |code: &str| r[code]["$ref"] == json!(format!("#/components/responses/E{code}"));
            if m != "options" {
                assert!(refd("401") && refd("429"), "{what}: 401 and 429 responses");
                assert_eq!(refd("403"), !is_public, "{what}: 403 iff a permission is needed");
            }
            // Without a key: 401 exactly where the document asks for one.
            if m == "options" {
                continue;
            }
            let url = format!("{base}{}", path.replace("{path}", "x/y").replace("{id}", "1").replace(['{', '}'], ""));
            let method = if m == "head" { "GET".to_string() } else { m.to_uppercase() };
            let method = method.as_str();
            let (st, h, body) = request(method, &url, None, (method == "POST").then(Vec::new));
            if is_public {
                public += 1;
                assert_ne!(st, 401, "{what}: public, yet 401 without a key: {body}");
            } else {
                keyed += 1;
                assert_eq!(st, 401, "{what}: needs `{want}`, yet {st} without a key: {body}");
                assert_eq!(body["permission"], json!(want), "{what}: the 401 names the permission");
                assert!(h.iter().any(|(k, v)| k.eq_ignore_ascii_case("www-authenticate") && v.starts_with("Bearer")), "{what}: WWW-Authenticate");
            }
        }
    }
    let in_policy: BTreeSet<(String, String)> = policy.keys().cloned().collect();
    let undocumented: Vec<_> = in_policy.difference(&documented).collect();
    assert!(undocumented.is_empty(), "in the policy but not in the document: {undocumented:?}");
    assert_eq!(public, 4, "/healthz, /api/openapi.json, login and logout");
    assert!(keyed >= 45, "{keyed}");
}
