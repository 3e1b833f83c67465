//! kill -9 loses no acknowledged write: client threads create events and move them as fast as
//! they can, the test SIGKILLs the server mid-stream, restarts it on the same store, and every
//! write that got a 2xx is there — on SQLite (WAL, synchronous=NORMAL) and on PostgreSQL.

mod common;
use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn kill9(b: LiveBackend) {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(b);
    let mut server = serve_with(&model, &["--db", &db.url]);
    let base = server.base.clone();
    // event id → acknowledged state
    let acked: Arc<Mutex<HashMap<i64, &'static str>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for w in 0..4 {
        let (base, acked, stop) = (base.clone(), acked.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(20))).build().into();
            let post = |url: &str, body: serde_json::Value| -> Option<(u16, serde_json::Value)> {
                let mut r = agent.post(url).header("content-type", "application/json").header("authorization", format!("Bearer {TEST_ADMIN_TOKEN}")).send(serde_json::to_vec(&body).unwrap().as_slice()).ok()?;
                let st = r.status().as_u16();
                let v: serde_json::Value = r.body_mut().read_json().ok()?;
                Some((st, v))
            };
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let ev = json!({"category": "city_management", "source": "patrol", "title": format!("w{w} #{i}"),
                                "location": {"lon": 123.41 + (i % 40) as f64 * 0.001, "lat": 41.80}, "actor": format!("writer-{w}")});
                let Some((st, e)) = post(&format!("{base}/api/events"), ev) else { break };
                assert_eq!(st, 201, "{e}");
                let id = e["id"].as_i64().unwrap();
                acked.lock().unwrap().insert(id, "reported");
                let Some((st, t)) = post(&format!("{base}/api/events/{id}/transitions"), json!({"to": "dispatched", "actor": "d"})) else { break };
                assert_eq!(st, 200, "{t}");
                acked.lock().unwrap().insert(id, "dispatched");
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(2500));
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "too few writes before the kill to mean anything: {}", acked.len());

    let again = serve_with(&model, &["--db", &db.url]);
    let mut stored: HashMap<i64, String> = HashMap::new();
    let mut offset = 0;
    loop {
        let (st, page) = get_json(&format!("{}/api/events?limit=10000&offset={offset}", again.base));
        assert_eq!(st, 200);
        let evs = page["events"].as_array().unwrap();
        for e in evs {
            stored.insert(e["id"].as_i64().unwrap(), e["state"].as_str().unwrap().to_string());
        }
        if evs.len() < 10_000 {
            break;
        }
        offset += 10_000;
    }
    let mut lost = Vec::new();
    for (id, state) in &acked {
        match stored.get(id) {
            None => lost.push(format!("event {id} (acknowledged {state}) missing")),
            Some(s) if *state == "dispatched" && s != "dispatched" => lost.push(format!("event {id}: acknowledged dispatched, stored {s}")),
            _ => {}
        }
    }
    assert!(lost.is_empty(), "{} acknowledged writes lost after kill -9: {:?}", lost.len(), &lost[..lost.len().min(10)]);
    // Unacknowledged writes may or may not have committed; nothing else may appear.
    assert!(stored.len() <= acked.len() + 4, "{} stored vs {} acknowledged (+ ≤ 4 in flight)", stored.len(), acked.len());
    // The restarted server keeps writing, ids and seqs continuing.
    let (st, e) = post_json(&format!("{}/api/events", again.base), &json!({"category": "fire", "source": "manual", "title": "after restart", "location": {"lon": 123.42, "lat": 41.8}, "actor": "t"}));
    assert_eq!(st, 201, "{e}");
    assert!(e["id"].as_i64().unwrap() > *stored.keys().max().unwrap());
    eprintln!("{b:?}: {} acknowledged writes ({} events) all present after kill -9", acked.values().map(|s| if *s == "dispatched" { 2 } else { 1 }).sum::<usize>(), acked.len());
}

#[test]
fn sqlite_kill9_loses_no_acknowledged_write() {
    kill9(LiveBackend::Sqlite)
}

#[test]
fn postgres_kill9_loses_no_acknowledged_write() {
    kill9(LiveBackend::Postgres)
}
