//! `/api/stream` over WebSocket and SSE against real servers, on SQLite and PostgreSQL: snapshot
//! then deltas; a reconnect with `since` gets exactly the missed seqs (from the table: the gap is
//! larger than the in-memory ring); bbox filtering; a slow consumer is told to resync and dropped
//! while a fast one receives everything; two replicas on one PostgreSQL see each other's changes.

#[macro_use]
mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

fn ws(base: &str, query: &str) -> Ws {
    let url = format!("ws://{}/api/stream?{query}", base.trim_start_matches("http://"));
    let (mut ws, _) = tungstenite::connect(url).expect("websocket connect");
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    ws
}

/// Next message other than ping.
fn next(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("stream message") {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] != "ping" {
                    return v;
                }
            }
            Message::Close(c) => panic!("stream closed: {c:?}"),
            _ => {}
        }
    }
}

fn ev(cat: &str, lon: f64, lat: f64, title: &str) -> Value {
    json!({"category": cat, "source": "video_analytics", "title": title, "location": {"lon": lon, "lat": lat}, "actor": "cam"})
}

fn create(base: &str, body: &Value) -> Value {
    let (st, v) = post_json(&format!("{base}/api/events"), body);
    assert_eq!(st, 201, "{v}");
    v
}

fn snapshot_deltas_resume(b: LiveBackend) {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(b);
    let s = serve_with(&model, &["--db", &db.url, "--stream-ring", "50"]);
    let base = &s.base;
    for i in 0..3 {
        create(base, &ev("fire", 123.41 + i as f64 * 0.02, 41.80, &format!("e{i}")));
    }
    let mut w = ws(base, "topics=events,units");
    let hello = next(&mut w);
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["topics"], json!(["events", "units"]));
    let snap = next(&mut w);
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["seq"], 3, "consistent with the 3 changes so far");
    assert_eq!(snap["events"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(snap["units"].as_array().unwrap().len(), 9);
    create(base, &ev("fire", 123.45, 41.81, "e3"));
    let d = next(&mut w);
    assert_eq!((d["type"].as_str(), d["seq"].as_i64(), d["kind"].as_str(), d["entity"].as_str()), (Some("delta"), Some(4), Some("created"), Some("4")));
    assert_eq!(d["payload"]["event"]["title"], "e3");
    assert_eq!(post_json(&format!("{base}/api/events/4/assign"), &json!({"unit_id": 3, "actor": "d"})).0, 200);
    let (d5, d6) = (next(&mut w), next(&mut w));
    assert_eq!((d5["seq"].as_i64(), d5["topic"].as_str(), d5["entity"].as_str()), (Some(5), Some("units"), Some("3")));
    assert_eq!(d5["payload"]["unit"]["status"], "en_route");
    // The delta carries the unit's route: stream clients animate it without further messages.
    let route = &d5["payload"]["unit"]["route"];
    assert_eq!((route["purpose"].as_str(), route["method"].as_str()), (Some("to_event"), Some("straight_line")), "{d5}");
    assert_eq!(route["geometry"], json!([[123.45, 41.80], [123.45, 41.81]]), "from the fire station to the event");
    assert_eq!(route["vertex_time_s"].as_array().unwrap().len(), 2);
    assert_eq!((d6["seq"].as_i64(), d6["topic"].as_str(), d6["kind"].as_str()), (Some(6), Some("events"), Some("assigned")));
    w.close(None).ok();
    drop(w);

    // 200 changes while away: more than the ring (50) holds.
    let batch: Vec<Value> = (0..200).map(|i| ev("traffic_accident", if i % 2 == 0 { 123.41 } else { 123.45 }, 41.80, &format!("b{i}"))).collect();
    let (st, _) = post_json(&format!("{base}/api/events"), &Value::Array(batch));
    assert_eq!(st, 201);
    let t0 = Instant::now();
    loop {
        let m = get_text(&format!("{base}/metrics"));
        if metric(&m, "citytwin_changes_ring_first") >= 157.0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "ring did not move on: {m}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut w = ws(base, "topics=events,units&since=6");
    let hello = next(&mut w);
    assert_eq!((hello["type"].as_str(), hello["since"].as_i64()), (Some("hello"), Some(6)));
    for seq in 7..=206 {
        let d = next(&mut w);
        assert_eq!(d["type"], "delta", "{d}");
        assert_eq!(d["seq"].as_i64(), Some(seq), "no gaps, no duplicates");
        assert_eq!(d["entity"].as_str().unwrap(), (seq - 2).to_string());
    }
    create(base, &ev("medical", 123.42, 41.80, "live again"));
    let d = next(&mut w);
    assert_eq!((d["seq"].as_i64(), d["entity"].as_str()), (Some(207), Some("205")));

    // bbox: only 西区 (lon < 123.43) events; the snapshot too.
    let mut west = ws(base, "topics=events&bbox=123.40,41.78,123.43,41.82");
    assert_eq!(next(&mut west)["type"], "hello");
    let snap = next(&mut west);
    assert_eq!(snap["seq"], 207);
    let lons: Vec<f64> = snap["events"].as_array().unwrap().iter().map(|e| e["location"]["lon"].as_f64().unwrap()).collect();
    assert_eq!(lons.len(), 1 + 1 + 100 + 1, "e0, e1 at 123.43, the 100 even batch events, 'live again'");
    assert!(lons.iter().all(|l| *l <= 123.43));
    assert!(snap["units"].as_array().unwrap().is_empty(), "units not subscribed");
    create(base, &ev("fire", 123.45, 41.80, "east"));
    create(base, &ev("fire", 123.41, 41.80, "west"));
    let d = next(&mut west);
    assert_eq!((d["seq"].as_i64(), d["payload"]["event"]["title"].as_str()), (Some(209), Some("west")));
    let d = next(&mut w);
    assert_eq!(d["seq"], 208, "the unfiltered subscriber sees both");

    // Bad subscriptions are 400 with the reason.
    for q in ["topics=weather", "bbox=1,2", "since=-3", "colour=red"] {
        let (st, v) = get_json(&format!("{base}/api/stream?{q}"));
        assert_eq!(st, 400, "{q}: {v}");
    }
}
both!(snapshot_deltas_resume);

/// Opens an SSE subscription over raw HTTP (optionally with a small receive buffer).
fn sse_open(base: &str, query: &str, rcvbuf: Option<usize>) -> TcpStream {
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let s = match rcvbuf {
        None => TcpStream::connect(addr).unwrap(),
        Some(n) => {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            sock.set_recv_buffer_size(n).unwrap();
            sock.connect(&addr.into()).unwrap();
            sock.into()
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    write!(w, "GET /api/stream?{query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    s
}

fn sse_works(b: LiveBackend) {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(b);
    let s = serve_with(&model, &["--db", &db.url]);
    for i in 0..5 {
        create(&s.base, &ev("flooding", 123.41, 41.80 + i as f64 * 0.001, &format!("f{i}")));
    }
    let conn = sse_open(&s.base, "topics=events&since=2", None);
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut events: Vec<(String, Option<i64>, Value)> = Vec::new();
    let (mut ev_name, mut id) = (String::new(), None);
    while events.len() < 4 {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if let Some(v) = l.strip_prefix("event: ") {
            ev_name = v.to_string();
        } else if let Some(v) = l.strip_prefix("id: ") {
            id = v.parse().ok();
        } else if let Some(v) = l.strip_prefix("data: ") {
            events.push((ev_name.clone(), None, serde_json::from_str(v).unwrap()));
        } else if l.is_empty() && !events.is_empty() {
            events.last_mut().unwrap().1 = id.take();
        }
    }
    // Chunked framing lines (hex sizes) are skipped above since they match no prefix.
    assert_eq!(events[0].0, "hello");
    let seqs: Vec<i64> = events[1..].iter().map(|e| e.2["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert!(events[1..].iter().all(|e| e.0 == "delta"));
}
both!(sse_works);

fn slow_consumer_resync(b: LiveBackend) {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(b);
    let s = serve_with(&model, &["--db", &db.url, "--stream-queue", "64"]);
    let base = s.base.clone();
    const BATCHES: usize = 40;
    const PER: usize = 200;
    let total = (BATCHES * PER) as i64;
    // The fast subscriber: reads everything, checks seqs are contiguous.
    let fast = {
        let mut w = ws(&base, "topics=events");
        std::thread::spawn(move || {
            assert_eq!(next(&mut w)["type"], "hello");
            assert_eq!(next(&mut w)["type"], "snapshot");
            let mut expect = 1;
            while expect <= total {
                let d = next(&mut w);
                assert_eq!(d["type"], "delta", "the fast subscriber must never be told to resync: {d}");
                assert_eq!(d["seq"].as_i64(), Some(expect));
                expect += 1;
            }
            expect - 1
        })
    };
    // The slow subscriber: a tiny receive buffer, reading 4 KiB every 20 ms.
    let slow = {
        let mut conn = sse_open(&base, "topics=events", Some(4096));
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 4096];
            let t0 = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(20));
                match conn.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("slow reader: {e} after {} bytes", all.len()),
                }
                // The response ends after the resync (the connection itself may stay open).
                let text = String::from_utf8_lossy(&all);
                if let Some(i) = text.find("event: resync") {
                    if text[i..].contains("\n\n") {
                        break;
                    }
                }
                assert!(t0.elapsed() < Duration::from_secs(240), "slow subscriber was never dropped");
            }
            String::from_utf8_lossy(&all).into_owned()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for bi in 0..BATCHES {
        let batch: Vec<Value> = (0..PER).map(|i| ev("other", 123.41, 41.80, &format!("{bi}-{i} padding padding padding padding padding padding padding"))).collect();
        let (st, _) = post_json(&format!("{base}/api/events"), &Value::Array(batch));
        assert_eq!(st, 201);
    }
    assert_eq!(fast.join().unwrap(), total);
    let text = slow.join().unwrap();
    let i = text.find("event: resync").expect("the slow subscriber is told to resync");
    let data = text[i..].lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let resync: Value = serde_json::from_str(data).unwrap();
    assert_eq!(resync["type"], "resync");
    let last = resync["last_sent"].as_i64().unwrap();
    assert!(last < total, "resync names where to resume: {resync}");
    assert!(resync["reason"].as_str().unwrap().contains("too slow"));
    // Everything before the resync was contiguous up to last_sent.
    let ids: Vec<i64> = text[..i].lines().filter_map(|l| l.strip_prefix("id: ")).map(|v| v.trim().parse().unwrap()).collect();
    assert_eq!(ids[1..], (1..=last).collect::<Vec<_>>()[..], "snapshot id 0, then every delta up to last_sent");
    let m = get_text(&format!("{base}/metrics"));
    assert!(metric(&m, "citytwin_stream_resyncs_total") >= 1.0, "{m}");
}
both!(slow_consumer_resync);

#[test]
fn two_replicas_on_one_postgres_see_each_others_changes() {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(LiveBackend::Postgres);
    let a = serve_with(&model, &["--db", &db.url]);
    let b = serve_with(&model, &["--db", &db.url]);
    let (_, ua) = get_json(&format!("{}/api/units", a.base));
    let (_, ub) = get_json(&format!("{}/api/units", b.base));
    assert_eq!(ua["count"], 9, "seeded once, not per replica");
    assert_eq!(ua, ub);
    let mut wb = ws(&b.base, "topics=events,units");
    let mut wa = ws(&a.base, "topics=events,units");
    for w in [&mut wa, &mut wb] {
        assert_eq!(next(w)["type"], "hello");
        assert_eq!(next(w)["type"], "snapshot");
    }
    let t0 = Instant::now();
    let e = create(&a.base, &ev("gas_leak", 123.44, 41.79, "through A"));
    let d = next(&mut wb);
    let latency = t0.elapsed();
    assert_eq!((d["type"].as_str(), d["entity"].as_str()), (Some("delta"), Some(e["id"].to_string().as_str())));
    assert_eq!(d["payload"]["event"]["title"], "through A");
    assert!(latency < Duration::from_secs(2), "B saw A's change after {latency:?} (LISTEN/NOTIFY, not only the poll)");
    let e2 = create(&b.base, &ev("gas_leak", 123.44, 41.79, "through B"));
    assert_ne!(e2["id"], e["id"], "ids are unique across replicas");
    for w in [&mut wa, &mut wb] {
        let x = next(w);
        if x["entity"] == e["id"].to_string() {
            let y = next(w);
            assert_eq!(y["payload"]["event"]["title"], "through B");
        } else {
            assert_eq!(x["payload"]["event"]["title"], "through B");
        }
    }
    // Assign through B, transition through A: one event, one log, both streams in one order.
    assert_eq!(post_json(&format!("{}/api/events/{}/assign", b.base, e["id"]), &json!({"unit_id": 7, "actor": "d"})).0, 200);
    let (st, _) = post_json(&format!("{}/api/events/{}/transitions", a.base, e["id"]), &json!({"to": "handling", "actor": "d"}));
    assert_eq!(st, 200);
    let seqs_a: Vec<i64> = (0..3).map(|_| next(&mut wa)["seq"].as_i64().unwrap()).collect();
    let seqs_b: Vec<i64> = (0..3).map(|_| next(&mut wb)["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs_a, seqs_b);
    assert!(seqs_a.windows(2).all(|w| w[1] == w[0] + 1));
}
