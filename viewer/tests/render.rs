//! End-to-end: the viewer binary renders off-screen (lavapipe) against a real twin-server and
//! against third-party tilesets; the screenshots are checked on content: pixels at the projected
//! positions of known buildings (from `/api/buildings`, projected with camera maths written here
//! independently of the viewer's) are building-coloured, an empty patch of the model shows ground,
//! the sky is above the horizon. Needs `twin-server` built next to `viewer` (scripts/test.sh
//! builds the workspace first) and the shared data at ../shared/data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod support;
use support::*;


fn shared_data() -> PathBuf {
    if let Ok(p) = std::env::var("CITYTWIN_SHARED_DATA") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    assert!(p.is_dir(), "shared test data not found at {} (set CITYTWIN_SHARED_DATA)", p.display());
    p.canonicalize().unwrap()
}

fn serve(model: &Path) -> Server {
    // the demo's access mode: the viewer reads without a key
    start_server(&["--anonymous-read"], model, free_port())
}

fn get_json(url: &str) -> Value {
    ureq::get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}")).body_mut().read_json().unwrap()
}

struct Run {
    out: Output,
    summary: Value,
}

fn run_viewer(args: &[&str]) -> Run {
    let out = Command::new(viewer()).args(args).output().expect("run viewer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v.get("tileset").is_some()))
        .unwrap_or(Value::Null);
    Run { out, summary }
}

fn stderr(r: &Run) -> String {
    String::from_utf8_lossy(&r.out.stderr).into_owned()
}

// ---- camera maths, written independently of the viewer: WGS-84 → ECEF, the camera's ENU
// basis at its own position, heading clockwise from north, pitch above the horizon, pinhole
// projection with a 60° vertical field of view.

/// Outer ring of a GeoJSON Polygon / MultiPolygon as (lon, lat) without the closing point.
fn outer_ring(g: &Value) -> Vec<(f64, f64)> {
    let ring = match g["type"].as_str() {
        Some("Polygon") => &g["coordinates"][0],
        Some("MultiPolygon") => &g["coordinates"][0][0],
        t => panic!("geometry type {t:?}"),
    };
    let mut v: Vec<(f64, f64)> = ring.as_array().unwrap().iter().map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())).collect();
    v.pop();
    v
}

fn inside(p: (f64, f64), ring: &[(f64, f64)]) -> bool {
    let mut c = false;
    let mut j = ring.len() - 1;
    for i in 0..ring.len() {
        let (a, b) = (ring[i], ring[j]);
        if (a.1 > p.1) != (b.1 > p.1) && p.0 < (b.0 - a.0) * (p.1 - a.1) / (b.1 - a.1) + a.0 {
            c = !c;
        }
        j = i;
    }
    c
}

/// Area-weighted centroid and area (m²) of a small ring in lon/lat.
fn centroid(ring: &[(f64, f64)]) -> ((f64, f64), f64) {
    let (lon0, lat0) = ring[0];
    let kx = 111_320.0 * lat0.to_radians().cos();
    let ky = 110_950.0;
    let pts: Vec<(f64, f64)> = ring.iter().map(|p| ((p.0 - lon0) * kx, (p.1 - lat0) * ky)).collect();
    let (mut a, mut cx, mut cy) = (0.0, 0.0, 0.0);
    for i in 0..pts.len() {
        let (p, q) = (pts[i], pts[(i + 1) % pts.len()]);
        let cr = p.0 * q.1 - q.0 * p.1;
        a += cr;
        cx += (p.0 + q.0) * cr;
        cy += (p.1 + q.1) * cr;
    }
    let a2 = a / 2.0;
    ((lon0 + cx / (6.0 * a2) / kx, lat0 + cy / (6.0 * a2) / ky), a2.abs())
}

#[test]
fn default_city_headless_screenshot_shows_buildings_where_the_model_has_them() {
    let tmp = TempDir::new("city");
    let model = tmp.path().join("sy");
    let o = Command::new(twin_server()).args(["build", "--no-tiles", "--out"]).arg(&model).env("RUST_LOG", "warn").output().unwrap();
    assert!(o.status.success(), "build: {}", String::from_utf8_lossy(&o.stderr));
    let srv = serve(&model);
    let base = &srv.base;

    // camera 800 m south of 市府广场, 400 m up, looking north 25° down; flat ground at 0 m
    let (tlon, tlat) = (123.4315, 41.8057);
    let (w, h) = (960.0, 720.0);
    let (clon, clat, calt, heading, pitch) = (tlon, tlat - 800.0 / 110_950.0, 400.0, 0.0, -25.0);
    let cam = Cam::new(clon, clat, calt, heading, pitch, w, h);
    let shot = tmp.path().join("city.png");
    let at = format!("{clon},{clat},{calt},{heading},{pitch}");
    let r = run_viewer(&["--server", base, "--headless", "--screenshot", shot.to_str().unwrap(), "--size", "960x720", "--at", &at, "--timeout", "400", "--no-live"]);
    assert!(r.out.status.success(), "viewer failed: {}", stderr(&r));
    assert!(!stderr(&r).contains("panicked"), "{}", stderr(&r));
    let s = &r.summary;
    eprintln!("summary: {s}");
    assert_eq!(s["complete"], true, "view incomplete: {s}");
    assert!(s["tiles_loaded"].as_u64().unwrap() > 0 && s["tiles_in_view"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["tiles_failed"], 0, "{s}");
    assert!(s["triangles"].as_u64().unwrap() > 1000, "{s}");
    assert!(s["time_to_complete_s"].as_f64().is_some());
    let img = Png::read(&shot);
    assert_eq!((img.w, img.h), (960, 720));
    let sky = rgb_of(&s["sky_srgb"]);
    let ground = rgb_of(&s["ground_srgb"]);
    let is_bg = |c: [u8; 3]| near(c, sky, 3) || near(c, ground, 3);

    // the sky above the horizon, none below it: the horizon is 5° above the top of the view's
    // lower half … at pitch −25 the horizontal ray is at y = h/2 − tan 25°/tan 30° · h/2
    let horizon = h / 2.0 - (25f64.to_radians().tan() / 30f64.to_radians().tan()) * h / 2.0;
    for y in [2.0, horizon - 12.0] {
        for x in [10.0, w / 2.0, w - 10.0] {
            assert!(near(img.px(x as usize, y as usize), sky, 3), "sky expected at ({x}, {y}): {:?}", img.px(x as usize, y as usize));
        }
    }
    let below: usize = (((horizon + 40.0) as usize)..img.h).step_by(7).flat_map(|y| (0..img.w).step_by(7).map(move |x| (x, y))).filter(|&(x, y)| near(img.px(x, y), sky, 3)).count();
    assert_eq!(below, 0, "sky pixels below the horizon (y {horizon:.0})");

    // buildings: the roof centres of the larger buildings around the square that the camera sees
    let bbox = format!("{},{},{},{}", tlon - 0.008, tlat - 0.007, tlon + 0.008, tlat + 0.004);
    let fc = get_json(&format!("{base}/api/buildings?bbox={bbox}&limit=5000"));
    let feats = fc["features"].as_array().unwrap();
    assert!(feats.len() > 50, "{} buildings near 市府广场", feats.len());
    let mut checked = 0;
    let mut misses = vec![];
    for f in feats {
        let ring = outer_ring(&f["geometry"]);
        let (c, area) = centroid(&ring);
        let hgt = f["properties"]["height"].as_f64().unwrap();
        if area < 600.0 || !inside(c, &ring) {
            continue;
        }
        // the roof must be big on screen: its footprint's corners projected span ≥ 12 px
        let Some((x, y)) = cam.project_opt(c.0, c.1, hgt) else { continue };
        if x < 20.0 || y < 20.0 || x > w - 20.0 || y > h - 20.0 {
            continue;
        }
        let span = ring.iter().filter_map(|p| cam.project_opt(p.0, p.1, hgt)).map(|(px, _)| px).fold((f64::MAX, f64::MIN), |a, v| (a.0.min(v), a.1.max(v)));
        if span.1 - span.0 < 12.0 {
            continue;
        }
        // a 3 × 3 patch around the projected roof centre: building, not sky or ground
        let bg = (-1i32..=1).flat_map(|dy| (-1i32..=1).map(move |dx| (dx, dy))).filter(|(dx, dy)| is_bg(img.px((x as i32 + dx) as usize, (y as i32 + dy) as usize))).count();
        checked += 1;
        if bg > 2 {
            misses.push((f["properties"]["id"].clone(), x as i32, y as i32, img.px(x as usize, y as usize)));
        }
    }
    assert!(checked >= 8, "only {checked} buildings big enough on screen");
    assert!(misses.is_empty(), "{} of {checked} projected roofs show background: {misses:?}", misses.len());

    // ground: a pixel in the lower half of the view that no building can cover — outside the
    // projected bounding rectangle of every building prism (footprint from 0 m to its height)
    // within 1.5 km — shows ground
    let vb = format!("{},{},{},{}", clon - 0.013, clat - 0.001, clon + 0.013, clat + 0.0085);
    let all = get_json(&format!("{base}/api/buildings?bbox={vb}&limit=10000"));
    assert_eq!(all["truncated"], false, "too many buildings for the occlusion check");
    let rects: Vec<(f64, f64, f64, f64)> = all["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let hgt = f["properties"]["height"].as_f64().unwrap();
            let ring = outer_ring(&f["geometry"]);
            let mut r = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
            // corners behind the camera are left out: those buildings stand under or behind
            // it, below the view's lowest ray (−55°) at their distance
            for p in &ring {
                for z in [0.0, hgt] {
                    if let Some((x, y)) = cam.project_opt(p.0, p.1, z) {
                        r = (r.0.min(x), r.1.min(y), r.2.max(x), r.3.max(y));
                    }
                }
            }
            r
        })
        .collect();
    let mut free = vec![];
    for y in ((h * 0.55) as usize..(h as usize - 10)).step_by(5) {
        for x in (10..(w as usize - 10)).step_by(5) {
            let (xf, yf) = (x as f64, y as f64);
            if rects.iter().all(|r| xf < r.0 - 3.0 || xf > r.2 + 3.0 || yf < r.1 - 3.0 || yf > r.3 + 3.0) {
                free.push((x, y));
            }
        }
    }
    assert!(free.len() >= 3, "only {} building-free pixels in the lower half of the view", free.len());
    let bad: Vec<_> = free.iter().filter(|&&(x, y)| !near(img.px(x, y), ground, 3)).map(|&(x, y)| (x, y, img.px(x, y))).collect();
    assert!(bad.is_empty(), "{} of {} pixels no building covers are not ground ({ground:?}): {:?}", bad.len(), free.len(), &bad[..bad.len().min(10)]);
    eprintln!("{checked} roofs building-coloured, {} building-free pixels ground-coloured", free.len());
}

#[test]
fn third_party_3dbag_renders_and_unsupported_content_is_reported() {
    let tmp = TempDir::new("bag");
    let dir = shared_data().join("3dtiles/3dbag/tiles");
    let shot = tmp.path().join("3dbag.png");
    let r = run_viewer(&["--tileset", dir.to_str().unwrap(), "--headless", "--screenshot", shot.to_str().unwrap(), "--size", "640x480", "--timeout", "300"]);
    assert!(r.out.status.success(), "viewer failed: {}", stderr(&r));
    let s = &r.summary;
    eprintln!("summary: {s}");
    assert_eq!(s["tileset"], "tiles");
    assert!(s["tiles_loaded"].as_u64().unwrap() > 0 && s["tiles_failed"] == 0 && s["complete"] == true, "{s}");
    let img = Png::read(&shot);
    let (sky, ground) = (rgb_of(&s["sky_srgb"]), rgb_of(&s["ground_srgb"]));
    let drawn = img.rgb.chunks(3).filter(|c| {
        let c = [c[0], c[1], c[2]];
        !near(c, sky, 3) && !near(c, ground, 3)
    });
    let frac = drawn.count() as f64 / (img.w * img.h) as f64;
    assert!(frac > 0.02, "only {:.2} % of the 3D BAG view is buildings", frac * 100.0);
    // picks where the screenshot shows buildings (a 5 × 5 patch of neither sky nor ground), the
    // same view again: each hits a feature whose row equals the tile's own property table as
    // read here with the tiles crate's GLB reader
    let bg = |x: usize, y: usize| {
        let c = img.px(x, y);
        near(c, sky, 3) || near(c, ground, 3)
    };
    let mut targets: Vec<String> = vec![];
    'scan: for y in (20..460).step_by(23) {
        for x in (20..620).step_by(29) {
            if (0..25).all(|k| !bg(x + k % 5 - 2, y + k / 5 - 2)) {
                targets.push(format!("{x},{y}"));
                if targets.len() == 8 {
                    break 'scan;
                }
            }
        }
    }
    assert!(targets.len() >= 3, "only {} building patches found", targets.len());
    let mut args = vec!["--tileset", dir.to_str().unwrap(), "--headless", "--size", "640x480", "--timeout", "300"];
    for t in &targets {
        args.extend(["--click", t.as_str()]);
    }
    let r2 = run_viewer(&args);
    let picks = r2.summary["picks"].as_array().unwrap();
    assert_eq!(picks.len(), targets.len(), "{}", r2.summary);
    for p in picks {
        assert_eq!(p["kind"], "feature", "a building pixel picks a feature (a third-party class): {p}");
        assert!(p["tile_level"].is_null(), "no CityTwin levels in a third-party tileset: {p}");
        let path = p["tile"].as_str().unwrap();
        let glb = tiles::gltf::Glb::parse(&std::fs::read(path).unwrap()).unwrap();
        let row = p["feature"].as_u64().unwrap() as usize;
        let props = p["properties"].as_object().unwrap();
        assert!(!props.is_empty(), "{p}");
        for (k, v) in props {
            let want = glb.property(k).unwrap_or_else(|| panic!("{path}: no column {k}"))[row].clone();
            match v.as_str() {
                Some(s) => assert_eq!(Some(s), want.as_str(), "{k} of feature {row} in {path}"),
                None => assert_eq!(v.as_f64(), want.as_f64(), "{k} of feature {row} in {path}"),
            }
        }
    }

    // test_tyler: meshopt-compressed content is not supported: reported per tile, outlined, no crash
    let shot2 = tmp.path().join("tyler.png");
    let dir2 = shared_data().join("3dtiles/3dbag/test_tyler");
    // (its one content tile is a leaf under content-less parents: a tiny max SSE refines down to it)
    let r = run_viewer(&["--tileset", dir2.to_str().unwrap(), "--headless", "--screenshot", shot2.to_str().unwrap(), "--size", "320x240", "--timeout", "120", "--sse", "0.001"]);
    assert!(r.out.status.success(), "viewer failed: {}", stderr(&r));
    let s = &r.summary;
    assert!(s["tiles_failed"].as_u64().unwrap() > 0, "{s}");
    assert!(s["errors"].to_string().contains("EXT_meshopt_compression"), "{s}");
    assert!(s["placeholders"].as_u64().unwrap() > 0, "{s}");
    assert!(!stderr(&r).contains("panicked"));
}

#[test]
fn wrong_crs_tileset_is_reported_by_name_without_a_panic() {
    let dir = shared_data().join("3dtiles/lyon1-wrong-crs");
    let r = run_viewer(&["--tileset", dir.to_str().unwrap(), "--headless", "--screenshot", "/nonexistent/never.png"]);
    let err = stderr(&r);
    assert_eq!(r.out.status.code(), Some(3), "{err}");
    assert!(err.contains("lyon1-wrong-crs") && err.contains("not in ECEF"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(r.summary["tileset"], "lyon1-wrong-crs");
    assert!(r.summary["error"].as_str().unwrap().contains("km from the Earth's centre"), "{}", r.summary);
    // a tileset that cannot be fetched at all is an error naming it, too
    let r = run_viewer(&["--server", "http://127.0.0.1:9", "--tileset", "nope", "--headless"]);
    assert_eq!(r.out.status.code(), Some(1));
    assert!(stderr(&r).contains("'nope'"), "{}", stderr(&r));
}

#[test]
fn missing_tiles_are_retried_then_outlined_and_the_rest_still_renders() {
    // the 3D BAG tileset with half of its contents removed (a copy in a temp dir)
    let tmp = TempDir::new("partial");
    let src = shared_data().join("3dtiles/3dbag/tiles");
    let dst = tmp.path().join("partial");
    std::fs::create_dir(&dst).unwrap();
    let mut kept = 0;
    let mut names: Vec<_> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    for (i, n) in names.iter().enumerate() {
        let ns = n.to_string_lossy();
        if ns == "tileset.json" || ns == "tile.glb" || i % 2 == 0 {
            std::fs::copy(src.join(n), dst.join(n)).unwrap();
            kept += 1;
        }
    }
    assert!(kept > 10 && kept < names.len());
    let shot = tmp.path().join("partial.png");
    let r = run_viewer(&["--tileset", dst.to_str().unwrap(), "--headless", "--screenshot", shot.to_str().unwrap(), "--size", "640x480", "--timeout", "300"]);
    assert!(r.out.status.success(), "viewer failed: {}", stderr(&r));
    let s = &r.summary;
    eprintln!("summary: {s}");
    assert!(s["retries"].as_u64().unwrap() > 0, "missing files are retried: {s}");
    assert!(s["tiles_failed"].as_u64().unwrap() > 0 && s["tiles_loaded"].as_u64().unwrap() > 0, "{s}");
    assert!(s["placeholders"].as_u64().unwrap() > 0, "{s}");
    let img = Png::read(&shot);
    let orange = rgb_of(&s["placeholder_srgb"]);
    let outline = img.rgb.chunks(3).filter(|c| near([c[0], c[1], c[2]], orange, 4)).count();
    assert!(outline > 20, "placeholder outlines drawn: {outline} px");
    assert!(!stderr(&r).contains("panicked"));
}

/// Where the viewer puts a tileset (its world frame's origin: the root volume's centre) agrees
/// with CesiumJS's reading of the same tileset.json (tests/js/cesium_root_position.mjs: Cesium's
/// own Matrix4.unpack, OrientedBoundingBox and Cartographic): for the 3D BAG `tiles` tileset,
/// whose root box (no transform) lies at lat ≈ 88°, lon ≈ 149° — the data is like that, it is
/// not a misreading — and for synthetic roots that exercise a column-major root transform on a
/// box and a sphere, and a region (which ignores the transform).
#[test]
fn tileset_positions_agree_with_cesium() {
    use serde_json::json;
    use viewer::geodesy::{enu_axes, geodetic_to_ecef};
    let tmp = TempDir::new("cesium-pos");
    // ENU at (123.43°, 41.8°, 50 m) as a column-major 4×4, the usual root transform
    let (r, o) = (enu_axes(123.43, 41.8), geodetic_to_ecef(123.43, 41.8, 50.0));
    let tf: Vec<f64> = [r.x_axis, r.y_axis, r.z_axis].iter().flat_map(|c| [c.x, c.y, c.z, 0.0]).chain([o.x, o.y, o.z, 1.0]).collect();
    // a local box 800 m east, 300 m south of the transform's origin, rotated 30° about up
    let (c30, s30) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
    let boxed = json!({"asset": {"version": "1.1"}, "geometricError": 100, "root": {"transform": tf, "geometricError": 50, "refine": "ADD",
        "boundingVolume": {"box": [800.0, -300.0, 20.0, 120.0 * c30, 120.0 * s30, 0.0, -60.0 * s30, 60.0 * c30, 0.0, 0.0, 0.0, 20.0]}}});
    let sphere = json!({"asset": {"version": "1.1"}, "geometricError": 100, "root": {"transform": tf, "geometricError": 50, "refine": "ADD",
        "boundingVolume": {"sphere": [-1500.0, 2500.0, 30.0, 200.0]}}});
    // a region with a transform that must be ignored
    let (w, s, e, n) = (123.40f64.to_radians(), 41.78f64.to_radians(), 123.46f64.to_radians(), 41.83f64.to_radians());
    let region = json!({"asset": {"version": "1.1"}, "geometricError": 100, "root": {"transform": tf, "geometricError": 50, "refine": "ADD",
        "boundingVolume": {"region": [w, s, e, n, 10.0, 90.0]}}});
    let mut files = vec![shared_data().join("3dtiles/3dbag/tiles/tileset.json")];
    for (name, doc) in [("box", &boxed), ("sphere", &sphere), ("region", &region)] {
        let p = tmp.path().join(format!("{name}.json"));
        std::fs::write(&p, doc.to_string()).unwrap();
        files.push(p);
    }
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js");
    let o = Command::new("node").arg("cesium_root_position.mjs").args(&files).current_dir(&js).output().expect("node");
    assert!(o.status.success(), "node: {}", String::from_utf8_lossy(&o.stderr));
    let cesium: Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("cesium: {cesium}");
    for (i, f) in files.iter().enumerate() {
        let tree = viewer::tileset::Tree::load(&std::fs::read(f).unwrap(), f.to_str().unwrap(), "t").unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
        let (lon, lat, _) = tree.frame.origin;
        let c = &cesium[i];
        let (clon, clat) = (c["lon"].as_f64().unwrap(), c["lat"].as_f64().unwrap());
        // regions: the viewer fits an ECEF box to the region, Cesium another; both centre on it
        let tol = if c["kind"] == "region" { 2e-3 } else { 1e-7 };
        assert!((lon - clon).abs() < tol && (lat - clat).abs() < tol, "{}: viewer ({lon}, {lat}), CesiumJS ({clon}, {clat})", f.display());
    }
    // the 3D BAG root lies where Cesium says, near the pole; the synthetic box ~800 m east of
    // the transform's origin (a row-major misreading would put it thousands of km away)
    assert!((cesium[0]["lat"].as_f64().unwrap() - 88.04).abs() < 0.01 && (cesium[0]["lon"].as_f64().unwrap() - 149.19).abs() < 0.01, "{cesium}");
    let east_m = (cesium[1]["lon"].as_f64().unwrap() - 123.43) * 111_320.0 * 41.8f64.to_radians().cos();
    assert!((east_m - 800.0).abs() < 5.0, "box centre {east_m:.1} m east, expected 800");
}
