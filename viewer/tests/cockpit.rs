//! End-to-end cockpit tests: the viewer (headless, lavapipe) against a real twin-server built from
//! a small fixture city (two districts, a river, a park, two roads, stations for the units).
//! Screenshots are checked on content at positions projected here from lon/lat with camera maths
//! written independently of the viewer's: event markers in their severity colours, the ground map's
//! water / park / road colours where the fixture has them, panels with their texts in zh and en,
//! the dispatcher flow, and a reconnect across a server restart.
//!
//! (The twin-server's `tests/common` helpers cannot be linked here — they name the server's own
//! binary through `CARGO_BIN_EXE_twin-server` — so this file has its small equivalents. The
//! servers run in the demo's access mode: `--anonymous-read` plus a bootstrap admin key the
//! test's writes use; the dispatcher viewer gets a dispatcher key made with `twin-server token
//! create`, the other viewers read anonymously.)

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::*;


fn ring(pts: &[(f64, f64)]) -> Value {
    let mut v: Vec<Value> = pts.iter().map(|&(e, n)| {
        let (lon, lat) = at(e, n);
        json!([lon, lat])
    }).collect();
    v.push(v[0].clone());
    json!([v])
}
fn line(pts: &[(f64, f64)]) -> Value {
    json!(pts.iter().map(|&(e, n)| {
        let (lon, lat) = at(e, n);
        json!([lon, lat])
    }).collect::<Vec<_>>())
}

/// River 浑河 (water) from 300 to 200 m south; park 100…300 m east × 120…330 m north; a primary
/// road 100 m south, a residential road 420 m west; districts split at C's meridian.
fn fixture() -> Value {
    fixture_with(vec![])
}

fn fixture_with(extra: Vec<Value>) -> Value {
    let f = |props: Value, geom: Value| json!({"type": "Feature", "properties": props, "geometry": geom});
    let mut fc = json!({"type": "FeatureCollection", "features": [
        f(json!({"boundary": "administrative", "adcode": 910001, "name": "西区", "name:en": "West"}), json!({"type": "Polygon", "coordinates": ring(&[(-2500.0, -2200.0), (0.0, -2200.0), (0.0, 2200.0), (-2500.0, 2200.0)])})),
        f(json!({"boundary": "administrative", "adcode": 910002, "name": "东区", "name:en": "East"}), json!({"type": "Polygon", "coordinates": ring(&[(0.0, -2200.0), (2500.0, -2200.0), (2500.0, 2200.0), (0.0, 2200.0)])})),
        f(json!({"natural": "water", "water": "river", "name": "浑河"}), json!({"type": "Polygon", "coordinates": ring(&[(-1500.0, -300.0), (1500.0, -300.0), (1500.0, -200.0), (-1500.0, -200.0)])})),
        f(json!({"landuse": "park", "name": "青年公园"}), json!({"type": "Polygon", "coordinates": ring(&[(100.0, 120.0), (300.0, 120.0), (300.0, 330.0), (100.0, 330.0)])})),
        f(json!({"highway": "primary", "name": "青年大街"}), json!({"type": "LineString", "coordinates": line(&[(-1500.0, -100.0), (1500.0, -100.0)])})),
        f(json!({"highway": "residential", "name": "小路"}), json!({"type": "LineString", "coordinates": line(&[(-420.0, -1500.0), (-420.0, 1500.0)])})),
        f(json!({"amenity": "police", "name": "西区派出所"}), json!({"type": "Point", "coordinates": [at(-1600.0, 0.0).0, at(-1600.0, 0.0).1]})),
        f(json!({"amenity": "fire_station", "name": "东区消防站"}), json!({"type": "Point", "coordinates": [at(1600.0, 0.0).0, at(1600.0, 0.0).1]})),
        f(json!({"amenity": "hospital", "name": "中心医院"}), json!({"type": "Point", "coordinates": [at(0.0, 1500.0).0, at(0.0, 1500.0).1]})),
        f(json!({"amenity": "townhall", "name": "区政府"}), json!({"type": "Point", "coordinates": [at(-800.0, -1500.0).0, at(-800.0, -1500.0).1]})),
        f(json!({"building": "yes", "height": 30}), json!({"type": "Polygon", "coordinates": ring(&[(1500.0, 1300.0), (1560.0, 1300.0), (1560.0, 1360.0), (1500.0, 1360.0)])})),
        f(json!({"building": "yes", "height": 12}), json!({"type": "Polygon", "coordinates": ring(&[(-1500.0, 1300.0), (-1460.0, 1300.0), (-1460.0, 1330.0), (-1500.0, 1330.0)])})),
    ]});
    fc["features"].as_array_mut().unwrap().extend(extra);
    fc
}

fn build_fixture(dir: &Path) -> PathBuf {
    build_fixture_from(dir, fixture())
}

fn build_fixture_from(dir: &Path, fc: Value) -> PathBuf {
    let src = dir.join("city.geojson");
    std::fs::write(&src, fc.to_string()).unwrap();
    let out = dir.join("city");
    let o = Command::new(twin_server())
        .args(["build", "--name", "fixture", "--max-zoom", "15", "--source"])
        .arg(&src)
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "build: {}", String::from_utf8_lossy(&o.stderr));
    out
}

/// The bootstrap admin key of the test servers (`serve --admin-token-file`).
const ADMIN_KEY: &str = "ctk_viewer0test0admin0key0aaaaaaaaaaaaaaaaaaaaaaaaaa";

fn serve_on(model: &Path, port: u16) -> Server {
    let key = admin_key_file(model);
    let args = ["--simulate", "off", "--anonymous-read", "--rate-ip", "0", "--rate-token", "0", "--max-streams", "0", "--admin-token-file", key.to_str().unwrap()];
    start_server(&args, model, port)
}

fn admin_key_file(model: &Path) -> PathBuf {
    let f = model.with_extension("admin.key");
    std::fs::write(&f, format!("{ADMIN_KEY}\n")).unwrap();
    f
}

/// A dispatcher key made with the CLI in the server's live store (`<model>.live.sqlite`).
fn dispatcher_key(model: &Path, name: &str) -> String {
    let db = format!("sqlite:{}.live.sqlite", model.display());
    let o = Command::new(twin_server()).args(["token", "create", "--db", &db, "--role", "dispatcher", "--name", name]).output().expect("token create");
    assert!(o.status.success(), "token create: {}", String::from_utf8_lossy(&o.stderr));
    let key = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("ctk_"), "{key}");
    key
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(60))).build().into()
}

fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let mut r = agent().post(url).header("content-type", "application/json").header("authorization", format!("Bearer {ADMIN_KEY}")).send(body.to_string().as_bytes()).expect("request");
    let st = r.status().as_u16();
    (st, r.body_mut().read_json().unwrap_or(Value::Null))
}

fn get_json(url: &str) -> (u16, Value) {
    let mut r = agent().get(url).call().expect("request");
    let st = r.status().as_u16();
    (st, r.body_mut().read_json().unwrap_or(Value::Null))
}

fn post_event(base: &str, category: &str, severity: u8, title: &str, e: f64, n: f64) -> (i64, f64, f64) {
    let (lon, lat) = at(e, n);
    let (st, v) = post_json(&format!("{base}/api/events"), &json!({"category": category, "severity": severity, "source": "manual",
        "title": title, "location": {"lon": lon, "lat": lat}, "actor": "test"}));
    assert_eq!(st, 201, "{v}");
    (v["id"].as_i64().unwrap(), lon, lat)
}

/// Runs the viewer to completion: (exit ok, summary, stderr).
fn run_viewer(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(viewer()).args(args).output().expect("run viewer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v.get("tileset").is_some())).unwrap_or(Value::Null);
    (out.status.success(), summary, String::from_utf8_lossy(&out.stderr).into_owned())
}

// ---- camera maths (independent of the viewer): WGS-84 → ECEF, the ENU basis at the camera,
// heading clockwise from north, pitch above the horizon, a 60° vertical field of view

const PALETTE: [[u8; 3]; 4] = [[40, 150, 255], [255, 210, 0], [255, 96, 16], [220, 0, 40]];

#[test]
fn markers_ground_map_panels_and_dispatcher_against_a_live_server() {
    let tmp = TempDir::new("live");
    let model = build_fixture(&tmp.0);
    let srv = serve_on(&model, free_port());
    let base = srv.base.clone();
    // three events of different severities at known places in the middle of the view
    let evs = [
        post_event(&base, "fire", 1, "仓库冒烟", -220.0, 230.0),
        post_event(&base, "traffic_accident", 3, "两车相撞", 170.0, -30.0),
        post_event(&base, "medical", 4, "老人晕倒", -150.0, -150.0),
    ];
    let sev = [1u8, 3, 4];

    // straight down from 900 m over C, north up
    let (w, h) = (640.0, 360.0);
    let cam = Cam::new(C.0, C.1, 900.0, 0.0, -90.0, w, h);
    let shot = tmp.0.join("zh.png");
    let at_s = format!("{},{},900,0,-90", C.0, C.1);
    let (ok, s, err) = run_viewer(&["--server", &base, "--tileset", "fixture", "--headless", "--screenshot", shot.to_str().unwrap(), "--size", "640x360", "--at", &at_s, "--timeout", "400", "--wait-events", "3"]);
    assert!(ok, "viewer failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    eprintln!("summary: {s}");
    assert_eq!(s["timed_out"], false, "{s}");
    assert_eq!(s["stream"]["connected"], true, "{s}");
    assert_eq!(s["overlays"]["events"], 3, "{s}");
    // seeded units: 2 police, 2 fire, 1 ambulance, the town hall's city-management and gas crews
    // (西区), and 东区's two crews (no government office there) at the police station nearest its centre
    assert_eq!(s["overlays"]["units"], 9, "{s}");
    let img = Png::read(&shot);
    assert_eq!((img.w, img.h), (640, 360));
    let markers = s["event_markers"].as_array().unwrap();
    for (k, (id, lon, lat)) in evs.iter().enumerate() {
        let m = markers.iter().find(|m| m["id"] == *id).unwrap_or_else(|| panic!("event {id} not in the summary: {s}"));
        let want = PALETTE[sev[k] as usize - 1];
        assert_eq!(rgb_of(&m["srgb"]), want, "summary colour of event {id}");
        let (x, y) = cam.project(*lon, *lat, 0.0);
        // the viewer's own projection agrees with ours to a pixel
        let sx = m["screen"][0].as_f64().unwrap();
        let sy = m["screen"][1].as_f64().unwrap();
        assert!((sx - x).abs() < 1.5 && (sy - y).abs() < 1.5, "event {id}: viewer at ({sx:.1}, {sy:.1}), expected ({x:.1}, {y:.1})");
        let n = img.patch(x, y, want, 6);
        assert!(n >= 7, "event {id} (severity {}): {n}/9 pixels of {want:?} at ({x:.0}, {y:.0}); centre {:?}", sev[k], img.px(x as usize, y as usize));
    }
    // the ground map: water, park, the primary road where the fixture has them (the palette
    // from the summary, the places from the fixture)
    let pal: std::collections::HashMap<String, [u8; 3]> =
        s["ground_map"]["palette"].as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap().to_string(), rgb_of(&p[1]))).collect();
    assert!(s["ground_map"]["counts"]["water"].as_u64().unwrap() >= 1 && s["ground_map"]["counts"]["roads"].as_u64().unwrap() >= 2, "{s}");
    for (what, e, n, style) in [
        // (away from the map labels drawn at the park's and the river's label points)
        ("river 浑河", -300.0, -230.0, "Water"),
        ("river 浑河", 250.0, -280.0, "Water"),
        ("park", 130.0, 150.0, "LanduseGreen"),
        ("park", 130.0, 300.0, "LanduseGreen"),
        ("primary road", 300.0, -100.0, "RoadPrimary"),
        ("primary road", -300.0, -100.0, "RoadPrimary"),
    ] {
        let (lon, lat) = at(e, n);
        let (x, y) = cam.project(lon, lat, 0.0);
        let want = pal[style];
        let got = img.patch(x, y, want, 4);
        assert!(got >= 5, "{what} at ({x:.0}, {y:.0}): {got}/9 pixels of {want:?}, centre {:?}", img.px(x as usize, y as usize));
    }
    // map names from the labels layer: the park's label lies inside the park on screen
    let labels = s["map_labels"].as_array().unwrap();
    let park = labels.iter().find(|l| l["name"] == "青年公园").unwrap_or_else(|| panic!("no park label: {labels:?}"));
    assert!(labels.iter().any(|l| l["name"] == "浑河"), "{labels:?}");
    let (x0, y1) = cam.project(at(100.0, 120.0).0, at(100.0, 120.0).1, 0.0);
    let (x1, y0) = cam.project(at(300.0, 330.0).0, at(300.0, 330.0).1, 0.0);
    let (lx, ly) = (park["screen"][0].as_f64().unwrap(), park["screen"][1].as_f64().unwrap());
    assert!(lx > x0 && lx < x1 && ly > y0 && ly < y1, "park label at ({lx:.0}, {ly:.0}), park spans ({x0:.0}…{x1:.0}, {y0:.0}…{y1:.0})");
    // the district choropleth (default in planner mode: the command theme's events_open, a count
    // without bands, so on the documented YlOrRd ramp over the districts' values): 西区 has two
    // open events, 东区 one — the server's per-district values, checked by hand here
    let (st, ov) = get_json(&format!("{base}/api/indicators/events_open/values"));
    assert_eq!(st, 200, "{ov}");
    let per_district: std::collections::BTreeMap<String, f64> = ov["values"].as_array().unwrap().iter()
        .filter(|v| v["area"] != "city").map(|v| (v["area"]["name"].as_str().unwrap().to_string(), v["value"].as_f64().unwrap())).collect();
    assert_eq!(per_district, [("东区".to_string(), 1.0), ("西区".to_string(), 2.0)].into_iter().collect(), "{ov}");
    let ch = &s["choropleth"];
    assert_eq!(ch["indicator"], "events_open", "{ch}");
    assert_eq!(ch["banded"], false, "{ch}");
    // ramp: the lowest value is the lightest class, the highest the darkest
    let (light, dark) = ([255u8, 255, 178], [189u8, 0, 38]);
    let drawn = ch["districts"].as_array().unwrap();
    assert_eq!(drawn.len(), 2, "both districts drawn: {ch}");
    for (name, want) in [("西区", dark), ("东区", light)] {
        let d = drawn.iter().find(|d| d["name"] == name).unwrap_or_else(|| panic!("{name} not drawn: {ch}"));
        assert_eq!(rgb_of(&d["srgb"]), want, "{d}");
    }
    // at interior points of each district (off the roads, the park, the markers and the labels)
    for (name, e, n, want) in [("西区", -50.0, 60.0, dark), ("西区", -330.0, 420.0, dark), ("东区", 250.0, 40.0, light), ("东区", 350.0, 440.0, light)] {
        let (lon, lat) = at(e, n);
        let (x, y) = cam.project(lon, lat, 0.0);
        let got = img.patch(x, y, want, 4);
        assert!(got >= 7, "{name} at ({x:.0}, {y:.0}): {got}/9 pixels of {want:?}, centre {:?}", img.px(x as usize, y as usize));
    }
    let legend = ch["legend_texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect::<Vec<_>>();
    assert!(legend[0].contains("分区专题图") && legend[0].contains("在办事件数"), "{legend:?}");
    assert!(legend[1].starts_with("单位: 件") && legend.iter().any(|l| l.contains("无数据")) && legend.iter().any(|l| l.starts_with("1 – 1.2")) && legend.iter().any(|l| l.ends_with("1.8 – 2")), "{legend:?}");

    // bar charts: the command panel's rows are events_open by district, high to low
    let bars = &s["bar_charts"][0];
    assert_eq!(bars["indicator"], "events_open", "{bars}");
    let rows: Vec<(String, f64)> = bars["rows"].as_array().unwrap().iter().map(|r| (r["district"].as_str().unwrap().to_string(), r["value"].as_f64().unwrap())).collect();
    assert_eq!(rows, vec![("西区".to_string(), 2.0), ("东区".to_string(), 1.0)], "{bars}");
    // drawn: the bars are in the accent colour (events_open has no bands), the longer one twice
    // the shorter, and the track right of the shorter bar is not bar-coloured
    let accent = [90u8, 200, 255];
    let rect = |k: usize| -> [f64; 4] {
        let r = bars["rows"][k]["rect"].as_array().unwrap_or_else(|| panic!("row {k} has no rect: {bars}"));
        [r[0].as_f64().unwrap(), r[1].as_f64().unwrap(), r[2].as_f64().unwrap(), r[3].as_f64().unwrap()]
    };
    let (r0, r1) = (rect(0), rect(1));
    assert!(((r0[2] - r0[0]) / (r1[2] - r1[0]) - 2.0).abs() < 0.1, "bar widths {r0:?} {r1:?}");
    for r in [r0, r1] {
        let (cx, cy) = ((r[0] + r[2]) / 2.0, (r[1] + r[3]) / 2.0);
        assert!(near(img.px(cx as usize, cy as usize), accent, 16), "bar at ({cx:.0}, {cy:.0}): {:?}", img.px(cx as usize, cy as usize));
    }
    let past = img.px((r1[2] + (r0[2] - r1[2]) / 2.0) as usize, ((r1[1] + r1[3]) / 2.0) as usize);
    assert!(!near(past, accent, 40), "the track beside the shorter bar: {past:?}");

    // sparklines: each card's points are the series' values (non-null), last 24 h
    let (st, ser) = get_json(&format!("{base}/api/indicators/events_open/series"));
    assert_eq!(st, 200, "{ser}");
    let pts = ser["points"].as_array().unwrap();
    let sp = s["sparklines"].as_array().unwrap().iter().find(|x| x["indicator"] == "events_open").cloned().unwrap();
    assert_eq!(sp["total"].as_u64().unwrap() as usize, pts.len(), "{sp}");
    let non_null = pts.iter().filter(|p| !p[1].is_null()).count();
    // (a 15-minute boundary may pass between the viewer's fetch and ours: one more point then)
    let got = sp["points"].as_u64().unwrap() as usize;
    assert!(got == non_null || got + 1 == non_null, "sparkline {got} points, series {non_null}: {sp}");
    assert!(s["sparklines"].as_array().unwrap().iter().all(|x| x["total"].as_u64().is_some_and(|n| n >= 24)), "every card has its series");

    // the alarm ticker: the newest severe event first, scrolling at a constant speed
    let tk = &s["ticker"];
    let newest = tk["newest"].as_str().unwrap_or_else(|| panic!("no alarms: {tk}"));
    assert!(newest.contains("老人晕倒"), "{tk}");
    assert!(tk["text"].as_str().unwrap().starts_with(&format!("告警: {newest}")), "{tk}");
    let ticker_ok = |tk: &Value| {
        let (speed, period) = (tk["speed_px_s"].as_f64().unwrap(), tk["period_px"].as_f64().unwrap());
        assert!(period > 100.0, "{tk}");
        let f = |k: &str| (tk[k][0].as_f64().unwrap(), tk[k][1].as_f64().unwrap());
        let ((t0, o0), (t1, o1)) = (f("first"), f("last"));
        assert!(t1 - t0 > 0.5 && (o1 - o0).abs() > 1.0, "the ticker moved between two frames: {tk}");
        for (t, o) in [(t0, o0), (t1, o1)] {
            let want = -((t * speed) % period);
            assert!((o - want).abs() < 0.5 || (o - want).abs() > period - 0.5, "offset {o} at {t} s, expected {want}: {tk}");
        }
    };
    ticker_ok(tk);
    // the ticker strip (bottom 130 of 2160 px) holds text: several colours along its middle
    let strip: std::collections::HashSet<[u8; 3]> = (0..640).map(|x| img.px(x, 360 - 11)).collect();
    assert!(strip.len() > 4, "ticker strip has {} colours", strip.len());

    // panels: zh texts, the event list sorted by severity, KPI cards
    let texts: Vec<String> = s["panel_texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    let all = texts.join("\n");
    assert!(all.contains("沈阳城市运行指挥舱") && all.contains("事件列表 (3)") && all.contains("在办事件数"), "{all}");
    let rows: Vec<&String> = texts.iter().filter(|t| t.starts_with('●')).collect();
    assert_eq!(rows.len(), 3, "{all}");
    assert!(rows[0].contains("老人晕倒") && rows[1].contains("两车相撞") && rows[2].contains("仓库冒烟"), "severity order: {rows:?}");
    let (ist, ivals) = get_json(&format!("{base}/api/indicators/values"));
    if ist == 200 {
        // the server serves indicators: the open-events card shows the city value
        let v = ivals.as_array().or(ivals["values"].as_array()).unwrap().iter().find(|v| v["id"] == "events_open" && v["area"] == "city").cloned();
        if let Some(n) = v.and_then(|v| v["value"].as_f64()) {
            // the card's value text follows its name
            let i = texts.iter().position(|t| t == "在办事件数").expect("the open-events card");
            assert!(texts[i + 1].starts_with(&format!("{n:.0}")), "events_open = {n}, card shows {}", texts[i + 1]);
        }
    } else {
        // not served (yet): every KPI card shows the placeholder
        assert_eq!(s["indicators"]["polled"], true);
        assert_eq!(texts.iter().filter(|t| *t == "—").count(), 11, "{all}");
    }
    assert!(!all.contains("Events ("), "{all}");

    // English, the 1920×1080 layout: the same state in the other language; the title bar and
    // side panels cover the screen's edges, the city shows in the middle
    let shot_en = tmp.0.join("en.png");
    let (ok, s2, err) = run_viewer(&["--server", &base, "--tileset", "fixture", "--headless", "--screenshot", shot_en.to_str().unwrap(), "--size", "1920x1080", "--at", &at_s, "--timeout", "400", "--wait-events", "3", "--lang", "en", "--no-ground-map"]);
    assert!(ok, "viewer failed: {err}");
    let all_en = s2["panel_texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect::<Vec<_>>().join("\n");
    assert!(all_en.contains("Shenyang City Operations Cockpit") && all_en.contains("Events (3)") && all_en.contains("Open events"), "{all_en}");
    assert!(!all_en.contains("事件列表") && !all_en.contains("指挥舱"), "{all_en}");
    // the legend in English; the ticker scrolls here too, its newest alarm first
    let legend = s2["choropleth"]["legend_texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect::<Vec<_>>();
    assert!(legend[0].contains("District map") && legend[0].contains("Open events") && legend.iter().any(|l| l.contains("no value")), "{legend:?}");
    assert!(s2["ticker"]["text"].as_str().unwrap().starts_with("Alarms: ") && s2["ticker"]["newest"].as_str().unwrap().contains("老人晕倒"), "{}", s2["ticker"]);
    ticker_ok(&s2["ticker"]);
    let img = Png::read(&shot_en);
    let sky = rgb_of(&s2["sky_srgb"]);
    let ground = rgb_of(&s2["ground_srgb"]);
    let bg = |c: [u8; 3]| near(c, sky, 3) || near(c, ground, 3);
    // title bar (top 60 px at 1080) and panels (left 15…515 px) are not the scene's colours
    assert!(!bg(img.px(960, 20)) && !bg(img.px(200, 540)) && !bg(img.px(1700, 540)), "{:?} {:?} {:?}", img.px(960, 20), img.px(200, 540), img.px(1700, 540));
    // text is drawn: the title bar has more than one colour along its middle row
    let row: std::collections::HashSet<[u8; 3]> = (0..1920).map(|x| img.px(x, 30)).collect();
    assert!(row.len() > 8, "title bar row has {} colours: no text?", row.len());
    // the middle shows the ground map (bare ground there)
    let (lon, lat) = at(-50.0, 60.0);
    let cam2 = Cam::new(C.0, C.1, 900.0, 0.0, -90.0, 1920.0, 1080.0);
    let (x, y) = cam2.project(lon, lat, 0.0);
    assert!(near(img.px(x as usize, y as usize), ground, 3), "ground in the middle at ({x:.0}, {y:.0}): {:?}", img.px(x as usize, y as usize));

    // the dispatcher: select the critical event, get recommendations, assign the first one
    let (eid, elon, elat) = evs[2];
    let (st, rec) = get_json(&format!("{base}/api/events/{eid}/recommend?k=3"));
    assert_eq!(st, 200, "{rec}");
    let unit = rec["recommendations"][0]["unit"]["id"].as_i64().expect("a recommended unit");
    let shot_d = tmp.0.join("dispatch.png");
    let dkey = dispatcher_key(&model, "viewer-dispatcher");
    let (ok, s3, err) = run_viewer(&["--server", &base, "--tileset", "fixture", "--headless", "--screenshot", shot_d.to_str().unwrap(), "--size", "640x360", "--timeout", "400",
        "--token", &dkey, "--mode", "dispatcher", "--select-event", &eid.to_string(), "--assign-unit", &unit.to_string(), "--no-ground-map"]);
    assert!(ok, "viewer failed: {err}");
    eprintln!("dispatch: {}", s3["dispatch"]);
    assert_eq!(s3["dispatch"]["assign_status"], 200, "{}", s3["dispatch"]);
    assert_eq!(s3["dispatch"]["assigned"], unit);
    assert_eq!(s3["dispatch"]["flown_to"][0].as_f64().unwrap(), elon);
    assert!(s3["dispatch"]["recommended"].as_array().unwrap().len() >= 1);
    // the server has the assignment; the viewer saw it through the stream
    let (_, ev) = get_json(&format!("{base}/api/events/{eid}"));
    assert_eq!(ev["state"], "dispatched", "{ev}");
    assert!(ev["units"].as_array().unwrap().contains(&json!(unit)), "{ev}");
    let um = s3["unit_markers"].as_array().unwrap().iter().find(|m| m["id"] == unit).cloned().unwrap();
    assert_eq!(um["category"], rec["recommendations"][0]["unit"]["kind"]);
    let texts = s3["panel_texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect::<Vec<_>>().join("\n");
    assert!(texts.contains(&format!("事件详情 #{eid}")) && texts.contains("推荐力量") && texts.contains(&format!("已派遣: #{unit}")), "{texts}");
    // flown to: the event is in the middle column of the view, its marker drawn there
    let m = s3["event_markers"].as_array().unwrap().iter().find(|m| m["id"] == eid).cloned().unwrap();
    let (x, y) = (m["screen"][0].as_f64().unwrap(), m["screen"][1].as_f64().unwrap());
    assert!((x - 320.0).abs() < 2.0 && (y - 180.0).abs() < 2.0, "selected event at ({x}, {y}), expected the view's centre");
    let img = Png::read(&shot_d);
    assert!(img.patch(x, y, PALETTE[3], 6) >= 7, "critical marker at the centre: {:?}", img.px(x as usize, y as usize));

    // leader: the tour's first stop is the command theme, its focus the most severe open event
    // (#3, now dispatched); the camera flies there (1.5–3 s) and shows it in the middle
    let shot_l = tmp.0.join("leader.png");
    let (ok, s4, err) = run_viewer(&["--server", &base, "--tileset", "fixture", "--headless", "--screenshot", shot_l.to_str().unwrap(), "--size", "320x180", "--timeout", "400",
        "--mode", "leader", "--hold", "4", "--choropleth", "aqi_1h"]);
    assert!(ok, "viewer failed: {err}");
    let tour = &s4["tour"];
    assert_eq!((tour["theme"].as_u64(), tour["stops"].as_u64()), (Some(0), Some(1)), "{tour}");
    assert_eq!((tour["focus"][0].as_f64().unwrap(), tour["focus"][1].as_f64().unwrap()), (elon, elat), "{tour}");
    let m = s4["event_markers"].as_array().unwrap().iter().find(|m| m["id"] == eid).cloned().unwrap();
    let (x, y) = (m["screen"][0].as_f64().unwrap(), m["screen"][1].as_f64().unwrap());
    assert!((x - 160.0).abs() < 2.0 && (y - 90.0).abs() < 2.0, "tour focus at ({x}, {y}), expected the view's centre");
    // … in a flight that landed before the screenshot: the camera is the flight's target
    let f = &s4["flights"][0];
    assert_eq!((f["reason"].as_str(), f["state"].as_str()), (Some("tour"), Some("arrived")), "{}", s4["flights"]);
    let (cam, to) = (&s4["camera"], &f["to"]);
    assert!((cam["lon"].as_f64().unwrap() - to[0].as_f64().unwrap()).abs() < 1e-7 && (cam["lat"].as_f64().unwrap() - to[1].as_f64().unwrap()).abs() < 1e-7, "camera {cam}, flight {f}");
    let texts = s4["panel_texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect::<Vec<_>>().join("\n");
    assert!(texts.contains("领导模式 · 巡览专题: 指挥调度"), "{texts}");
    // --choropleth aqi_1h: no air sensors here, so both districts are drawn neutral (not left
    // out), and the legend lists the indicator's bands (assets/indicators/environment.toml)
    let ch = &s4["choropleth"];
    assert_eq!((ch["indicator"].as_str(), ch["banded"].as_bool()), (Some("aqi_1h"), Some(true)), "{ch}");
    let drawn = ch["districts"].as_array().unwrap();
    // (the ground map covers the start view around the fixture's building: 东区 at least)
    assert!(!drawn.is_empty() && drawn.iter().all(|d| d["source"] == "none" && rgb_of(&d["srgb"]) == rgb_of(&ch["neutral_srgb"])), "{ch}");
    let legend = ch["legend_texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect::<Vec<_>>();
    assert_eq!(legend[2..].to_vec(), vec!["≤ 50  优", "50 – 100  良", "100 – 150  轻度污染", "150 – 200  中度污染", "200 – 300  重度污染", "> 300  严重污染", "—  无数据"], "{legend:?}");
}

/// Issue 7: the choropleth drew only the districts inside the ground map's area (at most ±10 km
/// around the view). A third district 30 km north of the fixture, far outside the view from 900 m
/// over C: the summary lists every district of the model with its colour (events_open, a count:
/// 西区 1 event on the ramp's darkest class, the others 0 on its lightest).
#[test]
fn the_choropleth_draws_every_district_of_the_model() {
    let tmp = TempDir::new("districts");
    let far = json!({"type": "Feature", "properties": {"boundary": "administrative", "adcode": 910003, "name": "北郊", "name:en": "North"},
        "geometry": {"type": "Polygon", "coordinates": ring(&[(-2500.0, 28000.0), (2500.0, 28000.0), (2500.0, 32000.0), (-2500.0, 32000.0)])}});
    let model = build_fixture_from(&tmp.0, fixture_with(vec![far]));
    let srv = serve_on(&model, free_port());
    let base = srv.base.clone();
    // (a long title: the event row is cut to one line with an ellipsis, below)
    let title = "沿街商铺占道经营并堆放杂物影响行人和非机动车通行，群众多次通过12345热线反映要求尽快处理";
    post_event(&base, "city_management", 2, title, -220.0, 230.0);
    let shot = tmp.0.join("districts.png");
    let at_s = format!("{},{},900,0,-90", C.0, C.1);
    let (ok, s, err) = run_viewer(&["--server", &base, "--tileset", "fixture", "--headless", "--screenshot", shot.to_str().unwrap(), "--size", "1920x1080", "--at", &at_s, "--timeout", "400", "--wait-events", "1"]);
    assert!(ok, "viewer failed: {err}");
    eprintln!("event rows: {} · choropleth: {}", s["event_rows"], s["choropleth"]["districts"]);
    // issue 7: long event rows wrapped at 1920×1080; now one line (a line is ≈ 1.2–1.3 font
    // sizes high, two would be ≥ 2.4), the title cut with "…"
    let rows = &s["event_rows"];
    let font = rows["font_px"].as_f64().unwrap();
    assert!((font - 17.0).abs() < 0.01, "{rows}");
    let heights: Vec<f64> = rows["heights_px"].as_array().unwrap().iter().map(|h| h.as_f64().unwrap()).collect();
    assert_eq!(heights.len(), 1, "{rows}");
    assert!(heights.iter().all(|h| *h > 0.8 * font && *h < 1.8 * font), "{rows}");
    let texts = s["panel_texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect::<Vec<_>>();
    let row = texts.iter().find(|t| t.contains("沿街商铺")).unwrap_or_else(|| panic!("no event row: {texts:?}"));
    assert!(row.contains('…') && !row.contains("尽快处理") && row.contains("剩余"), "{row}");
    let ch = &s["choropleth"];
    assert_eq!(ch["indicator"], "events_open", "{ch}");
    let drawn: std::collections::BTreeMap<String, [u8; 3]> = ch["districts"].as_array().unwrap().iter().map(|d| (d["name"].as_str().unwrap().to_string(), rgb_of(&d["srgb"]))).collect();
    let (light, dark) = ([255u8, 255, 178], [189u8, 0, 38]);
    let want: std::collections::BTreeMap<String, [u8; 3]> = [("西区", dark), ("东区", light), ("北郊", light)].into_iter().map(|(n, c)| (n.to_string(), c)).collect();
    assert_eq!(drawn, want, "{ch}");
}

/// Lines of a child's stderr, as they come.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let (tx, rx) = channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_line(rx: &Receiver<String>, what: &str, secs: u64) -> String {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            if l.contains(what) {
                return l;
            }
        }
    }
    panic!("no '{what}' from the viewer in {secs} s");
}

#[test]
fn the_viewer_keeps_rendering_through_a_server_restart_and_resumes_the_stream() {
    let tmp = TempDir::new("restart");
    let model = build_fixture(&tmp.0);
    let port = free_port();
    let srv = serve_on(&model, port);
    let base = srv.base.clone();
    post_event(&base, "fire", 2, "first", -100.0, 100.0);
    let shot = tmp.0.join("restart.png");
    let at_s = format!("{},{},900,0,-90", C.0, C.1);
    let mut child = Command::new(viewer())
        .args(["--server", &base, "--tileset", "fixture", "--headless", "--screenshot", shot.to_str().unwrap(), "--size", "320x180", "--at", &at_s, "--timeout", "400", "--wait-events", "2", "--no-ground-map"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut child);
    wait_line(&rx, "stream connected", 120);
    // the server goes away: the viewer notices and keeps rendering
    drop(srv);
    wait_line(&rx, "reconnecting", 60);
    std::thread::sleep(Duration::from_secs(15));
    // back on the same port with the same store; a change made after the restart
    let srv = serve_on(&model, port);
    wait_line(&rx, "stream connected", 60);
    let (id2, _, _) = post_event(&base, "flooding", 3, "second", 100.0, -100.0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let s: Value = stdout.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v.get("tileset").is_some())).expect("summary");
    eprintln!("summary: {s}");
    let st = &s["stream"];
    assert_eq!(st["connected"], true, "{st}");
    assert!(st["reconnects"].as_u64().unwrap() >= 1, "{st}");
    assert_eq!(st["snapshots"], 1, "resumed with since=seq, no second snapshot: {st}");
    assert!(st["outage_frames"].as_u64().unwrap() > 0, "frames rendered while the server was away: {st}");
    assert_eq!(s["overlays"]["events"], 2, "{s}");
    assert!(s["event_markers"].as_array().unwrap().iter().any(|m| m["id"] == id2), "{s}");
    // the viewer's last seq is the server's head: nothing missed, nothing repeated
    let metrics = agent().get(&format!("{base}/metrics")).header("authorization", format!("Bearer {ADMIN_KEY}")).call().unwrap().body_mut().read_to_string().unwrap();
    let head: f64 = metrics.lines().find_map(|l| l.strip_prefix("citytwin_changes_seq{").and_then(|r| r.split_once(' ')).map(|(_, v)| v.trim().parse().unwrap())).expect("head metric");
    assert_eq!(st["last_seq"].as_f64().unwrap(), head, "{st}");
    assert_eq!(st["stale_deltas"], 0);
    // the frame is not blank: the markers are drawn
    let img = Png::read(&shot);
    let colours: std::collections::HashSet<[u8; 3]> = img.rgb.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    assert!(colours.len() > 5 && img.rgb.chunks(3).any(|c| near([c[0], c[1], c[2]], PALETTE[2], 6)), "severity-3 marker visible");
    drop(srv);
}
