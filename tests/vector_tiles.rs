//! Vector tile pyramid end to end on real data: build a model with its PMTiles archive, dump
//! every tile, decode EVERY tile with @mapbox/vector-tile (tests/js/decode_tiles.mjs) and with our
//! strict decoder, and compare with the model and with independently measured counts
//! (shared/data/README.md): building ids at the max zoom, areas, attributes; then export MBTiles
//! and read it with GDAL's `ogrinfo`; read the archive with the crates.io `pmtiles` reader and
//! compare every tile byte for byte; finally feed the reader corrupt and truncated archives.

mod common;

use common::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

const C: f64 = 2.0 * std::f64::consts::PI * 6_378_137.0;

/// Web Mercator area of a footprint corrected by cos²φ (the same measure the JS side applies to
/// decoded tiles), and its perimeter, both in metres.
fn mercator_area_perimeter(mp: &geo_types::MultiPolygon<f64>) -> (f64, f64) {
    let first = mp.0[0].exterior().0[0];
    let k = first.y.to_radians().cos();
    let (mut area, mut per) = (0.0, 0.0);
    for p in &mp.0 {
        for (i, r) in std::iter::once(p.exterior()).chain(p.interiors()).enumerate() {
            let u: Vec<(f64, f64)> = r.0.iter().map(|c| tiles::lonlat_to_unit(c.x, c.y)).collect();
            let mut s = 0.0;
            for w in u.windows(2) {
                s += w[0].0 * w[1].1 - w[1].0 * w[0].1;
                per += ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt() * C * k;
            }
            let a = (s / 2.0).abs() * C * C * k * k;
            area += if i == 0 { a } else { -a };
        }
    }
    (area, per)
}

/// What the buildings layer must carry for a building (contract in docs/MODEL.md).
fn expected_props(m: &scenes::CityModel, b: &scenes::model::Building) -> serde_json::Value {
    let cm = |v: f32| ((v as f64) * 100.0).round() / 100.0;
    let mut o = serde_json::Map::new();
    o.insert("height".into(), cm(b.height).into());
    if b.min_height != 0.0 {
        o.insert("min_height".into(), cm(b.min_height).into());
    }
    o.insert("use".into(), b.use_.as_str().into());
    if let Some(n) = b.names.zh.as_ref().or(b.names.local.as_ref()).or(b.names.en.as_ref()) {
        o.insert("name".into(), n.clone().into());
    }
    if let Some(n) = &b.names.en {
        o.insert("name_en".into(), n.clone().into());
    }
    o.insert("level".into(), format!("{:?}", b.level).into());
    if let Some(d) = b.district.map(|d| &m.districts[d as usize]) {
        if let Some(n) = d.names.zh.as_ref().or(d.names.local.as_ref()).or(d.names.en.as_ref()) {
            o.insert("district".into(), n.clone().into());
        }
    }
    serde_json::Value::Object(o)
}

fn same_props(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
    a.len() == b.len()
        && a.iter().all(|(k, v)| match (v.as_f64(), b.get(k).and_then(|w| w.as_f64())) {
            (Some(x), Some(y)) => (x - y).abs() < 1e-6,
            _ => Some(v) == b.get(k),
        })
}

/// Layer → feature count of one tile per `ogrinfo -so -al -oo ZOOM_LEVEL=z`.
fn ogrinfo_counts(mbtiles: &Path, z: u8) -> BTreeMap<String, u64> {
    let o = Command::new("ogrinfo")
        .args(["-ro", "-so", "-al", "-oo", &format!("ZOOM_LEVEL={z}")])
        .arg(mbtiles)
        .output()
        .expect("ogrinfo (gdal-bin) must be installed");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "ogrinfo failed: {}", String::from_utf8_lossy(&o.stderr));
    let mut out = BTreeMap::new();
    let mut layer = None;
    for l in text.lines() {
        if let Some(n) = l.strip_prefix("Layer name: ") {
            layer = Some(n.trim().to_string());
        } else if let (Some(c), Some(n)) = (l.strip_prefix("Feature Count: "), &layer) {
            out.insert(n.clone(), c.trim().parse().unwrap());
        }
    }
    out
}

struct Checked {
    tiles: u64,
    buildings_at_max: usize,
    worst_area_excess: f64,
}

fn check_dataset(source: &str, max_zoom: u8, independent_buildings: usize, independent_streets: Option<usize>) -> Checked {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let out = twin(&["build", "--source", source, "--out", dir.to_str().unwrap(), "--max-zoom", &max_zoom.to_string()]);
    assert!(out.status.success(), "build failed: {}", stderr(&out));
    let manifest = manifest(&dir);
    let model = scenes::store::read_model(&dir).unwrap();
    let vt = &manifest["vector_tiles"];
    let rel = manifest["files"]["vector_tiles"].as_str().expect("files.vector_tiles");
    assert_eq!(rel, format!("tiles/{}.pmtiles", model.info.name));
    assert_eq!(vt["max_zoom"], max_zoom as u64);
    assert!(vt["limits_hit"].as_array().unwrap().is_empty(), "{}", vt["limits_hit"]);

    // Our reader: header and metadata per the contract.
    let reader = tiles::pmtiles::Reader::open(dir.join(rel)).unwrap();
    let h = reader.header();
    assert_eq!(h.tile_type, tiles::pmtiles::TileType::Mvt);
    assert_eq!(h.tile_compression, tiles::pmtiles::Compression::Gzip);
    assert_eq!(h.internal_compression, tiles::pmtiles::Compression::Gzip);
    assert!(h.clustered);
    assert_eq!(h.max_zoom, max_zoom);
    assert_eq!(reader.tile_count(), vt["tiles"].as_u64().unwrap());
    let meta = reader.metadata();
    let ids: Vec<&str> = meta["vector_layers"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["districts", "streets", "water", "landuse", "roads", "buildings", "pois", "labels"]);
    assert_eq!(meta["name"], model.info.name.as_str());
    assert!(meta["citytwin"]["limits_hit"].is_array());

    // Dump every tile as stored, and decode each with our strict decoder on the way.
    let dump = tmp.path().join("dump");
    let mut ours: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
    let (mut polygons, mut invalid) = (0u64, Vec::<String>::new());
    let mut street_ids = std::collections::BTreeSet::new();
    for (z, x, y) in reader.tiles() {
        let data = reader.get(z, x, y).unwrap().unwrap();
        let d = dump.join(z.to_string()).join(x.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("{y}.mvt")), &data).unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&data[..]), &mut raw).unwrap();
        let t = tiles::mvt::decode(&raw).unwrap_or_else(|e| panic!("{z}/{x}/{y}: {e}"));
        assert!(!t.layers.is_empty(), "empty tile {z}/{x}/{y} was written");
        for l in &t.layers {
            if l.name == "streets" {
                assert!(z >= scenes::vector_tiles::STREETS_MIN_ZOOM, "streets at z{z}");
                if z == max_zoom {
                    street_ids.extend(l.features.iter().map(|f| f.id.expect("street feature id")));
                }
            }
            for f in &l.features {
                if let tiles::mvt::Geometry::Polygons(ps) = &f.geometry {
                    for p in ps {
                        polygons += 1;
                        let ring = |r: &Vec<[i64; 2]>| {
                            let mut c: Vec<geo::Coord<f64>> = r.iter().map(|q| geo::coord! {x: q[0] as f64, y: q[1] as f64}).collect();
                            c.push(c[0]);
                            geo::LineString(c)
                        };
                        let poly = geo::Polygon::new(ring(&p[0]), p[1..].iter().map(ring).collect());
                        if !geo::Validation::is_valid(&poly) {
                            invalid.push(format!("{z}/{x}/{y} {} #{:?}", l.name, f.id));
                        }
                    }
                }
            }
        }
        ours.insert(
            format!("{z}/{x}/{y}"),
            t.layers.iter().map(|l| (l.name.clone(), l.features.len() as u64)).collect(),
        );
    }

    // Every street division is in the max-zoom tiles under its id.
    assert_eq!(street_ids.len(), model.streets.len(), "distinct street ids at z{max_zoom}");
    assert!(street_ids.iter().all(|&i| (i as usize) < model.streets.len()));
    if let Some(n) = independent_streets {
        assert_eq!(model.streets.len(), n, "streets vs GDAL's OSM driver");
    }

    // Every polygon of every tile is OGC-valid (geo's Validation: no self-intersection or
    // self-tangency, holes inside, …) in tile coordinates.
    assert!(polygons > 1000);
    assert!(invalid.is_empty(), "{} of {polygons} polygons invalid: {:?}", invalid.len(), &invalid[..invalid.len().min(10)]);

    // Every tile through @mapbox/vector-tile.
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js/decode_tiles.mjs");
    let o = Command::new("node").arg(&js).arg(&dump).arg(max_zoom.to_string()).output().expect("node");
    assert!(o.status.success(), "decode_tiles.mjs: {}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["errors"].as_array().unwrap().len(), 0, "{}", s["errors"]);
    assert_eq!(s["tiles"].as_u64().unwrap(), reader.tile_count());
    assert_eq!(s["winding_errors"], 0, "{} polygons", s["polygons"]);
    assert_eq!(s["property_mismatches"], 0);
    for (k, v) in s["per_tile"].as_object().unwrap() {
        let theirs: BTreeMap<String, u64> = v.as_object().unwrap().iter().map(|(l, n)| (l.clone(), n.as_u64().unwrap())).collect();
        assert_eq!(ours[k], theirs, "tile {k}: our decoder and @mapbox/vector-tile disagree");
    }

    // Buildings at the max zoom: every id once, areas and attributes match the model.
    let decoded = s["buildings"].as_object().unwrap();
    assert_eq!(model.buildings.len(), independent_buildings, "model vs shared/data/README.md count");
    assert_eq!(decoded.len(), model.buildings.len(), "distinct building ids at z{max_zoom}");
    let mut worst: f64 = 0.0;
    let mut bad = Vec::new();
    for b in &model.buildings {
        let d = decoded.get(&b.id.to_string()).unwrap_or_else(|| panic!("building {} missing at z{max_zoom}", b.id));
        let (area, per) = mercator_area_perimeter(&b.footprint);
        let got = d["area_m2"].as_f64().unwrap();
        // Tolerance: 1 % of the area plus the perimeter times 0.1 m (one tile unit at z16 is
        // 0.09–0.11 m at these latitudes; quantization moves each vertex by ≤ half a unit).
        let allowed = 0.01 * area + 0.1 * per;
        worst = worst.max((got - area).abs() / allowed);
        if (got - area).abs() > allowed {
            bad.push(format!("building {}: decoded {got:.2} m², source {area:.2} m² (allowed ±{allowed:.2})", b.id));
        }
        let want = expected_props(&model, b);
        assert!(same_props(&d["props"], &want), "building {}: tile props {} != model {}", b.id, d["props"], want);
    }
    assert!(bad.is_empty(), "{} of {} buildings off:\n{}", bad.len(), model.buildings.len(), bad[..bad.len().min(20)].join("\n"));

    // MBTiles export read by GDAL: at the lowest zoom with a single tile, ogrinfo lists every
    // layer with exactly the counts both decoders found in that tile.
    let mbt = tmp.path().join("x.mbtiles");
    let o = twin(&["export", "--model", dir.to_str().unwrap(), "--mbtiles", mbt.to_str().unwrap()]);
    assert!(o.status.success(), "export: {}", stderr(&o));
    // ogrinfo reports, per layer, the features of all tiles of the zoom it opens: compare with
    // the sums of the decoded per-tile counts at the lowest zoom that has tiles (a single tile
    // for porto) and at the max zoom.
    let per_zoom = vt["tiles_per_zoom"].as_array().unwrap();
    let zmin = (0..=max_zoom).find(|&z| per_zoom[z as usize].as_u64().unwrap() > 0).unwrap();
    let mut want_layers: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    want_layers.sort();
    let mut report = Vec::new();
    for z in [zmin, max_zoom] {
        let gdal = ogrinfo_counts(&mbt, z);
        assert_eq!(gdal.keys().cloned().collect::<Vec<_>>(), want_layers, "ogrinfo layers");
        for l in &ids {
            let sum: u64 = ours.iter().filter(|(k, _)| k.starts_with(&format!("{z}/"))).map(|(_, c)| c.get(*l).copied().unwrap_or(0)).sum();
            assert_eq!(gdal[*l], sum, "layer {l} at z{z}: ogrinfo vs decoded");
        }
        report.push(format!("z{z} ({} tiles): {gdal:?}", per_zoom[z as usize]));
    }
    eprintln!(
        "{source}: {} tiles z0–{max_zoom}, {} buildings at z{max_zoom}, worst area error {:.2} of the tolerance; ogrinfo {}",
        reader.tile_count(),
        decoded.len(),
        worst,
        report.join("; ")
    );
    Checked { tiles: reader.tile_count(), buildings_at_max: decoded.len(), worst_area_excess: worst }
}

#[test]
fn porto_osm_pyramid_decodes_and_matches_the_model() {
    // shared/data/README.md: porto.osm.pbf holds 11,404 buildings (ways + relations).
    // GDAL's OSM driver: 4 multipolygons with boundary=administrative and admin_level=9
    // (freguesias; none at 5–8), so 4 streets.
    let c = check_dataset(&data("osm/porto.osm.pbf"), 16, 11_404, Some(4));
    assert!(c.tiles > 100 && c.buildings_at_max == 11_404 && c.worst_area_excess <= 1.0);
}

#[test]
fn astana_buildings_pyramid_decodes_and_matches_the_model() {
    // shared/data/README.md: 32,056 OSM buildings of Astana.
    let c = check_dataset(&data("buildings/astana_osm_buildings.geojson"), 16, 32_056, None);
    assert!(c.tiles > 100 && c.buildings_at_max == 32_056 && c.worst_area_excess <= 1.0);
}

#[test]
fn corrupt_or_truncated_archives_are_refused_by_the_reader_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let out = twin(&["build", "--source", &data("osm/monaco.osm.pbf"), "--out", dir.to_str().unwrap(), "--max-zoom", "14"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rel = manifest(&dir)["files"]["vector_tiles"].as_str().unwrap().to_string();
    let path = dir.join(&rel);
    let good = std::fs::read(&path).unwrap();
    assert!(tiles::pmtiles::Reader::open(&path).is_ok());

    // Truncated: the tile data section is cut short.
    std::fs::write(&path, &good[..good.len() * 2 / 3]).unwrap();
    let e = tiles::pmtiles::Reader::open(&path).unwrap_err().to_string();
    assert!(e.contains(path.to_str().unwrap()) && e.contains("beyond the end"), "{e}");
    let o = twin(&["export", "--model", dir.to_str().unwrap(), "--mbtiles", tmp.path().join("x.mbtiles").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));

    // Not an archive at all.
    std::fs::write(&path, b"<html>not found</html>").unwrap();
    let e = tiles::pmtiles::Reader::open(&path).unwrap_err().to_string();
    assert!(e.contains("shorter than the 127-byte header"), "{e}");

    // Corrupt root directory (bytes flipped inside its gzip stream).
    let mut bad = good.clone();
    for b in &mut bad[140..150] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bad).unwrap();
    let e = tiles::pmtiles::Reader::open(&path).unwrap_err().to_string();
    assert!(e.contains("root directory"), "{e}");

    // --no-tiles: no archive, and export says why.
    let dir2 = tmp.path().join("nt");
    let out = twin(&["build", "--source", &data("osm/monaco.osm.pbf"), "--out", dir2.to_str().unwrap(), "--no-tiles"]);
    assert!(out.status.success());
    assert!(manifest(&dir2).get("vector_tiles").is_none());
    assert!(!dir2.join("tiles").exists());
    let o = twin(&["export", "--model", dir2.to_str().unwrap(), "--mbtiles", tmp.path().join("y.mbtiles").to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("--no-tiles"), "{}", stderr(&o));
}

/// Issue 3: the archive is "a single file that the `pmtiles` crate and martin read". Open the
/// archive of a real build with the crates.io `pmtiles` reader (memory-mapped local file, no
/// network backends) and check header, metadata and every tile byte for byte against ours.
#[test]
fn pmtiles_crate_reads_the_archive_byte_identically() {
    // Porto to z16: a few hundred tiles (z16 is the zoom the pyramid is built to by default).
    const MAXZ: u8 = 16;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let out = twin(&["build", "--source", &data("osm/porto.osm.pbf"), "--out", dir.to_str().unwrap(), "--max-zoom", &MAXZ.to_string(), "--no-3dtiles"]);
    assert!(out.status.success(), "build failed: {}", stderr(&out));
    let manifest = manifest(&dir);
    let rel = manifest["files"]["vector_tiles"].as_str().expect("files.vector_tiles");
    let path = dir.join(rel);
    assert!(std::fs::metadata(&path).unwrap().is_file(), "the archive is one plain file");
    let ours = tiles::pmtiles::Reader::open(&path).unwrap();
    let oh = ours.header().clone();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use futures_util::TryStreamExt;
        let theirs = std::sync::Arc::new(pmtiles::AsyncPmTilesReader::new_with_path(&path).await.expect("pmtiles crate opens the archive"));
        let h = theirs.get_header();
        assert_eq!((h.min_zoom, h.max_zoom), (oh.min_zoom, MAXZ));
        assert_eq!(h.tile_type, pmtiles::TileType::Mvt);
        assert_eq!(h.tile_compression, pmtiles::Compression::Gzip);
        assert_eq!(h.internal_compression(), pmtiles::Compression::Gzip);
        assert!(h.clustered());
        // Bounds and center are stored as degrees × 10⁷: both readers decode the same integers.
        let bounds = [h.min_longitude, h.min_latitude, h.max_longitude, h.max_latitude];
        for (a, b) in bounds.iter().zip(oh.bounds) {
            assert!((a - b).abs() < 1e-9, "bounds: crate {bounds:?}, ours {:?}", oh.bounds);
        }
        // The extract covers central Porto (Avenida dos Aliados, 8.611 W 41.148 N) and is a city, not a country.
        assert!(bounds[0] < -8.611 && bounds[2] > -8.611 && bounds[1] < 41.148 && bounds[3] > 41.148, "{bounds:?}");
        assert!(bounds[2] - bounds[0] < 0.5 && bounds[3] - bounds[1] < 0.5, "{bounds:?}");
        assert!((h.center_longitude - oh.center[0]).abs() < 1e-9 && (h.center_latitude - oh.center[1]).abs() < 1e-9);
        assert_eq!(h.n_addressed_tiles().map(|n| n.get()), Some(ours.tile_count()));

        let meta: serde_json::Value = serde_json::from_str(&theirs.get_metadata().await.unwrap()).expect("metadata is JSON");
        assert_eq!(&meta, ours.metadata());
        let layers: Vec<&str> = meta["vector_layers"].as_array().expect("vector_layers").iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert_eq!(layers, ["districts", "streets", "water", "landuse", "roads", "buildings", "pois", "labels"]);

        // The crate's own directory walk (root + leaves) lists exactly our tiles.
        let mut listed: Vec<u64> = Vec::new();
        let mut entries = theirs.clone().entries();
        while let Some(e) = entries.try_next().await.expect("directory entry") {
            listed.extend(e.iter_coords().map(|t| t.value()));
        }
        let mine: Vec<u64> = ours.tiles().map(|(z, x, y)| tiles::pmtiles::zxy_to_tile_id(z, x, y)).collect();
        assert_eq!(listed, mine, "tile ids listed by the pmtiles crate vs ours");

        // Every tile: byte-identical.
        let mut per_zoom = [0u64; MAXZ as usize + 1];
        let mut bytes = 0usize;
        for (z, x, y) in ours.tiles() {
            let a = ours.get(z, x, y).unwrap().unwrap();
            let coord = pmtiles::TileCoord::new(z, x, y).unwrap();
            let b = theirs.get_tile(coord).await.unwrap_or_else(|e| panic!("{z}/{x}/{y}: {e}")).unwrap_or_else(|| panic!("{z}/{x}/{y} missing in the pmtiles crate"));
            assert!(a == b, "tile {z}/{x}/{y} differs: ours {} bytes, crate {} bytes", a.len(), b.len());
            // And the crate's own decompression yields a valid MVT.
            let raw = theirs.get_tile_decompressed(coord).await.unwrap().unwrap();
            tiles::mvt::decode(&raw).unwrap_or_else(|e| panic!("{z}/{x}/{y}: {e}"));
            per_zoom[z as usize] += 1;
            bytes += a.len();
        }
        assert_eq!(per_zoom.iter().sum::<u64>(), ours.tile_count());
        assert_eq!(per_zoom.iter().map(|n| serde_json::Value::from(*n)).collect::<Vec<_>>(), manifest["vector_tiles"]["tiles_per_zoom"].as_array().unwrap()[..]);
        assert!(per_zoom[MAXZ as usize] > 100, "{per_zoom:?}");
        // The header's min zoom is the lowest zoom that holds a tile.
        assert_eq!(Some(h.min_zoom as usize), per_zoom.iter().position(|&n| n > 0), "{per_zoom:?}");

        // Addresses without a tile: absent in both readers.
        let t = tiles::TileId::containing(-8.611, 41.148, MAXZ);
        let mut absent = 0;
        for (z, x, y) in [(MAXZ, 0, 0), (MAXZ, t.x + 200, t.y), (10, 0, 1023), (3, 7, 0), (MAXZ, t.x, t.y + 300)] {
            assert_eq!(ours.get(z, x, y).unwrap(), None, "{z}/{x}/{y} should be empty");
            assert_eq!(theirs.get_tile(pmtiles::TileCoord::new(z, x, y).unwrap()).await.unwrap(), None, "{z}/{x}/{y}");
            absent += 1;
        }
        eprintln!(
            "pmtiles crate: {} tiles ({} bytes) byte-identical, per zoom {per_zoom:?}; {absent} empty addresses None in both",
            ours.tile_count(),
            bytes
        );
    });
}
