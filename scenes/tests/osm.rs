//! Native OSM ingest against the shared extracts (../shared/data/osm, counts from its README,
//! measured independently with pyosmium).

use scenes::ingest::{ingest_source, SourceSpec};
use scenes::model::{HeightSource, RoadClass};
use scenes::{BuildReport, CityModel};
use std::path::PathBuf;

fn data(file: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/osm").join(file);
    assert!(p.exists(), "shared test data missing: {} (tests need ../shared/data beside the project)", p.display());
    p
}

fn ingest(file: &str) -> (CityModel, BuildReport, u64) {
    let mut model = CityModel::empty("osm-test");
    let mut report = BuildReport::default();
    let spec = SourceSpec::new(data(file).to_string_lossy().into_owned());
    let n = ingest_source(&spec, &mut model, &mut report).unwrap_or_else(|e| panic!("{file}: {e}"));
    (model, report, n)
}

fn dropped_with(report: &BuildReport, prefix: &str) -> u64 {
    report.dropped.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, t)| t.count).sum()
}

/// (file, README buildings (ways + relations with a building tag), README highway ways,
///  buildings expected kept, expected drops by reason).
///
/// The README counts every object with a `building` key: `building=no` ways and relations of
/// other types (`type=building`, `site`, `collection`, none) included. Those are not buildings by
/// our rule and are dropped with a reason, as are open ways; everything else is kept.
type Expect = (&'static str, u64, u64, u64, &'static [(&'static str, u64)]);

const FILES: &[Expect] = &[
    ("porto.osm.pbf", 11_404, 4_656, 11_404, &[]),
    (
        "liechtenstein-latest.osm.pbf",
        8_998,
        4_660,
        8_994,
        &[
            ("building: building=no", 1),
            ("building: way not closed", 2),
            ("building: relation type=none is not an area (its tagged member ways count on their own)", 1),
        ],
    ),
    ("andorra.osm.pbf", 4_352, 4_611, 4_352, &[]),
    (
        "munchen.osm.pbf",
        2_427,
        2_959,
        2_425,
        &[
            ("building: relation type=building is not an area (its tagged member ways count on their own)", 1),
            ("building: relation type=site is not an area (its tagged member ways count on their own)", 1),
        ],
    ),
    (
        "london.osm.pbf",
        2_160,
        3_141,
        2_155,
        &[
            ("building: building=no", 3),
            ("building: relation type=building is not an area (its tagged member ways count on their own)", 1),
            ("building: relation type=collection is not an area (its tagged member ways count on their own)", 1),
        ],
    ),
    ("baltimore.osm.pbf", 1_738, 3_844, 1_738, &[]),
    ("nyc.osm.pbf", 1_525, 95, 1_525, &[]),
    ("monaco.osm.pbf", 1_151, 1_996, 1_151, &[]),
    ("moscow.osm.pbf", 678, 1_304, 678, &[]),
    ("north-bayreuth.osm.gz", 4_267, 2_056, 4_267, &[]),
];

fn check_file(i: usize) {
    let (file, readme_buildings, readme_highways, expect_kept, expect_drops) = FILES[i];
    let (model, report, n) = ingest(file);
    let kept = model.buildings.len() as u64;
    let dropped = dropped_with(&report, "building:");
    let highways = model.roads.iter().filter(|r| r.class != RoadClass::Rail).count() as u64;
    let rails = model.roads.len() as u64 - highways;
    eprintln!(
        "{file}: objects {n}, buildings kept {kept} + dropped {dropped} (README {readme_buildings}), highway roads \
         {highways} (README {readme_highways}), rail {rails}, water {}, landuse {}, pois {}; dropped {:?}; repaired {:?}",
        model.water.len(),
        model.landuse.len(),
        model.pois.len(),
        report.dropped.iter().map(|(k, t)| (k.as_str(), t.count)).collect::<Vec<_>>(),
        report.repaired.iter().map(|(k, t)| (k.as_str(), t.count)).collect::<Vec<_>>(),
    );
    assert_eq!(kept + dropped, readme_buildings, "{file}: kept + dropped buildings vs README");
    assert_eq!(kept, expect_kept, "{file}: buildings kept");
    let drops: Vec<(&str, u64)> =
        report.dropped.iter().filter(|(k, _)| k.starts_with("building:")).map(|(k, t)| (k.as_str(), t.count)).collect();
    let mut want: Vec<(&str, u64)> = expect_drops.to_vec();
    want.sort();
    assert_eq!(drops, want, "{file}: building drop reasons");
    assert_eq!(highways, readme_highways, "{file}: highway ways");
    assert_eq!(model.sources[0].crs, "EPSG:4326");
    assert_eq!(model.sources[0].kind, if file.ends_with(".pbf") { "osm-pbf" } else { "osm-xml" });
    for b in &model.buildings {
        assert!(b.footprint.0.iter().all(|p| p.exterior().0.len() >= 4), "{file}: {} degenerate", b.source.id);
        assert!(b.source.id.starts_with('w') || b.source.id.starts_with('r'));
    }
}

#[test]
fn porto_counts() {
    check_file(0);
}
#[test]
fn liechtenstein_counts() {
    check_file(1);
}
#[test]
fn andorra_counts() {
    check_file(2);
}
#[test]
fn munchen_counts() {
    check_file(3);
}
#[test]
fn london_counts() {
    check_file(4);
}
#[test]
fn baltimore_counts() {
    check_file(5);
}
#[test]
fn nyc_counts() {
    check_file(6);
}
#[test]
fn monaco_counts() {
    check_file(7);
}
#[test]
fn moscow_counts() {
    check_file(8);
}
#[test]
fn north_bayreuth_xml_counts() {
    check_file(9);
}

#[test]
fn nyc_heights_from_height_tag() {
    let (model, _, _) = ingest("nyc.osm.pbf");
    let with_height =
        model.buildings.iter().filter(|b| b.height_source == HeightSource::Attribute { name: "height".into() }).count();
    assert_eq!(with_height, 1_514, "README: 1,514 NYC buildings carry height");
    // The five relation buildings all carry height (README/pyosmium): they must be there.
    let rels = model.buildings.iter().filter(|b| b.source.id.starts_with('r')).count();
    assert_eq!(rels, 5);
}

#[test]
fn porto_buildings_lie_in_porto() {
    use geo::BoundingRect;
    let (model, _, _) = ingest("porto.osm.pbf");
    assert!(!model.buildings.is_empty());
    for b in &model.buildings {
        let r = b.footprint.bounding_rect().unwrap();
        assert!(
            r.min().x > -8.7 && r.max().x < -8.5 && r.min().y > 41.1 && r.max().y < 41.2,
            "{} outside Porto: {:?}",
            b.source.id,
            r
        );
    }
    // Relation buildings (the ones GDAL loses) are there, with exteriors CCW and holes CW.
    use geo::Winding;
    let rel: Vec<_> = model.buildings.iter().filter(|b| b.source.id.starts_with('r')).collect();
    assert_eq!(rel.len(), 51);
    for b in rel {
        for p in &b.footprint.0 {
            assert!(p.exterior().is_ccw());
            assert!(p.interiors().iter().all(|h| h.is_cw()));
        }
    }
}

#[test]
fn deterministic_across_runs() {
    let (a, ra, _) = ingest("monaco.osm.pbf");
    let (b, rb, _) = ingest("monaco.osm.pbf");
    assert_eq!(a.buildings, b.buildings);
    assert_eq!(a.roads, b.roads);
    assert_eq!(a.pois, b.pois);
    assert_eq!(ra, rb);
}

#[test]
fn truncated_pbf_is_an_error_naming_the_file() {
    let bytes = std::fs::read(data("porto.osm.pbf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("porto-truncated.osm.pbf");
    std::fs::write(&path, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let mut model = CityModel::empty("t");
    let mut report = BuildReport::default();
    let spec = SourceSpec::new(path.to_string_lossy().into_owned());
    let e = ingest_source(&spec, &mut model, &mut report).expect_err("truncated PBF must fail");
    let msg = e.to_string();
    assert!(msg.contains("porto-truncated.osm.pbf"), "{msg}");
    assert!(msg.contains("blob #"), "{msg}");
    assert!(model.buildings.is_empty() && model.roads.is_empty(), "no partial success");
    eprintln!("{msg}");
}

#[test]
fn malformed_xml_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("mismatched.osm", "<?xml version='1.0'?>\n<osm version='0.6'>\n<node id='1' lat='1' lon='2'>\n</way>\n</osm>\n"),
        ("truncated.osm", "<?xml version='1.0'?>\n<osm version='0.6'>\n<node id='1' lat='1' lon='2'/>\n<way id='3'>\n"),
        ("badnum.osm", "<?xml version='1.0'?>\n<osm version='0.6'>\n<node id='x' lat='1' lon='2'/>\n</osm>\n"),
    ];
    for (name, text) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let mut model = CityModel::empty("t");
        let mut report = BuildReport::default();
        let spec = SourceSpec::new(path.to_string_lossy().into_owned());
        let e = ingest_source(&spec, &mut model, &mut report).expect_err("malformed XML must fail");
        let msg = e.to_string();
        assert!(msg.contains(name), "{msg}");
        assert!(msg.contains("line "), "{msg}");
        eprintln!("{msg}");
    }
    // A truncated .osm.gz (gzip stream cut) fails too.
    let gz = std::fs::read(data("north-bayreuth.osm.gz")).unwrap();
    let path = dir.path().join("cut.osm.gz");
    std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
    let mut model = CityModel::empty("t");
    let mut report = BuildReport::default();
    let e = ingest_source(&SourceSpec::new(path.to_string_lossy().into_owned()), &mut model, &mut report)
        .expect_err("truncated gzip must fail");
    assert!(e.to_string().contains("cut.osm.gz"), "{e}");
    eprintln!("{e}");
}

/// Order independence: the same data as XML in node → relation → way order and in the standard
/// order give the same model; a relation before its ways is assembled.
#[test]
fn xml_order_independent_multipolygon() {
    let nodes = "<node id='1' lat='0' lon='0'/><node id='2' lat='0' lon='1'/><node id='3' lat='1' lon='1'/>\
                 <node id='4' lat='1' lon='0'/><node id='5' lat='0.2' lon='0.2'/><node id='6' lat='0.2' lon='0.4'/>\
                 <node id='7' lat='0.4' lon='0.4'/>\n";
    let rel = "<relation id='9'><member type='way' ref='11' role='outer'/><member type='way' ref='12' role=''/>\
               <member type='way' ref='13' role='inner'/><tag k='type' v='multipolygon'/><tag k='building' v='yes'/>\
               <tag k='height' v='12'/></relation>\n";
    // Outer ring split in two ways, the second one reversed; inner a closed triangle.
    let ways = "<way id='11'><nd ref='1'/><nd ref='2'/><nd ref='3'/></way>\
                <way id='12'><nd ref='1'/><nd ref='4'/><nd ref='3'/></way>\
                <way id='13'><nd ref='5'/><nd ref='6'/><nd ref='7'/><nd ref='5'/></way>\n";
    let dir = tempfile::tempdir().unwrap();
    let mut models = Vec::new();
    for (name, body) in [("std.osm", format!("{nodes}{ways}{rel}")), ("odd.osm", format!("{nodes}{rel}{ways}"))] {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("<?xml version='1.0'?>\n<osm version='0.6'>\n{body}</osm>\n")).unwrap();
        let mut model = CityModel::empty("t");
        let mut report = BuildReport::default();
        ingest_source(&SourceSpec::new(path.to_string_lossy().into_owned()), &mut model, &mut report).unwrap();
        assert_eq!(model.buildings.len(), 1, "{name}: {report:?}");
        let b = &model.buildings[0];
        assert_eq!(b.source.id, "r9");
        assert_eq!(b.footprint.0.len(), 1);
        assert_eq!(b.footprint.0[0].interiors().len(), 1);
        assert_eq!(b.height, 12.0);
        models.push(model.buildings);
    }
    assert_eq!(models[0], models[1]);
}

fn ingest_xml(dir: &std::path::Path, name: &str, body: &str, datum: scenes::ingest::Datum) -> (CityModel, BuildReport) {
    let path = dir.join(name);
    std::fs::write(&path, format!("<?xml version='1.0'?>\n<osm version='0.6'>\n{body}</osm>\n")).unwrap();
    let mut model = CityModel::empty("t");
    let mut report = BuildReport::default();
    let mut spec = SourceSpec::new(path.to_string_lossy().into_owned());
    spec.datum = datum;
    ingest_source(&spec, &mut model, &mut report).unwrap();
    (model, report)
}

/// Roads (oneway=-1 reversed, mph, lanes, layer), rail, POI nodes and area POIs, water over
/// landuse, open building ways dropped with a reason, GCJ-02 conversion.
#[test]
fn xml_feature_rules() {
    use scenes::ingest::Datum;
    use scenes::model::PoiKind;
    let dir = tempfile::tempdir().unwrap();
    let body = "<node id='1' lat='41.80' lon='123.40'/><node id='2' lat='41.80' lon='123.41'/>\
        <node id='3' lat='41.81' lon='123.41'/><node id='4' lat='41.81' lon='123.40'/>\
        <node id='5' lat='41.805' lon='123.405'><tag k='amenity' v='hospital'/><tag k='beds' v='120'/>\
        <tag k='name' v='沈阳医院'/></node>\
        <way id='10'><nd ref='1'/><nd ref='2'/><nd ref='3'/><tag k='highway' v='primary'/><tag k='oneway' v='-1'/>\
        <tag k='maxspeed' v='30 mph'/><tag k='lanes' v='2'/><tag k='layer' v='1'/></way>\
        <way id='11'><nd ref='1'/><nd ref='4'/><tag k='railway' v='tram'/></way>\
        <way id='12'><nd ref='1'/><nd ref='2'/><nd ref='3'/><nd ref='4'/><nd ref='1'/><tag k='natural' v='water'/>\
        <tag k='landuse' v='grass'/></way>\
        <way id='13'><nd ref='1'/><nd ref='2'/><nd ref='3'/><nd ref='4'/><nd ref='1'/><tag k='amenity' v='parking'/>\
        <tag k='capacity' v='50'/></way>\
        <way id='14'><nd ref='1'/><nd ref='2'/><nd ref='3'/><tag k='building' v='yes'/></way>\
        <way id='15'><nd ref='1'/><nd ref='99'/><tag k='highway' v='service'/></way>\n";
    let (m, r) = ingest_xml(dir.path(), "rules.osm", body, Datum::Native);
    assert_eq!(m.roads.len(), 2, "w15 has one resolvable node: dropped");
    let road = &m.roads[0];
    assert_eq!((road.class, road.oneway, road.lanes, road.layer), (RoadClass::Primary, true, Some(2), 1));
    assert!((road.max_speed_kmh.unwrap() - 48.28).abs() < 0.01);
    assert_eq!(road.geometry.0[0].y, 41.81, "oneway=-1 reverses the geometry");
    assert_eq!(m.roads[1].class, RoadClass::Rail);
    assert_eq!(r.dropped["road: fewer than 2 resolvable nodes"].count, 1);
    assert_eq!(m.water.len(), 1, "water wins over landuse");
    assert!(m.landuse.is_empty());
    assert_eq!(r.dropped["building: way not closed"].count, 1);
    assert!(m.buildings.is_empty());
    let kinds: Vec<_> = m.pois.iter().map(|p| (p.kind, p.capacity, p.source.id.as_str())).collect();
    assert_eq!(kinds, vec![(PoiKind::Hospital, Some(120), "n5"), (PoiKind::Parking, Some(50), "w13")]);
    assert_eq!(m.pois[0].names.zh.as_deref(), Some("沈阳医院"));

    let (g, _) = ingest_xml(dir.path(), "gcj.osm", body, Datum::Gcj02);
    let (a, b) = (m.pois[0].location, g.pois[0].location);
    let (dx, dy) = (a.x() - b.x(), a.y() - b.y());
    assert!(dx > 0.004 && dx < 0.008 && dy > 0.001 && dy < 0.004, "GCJ-02 shift in Shenyang: {dx} {dy}");
}

/// Implied one-way (OSM wiki "Key:oneway"): motorway, motorway_link and roundabouts are one-way
/// without an `oneway` tag; `oneway=no` overrides; other roads stay two-way.
#[test]
fn xml_implied_oneway() {
    use scenes::ingest::Datum;
    let dir = tempfile::tempdir().unwrap();
    let body = "<node id='1' lat='41.80' lon='123.40'/><node id='2' lat='41.80' lon='123.41'/>\
        <node id='3' lat='41.81' lon='123.41'/>\
        <way id='20'><nd ref='1'/><nd ref='2'/><tag k='highway' v='motorway'/></way>\
        <way id='21'><nd ref='2'/><nd ref='3'/><tag k='highway' v='motorway_link'/></way>\
        <way id='22'><nd ref='1'/><nd ref='2'/><nd ref='3'/><nd ref='1'/><tag k='highway' v='tertiary'/>\
        <tag k='junction' v='roundabout'/></way>\
        <way id='23'><nd ref='1'/><nd ref='2'/><tag k='highway' v='motorway'/><tag k='oneway' v='no'/></way>\
        <way id='24'><nd ref='1'/><nd ref='3'/><tag k='highway' v='primary'/></way>\n";
    let (m, _) = ingest_xml(dir.path(), "oneway.osm", body, Datum::Native);
    let ow: Vec<(&str, bool)> = m.roads.iter().map(|r| (r.source.id.as_str(), r.oneway)).collect();
    assert_eq!(ow, vec![("w20", true), ("w21", true), ("w22", true), ("w23", false), ("w24", false)]);
}

// Administrative boundaries. Expected values are GDAL's OSM driver (an independent reader):
// `ogrinfo -sql "SELECT count(*) FROM multipolygons WHERE boundary='administrative' AND
// admin_level='N'"` on the extract, areas from `ogr2ogr -t_srs EPSG:3035` (equal-area) and
// `ST_Area`; the dropped (clipped) relations were counted with pyosmium: boundary relations at
// levels 5–9 with a member way absent from the file.

fn admin_ingest(file: &str, district_level: Option<u8>) -> (CityModel, BuildReport) {
    let mut model = CityModel::empty("osm-admin");
    let mut report = BuildReport::default();
    let spec = SourceSpec { district_admin_level: district_level, ..SourceSpec::new(data(file).to_string_lossy().into_owned()) };
    ingest_source(&spec, &mut model, &mut report).unwrap_or_else(|e| panic!("{file}: {e}"));
    model.renumber();
    scenes::build::assign_street_districts(&mut model);
    (model, report)
}

fn by_name<'a, T>(items: &'a [T], name: fn(&T) -> Option<&str>, want: &str) -> &'a T {
    items.iter().find(|x| name(x) == Some(want)).unwrap_or_else(|| panic!("{want} not found"))
}

fn local(s: &scenes::model::Street) -> Option<&str> {
    s.names.local.as_deref()
}

fn dlocal(d: &scenes::model::District) -> Option<&str> {
    d.names.local.as_deref()
}

fn close_km2(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() / want < 0.005, "{what}: {got:.4} km² vs GDAL/EPSG:3035 {want:.4} km²");
}

#[test]
fn liechtenstein_admin_boundaries() {
    let (m, report) = admin_ingest("liechtenstein-latest.osm.pbf", None);
    // GDAL: admin_level 6 → 2 (Wahlkreise), admin_level 8 → 11 (Gemeinden); 7 and 9 → 0.
    assert_eq!(m.districts.len(), 2, "districts");
    assert_eq!(m.streets.len(), 11, "streets");
    let mut names: Vec<&str> = m.streets.iter().filter_map(|s| s.names.local.as_deref()).collect();
    names.sort();
    assert_eq!(
        names,
        ["Balzers", "Eschen", "Gamprin", "Mauren", "Planken", "Ruggell", "Schaan", "Schellenberg", "Triesen", "Triesenberg", "Vaduz"]
    );
    for s in &m.streets {
        let holes: usize = s.geometry.0.iter().map(|p| p.interiors().len()).sum();
        eprintln!("{:?}: {} parts, {holes} holes, {:.4} km²", local(s), s.geometry.0.len(), s.area_km2);
    }
    // Schaan and Planken have holes (each other's exclaves): their areas check hole handling.
    close_km2(by_name(&m.streets, local, "Vaduz").area_km2, 17.284455624565, "Vaduz");
    close_km2(by_name(&m.streets, local, "Schaan").area_km2, 26.9726432622567, "Schaan");
    close_km2(by_name(&m.streets, local, "Planken").area_km2, 5.35947129082866, "Planken");
    close_km2(by_name(&m.districts, dlocal, "Wahlkreis Oberland").area_km2, 125.509136356819, "Oberland");
    close_km2(by_name(&m.districts, dlocal, "Wahlkreis Unterland").area_km2, 34.9858279333121, "Unterland");
    assert_eq!(by_name(&m.streets, local, "Vaduz").source.id, "r1155956");
    // Parents by containment: the Oberland has six municipalities, the Unterland five.
    let oberland = by_name(&m.districts, dlocal, "Wahlkreis Oberland").id;
    let unterland = by_name(&m.districts, dlocal, "Wahlkreis Unterland").id;
    for s in &m.streets {
        let want = match local(s).unwrap() {
            "Balzers" | "Planken" | "Schaan" | "Triesen" | "Triesenberg" | "Vaduz" => oberland,
            _ => unterland,
        };
        assert_eq!(s.district, Some(want), "{:?}", s.names);
    }
    // The extract is clipped: 6 Austrian/Swiss districts and 11 municipalities lack member ways.
    assert_eq!(dropped_with(&report, "district: multipolygon member way missing"), 6);
    assert_eq!(dropped_with(&report, "street: multipolygon member way missing"), 11);
    assert_eq!(dropped_with(&report, "district:") + dropped_with(&report, "street:"), 17);
    assert!(
        report.warnings.iter().any(|w| w.contains("r75152") && w.contains("\"Feldkirch\"") && w.contains("admin_level 6") && w.contains("member way")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn andorra_admin_boundaries_and_configured_level() {
    // Default levels: nothing at 5–6 survives the clipping; 7 (parishes, 7) and 8 (3) are streets.
    let (m, report) = admin_ingest("andorra.osm.pbf", None);
    assert_eq!(m.districts.len(), 0);
    assert_eq!(m.streets.len(), 7 + 3);
    assert_eq!(dropped_with(&report, "district:"), 3, "Ariège, Pyrénées-Orientales, Lleida are clipped");
    assert_eq!(dropped_with(&report, "street:"), 16);
    let canillo = by_name(&m.streets, local, "Canillo");
    close_km2(canillo.area_km2, 109.44735569037, "Canillo");
    assert_eq!(canillo.code, 1, "ref=1");

    // Parishes (admin_level 7) as districts: the level-8 areas are streets.
    let (m, _) = admin_ingest("andorra.osm.pbf", Some(7));
    assert_eq!(m.districts.len(), 7);
    assert_eq!(m.streets.len(), 3);
    let alv = by_name(&m.districts, dlocal, "Andorra la Vella");
    close_km2(alv.area_km2, 26.6267696923919, "Andorra la Vella parish");
    assert_eq!(alv.adcode, 5, "ref=5 (ISO3166-2 AD-07 is the fallback)");
    // Santa Coloma and the town of Andorra la Vella lie in the parish; L'Hospitalet is in France.
    assert_eq!(by_name(&m.streets, local, "Santa Coloma").district, Some(alv.id));
    assert_eq!(by_name(&m.streets, local, "Andorra la Vella").district, Some(alv.id));
    assert_eq!(by_name(&m.streets, local, "L'Hospitalet-près-l'Andorre").district, None);
    close_km2(by_name(&m.streets, local, "Santa Coloma").area_km2, 0.66162431064862, "Santa Coloma");
}
