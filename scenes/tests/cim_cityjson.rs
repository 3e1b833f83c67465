//! CityJSON ingest against the shared test data (../shared/data/cim/cityjson).

use scenes::ingest::{SourceCtx, SourceSpec};
use scenes::model::{CityModel, Level, SurfaceKind};
use scenes::report::{BuildReport, IngestError};

mod common;
use common::ingest;

fn path(name: &str) -> String {
    common::shared("cim/cityjson", name)
}

/// Calls the CityJSON reader directly (for files whose head does not announce CityJSON).
fn ingest_direct(spec: SourceSpec) -> Result<(CityModel, BuildReport, u64), IngestError> {
    let mut model = CityModel::empty("t");
    let mut report = BuildReport::default();
    model.sources.push(scenes::model::SourceInfo { path: spec.path.clone(), kind: String::new(), crs: String::new(), datum: None });
    let mut ctx = SourceCtx { index: 0, spec: &spec, model: &mut model, report: &mut report };
    let n = scenes::cim::cityjson::ingest(&mut ctx)?;
    Ok((model, report, n))
}

fn assert_in_box(m: &CityModel, lon: (f64, f64), lat: (f64, f64)) {
    use geo::BoundingRect;
    for b in &m.buildings {
        let r = b.footprint.bounding_rect().expect("non-empty footprint");
        assert!(
            r.min().x >= lon.0 && r.max().x <= lon.1 && r.min().y >= lat.0 && r.max().y <= lat.1,
            "building {} outside the expected box: {:?}",
            b.source.id,
            r
        );
    }
}

#[test]
fn den_haag_buildings_with_parts_merged() {
    let (m, report, n) = ingest(SourceSpec::new(path("DenHaag_01_v2.city.json"))).unwrap();
    assert_eq!(n, 844 + 1653 + 1);
    assert_eq!(m.buildings.len(), 844, "report: {report:?}");
    assert_eq!(m.sources[0].kind, "cityjson");
    assert_eq!(m.sources[0].crs, "EPSG:7415");
    assert_in_box(&m, (4.2, 4.5), (51.9, 52.2));
    let mut heights = Vec::new();
    for b in &m.buildings {
        let s = b.solid.as_ref().expect("solid");
        assert!((2.0..3.0).contains(&s.lod), "lod {}", s.lod);
        assert_eq!(b.level, Level::L3);
        assert!(s.surfaces.iter().any(|s| s.kind == SurfaceKind::Roof), "{} has no roof", b.source.id);
        assert!(s.surfaces.iter().any(|s| s.kind == SurfaceKind::Wall), "{} has no wall", b.source.id);
        assert!(b.height > 0.0 && b.height < 200.0, "{} height {}", b.source.id, b.height);
        assert!(b.footprint.0.iter().all(|p| p.exterior().0.len() >= 4));
        heights.push(b.height);
    }
    heights.sort_by(|a, b| a.total_cmp(b));
    let median = heights[heights.len() / 2];
    assert!((3.0..30.0).contains(&median), "median height {median}");
    assert!(report.warnings.iter().any(|w| w.contains("TINRelief 1")), "{:?}", report.warnings);
}

#[test]
fn rotterdam_buildings() {
    let (m, r, _) = ingest(SourceSpec::new(path("rotterdam_3-20-DELFSHAVEN_v2.city.json"))).unwrap();
    assert_eq!(m.buildings.len(), 853);
    // 633 surfaces with < 3 distinct vertices in 182 buildings (checked with a Python count over
    // the file's boundaries): removed from the solids, tallied once per building.
    let t = r.repaired.values().map(|t| t.count).sum::<u64>();
    assert_eq!(t, 182, "{r:?}");
    assert_eq!(m.sources[0].crs, "EPSG:28992");
    assert_in_box(&m, (4.40, 4.50), (51.88, 51.94));
    assert!(m.buildings.iter().all(|b| b.solid.as_ref().is_some_and(|s| s.lod == 2.0)));
}

#[test]
fn zurich_cityjson_1_1() {
    let (m, r, _) = ingest(SourceSpec::new(path("cjio_zurich_subset_lod2.json"))).unwrap();
    assert_eq!(m.buildings.len(), 49, "{r:?}");
    assert_eq!(m.sources[0].crs, "EPSG:2056");
    assert_in_box(&m, (8.45, 8.60), (47.33, 47.45));
    for b in &m.buildings {
        assert!(b.height > 0.0 && b.height < 200.0);
    }
}

#[test]
fn multi_lod_keeps_the_highest() {
    // The file has no referenceSystem: it must be refused without a CRS…
    let e = ingest(SourceSpec::new(path("cjio_multi_lod.json"))).unwrap_err();
    assert!(e.to_string().contains("cjio_multi_lod.json") && e.to_string().contains("--crs"), "{e}");
    // …and read with one (its coordinates are Dutch RD New).
    let mut spec = SourceSpec::new(path("cjio_multi_lod.json"));
    spec.crs = Some("EPSG:28992".into());
    let (m, _r, _) = ingest(spec).unwrap();
    assert_eq!(m.buildings.len(), 10);
    for b in &m.buildings {
        let s = b.solid.as_ref().unwrap();
        assert!((s.lod - 2.2).abs() < 1e-6, "lod {}", s.lod);
        assert_eq!(b.level, Level::L3);
    }
    assert_in_box(&m, (3.3, 7.3), (50.7, 53.6));
}

#[test]
fn delft_counts_other_city_objects() {
    let (m, r, n) = ingest_direct(SourceSpec::new(path("cjio_delft.json"))).unwrap();
    assert_eq!(n, 570);
    assert_eq!(m.buildings.len(), 160);
    assert!(m.buildings.iter().all(|b| b.level == Level::L2));
    let w = r.warnings.iter().find(|w| w.contains("non-building")).expect("per-type warning");
    for t in ["Road 143", "PlantCover 126", "LandUse 81", "Bridge 3", "WaterBody 3", "GenericCityObject 54"] {
        assert!(w.contains(t), "{w}");
    }
}

fn write_temp(content: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::Builder::new().suffix(".city.json").tempfile().unwrap();
    f.write_all(content.as_bytes()).unwrap();
    f
}

const SMALL: &str = r#"{"type":"CityJSON","version":"2.0",
 "transform":{"scale":[0.001,0.001,0.001],"translate":[78000.0,457000.0,0.0]},
 "metadata":{"referenceSystem":"https://www.opengis.net/def/crs/EPSG/0/7415"},
 "CityObjects":{"house-1":{"type":"Building","attributes":{"function":"residential","name":"Huis"},
   "geometry":[{"type":"MultiSurface","lod":"1",
     "boundaries":[[[0,1,2,3]],[[4,5,6,7]],[[0,0,0]], [[IDX,1,5]]],
     "semantics":{"surfaces":[{"type":"GroundSurface"},{"type":"RoofSurface"}],"values":[0,1,null,null]}}]}},
 "vertices":[[0,0,0],[10000,0,0],[10000,10000,0],[0,10000,0],[0,0,6000],[10000,0,6000],[10000,10000,6000],[0,10000,6000]]}"#;

#[test]
fn out_of_range_vertex_is_fatal_and_named() {
    let f = write_temp(&SMALL.replace("IDX", "99999"));
    let e = ingest(SourceSpec::new(f.path().to_str().unwrap())).unwrap_err();
    let msg = e.to_string();
    let fname = f.path().file_name().unwrap().to_str().unwrap();
    assert!(msg.contains(fname), "{msg}");
    assert!(msg.contains("house-1"), "{msg}");
    assert!(msg.contains("99999") && msg.contains("8 vertices"), "{msg}");
}

#[test]
fn small_building_and_degenerate_surface_repaired() {
    let f = write_temp(&SMALL.replace("IDX", "4"));
    let (m, r, n) = ingest(SourceSpec::new(f.path().to_str().unwrap())).unwrap();
    assert_eq!(n, 1);
    let b = &m.buildings[0];
    assert_eq!(b.source.id, "house-1");
    assert_eq!(b.level, Level::L2);
    assert!((b.height - 6.0).abs() < 0.01, "{}", b.height);
    assert_eq!(b.names.local.as_deref(), Some("Huis"));
    assert_eq!(b.use_, scenes::model::BuildingUse::Residential);
    let s = b.solid.as_ref().unwrap();
    assert_eq!(s.surfaces.len(), 3);
    assert_eq!(s.surfaces[0].kind, SurfaceKind::Ground);
    let area_m2 = scenes::geodesy::area_km2(&b.footprint) * 1e6;
    assert!((area_m2 - 100.0).abs() < 1.0, "{area_m2}");
    assert_eq!(r.repaired_total(), 1, "{r:?}");
}

#[test]
fn malformed_json_is_fatal_and_named() {
    let f = write_temp(r#"{"type":"CityJSON","version":"2.0","CityObjects":{"a": [1,2,}"#);
    let e = ingest(SourceSpec::new(f.path().to_str().unwrap())).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(f.path().file_name().unwrap().to_str().unwrap()), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
}
