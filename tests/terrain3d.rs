//! Terrain in the 3D Tiles build (`twin-server build --dem`): every building's base in the GLBs
//! (decoded through the tile transforms to ECEF, then to geodetic height) equals the ground
//! computed independently from the DEM's raw cells read with `gdallocationinfo` (bilinear between
//! cell centres, minimum over the footprint's exterior vertices) plus the EGM96 undulation given
//! by PROJ's `cs2cs` (EPSG:4326+5773 → EPSG:4979); the GLBs pass the Khronos glTF-Validator; bad
//! DEMs fail the build with an error naming the file; a DEM covering part of the model reports
//! the rest and stands them on the DEM's mean (checked against the cells dumped by
//! `gdal_translate -of XYZ`); a DEM that does not cover the model reports every building and
//! falls back to flat ground.

mod common;

use common::*;
use scenes::geodesy::ecef_to_geodetic;
use scenes::threed::tileset::{mat_apply, mat_mul, Y_UP_TO_Z_UP};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use tiles::gltf::Glb;
use tiles::tileset::{Tile, Tileset};

const IDENTITY: [f64; 16] = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];

/// Building id → (min, max) height above the ellipsoid of its vertices, over every content tile.
fn vertex_heights(dir: &Path, t: &Tile, parent_m: &[f64; 16], out: &mut HashMap<u32, (f64, f64)>) {
    let m = match &t.transform {
        Some(tr) => mat_mul(parent_m, tr),
        None => *parent_m,
    };
    if let Some(c) = &t.content {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&std::fs::read(dir.join(format!("{}.gz", c.uri))).unwrap()[..]).read_to_end(&mut bytes).unwrap();
        let glb = Glb::parse(&bytes).unwrap();
        let world = mat_mul(&m, &Y_UP_TO_Z_UP);
        let ids = glb.property("id").expect("id column");
        let region = t.bounding_volume.region.unwrap();
        for (pos, _, fids, _) in glb.triangles() {
            for (v, f) in pos.iter().zip(&fids) {
                let (_, _, h) = ecef_to_geodetic(mat_apply(&world, *v));
                assert!(h >= region[4] - 1e-3 && h <= region[5] + 1e-3, "{}: vertex height {h} outside its region {region:?}", c.uri);
                let e = out.entry(ids[*f as usize].as_f64().unwrap() as u32).or_insert((f64::INFINITY, f64::NEG_INFINITY));
                e.0 = e.0.min(h);
                e.1 = e.1.max(h);
            }
        }
    }
    for ch in &t.children {
        vertex_heights(dir, ch, &m, out);
    }
}

fn tileset_heights(model_dir: &Path) -> HashMap<u32, (f64, f64)> {
    let dir = model_dir.join("3dtiles");
    let ts: Tileset = serde_json::from_slice(&std::fs::read(dir.join("tileset.json")).unwrap()).unwrap();
    let mut out = HashMap::new();
    vertex_heights(&dir, &ts.root, &IDENTITY, &mut out);
    out
}

/// Runs a tool with `input` on stdin; its stdout lines.
fn pipe(cmd: &str, args: &[&str], input: &str) -> Vec<String> {
    let mut child = Command::new(cmd).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().lines().map(str::to_string).collect()
}

fn validate_glbs(dir: &Path) -> serde_json::Value {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js");
    let o = Command::new("node").arg(js.join("validate_glb.mjs")).arg(dir).current_dir(&js).output().expect("node (scripts/js-deps.sh installs the harness)");
    assert!(o.status.success(), "validator failed to run: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn monaco_buildings_stand_on_the_srtm_ground() {
    let dem = data("dem/srtm3_N43E007.tif");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("monaco");
    let m = build(&dir, &["--source", &data("osm/monaco.osm.pbf"), "--dem", &dem, "--no-tiles"]);
    let t3 = &m["tiles3d"];
    let terr = &t3["terrain"];
    let n = m["layers"]["buildings"].as_u64().unwrap();
    assert_eq!(terr["source"], "dem", "{terr}");
    assert_eq!(terr["dem"], dem.as_str());
    assert_eq!(terr["crs"], "EPSG:4326");
    assert_eq!(terr["voids_filled"], 1595, "void count of the data README"); // shared/data/README.md
    assert_eq!(terr["sampled"].as_u64().unwrap(), n, "every Monaco building lies in the tile: {terr}");
    assert!(terr["outside"].as_object().unwrap().is_empty(), "{terr}");

    let model = scenes::store::read_model(&dir).unwrap();
    let heights = tileset_heights(&dir);
    assert_eq!(heights.len() as u64, t3["buildings"].as_u64().unwrap());

    // The DEM's geotransform from gdalinfo (pixel corners), to find the cells around a point.
    let info: serde_json::Value = serde_json::from_slice(&Command::new("gdalinfo").args(["-json", &dem]).output().unwrap().stdout).unwrap();
    let gt: Vec<f64> = info["geoTransform"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(gt[2] == 0.0 && gt[4] == 0.0, "north-up SRTM");
    let (w, h) = (info["size"][0].as_i64().unwrap(), info["size"][1].as_i64().unwrap());

    // Every 10th building: its exterior-ring vertices, the 4 cells around each (bilinear between
    // cell centres, clamped at the border), values from gdallocationinfo.
    let sample: Vec<&scenes::model::Building> = model.buildings.iter().step_by(10).collect();
    let mut queries = String::new();
    let mut plan = Vec::new(); // per building: per vertex (cells [c0,r0,c1,r1], tx, ty)
    for b in &sample {
        let mut verts = Vec::new();
        for p in &b.footprint.0 {
            for c in p.exterior().coords() {
                let (col, row) = ((c.x - gt[0]) / gt[1], (c.y - gt[3]) / gt[5]);
                let (fx, fy) = ((col - 0.5).clamp(0.0, (w - 1) as f64), (row - 0.5).clamp(0.0, (h - 1) as f64));
                let (c0, r0) = (fx.floor() as i64, fy.floor() as i64);
                let (c1, r1) = ((c0 + 1).min(w - 1), (r0 + 1).min(h - 1));
                for (cc, rr) in [(c0, r0), (c1, r0), (c0, r1), (c1, r1)] {
                    queries.push_str(&format!("{cc} {rr}\n"));
                }
                verts.push((fx - c0 as f64, fy - r0 as f64));
            }
        }
        plan.push(verts);
    }
    let vals: Vec<f64> = pipe("gdallocationinfo", &["-valonly", &dem], &queries).iter().map(|l| l.trim().parse().unwrap()).collect();
    // EGM96 undulation at each building's first vertex (what the build adds), from cs2cs.
    let geoid_in: String = sample.iter().map(|b| {
        let c = b.footprint.0[0].exterior().0[0];
        format!("{} {} 0\n", c.y, c.x)
    }).collect();
    let undulation: Vec<f64> = pipe("cs2cs", &["-f", "%.4f", "EPSG:4326+5773", "EPSG:4979"], &geoid_in)
        .iter()
        .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(undulation.len(), sample.len());
    let mut k = 0;
    let (mut checked, mut lo_all, mut hi_all) = (0, f64::INFINITY, f64::NEG_INFINITY);
    let (mut lo_ell, mut hi_ell) = (f64::INFINITY, f64::NEG_INFINITY);
    for (i, b) in sample.iter().enumerate() {
        let mut ground = f64::INFINITY;
        let mut void = false;
        for &(tx, ty) in &plan[i] {
            let v = &vals[k..k + 4];
            k += 4;
            void |= v.iter().any(|&x| x == -32768.0);
            let top = v[0] * (1.0 - tx) + v[1] * tx;
            let bot = v[2] * (1.0 - tx) + v[3] * tx;
            ground = ground.min(top * (1.0 - ty) + bot * ty);
        }
        let Some(&(lo, hi)) = heights.get(&b.id) else { continue };
        if void {
            continue; // filled cells: the file's value is the void marker
        }
        let want = ground + undulation[i] + b.min_height as f64;
        // int16 positions move a vertex by ≤ half a quantisation step (≤ 3 cm on a Monaco tile)
        assert!((lo - want).abs() < 0.1, "building {} ({}): base {lo:.3} m, DEM ground {ground:.3} + N {:.3} + min_height {} = {want:.3}", b.id, b.source.id, undulation[i], b.min_height);
        assert!((hi - lo - (b.height - b.min_height) as f64).abs() < 0.1, "building {}: {lo}..{hi} vs {}..{}", b.id, b.min_height, b.height);
        assert!((48.0..50.0).contains(&undulation[i]), "EGM96 N at Monaco is ~48.7 m, got {}", undulation[i]);
        lo_all = lo_all.min(ground);
        hi_all = hi_all.max(ground);
        lo_ell = lo_ell.min(ground + undulation[i]);
        hi_ell = hi_ell.max(ground + undulation[i]);
        checked += 1;
    }
    assert_eq!(k, vals.len());
    assert!(checked >= 100, "only {checked} buildings checked");
    // Monaco climbs from the harbour to ~150 m: the bases differ
    assert!(lo_all < 20.0 && hi_all > 100.0, "ground of the checked buildings spans {lo_all:.1}..{hi_all:.1} m");
    let g = |k: &str| terr[k].as_f64().unwrap();
    assert!(g("ground_min") <= lo_ell + 1e-6 && g("ground_max") >= hi_ell - 1e-6, "{terr}");

    let v = validate_glbs(&dir.join("3dtiles"));
    assert!(v["files"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["errors"], 0, "glTF-Validator errors: {}", v["failed"]);
}

#[test]
fn bad_dems_fail_the_build_and_an_uncovering_dem_falls_back_flat() {
    let tmp = tempfile::tempdir().unwrap();
    let pbf = data("osm/monaco.osm.pbf");
    // not a raster (a GeoJSON vector file)
    let vector = data("buildings/lyon1_bdtopo.geojson");
    let o = twin(&["build", "--source", &pbf, "--dem", &vector, "--out", tmp.path().join("a").to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--dem") && e.contains(&vector) && e.contains("not a raster"), "{e}");
    assert!(!tmp.path().join("a").exists());
    // a raster without georeference
    let bare = tmp.path().join("bare.tif");
    let st = Command::new("gdal_create").args(["-of", "GTiff", "-outsize", "8", "8", "-bands", "1", "-ot", "Int16", "-burn", "5"]).arg(&bare).status().unwrap();
    assert!(st.success());
    let o = twin(&["build", "--source", &pbf, "--dem", bare.to_str().unwrap(), "--out", tmp.path().join("b").to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(bare.to_str().unwrap()) && e.contains("no georeference"), "{e}");
    // a missing file
    let o = twin(&["build", "--source", &pbf, "--dem", "/nonexistent/dem.tif", "--out", tmp.path().join("c").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/dem.tif"), "{}", stderr(&o));
    // a DEM elsewhere (Bayreuth): every building reported, flat at 0 m, the build succeeds
    let dir = tmp.path().join("d");
    let m = build(&dir, &["--source", &pbf, "--dem", &data("dem/srtm3_N49E011.tif"), "--no-tiles"]);
    let terr = &m["tiles3d"]["terrain"];
    let n = m["layers"]["buildings"].as_u64().unwrap();
    assert_eq!(terr["sampled"], 0, "{terr}");
    assert_eq!(terr["outside"][scenes::terrain::OUTSIDE_REASON]["count"].as_u64().unwrap(), n, "{terr}");
    assert_eq!(terr["outside"][scenes::terrain::OUTSIDE_REASON]["examples"].as_array().unwrap().len(), 5, "{terr}");
    assert_eq!(terr["fallback_height"], 0.0);
    assert!(m["report"]["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("outside the DEM")), "{}", m["report"]);
    let model = scenes::store::read_model(&dir).unwrap();
    let heights = tileset_heights(&dir);
    assert_eq!(heights.len() as u64, m["tiles3d"]["buildings"].as_u64().unwrap());
    for b in &model.buildings {
        if let Some(&(lo, _)) = heights.get(&b.id) {
            assert!((lo - b.min_height as f64).abs() < 0.1, "building {} base {lo}", b.id);
        }
    }
    // flat at a given height above sea level: + EGM96 N at the model's centre (cs2cs)
    let dir = tmp.path().join("e");
    let m = build(&dir, &["--source", &pbf, "--ground-height", "50", "--no-tiles"]);
    let terr = &m["tiles3d"]["terrain"];
    let bb: Vec<f64> = m["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let n_c: f64 = pipe("cs2cs", &["-f", "%.4f", "EPSG:4326+5773", "EPSG:4979"], &format!("{} {} 0\n", (bb[1] + bb[3]) / 2.0, (bb[0] + bb[2]) / 2.0))[0]
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(terr["source"], "flat");
    assert!((terr["fallback_height"].as_f64().unwrap() - (50.0 + n_c)).abs() < 1e-3, "{terr} vs N {n_c}");
    let model = scenes::store::read_model(&dir).unwrap();
    let heights = tileset_heights(&dir);
    for b in model.buildings.iter().step_by(7) {
        if let Some(&(lo, _)) = heights.get(&b.id) {
            assert!((lo - (50.0 + n_c + b.min_height as f64)).abs() < 0.1, "building {} base {lo}", b.id);
        }
    }
}

#[test]
fn a_dem_covering_part_of_the_model_reports_the_rest_on_its_mean() {
    let tmp = tempfile::tempdir().unwrap();
    // the Monaco SRTM tile cut at 7.425° E: the city's eastern part is outside
    let cut = tmp.path().join("cut.tif");
    let st = Command::new("gdal_translate").args(["-q", "-projwin", "7.35", "43.80", "7.425", "43.70", &data("dem/srtm3_N43E007.tif")]).arg(&cut).status().unwrap();
    assert!(st.success());
    let cut_s = cut.to_str().unwrap();
    let info: serde_json::Value = serde_json::from_slice(&Command::new("gdalinfo").args(["-json", cut_s]).output().unwrap().stdout).unwrap();
    let gt: Vec<f64> = info["geoTransform"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let east = gt[0] + gt[1] * info["size"][0].as_f64().unwrap();
    let dir = tmp.path().join("m");
    let m = build(&dir, &["--source", &data("osm/monaco.osm.pbf"), "--dem", cut_s, "--no-tiles"]);
    let terr = &m["tiles3d"]["terrain"];
    let model = scenes::store::read_model(&dir).unwrap();
    // outside: a building with an exterior vertex east of the cut (independently from the footprints)
    let is_out = |b: &scenes::model::Building| b.footprint.0.iter().any(|p| p.exterior().coords().any(|c| c.x > east));
    let n_out = model.buildings.iter().filter(|b| is_out(b)).count() as u64;
    assert!(n_out > 100 && n_out < model.buildings.len() as u64 - 100, "{n_out}");
    assert_eq!(terr["outside"][scenes::terrain::OUTSIDE_REASON]["count"].as_u64().unwrap(), n_out, "{terr}");
    assert_eq!(terr["sampled"].as_u64().unwrap(), model.buildings.len() as u64 - n_out);
    // fallback: mean of the cells (gdal_translate -of XYZ) whose centres lie in the model's bbox
    // clipped to the cut, + N (cs2cs) at the clip's centre; void cells (−32768) are left out here
    // and filled in the build: ±0.5 m
    let bb: Vec<f64> = m["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let clip = [bb[0], bb[1], east.min(bb[2]), bb[3]];
    let xyz = tmp.path().join("cut.xyz");
    assert!(Command::new("gdal_translate").args(["-q", "-of", "XYZ", cut_s]).arg(&xyz).status().unwrap().success());
    let (mut sum, mut cnt) = (0.0, 0);
    for l in std::fs::read_to_string(&xyz).unwrap().lines() {
        let v: Vec<f64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
        if v[0] > clip[0] && v[0] < clip[2] && v[1] > clip[1] && v[1] < clip[3] && v[2] > -1000.0 {
            sum += v[2];
            cnt += 1;
        }
    }
    assert!(cnt > 500, "{cnt}");
    let n_c: f64 = pipe("cs2cs", &["-f", "%.4f", "EPSG:4326+5773", "EPSG:4979"], &format!("{} {} 0\n", (clip[1] + clip[3]) / 2.0, (clip[0] + clip[2]) / 2.0))[0]
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let fallback = terr["fallback_height"].as_f64().unwrap();
    assert!((fallback - (sum / cnt as f64 + n_c)).abs() < 0.5, "fallback {fallback} vs cells' mean {} + N {n_c}", sum / cnt as f64);
    // the outside buildings stand on it; the others on their own ground
    let heights = tileset_heights(&dir);
    let (mut on_fallback, mut own) = (0, 0);
    for b in &model.buildings {
        let Some(&(lo, _)) = heights.get(&b.id) else { continue };
        let g = lo - b.min_height as f64;
        if is_out(b) {
            assert!((g - fallback).abs() < 0.1, "building {} outside the DEM: ground {g}, fallback {fallback}", b.id);
            on_fallback += 1;
        } else if (g - fallback).abs() > 0.5 {
            own += 1;
        }
    }
    assert_eq!(on_fallback, n_out);
    assert!(own > 500, "{own} covered buildings on their own ground");
}

/// (lon, lat, h above the ellipsoid) of every tree base in the tree tiles of a tileset.
fn tree_bases(dir: &Path, t: &Tile, parent_m: &[f64; 16], out: &mut Vec<(f64, f64, f64)>) {
    let m = match &t.transform {
        Some(tr) => mat_mul(parent_m, tr),
        None => *parent_m,
    };
    if let Some(c) = t.content.as_ref().filter(|c| c.uri.contains("trees-")) {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&std::fs::read(dir.join(format!("{}.gz", c.uri))).unwrap()[..]).read_to_end(&mut bytes).unwrap();
        let glb = Glb::parse(&bytes).unwrap();
        let world = mat_mul(&m, &Y_UP_TO_Z_UP);
        let a = &glb.json["nodes"][0]["extensions"]["EXT_mesh_gpu_instancing"]["attributes"];
        for p in glb.accessor(a["TRANSLATION"].as_u64().unwrap() as usize) {
            out.push(ecef_to_geodetic(mat_apply(&world, [p[0], p[1], p[2]])));
        }
    }
    for ch in &t.children {
        tree_bases(dir, ch, &m, out);
    }
}

#[test]
fn monaco_trees_stand_on_the_srtm_ground_under_each_tree() {
    let dem = data("dem/srtm3_N43E007.tif");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("monaco-trees");
    let m = build(&dir, &["--source", &data("osm/monaco.osm.pbf"), "--dem", &dem, "--l3-districts", "all", "--no-tiles"]);
    let n_trees = m["tiles3d"]["trees"].as_u64().unwrap();
    assert!(n_trees > 100, "{}", m["tiles3d"]);
    let ts: Tileset = serde_json::from_slice(&std::fs::read(dir.join("3dtiles/tileset.json")).unwrap()).unwrap();
    let mut bases = vec![];
    tree_bases(&dir.join("3dtiles"), &ts.root, &IDENTITY, &mut bases);
    assert_eq!(bases.len() as u64, n_trees);
    // every 5th tree: bilinear DEM (cells from gdallocationinfo) + EGM96 N (cs2cs) at the tree
    let info: serde_json::Value = serde_json::from_slice(&Command::new("gdalinfo").args(["-json", &dem]).output().unwrap().stdout).unwrap();
    let gt: Vec<f64> = info["geoTransform"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let (w, h) = (info["size"][0].as_i64().unwrap(), info["size"][1].as_i64().unwrap());
    let sample: Vec<(f64, f64, f64)> = bases.iter().step_by(5).copied().collect();
    let (mut queries, mut geoid_in, mut frac) = (String::new(), String::new(), vec![]);
    for &(lon, lat, _) in &sample {
        let (col, row) = ((lon - gt[0]) / gt[1], (lat - gt[3]) / gt[5]);
        let (fx, fy) = ((col - 0.5).clamp(0.0, (w - 1) as f64), (row - 0.5).clamp(0.0, (h - 1) as f64));
        let (c0, r0) = (fx.floor() as i64, fy.floor() as i64);
        let (c1, r1) = ((c0 + 1).min(w - 1), (r0 + 1).min(h - 1));
        for (cc, rr) in [(c0, r0), (c1, r0), (c0, r1), (c1, r1)] {
            queries.push_str(&format!("{cc} {rr}\n"));
        }
        frac.push((fx - c0 as f64, fy - r0 as f64));
        geoid_in.push_str(&format!("{lat} {lon} 0\n"));
    }
    let vals: Vec<f64> = pipe("gdallocationinfo", &["-valonly", &dem], &queries).iter().map(|l| l.trim().parse().unwrap()).collect();
    let n: Vec<f64> = pipe("cs2cs", &["-f", "%.4f", "EPSG:4326+5773", "EPSG:4979"], &geoid_in).iter().map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap()).collect();
    let (mut checked, mut lo, mut hi) = (0, f64::INFINITY, f64::NEG_INFINITY);
    for (i, &(_, _, hb)) in sample.iter().enumerate() {
        let v = &vals[4 * i..4 * i + 4];
        if v.iter().any(|&x| x == -32768.0) {
            continue;
        }
        let (tx, ty) = frac[i];
        let g = (v[0] * (1.0 - tx) + v[1] * tx) * (1.0 - ty) + (v[2] * (1.0 - tx) + v[3] * tx) * ty;
        // translations are float32 in a tile frame of a few hundred metres: mm
        assert!((hb - (g + n[i])).abs() < 0.05, "tree {i}: base {hb:.3} m, DEM {g:.3} + N {:.3}", n[i]);
        lo = lo.min(g);
        hi = hi.max(g);
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} trees checked");
    assert!(hi - lo > 20.0, "the checked trees stand between {lo:.1} and {hi:.1} m: not on one flat ground");
    let v = validate_glbs(&dir.join("3dtiles"));
    assert_eq!(v["errors"], 0, "glTF-Validator errors: {}", v["failed"]);
}
