//! IoT sensing end to end through the real binary: the SensorThings API subset (entities,
//! navigation, `$filter`/`$orderby`/`$top`/`$skip`/`$count` against hand-computed sets),
//! thresholds → events (one per episode, hysteresis, state kept across a restart) over HTTP and
//! over MQTT from a real mosquitto broker (shared subscription, malformed messages, broker
//! restart), and bad input refused with clear errors and counted in /metrics. Store-dependent
//! tests run on SQLite and on a throw-away PostgreSQL 15.
//!
//! Needs `mosquitto` + `mosquitto-clients` and PostgreSQL 15 (scripts/install-deps.sh).

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- servers

fn model() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("city");
    let o = twin(&["build", "--out", m.to_str().unwrap(), "--no-tiles", "--no-3dtiles"]);
    assert!(o.status.success(), "build: {}", stderr(&o));
    (tmp, m)
}

struct Srv {
    child: Child,
    base: String,
}
impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_with(model: &Path, extra: &[&str]) -> Srv {
    let port = free_port();
    let child = Command::new(bin())
        .args(["serve", "--model"])
        .arg(model)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(if extra.contains(&"--simulate") { &[][..] } else { &["--simulate", "off"][..] })
        .args(extra)
        .args(auth_args(extra, true))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn server");
    let s = Srv { child, base: format!("http://127.0.0.1:{port}") };
    let t0 = Instant::now();
    loop {
        if let Ok(r) = ureq::get(&format!("{}/healthz", s.base)).call() {
            if r.status() == 200 {
                return s;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn post(url: &str, body: &str) -> (u16, Value) {
    let mut r = agent().post(url).header("content-type", "application/json").header("authorization", format!("Bearer {TEST_ADMIN_TOKEN}")).send(body).expect("request");
    let s = r.status().as_u16();
    (s, r.body_mut().read_json().unwrap_or(Value::Null))
}

/// POST whose Content-Length announces `len` bytes; sends only the start and reads the answer
/// (a client streaming the whole oversized body would see the connection closed under it).
fn post_declared_length(base: &str, path: &str, len: usize) -> (u16, String) {
    use std::io::Read;
    let addr = base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TEST_ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n[{{\"datastream\": 1").unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, out)
}

fn metrics(base: &str) -> String {
    agent().get(&format!("{base}/metrics")).header("authorization", format!("Bearer {TEST_ADMIN_TOKEN}")).call().unwrap().body_mut().read_to_string().unwrap()
}

/// Value of one metric line (exact name with labels).
fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).map(|v| v.trim().parse::<f64>().unwrap())).unwrap_or(0.0)
}

// A throw-away PostgreSQL (unix socket, trust auth), stopped on drop.
const PG_HINT: &str = "PostgreSQL 15 is needed: run scripts/install-deps.sh (apt-get install -y postgresql-15), or set PG_BINDIR";
struct Pg {
    bindir: PathBuf,
    root: bool,
    sock: PathBuf,
    port: u16,
    _tmp: tempfile::TempDir,
}
impl Pg {
    fn cmd(&self, tool: &str) -> Command {
        let exe = self.bindir.join(tool);
        if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let o = self.cmd(tool).args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}. {PG_HINT}"));
        assert!(o.status.success(), "{tool} {args:?}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        o
    }
    fn start() -> Pg {
        let bindir = std::env::var_os("PG_BINDIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
        assert!(bindir.join("initdb").is_file(), "{PG_HINT}");
        let root = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false);
        let tmp = tempfile::Builder::new().prefix("citytwin-pg").tempdir().unwrap();
        if root {
            assert!(Command::new("chown").arg("postgres:").arg(tmp.path()).status().unwrap().success());
        }
        let pg = Pg { bindir, root, sock: tmp.path().to_path_buf(), port: free_port(), _tmp: tmp };
        let data = pg.sock.join("data").to_string_lossy().into_owned();
        let sock = pg.sock.to_string_lossy().into_owned();
        let log = pg.sock.join("log").to_string_lossy().into_owned();
        pg.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync"]);
        let opts = format!("-p {} -k {sock} -c listen_addresses='' -c fsync=off", pg.port);
        pg.run("pg_ctl", &["-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "60", "start"]);
        pg.run("createdb", &["-h", &sock, "-p", &pg.port.to_string(), "-U", "postgres", "citytwin"]);
        pg
    }
    fn url(&self) -> String {
        format!("host={} port={} user=postgres dbname=citytwin", self.sock.display(), self.port)
    }
}
impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self.cmd("pg_ctl").arg("-D").arg(self.sock.join("data")).args(["-m", "immediate", "-w", "stop"]).output();
    }
}

/// Runs `f` with the `--db` argument of each backend: SQLite in the model's temp dir, then PostgreSQL.
fn both_backends(f: impl Fn(&Path, &str)) {
    let (_t, m) = model();
    let sqlite = format!("sqlite:{}", m.with_file_name("live.sqlite").display());
    f(&m, &sqlite);
    let pg = Pg::start();
    let (_t2, m2) = model();
    f(&m2, &pg.url());
}

// A throw-away mosquitto on a free port.
struct Broker {
    child: Child,
    port: u16,
    conf: PathBuf,
    _tmp: tempfile::TempDir,
}
impl Broker {
    fn start() -> Broker {
        let tmp = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = tmp.path().join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")).unwrap();
        let child = spawn_broker(&conf);
        let b = Broker { child, port, conf, _tmp: tmp };
        b.wait_up();
        b
    }
    fn wait_up(&self) {
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(1500));
        self.child = spawn_broker(&self.conf);
        self.wait_up();
    }
    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
    /// Publishes each line as one message (QoS 1).
    fn publish_lines(&self, topic: &str, lines: &[String]) {
        let mut c = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1", "-t", topic, "-l"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("mosquitto_pub (apt-get install mosquitto-clients)");
        let mut stdin = c.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
        drop(stdin);
        assert!(c.wait().unwrap().success(), "mosquitto_pub failed");
    }
}
impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
fn spawn_broker(conf: &Path) -> Child {
    Command::new("mosquitto").arg("-c").arg(conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("mosquitto (apt-get install mosquitto)")
}

// ---------------------------------------------------------------- helpers

const T0: &str = "2026-11-22T00:00:00Z";
fn t(min: i64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339(T0).unwrap();
    (base + chrono::Duration::minutes(min)).with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Creates a Thing with a Location at (lon, lat) and one Datastream; returns the datastream id.
fn datastream(base: &str, sensor_type: &str, lon: f64, lat: f64, thresholds: Option<Value>) -> i64 {
    let mut props = json!({"sensorType": sensor_type});
    if let Some(th) = thresholds {
        props["thresholds"] = th;
    }
    let (s, thing) = post(
        &format!("{base}/api/sta/v1.1/Things"),
        &json!({"name": format!("{sensor_type} station"), "description": "test", "Locations": [{"name": "here", "description": "", "encodingType": "application/geo+json", "location": {"type": "Point", "coordinates": [lon, lat]}}]}).to_string(),
    );
    assert_eq!(s, 201, "{thing}");
    let (s, ds) = post(
        &format!("{base}/api/sta/v1.1/Datastreams"),
        &json!({"name": format!("{sensor_type} 1"), "description": "test", "properties": props,
                "Thing": {"@iot.id": thing["@iot.id"]},
                "Sensor": {"name": "s", "description": "", "encodingType": "text/html", "metadata": "https://example.org/s"},
                "ObservedProperty": {"name": sensor_type, "definition": format!("https://example.org/{sensor_type}"), "description": ""}})
        .to_string(),
    );
    assert_eq!(s, 201, "{ds}");
    ds["@iot.id"].as_i64().unwrap()
}

fn results(v: &Value) -> Vec<f64> {
    v["value"].as_array().unwrap().iter().map(|o| o["result"].as_f64().unwrap()).collect()
}

fn sensor_events(base: &str, ds: i64) -> Vec<Value> {
    let (s, v) = get_json(&format!("{base}/api/events?limit=10000"));
    assert_eq!(s, 200, "{v}");
    let prefix = format!("datastream:{ds}:");
    let mut e: Vec<Value> = v["events"].as_array().unwrap().iter().filter(|e| e["external_ref"].as_str().is_some_and(|r| r.starts_with(&prefix))).cloned().collect();
    e.sort_by_key(|e| e["id"].as_i64());
    e
}

fn simple(ds: i64, vals: &[(i64, f64)]) -> String {
    Value::Array(vals.iter().map(|(m, v)| json!({"datastream": ds, "phenomenonTime": t(*m), "result": v})).collect()).to_string()
}

// ---------------------------------------------------------------- tests

#[test]
fn sta_entities_navigation_and_query_options_match_hand_computed_sets() {
    both_backends(|m, db| {
        let s = serve_with(m, &["--db", db]);
        let b = &s.base;
        let ds = datastream(b, "noise", 123.43, 41.80, None);
        // Fixed observations, every 10 minutes from T0.
        let vals = [55.0, 62.0, 48.0, 70.0, 62.0, 35.0, 80.0, 91.0, 44.0, 66.0];
        let rows: Vec<Value> = vals.iter().enumerate().map(|(i, v)| json!([t(i as i64 * 10), v])).collect();
        let body = json!([{"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"], "dataArray@iot.count": rows.len(), "dataArray": rows}]);
        let (st, links) = post(&format!("{b}/api/sta/v1.1/CreateObservations"), &body.to_string());
        assert_eq!(st, 201, "{links}");
        let links = links.as_array().unwrap();
        assert_eq!(links.len(), 10);
        assert!(links.iter().all(|l| l.as_str().unwrap().contains("/api/sta/v1.1/Observations(")), "{links:?}");

        let q = |qs: &str| {
            let (st, v) = get_json(&format!("{b}/api/sta/v1.1/Datastreams({ds})/Observations?{qs}"));
            assert_eq!(st, 200, "{qs}: {v}");
            v
        };
        let enc = |s: &str| s.replace('+', "%2B").replace(' ', "%20").replace(':', "%3A").replace(',', "%2C");
        // result > 60 in the first hour (i = 0..5): 62 (1), 70 (3), 62 (4).
        let v = q(&format!("$filter={}&$orderby={}", enc("result gt 60 and phenomenonTime lt 2026-11-22T01:00:00Z"), enc("result desc,phenomenonTime asc")));
        assert_eq!(results(&v), vec![70.0, 62.0, 62.0]);
        assert_eq!(v["value"][1]["phenomenonTime"], json!(t(10)));
        assert_eq!(v["value"][2]["phenomenonTime"], json!(t(40)));
        // Outside [50, 70] or the first one: i = 0, 2, 5, 6, 7, 8; newest first, skip 1, top 2.
        let f = enc("not (result ge 50 and result le 70) or phenomenonTime eq 2026-11-22T00:00:00Z");
        let v = q(&format!("$filter={f}&$orderby={}&$top=2&$skip=1&$count=true", enc("phenomenonTime desc")));
        assert_eq!(v["@iot.count"], json!(6));
        assert_eq!(results(&v), vec![91.0, 80.0]);
        let next = v["@iot.nextLink"].as_str().expect("nextLink").to_string();
        assert!(next.contains("%24skip=3") || next.contains("$skip=3"), "{next}");
        let (_, v2) = get_json(&next);
        assert_eq!(results(&v2), vec![35.0, 48.0]);
        let (_, v3) = get_json(v2["@iot.nextLink"].as_str().expect("second nextLink"));
        assert_eq!(results(&v3), vec![55.0]);
        assert!(v3.get("@iot.nextLink").is_none(), "{v3}");
        // Parentheses change the grouping: (≤ 48 or ≥ 80) and in the second hour (i = 6..9): 80, 91, 44.
        let v = q(&format!("$filter={}&$orderby=result", enc("(result le 48 or result ge 80) and phenomenonTime ge '2026-11-22T09:00:00+08:00'")));
        assert_eq!(results(&v), vec![44.0, 80.0, 91.0]);
        // ne, eq; literal first.
        let v = q(&format!("$filter={}&$count=true&$top=0", enc("result ne 62")));
        assert_eq!(v["@iot.count"], json!(8));
        assert_eq!(v["value"], json!([]));
        assert!(v.get("@iot.nextLink").is_none(), "$top=0 has no next page: {v}");
        let v = q(&format!("$filter={}", enc("62 eq result")));
        assert_eq!(results(&v), vec![62.0, 62.0]);
        // Malformed $filter: 400 naming the position.
        let (st, e) = get_json(&format!("{b}/api/sta/v1.1/Observations?$filter={}", enc("result gt 5 and")));
        assert_eq!(st, 400, "{e}");
        assert!(e["error"].as_str().unwrap().contains("position 15"), "{e}");
        let (st, e) = get_json(&format!("{b}/api/sta/v1.1/Observations?$filter={}", enc("result gt '5")));
        assert_eq!(st, 400);
        assert!(e["error"].as_str().unwrap().contains("position 10"), "{e}");
        // Navigation and entity shapes.
        let (_, d) = get_json(&format!("{b}/api/sta/v1.1/Datastreams({ds})"));
        assert_eq!(d["@iot.id"], json!(ds));
        assert_eq!(d["unitOfMeasurement"]["symbol"], json!("dB(A)"));
        assert!(d["Observations@iot.navigationLink"].as_str().unwrap().ends_with(&format!("/Datastreams({ds})/Observations")));
        let (_, th) = get_json(&format!("{b}/api/sta/v1.1/Datastreams({ds})/Thing"));
        assert_eq!(th["name"], json!("noise station"));
        let (_, dss) = get_json(&format!("{b}/api/sta/v1.1/Things({})/Datastreams?$count=true", th["@iot.id"]));
        assert_eq!(dss["@iot.count"], json!(1));
        let (_, locs) = get_json(&format!("{b}/api/sta/v1.1/Things({})/Locations", th["@iot.id"]));
        assert_eq!(locs["value"][0]["location"]["coordinates"], json!([123.43, 41.80]));
        let oid = links[3].as_str().unwrap().rsplit('(').next().unwrap().trim_end_matches(')').to_string();
        let (_, o) = get_json(&format!("{b}/api/sta/v1.1/Observations({oid})"));
        assert_eq!((o["result"].as_f64(), o["phenomenonTime"].as_str()), (Some(70.0), Some(t(30).as_str())));
        let (_, od) = get_json(&format!("{b}/api/sta/v1.1/Observations({oid})/Datastream"));
        assert_eq!(od["@iot.id"], json!(ds));
        let (st, _) = get_json(&format!("{b}/api/sta/v1.1/Datastreams(999999)/Observations"));
        assert_eq!(st, 404);
        let (st, _) = get_json(&format!("{b}/api/sta/v1.1/Gizmos"));
        assert_eq!(st, 404);
        // Latest value per datastream (the newest phenomenonTime: i = 9, 66).
        let (_, l) = get_json(&format!("{b}/api/sensors/latest?type=noise&bbox=123.4,41.7,123.5,41.9"));
        assert_eq!(l["count"], json!(1), "{l}");
        assert_eq!(l["value"][0]["result"], json!(66.0));
        let (_, l) = get_json(&format!("{b}/api/sensors/latest?bbox=120,30,121,31"));
        assert_eq!(l["count"], json!(0));
    });
}

#[test]
fn thresholds_raise_one_event_per_episode_over_http_and_keep_state_across_a_restart() {
    both_backends(|m, db| {
        let th = json!({"direction": "above", "warning": 10.0, "alarm": 25.0, "hysteresis": 3.0});
        let ds;
        {
            let s = serve_with(m, &["--db", db]);
            let b = &s.base;
            ds = datastream(b, "gas_lel", 123.45, 41.79, Some(th.clone()));
            // Noisy gas signal (%LEL). Hand-computed with warning 10, alarm 25, band 3:
            // 5 n, 11 W (episode 1), 9 W (held ≥ 7), 12 W, 8 W, 6 n | 26 A (episode 2), 24 A (≥ 22),
            // 20 W, 12 W, 8 W, 6.5 n | 11 W (episode 3).
            let sig = [5.0, 11.0, 9.0, 12.0, 8.0, 6.0, 26.0, 24.0, 20.0, 12.0, 8.0, 6.5, 11.0];
            let pts: Vec<(i64, f64)> = sig.iter().enumerate().map(|(i, v)| (i as i64, *v)).collect();
            // Two batches, the second one sent first for the later half is not allowed to matter:
            let (st, r) = post(&format!("{b}/api/sensors/observations"), &simple(ds, &pts[..7]));
            assert_eq!(st, 201, "{r}");
            assert_eq!(r["accepted"], json!(7));
            assert_eq!(r["events"].as_array().unwrap().len(), 2, "{r}");
            let (st, r) = post(&format!("{b}/api/sensors/observations"), &simple(ds, &pts[7..]));
            assert_eq!(st, 201, "{r}");
            let ev = sensor_events(b, ds);
            assert_eq!(ev.len(), 3, "{ev:?}");
            for e in &ev {
                assert_eq!(e["source"], json!("sensor_alarm"));
                assert_eq!(e["category"], json!("gas_leak"));
            }
            assert_eq!(ev.iter().map(|e| e["severity"].as_i64().unwrap()).collect::<Vec<_>>(), vec![2, 3, 2]);
            assert_eq!(ev[1]["reported_at"].as_str().map(|s| s.starts_with("2026-11-22T00:06:00")), Some(true), "{}", ev[1]);
            let (_, l) = get_json(&format!("{b}/api/sensors/latest?type=gas_lel"));
            assert_eq!((l["value"][0]["result"].as_f64(), l["value"][0]["level"].as_i64()), (Some(11.0), Some(1)));
        }
        // Restart on the same store: still in episode 3 (warning), so 12 raises nothing; 5 clears; 15 opens episode 4.
        let s = serve_with(m, &["--db", db]);
        let b = &s.base;
        let (_, l) = get_json(&format!("{b}/api/sensors/latest?type=gas_lel"));
        assert_eq!((l["value"][0]["result"].as_f64(), l["value"][0]["level"].as_i64()), (Some(11.0), Some(1)), "latest after restart: {l}");
        let (_, r) = post(&format!("{b}/api/sensors/observations"), &simple(ds, &[(13, 12.0)]));
        assert_eq!(r["events"], json!([]), "{r}");
        assert_eq!(sensor_events(b, ds).len(), 3);
        let (_, r) = post(&format!("{b}/api/sensors/observations"), &simple(ds, &[(14, 5.0), (15, 15.0)]));
        assert_eq!(r["events"].as_array().unwrap().len(), 1, "{r}");
        let ev = sensor_events(b, ds);
        assert_eq!(ev.len(), 4);
        assert_eq!(ev[3]["external_ref"], json!(format!("datastream:{ds}:episode:4")));
        // A late observation (older than the state) is stored but does not move the thresholds.
        let (_, r) = post(&format!("{b}/api/sensors/observations"), &simple(ds, &[(1, 99.0)]));
        assert_eq!((r["accepted"].as_i64(), r["events"].as_array().map(Vec::len)), (Some(1), Some(0)), "{r}");
    });
}

#[test]
fn pending_period_suppresses_short_spikes() {
    let (_t, m) = model();
    let s = serve_with(&m, &[]);
    let b = &s.base;
    // Water level alarm at 3.0 m, only after 10 minutes above.
    let ds = datastream(b, "water_level", 123.40, 41.81, Some(json!({"alarm": 3.0, "pending_s": 600})));
    // One sample a minute: a 5-minute spike (5..9), back down, then 12 minutes above (15..26).
    let mut pts = vec![];
    for i in 0..30 {
        let v = if (5..10).contains(&i) || (15..27).contains(&i) { 3.4 } else { 2.1 };
        pts.push((i, v));
    }
    let (st, r) = post(&format!("{b}/api/sensors/observations"), &simple(ds, &pts));
    assert_eq!(st, 201, "{r}");
    let ev = sensor_events(b, ds);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["category"], json!("flooding"));
    // Raised when the 10 minutes were complete: the sample at minute 25.
    assert!(ev[0]["reported_at"].as_str().unwrap().starts_with("2026-11-22T00:25:00"), "{}", ev[0]);
}

#[test]
fn bad_input_gets_clear_errors_is_counted_and_loses_nothing_accepted() {
    let (_t, m) = model();
    let s = serve_with(&m, &[]);
    let b = &s.base;
    let ds = datastream(b, "pm25", 123.42, 41.80, Some(json!({"warning": 75.0, "alarm": 150.0})));
    let el = datastream(b, "elevator_status", 123.42, 41.80, Some(json!({"alarm_values": ["trapped", "fault"]})));
    let (st, r) = post(&format!("{b}/api/sensors/observations"), &simple(ds, &[(0, 30.0), (1, 35.0)]));
    assert_eq!((st, r["accepted"].as_i64()), (201, Some(2)));
    // Mixed batch: unknown datastream, out of range, wrong type, missing result; the rest accepted.
    let body = json!([
        {"datastream": ds, "phenomenonTime": t(2), "result": 40.0},
        {"datastream": 987654, "phenomenonTime": t(2), "result": 1.0},
        {"datastream": ds, "phenomenonTime": t(3), "result": -5.0},
        {"datastream": ds, "phenomenonTime": t(3), "result": 1500.0},
        {"datastream": ds, "phenomenonTime": t(3), "result": "high"},
        {"datastream": ds, "phenomenonTime": "yesterday", "result": 3.0},
        {"datastream": el, "phenomenonTime": t(3), "result": "flying"},
        {"datastream": el, "phenomenonTime": t(4), "result": "trapped"},
        {"phenomenonTime": t(3), "result": 3.0}
    ]);
    let (st, r) = post(&format!("{b}/api/sensors/observations"), &body.to_string());
    assert_eq!(st, 201, "{r}");
    assert_eq!((r["accepted"].as_i64(), r["rejected"].as_i64()), (Some(2), Some(7)), "{r}");
    let errs = r["errors"].as_array().unwrap();
    let reasons: Vec<(i64, &str)> = errs.iter().map(|e| (e["index"].as_i64().unwrap(), e["reason"].as_str().unwrap())).collect();
    assert_eq!(
        reasons,
        vec![(1, "unknown_datastream"), (2, "out_of_range"), (3, "out_of_range"), (4, "invalid_observation"), (5, "invalid_observation"), (6, "out_of_range"), (8, "invalid_observation")]
    );
    assert!(errs[2]["message"].as_str().unwrap().contains("1500") && errs[2]["message"].as_str().unwrap().contains("[0, 1000]"), "{}", errs[2]);
    assert!(errs[0]["message"].as_str().unwrap().contains("Datastreams(987654)") || errs[0]["message"].as_str().unwrap().contains("Datastream(987654)"));
    assert_eq!(r["events"].as_array().unwrap().len(), 1, "elevator 'trapped' raises an infrastructure event: {r}");
    // All rejected: 422.
    let (st, r) = post(&format!("{b}/api/sensors/observations"), &simple(ds, &[(5, 2000.0)]));
    assert_eq!((st, r["accepted"].as_i64()), (422, Some(0)), "{r}");
    // Malformed JSON, wrong shape, oversized body, single-observation POST to an unknown datastream.
    let (st, r) = post(&format!("{b}/api/sensors/observations"), "[{\"datastream\": 1,");
    assert_eq!((st, r["reason"].as_str()), (400, Some("malformed_json")), "{r}");
    let (st, r) = post(&format!("{b}/api/sta/v1.1/CreateObservations"), "{\"not\": \"an array\"}");
    assert_eq!(st, 400, "{r}");
    // A body over the limit (8 × --max-body = 8 MiB for ingest): refused from its declared length.
    let (st, r) = post_declared_length(b, "/api/sensors/observations", 9 << 20);
    assert_eq!(st, 413, "{r}");
    assert!(r.contains("body_too_large") || r.contains("length limit"), "{r}");
    let (st, r) = post(&format!("{b}/api/sta/v1.1/Datastreams(424242)/Observations"), &json!({"result": 1.0}).to_string());
    assert_eq!(st, 404, "{r}");
    let (st, r) = post(&format!("{b}/api/sta/v1.1/Datastreams"), &json!({"name": "x", "properties": {"sensorType": "tea"}}).to_string());
    assert_eq!(st, 400, "{r}");
    assert!(r["error"].as_str().unwrap().contains("tea"));
    let (st, r) = post(
        &format!("{b}/api/sta/v1.1/Datastreams"),
        &json!({"name": "x", "properties": {"sensorType": "noise", "thresholds": {"warning": 80, "alarm": 60}}}).to_string(),
    );
    assert_eq!(st, 400, "{r}");
    assert!(r["error"].as_str().unwrap().contains("thresholds.alarm"), "{r}");
    // Counted in /metrics, still serving, earlier data intact.
    let mt = metrics(b);
    assert_eq!(metric(&mt, "citytwin_sensor_rejected_total{transport=\"http\",reason=\"out_of_range\"}"), 4.0, "{mt}");
    assert_eq!(metric(&mt, "citytwin_sensor_rejected_total{transport=\"http\",reason=\"unknown_datastream\"}"), 2.0, "{mt}");
    assert_eq!(metric(&mt, "citytwin_sensor_rejected_total{transport=\"http\",reason=\"invalid_observation\"}"), 3.0, "{mt}");
    assert_eq!(metric(&mt, "citytwin_sensor_observations_total{transport=\"http\"}"), 4.0, "{mt}");
    assert!(metric(&mt, "citytwin_rejected_inputs_total{reason=\"body_too_large\"}") >= 1.0, "{mt}");
    let (_, v) = get_json(&format!("{b}/api/sta/v1.1/Datastreams({ds})/Observations?$count=true&$orderby=phenomenonTime"));
    assert_eq!(v["@iot.count"], json!(3));
    assert_eq!(results(&v), vec![30.0, 35.0, 40.0]);
}

#[test]
fn mqtt_ingest_thresholds_malformed_messages_shared_subscription_and_broker_restart() {
    let mut broker = Broker::start();
    let (_t, m) = model();
    let (_t2, m2) = model();
    let a = serve_with(&m, &["--mqtt", &broker.url()]);
    // The same datastream ids on both replicas (each has its own store): id 1.
    let ds = datastream(&a.base, "water_level", 123.40, 41.81, Some(json!({"warning": 2.5, "alarm": 3.0, "hysteresis": 0.2})));
    let b = serve_with(&m2, &["--mqtt", &broker.url()]);
    assert_eq!(datastream(&b.base, "water_level", 123.40, 41.81, None), ds);
    let wait_connected = |base: &str| {
        let t0 = Instant::now();
        while metric(&metrics(base), "citytwin_mqtt_connected") < 1.0 {
            assert!(t0.elapsed() < Duration::from_secs(30), "{base}: not connected to the broker");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_connected(&a.base);
    wait_connected(&b.base);
    std::thread::sleep(Duration::from_millis(500)); // SUBACK
    let count = |base: &str| get_json(&format!("{base}/api/sta/v1.1/Datastreams({ds})/Observations?$count=true&$top=0")).1["@iot.count"].as_i64().unwrap();
    let wait_total = |n: i64| {
        let t0 = Instant::now();
        loop {
            let (ca, cb) = (count(&a.base), count(&b.base));
            if ca + cb >= n || t0.elapsed() > Duration::from_secs(30) {
                return (ca, cb);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let topic = format!("citytwin/datastreams/{ds}/observations");
    // 200 messages through the shared subscription: each stored exactly once across the replicas.
    let lines: Vec<String> = (0..200).map(|i| json!({"result": 1.0 + (i % 10) as f64 * 0.01, "phenomenonTime": t(i)}).to_string()).collect();
    broker.publish_lines(&topic, &lines);
    let (ca, cb) = wait_total(200);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!((count(&a.base) + count(&b.base)), 200, "a {ca}, b {cb}: shared subscription must not double-ingest");
    assert!(ca > 0 && cb > 0, "both group members got messages: a {ca}, b {cb}");
    drop(b);
    // Threshold crossing over MQTT on replica a (alone in the group now): one array payload.
    let rise = json!([{"result": 2.0, "phenomenonTime": t(300)}, {"result": 3.2, "phenomenonTime": t(301)}, {"result": 2.9, "phenomenonTime": t(302)}, {"result": 3.1, "phenomenonTime": t(303)}]);
    broker.publish_lines(&topic, &[rise.to_string()]);
    let t0 = Instant::now();
    while sensor_events(&a.base, ds).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no event from the MQTT threshold crossing");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ca0 = count(&a.base);
    // Malformed payloads and topics: logged, counted, not fatal.
    broker.publish_lines(&topic, &["{not json".into(), "{\"value\": 3}".into(), "[1, 2]".into()]);
    broker.publish_lines("citytwin/datastreams/abc/observations", &["{\"result\": 1}".into()]);
    broker.publish_lines(&topic, &[json!({"result": 99.0, "phenomenonTime": t(304)}).to_string()]); // out of range (max 60 m)
    let t0 = Instant::now();
    loop {
        let mt = metrics(&a.base);
        if metric(&mt, "citytwin_mqtt_malformed_total") >= 4.0 && metric(&mt, "citytwin_sensor_rejected_total{transport=\"mqtt\",reason=\"out_of_range\"}") >= 1.0 {
            assert_eq!(metric(&mt, "citytwin_mqtt_malformed_total"), 4.0, "{mt}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "malformed messages not counted: {mt}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ev = sensor_events(&a.base, ds);
    assert_eq!(ev.len(), 1, "one episode: {ev:?}");
    assert_eq!((ev[0]["category"].as_str(), ev[0]["severity"].as_i64()), (Some("flooding"), Some(3)));
    assert_eq!(count(&a.base), ca0, "nothing stored from the bad messages");
    // Broker restart: the client reconnects and ingest resumes.
    let connects = metric(&metrics(&a.base), "citytwin_mqtt_connects_total");
    broker.restart();
    let t0 = Instant::now();
    while metric(&metrics(&a.base), "citytwin_mqtt_connects_total") <= connects || metric(&metrics(&a.base), "citytwin_mqtt_connected") < 1.0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "did not reconnect after the broker restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    broker.publish_lines(&topic, &[json!({"result": 1.5, "phenomenonTime": t(400)}).to_string()]);
    let t0 = Instant::now();
    while count(&a.base) < ca0 + 1 {
        assert!(t0.elapsed() < Duration::from_secs(30), "ingest did not resume after the broker restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, l) = get_json(&format!("{}/api/sensors/latest?type=water_level", a.base));
    assert_eq!((l["value"][0]["result"].as_f64(), l["value"][0]["level"].as_i64()), (Some(1.5), Some(0)), "{l}");
}

#[test]
fn simulator_same_seed_gives_the_same_day_on_two_servers() {
    // Two servers, own stores, same seed, 6,000 simulated minutes per real minute.
    let (_t, m) = model();
    let (_t2, m2) = model();
    let a = serve_with(&m, &["--simulate", "on", "--seed", "5", "--speed", "6000"]);
    let b = serve_with(&m2, &["--simulate", "on", "--seed", "5", "--speed", "6000"]);
    // The run starts at local (UTC+8) midnight of today; compare its first 3 simulated hours.
    let now = chrono::Utc::now().timestamp_millis();
    let off = 8 * 3_600_000;
    let origin = (now + off).div_euclid(86_400_000) * 86_400_000 - off;
    let cut = chrono::DateTime::from_timestamp_millis(origin + 180 * 60_000).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let done = |base: &str| {
        let f = format!("phenomenonTime ge {cut}").replace(' ', "%20").replace(':', "%3A");
        get_json(&format!("{base}/api/sta/v1.1/Observations?$filter={f}&$top=1")).1["value"].as_array().is_some_and(|v| !v.is_empty())
    };
    let t0 = Instant::now();
    while !(done(&a.base) && done(&b.base)) {
        assert!(t0.elapsed() < Duration::from_secs(60), "simulators did not reach 3 simulated hours");
        std::thread::sleep(Duration::from_millis(200));
    }
    let f = format!("phenomenonTime lt {cut}").replace(' ', "%20").replace(':', "%3A");
    let obs = |base: &str| -> Vec<(Value, Value, Value)> {
        let mut out = vec![];
        let mut url = format!("{base}/api/sta/v1.1/Observations?$filter={f}&$orderby=phenomenonTime,id&$top=10000&$count=true");
        loop {
            let (s, v) = get_json(&url);
            assert_eq!(s, 200, "{v}");
            for o in v["value"].as_array().unwrap() {
                out.push((o["@iot.id"].clone(), o["phenomenonTime"].clone(), o["result"].clone()));
            }
            match v["@iot.nextLink"].as_str() {
                Some(n) => url = n.to_string(),
                None => break,
            }
        }
        out
    };
    let (oa, ob) = (obs(&a.base), obs(&b.base));
    let (_, types) = get_json(&format!("{}/api/sensors/latest", a.base));
    let n_sensors = types["count"].as_u64().unwrap() as usize;
    assert!(n_sensors >= 20, "{types}");
    assert_eq!(oa.len(), 180 * n_sensors, "one observation per sensor per simulated minute");
    assert_eq!(oa, ob, "same seed, same observations");
    // Sensor-raised and simulated incidents of those hours agree too.
    let events = |base: &str| -> Vec<(Value, Value, Value, Value)> {
        let (_, v) = get_json(&format!("{base}/api/events?limit=10000&to={}", origin + 180 * 60_000));
        let mut e: Vec<_> = v["events"].as_array().unwrap().iter().map(|e| (e["external_ref"].clone(), e["category"].clone(), e["source"].clone(), e["location"].clone())).collect();
        e.sort_by_key(|x| x.0.to_string());
        e
    };
    let (ea, eb) = (events(&a.base), events(&b.base));
    assert_eq!(ea, eb);
    // The closed loop is seeded too: incidents that ended (closed, cancelled, rejected) on both
    // servers went through the same sequence of states (which unit went may differ with timing).
    let ends = |base: &str| -> std::collections::BTreeMap<String, Vec<(String, String)>> {
        sim_events(base)
            .into_iter()
            .filter(|e| ["closed", "cancelled", "rejected"].contains(&e["state"].as_str().unwrap()))
            .map(|e| (e["external_ref"].as_str().unwrap().to_string(), steps(base, e["id"].as_i64().unwrap())))
            .collect()
    };
    let (xa, xb) = (ends(&a.base), ends(&b.base));
    let both: Vec<&String> = xa.keys().filter(|k| xb.contains_key(*k)).collect();
    assert!(!both.is_empty(), "no incident ended on both servers");
    for k in both {
        assert_eq!(xa[k], xb[k], "{k}");
    }
    assert!(ea.iter().any(|e| e.2 == json!("hotline_12345") || e.2 == json!("patrol") || e.2 == json!("video_analytics")), "{ea:?}");
}

/// Log of an event as (kind, to) pairs, escalations left out (they do not move the state).
fn steps(base: &str, id: i64) -> Vec<(String, String)> {
    let (_, log) = get_json(&format!("{base}/api/events/{id}/log"));
    log["entries"].as_array().unwrap().iter().filter(|e| e["kind"] != "escalated").map(|e| (e["kind"].as_str().unwrap().to_string(), e["to"].as_str().unwrap().to_string())).collect()
}

fn sim_events(base: &str) -> Vec<Value> {
    let (_, v) = get_json(&format!("{base}/api/events?limit=10000"));
    v["events"].as_array().unwrap().iter().filter(|e| e["external_ref"].as_str().is_some_and(|r| r.starts_with("sim:"))).cloned().collect()
}

/// The simulator closes the loop on the built-in city: its dispatcher assigns the fastest
/// available unit (recommend + assign, the HTTP API's functions), the unit drives there, its
/// arrival starts 处置, then feedback and evaluation — each closed incident's log is exactly
/// 发现 → 推送 → 处置 → 反馈 → 评估 with one assignment, and its unit is released and drives
/// home (available at its base again). 3,000 simulated minutes per real minute.
#[test]
fn simulator_closes_the_loop() {
    let (_t, m) = model();
    let a = serve_with(&m, &["--simulate", "on", "--seed", "3", "--speed", "3000"]);
    let base = &a.base;
    // Extra crews: one city-management and one gas-emergency crew per district without a
    // government office (the built-in city has one, the municipal government).
    let (_, units) = get_json(&format!("{base}/api/units"));
    let (_, districts) = get_json(&format!("{base}/api/districts"));
    let n_d = districts["features"].as_array().unwrap().len();
    let count = |k: &str| units["units"].as_array().unwrap().iter().filter(|u| u["kind"] == k).count();
    assert!(count("city_management") >= n_d - 1 && count("city_management") <= n_d + 1, "{} city-management crews for {n_d} districts", count("city_management"));
    assert_eq!(count("city_management"), count("gas_emergency"));

    let closed = |base: &str| sim_events(base).into_iter().filter(|e| e["state"] == "closed").collect::<Vec<_>>();
    let t0 = Instant::now();
    while closed(base).len() < 12 {
        assert!(t0.elapsed() < Duration::from_secs(90), "fewer than 12 simulated incidents closed after 90 s: {:?}", sim_events(base).iter().map(|e| e["state"].clone()).collect::<Vec<_>>());
        std::thread::sleep(Duration::from_millis(500));
    }
    let full: Vec<(String, String)> =
        [("created", "reported"), ("assigned", "dispatched"), ("arrived", "handling"), ("transition", "feedback"), ("transition", "closed")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let done = closed(base);
    for e in &done {
        let id = e["id"].as_i64().unwrap();
        assert_eq!(steps(base, id), full, "event {id}: {e}");
        let u = e["units"].as_array().unwrap();
        assert_eq!(u.len(), 1, "one assignment: {e}");
        let (_, unit) = get_json(&format!("{base}/api/units/{}", u[0]));
        assert_ne!(unit["event_id"], e["id"], "released from its closed event: {unit}");
        // The unit's kind answers the category.
        let (_, cats) = get_json(&format!("{base}/api/events/categories"));
        let c = cats["categories"].as_array().unwrap().iter().find(|c| c["id"] == e["category"]).unwrap();
        assert!(c["units"].as_array().unwrap().contains(&unit["kind"]), "{} for {}", unit["kind"], e["category"]);
    }
    // Units drive home and become available at their base.
    let home = |base: &str| {
        done.iter().any(|e| {
            let (_, u) = get_json(&format!("{base}/api/units/{}", e["units"][0]));
            u["status"] == "available" && u["position"] == u["base"] && u["route"].is_null()
        })
    };
    let t1 = Instant::now();
    while !home(base) {
        assert!(t1.elapsed() < Duration::from_secs(30), "no unit of a closed incident back at base");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mtext = get_text(&format!("{base}/metrics"));
    assert!(metric(&mtext, "citytwin_sim_dispatches_total") >= done.len() as f64, "{mtext}");
    assert!(metric(&mtext, "citytwin_unit_arrivals_total") >= done.len() as f64 * 2.0 - 1.0, "{mtext}");
    // Rejected and cancelled incidents carry their reasons.
    for e in sim_events(base).iter().filter(|e| e["state"] == "rejected" || e["state"] == "cancelled") {
        let (_, log) = get_json(&format!("{base}/api/events/{}/log", e["id"]));
        assert!(log["entries"].as_array().unwrap().last().unwrap()["reason"].as_str().is_some_and(|r| !r.is_empty()), "{log}");
    }
}

/// Two replicas with `--simulate` on one PostgreSQL: the simulator lease lets only one drive the
/// simulator — every incident is created once, assigned once, and only one process dispatches.
#[test]
fn simulator_runs_on_one_replica_only() {
    let (_t, m) = model();
    let db = LiveDb::new(LiveBackend::Postgres);
    let args = ["--db", db.url.as_str(), "--simulate", "on", "--seed", "4", "--speed", "3000"];
    let a = serve_with(&m, &args);
    let b = serve_with(&m, &args);
    let t0 = Instant::now();
    while sim_events(&a.base).iter().filter(|e| e["state"] == "closed").count() < 8 {
        assert!(t0.elapsed() < Duration::from_secs(90), "fewer than 8 simulated incidents closed after 90 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    let evs = sim_events(&b.base);
    let refs: std::collections::BTreeSet<&str> = evs.iter().map(|e| e["external_ref"].as_str().unwrap()).collect();
    assert_eq!(refs.len(), evs.len(), "an incident created twice");
    for e in &evs {
        let n = steps(&a.base, e["id"].as_i64().unwrap()).iter().filter(|(k, _)| k == "assigned").count();
        assert!(n <= 1, "event {} assigned {n} times", e["id"]);
    }
    let d = |base: &str| metric(&get_text(&format!("{base}/metrics")), "citytwin_sim_dispatches_total");
    let (da, dbb) = (d(&a.base), d(&b.base));
    assert!((da > 0.0) != (dbb > 0.0), "exactly one replica dispatches: A {da}, B {dbb}");
    // Observations: one per sensor and minute, not two.
    let (_, l) = get_json(&format!("{}/api/sensors/latest", a.base));
    let ds = l["value"][0]["datastream"].as_i64().unwrap();
    let (_, o) = get_json(&format!("{}/api/sta/v1.1/Datastreams({ds})/Observations?$orderby=phenomenonTime&$top=10000", a.base));
    let times: Vec<&str> = o["value"].as_array().unwrap().iter().map(|x| x["phenomenonTime"].as_str().unwrap()).collect();
    let uniq: std::collections::BTreeSet<&&str> = times.iter().collect();
    assert_eq!(uniq.len(), times.len(), "a simulated minute reported twice");
}
