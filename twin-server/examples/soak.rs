//! Soak client (issue 8 item 6; scripts/soak.sh drives it): mixed tile, API (reads and writes:
//! events, transitions, observations) and stream load at fixed rates against a running server
//! for a bounded time, then a verdict.
//!
//! ```text
//! soak BASE SERVER_PID SECONDS [tiles=R] [reads=R] [events=R] [transitions=R] [obs=R] [subs=N]
//!      [tile_area=W,S,E,N]
//! ```
//!
//! Rates are requests per second, paced on a fixed schedule (a late request is sent at once, not
//! dropped, so a slow server shows up as latency). Every non-2xx answer, transport error, stream
//! disconnect, `resync` or gap in a subscriber's seqs is an error. The server's RSS
//! (`/proc/PID/status` VmRSS) is sampled every 5 s; memory is "flat" when the mean of the last
//! minute is within 10 % of the mean of the second minute (runs shorter than 3 minutes compare
//! the last third with the second third). Exit status 0 only with 0 errors and flat memory.
//! Writes send `Authorization: Bearer $CITYTWIN_TOKEN`; reads and the stream are anonymous
//! (`serve --anonymous-read`). Prints a JSON summary on stdout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Kind {
    lat_ms: Mutex<Vec<f64>>,
    ok: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Kind {
    fn record(&self, took: Duration, r: Result<u16, String>) {
        match r {
            Ok(s) if (200..300).contains(&s) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                self.lat_ms.lock().unwrap().push(took.as_secs_f64() * 1e3);
            }
            other => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut f = self.first_error.lock().unwrap();
                if f.is_none() {
                    *f = Some(format!("{other:?}"));
                }
            }
        }
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(30))).build().into()
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A tiny deterministic generator (xorshift64*), so two runs request the same mix.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `threads` threads sharing `rate` requests/s on a fixed schedule until `deadline`.
fn paced<F>(rate: f64, threads: usize, deadline: Instant, f: F) -> Vec<std::thread::JoinHandle<()>>
where
    F: Fn(usize, u64) + Send + Sync + 'static,
{
    let f = Arc::new(f);
    if rate <= 0.0 {
        return vec![];
    }
    let threads = threads.max(1);
    let interval = Duration::from_secs_f64(threads as f64 / rate);
    (0..threads)
        .map(|t| {
            let f = f.clone();
            std::thread::spawn(move || {
                let start = Instant::now() + interval.mul_f64(t as f64 / threads as f64);
                let mut i = 0u64;
                loop {
                    let at = start + interval.mul_f64(i as f64);
                    if at >= deadline {
                        return;
                    }
                    let now = Instant::now();
                    if at > now {
                        std::thread::sleep(at - now);
                    }
                    f(t, i);
                    i += 1;
                }
            })
        })
        .collect()
}

#[allow(dead_code)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: soak BASE SERVER_PID SECONDS [tiles=R] [reads=R] [events=R] [transitions=R] [obs=R] [subs=N] [tile_area=W,S,E,N] [token=KEY]");
        std::process::exit(2);
    }
    let (report, ok) = run(&args);
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    std::process::exit(if ok { 0 } else { 1 });
}

/// Runs the soak; returns the JSON report and the verdict (0 errors and flat RSS). tests/soak.rs
/// includes this file and calls it directly.
pub fn run(args: &[String]) -> (serde_json::Value, bool) {
    let base = args[0].trim_end_matches('/').to_string();
    let pid: u32 = args[1].parse().expect("SERVER_PID");
    let secs: f64 = args[2].parse().expect("SECONDS");
    let mut opt: BTreeMap<String, String> = [
        ("tiles", "2000"),
        ("reads", "200"),
        ("events", "40"),
        ("transitions", "40"),
        ("obs", "40"),
        ("subs", "50"),
        ("tile_area", "123.40,41.78,123.49,41.793"),
        ("token", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for a in &args[3..] {
        let (k, v) = a.split_once('=').unwrap_or_else(|| panic!("option {a}: KEY=VALUE"));
        assert!(opt.contains_key(k), "unknown option {k}");
        opt.insert(k.into(), v.into());
    }
    if opt["token"].is_empty() {
        opt.insert("token".into(), std::env::var("CITYTWIN_TOKEN").unwrap_or_default());
    }
    let bearer = format!("Bearer {}", opt["token"]);
    let rate = |k: &str| -> f64 { opt[k].parse().unwrap_or_else(|_| panic!("{k}: a number")) };
    let area: Vec<f64> = opt["tile_area"].split(',').map(|v| v.parse().unwrap()).collect();
    assert_eq!(area.len(), 4, "tile_area=W,S,E,N");

    // A datastream for the observations (water level, no thresholds: no events from it).
    let a = agent();
    let post = |url: &str, body: serde_json::Value| -> (u16, serde_json::Value) {
        let mut r = a.post(url).header("authorization", &bearer).header("content-type", "application/json").send(serde_json::to_vec(&body).unwrap().as_slice()).expect("setup request");
        (r.status().as_u16(), r.body_mut().read_json().unwrap_or(serde_json::Value::Null))
    };
    let (s, thing) = post(
        &format!("{base}/api/sta/v1.1/Things"),
        serde_json::json!({"name": "soak gauge", "description": "soak", "Locations": [{"name": "here", "description": "", "encodingType": "application/geo+json", "location": {"type": "Point", "coordinates": [123.42, 41.80]}}]}),
    );
    assert_eq!(s, 201, "create Thing: {thing}");
    let (s, ds) = post(
        &format!("{base}/api/sta/v1.1/Datastreams"),
        serde_json::json!({"name": "soak water level", "description": "soak", "properties": {"sensorType": "water_level"},
                "Thing": {"@iot.id": thing["@iot.id"]},
                "Sensor": {"name": "s", "description": "", "encodingType": "text/html", "metadata": "https://example.org/s"},
                "ObservedProperty": {"name": "water_level", "definition": "https://example.org/water_level", "description": ""}}),
    );
    assert_eq!(s, 201, "create Datastream: {ds}");
    let ds_id = ds["@iot.id"].as_i64().unwrap();

    let kinds: Arc<BTreeMap<&'static str, Kind>> =
        Arc::new(["tile", "read", "event", "transition", "observation"].into_iter().map(|k| (k, Kind::default())).collect());
    let stop = Arc::new(AtomicBool::new(false));

    // Stream subscribers (WebSocket), all past their snapshot before the load starts.
    let subs = rate("subs") as usize;
    let deltas = Arc::new(AtomicU64::new(0));
    let stream_errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let ready = Arc::new(AtomicU64::new(0));
    let mut sub_threads = vec![];
    let addr = base.trim_start_matches("http://").to_string();
    for _ in 0..subs {
        let (addr, deltas, errs, ready, stop) = (addr.clone(), deltas.clone(), stream_errors.clone(), ready.clone(), stop.clone());
        sub_threads.push(std::thread::spawn(move || {
            let tcp = std::net::TcpStream::connect(&addr).expect("connect");
            tcp.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            let (mut ws, _) = match tungstenite::client(format!("ws://{addr}/api/stream"), tcp) {
                Ok(x) => x,
                Err(e) => {
                    errs.lock().unwrap().push(format!("handshake: {e}"));
                    ready.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let mut last: Option<i64> = None;
            while !stop.load(Ordering::Relaxed) {
                let m = match ws.read() {
                    Ok(m) => m,
                    Err(tungstenite::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                    Err(e) => {
                        errs.lock().unwrap().push(format!("stream ended: {e}"));
                        return;
                    }
                };
                let tungstenite::Message::Text(t) = m else { continue };
                let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                let seq = v["seq"].as_i64();
                match v["type"].as_str() {
                    Some("snapshot") => {
                        last = seq;
                        ready.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("delta") => {
                        let seq = seq.unwrap_or(-1);
                        if let Some(l) = last {
                            if seq != l + 1 {
                                errs.lock().unwrap().push(format!("gap: {l} then {seq}"));
                            }
                        }
                        last = Some(seq);
                        deltas.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("resync") => {
                        errs.lock().unwrap().push(format!("resync: {t}"));
                        return;
                    }
                    _ => {}
                }
            }
            let _ = ws.close(None);
        }));
    }
    let t0 = Instant::now();
    while (ready.load(Ordering::Relaxed) as usize) < subs {
        assert!(t0.elapsed() < Duration::from_secs(60), "subscribers not ready: {}/{subs}", ready.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(50));
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut workers = vec![];
    // Tiles: random points of the built-up area at z12–z16.
    {
        let (kinds, base, area) = (kinds.clone(), base.clone(), area.clone());
        workers.extend(paced(rate("tiles"), 4, deadline, move |t, i| {
            thread_local!(static A: ureq::Agent = agent());
            let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64) << 32 | i));
            let (lon, lat) = (area[0] + r.unit() * (area[2] - area[0]), area[1] + r.unit() * (area[3] - area[1]));
            let z = 12 + (r.next() % 5) as u8;
            let id = tiles::TileId::containing(lon, lat, z);
            let url = format!("{base}/tiles/city/{z}/{}/{}.mvt", id.x, id.y);
            let t0 = Instant::now();
            let res = A.with(|a| a.get(&url).header("accept-encoding", "gzip").call().map_err(|e| e.to_string()).and_then(|mut r| {
                r.body_mut().read_to_vec().map_err(|e| e.to_string())?;
                Ok(r.status().as_u16())
            }));
            kinds["tile"].record(t0.elapsed(), res);
        }));
    }
    // API reads: model, events, units, latest sensor values in turn.
    {
        let (kinds, base) = (kinds.clone(), base.clone());
        workers.extend(paced(rate("reads"), 2, deadline, move |_, i| {
            thread_local!(static A: ureq::Agent = agent());
            let path = ["/api/model", "/api/events?limit=50", "/api/units", "/api/sensors/latest"][i as usize % 4];
            let url = format!("{base}{path}");
            let t0 = Instant::now();
            let res = A.with(|a| a.get(&url).call().map_err(|e| e.to_string()).and_then(|mut r| {
                r.body_mut().with_config().limit(64 << 20).read_to_vec().map_err(|e| e.to_string())?;
                Ok(r.status().as_u16())
            }));
            kinds["read"].record(t0.elapsed(), res);
        }));
    }
    // Writes: events; transitions of created events (reported → dispatched → handling → feedback → closed).
    let created: Arc<Mutex<std::collections::VecDeque<(i64, usize)>>> = Arc::default();
    let send = move |a: &ureq::Agent, url: &str, body: &serde_json::Value| -> (Result<u16, String>, serde_json::Value) {
        match a.post(url).header("authorization", &bearer).header("content-type", "application/json").send(serde_json::to_vec(body).unwrap().as_slice()) {
            Ok(mut r) => {
                let v = r.body_mut().read_json().unwrap_or(serde_json::Value::Null);
                (Ok(r.status().as_u16()), v)
            }
            Err(e) => (Err(e.to_string()), serde_json::Value::Null),
        }
    };
    {
        let (kinds, base, created, send) = (kinds.clone(), base.clone(), created.clone(), send.clone());
        workers.extend(paced(rate("events"), 2, deadline, move |t, i| {
            thread_local!(static A: ureq::Agent = agent());
            let body = serde_json::json!({"category": "city_management", "source": "patrol", "title": format!("soak {t}-{i}"),
                "location": {"lon": 123.41 + (i % 40) as f64 * 0.0005, "lat": 41.79 + (t as f64) * 0.01}, "actor": "soak"});
            let t0 = Instant::now();
            let (res, v) = A.with(|a| send(a, &format!("{base}/api/events"), &body));
            kinds["event"].record(t0.elapsed(), res);
            if let Some(id) = v["id"].as_i64() {
                created.lock().unwrap().push_back((id, 0));
            }
        }));
    }
    {
        let (kinds, base, created, send) = (kinds.clone(), base.clone(), created.clone(), send.clone());
        const PATH: [&str; 4] = ["dispatched", "handling", "feedback", "closed"];
        workers.extend(paced(rate("transitions"), 2, deadline, move |_, _| {
            thread_local!(static A: ureq::Agent = agent());
            let Some((id, step)) = created.lock().unwrap().pop_front() else { return };
            let body = serde_json::json!({"to": PATH[step], "actor": "soak"});
            let t0 = Instant::now();
            let (res, _) = A.with(|a| send(a, &format!("{base}/api/events/{id}/transitions"), &body));
            kinds["transition"].record(t0.elapsed(), res);
            if step + 1 < PATH.len() {
                created.lock().unwrap().push_back((id, step + 1));
            }
        }));
    }
    {
        let (kinds, base, send) = (kinds.clone(), base.clone(), send.clone());
        workers.extend(paced(rate("obs"), 2, deadline, move |t, i| {
            thread_local!(static A: ureq::Agent = agent());
            // 10 observations per request, results in range and below any threshold.
            let now = chrono_free_now_ms();
            let body: Vec<serde_json::Value> = (0..10)
                .map(|k| serde_json::json!({"datastream": ds_id, "result": 1.0 + ((i * 10 + k) % 50) as f64 * 0.01,
                                             "phenomenonTime": rfc3339(now - 1000 + k as i64 + t as i64 * 100)}))
                .collect();
            let t0 = Instant::now();
            let (res, _) = A.with(|a| send(a, &format!("{base}/api/sensors/observations"), &serde_json::Value::Array(body)));
            kinds["observation"].record(t0.elapsed(), res);
        }));
    }

    // RSS every 5 s until the deadline.
    let mut rss: Vec<(f64, u64)> = vec![];
    while Instant::now() < deadline {
        if let Some(k) = rss_kib(pid) {
            rss.push((start.elapsed().as_secs_f64(), k));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_secs(5)));
    }
    for w in workers {
        w.join().unwrap();
    }
    if let Some(k) = rss_kib(pid) {
        rss.push((start.elapsed().as_secs_f64(), k));
    }
    std::thread::sleep(Duration::from_millis(1000)); // last deltas
    stop.store(true, Ordering::Relaxed);
    for s in sub_threads {
        let _ = s.join();
    }
    let elapsed = start.elapsed().as_secs_f64();

    // Memory: last minute vs second minute (or last third vs second third).
    let (w1, w2) = if secs >= 180.0 { ((60.0, 120.0), (secs - 60.0, secs + 1.0)) } else { ((secs / 3.0, 2.0 * secs / 3.0), (2.0 * secs / 3.0, secs + 1.0)) };
    let mean = |(a, b): (f64, f64)| -> f64 {
        let v: Vec<f64> = rss.iter().filter(|(t, _)| *t >= a && *t < b).map(|(_, k)| *k as f64 / 1024.0).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let (m1, m2) = (mean(w1), mean(w2));
    let growth = (m2 - m1) / m1;
    let flat = growth.abs() <= 0.10;

    let mut report = serde_json::Map::new();
    let mut errors = 0;
    for (name, k) in kinds.iter() {
        let mut v = k.lat_ms.lock().unwrap().clone();
        let (ok, err) = (k.ok.load(Ordering::Relaxed), k.errors.load(Ordering::Relaxed));
        errors += err;
        report.insert(
            name.to_string(),
            serde_json::json!({"ok": ok, "errors": err, "per_s": ok as f64 / secs, "p50_ms": pct(&mut v, 0.5), "p99_ms": pct(&mut v, 0.99),
                               "first_error": *k.first_error.lock().unwrap()}),
        );
    }
    let se = stream_errors.lock().unwrap().clone();
    errors += se.len() as u64;
    report.insert(
        "stream".into(),
        serde_json::json!({"subscribers": subs, "deltas": deltas.load(Ordering::Relaxed), "errors": se.len(), "first_errors": se.iter().take(5).collect::<Vec<_>>()}),
    );
    report.insert(
        "rss".into(),
        serde_json::json!({"samples_mib": rss.iter().map(|(t, k)| vec![(*t * 10.0).round() / 10.0, (*k as f64 / 1024.0 * 10.0).round() / 10.0]).collect::<Vec<_>>(),
                           "window_a": w1, "window_b": w2, "mean_a_mib": m1, "mean_b_mib": m2, "growth": growth, "flat": flat}),
    );
    report.insert("seconds".into(), serde_json::json!(elapsed));
    report.insert("duration_s".into(), serde_json::json!(secs));
    report.insert("errors".into(), serde_json::json!(errors));
    opt.remove("token");
    report.insert("rates".into(), serde_json::json!(opt));
    let ok = errors == 0 && flat;
    eprintln!("soak {}: {errors} errors, RSS {m1:.1} → {m2:.1} MiB ({:+.1} %)", if ok { "passed" } else { "FAILED" }, growth * 100.0);
    (serde_json::Value::Object(report), ok)
}

fn chrono_free_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// RFC 3339 UTC with milliseconds from Unix ms (civil-from-days, H. Hinnant).
fn rfc3339(ms: i64) -> String {
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, s) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z", s / 3600, s / 60 % 60, s % 60)
}
