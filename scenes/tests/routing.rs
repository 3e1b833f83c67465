//! Road-network routing (`scenes::routing`): a hand-made graph checked against networkx, a real
//! OSM extract, the built-in Shenyang city and bad input.
//! Run with `cargo test -p scenes --test routing`.

mod common;

use geo::{Intersects, Line as GeoLine};
use scenes::ingest::SourceSpec;
use scenes::model::{CityModel, PoiKind, RoadClass};
use scenes::routing::{RoadGraph, Route, RoutingError};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/routing_grid.geojson")
}

fn fixture() -> CityModel {
    let (mut m, _, _) = common::ingest(SourceSpec::new(fixture_path().to_string_lossy().into_owned())).expect("fixture");
    m.renumber();
    m
}

/// The units of the fixture test: id, lon, lat (comments: where they stand).
const UNITS: &[(u32, f64, f64)] = &[
    (1, 123.400, 41.8025),  // West Lane, between Middle Street and North Avenue
    (2, 123.407, 41.804),   // North Avenue
    (3, 123.4085, 41.800),  // South Avenue, east end
    (4, 123.409, 41.801),   // East Lane South
    (5, 123.408, 41.8012),  // Diagonal Lane, on its interior vertex
    (6, 123.4075, 41.802),  // Middle Street East (one-way westbound, ends at Centre Road)
    (7, 123.451, 41.800),   // the isolated road 3.4 km east: not on the routable network, too far to snap
    (8, 123.403, 41.802),   // the junction First Lane / Middle Street
    (9, 123.405, 41.802),   // Middle Street east of the incident (one-way eastbound: must go round)
    (10, 123.406, 41.801),  // Centre Road (primary, maxspeed 60)
    (11, 123.4045, 41.8025), // Bridge Road (layer 1), which crosses Middle Street without a junction
    (12, 123.4015, 41.8035), // on the Park Footway (not drivable): snaps 55.6 m north to North Avenue
];
/// The incident: on Middle Street (residential, one-way eastbound) 0.001° east of First Lane.
const TARGET: (f64, f64) = (123.404, 41.802);

/// Runs the networkx reference (scenes/tests/routing_nx.py) on the fixture.
fn networkx(query: &serde_json::Value) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/routing_nx.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(fixture_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 (Debian python3-networkx, see scripts/install-deps.sh)");
    child.stdin.take().unwrap().write_all(query.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "routing_nx.py failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("networkx output")
}

#[test]
fn fixture_graph_report() {
    let m = fixture();
    assert_eq!(m.roads.len(), 15);
    let (g, r) = RoadGraph::from_model(&m).unwrap();
    assert_eq!(r.roads_skipped.get("path"), Some(&1), "{r:?}");
    assert_eq!(r.roads_used, 14);
    // junctions: the 12 grid corners, the bridge's two ends on the avenues, the spur's end and the
    // isolated road's two ends; the diagonal's middle vertex and the avenue vertices at x1/x2 that
    // no other road uses... are all used here, so count by hand: 12 + 2 + 1 + 2 = 17
    assert_eq!(r.nodes, 17);
    assert_eq!(r.weak_components, 2, "grid + isolated road");
    // the isolated road is its own strong component; East Lane North → East Lane South is the
    // only way from the NE corner, and the grid is otherwise strongly connected
    assert!(!g.road_in_main_component(m.roads.iter().find(|r| r.names.display() == Some("Isolated Road")).unwrap().id));
    let iso = 2.0 * 111_195.080_233 * 41.8f64.to_radians().cos() * 0.001; // ≈ 165.8 m
    assert!((r.drivable_length_m - r.main_component_length_m - iso).abs() < 0.5, "{r:?}");
    assert_eq!(r.oneway_edges, 6);
}

#[test]
fn nearest_units_match_networkx_and_hand_computed_values() {
    let m = fixture();
    let (g, _) = RoadGraph::from_model(&m).unwrap();
    let all = g.nearest_units(TARGET, UNITS, UNITS.len(), f64::INFINITY).unwrap();
    let nx = networkx(&serde_json::json!({ "target": [TARGET.0, TARGET.1], "units": UNITS }));
    let nx_units = nx["units"].as_object().unwrap();
    // the same set of reachable units, in the same order, with the same ETAs and lengths
    let mut expected: Vec<(u32, f64, f64)> = nx_units
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.parse().unwrap(), v[0].as_f64().unwrap(), v[1].as_f64().unwrap()))
        .collect();
    expected.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert!(nx_units["7"].is_null(), "networkx: the isolated road cannot reach the incident");
    assert_eq!(all.len(), 11, "{all:?}");
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), expected.iter().map(|e| e.0).collect::<Vec<_>>());
    for (r, e) in all.iter().zip(&expected) {
        assert!((r.eta_s - e.1).abs() < 1e-6 * e.1.max(1.0), "unit {}: eta {} vs networkx {}", r.id, r.eta_s, e.1);
        assert!((r.distance_m - e.2).abs() < 1e-6 * e.2.max(1.0), "unit {}: {} m vs networkx {} m", r.id, r.distance_m, e.2);
    }
    // k = 3 is the head of the full ranking (the early stop keeps the right ones)
    let top3 = g.nearest_units(TARGET, UNITS, 3, f64::INFINITY).unwrap();
    assert_eq!(top3, all[..3].to_vec());
    let by_id: HashMap<u32, f64> = all.iter().map(|r| (r.id, r.eta_s)).collect();
    // By hand: unit 8 stands at the junction and drives 0.001° east along Middle Street:
    // 111,195.08 m/° × 0.001° × cos 41.802° (0.745453) = 82.891 m at 20 km/h × 0.67 = 3.7222 m/s
    // → 22.269 s.
    assert!((by_id[&8] - 22.269).abs() < 0.001, "{}", by_id[&8]);
    // By hand: unit 10 on Centre Road must reach Middle Street through First Lane: south 0.001° on
    // Centre Road (111.195 m at 60 × 0.67 = 11.1667 m/s: 9.958 s), west 0.003° on South Avenue at
    // 41.800° (248.680 m at 50 × 0.67 = 9.3056 m/s: 26.724 s), north 0.002° on First Lane South
    // (222.390 m at 3.7222 m/s: 59.746 s), east 82.891 m on Middle Street (22.269 s) = 118.697 s.
    assert!((by_id[&10] - 118.697).abs() < 0.001, "{}", by_id[&10]);
    let r10 = all.iter().find(|r| r.id == 10).unwrap();
    assert!((r10.distance_m - 665.156).abs() < 0.01, "{}", r10.distance_m);
    // unit 12 on the footway was snapped 55.6 m to North Avenue (0.0005° of latitude)
    let r12 = all.iter().find(|r| r.id == 12).unwrap();
    assert!((r12.snap_m - 55.598).abs() < 0.01, "{}", r12.snap_m);
    // unit 9 is closer than unit 8 in a straight line but must drive round the block
    assert!(by_id[&9] > by_id[&8] + 60.0);
}

#[test]
fn fixture_routes_match_networkx_and_position_at_walks_them() {
    let m = fixture();
    let (g, _) = RoadGraph::from_model(&m).unwrap();
    for (from, to) in [((123.406, 41.801), TARGET), ((123.405, 41.802), (123.404, 41.802)), ((123.4085, 41.800), (123.4015, 41.804))] {
        let r = g.route(from, to).unwrap();
        let nx = networkx(&serde_json::json!({ "target": [TARGET.0, TARGET.1], "units": [], "route": [[from.0, from.1], [to.0, to.1]] }));
        let (t, l) = (nx["route"]["time"].as_f64().unwrap(), nx["route"]["length"].as_f64().unwrap());
        assert!((r.duration_s - t).abs() < 1e-6 * t, "{from:?} → {to:?}: {} s vs networkx {t} s", r.duration_s);
        assert!((r.length_m - l).abs() < 1e-6 * l, "{from:?} → {to:?}: {} m vs networkx {l} m", r.length_m);
        check_route(&r);
    }
    // the detour of unit 9 (Middle Street is one-way eastbound): east to Centre Road, south, west
    // on South Avenue, north on First Lane South, and back onto Middle Street
    let r = g.route((123.405, 41.802), (123.404, 41.802)).unwrap();
    assert!(r.length_m > 500.0 && r.legs.len() >= 4, "{:?}", r.legs);
    assert_eq!(r.legs.last().unwrap().name.as_deref(), Some("Middle Street"));
}

/// Route invariants: geometry and per-vertex times agree; position_at moves monotonically
/// forward along the route (the distance it has covered never decreases) and ends at the
/// destination.
fn check_route(r: &Route) {
    let pts = &r.geometry.0;
    assert_eq!(pts.len(), r.vertex_time_s.len());
    assert_eq!(pts.len(), r.vertex_dist_m.len());
    assert_eq!(r.vertex_time_s[0], 0.0);
    assert!((r.vertex_time_s.last().unwrap() - r.duration_s).abs() < 1e-9);
    assert!((r.vertex_dist_m.last().unwrap() - r.length_m).abs() < 1e-6);
    assert!(r.vertex_time_s.windows(2).all(|w| w[1] >= w[0]));
    // geometry length (haversine) equals the reported length
    let geo_len: f64 = pts.windows(2).map(|w| scenes::geodesy::haversine_m((w[0].x, w[0].y), (w[1].x, w[1].y))).sum();
    assert!((geo_len - r.length_m).abs() < 1e-6 * r.length_m.max(1.0) + 1e-6, "{geo_len} vs {}", r.length_m);
    let legs_t: f64 = r.legs.iter().map(|l| l.duration_s).sum();
    let legs_l: f64 = r.legs.iter().map(|l| l.length_m).sum();
    assert!((legs_t - r.duration_s).abs() < 1e-6 && (legs_l - r.length_m).abs() < 1e-6);
    let (x0, y0, _) = r.position_at(0.0);
    assert!((x0 - r.from.lon).abs() < 1e-12 && (y0 - r.from.lat).abs() < 1e-12);
    let steps = 200;
    let (mut prev, mut last_d) = ((x0, y0), 0.0);
    for i in 1..=steps {
        let t = r.duration_s * i as f64 / steps as f64;
        let (x, y, h) = r.position_at(t);
        assert!((0.0..360.0).contains(&h));
        // the distance covered never decreases ...
        let d = dist_at(r, t);
        assert!(d >= last_d - 1e-9, "t {t}: {d} m after {last_d} m");
        // ... the unit is on the geometry at that distance (walked here with haversine) ...
        let (px, py) = point_at_dist(pts, d);
        let off = scenes::geodesy::haversine_m((x, y), (px, py));
        assert!(off < 0.05, "t {t}: {off} m off the route");
        // ... and never jumps further than the route distance covered
        assert!(scenes::geodesy::haversine_m(prev, (x, y)) <= d - last_d + 1e-3);
        prev = (x, y);
        last_d = d;
    }
    assert!((last_d - r.length_m).abs() < 1e-6, "{last_d} vs {}", r.length_m);
    let (x1, y1, _) = r.position_at(r.duration_s + 100.0);
    assert!((x1 - r.to.lon).abs() < 1e-12 && (y1 - r.to.lat).abs() < 1e-12);
}

/// The point `d` metres along a polyline (haversine lengths, linear within a segment).
fn point_at_dist(pts: &[geo_types::Coord<f64>], d: f64) -> (f64, f64) {
    let mut acc = 0.0;
    for w in pts.windows(2) {
        let l = scenes::geodesy::haversine_m((w[0].x, w[0].y), (w[1].x, w[1].y));
        if acc + l >= d && l > 0.0 {
            let f = ((d - acc) / l).clamp(0.0, 1.0);
            return (w[0].x + f * (w[1].x - w[0].x), w[0].y + f * (w[1].y - w[0].y));
        }
        acc += l;
    }
    let p = pts[pts.len() - 1];
    (p.x, p.y)
}

fn dist_at(r: &Route, t: f64) -> f64 {
    let i = r.vertex_time_s.partition_point(|&v| v < t).clamp(1, r.vertex_time_s.len() - 1);
    let (t0, t1) = (r.vertex_time_s[i - 1], r.vertex_time_s[i]);
    let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 1.0 };
    r.vertex_dist_m[i - 1] + f * (r.vertex_dist_m[i] - r.vertex_dist_m[i - 1])
}

#[test]
fn bad_input_is_a_clear_error() {
    // empty model
    let err = RoadGraph::from_model(&CityModel::empty("void")).unwrap_err();
    assert_eq!(err, RoutingError::NoRoads { model: "void".into() });
    assert!(err.to_string().contains("'void' has no roads"));
    // only footways
    let mut m = fixture();
    m.roads.retain(|r| r.class == RoadClass::Path);
    let err = RoadGraph::from_model(&m).unwrap_err().to_string();
    assert!(err.contains("1 roads but none a vehicle can drive (1 path)"), "{err}");
    // a target far outside the network, a NaN, a latitude beyond 90°
    let (g, _) = RoadGraph::from_model(&fixture()).unwrap();
    let err = g.nearest_units((123.6, 41.9), UNITS, 3, f64::INFINITY).unwrap_err();
    match &err {
        RoutingError::OutsideNetwork { what, distance_m, limit_m, .. } => {
            assert_eq!(what, "target");
            assert!(*distance_m > 10_000.0 && *limit_m == 1000.0);
        }
        e => panic!("{e}"),
    }
    assert!(err.to_string().starts_with("target (123.600000, 41.900000) is "), "{err}");
    assert!(matches!(g.route((f64::NAN, 41.8), TARGET), Err(RoutingError::InvalidCoordinate { .. })));
    assert!(matches!(g.travel_times_to(123.4, 91.0, 600.0), Err(RoutingError::InvalidCoordinate { .. })));
    let err = g.route(TARGET, (0.0, 0.0)).unwrap_err().to_string();
    assert!(err.contains("route end (0.000000, 0.000000)") && err.contains("outside the road network"), "{err}");
    // a bound: nothing within 10 s of the incident except unit 8? (22 s) — none
    assert!(g.nearest_units(TARGET, UNITS, 3, 10.0).unwrap().is_empty());
    // travel times: beyond the bound → None
    let tt = g.travel_times_to(TARGET.0, TARGET.1, 30.0).unwrap();
    assert!(tt.eta_from("unit 8", 123.403, 41.802).unwrap().is_some());
    assert!(tt.eta_from("unit 10", 123.406, 41.801).unwrap().is_none());
    assert!(tt.eta_from("far", 10.0, 10.0).is_err());
}

// ------------------------------------------------------------------------------------------
// A real OSM extract: Porto

fn porto() -> &'static (CityModel, RoadGraph) {
    static P: OnceLock<(CityModel, RoadGraph)> = OnceLock::new();
    P.get_or_init(|| {
        let (m, _, _) = common::ingest(SourceSpec::new(common::shared("osm", "porto.osm.pbf"))).expect("porto");
        let (g, _) = RoadGraph::from_model(&m).expect("graph");
        (m, g)
    })
}

#[test]
fn osm_porto_graph_components() {
    let (m, g) = porto();
    let r = g.report();
    assert!(r.roads_used > 1500, "{r:?}");
    // The extract is a clipped bbox: one-way streets cut at its edge cannot be driven back, so
    // the main strong component holds less than the weak one. Measured 0.881 / 0.983 (with implied
    // one-way motorways and roundabouts); documented floor: ≥ 85 % of the drivable length.
    assert!(r.main_component_fraction >= 0.85, "{r:?}");
    assert!(r.largest_weak_fraction >= 0.95, "{r:?}");
    assert!(r.oneway_edges > 300, "{r:?}");
    // every drivable road length is accounted for
    let drivable: f64 = m
        .roads
        .iter()
        .filter(|rd| !matches!(rd.class, RoadClass::Path | RoadClass::Rail))
        .map(|rd| rd.geometry.0.windows(2).map(|w| scenes::geodesy::haversine_m((w[0].x, w[0].y), (w[1].x, w[1].y))).sum::<f64>())
        .sum();
    assert!((drivable - r.drivable_length_m).abs() < 1e-6 * drivable + 1.0, "{drivable} vs {}", r.drivable_length_m);
}

#[test]
fn osm_porto_route_is_sane_and_oneways_are_honoured() {
    let (m, g) = porto();
    // two named streets of central Porto, found by name in the extract
    let find = |name: &str| {
        let r = m.roads.iter().find(|r| r.names.display() == Some(name) && g.road_in_main_component(r.id)).unwrap_or_else(|| panic!("{name}"));
        let c = r.geometry.0[r.geometry.0.len() / 2];
        (c.x, c.y)
    };
    let (a, b) = (find("Avenida dos Aliados"), find("Rua de Santa Catarina"));
    let crow = scenes::geodesy::haversine_m(a, b);
    let r = g.route(a, b).unwrap();
    assert!(crow > 300.0, "{crow}");
    assert!(r.length_m >= crow && r.length_m <= 2.5 * crow, "route {} m for {crow} m straight", r.length_m);
    check_route(&r);
    // one-way streets: pick one-way roads of the main component; going along them is a straight
    // run, going against them needs a detour
    let mut checked = 0;
    for rd in m.roads.iter().filter(|r| r.oneway && matches!(r.class, RoadClass::Residential | RoadClass::Tertiary | RoadClass::Secondary)) {
        let pts = &rd.geometry.0;
        let len: f64 = pts.windows(2).map(|w| scenes::geodesy::haversine_m((w[0].x, w[0].y), (w[1].x, w[1].y))).sum();
        if len < 120.0 || pts.len() < 2 {
            continue;
        }
        // points a quarter and three quarters along the first segment long enough
        let Some(w) = pts.windows(2).find(|w| scenes::geodesy::haversine_m((w[0].x, w[0].y), (w[1].x, w[1].y)) > 60.0) else { continue };
        let at = |t: f64| (w[0].x + t * (w[1].x - w[0].x), w[0].y + t * (w[1].y - w[0].y));
        let (p, q) = (at(0.25), at(0.75));
        let (Ok(sp), Ok(sq)) = (g.snap("p", p.0, p.1), g.snap("q", q.0, q.1)) else { continue };
        if sp.road != rd.id || sq.road != rd.id || sp.distance_m > 0.01 || sq.distance_m > 0.01 {
            continue; // another road overlaps, or this one is not in the main component
        }
        let seg = scenes::geodesy::haversine_m(p, q);
        let with = g.route(p, q).unwrap();
        let against = g.route(q, p).unwrap();
        assert!((with.length_m - seg).abs() < 0.01 * seg, "{}: along {} m vs {seg} m", rd.source.id, with.length_m);
        assert!(against.length_m > with.length_m + 50.0, "{}: against {} m, along {} m", rd.source.id, against.length_m, with.length_m);
        assert!(against.duration_s > with.duration_s);
        check_route(&against);
        checked += 1;
        if checked == 10 {
            break;
        }
    }
    assert_eq!(checked, 10, "ten one-way streets checked");
}

/// The early-stopping k-nearest search agrees with a full one-to-all search and with A* routes,
/// on a network with many one-way streets.
#[test]
fn osm_porto_nearest_units_agree_with_full_search_and_routes() {
    let (m, g) = porto();
    // 60 candidate units and 25 incidents at seeded pseudo-random road vertices
    let mut seed = 7u64;
    let mut next = |n: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    let roads: Vec<_> = m.roads.iter().filter(|r| g.road_in_main_component(r.id)).collect();
    let mut pick = || {
        let r = roads[next(roads.len())];
        let c = r.geometry.0[next(r.geometry.0.len())];
        (c.x, c.y)
    };
    let units: Vec<(usize, f64, f64)> = (0..60).map(|i| { let p = pick(); (i, p.0, p.1) }).collect();
    for _ in 0..25 {
        let inc = pick();
        let ranked = g.nearest_units(inc, &units, 5, f64::INFINITY).unwrap();
        let tt = g.travel_times_to(inc.0, inc.1, f64::INFINITY).unwrap();
        let mut full: Vec<(f64, f64, usize)> =
            units.iter().filter_map(|&(id, x, y)| tt.eta_from("unit", x, y).unwrap().map(|(t, l)| (t, l, id))).collect();
        full.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
        assert_eq!(ranked.len(), 5);
        for (r, f) in ranked.iter().zip(&full) {
            assert!((r.eta_s - f.0).abs() < 1e-6, "{r:?} vs {f:?}");
        }
        for r in &ranked {
            let u = units[r.id];
            let route = g.route((u.1, u.2), inc).unwrap();
            assert!((route.duration_s - r.eta_s).abs() < 1e-6, "unit {}: route {} s, ranked {} s", r.id, route.duration_s, r.eta_s);
        }
    }
}

// ------------------------------------------------------------------------------------------
// The built-in city

fn city() -> &'static (CityModel, RoadGraph) {
    static C: OnceLock<(CityModel, RoadGraph)> = OnceLock::new();
    C.get_or_init(|| {
        let dir = scenes::shenyang::find_boundaries(None).expect("boundaries (run scripts/fetch-boundaries.sh)");
        let mut report = scenes::BuildReport::default();
        let m = scenes::shenyang::build_default(&dir, scenes::shenyang::DEFAULT_SEED, &mut report).expect("city");
        let (g, _) = RoadGraph::from_model(&m).expect("graph");
        (m, g)
    })
}

#[test]
fn builtin_city_is_one_network() {
    let (m, g) = city();
    let r = g.report();
    assert_eq!(r.roads_used, m.roads.len());
    assert!(r.main_component_fraction >= 0.95, "{r:?}");
    // measured: the generator's network is one strong component
    assert_eq!(r.strong_components, 1, "{r:?}");
    assert!(r.drivable_length_m > 5.0e6, "{r:?}");
}

/// The generator nodes its network: two roads on the same layer never cross without a shared
/// vertex (bridges, layer 1, pass over streets and are exempt across layers).
#[test]
fn builtin_city_roads_cross_only_at_shared_vertices() {
    use rstar::{primitives::GeomWithData, RTree, AABB};
    let (m, _) = city();
    let mut segs = Vec::new();
    for r in &m.roads {
        for (j, w) in r.geometry.0.windows(2).enumerate() {
            segs.push(GeomWithData::new(rstar::primitives::Line::new([w[0].x, w[0].y], [w[1].x, w[1].y]), (r.id, j, r.layer)));
        }
    }
    let tree = RTree::bulk_load(segs.clone());
    let mut bad = Vec::new();
    for s in &segs {
        let (a, b) = (s.geom().from, s.geom().to);
        let env = AABB::from_corners([a[0].min(b[0]), a[1].min(b[1])], [a[0].max(b[0]), a[1].max(b[1])]);
        for o in tree.locate_in_envelope_intersecting(&env) {
            if o.data.0 <= s.data.0 || o.data.2 != s.data.2 {
                continue;
            }
            let (c, d) = (o.geom().from, o.geom().to);
            let shared = [a, b].iter().any(|p| *p == c || *p == d);
            if shared {
                continue;
            }
            let l1 = GeoLine::new((a[0], a[1]), (b[0], b[1]));
            let l2 = GeoLine::new((c[0], c[1]), (d[0], d[1]));
            if l1.intersects(&l2) {
                bad.push((s.data, o.data));
            }
        }
    }
    assert!(bad.is_empty(), "{} unnoded crossings, e.g. {:?}", bad.len(), &bad[..bad.len().min(5)]);
}

#[test]
fn builtin_city_stations_snap_close_and_units_route_to_incidents() {
    let (m, g) = city();
    let mut worst: f64 = 0.0;
    let mut units = Vec::new();
    for p in m.pois.iter().filter(|p| matches!(p.kind, PoiKind::PoliceStation | PoiKind::FireStation | PoiKind::Hospital)) {
        let s = g.snap(&format!("poi {}", p.id), p.location.x(), p.location.y()).unwrap();
        worst = worst.max(s.distance_m);
        units.push((p.id, p.location.x(), p.location.y()));
    }
    assert_eq!(units.len(), 48 + 36 + 72);
    // stations stand in blocks between streets ~208 m apart: within 150 m of a street (measured
    // worst 108 m, median 16 m)
    assert!(worst <= 150.0, "worst station snap {worst} m");
    // an incident at 市府广场: the 5 nearest by travel time, checked against travel_times_to
    let inc = (123.4315, 41.8057);
    let ranked = g.nearest_units(inc, &units, 5, 3600.0).unwrap();
    assert_eq!(ranked.len(), 5);
    assert!(ranked.windows(2).all(|w| w[0].eta_s <= w[1].eta_s));
    let tt = g.travel_times_to(inc.0, inc.1, 3600.0).unwrap();
    let mut all: Vec<(f64, u32)> = units.iter().filter_map(|&(id, x, y)| tt.eta_from("unit", x, y).unwrap().map(|e| (e.0, id))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (r, e) in ranked.iter().zip(&all) {
        assert!((r.eta_s - e.0).abs() < 1e-6, "{r:?} vs {e:?}");
    }
    // each recommended unit's route has the ranked ETA and walks to the incident
    for r in &ranked {
        let u = units.iter().find(|u| u.0 == r.id).unwrap();
        let route = g.route((u.1, u.2), inc).unwrap();
        assert!((route.duration_s - r.eta_s).abs() < 1e-6, "{} vs {}", route.duration_s, r.eta_s);
        assert!((route.length_m - r.distance_m).abs() < 1e-6);
        check_route(&route);
    }
    // the nearest by travel time need not be the nearest as the crow flies, but it is not absurd
    let crow = scenes::geodesy::haversine_m((units.iter().find(|u| u.0 == ranked[0].id).unwrap().1, units.iter().find(|u| u.0 == ranked[0].id).unwrap().2), inc);
    assert!(crow < 3000.0, "{crow}");
}

#[test]
fn builtin_city_long_route_across_the_river() {
    let (_, g) = city();
    // 皇姑 (north of the centre) to 浑南 (south of the Hun River): the route must use a bridge
    let (a, b) = ((123.41, 41.84), (123.45, 41.72));
    let r = g.route(a, b).unwrap();
    let crow = scenes::geodesy::haversine_m(a, b);
    assert!(r.length_m > crow * 0.95 && r.length_m < crow * 1.6, "{} m for {crow} m", r.length_m);
    check_route(&r);
}
