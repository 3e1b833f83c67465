//! Bad inputs through the real CLI: each fails the build with an error naming the file (and the
//! feature where there is one), exits non-zero, and leaves no model — and a model already at the
//! output path survives untouched.

mod common;
use common::*;
use std::path::Path;

/// Runs a build expected to fail; returns stderr. Asserts no output appeared and no temp dirs
/// were left beside it.
fn failing_build(dir: &Path, args: &[&str]) -> String {
    let out = dir.join("model");
    let out_s = out.to_string_lossy().into_owned();
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--out", &out_s]);
    let o = twin(&a);
    let err = stderr(&o);
    assert!(!o.status.success(), "build should fail: {args:?}\n{err}");
    assert!(!out.exists(), "a failed build left a model at {}", out.display());
    let leftovers: Vec<_> = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert!(leftovers.iter().all(|n| !n.to_string_lossy().contains(".building-")), "temp dirs left: {leftovers:?}");
    err
}

#[test]
fn truncated_pbf_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(data("osm/porto.osm.pbf")).unwrap();
    let p = tmp.path().join("porto-truncated.osm.pbf");
    std::fs::write(&p, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let err = failing_build(tmp.path(), &["--source", p.to_str().unwrap()]);
    assert!(err.contains("porto-truncated.osm.pbf"), "{err}");
}

#[test]
fn broken_geojson_names_file_and_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("broken.geojson");
    std::fs::write(
        &p,
        r#"{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"building":"yes"},"geometry":{"type":"Point","coordinates":[1,2]}},
{"type":"Feature","properties":{"building":"yes"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],]]}}
]}"#,
    )
    .unwrap();
    let err = failing_build(tmp.path(), &["--source", p.to_str().unwrap()]);
    assert!(err.contains("broken.geojson") && err.contains("features[1]") && err.contains("line 3"), "{err}");
}

#[test]
fn unknown_epsg_is_named_in_file_and_on_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("badcrs.geojson");
    std::fs::write(
        &p,
        r#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::999999"}},
"features":[{"type":"Feature","properties":{"building":"yes"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}]}"#,
    )
    .unwrap();
    let err = failing_build(tmp.path(), &["--source", p.to_str().unwrap()]);
    assert!(err.contains("badcrs.geojson") && err.contains("999999"), "{err}");
    let lyon = data("buildings/lyon1_bdtopo.geojson");
    let err = failing_build(tmp.path(), &["--source", &lyon, "--crs", "EPSG:999999"]);
    assert!(err.contains("lyon1_bdtopo.geojson") && err.contains("EPSG:999999"), "{err}");
}

#[test]
fn cityjson_vertex_index_out_of_range_names_the_object() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.city.json");
    std::fs::write(
        &p,
        r#"{"type":"CityJSON","version":"2.0","transform":{"scale":[0.001,0.001,0.001],"translate":[85000,446000,0]},
"metadata":{"referenceSystem":"https://www.opengis.net/def/crs/EPSG/0/28992"},
"CityObjects":{"building-42":{"type":"Building","geometry":[{"type":"MultiSurface","lod":"1","boundaries":[[[0,1,2,99999]]]}]}},
"vertices":[[0,0,0],[1000,0,0],[1000,1000,0]]}"#,
    )
    .unwrap();
    let err = failing_build(tmp.path(), &["--source", p.to_str().unwrap()]);
    assert!(err.contains("bad.city.json") && err.contains("building-42") && err.contains("99999"), "{err}");
}

#[test]
fn citygml_without_srsname_demands_crs() {
    let tmp = tempfile::tempdir().unwrap();
    let gml = data("cim/citygml/lyon/LYON_1ER_BATI_2015_small_house.gml");
    let err = failing_build(tmp.path(), &["--source", &gml]);
    assert!(err.contains("LYON_1ER_BATI_2015_small_house.gml") && err.contains("--crs"), "{err}");
    // With the CRS declared it builds, in Lyon.
    let out = tmp.path().join("ok");
    let m = build(&out, &["--source", &gml, "--crs", "EPSG:3946"]);
    assert!(m["layers"]["buildings"].as_u64().unwrap() >= 1);
    let bbox = &m["bbox"];
    assert!((4.7..4.9).contains(&bbox[0].as_f64().unwrap()) && (45.7..45.8).contains(&bbox[1].as_f64().unwrap()), "{bbox}");
}

#[test]
fn a_failed_rebuild_keeps_the_previous_model() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model");
    let good = data("buildings/lyon1_bdtopo.geojson");
    build(&out, &["--source", &good]);
    let before = std::fs::read(out.join("model.bin")).unwrap();
    let bad = tmp.path().join("broken.geojson");
    std::fs::write(&bad, "{\"type\":\"FeatureCollection\",\"features\":[").unwrap();
    let o = twin(&["build", "--source", &good, "--source", bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("broken.geojson"));
    assert_eq!(std::fs::read(out.join("model.bin")).unwrap(), before, "the previous model must survive a failed build");
    assert_eq!(manifest(&out)["layers"]["buildings"], 2576);
}

#[test]
fn missing_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let err = failing_build(tmp.path(), &["--source", "/nonexistent/roads.gpkg"]);
    assert!(err.contains("/nonexistent/roads.gpkg") && err.contains("no such file"), "{err}");
}
