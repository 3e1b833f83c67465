//! `serve --request-timeout` and the query result caps (issue 8, "Limits"), on both stores.
//!
//! The timeout is provoked deterministically: another connection holds a lock the server's write
//! needs (SQLite: `BEGIN EXCLUSIVE`; PostgreSQL: `LOCK TABLE events IN ACCESS EXCLUSIVE MODE`), so
//! a POST blocks until the lock is released; nothing here waits for time to pass.

#[macro_use]
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TIMEOUT_S: u64 = 1;

fn new_event(title: &str) -> Value {
    json!({"category": "fire", "source": "manual", "title": title, "location": {"lon": 123.42, "lat": 41.80}, "actor": "timeouts-test"})
}

fn titles(base: &str) -> Vec<String> {
    let (st, v) = get_json(&format!("{base}/api/events?limit=10000"));
    assert_eq!(st, 200, "{v}");
    v["events"].as_array().unwrap().iter().map(|e| e["title"].as_str().unwrap().to_string()).collect()
}

/// A lock on the events table held by a second connection until dropped / released.
enum Lock {
    Sqlite(rusqlite::Connection),
    Pg(postgres::Client),
}

impl Lock {
    fn take(b: LiveBackend, db: &LiveDb) -> Lock {
        match b {
            LiveBackend::Sqlite => {
                let c = rusqlite::Connection::open(db.dir.path().join("live.sqlite")).unwrap();
                c.execute_batch("BEGIN EXCLUSIVE").unwrap();
                Lock::Sqlite(c)
            }
            LiveBackend::Postgres => {
                let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
                c.batch_execute("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE").unwrap();
                Lock::Pg(c)
            }
        }
    }
    fn release(self) {
        match self {
            Lock::Sqlite(c) => c.execute_batch("ROLLBACK").unwrap(),
            Lock::Pg(mut c) => c.batch_execute("ROLLBACK").unwrap(),
        }
    }
}

/// The 503 of a request cut off by `--request-timeout`: the middleware's answer, or (PostgreSQL,
/// when its `statement_timeout`, the same duration, fires first) the store error naming SQLSTATE
/// 57014 (query_canceled).
fn assert_timed_out(st: u16, v: &Value, what: &str, elapsed: Duration) {
    assert_eq!(st, 503, "{what}: {v}");
    let reason = v["reason"].as_str().unwrap_or("");
    let msg = v["error"].as_str().unwrap_or("");
    match reason {
        "timeout" => assert_eq!(msg, format!("{what}: no answer within {TIMEOUT_S} s")),
        "store_error" => assert!(msg.contains("57014") && msg.contains("statement timeout"), "{v}"),
        _ => panic!("{what}: unexpected 503 body {v}"),
    }
    // cut off after the timeout, not before it, and not much later (the margin covers a loaded CI machine)
    assert!(elapsed >= Duration::from_millis(TIMEOUT_S * 1000 - 50), "{what}: answered after {elapsed:?}, before the timeout");
    assert!(elapsed < Duration::from_secs(TIMEOUT_S + 5), "{what}: answered after {elapsed:?}");
}

fn request_timeout(b: LiveBackend) {
    let tmp = tempfile::tempdir().unwrap();
    let model = live_model(tmp.path());
    let db = LiveDb::new(b);
    let srv = serve_with(&model, &["--db", &db.url, "--request-timeout", &TIMEOUT_S.to_string()]);
    let base = srv.base.clone();
    let (st, a) = post_json(&format!("{base}/api/events"), &new_event("acknowledged before"));
    assert_eq!(st, 201, "{a}");

    let lock = Lock::take(b, &db);
    // A write that needs the lock: answered 503 within the timeout.
    let url = format!("{base}/api/events");
    let blocked = std::thread::spawn(move || {
        let t0 = Instant::now();
        let (st, v) = post_json(&url, &new_event("blocked"));
        (st, v, t0.elapsed())
    });
    // Meanwhile other requests are served: liveness, a read of another table, a tile-less
    // model route; on SQLite (WAL) even a read of the locked table.
    for path in ["/healthz", "/api/units", "/api/districts", "/api/events/categories"] {
        let (st, v) = get_json(&format!("{base}{path}"));
        assert_eq!(st, 200, "{path} while the events table is locked: {v}");
    }
    if b == LiveBackend::Sqlite {
        assert_eq!(titles(&base), ["acknowledged before"], "WAL readers are not blocked by the writer's lock");
    }
    assert!(!blocked.is_finished(), "the blocked write answered before the other requests were served");
    let (st, v, elapsed) = blocked.join().unwrap();
    assert_timed_out(st, &v, "POST /api/events", elapsed);
    if b == LiveBackend::Postgres {
        // a read of the locked table is cut off the same way (statement_timeout or the middleware)
        let t0 = Instant::now();
        let (st, v) = get_json(&format!("{base}/api/events"));
        assert_timed_out(st, &v, "GET /api/events", t0.elapsed());
    }
    lock.release();

    // The same request again: accepted now; the timed-out one was never applied (it was not
    // acknowledged: a write whose requester has gone is dropped, not committed behind its back).
    let (st, v) = post_json(&format!("{base}/api/events"), &new_event("blocked"));
    assert_eq!(st, 201, "{v}");
    assert_eq!(titles(&base), ["acknowledged before", "blocked"]);
    let m = get_text(&format!("{base}/metrics"));
    assert!(metric(&m, "citytwin_request_timeouts_total") >= 1.0, "{m}");
    if b == LiveBackend::Sqlite {
        // SQLite: the write waited in BEGIN IMMEDIATE and was dropped once the lock cleared
        assert_eq!(metric(&m, "citytwin_abandoned_writes_total"), 1.0);
    }

    // After a restart everything acknowledged is still there.
    drop(srv);
    let srv = serve_with(&model, &["--db", &db.url, "--request-timeout", &TIMEOUT_S.to_string()]);
    assert_eq!(titles(&srv.base), ["acknowledged before", "blocked"]);
}

both!(request_timeout);

/// List routes never answer more than their cap: `GET /api/events` 1,000 rows by default,
/// `limit` at most 10,000; SensorThings `$top` 100 by default (with a nextLink), at most 10,000.
fn result_caps(b: LiveBackend) {
    let tmp = tempfile::tempdir().unwrap();
    let model = live_model(tmp.path());
    let db = LiveDb::new(b);
    let srv = serve_with(&model, &["--db", &db.url]);
    let base = &srv.base;
    let batch: Vec<Value> = (0..1005).map(|i| new_event(&format!("e{i}"))).collect();
    let (st, v) = post_json(&format!("{base}/api/events"), &Value::Array(batch));
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["events"].as_array().unwrap().len(), 1005);
    let (_, v) = get_json(&format!("{base}/api/events"));
    assert_eq!(v["count"], 1000, "the default page is capped at 1,000");
    assert_eq!(v["events"][999]["title"], "e999");
    let (_, v) = get_json(&format!("{base}/api/events?limit=10000"));
    assert_eq!(v["count"], 1005);
    let (_, v) = get_json(&format!("{base}/api/events?offset=1000"));
    assert_eq!(v["count"], 5);
    let (st, v) = get_json(&format!("{base}/api/events?limit=10001"));
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"], "limit must be 1–10000: '10001'");

    let ds = sta_datastream(base, "pm25", 123.42, 41.80);
    let obs: Vec<Value> = (0..150).map(|i| json!({"datastream": ds, "result": i, "phenomenonTime": format!("2026-11-22T08:{:02}:{:02}Z", i / 60, i % 60)})).collect();
    let (st, v) = post_json(&format!("{base}/api/sensors/observations"), &Value::Array(obs));
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["accepted"], 150);
    let (_, v) = get_json(&format!("{base}/api/sta/v1.1/Observations"));
    assert_eq!(v["value"].as_array().unwrap().len(), 100, "the default $top is 100");
    assert!(v["@iot.nextLink"].as_str().unwrap().contains("$skip=100"), "{}", v["@iot.nextLink"]);
    let (st, v) = get_json(&format!("{base}/api/sta/v1.1/Observations?$top=10001"));
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("$top"), "{v}");
}

both!(result_caps);
