//! Live-operations benchmark client (scripts/bench-live.sh drives it).
//!
//! `latency`: opens N WebSocket subscribers on `/api/stream?topics=events`, then POSTs events at
//! a fixed rate and measures, for every (event, subscriber) pair, the time from just before the
//! POST to the delta's arrival — event → WebSocket delivery, end to end (HTTP, commit, tailer,
//! fan-out). `writes`: C client threads POST single events as fast as they can for D seconds
//! (and then batches of 100), reporting committed events/s.
//!
//! ```text
//! cargo run --release -p twin-server --example bench_live -- latency http://127.0.0.1:8080 1000 300 30
//! cargo run --release -p twin-server --example bench_live -- writes  http://127.0.0.1:8080 8 10
//! ```

use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn event(i: usize) -> serde_json::Value {
    serde_json::json!({"category": "traffic_accident", "source": "video_analytics", "title": format!("bench-{i}"),
        "location": {"lon": 123.41 + (i % 50) as f64 * 0.0005, "lat": 41.80}, "actor": "bench"})
}

/// `Bearer $CITYTWIN_TOKEN` (the writer's API key; scripts/bench-live.sh passes the admin key).
fn bearer() -> String {
    format!("Bearer {}", std::env::var("CITYTWIN_TOKEN").unwrap_or_default())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(60))).build().into()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn latency(base: String, subs: usize, events: usize, rate: f64) {
    let ws_url = format!("ws://{}/api/stream?topics=events", base.trim_start_matches("http://"));
    let t0 = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..events).map(|_| AtomicU64::new(0)).collect());
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(subs);
    for _ in 0..subs {
        let (url, sent, ready) = (ws_url.clone(), sent.clone(), ready_tx.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
            let mut lat = Vec::with_capacity(events);
            let mut got = 0usize;
            let mut readied = false;
            while got < events {
                let m = match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                    Ok(Some(Ok(m))) => m,
                    _ => break,
                };
                let tokio_tungstenite::tungstenite::Message::Text(t) = m else { continue };
                let now = t0.elapsed().as_micros() as u64;
                // Cheap matching instead of a full JSON parse: the client shares the 2 cores.
                let t = t.as_str();
                if t.starts_with("{\"type\":\"delta\"") {
                    if t.contains("\"kind\":\"created\"") {
                        if let Some(i) = t.find("\"title\":\"bench-").map(|p| &t[p + 15..]).and_then(|r| r.split('"').next()).and_then(|n| n.parse::<usize>().ok()) {
                            if i < sent.len() {
                                lat.push((now.saturating_sub(sent[i].load(Ordering::Acquire))) as f64 / 1000.0);
                                got += 1;
                            }
                        }
                    }
                } else if t.starts_with("{\"type\":\"snapshot\"") && !readied {
                    readied = true;
                    let _ = ready.send(()).await;
                } else if t.starts_with("{\"type\":\"resync\"") {
                    panic!("subscriber told to resync: {t}");
                }
            }
            lat
        }));
    }
    drop(ready_tx);
    let mut n = 0;
    while n < subs {
        ready_rx.recv().await.expect("subscriber failed before its snapshot");
        n += 1;
    }
    let setup = t0.elapsed();
    let sender = {
        let (base, sent) = (base.clone(), sent.clone());
        tokio::task::spawn_blocking(move || {
            let a = agent();
            let start = Instant::now();
            for i in 0..events {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                sent[i].store(t0.elapsed().as_micros() as u64, Ordering::Release);
                let r = a.post(&format!("{base}/api/events")).header("content-type", "application/json").header("authorization", bearer()).send(serde_json::to_vec(&event(i)).unwrap().as_slice()).unwrap();
                assert_eq!(r.status().as_u16(), 201);
            }
        })
    };
    // Never block the (single) runtime thread: the subscribers read on it.
    sender.await.unwrap();
    let mut all = Vec::new();
    let mut short = 0;
    for t in tasks {
        let l = t.await.unwrap();
        if l.len() < events {
            short += 1;
        }
        all.extend(l);
    }
    let samples = all.len();
    let (p50, p90, p99, max) = (pct(&mut all, 0.5), pct(&mut all, 0.9), pct(&mut all, 0.99), pct(&mut all, 1.0));
    println!(
        "latency: {subs} subscribers (connected + snapshots in {:.1} s), {events} events at {rate}/s → {samples} deliveries ({short} subscribers missed some); event → WebSocket delivery p50 {p50:.1} ms, p90 {p90:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        setup.as_secs_f64()
    );
}

fn writes(base: String, threads: usize, secs: f64) {
    for batch in [1usize, 100] {
        let stop = Instant::now() + Duration::from_secs_f64(secs);
        let count = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let hs: Vec<_> = (0..threads)
            .map(|w| {
                let (base, count) = (base.clone(), count.clone());
                std::thread::spawn(move || {
                    let a = agent();
                    let mut i = w * 10_000_000;
                    while Instant::now() < stop {
                        let body = if batch == 1 { event(i) } else { serde_json::Value::Array((0..batch).map(|k| event(i + k)).collect()) };
                        i += batch;
                        let r = a.post(&format!("{base}/api/events")).header("content-type", "application/json").header("authorization", bearer()).send(serde_json::to_vec(&body).unwrap().as_slice()).unwrap();
                        assert_eq!(r.status().as_u16(), 201);
                        count.fetch_add(batch as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let n = count.load(Ordering::Relaxed);
        let dt = t0.elapsed().as_secs_f64();
        println!("writes: {threads} clients, {} per request: {n} events in {dt:.1} s = {:.0} events/s", batch, n as f64 / dt);
    }
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench_live latency BASE SUBSCRIBERS EVENTS RATE | writes BASE THREADS SECONDS";
    match a.first().map(String::as_str) {
        Some("latency") if a.len() == 5 => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(latency(a[1].clone(), a[2].parse().expect(usage), a[3].parse().expect(usage), a[4].parse().expect(usage)));
        }
        Some("writes") if a.len() == 4 => writes(a[1].clone(), a[2].parse().expect(usage), a[3].parse().expect(usage)),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
