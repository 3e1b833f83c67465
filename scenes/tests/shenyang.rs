//! The built-in Shenyang city: boundaries (real, GCJ-02 → WGS-84) and the generated city.
//! Run with `cargo test --release -p scenes --test shenyang`.

use geo::{Area, Centroid, Contains, Validation};
use geo_types::{MultiPolygon, Point};
use scenes::geodesy;
use scenes::model::*;
use scenes::shenyang::{self, Zone};
use scenes::BuildReport;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn dir() -> PathBuf {
    shenyang::find_boundaries(None).expect("boundaries (run scripts/fetch-boundaries.sh)")
}

fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/shenyang");
    p.is_dir().then_some(p)
}

fn city() -> &'static (CityModel, Vec<Zone>, f64) {
    static CITY: OnceLock<(CityModel, Vec<Zone>, f64)> = OnceLock::new();
    CITY.get_or_init(|| {
        let t = std::time::Instant::now();
        let mut report = BuildReport::default();
        let (m, z) = shenyang::build_default_zoned(&dir(), shenyang::DEFAULT_SEED, &mut report).expect("build");
        let secs = t.elapsed().as_secs_f64();
        (m, z, secs)
    })
}

fn centroid_m(mp: &MultiPolygon<f64>) -> (f64, f64) {
    let c = mp.centroid().expect("centroid");
    (c.x(), c.y())
}

fn dist_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    geodesy::haversine_m(a, b)
}

#[test]
fn districts_have_codes_names_and_areas() {
    let ds = shenyang::load_districts(&dir()).expect("load");
    assert_eq!(ds.len(), 13);
    let codes: Vec<u32> = ds.iter().map(|d| d.adcode).collect();
    assert_eq!(codes, [210102, 210103, 210104, 210105, 210106, 210111, 210112, 210113, 210114, 210115, 210123, 210124, 210181]);
    let zh: Vec<&str> = ds.iter().map(|d| d.names.zh.as_deref().unwrap()).collect();
    assert_eq!(zh, ["和平区", "沈河区", "大东区", "皇姑区", "铁西区", "苏家屯区", "浑南区", "沈北新区", "于洪区", "辽中区", "康平县", "法库县", "新民市"]);
    assert_eq!(ds[0].names.en.as_deref(), Some("Heping District"));
    assert_eq!(ds[7].names.en.as_deref(), Some("Shenbei New District"));
    assert_eq!(ds[11].names.en.as_deref(), Some("Faku County"));
    assert!((ds[0].area_km2 - 59.0).abs() <= 3.0, "和平区 {} km²", ds[0].area_km2);
    for d in &ds {
        assert!((d.area_km2 - geodesy::area_km2(&d.geometry)).abs() < 1e-9);
        assert!(d.area_km2 > 10.0, "{} {}", d.adcode, d.area_km2);
    }
}

#[test]
fn malformed_and_missing_boundaries_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    for code in [210102, 210103, 210104, 210105, 210106, 210111, 210112, 210113, 210114, 210115, 210123, 210124, 210181] {
        std::fs::copy(dir().join(format!("{code}.geojson")), tmp.path().join(format!("{code}.geojson"))).unwrap();
    }
    std::fs::write(tmp.path().join("210104.geojson"), "{\"type\": \"MultiPolygon\", \"coordinates\": [[[[1, 2], [3]]]]}").unwrap();
    let e = shenyang::load_districts(tmp.path()).unwrap_err();
    assert!(e.file.ends_with("210104.geojson"), "{e}");
    std::fs::remove_file(tmp.path().join("210104.geojson")).unwrap();
    let e = shenyang::load_districts(tmp.path()).unwrap_err();
    assert!(e.file.ends_with("210104.geojson"), "{e}");
    let e = shenyang::find_boundaries(Some(tmp.path())).unwrap_err();
    assert!(e.to_string().contains("fetch-boundaries.sh"), "{e}");
    assert_eq!(shenyang::find_boundaries(Some(&dir())).unwrap(), dir());
}

fn read_datav(path: &Path) -> Vec<(u32, MultiPolygon<f64>)> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for f in v["features"].as_array().unwrap() {
        let code = f["properties"]["adcode"].as_u64().unwrap() as u32;
        let mut polys = Vec::new();
        for p in f["geometry"]["coordinates"].as_array().unwrap() {
            let rings: Vec<geo_types::LineString<f64>> = p
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|c| {
                            let (x, y) = geodesy::gcj02_to_wgs84(c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
                            geo_types::Coord { x, y }
                        })
                        .collect()
                })
                .collect();
            let mut it = rings.into_iter();
            let ext = it.next().unwrap();
            polys.push(geo_types::Polygon::new(ext, it.collect()));
        }
        out.push((code, MultiPolygon(polys)));
    }
    out
}

#[test]
fn the_three_boundary_sources_agree() {
    let Some(shared) = shared() else {
        eprintln!("skipped: ../shared/data/shenyang absent (datav and the raw cnmaps files are only there)");
        return;
    };
    let ds = shenyang::load_districts(&shared.join("cnmaps")).unwrap();
    let datav = read_datav(&shared.join("datav_210100_full.json"));
    assert_eq!(datav.len(), 13);
    for d in &ds {
        let (_, g) = datav.iter().find(|(c, _)| *c == d.adcode).expect("same adcode in datav");
        let dc = dist_m(centroid_m(&d.geometry), centroid_m(g));
        let da = (geodesy::area_km2(g) - d.area_km2).abs() / d.area_km2;
        assert!(dc < 100.0, "{}: centroids {dc:.0} m apart", d.adcode);
        assert!(da < 0.02, "{}: areas differ by {:.2} %", d.adcode, da * 100.0);
    }
    let outline = geo_types::MultiPolygon::<f64>(Vec::new());
    let _ = outline;
    let path = shared.join("cnmaps/210100.geojson");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut polys = Vec::new();
    for p in v["coordinates"].as_array().unwrap() {
        let ext: geo_types::LineString<f64> = p[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let (x, y) = geodesy::gcj02_to_wgs84(c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
                geo_types::Coord { x, y }
            })
            .collect();
        polys.push(geo_types::Polygon::new(ext, vec![]));
    }
    let city = geodesy::area_km2(&MultiPolygon(polys));
    let sum: f64 = ds.iter().map(|d| d.area_km2).sum();
    assert!((sum - city).abs() / city < 0.01, "districts {sum:.0} km² vs outline {city:.0} km²");

    // the conversion moves 和平区 ~500 m west and ~260 m south
    let raw = {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(shared.join("cnmaps/210102.geojson")).unwrap()).unwrap();
        let ext: geo_types::LineString<f64> = v["coordinates"][0][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| geo_types::Coord { x: c[0].as_f64().unwrap(), y: c[1].as_f64().unwrap() })
            .collect();
        MultiPolygon(vec![geo_types::Polygon::new(ext, vec![])])
    };
    let (a, b) = (centroid_m(&raw), centroid_m(&ds[0].geometry));
    let (mx, my) = geodesy::metres_per_degree(a.1);
    let (de, dn) = ((b.0 - a.0) * mx, (b.1 - a.1) * my);
    assert!((de + 500.0).abs() < 100.0 && (dn + 260.0).abs() < 100.0, "shift {de:.0} m E, {dn:.0} m N");
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[test]
fn default_city_figures() {
    let (m, zones, secs) = city();
    let built = m.built_up.as_ref().expect("built_up");
    let area = geodesy::area_km2(built);
    let n = m.buildings.len();
    let count = |k: PoiKind| m.pois.iter().filter(|p| p.kind == k).count();
    eprintln!(
        "built-up {area:.1} km², {n} buildings, {} roads, {} landuse, {} water, POIs: {} hospitals, {} fire, {} police, {} schools, {} parking, {} total; build {secs:.1} s",
        m.roads.len(), m.landuse.len(), m.water.len(),
        count(PoiKind::Hospital), count(PoiKind::FireStation), count(PoiKind::PoliceStation), count(PoiKind::School), count(PoiKind::Parking), m.pois.len()
    );
    assert!((800.0..=840.0).contains(&area), "built-up area {area} km²");
    assert!(n >= 300_000, "{n} buildings");
    assert_eq!(zones.len(), n);
    assert!(m.info.generated && m.info.name == "shenyang" && m.info.seed == Some(shenyang::DEFAULT_SEED));
    assert!(m.info.label.contains("synthetic"));
    assert_eq!(m.sources.len(), 1);
    assert_eq!(m.sources[0].kind, "builtin");
    assert_eq!(m.sources[0].datum.as_deref(), Some("gcj02"));
    assert_eq!(m.districts.len(), 13);
    assert!(count(PoiKind::Hospital) >= 40);
    assert!(count(PoiKind::FireStation) >= 30);
    assert!(count(PoiKind::PoliceStation) >= 60);
    assert!(count(PoiKind::School) >= 200);
    assert!(count(PoiKind::Parking) >= 600);
    assert!(m.pois.iter().filter(|p| p.kind == PoiKind::Parking).all(|p| p.capacity.is_some()));
    for p in &m.pois {
        assert!(built.contains(&p.location), "POI {:?} outside the built-up area", p.names.zh);
        assert!(p.names.zh.is_some() && p.names.en.is_some());
    }
    assert!(m.pois.iter().any(|p| p.names.zh.as_deref() == Some("沈阳故宫")));
    for (i, b) in m.buildings.iter().enumerate() {
        assert_eq!(b.id as usize, i);
    }
}

#[test]
fn buildings_are_valid_inside_built_up_and_off_water() {
    let (m, _, _) = city();
    let built = m.built_up.as_ref().unwrap();
    let river = m.water.iter().find(|w| w.class == "river").expect("river");
    assert_eq!(river.names.zh.as_deref(), Some("浑河"));
    let n = m.buildings.len();
    let step = (n / 5000).max(1);
    let mut checked = 0;
    for b in m.buildings.iter().step_by(step) {
        let c = b.footprint.centroid().unwrap();
        assert!(built.contains(&c), "building {} centroid outside built_up", b.id);
        for w in &m.water {
            assert!(!w.geometry.contains(&c), "building {} in water {}", b.id, w.class);
        }
        assert!(b.footprint.is_valid(), "building {} invalid", b.id);
        let ext = b.footprint.0[0].exterior();
        assert!(geo::Winding::is_ccw(ext), "building {} not CCW", b.id);
        assert!(b.height > 0.0 && b.levels.is_some() && b.district.is_some());
        assert_eq!(b.height_source, HeightSource::Generated);
        checked += 1;
    }
    assert!(checked >= 4900);
}

#[test]
fn zones_have_distinct_heights_and_footprints() {
    let (m, zones, _) = city();
    let (mx, my) = geodesy::metres_per_degree(41.8);
    let by = |z: Zone| -> Vec<&Building> { m.buildings.iter().zip(zones).filter(|(_, zz)| **zz == z).map(|(b, _)| b).collect() };
    let area = |b: &Building| b.footprint.unsigned_area() * mx * my;
    let (cbd, res, fringe, ind) = (by(Zone::Cbd), by(Zone::Residential), by(Zone::Fringe), by(Zone::Industrial));
    let h = |v: &Vec<&Building>| median(v.iter().map(|b| b.height as f64).collect());
    let a = |v: &Vec<&Building>| median(v.iter().map(|b| area(b)).collect());
    eprintln!(
        "zones: CBD {} (median {:.0} m), residential {} ({:.0} m, {:.0} m²), fringe {} ({:.0} m), industrial {} ({:.0} m², {:.0} m)",
        cbd.len(), h(&cbd), res.len(), h(&res), a(&res), fringe.len(), h(&fringe), ind.len(), a(&ind), h(&ind)
    );
    assert!(h(&cbd) > h(&res) && h(&res) > h(&fringe));
    assert!(a(&ind) > 3.0 * a(&res));
    assert!(cbd.iter().all(|b| (80.0..=300.0).contains(&b.height)));
    assert!(ind.iter().all(|b| b.height <= 20.0));
}

#[test]
fn roads_ring_arterials_bridges_and_noding() {
    let (m, _, _) = city();
    let count = |c: RoadClass| m.roads.iter().filter(|r| r.class == c).count();
    assert!(count(RoadClass::Motorway) > 0 && count(RoadClass::Trunk) > 0);
    assert!(m.roads.iter().any(|r| r.names.zh.as_deref() == Some("二环路")));
    assert!(m.roads.iter().any(|r| r.names.zh.as_deref() == Some("三环")));
    assert!(m.roads.iter().any(|r| r.class == RoadClass::Primary && r.names.zh.as_deref() == Some("青年大街")));
    assert!(count(RoadClass::Primary) > 100 && count(RoadClass::Secondary) > 100 && count(RoadClass::Residential) > 1000);
    let river = &m.water.iter().find(|w| w.class == "river").unwrap().geometry;
    let bridges = m
        .roads
        .iter()
        .filter(|r| r.layer == 1 && geo::Intersects::intersects(&r.geometry, river))
        .count();
    eprintln!(
        "roads: {} motorway, {} trunk, {} primary, {} secondary, {} residential; {bridges} bridge segments over the river",
        count(RoadClass::Motorway), count(RoadClass::Trunk), count(RoadClass::Primary), count(RoadClass::Secondary), count(RoadClass::Residential)
    );
    assert!(bridges >= 4, "{bridges} bridges");
    // noding: every road end that lies on another road's interior is a shared vertex of that road
    let built = m.built_up.as_ref().unwrap();
    let mut ends: Vec<(u64, u64)> = Vec::new();
    for r in &m.roads {
        let g = &r.geometry.0;
        for c in [g[0], g[g.len() - 1]] {
            ends.push((c.x.to_bits(), c.y.to_bits()));
        }
        if !matches!(r.class, RoadClass::Motorway | RoadClass::Trunk) {
            let mid = Point::new((g[0].x + g[g.len() - 1].x) / 2.0, (g[0].y + g[g.len() - 1].y) / 2.0);
            assert!(built.contains(&mid), "road {} leaves the built-up area", r.id);
        }
    }
    ends.sort();
    let shared = ends.windows(2).filter(|w| w[0] == w[1]).count();
    assert!(shared * 2 > ends.len(), "most road ends should be shared junctions: {shared} of {}", ends.len());
}

#[test]
fn same_seed_same_city_other_seed_other_city() {
    let mut r1 = BuildReport::default();
    let a = shenyang::build_default(&dir(), 7, &mut r1).unwrap();
    let b = shenyang::build_default(&dir(), 7, &mut BuildReport::default()).unwrap();
    let c = shenyang::build_default(&dir(), 8, &mut BuildReport::default()).unwrap();
    let (ba, bb, bc) = (bincode::serialize(&a).unwrap(), bincode::serialize(&b).unwrap(), bincode::serialize(&c).unwrap());
    assert!(ba == bb, "same seed must give identical bytes");
    assert!(ba != bc, "another seed must give another city");
}


#[test]
fn roads_meet_only_at_shared_vertices() {
    use geo::line_intersection::{line_intersection, LineIntersection};
    let (m, _, _) = city();
    // bucket segments on a ~400 m grid
    let cell = 0.004;
    type Bucket = Vec<(usize, geo_types::Line<f64>)>;
    let mut buckets: std::collections::BTreeMap<(i64, i64), Bucket> = Default::default();
    for (ri, r) in m.roads.iter().enumerate() {
        for l in r.geometry.lines() {
            let (x0, x1) = (l.start.x.min(l.end.x), l.start.x.max(l.end.x));
            let (y0, y1) = (l.start.y.min(l.end.y), l.start.y.max(l.end.y));
            for i in (x0 / cell).floor() as i64..=(x1 / cell).floor() as i64 {
                for j in (y0 / cell).floor() as i64..=(y1 / cell).floor() as i64 {
                    buckets.entry((i, j)).or_default().push((ri, l));
                }
            }
        }
    }
    let mut bad = Vec::new();
    for segs in buckets.values() {
        for a in 0..segs.len() {
            for b in a + 1..segs.len() {
                let ((ra, la), (rb, lb)) = (segs[a], segs[b]);
                if ra == rb || m.roads[ra].layer != m.roads[rb].layer {
                    continue;
                }
                match line_intersection(la, lb) {
                    Some(LineIntersection::SinglePoint { intersection, .. }) => {
                        let ends = [la.start, la.end];
                        let endsb = [lb.start, lb.end];
                        if !(ends.contains(&intersection) && endsb.contains(&intersection)) {
                            bad.push((ra, rb, intersection));
                        }
                    }
                    Some(LineIntersection::Collinear { .. }) => bad.push((ra, rb, la.start)),
                    None => {}
                }
            }
        }
    }
    bad.sort_by_key(|a| (a.0, a.1));
    bad.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    for (a, b, p) in bad.iter().take(10) {
        eprintln!("{:?} {:?} × {:?} {:?} at {:?}", m.roads[*a].class, m.roads[*a].names.zh, m.roads[*b].class, m.roads[*b].names.zh, p);
        if std::env::var("DEBUG_ROADS").is_ok() {
            eprintln!("  A {:?}\n  B {:?}", m.roads[*a].geometry.0, m.roads[*b].geometry.0);
        }
    }
    assert!(bad.is_empty(), "{} same-layer crossings without a shared vertex", bad.len());
}
