//! The built-in Shenyang city through the real CLI and HTTP server: `twin-server build` with no
//! source, the manifest contract, determinism, and the model queries (bbox, pick, k-nearest)
//! checked against brute-force computations over the same model.

mod common;
use common::*;
use geo::{Centroid, Contains, Distance, Euclidean};

#[test]
fn default_city_builds_is_deterministic_and_serves_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let m = build(&a, &[]);

    // Manifest contract.
    assert_eq!(m["format"], "citytwin-model");
    assert_eq!(m["name"], "shenyang");
    assert_eq!(m["generated"], true);
    assert!(m["label"].as_str().unwrap().to_lowercase().contains("generated"), "{}", m["label"]);
    let area = m["built_up_area_km2"].as_f64().unwrap();
    assert!((800.0..=840.0).contains(&area), "built-up area {area} km²");
    let nb = m["layers"]["buildings"].as_u64().unwrap();
    assert!(nb >= 300_000, "{nb} buildings");
    assert_eq!(m["layers"]["districts"], 13);
    // the 190 街道/乡镇 of the NBS list in the shared data (names real, geometry synthetic)
    assert_eq!(m["layers"]["streets"], 190);
    for layer in ["roads", "water", "landuse", "pois"] {
        assert!(m["layers"][layer].as_u64().unwrap() > 0, "{layer}");
    }
    // every building is generated but the landmarks (L4 key buildings from the shared CIM data,
    // heights from their geometry), each from its own source after the built-in one
    let landmarks = m["sources"].as_array().unwrap().len() as u64 - 1;
    assert!(landmarks >= 3, "{} landmark sources", landmarks);
    assert_eq!(m["heights"]["generated"].as_u64().unwrap() + m["heights"]["geometry"].as_u64().unwrap(), nb);
    assert_eq!(m["heights"]["geometry"].as_u64().unwrap(), landmarks);
    assert_eq!(m["sources"][0]["kind"], "builtin");
    assert_eq!(m["sources"][0]["datum"], "gcj02");
    assert!(m["seed"].as_u64().is_some());
    assert!(m["build_duration_s"].as_f64().unwrap() > 0.0);
    let bbox: Vec<f64> = m["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(bbox[0] > 122.0 && bbox[2] < 125.0 && bbox[1] > 41.0 && bbox[3] < 43.5, "{bbox:?}");

    // Same seed → byte-identical model; another seed → different.
    let b = tmp.path().join("b");
    build(&b, &[]);
    assert!(std::fs::read(a.join("model.bin")).unwrap() == std::fs::read(b.join("model.bin")).unwrap(), "same seed, different model");
    assert!(std::fs::read(a.join("index.bin")).unwrap() == std::fs::read(b.join("index.bin")).unwrap());
    let c = tmp.path().join("c");
    build(&c, &["--seed", "7"]);
    assert!(std::fs::read(a.join("model.bin")).unwrap() != std::fs::read(c.join("model.bin")).unwrap());

    // Serve and query.
    let model = scenes::store::read_model(&a).unwrap();
    let srv = serve(&a);
    let (st, man) = get_json(&format!("{}/api/model", srv.base));
    assert_eq!(st, 200);
    assert_eq!(man["layers"]["buildings"].as_u64().unwrap(), nb);

    // Pick: the centroid of some building (deterministic choice) must pick that building (or
    // an overlapping smaller one — generated footprints do not overlap).
    for &i in &[0usize, 1234, 77_777, 250_000, model.buildings.len() - 1] {
        let bld = &model.buildings[i];
        let c = geo::InteriorPoint::interior_point(&bld.footprint).unwrap();
        let (st, f) = get_json(&format!("{}/api/pick?lon={}&lat={}", srv.base, c.x(), c.y()));
        assert_eq!(st, 200, "pick {i}");
        assert_eq!(f["properties"]["id"].as_u64().unwrap(), i as u64);
        assert!((f["properties"]["height"].as_f64().unwrap() - bld.height as f64).abs() < 1e-3);
    }
    // In the river: no building.
    let river = model.water.iter().find(|w| w.class == "river").expect("the Hun river");
    let rp = geo::InteriorPoint::interior_point(&river.geometry).unwrap();
    assert!(river.geometry.contains(&rp));
    let (st, _) = get_json(&format!("{}/api/pick?lon={}&lat={}", srv.base, rp.x(), rp.y()));
    assert_eq!(st, 404);

    // bbox around 市府广场, against brute force over the model.
    let bb = [123.425, 41.800, 123.440, 41.810];
    let rect = geo::Rect::new((bb[0], bb[1]), (bb[2], bb[3]));
    let brute = model.buildings.iter().filter(|b| geo::Intersects::intersects(&b.footprint, &rect)).count();
    let (st, fc) = get_json(&format!("{}/api/buildings?bbox={},{},{},{}&limit=10000", srv.base, bb[0], bb[1], bb[2], bb[3]));
    assert_eq!(st, 200);
    assert_eq!(fc["total"].as_u64().unwrap() as usize, brute);
    assert!(brute > 10, "{brute}");
    assert_eq!(fc["features"].as_array().unwrap().len(), brute.min(10_000));

    // k-nearest buildings: brute force with the index's metric (x scaled by cos φ₀).
    let (qlon, qlat) = (123.4315, 41.8057);
    let kx = ((bbox[1] + bbox[3]) / 2.0).to_radians().cos();
    let q = geo::Point::new(qlon * kx, qlat);
    let mut d: Vec<(f64, u32)> = model
        .buildings
        .iter()
        .map(|b| {
            let fp = geo::MapCoords::map_coords(&b.footprint, |c| geo::Coord { x: c.x * kx, y: c.y });
            (if fp.contains(&q) { 0.0 } else { Euclidean.distance(&q, &fp) }, b.id)
        })
        .collect();
    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (st, r) = get_json(&format!("{}/api/nearest?lon={qlon}&lat={qlat}&k=10", srv.base));
    assert_eq!(st, 200);
    let got: Vec<u64> = r["results"].as_array().unwrap().iter().map(|h| h["feature"]["properties"]["id"].as_u64().unwrap()).collect();
    let want: Vec<u64> = d.iter().take(10).map(|x| x.1 as u64).collect();
    assert_eq!(got, want);

    // Nearest fire station, against brute force haversine (within the 1 % metric tolerance).
    let (st, r) = get_json(&format!("{}/api/nearest?lon={qlon}&lat={qlat}&k=1&layer=pois&kind=fire_station", srv.base));
    assert_eq!(st, 200);
    let best = model
        .pois
        .iter()
        .filter(|p| p.kind == scenes::model::PoiKind::FireStation)
        .map(|p| (scenes::geodesy::haversine_m((qlon, qlat), (p.location.x(), p.location.y())), p.id))
        .min_by(|a, b| a.partial_cmp(b).unwrap())
        .unwrap();
    assert_eq!(r["results"][0]["feature"]["properties"]["id"].as_u64().unwrap(), best.1 as u64);
    let dm = r["results"][0]["distance_m"].as_f64().unwrap();
    assert!((dm - best.0).abs() / best.0 < 0.01, "{dm} vs {}", best.0);

    // Districts and building district labels.
    let (st, ds) = get_json(&format!("{}/api/districts", srv.base));
    assert_eq!(st, 200);
    assert_eq!(ds["features"].as_array().unwrap().len(), 13);
    let heping = model.districts.iter().find(|d| d.adcode == 210102).unwrap();
    let hc = heping.geometry.centroid().unwrap();
    assert!(heping.geometry.contains(&hc));

    // Bad parameters: clear 400s, the server keeps serving.
    for url in [
        "/api/pick?lon=abc&lat=41.8",
        "/api/pick?lat=41.8",
        "/api/pick?lon=200&lat=41.8",
        "/api/buildings?bbox=1,2,3",
        "/api/buildings?bbox=123.5,41.8,123.4,41.9",
        "/api/buildings?bbox=123.4,41.8,123.5,41.9&limit=0",
        "/api/nearest?lon=123.4&lat=41.8&k=100000",
        "/api/nearest?lon=123.4&lat=41.8&layer=pois&kind=spaceport",
        "/api/buildings/notanumber",
    ] {
        let (st, body) = get_json(&format!("{}{url}", srv.base));
        assert_eq!(st, 400, "{url}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{url}: {body}");
    }
    let (st, _) = get_json(&format!("{}/api/buildings/999999999", srv.base));
    assert_eq!(st, 404);
    let (st, _) = get_json(&format!("{}/healthz", srv.base));
    assert_eq!(st, 200);
}
