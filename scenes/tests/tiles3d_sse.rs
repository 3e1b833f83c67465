//! Which tiles a 3D Tiles client selects at the documented distances: a client-side
//! screen-space-error traversal (CesiumJS rules: refine while SSE > 16, REPLACE; SSE from the
//! distance between the camera and the tile's bounding region, 1080 px high view, 60° field of
//! view) over the tileset of a synthetic 12 × 12 km city, from several camera positions.

use geo_types::{polygon, MultiPolygon};
use scenes::geodesy::{ecef_to_geodetic, geodetic_to_ecef};
use scenes::model::*;
use scenes::threed::{self, tileset::L2_DISTANCE_M, tileset::L3_DISTANCE_M, Options};
use tiles::tileset::{SseModel, Tile, Tileset};

const LON0: f64 = 123.4315;
const LAT0: f64 = 41.8057;

fn city() -> CityModel {
    let mut m = CityModel::empty("grid");
    m.sources.push(SourceInfo { path: "synthetic".into(), kind: "test".into(), crs: "EPSG:4326".into(), datum: None });
    let (mx, my) = scenes::geodesy::metres_per_degree(LAT0);
    // 120 × 120 buildings every 100 m: 12 km across, 20 × 20 m, 10–40 m high
    for i in 0..120 {
        for j in 0..120 {
            let (x, y) = (-6000.0 + i as f64 * 100.0, -6000.0 + j as f64 * 100.0);
            let (lon, lat) = (LON0 + x / mx, LAT0 + y / my);
            let (dx, dy) = (20.0 / mx, 20.0 / my);
            let fp = polygon![(x: lon, y: lat), (x: lon + dx, y: lat), (x: lon + dx, y: lat + dy), (x: lon, y: lat + dy)];
            m.buildings.push(Building::block(
                SourceRef { source: 0, id: format!("{i}-{j}") },
                MultiPolygon(vec![fp]),
                10.0 + ((i * 7 + j * 3) % 31) as f32,
                BuildingUse::ALL[(i + j) % 12],
            ));
        }
    }
    m.renumber();
    m
}

/// Distance from a camera (ECEF) to a region: to the nearest point of the geodetic box.
fn distance_to_region(cam: [f64; 3], r: &[f64; 6]) -> f64 {
    let (lon, lat, h) = ecef_to_geodetic(cam);
    let (lon, lat) = (lon.to_radians().clamp(r[0], r[2]), lat.to_radians().clamp(r[1], r[3]));
    let p = geodetic_to_ecef(lon.to_degrees(), lat.to_degrees(), h.clamp(r[4], r[5]));
    ((p[0] - cam[0]).powi(2) + (p[1] - cam[1]).powi(2) + (p[2] - cam[2]).powi(2)).sqrt()
}

/// Content tiles selected from `cam`, with the distance to their parent's region.
fn select<'a>(t: &'a Tile, cam: [f64; 3], sse: &SseModel, parent_d: f64, out: &mut Vec<(&'a Tile, f64)>) {
    let d = distance_to_region(cam, t.bounding_volume.region.as_ref().unwrap());
    if sse.sse(t.geometric_error, d) > sse.max_sse && !t.children.is_empty() {
        for c in &t.children {
            select(c, cam, sse, d, out);
        }
    } else if t.content.is_some() {
        out.push((t, parent_d));
    }
}

fn parent_distances<'a>(t: &'a Tile, cam: [f64; 3], out: &mut Vec<(&'a Tile, f64)>) {
    let d = distance_to_region(cam, t.bounding_volume.region.as_ref().unwrap());
    for c in &t.children {
        if c.content.is_some() {
            out.push((c, d));
        }
        parent_distances(c, cam, out);
    }
}

#[test]
fn l2_tiles_are_selected_exactly_within_two_km_and_would_refine_within_500_m() {
    let m = city();
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options { max_features_per_tile: 400, ..Default::default() };
    let s = threed::write(&m, tmp.path(), &opts).unwrap();
    assert_eq!(s.buildings, 14_400);
    assert!(s.tiles >= 36, "{}", s.tiles);
    let ts: Tileset = serde_json::from_slice(&std::fs::read(tmp.path().join("tileset.json")).unwrap()).unwrap();
    let sse = SseModel::default();
    let cases = [
        // (camera above the centre at height h) → expect L2 content?
        (3000.0, false),
        (2100.0, false),
        (1500.0, true),
        (300.0, true),
    ];
    for (h, expect) in cases {
        let cam = geodetic_to_ecef(LON0, LAT0, h);
        let mut sel = vec![];
        // the tileset's own geometric error decides whether the root is traversed at all
        let d_root = distance_to_region(cam, ts.root.bounding_volume.region.as_ref().unwrap());
        if sse.sse(ts.geometric_error, d_root) > sse.max_sse {
            select(&ts.root, cam, &sse, d_root, &mut sel);
        }
        assert_eq!(!sel.is_empty(), expect, "camera at {h} m: {} L2 tiles selected", sel.len());
        // selected ⇔ the L2 tile's parent is within the L2 distance (34.21 m at SSE 16)
        let mut all = vec![];
        parent_distances(&ts.root, cam, &mut all);
        for (t, pd) in &all {
            let is_sel = sel.iter().any(|(s, _)| std::ptr::eq(*s, *t));
            if *pd < L2_DISTANCE_M - 1.0 {
                assert!(is_sel, "camera at {h} m: tile {:?} with parent at {pd:.0} m not selected", t.content);
            }
            if *pd > L2_DISTANCE_M + 1.0 {
                assert!(!is_sel, "camera at {h} m: tile {:?} with parent at {pd:.0} m selected", t.content);
            }
        }
        // far tiles at the city's edge are never selected from the centre below 2 km
        if h < 2000.0 {
            assert!(sel.len() < all.len(), "everything selected from {h} m");
        }
    }
    // L2 tiles carry the L3 hook: their SSE exceeds 16 exactly inside 500 m
    let l2_ge = s.geometric_errors.l2;
    assert!(sse.sse(l2_ge, L3_DISTANCE_M - 1.0) > 16.0 && sse.sse(l2_ge, L3_DISTANCE_M + 1.0) < 16.0);
    assert!(sse.sse(s.geometric_errors.l3, 149.0) > 16.0 && sse.sse(s.geometric_errors.l3, 151.0) < 16.0);
}

#[test]
fn invalid_footprints_are_repaired_for_their_block_and_bad_heights_skipped() {
    let mut m = city();
    m.buildings.truncate(3);
    // a bow-tie (self-intersecting) footprint: repaired by the boolean union, then extruded
    let (lon, lat) = (LON0, LAT0);
    m.buildings[0].footprint =
        MultiPolygon(vec![polygon![(x: lon, y: lat), (x: lon + 0.0004, y: lat + 0.0004), (x: lon + 0.0004, y: lat), (x: lon, y: lat + 0.0002)]]);
    m.buildings[1].height = -2.0;
    let tmp = tempfile::tempdir().unwrap();
    let s = threed::write(&m, tmp.path(), &Options::default()).unwrap();
    assert_eq!(s.buildings, 2, "{s:?}");
    assert_eq!(s.repaired[threed::REPAIRED_REASON].count, 1);
    assert_eq!(s.repaired[threed::REPAIRED_REASON].examples[0].feature, "0-0 (building 0)");
    assert_eq!(s.skipped["zero or negative height"].count, 1);
    assert_eq!(s.skipped["zero or negative height"].examples[0].feature, "0-1 (building 1)");
}
