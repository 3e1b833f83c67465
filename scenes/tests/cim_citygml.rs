//! CityGML 2.0/3.0 ingest against the shared test data (../shared/data/cim/citygml).

use geo::{BoundingRect, Centroid};
use scenes::geodesy::Enu;
use scenes::ingest::SourceSpec;
use scenes::model::{Building, Level, SurfaceKind};

mod common;
use common::ingest;

fn path(name: &str) -> String {
    common::shared("cim/citygml", name)
}

fn assert_in_box(bs: &[Building], lon: (f64, f64), lat: (f64, f64)) {
    for b in bs {
        let r = b.footprint.bounding_rect().expect("non-empty footprint");
        assert!(
            r.min().x >= lon.0 && r.max().x <= lon.1 && r.min().y >= lat.0 && r.max().y <= lat.1,
            "building {} outside the expected box: {:?}",
            b.source.id,
            r
        );
    }
}

/// Footprint area in m², computed in a local ENU frame at the footprint's centroid.
fn area_m2(b: &Building) -> f64 {
    let c = b.footprint.centroid().unwrap();
    let enu = Enu::new(c.x(), c.y(), 0.0);
    let ring_area = |r: &geo_types::LineString<f64>| {
        let p: Vec<[f64; 3]> = r.0.iter().map(|q| enu.from_geodetic(q.x, q.y, 0.0)).collect();
        let mut s = 0.0;
        for i in 0..p.len() {
            let j = (i + 1) % p.len();
            s += p[i][0] * p[j][1] - p[j][0] * p[i][1];
        }
        (s / 2.0).abs()
    };
    b.footprint.0.iter().map(|poly| ring_area(poly.exterior()) - poly.interiors().iter().map(ring_area).sum::<f64>()).sum()
}

/// Counts top-level `<bldg:Building ` elements (opening tags not nested in another building).
fn count_top_level_buildings(xml: &str) -> usize {
    let (mut depth, mut top) = (0i32, 0usize);
    let mut rest = xml;
    while let Some(i) = rest.find("bldg:Building") {
        let before = &rest[..i];
        let after = &rest[i + "bldg:Building".len()..];
        let next = after.chars().next().unwrap_or(' ');
        if next == ' ' || next == '>' {
            if before.ends_with("</") {
                depth -= 1;
            } else if before.ends_with('<') {
                if depth == 0 {
                    top += 1;
                }
                depth += 1;
            }
        }
        rest = after;
    }
    top
}

#[test]
fn ingolstadt_lod3_all_buildings() {
    let mut total_expected = 0;
    let mut total = 0;
    for id in ["4018133", "4018148", "4018206", "4018209"] {
        let p = path(&format!("ingolstadt-lod3/{id}/{id}.xml"));
        let xml = std::fs::read_to_string(&p).unwrap();
        let expected = count_top_level_buildings(&xml);
        let (m, r, n) = ingest(SourceSpec::new(p.clone())).unwrap();
        assert_eq!(m.sources[0].kind, "citygml");
        assert_eq!(m.sources[0].crs, "EPSG:32632");
        assert_eq!(m.buildings.len(), expected, "{p}: {r:?}");
        assert!(n as usize >= expected);
        for b in &m.buildings {
            assert_eq!(b.level, Level::L4);
            let s = b.solid.as_ref().unwrap();
            assert_eq!(s.lod, 3.0);
            assert!(s.surfaces.iter().any(|s| s.kind == SurfaceKind::Wall));
            assert!(b.height > 2.0 && b.height < 60.0, "{} {}", b.source.id, b.height);
        }
        assert_in_box(&m.buildings, (11.35, 11.48), (48.70, 48.80));
        total_expected += expected;
        total += m.buildings.len();
    }
    // Checked by hand: `grep -c '<bldg:Building '` gives 1, 1, 1, 2 and none is nested.
    assert_eq!(total_expected, 5);
    assert_eq!(total, 5);
}

fn plateau(v: u8) -> Building {
    let (m, r, n) = ingest(SourceSpec::new(path(&format!("plateau-tokyo-shinjuku/53394517_bldg_6697_2_op_CityGML{v}.gml")))).unwrap();
    assert_eq!(n, 1);
    assert_eq!(m.buildings.len(), 1, "{r:?}");
    assert_eq!(m.sources[0].crs, "EPSG:6697");
    // The building (National Stadium area, Kasumigaoka-machi) is at about 139.718 E, 35.679 N.
    // Swapped axes would put it at lon 35, lat 139 (an invalid latitude).
    assert_in_box(&m.buildings, (139.70, 139.73), (35.67, 35.69));
    let b = m.buildings.into_iter().next().unwrap();
    let s = b.solid.as_ref().unwrap();
    assert_eq!(s.lod, 2.0);
    assert_eq!(b.level, Level::L3);
    assert!(s.surfaces.iter().any(|s| s.kind == SurfaceKind::Roof));
    assert!(s.surfaces.iter().any(|s| s.kind == SurfaceKind::Ground));
    assert!(b.height > 5.0 && b.height < 100.0, "{}", b.height);
    b
}

#[test]
fn plateau_2_and_3_agree_and_honour_lat_lon_order() {
    let b2 = plateau(2);
    let b3 = plateau(3);
    let (c2, c3) = (b2.footprint.centroid().unwrap(), b3.footprint.centroid().unwrap());
    let d = scenes::geodesy::haversine_m((c2.x(), c2.y()), (c3.x(), c3.y()));
    assert!(d < 1.0, "centroids {d} m apart");
    let (a2, a3) = (area_m2(&b2), area_m2(&b3));
    assert!((a2 - a3).abs() / a2 < 0.01, "{a2} vs {a3}");
    assert_eq!(b2.source.id, "BLD_77ca1a15-3b35-4386-8f86-152ed71c4c64");
}

#[test]
fn lyon_without_srs_needs_crs() {
    for f in ["LYON_1ER_BATI_2015_small_house.gml", "LYON_2EME_BATI_2015_small_house.gml"] {
        let e = ingest(SourceSpec::new(path(&format!("lyon/{f}")))).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(f) && msg.contains("--crs"), "{msg}");

        let mut spec = SourceSpec::new(path(&format!("lyon/{f}")));
        spec.crs = Some("EPSG:3946".into());
        let (m, r, _) = ingest(spec).unwrap();
        assert_eq!(m.buildings.len(), 1, "{r:?}");
        assert_eq!(m.sources[0].crs, "EPSG:3946");
        assert_in_box(&m.buildings, (4.78, 4.88), (45.70, 45.80));
        let b = &m.buildings[0];
        assert_eq!(b.level, Level::L3);
        assert!(b.height > 2.0 && b.height < 60.0, "{}", b.height);
        assert!(r.warnings.iter().all(|w| !w.contains("could not be resolved")), "{:?}", r.warnings);
    }
}

#[test]
fn fzk_haus_citygml3_footprint() {
    // The ground surface is 457842–457854 E × 5439083–5439093 N (EPSG:25832): 12 m × 10 m = 120 m².
    for (f, lod, level) in [
        ("FZK-Haus-LoD1-KIT-IAI-KHH-B36-V1__v3.gml", 1.0, Level::L2),
        ("FZK-Haus-LoD2-KIT-IAI-KHH-B36-V1__v3.gml", 2.0, Level::L3),
        ("FZK-Haus-LoD3-KIT-IAI-KHH-B36-V1__v3.gml", 3.0, Level::L4),
    ] {
        let (m, r, _) = ingest(SourceSpec::new(path(&format!("citygml3-ecitygml-fixtures/{f}")))).unwrap();
        assert_eq!(m.buildings.len(), 1, "{f}: {r:?}");
        let b = &m.buildings[0];
        let a = area_m2(b);
        assert!((a - 120.0).abs() / 120.0 < 0.01, "{f}: footprint {a} m²");
        assert_eq!(b.solid.as_ref().unwrap().lod, lod);
        assert_eq!(b.level, level);
        assert_in_box(&m.buildings, (8.40, 8.47), (49.08, 49.13));
        assert!(b.height > 5.0 && b.height < 10.0, "{f}: {}", b.height);
        if lod == 3.0 {
            let s = b.solid.as_ref().unwrap();
            assert!(s.surfaces.iter().any(|s| s.kind == SurfaceKind::Window), "{f}: no windows");
            assert!(s.surfaces.iter().any(|s| s.kind == SurfaceKind::Door), "{f}: no doors");
        }
    }
}

#[test]
fn tum_main_entrance_citygml3() {
    let (m, r, _) = ingest(SourceSpec::new(path("citygml3-ecitygml-fixtures/TUM-Main-Entrance.gml"))).unwrap();
    assert!(!m.buildings.is_empty(), "{r:?}");
    // TUM main campus, Arcisstraße, Munich.
    assert_in_box(&m.buildings, (11.55, 11.59), (48.13, 48.16));
}

#[test]
fn malformed_xml_is_fatal_and_named() {
    use std::io::Write;
    let mut f = tempfile::Builder::new().suffix(".gml").tempfile().unwrap();
    f.write_all(b"<?xml version=\"1.0\"?>\n<core:CityModel xmlns:core=\"http://www.opengis.net/citygml/2.0\"><a></b></core:CityModel>").unwrap();
    let e = ingest(SourceSpec::new(f.path().to_str().unwrap())).unwrap_err();
    assert!(e.to_string().contains(f.path().file_name().unwrap().to_str().unwrap()), "{e}");
}

/// `uri="#…"` targets of every ParameterizedTexture, and the distinct imageURIs, read from the
/// XML text with plain string search (independent of the reader).
fn texture_targets(xml: &str) -> (std::collections::BTreeSet<String>, std::collections::BTreeSet<String>) {
    let (mut targets, mut images) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    for block in xml.split("<app:ParameterizedTexture").skip(1) {
        let block = block.split("</app:ParameterizedTexture>").next().unwrap();
        if let Some(i) = block.find("<app:imageURI>") {
            let rest = &block[i + "<app:imageURI>".len()..];
            images.insert(rest[..rest.find('<').unwrap()].to_string());
        }
        for t in block.split("<app:target uri=\"#").skip(1) {
            targets.insert(t[..t.find('"').unwrap()].to_string());
        }
    }
    (targets, images)
}

#[test]
fn appearances_textures_and_uvs_are_kept() {
    for (file, n_images) in [("ingolstadt-lod3/4018148/4018148.xml", 4), ("ingolstadt-lod3/4018133/4018133.xml", 2), ("plateau-tokyo-shinjuku/53394517_bldg_6697_2_op_CityGML2.gml", 1)] {
        let p = path(file);
        let xml = std::fs::read_to_string(&p).unwrap();
        let (targets, images) = texture_targets(&xml);
        assert_eq!(images.len(), n_images, "{file}: {images:?}");
        let (m, r, _) = ingest(SourceSpec::new(p.clone())).unwrap();
        assert!(r.warnings.iter().all(|w| !w.contains("texture")), "{r:?}");
        let s = m.buildings[0].solid.as_ref().unwrap();
        // the building's textures: exactly the distinct images, as existing absolute paths
        assert_eq!(s.textures.len(), n_images, "{file}");
        let dir = std::path::Path::new(&p).parent().unwrap();
        for img in &images {
            let want = std::fs::canonicalize(dir.join(img)).unwrap();
            assert!(s.textures.iter().any(|t| std::path::Path::new(t) == want), "{file}: {img} not in {:?}", s.textures);
        }
        // every textured surface: one UV per ring vertex, a texture index in range
        let textured: Vec<_> = s.surfaces.iter().filter(|f| f.appearance.as_ref().is_some_and(|a| a.texture.is_some())).collect();
        for f in &textured {
            let a = f.appearance.as_ref().unwrap();
            assert!((a.texture.unwrap() as usize) < s.textures.len());
            assert_eq!(a.uvs.len(), f.rings.len());
            for (r, uv) in f.rings.iter().zip(&a.uvs) {
                assert_eq!(r.len(), uv.len());
                assert!(uv.iter().flatten().all(|x| x.is_finite()));
            }
        }
        // textured surfaces: at least 95 % of the polygons the XML's textures target (a few are
        // dropped as degenerate or duplicates), never more
        assert!(textured.len() <= targets.len() && textured.len() * 100 >= targets.len() * 95, "{file}: {} textured of {} targets", textured.len(), targets.len());
    }
    // a missing texture directory: untextured, reported for the building with a warning
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("4018133.xml");
    std::fs::copy(path("ingolstadt-lod3/4018133/4018133.xml"), &copy).unwrap();
    let (m, r, _) = ingest(SourceSpec::new(copy.display().to_string())).unwrap();
    let s = m.buildings[0].solid.as_ref().unwrap();
    assert!(s.textures.is_empty() && s.surfaces.iter().all(|f| f.appearance.as_ref().is_none_or(|a| a.texture.is_none())));
    assert_eq!(r.repaired["texture image missing: its surfaces are left untextured"].count, 1);
    assert!(r.warnings.iter().any(|w| w.contains("Roofing_Tile_Spanish.jpg")), "{:?}", r.warnings);
}
