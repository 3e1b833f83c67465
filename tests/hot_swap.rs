//! Hot swap: rebuilding the model while the server is under load switches it atomically — every
//! answer (API, vector tile, 3D Tiles tileset.json and content) belongs to exactly one build (its
//! `X-Build-Id` matches its content), there are no
//! errors, and the new build is served within seconds. A broken build keeps the old one serving.

mod common;
use common::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A GeoJSON of `n` square buildings around 市府广场.
fn buildings(path: &Path, n: usize) {
    let feats: Vec<String> = (0..n)
        .map(|i| {
            let (x, y) = (123.43 + 0.001 * i as f64, 41.805);
            format!(
                r#"{{"type":"Feature","properties":{{"building":"yes","height":{}}},"geometry":{{"type":"Polygon","coordinates":[[[{x},{y}],[{},{y}],[{},{}],[{x},{}],[{x},{y}]]]}}}}"#,
                10 + i,
                x + 0.0005,
                x + 0.0005,
                y + 0.0005,
                y + 0.0005
            )
        })
        .collect();
    std::fs::write(path, format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, feats.join(","))).unwrap();
}

fn get(agent: &ureq::Agent, url: &str) -> Result<(u16, String, Vec<u8>), String> {
    let mut r = agent.get(url).call().map_err(|e| e.to_string())?;
    let id = r.headers().get("x-build-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = r.body_mut().with_config().limit(64 << 20).read_to_vec().map_err(|e| e.to_string())?;
    Ok((r.status().as_u16(), id, body))
}

/// The first `content.uri` of a tileset, depth first.
fn first_content_uri(tile: &serde_json::Value) -> Option<String> {
    if let Some(u) = tile["content"]["uri"].as_str() {
        return Some(u.to_string());
    }
    tile["children"].as_array()?.iter().find_map(first_content_uri)
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(b), &mut out).expect("gzip stream");
    out
}

/// One 3D Tiles answer: (build id, path under /3dtiles/city/, Content-Encoding, body as received).
type ThreeD = (String, String, Option<String>, Vec<u8>);

#[test]
fn rebuild_under_load_switches_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a.geojson"), tmp.path().join("b.geojson"), tmp.path().join("c.geojson"));
    buildings(&a, 3);
    buildings(&b, 5);
    buildings(&c, 7);
    let out = tmp.path().join("model");
    let id_a = build(&out, &["--name", "city", "--source", a.to_str().unwrap()])["build_id"].as_str().unwrap().to_string();
    assert!(std::fs::symlink_metadata(&out).unwrap().file_type().is_symlink(), "--out is a symlink to the build");
    let s = serve(&out);

    let stop = Arc::new(AtomicBool::new(false));
    // (build id, buildings in /api/model, buildings in /api/buildings) per answer; errors.
    let seen: Arc<Mutex<Vec<(String, u64, u64)>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    // (build id, tile body) of the z14 tile holding the buildings.
    let tiles_seen: Arc<Mutex<Vec<(String, Vec<u8>)>>> = Arc::default();
    let t = tiles::TileId::containing(123.431, 41.8052, 14);
    let tile_path = format!("/tiles/city/14/{}/{}.mvt", t.x, t.y);
    let mut clients = vec![];
    for k in 0..2 {
        let (stop, tiles_seen, errors, url) = (stop.clone(), tiles_seen.clone(), errors.clone(), format!("{}{tile_path}", s.base));
        clients.push(std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            while !stop.load(Ordering::Relaxed) {
                let r = agent.get(&url).header("Accept-Encoding", if k == 0 { "gzip" } else { "gzip, br" }).call();
                match r {
                    Ok(mut r) if r.status() == 200 => {
                        let id = r.headers().get("x-build-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                        let body = r.body_mut().read_to_vec().unwrap();
                        tiles_seen.lock().unwrap().push((id, body));
                    }
                    Ok(r) => errors.lock().unwrap().push(format!("{url}: {}", r.status())),
                    Err(e) => errors.lock().unwrap().push(format!("{url}: {e}")),
                }
            }
        }));
    }
    // 3D Tiles: tileset.json, then the first content it references, from the same client; one
    // client accepts gzip (stored .gz bytes sent as is), the other not (inflated by the server).
    let threed_seen: Arc<Mutex<Vec<ThreeD>>> = Arc::default();
    for k in 0..2 {
        let (stop, threed_seen, errors, base) = (stop.clone(), threed_seen.clone(), errors.clone(), s.base.clone());
        clients.push(std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let fetch = |rel: &str| -> Result<ThreeD, String> {
                let url = format!("{base}/3dtiles/city/{rel}");
                let mut req = agent.get(&url);
                if k == 0 {
                    req = req.header("Accept-Encoding", "gzip");
                }
                let mut r = req.call().map_err(|e| format!("{url}: {e}"))?;
                if r.status() != 200 {
                    return Err(format!("{url}: {}", r.status()));
                }
                let id = r.headers().get("x-build-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let enc = r.headers().get("content-encoding").and_then(|v| v.to_str().ok()).map(str::to_string);
                let body = r.body_mut().with_config().limit(64 << 20).read_to_vec().map_err(|e| format!("{url}: {e}"))?;
                Ok((id, rel.to_string(), enc, body))
            };
            while !stop.load(Ordering::Relaxed) {
                let ts = match fetch("tileset.json") {
                    Ok(a) => a,
                    Err(e) => {
                        errors.lock().unwrap().push(e);
                        continue;
                    }
                };
                let json = if ts.2.as_deref() == Some("gzip") { gunzip(&ts.3) } else { ts.3.clone() };
                let v: serde_json::Value = serde_json::from_slice(&json).expect("tileset.json is JSON");
                let uri = first_content_uri(&v["root"]).expect("tileset references a content");
                threed_seen.lock().unwrap().push(ts);
                match fetch(&uri) {
                    Ok(a) => threed_seen.lock().unwrap().push(a),
                    Err(e) => errors.lock().unwrap().push(e),
                }
            }
        }));
    }
    for k in 0..4 {
        let (stop, seen, errors, base) = (stop.clone(), seen.clone(), errors.clone(), s.base.clone());
        clients.push(std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            while !stop.load(Ordering::Relaxed) {
                let url = if k % 2 == 0 { format!("{base}/api/model") } else { format!("{base}/api/buildings?bbox=123.4,41.7,123.5,41.9") };
                match get(&agent, &url) {
                    Ok((200, id, body)) => {
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        let rec = if k % 2 == 0 {
                            assert_eq!(v["build_id"].as_str(), Some(id.as_str()), "X-Build-Id differs from the manifest served");
                            (id, v["layers"]["buildings"].as_u64().unwrap(), u64::MAX)
                        } else {
                            (id, u64::MAX, v["total"].as_u64().unwrap())
                        };
                        seen.lock().unwrap().push(rec);
                    }
                    Ok((st, _, body)) => errors.lock().unwrap().push(format!("{url}: {st} {}", String::from_utf8_lossy(&body))),
                    Err(e) => errors.lock().unwrap().push(format!("{url}: {e}")),
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    let id_b = build(&out, &["--name", "city", "--source", b.to_str().unwrap()])["build_id"].as_str().unwrap().to_string();
    let built = Instant::now();
    assert_ne!(id_a, id_b);
    let switched = loop {
        if seen.lock().unwrap().iter().rev().take(8).any(|r| r.0 == id_b) {
            break built.elapsed();
        }
        assert!(built.elapsed() < Duration::from_secs(10), "server did not switch to {id_b} within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    let errors = errors.lock().unwrap();
    assert!(errors.is_empty(), "errors under load: {:?}", &errors[..errors.len().min(5)]);
    let seen = seen.lock().unwrap();
    let expect = |id: &str| if id == id_a { 3 } else if id == id_b { 5 } else { panic!("unknown build id {id}") };
    let (mut na, mut nb) = (0, 0);
    for (id, m, t) in seen.iter() {
        let n = expect(id);
        assert!(*m == u64::MAX || *m == n, "build {id} answered a manifest with {m} buildings");
        assert!(*t == u64::MAX || *t == n, "build {id} answered {t} buildings in the bbox");
        if id == &id_a { na += 1 } else { nb += 1 }
    }
    assert!(na > 10 && nb > 10, "both builds were served under load: {na} / {nb} answers");
    // Every tile answer is byte-identical to the tile in the archive of the build it names.
    let builds_dir = tmp.path().join(".model.builds");
    let archive = |id: &str| tiles::pmtiles::Reader::open(builds_dir.join(id).join("tiles/city.pmtiles")).unwrap();
    let (ra, rb) = (archive(&id_a), archive(&id_b));
    let (ta, tb) = (ra.get(14, t.x, t.y).unwrap().expect("tile in A"), rb.get(14, t.x, t.y).unwrap().expect("tile in B"));
    assert_ne!(ta, tb, "the two builds must differ in this tile for the test to mean anything");
    let tiles_seen = tiles_seen.lock().unwrap();
    let (mut ta_n, mut tb_n) = (0, 0);
    for (id, body) in tiles_seen.iter() {
        if id == &id_a {
            assert!(body[..] == ta[..], "a tile answered as {id_a} is not that build's tile");
            ta_n += 1;
        } else {
            assert_eq!(id, &id_b, "unknown build id on a tile");
            assert!(body[..] == tb[..], "a tile answered as {id_b} is not that build's tile");
            tb_n += 1;
        }
    }
    assert!(ta_n > 10 && tb_n > 10, "tiles of both builds were served: {ta_n} / {tb_n}");
    // Every 3D Tiles answer is the file of the build it names: as stored (`P.gz`) when sent
    // gzip-encoded, else its inflated content (or `P` itself when there is no `P.gz`).
    let stored = |id: &str, rel: &str| -> (Option<Vec<u8>>, Vec<u8>) {
        let p = builds_dir.join(id).join("3dtiles").join(rel);
        match std::fs::read(format!("{}.gz", p.display())) {
            Ok(gz) => {
                let plain = gunzip(&gz);
                if let Ok(f) = std::fs::read(&p) {
                    assert!(f == plain, "{id}: 3dtiles/{rel} and its .gz differ");
                }
                (Some(gz), plain)
            }
            Err(_) => (None, std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))),
        }
    };
    let threed_seen = threed_seen.lock().unwrap();
    let mut threed_n: std::collections::BTreeMap<(bool, &str, bool), usize> = Default::default();
    for (id, rel, enc, body) in threed_seen.iter() {
        assert!(id == &id_a || id == &id_b, "unknown build id {id:?} on /3dtiles/city/{rel}");
        let (gz, plain) = stored(id, rel);
        match enc.as_deref() {
            Some("gzip") => assert!(gz.as_deref() == Some(&body[..]), "/3dtiles/city/{rel} answered gzip as {id} is not that build's {rel}.gz"),
            None => assert!(plain == *body, "/3dtiles/city/{rel} answered as {id} is not that build's {rel}"),
            Some(e) => panic!("unexpected Content-Encoding {e} on {rel}"),
        }
        *threed_n.entry((id == &id_b, rel.as_str(), enc.is_some())).or_default() += 1;
    }
    // Both builds, both files, both encodings answered; and the builds differ in both files.
    let files: std::collections::BTreeSet<&str> = threed_n.keys().map(|k| k.1).collect();
    assert_eq!(files.len(), 2, "tileset.json and one content: {files:?}");
    for rel in &files {
        for new in [false, true] {
            for enc in [false, true] {
                assert!(threed_n.get(&(new, *rel, enc)).copied().unwrap_or(0) > 0, "no answer for {rel} of the {} build, gzip {enc}: {threed_n:?}", if new { "new" } else { "old" });
            }
        }
        assert_ne!(stored(&id_a, rel).1, stored(&id_b, rel).1, "{rel} must differ between the builds for the test to mean anything");
    }
    assert!(switched < Duration::from_secs(3), "switched after {switched:?}");
    eprintln!(
        "hot swap: {} API answers ({na} old, {nb} new), {} tiles ({ta_n} old, {tb_n} new), {} 3D Tiles answers {threed_n:?} (new build, file, gzip), switched {switched:?} after the build finished",
        seen.len(),
        tiles_seen.len(),
        threed_seen.len()
    );

    // The current and the previous build are kept.
    let mut kept: Vec<String> = std::fs::read_dir(&builds_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    kept.sort();
    let mut want = vec![id_a.clone(), id_b.clone()];
    want.sort();
    assert_eq!(kept, want);

    // A broken build: the server keeps serving id_b and logs the error.
    let broken = builds_dir.join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("manifest.json"), r#"{"build_id":"broken"}"#).unwrap();
    let link = tmp.path().join(".model.tmp-link");
    std::os::unix::fs::symlink(".model.builds/broken", &link).unwrap();
    std::fs::rename(&link, &out).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (st, body) = get_json(&format!("{}/api/model", s.base));
    assert_eq!((st, body["build_id"].as_str()), (200, Some(id_b.as_str())), "a failed reload must keep the old build");
    // A good build after the broken one is picked up.
    std::fs::remove_dir_all(&broken).unwrap();
    let id_c = build(&out, &["--name", "city", "--source", c.to_str().unwrap()])["build_id"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    loop {
        let (_, body) = get_json(&format!("{}/api/model", s.base));
        if body["build_id"].as_str() == Some(id_c.as_str()) {
            assert_eq!(body["layers"]["buildings"], 7);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "build {id_c} not picked up after a failed reload");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn old_layout_directory_is_replaced_other_paths_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("a.geojson");
    buildings(&src, 2);
    // A model directory of the old layout: a real directory with a manifest.json.
    let out = tmp.path().join("old");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("manifest.json"), "{}").unwrap();
    let o = twin(&["build", "--source", src.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&out).unwrap().file_type().is_symlink());
    assert_eq!(manifest(&out)["layers"]["buildings"], 2);
    // Anything else is refused before any work and left alone.
    let other = tmp.path().join("photos");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("a.jpg"), "x").unwrap();
    let o = twin(&["build", "--source", src.to_str().unwrap(), "--out", other.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("photos") && err.contains("refusing"), "{err}");
    assert!(other.join("a.jpg").exists());
}
