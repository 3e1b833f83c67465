//! End-to-end interaction: the viewer (headless, lavapipe) against one real twin-server built
//! from a small fixture city (two districts, an L3 district, two buildings, stations for units).
//! Scripted clicks and measurements at pixels projected here from lon/lat/height with camera
//! maths written independently of the viewer's; every expected value is read from the server's
//! API (`/api/buildings`, `/api/events/{id}/recommend`, `/api/events/{id}`) or computed by hand
//! (ECEF distances), never from the viewer.
//!
//! (Like tests/cockpit.rs this file has its own small server helpers: the twin-server's
//! `tests/common` names the server's binary through `CARGO_BIN_EXE_twin-server`, which is not
//! set for the viewer's tests. Writes use the server's bootstrap admin key.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

mod support;
use support::*;


fn ring(pts: &[(f64, f64)]) -> Value {
    let mut v: Vec<Value> = pts
        .iter()
        .map(|&(e, n)| {
            let (lon, lat) = at(e, n);
            json!([lon, lat])
        })
        .collect();
    v.push(v[0].clone());
    json!([v])
}

/// Districts split at C's meridian (东区 east gets L3 tiles); a 30 m building 东楼 in the east
/// (100…160 m east × 100…160 m north), a 12 m one in the west; stations for the units.
fn fixture() -> Value {
    let f = |props: Value, geom: Value| json!({"type": "Feature", "properties": props, "geometry": geom});
    let pt = |e: f64, n: f64| json!({"type": "Point", "coordinates": [at(e, n).0, at(e, n).1]});
    json!({"type": "FeatureCollection", "features": [
        f(json!({"boundary": "administrative", "adcode": 910001, "name": "西区", "name:en": "West"}), json!({"type": "Polygon", "coordinates": ring(&[(-2500.0, -2200.0), (0.0, -2200.0), (0.0, 2200.0), (-2500.0, 2200.0)])})),
        f(json!({"boundary": "administrative", "adcode": 910002, "name": "东区", "name:en": "East"}), json!({"type": "Polygon", "coordinates": ring(&[(0.0, -2200.0), (2500.0, -2200.0), (2500.0, 2200.0), (0.0, 2200.0)])})),
        f(json!({"building": "yes", "height": 30, "name": "东楼", "building:levels": 9}), json!({"type": "Polygon", "coordinates": ring(&[(100.0, 100.0), (160.0, 100.0), (160.0, 160.0), (100.0, 160.0)])})),
        f(json!({"building": "yes", "height": 12}), json!({"type": "Polygon", "coordinates": ring(&[(-200.0, 100.0), (-160.0, 100.0), (-160.0, 130.0), (-200.0, 130.0)])})),
        f(json!({"amenity": "police", "name": "西区派出所"}), pt(-1600.0, 0.0)),
        f(json!({"amenity": "fire_station", "name": "东区消防站"}), pt(1600.0, 0.0)),
        f(json!({"amenity": "fire_station", "name": "西区消防站"}), pt(-1200.0, -900.0)),
        f(json!({"amenity": "hospital", "name": "中心医院"}), pt(0.0, 1500.0)),
    ]})
}

fn build_fixture(dir: &Path) -> PathBuf {
    let src = dir.join("city.geojson");
    std::fs::write(&src, fixture().to_string()).unwrap();
    let out = dir.join("city");
    let o = Command::new(twin_server())
        .args(["build", "--name", "fixture", "--max-zoom", "15", "--l3-districts", "东区", "--source"])
        .arg(&src)
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "build: {}", String::from_utf8_lossy(&o.stderr));
    out
}

const ADMIN_KEY: &str = "ctk_viewer0test0admin0key0bbbbbbbbbbbbbbbbbbbbbbbbbb";

fn serve(model: &Path) -> Server {
    let key = model.with_extension("admin.key");
    std::fs::write(&key, format!("{ADMIN_KEY}\n")).unwrap();
    let args = ["--simulate", "off", "--anonymous-read", "--rate-ip", "0", "--rate-token", "0", "--max-streams", "0", "--admin-token-file", key.to_str().unwrap()];
    start_server(&args, model, free_port())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(60))).build().into()
}

fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let mut r = agent().post(url).header("content-type", "application/json").header("authorization", format!("Bearer {ADMIN_KEY}")).send(body.to_string().as_bytes()).expect("request");
    let st = r.status().as_u16();
    (st, r.body_mut().read_json().unwrap_or(Value::Null))
}

fn get_json(url: &str) -> Value {
    let mut r = agent().get(url).call().expect("request");
    assert_eq!(r.status().as_u16(), 200, "GET {url}");
    r.body_mut().read_json().unwrap()
}

fn post_event(base: &str, category: &str, severity: u8, title: &str, e: f64, n: f64) -> (i64, f64, f64) {
    let (lon, lat) = at(e, n);
    let (st, v) = post_json(&format!("{base}/api/events"), &json!({"category": category, "severity": severity, "source": "manual",
        "title": title, "description": "测试描述", "location": {"lon": lon, "lat": lat}, "actor": "test"}));
    assert_eq!(st, 201, "{v}");
    (v["id"].as_i64().unwrap(), lon, lat)
}

/// A SensorThings Thing at (lon, lat) with one Datastream of `sensor_type` and one observation.
fn sta_sensor(base: &str, sensor_type: &str, lon: f64, lat: f64, result: f64) -> i64 {
    let (s, thing) = post_json(
        &format!("{base}/api/sta/v1.1/Things"),
        &json!({"name": format!("{sensor_type} station"), "description": "test", "Locations": [{"name": "here", "description": "", "encodingType": "application/geo+json", "location": {"type": "Point", "coordinates": [lon, lat]}}]}),
    );
    assert_eq!(s, 201, "{thing}");
    let (s, ds) = post_json(
        &format!("{base}/api/sta/v1.1/Datastreams"),
        &json!({"name": format!("{sensor_type} 1"), "description": "test", "properties": {"sensorType": sensor_type}, "Thing": {"@iot.id": thing["@iot.id"]},
                "Sensor": {"name": "s", "description": "", "encodingType": "text/html", "metadata": "https://example.org/s"},
                "ObservedProperty": {"name": sensor_type, "definition": format!("https://example.org/{sensor_type}"), "description": ""}}),
    );
    assert_eq!(s, 201, "{ds}");
    let id = ds["@iot.id"].as_i64().unwrap();
    let (s, v) = post_json(&format!("{base}/api/sensors/observations"), &json!([{"datastream": id, "result": result}]));
    assert_eq!(s, 201, "{v}");
    id
}

fn run_viewer(args: &[&str]) -> Value {
    let out = Command::new(viewer()).args(args).output().expect("run viewer");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "viewer failed: {err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let s = stdout.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v.get("tileset").is_some())).expect("a summary line");
    assert_eq!(s["timed_out"], false, "{s}");
    s
}

// ---- camera maths (independent of the viewer): WGS-84 → ECEF, ENU at the camera, heading
// clockwise from north, pitch above the horizon, 60° vertical field of view

/// The mean of a building's outer ring (a rectangle here: its centre) and its properties.
fn building(fc: &Value, pred: impl Fn(&Value) -> bool) -> ((f64, f64), Value) {
    let f = fc["features"].as_array().unwrap().iter().find(|f| pred(&f["properties"])).unwrap_or_else(|| panic!("building not served: {fc}"));
    let ring = &f["geometry"]["coordinates"][0][0];
    let pts: Vec<(f64, f64)> = ring.as_array().unwrap().iter().map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())).collect();
    let n = (pts.len() - 1) as f64;
    let c = pts[..pts.len() - 1].iter().fold((0.0, 0.0), |a, p| (a.0 + p.0 / n, a.1 + p.1 / n));
    (c, f["properties"].clone())
}

/// Ground (east/north at the midpoint) and straight distances between two geodetic points, by hand.
fn distances(a: (f64, f64, f64), b: (f64, f64, f64)) -> (f64, f64) {
    let (pa, pb) = (ecef(a.0, a.1, a.2), ecef(b.0, b.1, b.2));
    let d = sub(pb, pa);
    let (lo, la) = (((a.0 + b.0) / 2.0).to_radians(), ((a.1 + b.1) / 2.0).to_radians());
    let e = [-lo.sin(), lo.cos(), 0.0];
    let n = [-la.sin() * lo.cos(), -la.sin() * lo.sin(), la.cos()];
    (dot(d, e).hypot(dot(d, n)), dot(d, d).sqrt())
}

#[test]
fn picking_the_detail_panel_levels_and_measurement_against_a_live_server() {
    let tmp = TempDir::new("pick");
    let model = build_fixture(&tmp.0);
    let srv = serve(&model);
    let base = srv.base.clone();
    let (w, h) = (640.0, 360.0);
    let cam = Cam::new(C.0, C.1, 400.0, 0.0, -90.0, w, h);
    let at_s = format!("{},{},400,0,-90", C.0, C.1);
    let fc = get_json(&format!("{base}/api/buildings?bbox={},{},{},{}", C.0 - 0.01, C.1 - 0.01, C.0 + 0.01, C.1 + 0.01));
    let (east_c, east) = building(&fc, |p| p["name"] == "东楼");
    let (west_c, west) = building(&fc, |p| p["height"].as_f64() == Some(12.0));
    let east_h = east["height"].as_f64().unwrap();
    let west_h = west["height"].as_f64().unwrap();
    // roofs: the blocks stand on flat ground at 0 m (no DEM), so the roof is at `height`
    let (ex, ey) = cam.project(east_c.0, east_c.1, east_h);
    let (wx, wy) = cam.project(west_c.0, west_c.1, west_h);
    let px = |x: f64, y: f64| format!("{x:.2},{y:.2}");

    // ---- planner: building picks and a roof-to-roof measurement, all levels shown
    let shot_all = tmp.0.join("all.png");
    let s = run_viewer(&["--server", &base, "--tileset", "fixture", "--headless", "--screenshot", shot_all.to_str().unwrap(), "--size", "640x360", "--at", &at_s, "--timeout", "300",
        "--mode", "planner", "--no-ground-map", "--click", &px(ex, ey), "--click", &px(wx, wy), "--measure", &format!("{}:{}", px(ex, ey), px(wx, wy))]);
    eprintln!("planner: picks {} measurement {} levels {}", s["picks"], s["measurement"], s["levels"]);
    let picks = s["picks"].as_array().unwrap();
    assert_eq!(picks.len(), 2, "{s}");
    for (p, props, c, hgt) in [(&picks[0], &east, east_c, east_h), (&picks[1], &west, west_c, west_h)] {
        assert_eq!(p["kind"], "building", "{p}");
        assert_eq!(p["id"], props["id"], "picked {p}, expected the server's building {props}");
        let got = &p["properties"];
        assert_eq!(got["id"], props["id"]);
        assert!((got["height"].as_f64().unwrap() - hgt).abs() < 1e-3, "height {got} vs {props}");
        assert_eq!(got["district"], props["district"], "{got} vs {props}");
        assert_eq!(got["use"], props["use"], "{got} vs {props}");
        // the tile's name is the model's (an absent name is no property or an empty one)
        assert_eq!(got["name"].as_str().unwrap_or(""), props["name"].as_str().unwrap_or(""), "{got} vs {props}");
        // the hit is on the roof, where we clicked
        let (lon, lat, ph) = (p["lon"].as_f64().unwrap(), p["lat"].as_f64().unwrap(), p["height"].as_f64().unwrap());
        assert!((lon - c.0).abs() * 83_000.0 < 1.0 && (lat - c.1).abs() * 111_000.0 < 1.0, "hit at {lon}, {lat}; roof centre {c:?}");
        assert!((ph - hgt).abs() < 0.1, "hit height {ph}, roof {hgt}");
    }
    assert_eq!(s["picks"][0]["properties"]["floors"], 9, "{}", s["picks"][0]);
    let meta = s["metadata_panel"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect::<Vec<_>>().join("\n");
    assert!(meta.contains(&format!("建筑 #{}", west["id"])), "the panel shows the last pick: {meta}");
    // the measurement: ground distance, height difference, straight distance by hand (ECEF)
    let m = &s["measurement"];
    let (g, st) = distances((east_c.0, east_c.1, east_h), (west_c.0, west_c.1, west_h));
    let (mg, ms, mh) = (m["ground_m"].as_f64().unwrap(), m["straight_m"].as_f64().unwrap(), m["height_diff_m"].as_f64().unwrap());
    assert!((mg - g).abs() / g < 0.01, "ground distance {mg:.2} m, by hand {g:.2} m");
    assert!((ms - st).abs() / st < 0.01, "straight distance {ms:.2} m, by hand {st:.2} m");
    assert!((mh - (west_h - east_h)).abs() < 0.1, "height difference {mh:.2} m, expected {}", west_h - east_h);
    assert!(g > 250.0, "the two roofs are ~310 m apart: {g}");
    // levels: from 400 m the L2 tile is drawn (its L3 child is finer than needed)
    let drawn = |s: &Value, l: &str| s["levels"]["drawn"][l].as_u64().unwrap();
    assert!(drawn(&s, "L2") >= 1 && drawn(&s, "L3") == 0, "{}", s["levels"]);
    assert_eq!(s["picks"][0]["tile_level"], 2);

    // ---- L2 hidden over the L3 district: the L3 tile is drawn instead, the roof pixels change
    let shot_l3 = tmp.0.join("l3.png");
    let s3 = run_viewer(&["--server", &base, "--tileset", "fixture", "--headless", "--screenshot", shot_l3.to_str().unwrap(), "--size", "640x360", "--at", &at_s, "--timeout", "300",
        "--mode", "planner", "--no-ground-map", "--no-panels", "--levels", "L3,L4", "--click", &px(ex, ey)]);
    assert_eq!(s3["levels"]["visible"], json!(["L3", "L4"]));
    assert!(drawn(&s3, "L2") == 0 && drawn(&s3, "L3") >= 1, "{}", s3["levels"]);
    assert_eq!((s3["picks"][0]["id"].clone(), s3["picks"][0]["tile_level"].clone()), (east["id"].clone(), json!(3)), "{}", s3["picks"][0]);
    assert_eq!(s3["picks"][0]["properties"]["level"], "L3", "东楼 is in the L3 district: {}", s3["picks"][0]);
    // L2 and L3 hidden: nothing of the city is drawn, ground shows where the roof was
    let shot_none = tmp.0.join("none.png");
    let s4 = run_viewer(&["--server", &base, "--tileset", "fixture", "--headless", "--screenshot", shot_none.to_str().unwrap(), "--size", "640x360", "--at", &at_s, "--timeout", "300",
        "--mode", "planner", "--no-ground-map", "--no-panels", "--levels", "L4"]);
    assert_eq!((drawn(&s4, "L2"), drawn(&s4, "L3"), s4["tiles_in_view"].as_u64()), (0, 0, Some(0)), "{}", s4["levels"]);
    let ground = {
        let a = s4["ground_srgb"].as_array().unwrap();
        [a[0].as_u64().unwrap() as u8, a[1].as_u64().unwrap() as u8, a[2].as_u64().unwrap() as u8]
    };
    let (p_all, p_l3, p_none) = (Png::read(&shot_all).at(ex, ey), Png::read(&shot_l3).at(ex, ey), Png::read(&shot_none).at(ex, ey));
    eprintln!("roof pixel: all levels {p_all:?}, L2 hidden {p_l3:?}, L2+L3 hidden {p_none:?}");
    assert!(near(p_none, ground, 3), "ground expected with L2 and L3 hidden: {p_none:?}");
    assert!(!near(p_all, ground, 10) && !near(p_l3, ground, 10), "the roof is drawn: {p_all:?} {p_l3:?}");
    assert!(!near(p_all, p_l3, 6), "the L2 block and the L3 roof differ: {p_all:?} vs {p_l3:?}");

    // ---- dispatcher: a click on an incident selects it; the detail panel lists the
    // recommendations in the server's order; with --assign-unit the click assigns that unit
    let (eid, elon, elat) = post_event(&base, "fire", 3, "仓库起火", -60.0, -120.0);
    let (lid, llon, llat) = post_event(&base, "fire", 2, "厂房冒烟", 80.0, -60.0);
    // sensors: one 300 m east of the incident, one 1.5 km north (not nearby)
    let (nlon, nlat) = at(240.0, -120.0);
    let near_ds = sta_sensor(&base, "pm25", nlon, nlat, 35.0);
    let (flon, flat) = at(-60.0, 1400.0);
    sta_sensor(&base, "noise", flon, flat, 50.0);
    let near_m = {
        let (a, b) = (ecef(elon, elat, 0.0), ecef(nlon, nlat, 0.0));
        dot(sub(a, b), sub(a, b)).sqrt()
    };
    let rec = get_json(&format!("{base}/api/events/{eid}/recommend?k=3"));
    let order: Vec<i64> = rec["recommendations"].as_array().unwrap().iter().map(|r| r["unit"]["id"].as_i64().unwrap()).collect();
    assert!(order.len() >= 2, "{rec}");
    let unit = order[1];
    let (x, y) = cam.project(elon, elat, 0.0);
    // the dispatcher logs in with a password (a user made with the CLI in the server's live
    // store): the session key carries the dispatcher role the assignment needs
    let pw = tmp.0.join("disp.password");
    std::fs::write(&pw, "dispatcher password 1\n").unwrap();
    let db = format!("sqlite:{}.live.sqlite", model.display());
    let o = Command::new(twin_server())
        .args(["user", "create", "--db", &db, "--role", "dispatcher", "--name", "disp", "--password-file"])
        .arg(&pw)
        .output()
        .expect("user create");
    assert!(o.status.success(), "user create: {}", String::from_utf8_lossy(&o.stderr));
    let sd = run_viewer(&["--server", &base, "--tileset", "fixture", "--headless", "--size", "640x360", "--at", &at_s, "--timeout", "300", "--mode", "dispatcher", "--no-ground-map",
        "--wait-events", "2", "--user", "disp", "--password-file", pw.to_str().unwrap(), "--click", &px(x, y), "--assign-unit", &unit.to_string()]);
    assert_eq!((sd["auth"]["method"].as_str(), sd["auth"]["user"].as_str(), sd["auth"]["role"].as_str()), (Some("login"), Some("disp"), Some("dispatcher")), "{}", sd["auth"]);
    // a wrong password: the viewer says so and exits 2 before rendering anything
    let bad = tmp.0.join("bad.password");
    std::fs::write(&bad, "not the password\n").unwrap();
    let o = Command::new(viewer()).args(["--server", &base, "--headless", "--user", "disp", "--password-file", bad.to_str().unwrap()]).output().expect("run viewer");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("login as 'disp' refused: HTTP 401"), "{err}");
    eprintln!("dispatcher: incident {} detail {}", sd["incident"], sd["detail_panel"]);
    assert_eq!((sd["picks"][0]["kind"].as_str(), sd["picks"][0]["id"].as_i64()), (Some("event"), Some(eid)), "{}", sd["picks"]);
    let inc = &sd["incident"];
    assert_eq!(inc["id"], eid);
    assert_eq!((inc["category"].as_str(), inc["severity"].as_u64(), inc["description"].as_str()), (Some("fire"), Some(3), Some("测试描述")), "{inc}");
    let got: Vec<i64> = inc["recommended"].as_array().unwrap().iter().map(|r| r["unit"].as_i64().unwrap()).collect();
    assert_eq!(got, order, "recommendations in the server's order");
    let lines: Vec<String> = sd["detail_panel"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
    let rows: Vec<usize> = order.iter().map(|u| lines.iter().position(|l| l.contains(&format!("#{u} "))).unwrap_or_else(|| panic!("unit {u} not in the panel: {lines:?}"))).collect();
    assert!(rows.windows(2).all(|p| p[0] < p[1]), "panel rows {rows:?} not in the recommended order: {lines:?}");
    assert!(lines[0].starts_with(&format!("事件详情 #{eid}: 仓库起火")) && lines.iter().any(|l| l.contains("测试描述")), "{lines:?}");
    // the nearby sensors: the one 300 m away, at its distance
    let ns = inc["nearby_sensors"].as_array().unwrap();
    assert_eq!(ns.len(), 1, "{inc}");
    assert_eq!(ns[0]["datastream"], near_ds);
    assert!((ns[0]["distance_m"].as_f64().unwrap() - near_m).abs() < 2.0, "sensor at {} m, by hand {near_m:.1} m", ns[0]["distance_m"]);
    assert!(lines.iter().any(|l| l.contains("附近传感器 (≤ 1 km): 1")), "{lines:?}");
    // the camera flew to the incident and the assignment reached the server
    assert_eq!(sd["dispatch"]["flown_to"], json!([elon, elat]));
    // … in one eased flight from the --at pose to 600 m south of it, 600 m above the tileset's
    // ground (its lowest corner, within a metre of the ellipsoid here), 45° down, which
    // landed before the screenshot: the camera then is exactly the flight's target
    let fl = sd["flights"].as_array().unwrap();
    assert_eq!(fl.len(), 1, "{}", sd["flights"]);
    let f = &fl[0];
    let v = |x: &Value, i: usize| x[i].as_f64().unwrap();
    assert_eq!((f["reason"].as_str(), f["state"].as_str()), (Some("select"), Some("arrived")), "{f}");
    assert!((v(&f["from"], 0) - C.0).abs() < 1e-6 && (v(&f["from"], 1) - C.1).abs() < 1e-6 && (v(&f["from"], 2) - 400.0).abs() < 0.05, "{f}");
    assert!((v(&f["to"], 0) - elon).abs() < 1e-6 && (v(&f["to"], 1) - (elat - 600.0 / 110_950.0)).abs() < 1e-6 && (v(&f["to"], 2) - 600.0).abs() < 1.0, "{f}");
    assert!(v(&f["to_heading_pitch"], 0).min(360.0 - v(&f["to_heading_pitch"], 0)) < 0.05 && (v(&f["to_heading_pitch"], 1) + 45.0).abs() < 0.05, "{f}");
    let (dur, flown) = (f["duration_s"].as_f64().unwrap(), f["flown_s"].as_f64().unwrap());
    assert!((1.5..=3.0).contains(&dur) && flown >= dur, "{f}");
    // a hop of well under 1 km: no arc; the duration is 1.5 s + 0.5 s a km of the straight hop
    let hop = {
        let (a, b) = (ecef(C.0, C.1, 400.0), ecef(elon, elat - 600.0 / 110_950.0, v(&f["to"], 2)));
        dot(sub(a, b), sub(a, b)).sqrt()
    };
    assert!((f["distance_m"].as_f64().unwrap() - hop).abs() < 0.5 && (dur - (1.5 + hop / 2000.0)).abs() < 1e-3 && f["arc_m"] == 0.0, "hop {hop:.1} m: {f}");
    let cam_at = &sd["camera"];
    let g = |k: &str| cam_at[k].as_f64().unwrap();
    assert!((g("lon") - v(&f["to"], 0)).abs() < 1e-7 && (g("lat") - v(&f["to"], 1)).abs() < 1e-7 && (g("alt") - v(&f["to"], 2)).abs() < 0.01, "camera {cam_at}, flight {f}");
    assert!((g("heading") - v(&f["to_heading_pitch"], 0)).abs() < 0.01 && (g("pitch") - v(&f["to_heading_pitch"], 1)).abs() < 0.01, "camera {cam_at}, flight {f}");
    assert_eq!((sd["dispatch"]["assign_status"].as_u64(), sd["dispatch"]["assigned"].as_i64()), (Some(200), Some(unit)), "{}", sd["dispatch"]);
    let ev = get_json(&format!("{base}/api/events/{eid}"));
    assert!(ev["units"].as_array().unwrap().contains(&json!(unit)), "{ev}");
    // leader mode is read-only: selecting the other incident with --assign-unit posts nothing
    // (its tour moves the camera, so the event is selected by id, the same path as a click)
    let lrec = get_json(&format!("{base}/api/events/{lid}/recommend?k=3"));
    let lunit = lrec["recommendations"][0]["unit"]["id"].as_i64().unwrap();
    let sl = run_viewer(&["--server", &base, "--tileset", "fixture", "--headless", "--size", "320x180", "--timeout", "300", "--mode", "leader", "--no-ground-map",
        "--token", ADMIN_KEY, "--select-event", &lid.to_string(), "--assign-unit", &lunit.to_string()]);
    assert_eq!(sl["incident"]["id"], lid);
    assert!(sl["dispatch"]["assign_status"].is_null() && sl["dispatch"]["assigned"].is_null(), "{}", sl["dispatch"]);
    assert!(sl["dispatch"]["assign_error"].as_str().unwrap_or("").contains("read-only"), "{}", sl["dispatch"]);
    let lev = get_json(&format!("{base}/api/events/{lid}"));
    assert!(lev["units"].as_array().unwrap().is_empty() && lev["state"] != "dispatched", "leader posted an assignment: {lev}");

    // ---- the windowed input path, driven by --input-script (real Bevy input messages):
    // clicks pick what --click picked, M + two clicks measure what --measure measured, keys 2/3
    // toggle the levels (2 hides L2, 3 hides and shows L3 again)
    let script = tmp.0.join("planner.script");
    std::fs::write(&script, format!("0 click {}\n0.2 click {}\n0.4 key M\n0.6 click {}\n0.8 click {}\n1.0 key 2\n1.2 key 3\n1.4 key 3\n",
        px(ex, ey), px(wx, wy), px(ex, ey), px(wx, wy))).unwrap();
    let si = run_viewer(&["--server", &base, "--tileset", "fixture", "--headless", "--size", "640x360", "--at", &at_s, "--timeout", "300",
        "--mode", "planner", "--no-ground-map", "--no-panels", "--input-script", script.to_str().unwrap()]);
    eprintln!("scripted planner: picks {} measurement {} levels {} script {}", si["picks"], si["measurement"], si["levels"], si["input_script"]);
    assert_eq!(si["input_script"], json!({"events": 20, "delivered": 20, "done": true}));
    let sp = si["picks"].as_array().unwrap();
    assert_eq!(sp.len(), 2, "the clicks in measuring mode are measurement points, not picks: {}", si["picks"]);
    for (a, b) in sp.iter().zip(picks) {
        assert_eq!((&a["kind"], &a["id"], &a["tile"], &a["properties"]), (&b["kind"], &b["id"], &b["tile"], &b["properties"]), "scripted {a} vs --click {b}");
        assert!((a["lon"].as_f64().unwrap() - b["lon"].as_f64().unwrap()).abs() < 1e-9 && (a["height"].as_f64().unwrap() - b["height"].as_f64().unwrap()).abs() < 1e-6, "{a} vs {b}");
    }
    let sm = &si["measurement"];
    for k in ["ground_m", "straight_m", "height_diff_m"] {
        assert!((sm[k].as_f64().unwrap() - m[k].as_f64().unwrap()).abs() < 1e-6, "{k}: scripted {sm} vs --measure {m}");
    }
    assert_eq!(si["levels"]["visible"], json!(["L3", "L4"]), "{}", si["levels"]);
    assert!(drawn(&si, "L2") == 0 && drawn(&si, "L3") >= 1, "{}", si["levels"]);

    // dispatcher: a scripted click on the other incident selects it, key A assigns the first
    // recommended unit (once the recommendations are in)
    let (lx, ly) = cam.project(llon, llat, 0.0);
    let script = tmp.0.join("dispatcher.script");
    std::fs::write(&script, format!("0 click {}\n3 key A\n", px(lx, ly))).unwrap();
    let sa = run_viewer(&["--server", &base, "--tileset", "fixture", "--headless", "--size", "640x360", "--at", &at_s, "--timeout", "300", "--mode", "dispatcher",
        "--no-ground-map", "--no-panels", "--wait-events", "2", "--token", ADMIN_KEY, "--input-script", script.to_str().unwrap()]);
    eprintln!("scripted dispatcher: picks {} dispatch {}", sa["picks"], sa["dispatch"]);
    assert_eq!((sa["picks"][0]["kind"].as_str(), sa["picks"][0]["id"].as_i64()), (Some("event"), Some(lid)), "{}", sa["picks"]);
    assert_eq!((sa["dispatch"]["assign_status"].as_u64(), sa["dispatch"]["assigned"].as_i64()), (Some(200), Some(lunit)), "{}", sa["dispatch"]);
    let lev = get_json(&format!("{base}/api/events/{lid}"));
    assert!(lev["units"].as_array().unwrap().contains(&json!(lunit)), "{lev}");
    assert_eq!(sa["flights"][0]["reason"], "select", "{}", sa["flights"]);
    drop(srv);
}
