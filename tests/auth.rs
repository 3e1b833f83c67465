//! Access control end to end through the real binary (issue 8): the role × route matrix over
//! every route in the server's sources, stream topics per role, expired and revoked keys, the
//! audit log (rows for writes and refusals; UPDATE/DELETE refused by the database itself, checked
//! with `sqlite3` and `psql`), rate and body limits, path traversal on the file routes, and MQTT
//! ingest through a real mosquitto with a password file and ACLs.
//!
//! Needs PostgreSQL 15, `sqlite3`, `sha256sum`, `mosquitto` + `mosquitto-clients`
//! (scripts/install-deps.sh).

#[macro_use]
mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROLES: [&str; 5] = ["leader", "dispatcher", "planner", "operator", "admin"];

/// The roles table of the README, written out independently of the server's code.
fn role_perms(role: &str) -> &'static [&'static str] {
    match role {
        "leader" => &["whoami", "model:read", "live:read", "sensors:read", "indicators:read", "stream"],
        "dispatcher" => &["whoami", "model:read", "live:read", "sensors:read", "indicators:read", "stream", "dispatch"],
        "planner" => &["whoami", "model:read", "indicators:read", "annotations:write", "stream"],
        "operator" => &["whoami", "sensors:read", "sensors:ingest", "metrics:read", "stream"],
        "admin" => &[
            "public", "whoami", "model:read", "live:read", "dispatch", "sensors:read", "sensors:ingest", "indicators:read", "indicators:publish", "annotations:write", "metrics:read", "stream", "admin",
        ],
        _ => unreachable!(),
    }
}
const ANONYMOUS_READ: &[&str] = &["whoami", "model:read", "live:read", "sensors:read", "indicators:read", "stream"];

/// Permissions some routes must have whatever else changes (a misfiled write fails here).
const PINNED: &[(&str, &str, &str)] = &[
    ("GET", "/healthz", "public"),
    ("GET", "/api/model", "model:read"),
    ("GET", "/tiles/{name}/{z}/{x}/{y}", "model:read"),
    ("GET", "/3dtiles/{name}/{*path}", "model:read"),
    ("GET", "/api/events", "live:read"),
    ("POST", "/api/events", "dispatch"),
    ("POST", "/api/events/{id}/transitions", "dispatch"),
    ("POST", "/api/events/{id}/assign", "dispatch"),
    ("POST", "/api/units/{id}/status", "dispatch"),
    ("POST", "/api/sensors/observations", "sensors:ingest"),
    ("POST", "/api/sta/v1.1/{*path}", "sensors:ingest"),
    ("GET", "/api/sta/v1.1/{*path}", "sensors:read"),
    ("GET", "/metrics", "metrics:read"),
    ("GET", "/api/stream", "stream"),
    ("POST", "/api/admin/tokens", "admin"),
    ("GET", "/api/admin/audit", "admin"),
];

/// `(method, pattern)` of every `.route("PATTERN", get(…).post(…))` in twin-server/src — the
/// router as written, not a hand list.
fn source_routes() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = vec![];
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let mut rest = text.as_str();
            while let Some(i) = rest.find(".route(\"") {
                rest = &rest[i + 8..];
                let end = rest.find('"').unwrap();
                let pattern = rest[..end].to_string();
                let mut depth = 1;
                let mut j = rest.len();
                for (k, c) in rest[end..].char_indices() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                j = end + k;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let mr = &rest[end..j];
                if !pattern.starts_with('/') {
                    continue;
                }
                for (word, m) in [("get(", "GET"), ("post(", "POST"), ("put(", "PUT"), ("delete(", "DELETE"), ("patch(", "PATCH"), ("any(", "GET")] {
                    if mr.contains(word) && !out.contains(&(m.to_string(), pattern.clone())) {
                        out.push((m.to_string(), pattern.clone()));
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// A concrete path for a pattern: ids that do not exist (so allowed requests get 4xx other than
/// 401/403, and nothing is changed), names that parse.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| {
            if seg.starts_with("{*") {
                "Things".to_string()
            } else if seg.starts_with('{') {
                "999999".to_string()
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn create_token(base: &str, name: &str, role: &str, extra: Value) -> (i64, String) {
    let mut body = json!({"name": name, "role": role});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (s, v) = post_json(&format!("{base}/api/admin/tokens"), &body);
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["role"], role);
    (v["id"].as_i64().unwrap(), v["key"].as_str().unwrap().to_string())
}

fn hdr<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str())
}

#[test]
fn every_route_times_every_role_gets_exactly_its_policy() {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let routes = source_routes();
    assert!(routes.len() >= 40, "{routes:?}");
    for anonymous_read in [false, true] {
        let db = LiveDb::new(LiveBackend::Sqlite);
        let s = serve_auth(&model, &["--db", &db.url, "--simulate", "off"], anonymous_read);
        let base = &s.base;
        // The server's policy covers every route of the sources (deny-by-default otherwise).
        let (st, pol) = get_json(&format!("{base}/api/admin/policy"));
        assert_eq!(st, 200, "{pol}");
        let policy: BTreeMap<(String, String), String> = pol["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| ((r["method"].as_str().unwrap().to_string(), r["route"].as_str().unwrap().to_string()), r["permission"].as_str().unwrap().to_string()))
            .collect();
        let missing: Vec<_> = routes.iter().filter(|r| !policy.contains_key(r)).collect();
        assert!(missing.is_empty(), "routes in the sources without an access policy (add them to auth::POLICY): {missing:?}");
        for (m, r, p) in PINNED {
            assert_eq!(policy.get(&(m.to_string(), r.to_string())).map(String::as_str), Some(*p), "{m} {r}");
        }
        for role in ROLES {
            let served: Vec<&str> = pol["roles"][role].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
            assert_eq!(served, role_perms(role), "permissions of role {role}");
        }
        let keys: Vec<(String, Option<String>)> = ROLES
            .iter()
            .map(|r| (r.to_string(), Some(create_token(base, &format!("matrix-{r}"), r, json!({})).1)))
            .chain([("anonymous".to_string(), None)])
            .collect();
        let (mut expected, mut actual) = (BTreeMap::new(), BTreeMap::new());
        for (method, pattern) in &routes {
            let perm = policy[&(method.clone(), pattern.clone())].as_str();
            let url = format!("{base}{}", concrete(pattern));
            for (who, key) in &keys {
                let allowed = perm == "public"
                    || match key {
                        Some(_) => role_perms(who).contains(&perm),
                        None => anonymous_read && ANONYMOUS_READ.contains(&perm),
                    };
                let want = if allowed {
                    "allowed"
                } else if key.is_none() {
                    "401"
                } else {
                    "403"
                };
                let body = (method != "GET").then(|| b"{}".to_vec());
                let (status, headers, v) = request(method, &url, key.as_deref(), body);
                let got = match status {
                    401 => {
                        assert!(hdr(&headers, "www-authenticate").is_some_and(|h| h.starts_with("Bearer")), "401 without WWW-Authenticate: Bearer: {method} {url}");
                        assert_eq!(v["permission"], perm, "401 names the permission: {method} {url}: {v}");
                        "401"
                    }
                    403 => {
                        assert_eq!(v["permission"], perm, "403 names the permission: {method} {url}: {v}");
                        "403"
                    }
                    _ => "allowed",
                };
                let k = format!("{method} {pattern} as {who}");
                expected.insert(k.clone(), want);
                actual.insert(k, got);
            }
        }
        let diff: Vec<String> = expected.iter().filter(|(k, v)| actual[*k] != **v).map(|(k, v)| format!("{k}: expected {v}, got {}", actual[k])).collect();
        assert!(diff.is_empty(), "anonymous_read={anonymous_read}: {} of {} answers differ from the policy:\n{}", diff.len(), expected.len(), diff.join("\n"));
        // Unauthenticated writes are 401 in both modes.
        for ((m, r), _) in policy.iter().filter(|((m, _), p)| m != "GET" && p.as_str() != "public") {
            assert_eq!(actual.get(&format!("{m} {r} as anonymous")).copied().unwrap_or("401"), "401", "{m} {r}");
        }
    }
}

// ---------------------------------------------------------------- stream

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

fn ws_open(base: &str, query: &str, key: Option<&str>) -> Result<Ws, u16> {
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/api/stream?{query}", base.trim_start_matches("http://")).into_client_request().unwrap();
    if let Some(k) = key {
        req.headers_mut().insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    match tungstenite::connect(req) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("websocket: {e}"),
    }
}

fn ws_next(ws: &mut Ws) -> Value {
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    loop {
        if let tungstenite::Message::Text(t) = ws.read().expect("stream message") {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] != "ping" {
                return v;
            }
        }
    }
}

#[test]
fn stream_topics_follow_the_role_and_subscriptions_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(LiveBackend::Sqlite);
    let s = serve_auth(&model, &["--db", &db.url, "--max-streams", "1"], false);
    let base = &s.base;
    let (_, leader) = create_token(base, "st-leader", "leader", json!({}));
    let (_, planner) = create_token(base, "st-planner", "planner", json!({}));
    assert_eq!(ws_open(base, "topics=events", None).err(), Some(401), "no key");
    assert_eq!(ws_open(base, "topics=events", Some(&planner)).err(), Some(403), "planner may not read events");
    let mut w = ws_open(base, "topics=events,units", Some(&leader)).expect("leader subscribes to events");
    let hello = ws_next(&mut w);
    assert_eq!((hello["type"].as_str(), hello["topics"].clone()), (Some("hello"), json!(["events", "units"])));
    // The planner's default subscription is narrowed to what it may read.
    let mut p = ws_open(base, "", Some(&planner)).expect("planner default topics");
    assert_eq!(ws_next(&mut p)["topics"], json!(["indicators"]));
    // A second subscription of the same key: 429 (--max-streams 1); the browser form of the key
    // (?access_token=) counts the same.
    assert_eq!(ws_open(base, &format!("topics=events&access_token={leader}"), None).err(), Some(429));
    let _ = w.close(None);
    let _ = w.flush();
    let _ = w.read();
    drop(w);
    let t0 = Instant::now();
    let mut again = loop {
        match ws_open(base, &format!("topics=events&access_token={leader}"), None) {
            Ok(ws) => break ws,
            Err(429) if t0.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("after closing the first subscription: {e}"),
        }
    };
    assert_eq!(ws_next(&mut again)["type"], "hello");
    assert_eq!(ws_next(&mut again)["type"], "snapshot");
    // A write reaches the leader's stream.
    let (s201, e) = post_json(&format!("{base}/api/events"), &json!({"category": "fire", "source": "hotline_12345", "title": "t", "location": {"lon": 123.41, "lat": 41.80}, "actor": "t"}));
    assert_eq!(s201, 201, "{e}");
    let d = ws_next(&mut again);
    assert_eq!((d["type"].as_str(), d["topic"].as_str()), (Some("delta"), Some("events")), "{d}");
    let m = get_text(&format!("{base}/metrics"));
    assert!(metric(&m, "citytwin_rate_limited_total{scope=\"streams\"}") >= 1.0, "{m}");
}

// ---------------------------------------------------------------- keys and audit

fn sha256_hex(bytes: &[u8]) -> String {
    let mut c = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum");
    c.stdin.take().unwrap().write_all(bytes).unwrap();
    let o = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_string()
}

fn audit(base: &str, query: &str) -> Vec<Value> {
    let (s, v) = get_json(&format!("{base}/api/admin/audit?{query}"));
    assert_eq!(s, 200, "{v}");
    v["rows"].as_array().unwrap().clone()
}

fn keys_expiry_revocation_and_audit(b: LiveBackend) {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(b);
    // PostgreSQL run: the loopback peer is a trusted proxy, so X-Forwarded-For is believed.
    let trusted = b == LiveBackend::Postgres;
    let mut args = vec!["--db", db.url.as_str()];
    if trusted {
        args.extend(["--trusted-proxy", "127.0.0.1"]);
    }
    let s = serve_auth(&model, &args, false);
    let base = &s.base;
    // A dispatcher key from the CLI (against the store the server uses), printed once.
    let o = twin(&["token", "create", "--db", &db.url, "--role", "dispatcher", "--name", "disp-1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let disp = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(disp.starts_with("ctk_") && disp.len() == 52, "{disp}");
    let (st, _, who) = request("GET", &format!("{base}/api/auth/whoami"), Some(&disp), None);
    assert_eq!((st, who["name"].as_str(), who["role"].as_str()), (200, Some("disp-1"), Some("dispatcher")), "{who}");
    // The key itself is stored nowhere: only its SHA-256.
    let listing = twin(&["token", "list", "--db", &db.url]);
    assert!(listing.status.success() && !String::from_utf8_lossy(&listing.stdout).contains(&disp));

    // A write by the dispatcher, from a (claimed) address behind the proxy.
    let body = serde_json::to_vec(&json!({"category": "fire", "source": "hotline_12345", "title": "烟雾", "location": {"lon": 123.41, "lat": 41.80}, "actor": "t"})).unwrap();
    let url = format!("{base}/api/events");
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent
        .post(&url)
        .header("authorization", format!("Bearer {disp}"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("content-type", "application/json")
        .send(&body[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let ev: Value = r.body_mut().read_json().unwrap();
    let ev_id = ev["id"].as_i64().unwrap();
    // Refusals: no key (401), a leader (403), a malformed key (401).
    let (_, leader) = create_token(base, "lead-1", "leader", json!({}));
    let (s401, h401, v401) = request("POST", &url, None, Some(body.clone()));
    assert_eq!((s401, v401["permission"].as_str()), (401, Some("dispatch")), "{v401}");
    assert!(hdr(&h401, "www-authenticate").unwrap().starts_with("Bearer"));
    let (s403, _, v403) = request("POST", &url, Some(&leader), Some(body.clone()));
    assert_eq!((s403, v403["permission"].as_str()), (403, Some("dispatch")), "{v403}");
    assert!(v403["error"].as_str().unwrap().contains("leader"), "{v403}");
    assert_eq!(request("GET", &format!("{base}/api/events"), Some("ctk_nonsense"), None).0, 401);

    // Expiry: a key valid for one second.
    let (_, short) = create_token(base, "short-1", "leader", json!({"expires_in_s": 1}));
    assert_eq!(request("GET", &format!("{base}/api/events"), Some(&short), None).0, 200);
    std::thread::sleep(Duration::from_millis(1600));
    let (st, _, v) = request("GET", &format!("{base}/api/events"), Some(&short), None);
    assert_eq!(st, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");
    // Revocation (admin API) takes effect at once; the CLI list shows it.
    let disp_id = who["token_id"].as_i64().unwrap();
    let (st, v) = post_json(&format!("{base}/api/admin/tokens/{disp_id}/revoke"), &json!({}));
    assert_eq!((st, v["state"].as_str()), (200, Some("revoked")), "{v}");
    let (st, _, v) = request("POST", &url, Some(&disp), Some(body.clone()));
    assert_eq!(st, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("revoked"), "{v}");
    let listing = String::from_utf8_lossy(&twin(&["token", "list", "--db", &db.url]).stdout).into_owned();
    let line = listing.lines().find(|l| l.contains("disp-1")).unwrap();
    assert!(line.contains("revoked") && line.contains("dispatcher"), "{listing}");
    // Revoked through the CLI: refused within the 5 s cache of other servers.
    let o = twin(&["token", "revoke", "--db", &db.url, "--name", "lead-1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t0 = Instant::now();
    while request("GET", &format!("{base}/api/events"), Some(&leader), None).0 != 401 {
        assert!(t0.elapsed() < Duration::from_secs(10), "a CLI revocation must reach the server within its 5 s cache");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The audit trail: the write with actor, IP, target, status and the body's SHA-256.
    let rows = audit(base, "actor=disp-1");
    let w = rows.iter().find(|r| r["method"] == "POST" && r["path"] == "/api/events" && r["status"] == 201).unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(w["role"], "dispatcher");
    assert_eq!(w["target"], ev_id.to_string());
    assert_eq!(w["body_sha256"].as_str().unwrap(), sha256_hex(&body));
    assert_eq!(w["body_bytes"], body.len());
    assert_eq!(w["ip"], if trusted { "203.0.113.7" } else { "127.0.0.1" }, "X-Forwarded-For only from a trusted proxy");
    // The refused write of the revoked key is there too (401, actor named by the key prefix).
    let all = audit(base, "limit=1000");
    assert!(all.iter().any(|r| r["status"] == 401 && r["path"] == "/api/events" && r["actor"] == "anonymous" && r["ip"] == "127.0.0.1"), "{all:?}");
    assert!(all.iter().any(|r| r["status"] == 403 && r["actor"] == "lead-1" && r["role"] == "leader"), "{all:?}");
    assert!(all.iter().any(|r| r["status"] == 401 && r["detail"] == "API key revoked"), "{all:?}");
    // Time filters: nothing before the test started, everything up to now.
    assert!(audit(base, "to=2000-01-01T00:00:00Z").is_empty());
    assert_eq!(audit(base, "limit=2").len(), 2);

    // The database refuses to rewrite history.
    let (upd, del) = ("UPDATE audit_log SET status = 200", "DELETE FROM audit_log");
    match &db.pg {
        None => {
            let file = db.url.trim_start_matches("sqlite:");
            for sql in [upd, del] {
                let o = Command::new("sqlite3").args([file, sql]).output().expect("sqlite3 (apt-get install sqlite3)");
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(!o.status.success() && err.contains("append-only"), "{sql}: {err}");
            }
            let n = Command::new("sqlite3").args([file, "SELECT count(*) FROM audit_log"]).output().unwrap();
            assert_eq!(String::from_utf8_lossy(&n.stdout).trim().parse::<usize>().unwrap(), audit(base, "limit=10000").len());
        }
        Some(pg) => {
            let (sock, port) = (pg.sock.to_string_lossy().into_owned(), pg.port.to_string());
            for sql in [upd, del, "TRUNCATE audit_log"] {
                let o = pg.cmd("psql").args(["-h", &sock, "-p", &port, "-U", "postgres", "-d", "citytwin", "-v", "ON_ERROR_STOP=1", "-c", sql]).output().unwrap();
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(!o.status.success() && err.contains("append-only"), "{sql}: {err}");
            }
        }
    }
}
both!(keys_expiry_revocation_and_audit);

// ---------------------------------------------------------------- limits

/// A raw POST announcing `len` bytes and sending `send` of them (with an optional key).
fn post_declared(base: &str, path: &str, key: Option<&str>, len: usize, send: usize) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n").unwrap();
    let _ = s.write_all(&vec![b' '; send]);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    (text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), text)
}

#[test]
fn rate_limits_answer_429_then_recover_and_bodies_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(LiveBackend::Sqlite);
    let s = serve_auth(&model, &["--db", &db.url, "--rate-token", "1:3", "--rate-ip", "20:40"], false);
    let base = &s.base;
    let (_, key) = create_token(base, "rl-leader", "leader", json!({}));
    let url = format!("{base}/api/events");
    // Burst 3, then empty: 429 with Retry-After.
    let statuses: Vec<u16> = (0..4).map(|_| request("GET", &url, Some(&key), None).0).collect();
    assert_eq!(statuses, vec![200, 200, 200, 429]);
    let (st, h, v) = request("GET", &url, Some(&key), None);
    assert_eq!(st, 429, "{v}");
    let wait: u64 = hdr(&h, "retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    std::thread::sleep(Duration::from_secs(wait) + Duration::from_millis(100));
    assert_eq!(request("GET", &url, Some(&key), None).0, 200, "recovered after Retry-After");
    // Per address: 40 requests of burst, whatever the key (here none at all).
    let mut n = 0;
    let first_429 = loop {
        n += 1;
        let st = request("GET", &format!("{base}/api/model"), None, None).0;
        if st == 429 {
            break n;
        }
        assert_eq!(st, 401);
        assert!(n < 200, "no 429 from the per-address limit");
    };
    assert!((30..=50).contains(&first_429), "the per-address burst is 40 (less what the test used): 429 at {first_429}");
    std::thread::sleep(Duration::from_millis(2500));
    let m = get_text(&format!("{base}/metrics"));
    assert!(metric(&m, "citytwin_rate_limited_total{scope=\"token\"}") >= 2.0, "{m}");
    assert!(metric(&m, "citytwin_rate_limited_total{scope=\"ip\"}") >= 1.0, "{m}");

    // Bodies: past --max-body (1 MiB) → 413 for a writer; without a key → 401 before any of
    // the body is read.
    std::thread::sleep(Duration::from_millis(2500));
    let (st, text) = post_declared(base, "/api/events", Some(TEST_ADMIN_TOKEN), 2 << 20, (1 << 20) + (1 << 17));
    assert_eq!(st, 413, "{}", &text[..text.len().min(400)]);
    let (st, _) = post_declared(base, "/api/events", None, 2 << 20, 1024);
    assert_eq!(st, 401);
    // The token API has its own 64 KiB cap.
    let big = json!({"name": "x".repeat(70 * 1024), "role": "leader"});
    let (st, _) = post_json(&format!("{base}/api/admin/tokens"), &big);
    assert_eq!(st, 413, "an over-long token request is refused");
}

// ---------------------------------------------------------------- path traversal

fn raw_get(base: &str, path: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TEST_ADMIN_TOKEN}\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    (text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), text)
}

#[test]
fn file_routes_cannot_escape_their_directories() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("city.geojson");
    std::fs::write(&src, LIVE_CITY).unwrap();
    let out = dir.path().join("city");
    let o = twin(&["build", "--name", "city", "--source", src.to_str().unwrap(), "--out", out.to_str().unwrap(), "--max-zoom", "12"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A symlink planted inside the 3D Tiles directory, pointing at a file outside it.
    let canonical = std::fs::canonicalize(&out).unwrap();
    let secret = dir.path().join("secret.json");
    std::fs::write(&secret, "{\"secret\": \"TOP-SECRET-CONTENT\"}").unwrap();
    std::os::unix::fs::symlink(&secret, canonical.join("3dtiles/evil.json")).unwrap();
    std::os::unix::fs::symlink("/etc", canonical.join("3dtiles/etc")).unwrap();
    let db = LiveDb::new(LiveBackend::Sqlite);
    let s = serve_auth(&out, &["--db", &db.url], false);
    let base = &s.base;
    assert_eq!(raw_get(base, "/3dtiles/city/tileset.json").0, 200, "the control: a real file is served");
    let attempts = [
        "/3dtiles/city/../manifest.json",
        "/3dtiles/city/..%2fmanifest.json",
        "/3dtiles/city/%2e%2e/manifest.json",
        "/3dtiles/city/%2e%2e%2fmanifest.json",
        "/3dtiles/city/content/..%2f..%2fmanifest.json",
        "/3dtiles/city/%2fetc%2fpasswd",
        "/3dtiles/city//etc/passwd",
        "/3dtiles/city/evil.json",
        "/3dtiles/city/etc/passwd",
        "/3dtiles/..%2f..%2fetc/passwd",
        "/tiles/..%2fmanifest.json",
        "/tiles/%2e%2e%2fmanifest.json",
        "/tiles/..%2f..%2fetc%2fpasswd/0/0/0.mvt",
        "/styles/..%2f..%2fmanifest.json",
        "/styles/%2e%2e%2fcommand.json",
        "/styles/%2fetc%2fpasswd",
        "/fonts/..%2f..%2fetc/0-255.pbf",
        "/fonts/Noto%20Sans/..%2f..%2f..%2fetc%2fpasswd",
        "/fonts/%2e%2e/%2e%2e",
    ];
    for a in attempts {
        let (st, text) = raw_get(base, a);
        assert!(st == 400 || st == 404, "{a}: {st}\n{}", &text[..text.len().min(300)]);
        for leak in ["root:", "TOP-SECRET", "build_id", "\"layers\""] {
            assert!(!text.contains(leak), "{a}: the answer leaks '{leak}'");
        }
    }
}

// ---------------------------------------------------------------- MQTT

struct Mosquitto {
    child: Child,
    port: u16,
}
impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto_pub(port: u16, user: Option<(&str, &str)>, topic: &str, payload: &str) -> (bool, String) {
    let mut c = Command::new("mosquitto_pub");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-m", payload]);
    if let Some((u, p)) = user {
        c.args(["-u", u, "-P", p]);
    }
    let o = c.output().expect("mosquitto_pub (apt-get install mosquitto-clients)");
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

#[test]
fn mqtt_ingest_is_authenticated_by_the_broker() {
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("passwd");
    for (i, (u, p)) in [("citytwin-server", "srv-secret"), ("sensor-a", "a-secret")].iter().enumerate() {
        let mut c = Command::new("mosquitto_passwd");
        if i == 0 {
            c.arg("-c");
        }
        let o = c.arg("-b").arg(&pw).args([u, p]).output().expect("mosquitto_passwd");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // The server reads the observation topics; device sensor-a writes datastream 1 only.
    let acl = tmp.path().join("acl");
    std::fs::write(
        &acl,
        "user citytwin-server\ntopic read citytwin/datastreams/+/observations\ntopic read $share/citytwin/citytwin/datastreams/+/observations\n\n\
         user sensor-a\ntopic write citytwin/datastreams/1/observations\n",
    )
    .unwrap();
    let port = free_port();
    let conf = tmp.path().join("mosquitto.conf");
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\npersistence false\n", pw.display(), acl.display())).unwrap();
    let child = Command::new("mosquitto").arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("mosquitto (apt-get install mosquitto)");
    let broker = Mosquitto { child, port };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let creds = tmp.path().join("mqtt.cred");
    std::fs::write(&creds, "citytwin-server:srv-secret\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(LiveBackend::Sqlite);
    let mqtt = format!("mqtt://127.0.0.1:{}", broker.port);
    let s = serve_auth(&model, &["--db", &db.url, "--simulate", "off", "--mqtt", &mqtt, "--mqtt-credentials", creds.to_str().unwrap()], false);
    let base = &s.base;
    // Two datastreams: 1 (sensor-a may write) and 2 (it may not).
    let mut ids = vec![];
    for k in 0..2 {
        let (st, thing) = post_json(
            &format!("{base}/api/sta/v1.1/Things"),
            &json!({"name": format!("gauge {k}"), "description": "test", "Locations": [{"name": "here", "description": "", "encodingType": "application/geo+json", "location": {"type": "Point", "coordinates": [123.41, 41.80]}}]}),
        );
        assert_eq!(st, 201, "{thing}");
        let (st, ds) = post_json(
            &format!("{base}/api/sta/v1.1/Datastreams"),
            &json!({"name": format!("water {k}"), "description": "test", "properties": {"sensorType": "water_level"},
                    "Thing": {"@iot.id": thing["@iot.id"]},
                    "Sensor": {"name": "s", "description": "", "encodingType": "text/html", "metadata": "https://example.org/s"},
                    "ObservedProperty": {"name": "water_level", "definition": "https://example.org/water_level", "description": ""}}),
        );
        assert_eq!(st, 201, "{ds}");
        ids.push(ds["@iot.id"].as_i64().unwrap());
    }
    assert_eq!(ids, vec![1, 2]);
    let t0 = Instant::now();
    while metric(&get_text(&format!("{base}/metrics")), "citytwin_mqtt_connected") < 1.0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "the server did not connect with its credentials");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500)); // SUBACK
    let count = |ds: i64| get_json(&format!("{base}/api/sta/v1.1/Datastreams({ds})/Observations?$count=true&$top=0")).1["@iot.count"].as_i64().unwrap();
    let obs = |v: f64| json!({"result": v, "phenomenonTime": "2026-11-22T00:00:00Z"}).to_string();
    // Refused by the broker: no credentials, a wrong password.
    let (ok, out) = mosquitto_pub(port, None, "citytwin/datastreams/1/observations", &obs(1.0));
    assert!(!ok && out.to_lowercase().contains("not authori"), "anonymous publish: {out}");
    let (ok, out) = mosquitto_pub(port, Some(("sensor-a", "wrong")), "citytwin/datastreams/1/observations", &obs(1.5));
    assert!(!ok, "wrong password: {out}");
    // Outside its ACL: the broker acknowledges and drops it (MQTT 3.1.1 has no publish error).
    let (ok, out) = mosquitto_pub(port, Some(("sensor-a", "a-secret")), "citytwin/datastreams/2/observations", &obs(2.0));
    assert!(ok, "{out}");
    // Inside its ACL: ingested.
    let (ok, out) = mosquitto_pub(port, Some(("sensor-a", "a-secret")), "citytwin/datastreams/1/observations", &obs(3.0));
    assert!(ok, "{out}");
    let t0 = Instant::now();
    while count(1) < 1 {
        assert!(t0.elapsed() < Duration::from_secs(30), "the authorised observation was not ingested");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!((count(1), count(2)), (1, 0), "only the authorised publish is ingested");
    let (_, v) = get_json(&format!("{base}/api/sta/v1.1/Datastreams(1)/Observations"));
    assert_eq!(v["value"][0]["result"], 3.0, "{v}");
}
