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
    let port = free_port();
    let child = Command::new(bin())
        .args(["serve", "--model"])
        .arg(model)
        .args(["--addr", &format!("127.0.0.1:{port}")])
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

/// GET returning (status, JSON body).
pub fn get_json(url: &str) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent.get(url).call().expect("request");
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
