//! Benchmark, not a test (a `[[bench]]` with its own `main`; docs/BENCHMARKS.md "Indicators in
//! the server"): the indicator engine fed through a running twin-server.

#[allow(dead_code)]
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Benchmark (`cargo bench -p twin-server --bench indicator_feed`): server-side cost of feeding observations to the
/// engine with the whole library active, from the server's own counters, and the process RSS.
/// `INDICATOR_BENCH_N` observations (default 200,000) from 90 datastreams of 9 numeric types in
/// both districts, phenomenon times spread over the last hour, posted in batches of 5,000.
fn main() {
    let n: usize = std::env::var("INDICATOR_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(LiveBackend::Sqlite);
    let args = ["--db", db.url.as_str(), "--simulate", "off"];
    let s = serve_with(&model, &args);
    let base = s.base.clone();
    let rss = |pid: u32| -> (f64, f64) {
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb = |k: &str| st.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().unwrap() / 1024.0).unwrap();
        (kb("VmRSS:"), kb("VmHWM:"))
    };
    let types = [("aqi", 0.0, 300.0), ("pm25", 0.0, 200.0), ("noise", 30.0, 90.0), ("traffic_speed", 5.0, 80.0), ("traffic_flow", 0.0, 3000.0), ("parking_occupancy", 0.0, 100.0), ("water_level", 0.0, 5.0), ("gas_lel", 0.0, 30.0), ("manhole_tilt", 0.0, 20.0)];
    let mut dss = vec![];
    for (k, (t, lo, hi)) in types.iter().enumerate() {
        for j in 0..10 {
            let lon = 123.401 + (j as f64) * 0.0055 + (k as f64) * 0.0001;
            dss.push((sta_datastream(&base, t, lon, 41.80), *lo, *hi));
        }
    }
    let (rss0, _) = rss(s.child.id());
    let m0 = get_text(&format!("{base}/metrics"));
    let (in0, feed0, read0) = (metric(&m0, "citytwin_indicator_inputs_total"), metric(&m0, "citytwin_indicator_feed_seconds_total"), metric(&m0, "citytwin_indicator_read_seconds_total"));
    let now = chrono::Utc::now();
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let t0 = Instant::now();
    let mut sent = 0;
    while sent < n {
        let batch: Vec<Value> = (0..5000.min(n - sent))
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (ds, lo, hi) = dss[(sent + i) % dss.len()];
                let v = lo + (hi - lo) * ((x >> 11) as f64 / (1u64 << 53) as f64);
                let t = now - chrono::Duration::milliseconds(((sent + i) as i64 * 3_000_000) / n as i64 + 60_000);
                json!({"datastream": ds, "phenomenonTime": t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "result": (v * 100.0).round() / 100.0})
            })
            .collect();
        let (st, r) = post_json(&format!("{base}/api/sensors/observations"), &Value::Array(batch));
        assert_eq!(st, 201, "{r}");
        sent += 5000.min(n - sent);
    }
    let m = loop {
        let m = get_text(&format!("{base}/metrics"));
        if metric(&m, "citytwin_indicator_inputs_total") - in0 >= n as f64 {
            break m;
        }
        assert!(t0.elapsed() < Duration::from_secs(600));
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = t0.elapsed().as_secs_f64();
    let fed = metric(&m, "citytwin_indicator_inputs_total") - in0;
    let feed_s = metric(&m, "citytwin_indicator_feed_seconds_total") - feed0;
    let read_s = metric(&m, "citytwin_indicator_read_seconds_total") - read0;
    let (rss1, hwm1) = rss(s.child.id());
    let t = Instant::now();
    let _ = get_json(&format!("{base}/api/indicators/values"));
    let values_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(s);
    let t = Instant::now();
    let s2 = serve_with(&model, &args);
    let restart = t.elapsed().as_secs_f64();
    let (rss2, _) = rss(s2.child.id());
    println!(
        "BENCH observations={n} fed={fed} engine_us_per_obs={:.2} read_us_per_obs={:.2} ingest_to_fed_wall_s={wall:.2} rss_before_mb={rss0:.1} rss_after_mb={rss1:.1} hwm_mb={hwm1:.1} values_http_ms={values_ms:.1} restart_with_backfill_s={restart:.2} rss_after_restart_mb={rss2:.1}",
        feed_s / fed * 1e6,
        read_s / fed * 1e6
    );
}
