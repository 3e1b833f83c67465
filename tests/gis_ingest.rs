//! GIS ingest through the real CLI: formats GDAL reads, CRSs (EPSG:3946, CGCS2000 geographic and
//! Gauss-Krüger), declared GCJ-02 datum, attribute mapping — checked against independent readers
//! (serde_json on the source file, GDAL's `ogrinfo`/`ogr2ogr`).

mod common;
use common::*;
use geo::Centroid;
use std::collections::HashMap;
use std::process::Command;

fn load(dir: &std::path::Path) -> scenes::CityModel {
    scenes::store::read_model(dir).expect("model.bin")
}

#[test]
fn lyon_bdtopo_lands_in_lyon_with_hauteur_heights() {
    let src = data("buildings/lyon1_bdtopo.geojson");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lyon");
    let m = build(&out, &["--source", &src]);
    assert_eq!(m["sources"][0]["crs"], "EPSG:3946");
    assert_eq!(m["sources"][0]["kind"], "gdal:GeoJSON");
    let n = ogr_count(&src, None);
    assert_eq!(n, 2576, "ogrinfo count of the source");
    assert_eq!(m["layers"]["buildings"].as_u64().unwrap() + m["dropped_total"].as_u64().unwrap(), n);
    assert_eq!(m["layers"]["buildings"], 2576, "every BD TOPO building is valid and kept: {}", m["report"]);
    assert_eq!(m["heights"]["attribute"]["HAUTEUR"], 2576);

    // Independent read of the source: HAUTEUR by BD TOPO ID.
    let hauteur = lyon_hauteur(std::path::Path::new(&src));
    let model = load(&out);
    for b in &model.buildings {
        let h = hauteur[&b.source.id];
        assert!((b.height as f64 - h).abs() < 1e-4, "{}: {} vs HAUTEUR {}", b.source.id, b.height, h);
        let c = b.footprint.centroid().unwrap();
        // Lyon 1er arrondissement.
        assert!((4.80..4.85).contains(&c.x()) && (45.755..45.78).contains(&c.y()), "{}: {:?}", b.source.id, c);
    }
}

fn ogr2ogr(args: &[&str]) {
    let o = Command::new("ogr2ogr").args(args).output().expect("ogr2ogr (gdal-bin)");
    assert!(o.status.success(), "ogr2ogr {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn geopackage_shapefile_flatgeobuf_and_geojson_give_the_same_buildings() {
    let src = data("buildings/astana_osm_buildings.geojson");
    let tmp = tempfile::tempdir().unwrap();
    let n = ogr_count(&src, None);
    assert_eq!(n, 32_056);
    let mut results = Vec::new();
    for (ext, driver) in [("geojson", None), ("gpkg", Some("GPKG")), ("shp", Some("ESRI Shapefile")), ("fgb", Some("FlatGeobuf"))] {
        let path = match driver {
            None => src.clone(),
            Some(d) => {
                let p = tmp.path().join(format!("astana.{ext}")).to_string_lossy().into_owned();
                ogr2ogr(&["-f", d, &p, &src, "-select", "building,building:levels,name"]);
                p
            }
        };
        let out = tmp.path().join(format!("m-{ext}"));
        // The Shapefile's field names are truncated (`building:levels` → `building_`), so tell it
        // what the layer holds.
        let m = if ext == "shp" { build(&out, &["--source", &path, "--layer", "buildings"]) } else { build(&out, &["--source", &path]) };
        let kept = m["layers"]["buildings"].as_u64().unwrap();
        assert_eq!(kept + m["dropped_total"].as_u64().unwrap(), n, "{ext}: kept + dropped = source count; {}", m["report"]);
        let model = load(&out);
        let area: f64 = model.buildings.iter().map(|b| geo::Area::unsigned_area(&b.footprint)).sum();
        results.push((ext, kept, area, m["bbox"].clone()));
    }
    let (_, k0, a0, b0) = results[0].clone();
    for (ext, k, a, b) in &results[1..] {
        assert_eq!(*k, k0, "{ext} building count");
        assert!((a - a0).abs() / a0 < 1e-9, "{ext} total footprint area");
        for i in 0..4 {
            assert!((b[i].as_f64().unwrap() - b0[i].as_f64().unwrap()).abs() < 1e-9, "{ext} bbox");
        }
    }
    // Astana (Kazakhstan).
    assert!((71.2..71.7).contains(&b0[0].as_f64().unwrap()) && (51.0..51.3).contains(&b0[1].as_f64().unwrap()), "{b0}");
}

fn district_centroids(dir: &std::path::Path) -> HashMap<u32, (f64, f64)> {
    load(dir)
        .districts
        .iter()
        .map(|d| {
            let c = d.geometry.centroid().unwrap();
            (d.adcode, (c.x(), c.y()))
        })
        .collect()
}

#[test]
fn gcj02_datum_and_cgcs2000_gauss_kruger() {
    let src = data("shenyang/datav_210100_full.json");
    let tmp = tempfile::tempdir().unwrap();
    // As given (GCJ-02 read as if WGS-84) and declared GCJ-02.
    let raw = tmp.path().join("raw");
    let m = build(&raw, &["--source", &src]);
    assert_eq!(m["layers"]["districts"], 13);
    let conv = tmp.path().join("conv");
    let m = build(&conv, &["--source", &src, "--datum", "gcj02"]);
    assert_eq!(m["sources"][0]["datum"], "gcj02");
    let (a, b) = (district_centroids(&raw), district_centroids(&conv));
    assert_eq!(a.len(), 13);
    for (code, (lon0, lat0)) in &a {
        let (lon1, lat1) = b[code];
        let (mx, my) = scenes::geodesy::metres_per_degree(*lat0);
        let (de, dn) = ((lon1 - lon0) * mx, (lat1 - lat0) * my);
        // The README: GCJ-02 sits ~500 m east and ~260 m north of true positions in Shenyang.
        if (41.5..42.1).contains(lat0) && (123.0..123.8).contains(lon0) {
            assert!((-600.0..-400.0).contains(&de), "{code}: east shift {de}");
            assert!((-340.0..-180.0).contains(&dn), "{code}: north shift {dn}");
        }
    }

    // The same boundaries in CGCS2000 / 3-degree Gauss-Kruger CM 123E (EPSG:4549), as Chinese
    // survey data comes, still GCJ-02-obfuscated: reprojection then datum conversion must land
    // where the geographic GCJ-02 build did, to well under a metre.
    let gk = tmp.path().join("sy_4549.gpkg").to_string_lossy().into_owned();
    ogr2ogr(&["-f", "GPKG", "-s_srs", "EPSG:4326", "-t_srs", "EPSG:4549", &gk, &src]);
    let gkm = tmp.path().join("gk");
    let m = build(&gkm, &["--source", &gk, "--datum", "gcj02"]);
    assert_eq!(m["sources"][0]["crs"], "EPSG:4549");
    let c = district_centroids(&gkm);
    for (code, p) in &b {
        let q = c[code];
        let d = scenes::geodesy::haversine_m(*p, q);
        assert!(d < 0.5, "{code}: {d} m between geographic and Gauss-Krüger builds");
    }

    // CGCS2000 geographic (EPSG:4490): within a metre of WGS-84.
    let cg = tmp.path().join("sy_4490.gpkg").to_string_lossy().into_owned();
    ogr2ogr(&["-f", "GPKG", "-a_srs", "EPSG:4490", &cg, &src]);
    let cgm = tmp.path().join("cg");
    let m = build(&cgm, &["--source", &cg, "--datum", "gcj02"]);
    assert_eq!(m["sources"][0]["crs"], "EPSG:4490");
    let c = district_centroids(&cgm);
    for (code, p) in &b {
        assert!(scenes::geodesy::haversine_m(*p, c[code]) < 1.0, "{code}");
    }
}

#[test]
fn building_points_without_footprints_are_reported_not_lost() {
    let src = data("buildings/hsinchu_nycu.geojson");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("h");
    let m = build(&out, &["--source", &src]);
    // 319 OSM footprints + 1,990 NLSC points with BUILD_H (README).
    assert_eq!(ogr_count(&src, None), 2309);
    assert_eq!(m["layers"]["buildings"], 319, "{}", m["report"]);
    let dropped = &m["report"]["dropped"]["building without a polygon footprint (point or line)"];
    assert_eq!(dropped["count"], 1990, "{}", m["report"]);
    assert!(dropped["examples"][0]["source"].as_str().unwrap().ends_with("hsinchu_nycu.geojson"));
    // CJK names go to name_zh.
    let model = load(&out);
    assert!(model.buildings.iter().any(|b| b.names.zh.is_some()));
}

#[test]
fn cim_sources_build_together_and_models_are_copied_in() {
    let tmp = tempfile::tempdir().unwrap();
    let placement = tmp.path().join("tower.json");
    // Place the FZK-Haus GLB on 市府广场, Shenyang, turned 30°.
    std::fs::write(&placement, r#"{"lon": 123.4315, "lat": 41.8057, "height": 45.0, "heading_deg": 30, "scale": 1.0,
        "name": {"zh": "示范楼", "en": "Demo house"}}"#)
    .unwrap();
    let out = tmp.path().join("cim");
    let dh = data("cim/cityjson/DenHaag_01_v2.city.json");
    let glb = data("cim/gltf/AC20-FZK-Haus.glb");
    let ifc = data("cim/ifc/AC20-FZK-Haus.ifc");
    let m = build(&out, &["--source", &dh, "--source", &glb, "--placement", placement.to_str().unwrap(), "--source", &ifc]);
    assert_eq!(m["sources"][0]["accepted"]["buildings"], 844, "Den Haag buildings, parts merged");
    assert_eq!(m["sources"][1]["accepted"]["buildings"], 1);
    assert_eq!(m["sources"][2]["accepted"]["buildings"], 1);
    assert_eq!(m["layers"]["buildings"], 846);
    assert_eq!(m["layers"]["cim_models"], 846);
    assert_eq!(m["sources"][0]["crs"], "EPSG:7415");
    let model = load(&out);
    // The placed models were copied into the model directory and are referenced relatively.
    assert_eq!(model.cim_models.len(), 2);
    for c in &model.cim_models {
        assert!(c.path.starts_with("cim/"), "{}", c.path);
        assert!(out.join(&c.path).is_file(), "{} copied", c.path);
    }
    let glb_b = model.buildings.iter().find(|b| b.cim_model == Some(0)).unwrap();
    let c = glb_b.footprint.centroid().unwrap();
    assert!(scenes::geodesy::haversine_m((c.x(), c.y()), (123.4315, 41.8057)) < 20.0, "{c:?}");
    assert_eq!(glb_b.names.zh.as_deref(), Some("示范楼"));
    // The IFC lands at its IfcSite (Karlsruhe, 49.1004 N 8.4365 E).
    let ifc_b = model.buildings.iter().find(|b| b.cim_model == Some(1)).unwrap();
    let c = ifc_b.footprint.centroid().unwrap();
    assert!(scenes::geodesy::haversine_m((c.x(), c.y()), (8.436539, 49.100435)) < 50.0, "{c:?}");
}

#[test]
fn osm_pbf_and_xml_counts_match_the_independent_counts() {
    // Counts from ../shared/data/README.md (pyosmium): buildings = ways + relations with a
    // building tag. Our rule keeps closed ways and multipolygon relations and reports the rest
    // (building=no, other relation types) as dropped with a reason, so kept + those = README.
    let tmp = tempfile::tempdir().unwrap();
    for (file, readme_buildings, readme_highways) in
        [("osm/porto.osm.pbf", 11_404u64, 4_656u64), ("osm/london.osm.pbf", 2_160, 3_141), ("osm/north-bayreuth.osm.gz", 4_267, 2_056)]
    {
        let out = tmp.path().join(file.replace('/', "_"));
        let m = build(&out, &["--source", &data(file)]);
        let kept = m["layers"]["buildings"].as_u64().unwrap();
        let building_drops: u64 = m["report"]["dropped"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("building"))
            .map(|(_, v)| v["count"].as_u64().unwrap())
            .sum();
        assert_eq!(kept + building_drops, readme_buildings, "{file}: {}", m["report"]);
        let model = load(&out);
        let highways = model.roads.iter().filter(|r| r.class != scenes::model::RoadClass::Rail).count() as u64;
        assert_eq!(highways, readme_highways, "{file}");
        assert!(m["attribution"].to_string().contains("OpenStreetMap"), "{file}");
    }
}

#[test]
fn osm_district_level_reads_andorras_parishes_as_districts() {
    // GDAL's OSM driver (`ogrinfo -sql "SELECT count(*) FROM multipolygons WHERE
    // boundary='administrative' AND admin_level='N'"`): 7 parishes at level 7, 3 areas at level 8.
    let tmp = tempfile::tempdir().unwrap();
    let m = build(&tmp.path().join("default"), &["--source", &data("osm/andorra.osm.pbf"), "--no-tiles", "--no-3dtiles"]);
    assert_eq!((m["layers"]["districts"].as_u64(), m["layers"]["streets"].as_u64()), (Some(0), Some(10)));
    let m = build(&tmp.path().join("parishes"), &["--source", &data("osm/andorra.osm.pbf"), "--district-level", "7", "--no-tiles", "--no-3dtiles"]);
    assert_eq!((m["layers"]["districts"].as_u64(), m["layers"]["streets"].as_u64()), (Some(7), Some(3)));
}
