//! Fault tests (issue 8 item 5): a `twin-server build` killed with SIGKILL while it writes next to
//! a model being served, a PostgreSQL restart under writing clients and a live stream, and a full
//! disk under a build. (kill -9 of the server during writes: tests/live_durability.rs, both
//! backends; a broker restart under MQTT ingest: tests/live_sensors.rs
//! `mqtt_ingest_…_broker_restart`.)
//!
//! Needs PostgreSQL 15 (scripts/install-deps.sh) and either root or unprivileged user namespaces
//! (to mount a 2 MiB tmpfs for the full-disk test).

mod common;
use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A GeoJSON of `n` square buildings in rows around 市府广场 (about 11 m squares, 22 m apart).
fn buildings(path: &Path, n: usize) {
    let mut s = String::from(r#"{"type":"FeatureCollection","features":["#);
    for i in 0..n {
        let (x, y) = (123.40 + 0.0003 * (i % 300) as f64, 41.78 + 0.0002 * (i / 300) as f64);
        let (x2, y2) = (x + 0.00013, y + 0.0001);
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"type":"Feature","properties":{{"building":"yes","height":{},"name":"楼{i}"}},"geometry":{{"type":"Polygon","coordinates":[[[{x},{y}],[{x2},{y}],[{x2},{y2}],[{x},{y2}],[{x},{y}]]]}}}}"#,
            10 + i % 50
        ));
    }
    s.push_str("]}");
    std::fs::write(path, s).unwrap();
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(20))).build().into()
}

/// GET: (status, X-Build-Id, body).
fn fetch(url: &str) -> (u16, String, Vec<u8>) {
    let mut r = agent().get(url).call().unwrap_or_else(|e| panic!("{url}: {e}"));
    let id = r.headers().get("x-build-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (r.status().as_u16(), id, r.body_mut().with_config().limit(64 << 20).read_to_vec().unwrap())
}

/// `--out` as `twin-server build` leaves it: the build directory the symlink points at.
fn link_target(out: &Path) -> PathBuf {
    std::fs::read_link(out).unwrap_or_else(|e| panic!("{} is not a symlink: {e}", out.display()))
}

/// Staging directories (`.<id>.building-*`) under `.<name>.builds`.
fn staging_dirs(out: &Path) -> Vec<PathBuf> {
    let builds = out.parent().unwrap().join(format!(".{}.builds", out.file_name().unwrap().to_string_lossy()));
    std::fs::read_dir(builds)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.file_name().unwrap().to_string_lossy().contains(".building-")).collect())
        .unwrap_or_default()
}

fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        dir_bytes(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// What the server answers for the model now: (X-Build-Id, /api/model body, z14 tile body).
fn snapshot(base: &str, tile: &str) -> (String, Vec<u8>, Vec<u8>) {
    let (st, id, model) = fetch(&format!("{base}/api/model"));
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&model));
    let (st, tid, t) = fetch(&format!("{base}{tile}"));
    assert_eq!(st, 200);
    assert_eq!(id, tid, "model and tile answers from one build");
    (id, model, t)
}

// ---------------------------------------------------------------- kill -9 during a build

#[test]
fn build_killed_mid_write_leaves_the_served_model_untouched_and_the_next_build_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let (small, big, next) = (tmp.path().join("small.geojson"), tmp.path().join("big.geojson"), tmp.path().join("next.geojson"));
    buildings(&small, 3);
    buildings(&big, 60_000);
    buildings(&next, 5);
    let out = tmp.path().join("model");
    let first = build(&out, &["--name", "city", "--source", small.to_str().unwrap()]);
    let first_id = first["build_id"].as_str().unwrap().to_string();
    let first_dir = link_target(&out);
    let s = serve(&out);
    let t = tiles::TileId::containing(123.4001, 41.78005, 14);
    let tile = format!("/tiles/city/14/{}/{}.mvt", t.x, t.y);
    let before = snapshot(&s.base, &tile);
    assert_eq!(before.0, first_id);

    // The big build writes into its staging directory beside the served build; SIGKILL it once
    // the staging directory holds data (the canonical model is written first, tiles after).
    let mut child = Command::new(bin())
        .args(["build", "--name", "city", "--source", big.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let staged = loop {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the build ended ({st}) before it could be killed mid-write: make the source bigger");
        }
        if let Some(d) = staging_dirs(&out).into_iter().find(|d| dir_bytes(d) > 0) {
            break d;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no staging directory with data appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(300)); // well into writing
    assert!(child.try_wait().unwrap().is_none(), "the build finished before the kill: make the source bigger");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    eprintln!("killed the build with {} bytes staged in {}", dir_bytes(&staged), staged.display());

    // --out still names the first build, the server still serves it, byte for byte, also after a
    // reload the watcher could have triggered (it polls every 500 ms).
    assert_eq!(link_target(&out), first_dir, "--out was switched by a killed build");
    std::thread::sleep(Duration::from_millis(1200));
    let after = snapshot(&s.base, &tile);
    assert_eq!(after.0, before.0, "build id changed");
    assert!(after.1 == before.1, "/api/model answer changed after the killed build");
    assert!(after.2 == before.2, "tile changed after the killed build");
    assert_eq!(manifest(&out)["build_id"], first["build_id"]);
    // The half-written build is only ever a dot-named staging directory.
    assert!(staged.file_name().unwrap().to_string_lossy().starts_with('.'));

    // A new build over the same --out succeeds and the server switches to it.
    let second = build(&out, &["--name", "city", "--source", next.to_str().unwrap()]);
    let second_id = second["build_id"].as_str().unwrap().to_string();
    assert_ne!(second_id, first_id);
    let t0 = Instant::now();
    loop {
        let (id, model, _) = snapshot(&s.base, &tile);
        if id == second_id {
            assert_ne!(model, before.1, "the new build answers differently (5 buildings, not 3)");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "server did not switch to the build made after the kill");
        std::thread::sleep(Duration::from_millis(200));
    }
    // That build deleted the killed build's staging directory (its process is gone).
    assert!(!staged.exists(), "the killed build's staging directory {} is still there", staged.display());
    assert!(staging_dirs(&out).is_empty(), "{:?}", staging_dirs(&out));
}

// ---------------------------------------------------------------- PostgreSQL restart

fn pg_ctl(pg: &PgServer, action: &str) {
    let data = pg.sock.join("data").to_string_lossy().into_owned();
    match action {
        "stop" => {
            pg.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
        }
        _ => {
            let opts = format!("-p {} -k {} -c listen_addresses='' -c fsync=off", pg.port, pg.sock.display());
            let log = pg.sock.join("log").to_string_lossy().into_owned();
            pg.run("pg_ctl", &["-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "60", "start"]);
        }
    }
}

/// One SSE subscriber collecting the seq of every delta; `ready` is set once the snapshot came.
fn sse_collect(base: &str, seqs: Arc<Mutex<Vec<i64>>>, ready: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    std::thread::spawn(move || {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut w = s.try_clone().unwrap();
        write!(w, "GET /api/stream?topics=events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        let mut kind = String::new();
        while !stop.load(Ordering::Relaxed) {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => panic!("stream closed by the server"),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                Err(e) => panic!("stream: {e}"),
            }
            let l = line.trim_end();
            if let Some(v) = l.strip_prefix("event: ") {
                kind = v.to_string();
                if kind == "snapshot" {
                    ready.store(true, Ordering::Relaxed);
                }
            } else if let Some(v) = l.strip_prefix("id: ") {
                if kind == "delta" {
                    seqs.lock().unwrap().push(v.parse().unwrap());
                }
            } else if let Some(v) = l.strip_prefix("data: ") {
                assert_ne!(kind, "resync", "stream asked for a resync: {v}");
            }
        }
    })
}

#[test]
fn postgres_restart_fails_writes_fast_then_reconnects_losing_nothing_and_the_stream_has_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(LiveBackend::Postgres);
    let pg = db.pg.as_ref().unwrap();
    let s = serve_with(&model, &["--db", &db.url]);
    let base = s.base.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let seqs: Arc<Mutex<Vec<i64>>> = Arc::default();
    let (sub_ready, sub_stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let sub = sse_collect(&base, seqs.clone(), sub_ready.clone(), sub_stop.clone());
    let t0 = Instant::now();
    while !sub_ready.load(Ordering::Relaxed) {
        assert!(t0.elapsed() < Duration::from_secs(20), "no stream snapshot");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Writers: every answer recorded with its latency; acknowledged event ids kept.
    let acked: Arc<Mutex<Vec<i64>>> = Arc::default();
    let failures: Arc<Mutex<Vec<(u16, String, Duration)>>> = Arc::default();
    let slowest: Arc<Mutex<Duration>> = Arc::default();
    let mut writers = vec![];
    for w in 0..3 {
        let (base, acked, failures, slowest, stop) = (base.clone(), acked.clone(), failures.clone(), slowest.clone(), stop.clone());
        writers.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = json!({"category": "city_management", "source": "patrol", "title": format!("w{w} #{i}"),
                                  "location": {"lon": 123.41 + (i % 40) as f64 * 0.0005, "lat": 41.80}, "actor": format!("writer-{w}")});
                let t0 = Instant::now();
                let (st, v) = post_json(&format!("{base}/api/events"), &body);
                let took = t0.elapsed();
                {
                    let mut m = slowest.lock().unwrap();
                    *m = (*m).max(took);
                }
                if st == 201 {
                    acked.lock().unwrap().push(v["id"].as_i64().unwrap());
                } else {
                    failures.lock().unwrap().push((st, v.to_string(), took));
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(2));
    let before_outage = acked.lock().unwrap().len();
    assert!(before_outage > 10, "too few writes before the outage: {before_outage}");
    pg_ctl(pg, "stop");
    std::thread::sleep(Duration::from_secs(3));
    let during = failures.lock().unwrap().len();
    pg_ctl(pg, "start");
    // Writes succeed again within seconds, with no restart of the server.
    let n_back = acked.lock().unwrap().len();
    let t0 = Instant::now();
    while acked.lock().unwrap().len() < n_back + 20 {
        assert!(t0.elapsed() < Duration::from_secs(30), "writes did not succeed again after PostgreSQL came back: {:?}", failures.lock().unwrap().last());
        std::thread::sleep(Duration::from_millis(100));
    }
    let reconnected_in = t0.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let (acked, failures) = (acked.lock().unwrap().clone(), failures.lock().unwrap().clone());
    let slowest = *slowest.lock().unwrap();

    // During the outage writes failed with 503 store_error, quickly, never another status.
    assert!(during > 0, "no write failed while PostgreSQL was down");
    for (st, body, took) in &failures {
        assert_eq!(*st, 503, "a write during the outage: {st} {body}");
        assert!(body.contains("store_error"), "{body}");
        assert!(*took < Duration::from_secs(10), "a failing write hung {took:?}: {body}");
    }
    assert!(slowest < Duration::from_secs(10), "slowest write {slowest:?}");
    assert!(Command::new("kill").args(["-0", &s.child.id().to_string()]).status().unwrap().success(), "the server died");

    // Every acknowledged event is stored.
    let mut stored: HashMap<i64, String> = HashMap::new();
    for offset in (0..).step_by(10_000) {
        let (st, page) = get_json(&format!("{base}/api/events?limit=10000&offset={offset}"));
        assert_eq!(st, 200, "{page}");
        let evs = page["events"].as_array().unwrap();
        stored.extend(evs.iter().map(|e| (e["id"].as_i64().unwrap(), e["state"].as_str().unwrap().to_string())));
        if evs.len() < 10_000 {
            break;
        }
    }
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains_key(id)).collect();
    assert!(lost.is_empty(), "{} acknowledged events lost over the restart: {:?}", lost.len(), &lost[..lost.len().min(10)]);

    // The stream carried every change, gap-free, across the outage: one delta per created event.
    let t0 = Instant::now();
    let want = stored.len();
    while seqs.lock().unwrap().len() < want && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    sub_stop.store(true, Ordering::Relaxed);
    sub.join().unwrap();
    let seqs = seqs.lock().unwrap().clone();
    let gaps: Vec<(i64, i64)> = seqs.windows(2).filter(|w| w[1] != w[0] + 1).map(|w| (w[0], w[1])).collect();
    assert!(gaps.is_empty(), "stream gaps (prev, next): {gaps:?}");
    assert_eq!(seqs.len(), want, "deltas on the stream vs events stored");
    let mt = get_text(&format!("{base}/metrics"));
    eprintln!(
        "PostgreSQL restart: {} writes acknowledged ({before_outage} before the outage), {} refused with 503 (slowest answer {slowest:?}; first: {}), writes back {reconnected_in:?} after PostgreSQL, {} deltas gap-free; head {}",
        acked.len(),
        failures.len(),
        failures[0].1,
        seqs.len(),
        metric(&mt, "citytwin_changes_seq{backend=\"postgres\"}")
    );
}

// ---------------------------------------------------------------- full disk

const NS_ENV: &str = "CITYTWIN_FAULTS_IN_NAMESPACE";

/// Mounts a 2 MiB tmpfs at `dir`: directly as root, else the caller re-runs inside `unshare -rm`.
fn mount_small(dir: &Path) -> Result<(), String> {
    let o = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(dir).output().map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(())
    } else {
        Err(text(&o))
    }
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_under_a_build_is_a_clear_error_and_the_old_model_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let small_fs = tmp.path().join("small-fs");
    std::fs::create_dir(&small_fs).unwrap();
    if let Err(e) = mount_small(&small_fs) {
        // Not root: the same test inside a user + mount namespace, where mounting a tmpfs is
        // allowed; failing both is a failure (this test does not skip).
        assert!(std::env::var_os(NS_ENV).is_none(), "cannot mount a tmpfs even inside a user namespace: {e}");
        let exe = std::env::current_exe().unwrap();
        let o = Command::new("unshare")
            .args(["-r", "-m", "--propagation", "private"])
            .arg(exe)
            .args(["--exact", "full_disk_under_a_build_is_a_clear_error_and_the_old_model_stays", "--nocapture"])
            .env(NS_ENV, "1")
            .output()
            .expect("unshare (util-linux)");
        assert!(o.status.success(), "cannot mount a tmpfs as root ({e}) and the user-namespace run failed:\n{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("1 passed"), "{}", text(&o));
        return;
    }
    let _umount = Unmount(small_fs.clone());
    let (small, big) = (tmp.path().join("small.geojson"), tmp.path().join("big.geojson"));
    buildings(&small, 3);
    buildings(&big, 20_000);
    let out = small_fs.join("model");
    let first = build(&out, &["--name", "city", "--source", small.to_str().unwrap()]);
    let first_dir = link_target(&out);

    let o = twin(&["build", "--name", "city", "--source", big.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(!o.status.success(), "a build into a full 2 MiB filesystem succeeded?\n{err}");
    assert_eq!(o.status.code(), Some(1), "exit status (a panic is 101, a signal none): {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("No space left on device"), "the error says why: {err}");
    assert!(err.contains(small_fs.to_str().unwrap()), "the error names the path: {err}");
    // The old model is still the complete, current one; no staging directory is left behind.
    assert_eq!(link_target(&out), first_dir);
    assert_eq!(manifest(&out)["build_id"], first["build_id"]);
    assert!(staging_dirs(&out).is_empty(), "staging left behind: {:?}", staging_dirs(&out));
    let s = serve(&out);
    let (st, id, _) = fetch(&format!("{}/api/model", s.base));
    assert_eq!((st, id.as_str()), (200, first["build_id"].as_str().unwrap()));
    drop(s);
    let first_line = err.lines().find(|l| l.contains("No space")).unwrap_or("");
    eprintln!("full disk: {first_line}");
}
