//! Shared helpers of the end-to-end tests: locating ../shared/data, running the `twin-server`
//! binary, starting a server on a free port.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use std::time::{Duration, Instant};

/// `../shared/data` next to the checkout (overridable with CITYTWIN_SHARED_DATA).
pub fn shared_data() -> PathBuf {
    if let Ok(p) = std::env::var("CITYTWIN_SHARED_DATA") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    assert!(p.is_dir(), "shared test data not found at {} (set CITYTWIN_SHARED_DATA)", p.display());
    p.canonicalize().unwrap()
}

pub fn data(rel: &str) -> String {
    let p = shared_data().join(rel);
    assert!(p.exists(), "missing test data {}", p.display());
    p.to_string_lossy().into_owned()
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_twin-server")
}

/// Runs `twin-server` with arguments, returning its output.
pub fn twin(args: &[&str]) -> Output {
    Command::new(bin()).args(args).env("RUST_LOG", "warn").output().expect("run twin-server")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Builds a model and returns the parsed manifest; panics with stderr on failure.
pub fn build(out: &Path, sources: &[&str]) -> serde_json::Value {
    let mut args = vec!["build"];
    args.extend_from_slice(sources);
    let out_s = out.to_string_lossy().into_owned();
    args.extend_from_slice(&["--out", &out_s]);
    let o = twin(&args);
    assert!(o.status.success(), "build failed: {}", stderr(&o));
    manifest(out)
}

pub fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest.json")).expect("manifest JSON")
}

/// Feature count of a layer by GDAL's own `ogrinfo` (an independent count).
pub fn ogr_count(path: &str, layer: Option<&str>) -> u64 {
    let mut cmd = Command::new("ogrinfo");
    cmd.args(["-ro", "-so", "-al"]).arg(path);
    if let Some(l) = layer {
        cmd.arg(l);
    }
    let o = cmd.output().expect("ogrinfo (gdal-bin) must be installed");
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines()
        .filter_map(|l| l.strip_prefix("Feature Count: "))
        .map(|n| n.trim().parse::<u64>().unwrap())
        .sum()
}

/// A running `twin-server serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn serve(model: &Path) -> Server {
    serve_with(model, &[])
}

// ---------------------------------------------------------------- access control (issue 8)

/// The bootstrap admin key every test server accepts (`serve --admin-token-file`); the helpers
/// below ([`get_json`], [`post_json`], [`post_raw`], [`get_text`]) send it.
pub const TEST_ADMIN_TOKEN: &str = "ctk_test0admin0key0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A file holding [`TEST_ADMIN_TOKEN`] (one per test process).
pub fn admin_token_file() -> PathBuf {
    let p = std::env::temp_dir().join(format!("citytwin-test-admin-{}.token", std::process::id()));
    if !p.exists() {
        let tmp = p.with_extension(format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), ""));
        std::fs::write(&tmp, format!("{TEST_ADMIN_TOKEN}\n")).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }
    p
}

/// The access-control arguments of a test server: the admin key file, no rate or stream limits
/// (load tests must not meet them) unless `args` sets them, and `--anonymous-read` when asked.
pub fn auth_args(args: &[&str], anonymous_read: bool) -> Vec<String> {
    let mut out = vec![];
    let has = |f: &str| args.contains(&f);
    if !has("--admin-token-file") {
        out.extend(["--admin-token-file".to_string(), admin_token_file().to_string_lossy().into_owned()]);
    }
    for (flag, off) in [("--rate-ip", "0"), ("--rate-token", "0"), ("--max-streams", "0")] {
        if !has(flag) {
            out.extend([flag.to_string(), off.to_string()]);
        }
    }
    if anonymous_read && !has("--anonymous-read") {
        out.push("--anonymous-read".into());
    }
    out
}

/// `serve --model MODEL ARGS…` on a free port with `--anonymous-read` (reads need no key; the
/// helpers send [`TEST_ADMIN_TOKEN`] for writes); waits for /healthz.
pub fn serve_with(model: &Path, args: &[&str]) -> Server {
    serve_auth(model, args, true)
}

/// Like [`serve_with`], without `--anonymous-read` unless `anonymous_read`.
pub fn serve_auth(model: &Path, args: &[&str], anonymous_read: bool) -> Server {
    let port = free_port();
    let child = Command::new(bin())
        .args(["serve", "--model"])
        .arg(model)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(args)
        .args(auth_args(args, anonymous_read))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn server");
    let base = format!("http://127.0.0.1:{port}");
    let s = Server { child, base };
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

/// GET returning (status, JSON body); sends [`TEST_ADMIN_TOKEN`].
pub fn get_json(url: &str) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent.get(url).header("authorization", format!("Bearer {TEST_ADMIN_TOKEN}")).call().expect("request");
    let status = r.status().as_u16();
    let body: serde_json::Value = r.body_mut().read_json().unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// `HAUTEUR` by BD TOPO `ID`, read straight from the Lyon GeoJSON (independently of the ingest).
pub fn lyon_hauteur(path: &std::path::Path) -> std::collections::HashMap<String, f64> {
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    raw["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["properties"]["ID"].as_str().unwrap().to_string(), f["properties"]["HAUTEUR"].as_f64().unwrap()))
        .collect()
}

// ---------------------------------------------------------------- PostgreSQL

pub const PG_INSTALL_HINT: &str = "PostgreSQL 15 server + PostGIS 3 are needed for this test: run scripts/install-deps.sh \
     (Debian/Ubuntu: apt-get install -y postgresql-15 postgresql-15-postgis-3), or set PG_BINDIR to the directory with initdb/pg_ctl";

/// Directory holding initdb/pg_ctl/createdb/psql: $PG_BINDIR, else /usr/lib/postgresql/15/bin.
pub fn pg_bindir() -> PathBuf {
    let dir = std::env::var_os("PG_BINDIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    for tool in ["initdb", "pg_ctl", "createdb", "psql"] {
        assert!(dir.join(tool).is_file(), "{} not found. {PG_INSTALL_HINT}", dir.join(tool).display());
    }
    dir
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A throw-away PostgreSQL cluster listening only on a unix socket in its own temp dir; stopped
/// (`pg_ctl -m immediate stop`) and deleted on drop, whatever happens.
pub struct PgServer {
    pub bindir: PathBuf,
    pub as_postgres: bool,
    /// Socket directory (the temp dir itself); the cluster is in `data/` below it.
    pub sock: PathBuf,
    pub port: u16,
    started: bool,
    // Dropped after `drop()` has stopped the server.
    _tmp: tempfile::TempDir,
}

impl PgServer {
    /// A PostgreSQL tool, run as `postgres` when we are root.
    pub fn cmd(&self, tool: &str) -> Command {
        let exe = self.bindir.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    pub fn run(&self, tool: &str, args: &[&str]) -> Output {
        let o = self.cmd(tool).args(args).output().unwrap_or_else(|e| panic!("cannot run {tool}: {e}. {PG_INSTALL_HINT}"));
        assert!(o.status.success(), "{tool} {args:?} failed: {}", text(&o));
        o
    }

    /// A cluster with database `citytwin` and the PostGIS extension.
    pub fn start() -> PgServer {
        Self::start_with(true)
    }

    /// A cluster with database `citytwin`; PostGIS only when asked.
    pub fn start_with(postgis: bool) -> PgServer {
        let bindir = pg_bindir();
        let as_postgres = is_root();
        let tmp = tempfile::Builder::new().prefix("citytwin-pg").tempdir().unwrap();
        if as_postgres {
            let o = Command::new("chown").args(["postgres:"]).arg(tmp.path()).output().expect("chown");
            assert!(o.status.success(), "chown postgres {}: {} (no `postgres` system user? {PG_INSTALL_HINT})", tmp.path().display(), text(&o));
        }
        let mut s = PgServer { bindir, as_postgres, sock: tmp.path().to_path_buf(), port: free_port(), started: false, _tmp: tmp };
        let data = s.sock.join("data");
        let (data_s, sock_s, log_s) = (data.to_string_lossy().into_owned(), s.sock.to_string_lossy().into_owned(), s.sock.join("log").to_string_lossy().into_owned());
        s.run("initdb", &["-D", &data_s, "-U", "postgres", "--auth=trust", "--no-sync"]);
        // -l: the server must not inherit our stdout/stderr pipes (output() would wait for it).
        let opts = format!("-p {} -k {} -c listen_addresses='' -c fsync=off", s.port, sock_s);
        s.started = true; // from here on, drop() stops it (a failed start is harmless to stop)
        let o = s.cmd("pg_ctl").args(["-D", &data_s, "-l", &log_s, "-o", &opts, "-w", "-t", "60", "start"]).output().expect("pg_ctl");
        assert!(o.status.success(), "pg_ctl start failed: {}\nserver log:\n{}", text(&o), std::fs::read_to_string(&log_s).unwrap_or_default());
        let port = s.port.to_string();
        s.run("createdb", &["-h", &sock_s, "-p", &port, "-U", "postgres", "citytwin"]);
        if !postgis {
            return s;
        }
        let o = s.cmd("psql").args(["-h", &sock_s, "-p", &port, "-U", "postgres", "-d", "citytwin", "-v", "ON_ERROR_STOP=1", "-c", "CREATE EXTENSION postgis"]).output().unwrap();
        assert!(o.status.success(), "CREATE EXTENSION postgis failed (PostGIS not installed?): {}. {PG_INSTALL_HINT}", text(&o));
        s
    }

    /// `twin-server serve --db` value (libpq key=value form over the unix socket).
    pub fn url(&self) -> String {
        format!("host={} port={} user=postgres dbname=citytwin", self.sock.display(), self.port)
    }

    /// Stops the server (fast shutdown) and starts it again on the same data and port.
    pub fn restart(&self) {
        let data = self.sock.join("data");
        let (data_s, sock_s, log_s) = (data.to_string_lossy().into_owned(), self.sock.to_string_lossy().into_owned(), self.sock.join("log").to_string_lossy().into_owned());
        self.run("pg_ctl", &["-D", &data_s, "-m", "fast", "-w", "stop"]);
        let opts = format!("-p {} -k {} -c listen_addresses='' -c fsync=off", self.port, sock_s);
        self.run("pg_ctl", &["-D", &data_s, "-l", &log_s, "-o", &opts, "-w", "-t", "60", "start"]);
    }

    /// GDAL DSN (without the `PG:` prefix) with a password, which trust auth ignores.
    pub fn dsn(&self) -> String {
        format!("host={} port={} user=postgres password=secret dbname=citytwin", self.sock.display(), self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.started {
            let data = self.sock.join("data");
            let _ = self.cmd("pg_ctl").arg("-D").arg(&data).args(["-m", "immediate", "-w", "stop"]).output();
        }
    }
}


// ---------------------------------------------------------------- live operations

/// A two-district test city: 西区 (123.40–123.43 E) and 东区 (123.43–123.46 E), 41.78–41.82 N,
/// each split at 41.8075 N into two streets (街道/乡镇, model index order): 0 西南街道 910001001,
/// 1 西北街道 910001002, 2 东南街道 910002001, 3 东北镇 (no code; parent by containment);
/// one police station (2 police units: ids 1, 2), one fire station (fire 3, 4), one hospital
/// (ambulance 5) and one town hall (city management 6, gas emergency 7) — unit ids in POI order.
pub const LIVE_CITY: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"boundary":"administrative","adcode":910001,"name":"西区","name:en":"West"},"geometry":{"type":"Polygon","coordinates":[[[123.40,41.78],[123.43,41.78],[123.43,41.82],[123.40,41.82],[123.40,41.78]]]}},
{"type":"Feature","properties":{"boundary":"administrative","adcode":910002,"name":"东区","name:en":"East"},"geometry":{"type":"Polygon","coordinates":[[[123.43,41.78],[123.46,41.78],[123.46,41.82],[123.43,41.82],[123.43,41.78]]]}},
{"type":"Feature","properties":{"boundary":"administrative","admin_level":"8","code":"910001001","name":"西南街道"},"geometry":{"type":"Polygon","coordinates":[[[123.40,41.78],[123.43,41.78],[123.43,41.8075],[123.40,41.8075],[123.40,41.78]]]}},
{"type":"Feature","properties":{"boundary":"administrative","admin_level":"8","code":"910001002","name":"西北街道"},"geometry":{"type":"Polygon","coordinates":[[[123.40,41.8075],[123.43,41.8075],[123.43,41.82],[123.40,41.82],[123.40,41.8075]]]}},
{"type":"Feature","properties":{"level":"street","code":"910002001","name":"东南街道"},"geometry":{"type":"Polygon","coordinates":[[[123.43,41.78],[123.46,41.78],[123.46,41.8075],[123.43,41.8075],[123.43,41.78]]]}},
{"type":"Feature","properties":{"level":"town","name":"东北镇"},"geometry":{"type":"Polygon","coordinates":[[[123.43,41.8075],[123.46,41.8075],[123.46,41.82],[123.43,41.82],[123.43,41.8075]]]}},
{"type":"Feature","properties":{"amenity":"police","name":"西区派出所"},"geometry":{"type":"Point","coordinates":[123.41,41.80]}},
{"type":"Feature","properties":{"amenity":"fire_station","name":"东区消防站"},"geometry":{"type":"Point","coordinates":[123.45,41.80]}},
{"type":"Feature","properties":{"amenity":"hospital","name":"中心医院"},"geometry":{"type":"Point","coordinates":[123.43,41.81]}},
{"type":"Feature","properties":{"amenity":"townhall","name":"区政府"},"geometry":{"type":"Point","coordinates":[123.42,41.79]}},
{"type":"Feature","properties":{"building":"yes","height":10},"geometry":{"type":"Polygon","coordinates":[[[123.420,41.800],[123.421,41.800],[123.421,41.801],[123.420,41.801],[123.420,41.800]]]}}
]}"#;

/// Builds [`LIVE_CITY`] into `dir/city` (no tiles) and returns the model path.
pub fn live_model(dir: &Path) -> PathBuf {
    let src = dir.join("city.geojson");
    std::fs::write(&src, LIVE_CITY).unwrap();
    let out = dir.join("city");
    let o = twin(&["build", "--source", &src.to_string_lossy(), "--out", &out.to_string_lossy(), "--no-tiles", "--no-3dtiles"]);
    assert!(o.status.success(), "build failed: {}", stderr(&o));
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LiveBackend {
    Sqlite,
    Postgres,
}

/// A fresh live store: a SQLite file in a temp dir or a throw-away PostgreSQL cluster.
pub struct LiveDb {
    pub url: String,
    pub pg: Option<PgServer>,
    pub dir: tempfile::TempDir,
}

impl LiveDb {
    pub fn new(b: LiveBackend) -> LiveDb {
        let dir = tempfile::tempdir().unwrap();
        match b {
            LiveBackend::Sqlite => LiveDb { url: format!("sqlite:{}", dir.path().join("live.sqlite").display()), pg: None, dir },
            LiveBackend::Postgres => {
                let pg = PgServer::start_with(false);
                LiveDb { url: pg.url(), pg: Some(pg), dir }
            }
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(60))).build().into()
}

/// POST a JSON body: (status, JSON answer).
pub fn post_json(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    post_raw(url, serde_json::to_vec(body).unwrap())
}

/// POST raw bytes as application/json with [`TEST_ADMIN_TOKEN`]: (status, JSON answer or Null).
pub fn post_raw(url: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let (status, _, v) = request("POST", url, Some(TEST_ADMIN_TOKEN), Some(body));
    (status, v)
}

/// GET a text body (e.g. /metrics) with [`TEST_ADMIN_TOKEN`].
pub fn get_text(url: &str) -> String {
    agent().get(url).header("authorization", format!("Bearer {TEST_ADMIN_TOKEN}")).call().expect("request").body_mut().read_to_string().unwrap()
}

/// Any request with an optional key and JSON body: (status, headers, JSON answer or Null).
pub fn request(method: &str, url: &str, token: Option<&str>, body: Option<Vec<u8>>) -> (u16, Vec<(String, String)>, serde_json::Value) {
    request_typed(method, url, token, body.map(|b| ("application/json", b)))
}

/// Like [`request`] with a body of the given content type (`application/toml`, `text/plain` …).
pub fn request_typed(method: &str, url: &str, token: Option<&str>, body: Option<(&str, Vec<u8>)>) -> (u16, Vec<(String, String)>, serde_json::Value) {
    let m: ureq::http::Method = method.parse().expect("method");
    let mut b = ureq::http::Request::builder().method(m).uri(url);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some((ct, body)) => {
            b = b.header("content-type", ct);
            Some(body)
        }
        None => None,
    };
    let mut r = match body {
        Some(body) => agent().run(b.body(body).expect("request")),
        None => agent().run(b.body(()).expect("request")),
    }
    .expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let v = r.body_mut().read_json().unwrap_or(serde_json::Value::Null);
    (status, headers, v)
}

/// A Prometheus sample's value (`name{labels}` exactly as printed), 0 if absent.
pub fn metric(text: &str, key: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')).map(|v| v.trim().parse().unwrap())).unwrap_or(0.0)
}

/// `#[test]`s `NAME::sqlite` and `NAME::postgres` running `fn NAME(LiveBackend)` once per store
/// backend (test files declare `#[macro_use] mod common;`).
#[allow(unused_macros)]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::LiveBackend::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$name(super::LiveBackend::Postgres)
            }
        }
    };
}

/// A SensorThings Thing at (lon, lat) with one Datastream of `sensor_type` (through
/// [`post_json`]); returns the datastream id.
pub fn sta_datastream(base: &str, sensor_type: &str, lon: f64, lat: f64) -> i64 {
    let (s, thing) = post_json(
        &format!("{base}/api/sta/v1.1/Things"),
        &serde_json::json!({"name": format!("{sensor_type} station"), "description": "test", "Locations": [{"name": "here", "description": "", "encodingType": "application/geo+json", "location": {"type": "Point", "coordinates": [lon, lat]}}]}),
    );
    assert_eq!(s, 201, "{thing}");
    let (s, ds) = post_json(
        &format!("{base}/api/sta/v1.1/Datastreams"),
        &serde_json::json!({"name": format!("{sensor_type} 1"), "description": "test", "properties": {"sensorType": sensor_type},
                "Thing": {"@iot.id": thing["@iot.id"]},
                "Sensor": {"name": "s", "description": "", "encodingType": "text/html", "metadata": "https://example.org/s"},
                "ObservedProperty": {"name": sensor_type, "definition": format!("https://example.org/{sensor_type}"), "description": ""}}),
    );
    assert_eq!(s, 201, "{ds}");
    ds["@iot.id"].as_i64().unwrap()
}
