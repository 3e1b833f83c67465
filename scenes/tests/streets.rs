//! The street level (街道/乡镇): GDAL ingest of street boundaries (recognition, parents, repaired
//! and rejected geometry) and the built-in city's synthetic partition of the real NBS list.

mod common;

use geo::{BooleanOps, Contains, InteriorPoint};
use scenes::geodesy;
use scenes::ingest::SourceSpec;
use scenes::shenyang::{self, streets};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// geo's Chamberlain–Duquette area of a lon/lat rectangle is exact: R²·Δλ·(sin φ2 − sin φ1) with
/// the WGS-84 equatorial radius.
fn rect_km2(w: f64, s: f64, e: f64, n: f64) -> f64 {
    let r = 6_378_137.0f64;
    r * r * (e - w).to_radians() * (n.to_radians().sin() - s.to_radians().sin()) / 1e6
}

#[test]
fn geojson_streets_get_codes_parents_areas_and_bad_geometry_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("divisions.geojson");
    // Two districts side by side; street 1 by code (parent from the code), street 2 without a
    // code (admin_level 8; parent by containment), street 3 a MultiPolygon of two overlapping
    // rectangles (repaired by the even-odd boolean union: the overlap 123.14–123.15 drops out,
    // leaving two rectangles), street 4 a ring of two distinct points (rejected).
    let text = r#"{"type": "FeatureCollection", "features": [
 {"type": "Feature", "properties": {"name": "甲区", "adcode": "210102", "boundary": "administrative"},
  "geometry": {"type": "Polygon", "coordinates": [[[123.0,41.0],[123.1,41.0],[123.1,41.1],[123.0,41.1],[123.0,41.0]]]}},
 {"type": "Feature", "properties": {"name": "乙区", "adcode": "210103", "boundary": "administrative"},
  "geometry": {"type": "Polygon", "coordinates": [[[123.1,41.0],[123.2,41.0],[123.2,41.1],[123.1,41.1],[123.1,41.0]]]}},
 {"type": "Feature", "properties": {"id": "s1", "name": "一号街道", "code": "210102001", "level": "street"},
  "geometry": {"type": "Polygon", "coordinates": [[[123.0,41.0],[123.05,41.0],[123.05,41.1],[123.0,41.1],[123.0,41.0]]]}},
 {"type": "Feature", "properties": {"id": "s2", "name": "无码街道", "boundary": "administrative", "admin_level": "8"},
  "geometry": {"type": "Polygon", "coordinates": [[[123.12,41.02],[123.18,41.02],[123.18,41.08],[123.12,41.08],[123.12,41.02]]]}},
 {"type": "Feature", "properties": {"id": "s3", "name": "叠合镇", "code": "210103101000"},
  "geometry": {"type": "MultiPolygon", "coordinates": [
     [[[123.10,41.0],[123.15,41.0],[123.15,41.01],[123.10,41.01],[123.10,41.0]]],
     [[[123.14,41.0],[123.20,41.0],[123.20,41.01],[123.14,41.01],[123.14,41.0]]]]}},
 {"type": "Feature", "properties": {"id": "s4", "name": "坏线乡", "level": "township"},
  "geometry": {"type": "Polygon", "coordinates": [[[123.11,41.09],[123.12,41.09],[123.11,41.09],[123.12,41.09]]]}}
]}"#;
    std::fs::write(&path, text).unwrap();
    let (mut m, report, n) = common::ingest(SourceSpec::new(path.to_string_lossy())).unwrap();
    assert_eq!(n, 6);
    assert_eq!(m.districts.len(), 2);
    scenes::build::assign_street_districts(&mut m);
    m.renumber();
    let names: Vec<&str> = m.streets.iter().map(|s| s.names.zh.as_deref().unwrap()).collect();
    assert_eq!(names, ["一号街道", "无码街道", "叠合镇"]);
    let codes: Vec<u64> = m.streets.iter().map(|s| s.code).collect();
    assert_eq!(codes, [210102001, 0, 210103101000]);
    let parents: Vec<Option<u16>> = m.streets.iter().map(|s| s.district).collect();
    assert_eq!(parents, [Some(0), Some(1), Some(1)]);
    let ids: Vec<&str> = m.streets.iter().map(|s| s.source.id.as_str()).collect();
    assert_eq!(ids, ["s1", "s2", "s3"]);
    let want = [rect_km2(123.0, 41.0, 123.05, 41.1), rect_km2(123.12, 41.02, 123.18, 41.08), rect_km2(123.10, 41.0, 123.14, 41.01) + rect_km2(123.15, 41.0, 123.20, 41.01)];
    for (s, w) in m.streets.iter().zip(want) {
        assert!((s.area_km2 - w).abs() < 1e-6 * w, "{:?}: {} km², want {w}", s.names.zh, s.area_km2);
    }
    // 一号街道 ≈ 0.05° × 0.1° at 41°N: 4.2 km × 11.1 km
    assert!((m.streets[0].area_km2 - 46.6).abs() < 0.5, "{}", m.streets[0].area_km2);
    // the repaired street is the two rectangles outside the overlap
    assert_eq!(m.streets[2].geometry.0.len(), 2);
    // the repair and the rejection are reported naming the feature
    let warns = report.warnings.join("\n");
    assert!(warns.contains("street") && warns.contains("s3") && warns.contains("叠合镇") && warns.contains("repaired"), "{warns}");
    assert!(warns.contains("s4") && warns.contains("坏线乡") && warns.contains("dropped"), "{warns}");
    let dropped = serde_json::to_string(&report.dropped).unwrap();
    assert!(dropped.contains("s4"), "{dropped}");
    let repaired = serde_json::to_string(&report.repaired).unwrap();
    assert!(repaired.contains("s3"), "{repaired}");
}

fn shared_shenyang() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/shenyang")
}

/// The NBS list counted with plain string handling: rows per district adcode (3rd column).
fn csv_counts(path: &Path) -> BTreeMap<u32, usize> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let area: u32 = line.split(',').nth(2).unwrap().trim().parse().unwrap();
        *out.entry(area).or_insert(0) += 1;
    }
    out
}

#[test]
fn default_city_streets_partition_each_district() {
    let csv = shared_shenyang().join("divisions/streets_2101.csv");
    if !csv.is_file() {
        eprintln!("skipped: {} not found", csv.display());
        return;
    }
    let bdir = shared_shenyang().join("cnmaps");
    assert_eq!(streets::find_divisions(None, &bdir).unwrap().canonicalize().unwrap(), csv.canonicalize().unwrap());
    let ds = shenyang::load_districts(&bdir).unwrap();
    let built = shenyang::gen::built_up_polygon(&ds, shenyang::gen::OUTLINE_SCALE);
    let rows = streets::read_divisions(&csv).unwrap();
    let (st, warnings) = streets::generate(&ds, Some(&built), &rows, shenyang::DEFAULT_SEED, 0);
    assert!(warnings.is_empty(), "{warnings:?}");
    let counts = csv_counts(&csv);
    assert_eq!(counts.values().sum::<usize>(), 190);
    assert_eq!(st.len(), 190);
    for (di, d) in ds.iter().enumerate() {
        let mine: Vec<_> = st.iter().filter(|s| s.district == Some(di as u16)).collect();
        assert_eq!(mine.len(), counts[&d.adcode], "{} streets", d.names.zh.as_deref().unwrap());
        let sum: f64 = mine.iter().map(|s| s.area_km2).sum();
        assert!((sum - d.area_km2).abs() <= 0.005 * d.area_km2, "{}: streets {sum} km², district {} km²", d.adcode, d.area_km2);
        for s in &mine {
            assert_eq!(s.code / 1000, d.adcode as u64, "{:?}", s.names.zh);
            assert!(s.area_km2 > 0.0);
            assert!((s.area_km2 - geodesy::area_km2(&s.geometry)).abs() < 1e-9);
            let p = s.geometry.interior_point().unwrap();
            assert!(d.geometry.contains(&p), "{:?} outside {}", s.names.zh, d.adcode);
            let outside = geodesy::area_km2(&s.geometry.difference(&d.geometry));
            assert!(outside < 1e-4 * s.area_km2.max(1.0), "{:?}: {outside} km² outside {}", s.names.zh, d.adcode);
        }
    }
    // real names and codes
    let hunhewan = st.iter().find(|s| s.code == 210102001).unwrap();
    assert_eq!(hunhewan.names.zh.as_deref(), Some("浑河湾街道"));
    // urban 街道 smaller than rural 镇 (built-up weighting)
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let jd = median(st.iter().filter(|s| s.names.zh.as_deref().unwrap().ends_with("街道")).map(|s| s.area_km2).collect());
    let zhen = median(st.iter().filter(|s| s.names.zh.as_deref().unwrap().ends_with('镇')).map(|s| s.area_km2).collect());
    assert!(jd * 2.0 < zhen, "median 街道 {jd} km², 镇 {zhen} km²");
    // deterministic
    let (again, _) = streets::generate(&ds[..1], Some(&built), &rows, shenyang::DEFAULT_SEED, 0);
    assert!(again.iter().zip(&st).all(|(a, b)| a.geometry == b.geometry));
}

#[test]
fn missing_street_list_is_a_warning_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.csv");
    let err = streets::find_divisions(Some(&missing), &shared_shenyang().join("cnmaps")).unwrap_err();
    assert_eq!(err, vec![missing]);
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "code,name,areaCode\nx,\"a\",210102\n").unwrap();
    let e = streets::read_divisions(&bad).unwrap_err();
    assert!(e.contains("bad.csv") && e.contains("line 2"), "{e}");
}
