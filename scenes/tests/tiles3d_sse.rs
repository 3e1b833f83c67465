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

/// The grid city with one district, "中心区", holding the buildings within 1.5 km of the centre
/// (x and y in [−1500, 1500) m), which gets L3 tiles.
fn city_with_focus_district() -> (CityModel, Vec<bool>) {
    let mut m = city();
    let (mx, my) = scenes::geodesy::metres_per_degree(LAT0);
    let (w, s, e, n) = (LON0 - 1500.0 / mx, LAT0 - 1500.0 / my, LON0 + 1500.0 / mx, LAT0 + 1500.0 / my);
    m.districts.push(District {
        id: 0,
        source: SourceRef { source: 0, id: "centre".into() },
        adcode: 999_001,
        names: Names { zh: Some("中心区".into()), ..Default::default() },
        geometry: MultiPolygon(vec![polygon![(x: w, y: s), (x: e, y: s), (x: e, y: n), (x: w, y: n)]]),
        area_km2: 9.0,
    });
    let mut focus = vec![];
    for b in &mut m.buildings {
        let c = geo::Centroid::centroid(&b.footprint).unwrap();
        let inside = c.x() >= w && c.x() < e && c.y() >= s && c.y() < n;
        b.district = inside.then_some(0);
        focus.push(inside);
    }
    (m, focus)
}

fn glb_at(dir: &std::path::Path, uri: &str) -> tiles::gltf::Glb {
    use std::io::Read;
    let gz = std::fs::read(dir.join(format!("{uri}.gz"))).unwrap();
    let mut raw = vec![];
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut raw).unwrap();
    tiles::gltf::Glb::parse(&raw).unwrap()
}

fn ids_of(g: &tiles::gltf::Glb, col: &str) -> Vec<u64> {
    g.property(col).unwrap().iter().map(|v| v.as_f64().unwrap() as u64).collect()
}

/// All content tiles with their parent content tile (if any).
fn content_tiles<'a>(t: &'a Tile, parent: Option<&'a Tile>, out: &mut Vec<(&'a Tile, Option<&'a Tile>)>) {
    let p = if t.content.is_some() {
        out.push((t, parent));
        Some(t)
    } else {
        parent
    };
    for c in &t.children {
        content_tiles(c, p, out);
    }
}

#[test]
fn l3_tiles_replace_l2_tiles_of_focus_districts_with_the_same_buildings() {
    let (m, focus) = city_with_focus_district();
    let n_focus = focus.iter().filter(|f| **f).count();
    assert_eq!(n_focus, 30 * 30);
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options {
        max_features_per_tile: 400,
        l3: threed::L3Districts::parse("中心区").unwrap(),
        max_features_per_l3_tile: 100,
        ..Default::default()
    };
    let s = threed::write(&m, tmp.path(), &opts).unwrap();
    // every focus building is generated at L3 (simple rectangles never fall back)
    assert_eq!(s.l3_buildings as usize, n_focus, "{:?}", s.l3_fallbacks);
    assert!(s.l3_fallbacks.is_empty());
    let ts: Tileset = serde_json::from_slice(&std::fs::read(tmp.path().join("tileset.json")).unwrap()).unwrap();
    let mut all = vec![];
    content_tiles(&ts.root, None, &mut all);
    let l3: Vec<_> = all.iter().filter(|(_, p)| p.is_some()).collect();
    assert_eq!(l3.len() as u64, s.l3_tiles);
    let l2: Vec<&Tile> = all.iter().filter(|(_, p)| p.is_none()).map(|(t, _)| *t).collect();
    let mut refined = 0;
    for t in &l2 {
        let g = glb_at(tmp.path(), &t.content.as_ref().unwrap().uri);
        let mut ids = ids_of(&g, "id");
        ids.sort_unstable();
        let holds_focus = ids.iter().any(|&i| focus[i as usize]);
        // refined exactly when the L2 tile holds focus buildings
        assert_eq!(!t.children.is_empty(), holds_focus, "{:?}", t.content);
        if t.children.is_empty() {
            continue;
        }
        refined += 1;
        // REPLACE: the children hold exactly the L2 tile's buildings, each once
        let mut child_ids = vec![];
        for c in &t.children {
            assert_eq!(c.geometric_error, s.geometric_errors.l3);
            assert!(c.children.is_empty());
            let cg = glb_at(tmp.path(), &c.content.as_ref().unwrap().uri);
            let cids = ids_of(&cg, "id");
            let levels = ids_of(&cg, "level");
            for (id, lv) in cids.iter().zip(&levels) {
                assert_eq!(*lv, if focus[*id as usize] { 3 } else { 2 }, "building {id}");
            }
            // roof / wall / window_facade primitives, all with normals
            let mats: Vec<&str> = cg.json["materials"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
            assert!(mats.iter().all(|m| ["roof", "wall", "window_facade"].contains(m)), "{mats:?}");
            if cids.iter().any(|&i| focus[i as usize]) {
                assert!(mats.contains(&"roof") && mats.contains(&"window_facade"), "{mats:?}");
            }
            for p in cg.json["meshes"][0]["primitives"].as_array().unwrap() {
                assert!(p["attributes"]["NORMAL"].is_u64(), "{p}");
            }
            // the child's region lies inside its parent's
            let (pr, cr) = (t.bounding_volume.region.unwrap(), c.bounding_volume.region.unwrap());
            assert!(cr[0] >= pr[0] && cr[1] >= pr[1] && cr[2] <= pr[2] && cr[3] <= pr[3] && cr[4] >= pr[4] && cr[5] <= pr[5]);
            child_ids.extend(cids);
        }
        child_ids.sort_unstable();
        assert_eq!(child_ids, ids, "tile {:?}", t.content);
    }
    assert!(refined >= 4 && refined < l2.len(), "{refined} of {}", l2.len());
    // Every focus building is in some L3 tile.
    let mut in_l3 = std::collections::BTreeSet::new();
    for (t, _) in &l3 {
        let g = glb_at(tmp.path(), &t.content.as_ref().unwrap().uri);
        in_l3.extend(ids_of(&g, "id").into_iter().filter(|&i| focus[i as usize]));
    }
    assert_eq!(in_l3.len(), n_focus);

    // Selection: within 500 m of a focus building's L2 tile the client reaches L3, from 1.5 km
    // it stops at L2.
    let sse = SseModel::default();
    for (h, expect_l3) in [(1500.0, false), (400.0, true), (100.0, true)] {
        let cam = geodetic_to_ecef(LON0 + 0.0001, LAT0 + 0.0001, h);
        let mut sel = vec![];
        let d_root = distance_to_region(cam, ts.root.bounding_volume.region.as_ref().unwrap());
        if sse.sse(ts.geometric_error, d_root) > sse.max_sse {
            select(&ts.root, cam, &sse, d_root, &mut sel);
        }
        let n_l3 = sel.iter().filter(|(t, _)| t.content.as_ref().unwrap().uri.contains("-l3-")).count();
        assert!(!sel.is_empty());
        assert_eq!(n_l3 > 0, expect_l3, "camera at {h} m: {n_l3} L3 tiles of {}", sel.len());
        // an L3 tile is selected exactly when its L2 parent is within the L3 distance
        for (t, pd) in &sel {
            if t.content.as_ref().unwrap().uri.contains("-l3-") {
                assert!(*pd < L3_DISTANCE_M + 1.0, "camera at {h} m: L3 tile with parent at {pd:.0} m");
            } else if !t.children.is_empty() {
                let d = distance_to_region(cam, t.bounding_volume.region.as_ref().unwrap());
                assert!(d > L3_DISTANCE_M - 1.0, "camera at {h} m: refinable L2 tile at {d:.0} m kept");
            }
        }
    }
}

#[test]
fn unknown_l3_district_is_an_error_naming_it() {
    let (m, _) = city_with_focus_district();
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options { l3: threed::L3Districts::parse("不存在区").unwrap(), ..Default::default() };
    let e = threed::write(&m, tmp.path(), &opts).unwrap_err().to_string();
    assert!(e.contains("不存在区") && e.contains("中心区"), "{e}");
}

/// A closed 20 × 20 m box solid (ground, four walls, roof) of height `h` around `b`'s footprint
/// centroid, in its local ENU frame (counter-clockwise seen from outside).
fn box_solid(b: &Building, h: f32) -> Solid3d {
    let c = geo::Centroid::centroid(&b.footprint).unwrap();
    let p = |x: f32, y: f32, z: f32| [x, y, z];
    let (a, z) = (10.0f32, h);
    let quad = |kind, r: Vec<[f32; 3]>| Surface { kind, rings: vec![r], appearance: None };
    Solid3d {
        lod: 3.0,
        anchor: [c.x(), c.y(), 0.0],
        surfaces: vec![
            quad(SurfaceKind::Ground, vec![p(-a, -a, 0.0), p(-a, a, 0.0), p(a, a, 0.0), p(a, -a, 0.0)]),
            quad(SurfaceKind::Roof, vec![p(-a, -a, z), p(a, -a, z), p(a, a, z), p(-a, a, z)]),
            quad(SurfaceKind::Wall, vec![p(-a, -a, 0.0), p(a, -a, 0.0), p(a, -a, z), p(-a, -a, z)]),
            quad(SurfaceKind::Wall, vec![p(a, -a, 0.0), p(a, a, 0.0), p(a, a, z), p(a, -a, z)]),
            quad(SurfaceKind::Wall, vec![p(a, a, 0.0), p(-a, a, 0.0), p(-a, a, z), p(a, a, z)]),
            quad(SurfaceKind::Window, vec![p(-a, a, 0.0), p(-a, -a, 0.0), p(-a, -a, z), p(-a, a, z)]),
        ],
        textures: vec![],
    }
}

#[test]
fn l4_key_building_replaces_only_itself_and_is_selected_within_150_m() {
    use scenes::threed::tileset::L4_DISTANCE_M;
    let mut m = city();
    // the building nearest the centre becomes a key building (L4) with a box solid
    let key = m
        .buildings
        .iter()
        .min_by(|a, b| {
            let d = |x: &Building| {
                let c = geo::Centroid::centroid(&x.footprint).unwrap();
                (c.x() - LON0).powi(2) + (c.y() - LAT0).powi(2)
            };
            d(a).partial_cmp(&d(b)).unwrap()
        })
        .unwrap()
        .id as usize;
    let h = m.buildings[key].height;
    m.buildings[key].solid = Some(box_solid(&m.buildings[key], h));
    m.buildings[key].level = Level::L4;
    let tmp = tempfile::tempdir().unwrap();
    let s = threed::write(&m, tmp.path(), &Options { max_features_per_tile: 400, ..Default::default() }).unwrap();
    assert_eq!((s.l4_tiles, s.l4_buildings), (1, 1), "{:?}", s.l4_fallbacks);
    let ts: Tileset = serde_json::from_slice(&std::fs::read(tmp.path().join("tileset.json")).unwrap()).unwrap();
    let mut all = vec![];
    content_tiles(&ts.root, None, &mut all);
    // the L4 tile: a leaf (ge 0) holding only the key building at level 4, with semantic
    // materials, below a slot tile (ge of L3) holding only the key building
    let l4: Vec<_> = all.iter().filter(|(t, _)| t.content.as_ref().unwrap().uri.contains("-l4-")).collect();
    assert_eq!(l4.len(), 1);
    let (t4, slot) = l4[0];
    let slot = slot.unwrap();
    assert_eq!(t4.geometric_error, 0.0);
    assert!(t4.children.is_empty());
    assert_eq!(slot.geometric_error, s.geometric_errors.l3);
    let g4 = glb_at(tmp.path(), &t4.content.as_ref().unwrap().uri);
    assert_eq!(ids_of(&g4, "id"), vec![key as u64]);
    assert_eq!(ids_of(&g4, "level"), vec![4]);
    let mut mats: Vec<&str> = g4.json["materials"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    mats.sort_unstable();
    assert_eq!(mats, ["ground", "roof", "wall", "window"]);
    let gs = glb_at(tmp.path(), &slot.content.as_ref().unwrap().uri);
    assert_eq!(ids_of(&gs, "id"), vec![key as u64]);
    // the slot's L2 parent is refined into L3 tiles that together hold its buildings, the key
    // building only in its slot: refining to L4 replaces the key building and nothing else
    let l2 = all.iter().find(|(t, _)| t.children.iter().any(|c| std::ptr::eq(c, slot))).map(|(t, _)| *t).unwrap();
    let mut l2_ids = ids_of(&glb_at(tmp.path(), &l2.content.as_ref().unwrap().uri), "id");
    let mut kids = vec![];
    for c in &l2.children {
        let ids = ids_of(&glb_at(tmp.path(), &c.content.as_ref().unwrap().uri), "id");
        if !std::ptr::eq(c, slot) {
            assert!(!ids.contains(&(key as u64)), "the key building is drawn by a neighbour tile too");
        }
        kids.extend(ids);
    }
    l2_ids.sort_unstable();
    kids.sort_unstable();
    assert_eq!(kids, l2_ids);

    // Selection above the key building: L4 exactly when the slot is within 150 m; then the
    // neighbours are still drawn (their L3 tiles) and the key building once, by its L4 tile.
    let sse = SseModel::default();
    let c = geo::Centroid::centroid(&m.buildings[key].footprint).unwrap();
    for (hc, expect_l4) in [(1000.0, false), (300.0, false), (200.0, false), (120.0, true), (60.0, true)] {
        let cam = geodetic_to_ecef(c.x(), c.y(), hc);
        let mut sel = vec![];
        let d_root = distance_to_region(cam, ts.root.bounding_volume.region.as_ref().unwrap());
        if sse.sse(ts.geometric_error, d_root) > sse.max_sse {
            select(&ts.root, cam, &sse, d_root, &mut sel);
        }
        let uris: Vec<&str> = sel.iter().map(|(t, _)| t.content.as_ref().unwrap().uri.as_str()).collect();
        let got_l4 = uris.iter().any(|u| u.contains("-l4-"));
        assert_eq!(got_l4, expect_l4, "camera {hc} m above the key building: {uris:?}");
        let d_slot = distance_to_region(cam, slot.bounding_volume.region.as_ref().unwrap());
        assert_eq!(got_l4, d_slot < L4_DISTANCE_M, "slot at {d_slot:.0} m");
        // every selected building exactly once
        let mut seen = std::collections::BTreeMap::new();
        for u in &uris {
            for id in ids_of(&glb_at(tmp.path(), u), "id") {
                *seen.entry(id).or_insert(0) += 1;
            }
        }
        assert!(seen.values().all(|n| *n == 1), "camera {hc} m: a building drawn twice");
        assert_eq!(seen.get(&(key as u64)), Some(&1), "camera {hc} m: key building not drawn");
        if got_l4 {
            // a neighbour 100 m away is still drawn
            assert!(seen.len() > 1);
        }
    }
}

#[test]
fn an_l3_theme_area_gets_l3_like_a_focus_district() {
    use scenes::threed::L3Area;
    let m = city();
    // a 1 km box north-east of the centre (no district in focus)
    let (mx, my) = scenes::geodesy::metres_per_degree(LAT0);
    let bbox = [LON0 + 500.0 / mx, LAT0 + 500.0 / my, LON0 + 1500.0 / mx, LAT0 + 1500.0 / my];
    let area = L3Area::parse(&format!("好游玩={},{},{},{}", bbox[0], bbox[1], bbox[2], bbox[3])).unwrap();
    assert_eq!(area.name, "好游玩");
    // buildings are 20 m squares every 100 m from -6000 m: those whose centre (x + 10 m) lies
    // in [500, 1500] m on both axes: x + 10 ∈ [500, 1500] → x ∈ {500, …, 1400}: 10 per axis
    let inside: Vec<usize> = (0..m.buildings.len())
        .filter(|&i| {
            let c = geo::Centroid::centroid(&m.buildings[i].footprint).unwrap();
            area.contains(c.x(), c.y())
        })
        .collect();
    assert_eq!(inside.len(), 100);
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options { max_features_per_tile: 400, l3_areas: vec![area], ..Default::default() };
    let s = threed::write(&m, tmp.path(), &opts).unwrap();
    assert_eq!(s.l3_areas.len(), 1);
    assert_eq!((s.l3_areas[0].name.as_str(), s.l3_areas[0].buildings), ("好游玩", 100));
    assert_eq!(s.l3_buildings, 100, "{:?}", s.l3_fallbacks);
    let ts: Tileset = serde_json::from_slice(&std::fs::read(tmp.path().join("tileset.json")).unwrap()).unwrap();
    let mut all = vec![];
    content_tiles(&ts.root, None, &mut all);
    let mut at_l3 = vec![];
    for (t, p) in &all {
        if p.is_some() {
            let g = glb_at(tmp.path(), &t.content.as_ref().unwrap().uri);
            for (id, lv) in ids_of(&g, "id").into_iter().zip(ids_of(&g, "level")) {
                if lv == 3 {
                    at_l3.push(id as usize);
                }
            }
        }
    }
    at_l3.sort_unstable();
    assert_eq!(at_l3, inside);
    // bad areas are errors naming the argument
    for bad in ["x", "=1,2,3,4", "a=1,2,3", "a=3,2,1,4", "a=1,2,x,4", "a=1,95,2,96"] {
        let e = L3Area::parse(bad).unwrap_err();
        assert!(e.contains("--l3-area") && e.contains(bad), "{bad}: {e}");
    }
}
