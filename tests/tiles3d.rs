//! 3D Tiles end to end: the tileset written by `twin-server build` is checked numerically
//! (every vertex inside its tile's bounding region and every region inside its parent's,
//! geometric errors decreasing down the tree, buildings standing on the base, closed meshes,
//! every building exactly once with its model attributes), every GLB passes the Khronos
//! glTF-Validator, the server serves it with gzip / ETag / CORS / content types and refuses path
//! traversal, and CesiumJS in headless Chromium loads it from the server, draws buildings at
//! Shenyang and picks a building whose metadata matches `GET /api/buildings/{id}`.

mod common;

use common::*;
use scenes::geodesy::{ecef_to_geodetic, geodetic_to_ecef};
use scenes::threed::tileset::{mat_apply, mat_mul, Y_UP_TO_Z_UP};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use tiles::gltf::Glb;
use tiles::tileset::{Tile, Tileset};

fn js_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js")
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).expect("gzip");
    out
}

const IDENTITY: [f64; 16] = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];

#[derive(Default, Debug)]
struct Checked {
    tiles: usize,
    features: usize,
    vertices: usize,
    /// building id → (min h, max h) of its vertices above the ellipsoid
    heights: HashMap<u32, (f64, f64)>,
    /// building id → property-table values (L2 tiles)
    props: HashMap<u32, (f64, String, String)>,
    /// L3 content tiles (children of L2 tiles, `-l3-` in the URI)
    l3_tiles: usize,
    /// building id → level in the L3 tiles ("L3", or "L2" for a block)
    l3_levels: HashMap<u32, String>,
    /// building id → (min h, max h) of its L3 vertices
    l3_heights: HashMap<u32, (f64, f64)>,
    /// L2 tiles with L3 children
    refined: usize,
    /// textured facade primitives in L3 tiles
    textured: usize,
    /// instanced tree tiles and their trees
    tree_tiles: usize,
    trees: usize,
    /// tree ids seen in tree tiles
    tree_ids: std::collections::HashSet<u64>,
    /// L4 tiles (`-l4-` in the URI), one per key building
    l4: Vec<L4Seen>,
    /// building id → (min h, max h) of its L4 vertices
    l4_heights: HashMap<u32, (f64, f64)>,
}

#[derive(Debug)]
struct L4Seen {
    uri: String,
    id: u32,
    level: u32,
    name: String,
    /// embedded images (bytes) and their MIME types
    images: Vec<(Vec<u8>, String)>,
    /// material names; textured primitives without TEXCOORD_0
    materials: Vec<String>,
    untextured_uv_missing: usize,
    textured_prims: usize,
}

fn region_contains(outer: &[f64; 6], inner: &[f64; 6]) -> bool {
    inner[0] >= outer[0] && inner[1] >= outer[1] && inner[2] <= outer[2] && inner[3] <= outer[3] && inner[4] >= outer[4] && inner[5] <= outer[5]
}

fn check_tile(dir: &Path, t: &Tile, parent_m: &[f64; 16], parent: Option<(&[f64; 6], f64)>, out: &mut Checked) {
    let region = t.bounding_volume.region.expect("every tile has a region");
    assert!(region[0] < region[2] && region[1] < region[3] && region[4] < region[5], "empty region {region:?}");
    if let Some((pr, pge)) = parent {
        assert!(region_contains(pr, &region), "child region {region:?} not inside parent {pr:?}");
        assert!(t.geometric_error < pge, "geometric error {} not below the parent's {pge}", t.geometric_error);
    }
    let m = match &t.transform {
        Some(tr) => mat_mul(parent_m, tr),
        None => *parent_m,
    };
    if let Some(c) = &t.content {
        out.tiles += 1;
        let bytes = gunzip(&std::fs::read(dir.join(format!("{}.gz", c.uri))).unwrap_or_else(|e| panic!("{}: {e}", c.uri)));
        let glb = Glb::parse(&bytes).unwrap();
        let world = mat_mul(&m, &Y_UP_TO_Z_UP);
        if c.uri.contains("trees-") {
            // instanced trees: EXT_mesh_gpu_instancing (required), one translation, rotation and
            // scale per tree, every tree's base inside the tile's region at the ground
            assert!(glb.json["extensionsRequired"].as_array().unwrap().iter().any(|e| e == "EXT_mesh_gpu_instancing"), "{}", c.uri);
            let a = &glb.json["nodes"][0]["extensions"]["EXT_mesh_gpu_instancing"]["attributes"];
            let tr = glb.accessor(a["TRANSLATION"].as_u64().unwrap() as usize);
            let rot = glb.accessor(a["ROTATION"].as_u64().unwrap() as usize);
            let sc = glb.accessor(a["SCALE"].as_u64().unwrap() as usize);
            assert!(!tr.is_empty() && rot.len() == tr.len() && sc.len() == tr.len(), "{}", c.uri);
            for (t, s) in tr.iter().zip(&sc) {
                let (lon, lat, h) = ecef_to_geodetic(mat_apply(&world, [t[0], t[1], t[2]]));
                let (lon, lat) = (lon.to_radians(), lat.to_radians());
                assert!(lon >= region[0] && lon <= region[2] && lat >= region[1] && lat <= region[3], "{}: tree outside its region", c.uri);
                assert!((h - region[4] - 0.25).abs() < 0.01 && h + s[1] <= region[5] + 1e-3, "{}: tree at {h} m, height {}", c.uri, s[1]);
                assert!((6.0..=12.0).contains(&s[1]), "tree height {}", s[1]);
            }
            // per-tree feature ids (EXT_instance_features) into the `tree` property table: one
            // row per tree, ids unique over the tileset, heights = the instance scale
            let fi = &glb.json["nodes"][0]["extensions"]["EXT_instance_features"]["featureIds"][0];
            assert_eq!((fi["featureCount"].as_u64(), fi["propertyTable"].as_u64()), (Some(tr.len() as u64), Some(0)), "{}", c.uri);
            let fids = glb.accessor(a["_FEATURE_ID_0"].as_u64().unwrap() as usize);
            assert_eq!(fids.iter().map(|f| f[0] as usize).collect::<Vec<_>>(), (0..tr.len()).collect::<Vec<_>>());
            let tids = glb.property("id").expect("tree id column");
            let th = glb.property("height").expect("tree height column");
            assert_eq!(tids.len(), tr.len());
            for (k, s) in sc.iter().enumerate() {
                assert!((th[k].as_f64().unwrap() - s[1]).abs() < 1e-3, "{}: tree {k} height", c.uri);
                assert!(out.tree_ids.insert(tids[k].as_f64().unwrap() as u64), "{}: tree id {} twice", c.uri, tids[k]);
            }
            out.trees += tr.len();
            out.tree_tiles += 1;
            return;
        }
        let ids = glb.property("id").expect("id column");
        let heights = glb.property("height").expect("height column");
        let uses = glb.property("use").expect("use column");
        let use_names: Vec<String> = glb.json["extensions"]["EXT_structural_metadata"]["schema"]["enums"]["BuildingUse"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect();
        let levels = glb.property("level").expect("level column");
        // L3 tiles: children of L2 tiles (`-l3-`), and a key building's own slot (`-k<id>`)
        let is_l4 = c.uri.contains("-l4-");
        let is_l3 = c.uri.contains("-l3-") || c.uri.contains("-k");
        if is_l4 {
            assert_eq!(ids.len(), 1, "{}: one key building per L4 tile", c.uri);
            assert!(t.children.is_empty() && t.geometric_error == 0.0, "{}: L4 tiles are leaves", c.uri);
            let names = glb.property("name").unwrap_or_default();
            let mut seen = L4Seen {
                uri: c.uri.clone(),
                id: ids[0].as_f64().unwrap() as u32,
                level: levels[0].as_f64().unwrap() as u32,
                name: names.first().and_then(|v| v.as_str()).unwrap_or("").to_string(),
                images: vec![],
                materials: vec![],
                untextured_uv_missing: 0,
                textured_prims: 0,
            };
            for im in glb.json["images"].as_array().cloned().unwrap_or_default() {
                let bv = &glb.json["bufferViews"][im["bufferView"].as_u64().unwrap() as usize];
                let (o, n) = (bv["byteOffset"].as_u64().unwrap_or(0) as usize, bv["byteLength"].as_u64().unwrap() as usize);
                seen.images.push((glb.bin[o..o + n].to_vec(), im["mimeType"].as_str().unwrap().to_string()));
            }
            for m in glb.json["materials"].as_array().unwrap() {
                assert_eq!(m["doubleSided"], true, "{}: L4 materials are double-sided", c.uri);
                seen.materials.push(m["name"].as_str().unwrap().to_string());
            }
            for p in glb.json["meshes"][0]["primitives"].as_array().unwrap() {
                let mat = &glb.json["materials"][p["material"].as_u64().unwrap() as usize];
                if mat["pbrMetallicRoughness"]["baseColorTexture"].is_object() {
                    seen.textured_prims += 1;
                    if !p["attributes"]["TEXCOORD_0"].is_u64() {
                        seen.untextured_uv_missing += 1;
                    }
                }
            }
            out.l4.push(seen);
        } else if is_l3 {
            out.l3_tiles += 1;
            for (k, id) in ids.iter().enumerate() {
                let id = id.as_f64().unwrap() as u32;
                let prev = out.l3_levels.insert(id, format!("L{}", levels[k].as_f64().unwrap() as u32));
                assert!(prev.is_none(), "building {id} appears in two L3 tiles");
            }
            for (_, _, _, m) in glb.triangles() {
                let name = glb.json["materials"][m]["name"].as_str().unwrap().to_string();
                assert!(["roof", "wall", "window_facade"].contains(&name.as_str()), "{}: material {name}", c.uri);
            }
            for p in glb.json["meshes"][0]["primitives"].as_array().unwrap() {
                assert!(p["attributes"]["NORMAL"].is_u64(), "{}: L3 primitive without normals", c.uri);
                // textured facades: TEXCOORD_0 and an embedded PNG with a REPEAT sampler
                let mat = &glb.json["materials"][p["material"].as_u64().unwrap() as usize];
                if mat["name"] == "window_facade" {
                    assert!(p["attributes"]["TEXCOORD_0"].is_u64(), "{}: facade without UVs", c.uri);
                    let tex = &glb.json["textures"][mat["pbrMetallicRoughness"]["baseColorTexture"]["index"].as_u64().unwrap() as usize];
                    let img = &glb.json["images"][tex["source"].as_u64().unwrap() as usize];
                    assert_eq!(img["mimeType"], "image/png");
                    let s = &glb.json["samplers"][tex["sampler"].as_u64().unwrap() as usize];
                    assert_eq!((s["wrapS"].as_u64(), s["wrapT"].as_u64()), (Some(10497), Some(10497)));
                    out.textured += 1;
                }
            }
        } else {
            out.features += ids.len();
            for (k, id) in ids.iter().enumerate() {
                let id = id.as_f64().unwrap() as u32;
                let prev = out.props.insert(
                    id,
                    (heights[k].as_f64().unwrap(), use_names[uses[k].as_f64().unwrap() as usize].clone(), format!("L{}", levels[k].as_f64().unwrap() as u32)),
                );
                assert!(prev.is_none(), "building {id} appears in two tiles");
            }
            // REPLACE: L3 children hold exactly this tile's buildings
            if !t.children.is_empty() {
                out.refined += 1;
                let mut mine: Vec<u32> = ids.iter().map(|v| v.as_f64().unwrap() as u32).collect();
                let mut theirs: Vec<u32> = vec![];
                for ch in &t.children {
                    let cu = &ch.content.as_ref().expect("L3 child has content").uri;
                    let cb = gunzip(&std::fs::read(dir.join(format!("{cu}.gz"))).unwrap());
                    let cg = Glb::parse(&cb).unwrap();
                    theirs.extend(cg.property("id").unwrap().iter().map(|v| v.as_f64().unwrap() as u32));
                }
                mine.sort_unstable();
                theirs.sort_unstable();
                assert_eq!(mine, theirs, "{}: feature ids of the L3 children differ from the L2 tile's", c.uri);
            }
        }
        // per-feature signed volume over all primitives > 0 (outward winding); not for L4
        // tiles, whose LoD3 / glTF surfaces need not be closed (double-sided materials)
        let mut vol: HashMap<u32, f64> = HashMap::new();
        for (pos, idx, fids, _) in glb.triangles().into_iter().filter(|_| !is_l4) {
            for tri in idx.chunks_exact(3) {
                let (a, b, cc) = (pos[tri[0] as usize], pos[tri[1] as usize], pos[tri[2] as usize]);
                let v = a[0] * (b[1] * cc[2] - b[2] * cc[1]) - a[1] * (b[0] * cc[2] - b[2] * cc[0]) + a[2] * (b[0] * cc[1] - b[1] * cc[0]);
                *vol.entry(fids[tri[0] as usize]).or_default() += v / 6.0;
            }
        }
        for (f, v) in vol {
            assert!(v > 0.0, "{}: feature {f} has volume {v} (inward winding)", c.uri);
        }
        let eps_rad = 1e-3 / 6.37e6; // 1 mm
        for (pos, idx, fids, _) in glb.triangles() {
            assert_eq!(idx.len() % 3, 0);
            // closed: every directed edge once and its reverse once
            let mut edges: HashMap<(u32, u32), u32> = HashMap::new();
            for tri in idx.chunks_exact(3) {
                for (a, b) in [(tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])] {
                    *edges.entry((a, b)).or_default() += 1;
                }
            }
            // L2 blocks share vertices: closed per primitive (L3 meshes have per-face vertices
            // and span several primitives)
            if !is_l3 && !is_l4 {
                for (&(a, b), &n) in &edges {
                    assert!(n == 1 && edges.get(&(b, a)) == Some(&1), "{}: edge {a}-{b} is not shared by exactly two triangles", c.uri);
                }
            }
            for (v, f) in pos.iter().zip(&fids) {
                out.vertices += 1;
                let ecef = mat_apply(&world, *v);
                let (lon, lat, h) = ecef_to_geodetic(ecef);
                let (lon, lat) = (lon.to_radians(), lat.to_radians());
                assert!(
                    lon >= region[0] - eps_rad && lon <= region[2] + eps_rad && lat >= region[1] - eps_rad && lat <= region[3] + eps_rad,
                    "{}: vertex at {lon},{lat} outside region {region:?}",
                    c.uri
                );
                assert!(h >= region[4] - 1e-3 && h <= region[5] + 1e-3, "{}: vertex height {h} outside {region:?}", c.uri);
                let id = ids[*f as usize].as_f64().unwrap() as u32;
                let e = if is_l4 {
                    &mut out.l4_heights
                } else if is_l3 {
                    &mut out.l3_heights
                } else {
                    &mut out.heights
                }
                .entry(id)
                .or_insert((f64::INFINITY, f64::NEG_INFINITY));
                e.0 = e.0.min(h);
                e.1 = e.1.max(h);
            }
        }
    }
    for ch in &t.children {
        check_tile(dir, ch, &m, Some((&region, t.geometric_error)), out);
    }
}

/// Numeric checks of a whole tileset; returns what was found.
fn check_tileset(model_dir: &Path) -> (Tileset, Checked) {
    let dir = model_dir.join("3dtiles");
    let ts: Tileset = serde_json::from_slice(&std::fs::read(dir.join("tileset.json")).unwrap()).unwrap();
    assert_eq!(ts.asset.version, "1.1");
    assert!(ts.geometric_error > ts.root.geometric_error);
    // root transform: ENU at the centre of the root region (on the ellipsoid) → ECEF
    let r = ts.root.bounding_volume.region.unwrap();
    let tr = ts.root.transform.expect("root transform");
    let origin = [tr[12], tr[13], tr[14]];
    let (lon, lat, h) = ecef_to_geodetic(origin);
    assert!(lon.to_radians() > r[0] && lon.to_radians() < r[2] && lat.to_radians() > r[1] && lat.to_radians() < r[3], "root origin outside its region");
    assert!(h.abs() < 1.0, "root origin {h} m off the ellipsoid");
    let up = [tr[8], tr[9], tr[10]];
    let want_up = {
        let p = geodetic_to_ecef(lon, lat, 1.0);
        [p[0] - origin[0], p[1] - origin[1], p[2] - origin[2]]
    };
    for k in 0..3 {
        assert!((up[k] - want_up[k]).abs() < 1e-6, "root z axis is not local up");
    }
    let mut c = Checked::default();
    check_tile(&dir, &ts.root, &IDENTITY, None, &mut c);
    (ts, c)
}

fn validate_glbs(dir: &Path) -> Value {
    let o = Command::new("node")
        .arg(js_dir().join("validate_glb.mjs"))
        .arg(dir)
        .current_dir(js_dir())
        .output()
        .expect("node (scripts/js-deps.sh installs the harness)");
    assert!(o.status.success(), "validator failed to run: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("validator output: {e}: {}", String::from_utf8_lossy(&o.stdout)))
}

/// Raw HTTP/1.1 GET (no URL normalisation, so `..` reaches the server as written).
fn raw_get(base: &str, path: &str, headers: &[(&str, &str)]) -> (u16, HashMap<String, String>, Vec<u8>) {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let hs: HashMap<String, String> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let mut body = buf[split + 4..].to_vec();
    if hs.get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(String::from_utf8_lossy(&rest[..nl]).trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    (status, hs, body)
}

fn raw_request(base: &str, method: &str, path: &str) -> (u16, HashMap<String, String>) {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://example.test\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.lines();
    let status: u16 = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let hs = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, hs)
}

#[test]
fn default_city_tileset_is_contained_valid_served_and_viewable_in_cesium() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sy");
    let m = build(&dir, &[]);
    let n_buildings = m["layers"]["buildings"].as_u64().unwrap() as usize;
    let t3 = &m["tiles3d"];
    assert_eq!(m["files"]["3dtiles"], "3dtiles/tileset.json");
    assert_eq!(t3["buildings"].as_u64().unwrap() as usize, n_buildings, "every generated building gets a block: {t3}");
    assert!(t3["skipped"].as_object().unwrap().is_empty());

    // 1. numbers
    let (ts, c) = check_tileset(&dir);
    assert_eq!(c.tiles as u64, t3["tiles"].as_u64().unwrap());
    assert_eq!(c.features, n_buildings, "property-table rows over all tiles");
    assert_eq!(c.props.len(), n_buildings, "each building exactly once");
    assert!((0..n_buildings as u32).all(|i| c.props.contains_key(&i)));
    let max_feat = t3["max_features_per_tile"].as_u64().unwrap() as usize;
    assert!(c.tiles * max_feat >= n_buildings);
    // every building stands on the ellipsoid (flat terrain at 0 m) and reaches its height, also
    // at the city's edges (curvature handled per tile); tolerance: int16 quantisation + f32
    let model_dir_model = scenes::store::read_model(&dir).unwrap();
    let mut far = 0;
    let centre = ts.root.transform.unwrap();
    let (clon, clat, _) = ecef_to_geodetic([centre[12], centre[13], centre[14]]);
    for b in &model_dir_model.buildings {
        let (lo, hi) = c.heights[&b.id];
        assert!((lo - b.min_height as f64).abs() < 0.15, "building {} base at {lo} m, want {}", b.id, b.min_height);
        assert!((hi - b.height as f64).abs() < 0.15, "building {} top at {hi} m, want {}", b.id, b.height);
        let (h, u, l) = &c.props[&b.id];
        assert_eq!(*h as f32, b.height);
        assert_eq!(u, b.use_.as_str());
        assert_eq!(l, "L2");
        use geo::Centroid;
        let p = b.footprint.centroid().unwrap();
        if (p.x() - clon).abs() > 0.15 || (p.y() - clat).abs() > 0.1 {
            far += 1;
        }
    }
    assert!(far > 1000, "the check covered buildings > 10 km from the root origin ({far})");
    // L3: the buildings of 和平区 and 沈河区 (the default focus districts) in the children of
    // the L2 tiles holding them, standing on the ground and reaching their height
    assert_eq!(c.l3_tiles as u64, t3["l3_tiles"].as_u64().unwrap());
    assert!(c.refined > 0 && c.l3_tiles >= c.refined, "{} refined L2 tiles, {} L3 tiles", c.refined, c.l3_tiles);
    // … and the buildings of the default theme area 好游玩·北陵公园 (centroid in its box)
    let areas = t3["l3_areas"].as_array().unwrap();
    assert_eq!(areas.len(), 1, "{t3}");
    assert_eq!(areas[0]["name"], "好游玩·北陵公园");
    let abox: Vec<f64> = areas[0]["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let in_area = |b: &scenes::model::Building| {
        use geo::Centroid;
        let c = b.footprint.centroid().unwrap();
        c.x() >= abox[0] && c.x() <= abox[2] && c.y() >= abox[1] && c.y() <= abox[3]
    };
    let n_area = model_dir_model.buildings.iter().filter(|b| in_area(b)).count() as u64;
    assert!(n_area > 100, "{n_area} buildings in the theme area");
    assert_eq!(areas[0]["buildings"].as_u64().unwrap(), n_area);
    let focus_district = |b: &scenes::model::Building| {
        in_area(b)
            || b.district
                .and_then(|d| model_dir_model.districts.get(d as usize))
                .is_some_and(|d| matches!(d.names.zh.as_deref(), Some("和平区") | Some("沈河区")))
    };
    let n_focus = model_dir_model.buildings.iter().filter(|b| focus_district(b)).count();
    let fallbacks: u64 = t3["l3_fallbacks"].as_object().unwrap().values().map(|t| t["count"].as_u64().unwrap()).sum();
    assert!(n_focus > 10_000, "{n_focus}");
    assert_eq!(t3["l3_buildings"].as_u64().unwrap() + fallbacks, n_focus as u64, "{t3}");
    assert!(fallbacks * 1000 <= n_focus as u64, "{fallbacks} L3 fallbacks: {}", t3["l3_fallbacks"]);
    let mut n_l3 = 0;
    for b in &model_dir_model.buildings {
        if focus_district(b) {
            assert!(c.l3_levels.contains_key(&b.id), "focus building {} missing from the L3 tiles", b.id);
        }
        if c.l3_levels.get(&b.id).map(String::as_str) == Some("L3") {
            assert!(focus_district(b), "building {} outside the focus districts at L3", b.id);
            n_l3 += 1;
            let (lo, hi) = c.l3_heights[&b.id];
            assert!((lo - b.min_height as f64).abs() < 0.15 && (hi - b.height as f64).abs() < 0.15, "L3 building {} spans {lo}..{hi}, model {}..{}", b.id, b.min_height, b.height);
        }
    }
    assert_eq!(n_l3 as u64, t3["l3_buildings"].as_u64().unwrap());
    assert!(c.textured >= c.l3_tiles, "{} textured facade primitives in {} L3 tiles", c.textured, c.l3_tiles);
    // trees in the parks of the focus districts
    assert_eq!(c.tree_tiles as u64, t3["tree_tiles"].as_u64().unwrap());
    assert_eq!(c.trees as u64, t3["trees"].as_u64().unwrap());
    assert!(c.trees > 1000, "{} trees", c.trees);
    // L4: the landmarks placed around 市府广场 from the shared CIM data, each in an L4 tile (a
    // leaf below its own slot) with its level, name, textures and texture coordinates
    let keys: Vec<&scenes::model::Building> = model_dir_model.buildings.iter().filter(|b| b.level == scenes::model::Level::L4).collect();
    assert!(keys.len() >= 3, "{} landmarks", keys.len());
    assert_eq!(t3["l4_tiles"].as_u64().unwrap() as usize, keys.len(), "{t3}");
    assert!(t3["l4_fallbacks"].as_object().unwrap().is_empty(), "{}", t3["l4_fallbacks"]);
    assert_eq!(c.l4.len(), keys.len());
    let src_of = |b: &scenes::model::Building| model_dir_model.sources[b.source.source as usize].path.clone();
    for k in &keys {
        let seen = c.l4.iter().find(|s| s.id == k.id).unwrap_or_else(|| panic!("landmark {} has no L4 tile", k.id));
        assert_eq!(seen.level, 4, "{}", seen.uri);
        assert_eq!(seen.name, k.names.display().unwrap_or(""), "{}", seen.uri);
        assert!(!seen.name.is_empty());
        assert_eq!(seen.untextured_uv_missing, 0, "{}: textured primitive without TEXCOORD_0", seen.uri);
        // standing on the ground (flat, 0 m) and reaching its height
        let (lo, hi) = c.l4_heights[&k.id];
        assert!((lo - k.min_height as f64).abs() < 0.15 && (hi - k.height as f64).abs() < 0.15, "{}: spans {lo}..{hi}, model {}", seen.uri, k.height);
        // near 市府广场 (123.4315° E, 41.8057° N), in a focus district
        use geo::Centroid;
        let p = k.footprint.centroid().unwrap();
        assert!((p.x() - 123.4315).abs() < 0.005 && (p.y() - 41.8057).abs() < 0.004, "landmark {} at {p:?}", k.id);
        assert!(c.l3_levels.contains_key(&k.id), "landmark {} has no L3 slot", k.id);
    }
    // textures kept: the Ingolstadt LoD3 building embeds exactly the distinct images its XML
    // references (counted here with grep), byte for byte, as JPEG; the PLATEAU building its one
    let distinct_images = |xml: &str| -> std::collections::BTreeSet<String> {
        let o = Command::new("grep").args(["-o", "<app:imageURI>[^<]*</app:imageURI>", xml]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).lines().map(|l| l.trim_start_matches("<app:imageURI>").trim_end_matches("</app:imageURI>").to_string()).collect()
    };
    let mut checked = 0;
    for k in &keys {
        let src = src_of(k);
        let seen = c.l4.iter().find(|s| s.id == k.id).unwrap();
        if src.ends_with(".xml") || src.ends_with(".gml") {
            let uris = distinct_images(&src);
            assert!(!uris.is_empty(), "{src}");
            assert_eq!(seen.images.len(), uris.len(), "{}: images vs distinct imageURIs of {src}: {uris:?}", seen.uri);
            let dir = Path::new(&src).parent().unwrap();
            for u in &uris {
                let want = std::fs::read(dir.join(u)).unwrap();
                assert!(seen.images.iter().any(|(b, m)| *b == want && m == "image/jpeg"), "{}: {u} not embedded", seen.uri);
            }
            assert!(seen.textured_prims >= uris.len(), "{}: {} textured primitives", seen.uri, seen.textured_prims);
            if src.contains("4018148") {
                // LoD3 semantics: windows and doors are their own materials
                for class in ["wall", "roof", "window", "door"] {
                    assert!(seen.materials.iter().any(|m| m.split(':').next() == Some(class)), "{}: no {class} material in {:?}", seen.uri, seen.materials);
                }
                assert_eq!(uris.len(), 4, "{uris:?}");
            }
            checked += 1;
        } else if src.ends_with(".glb") {
            // placed glTF: its images copied through (the source's own count, read here)
            let g = Glb::parse(&std::fs::read(&src).unwrap()).unwrap();
            let n = g.json["images"].as_array().map(|a| a.len()).unwrap_or(0);
            assert_eq!(seen.images.len(), n, "{}: images of {src}", seen.uri);
            let src_mats: Vec<&str> = g.json["materials"].as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
            assert!(seen.materials.iter().all(|m| src_mats.contains(&m.as_str())), "{}: {:?} not from {src}", seen.uri, seen.materials);
            checked += 1;
        } else if src.ends_with(".ifc") {
            // IFC: walls, slabs and roofs meshed, one material per class, no textures
            assert!(seen.images.is_empty());
            assert!(seen.materials.iter().all(|m| ["wall", "roof", "outer_floor"].contains(&m.as_str())), "{:?}", seen.materials);
            assert!(seen.materials.iter().any(|m| m == "wall") && seen.materials.iter().any(|m| m == "roof"), "{:?}", seen.materials);
            checked += 1;
        }
    }
    assert_eq!(checked, keys.len());
    assert!(keys.iter().any(|k| src_of(k).contains("4018148")), "the Ingolstadt LoD3 landmark is missing");

    // 2. every GLB passes the Khronos glTF-Validator
    let v = validate_glbs(&dir.join("3dtiles"));
    assert_eq!(v["files"].as_u64().unwrap() as usize, c.tiles, "{v}");
    assert_eq!(v["errors"], 0, "glTF-Validator errors: {}", v["failed"]);
    assert_eq!(
        v["extensionsUsed"],
        serde_json::json!(["EXT_instance_features", "EXT_mesh_features", "EXT_mesh_gpu_instancing", "EXT_structural_metadata", "KHR_mesh_quantization"])
    );

    // 3. HTTP
    let srv = serve(&dir);
    let base = &srv.base;
    let (st, h, body) = raw_get(base, "/3dtiles/shenyang/tileset.json", &[("Accept-Encoding", "gzip")]);
    assert_eq!(st, 200);
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(h["cache-control"], "no-cache");
    let served: Tileset = serde_json::from_slice(&gunzip(&body)).unwrap();
    assert_eq!(served, ts);
    let etag = h["etag"].clone();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "strong ETag: {etag}");
    let (st, h2, body) = raw_get(base, "/3dtiles/shenyang/tileset.json", &[("Accept-Encoding", "gzip"), ("If-None-Match", &etag)]);
    assert_eq!((st, body.len()), (304, 0));
    assert_eq!(h2["etag"], etag);
    // identity for a client without gzip: same JSON, different strong ETag
    let (st, h3, body) = raw_get(base, "/3dtiles/shenyang/tileset.json", &[]);
    assert_eq!(st, 200);
    assert!(!h3.contains_key("content-encoding"));
    assert_ne!(h3["etag"], etag);
    assert_eq!(serde_json::from_slice::<Tileset>(&body).unwrap(), ts);
    let mut first_uri = None;
    ts.root.walk(0, &mut |t, _| {
        if first_uri.is_none() {
            first_uri = t.content.as_ref().map(|c| c.uri.clone());
        }
    });
    let uri = first_uri.unwrap();
    let (st, h, body) = raw_get(base, &format!("/3dtiles/shenyang/{uri}"), &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(st, 200);
    assert_eq!(h["content-type"], "model/gltf-binary");
    assert_eq!(h["content-encoding"], "gzip");
    assert!(h["cache-control"].contains("max-age"));
    assert_eq!(&gunzip(&body)[..4], b"glTF");
    let (st, h) = raw_request(base, "OPTIONS", &format!("/3dtiles/shenyang/{uri}"));
    assert_eq!(st, 204);
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(h["access-control-allow-methods"].contains("GET"));
    for bad in [
        "/3dtiles/shenyang/../manifest.json",
        "/3dtiles/shenyang/content/../../manifest.json",
        "/3dtiles/shenyang/%2e%2e/manifest.json",
        "/3dtiles/shenyang/content/%2e%2e%2f%2e%2e%2fmanifest.json",
        "/3dtiles/shenyang/..%2fmodel.bin",
        "/3dtiles/shenyang/content/nope.glb",
        "/3dtiles/porto/tileset.json",
        "/3dtiles/shenyang/",
    ] {
        let (st, _, body) = raw_get(base, bad, &[]);
        assert!(st == 404 || st == 400, "{bad}: status {st}");
        assert!(!String::from_utf8_lossy(&body).contains("citytwin-model"), "{bad} leaked the manifest");
    }

    // 4. CesiumJS: load from the server, draw, pick a known building
    let (_, near) = get_json(&format!("{base}/api/buildings?bbox=123.428,41.803,123.435,41.808&limit=5000"));
    let target = near["features"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| a["properties"]["height"].as_f64().partial_cmp(&b["properties"]["height"].as_f64()).unwrap())
        .expect("buildings near 市府广场")
        .clone();
    let ring = target["geometry"]["coordinates"][0][0].as_array().unwrap();
    let pts = &ring[..ring.len() - 1];
    let lon = pts.iter().map(|p| p[0].as_f64().unwrap()).sum::<f64>() / pts.len() as f64;
    let lat = pts.iter().map(|p| p[1].as_f64().unwrap()).sum::<f64>() / pts.len() as f64;
    let (st, at) = get_json(&format!("{base}/api/pick?lon={lon}&lat={lat}"));
    assert_eq!(st, 200);
    let id = at["properties"]["id"].as_u64().unwrap();
    let cam_h = at["properties"]["height"].as_f64().unwrap() + 400.0;
    let shot = tmp.path().join("cesium.png");
    let o = Command::new("node")
        .arg(js_dir().join("cesium_tileset.mjs"))
        .arg(format!("{base}/3dtiles/shenyang/tileset.json"))
        .args([lon.to_string(), lat.to_string(), cam_h.to_string()])
        .arg(&shot)
        .current_dir(js_dir())
        .output()
        .expect("node");
    assert!(o.status.success(), "cesium run failed: {}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    assert_eq!(r["pageErrors"], serde_json::json!([]), "{r}");
    assert_eq!(r["blocked"], serde_json::json!([]), "requests left 127.0.0.1: {r}");
    assert_eq!(r["failed"], 0, "failed tiles: {}", r["failures"]);
    assert!(r["loaded"].as_u64().unwrap() >= 1 && r["tilesLoaded"] == true, "{r}");
    // 400 m above the roof, in an 800 × 600 view (L3 within 500 × 5/9 = 278 m): L2 only
    assert_eq!(r["loadedByKind"]["l3"], 0, "{}", r["loadedByKind"]);
    // 150 m above it: CesiumJS refines the L2 tile of this focus-district building to L3
    // (and loads the trees gate's tiles in view), with no failed tile
    let district = at["properties"]["district"].as_str().unwrap_or("").to_string();
    assert!(["和平区", "沈河区"].contains(&district.as_str()), "target building in {district:?}");
    let o = Command::new("node")
        .arg(js_dir().join("cesium_tileset.mjs"))
        .arg(format!("{base}/3dtiles/shenyang/tileset.json"))
        .args([lon.to_string(), lat.to_string(), (cam_h - 250.0).to_string()])
        .current_dir(js_dir())
        .output()
        .expect("node");
    assert!(o.status.success(), "cesium run failed: {}", String::from_utf8_lossy(&o.stderr));
    let r3: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    assert_eq!(r3["pageErrors"], serde_json::json!([]), "{r3}");
    assert_eq!(r3["failed"], 0, "failed tiles: {}", r3["failures"]);
    assert!(r3["loadedByKind"]["l3"].as_u64().unwrap() >= 1 && r3["tilesLoaded"] == true, "no L3 tile loaded: {}", r3["loadedByKind"]);
    let drawn = r["nonBackground"].as_f64().unwrap() / r["pixels"].as_f64().unwrap();
    assert!(drawn > 0.05, "only {:.1} % of the screen drawn: {r}", drawn * 100.0);
    let picked = &r["picked"];
    assert_eq!(picked["id"].as_u64(), Some(id), "Cesium picked {picked}, the server says building {id} is at the centre");
    let (st, api) = get_json(&format!("{base}/api/buildings/{id}"));
    assert_eq!(st, 200);
    let p = &api["properties"];
    assert!((picked["height"].as_f64().unwrap() - p["height"].as_f64().unwrap()).abs() < 1e-3, "{picked} vs {p}");
    assert_eq!(picked["use"], p["use"]);
    assert_eq!(picked["district"], p["district"]);
    assert_eq!(picked["name"], p["name"]);
    assert_eq!(picked["level"], "L2");
    // Cesium's depth buffer at the centre: the roof, height metres above the ellipsoid (the
    // block stands up, on the ground, in the right frame)
    let roof = r["pickedHeight"].as_f64().expect("pickPosition");
    assert!((roof - p["height"].as_f64().unwrap()).abs() < 0.5, "surface at the centre at {roof} m, building height {}", p["height"]);
    assert_eq!(picked["floors"].as_u64(), p["levels"].as_u64());

    // 5. CesiumJS above the Ingolstadt LoD3 landmark: its L4 tile loads (in a 600 px high view
    // L4 is selected within 150 × 5/9 = 83 m of its slot: camera 60 m above the roof), no tile
    // fails, and picking the landmark gives its metadata at level L4
    let ing = keys.iter().find(|k| src_of(k).contains("4018148")).unwrap();
    use geo::Centroid;
    let pc = ing.footprint.centroid().unwrap();
    let o = Command::new("node")
        .arg(js_dir().join("cesium_tileset.mjs"))
        .arg(format!("{base}/3dtiles/shenyang/tileset.json"))
        .args([pc.x().to_string(), pc.y().to_string(), (ing.height as f64 + 60.0).to_string()])
        .arg(tmp.path().join("cesium-l4.png"))
        .current_dir(js_dir())
        .output()
        .expect("node");
    assert!(o.status.success(), "cesium run failed: {}", String::from_utf8_lossy(&o.stderr));
    let r4: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    assert_eq!(r4["pageErrors"], serde_json::json!([]), "{r4}");
    assert_eq!(r4["failed"], 0, "failed tiles: {}", r4["failures"]);
    assert!(r4["loadedByKind"]["l4"].as_u64().unwrap() >= 1 && r4["tilesLoaded"] == true, "no L4 tile loaded: {}", r4["loadedByKind"]);
    let pk = &r4["picked"];
    assert_eq!(pk["id"].as_u64(), Some(ing.id as u64), "picked {pk}");
    assert_eq!(pk["level"], "L4", "{pk}");
    assert_eq!(pk["name"], ing.names.display().unwrap(), "{pk}");
    let (_, api) = get_json(&format!("{base}/api/buildings/{}", ing.id));
    assert_eq!(pk["name"], api["properties"]["name"]);
}

#[test]
fn real_data_tilesets_are_contained_and_validator_clean() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("lyon", vec!["--source".to_string(), data("buildings/lyon1_bdtopo.geojson")]),
        ("denhaag", vec!["--source".to_string(), data("cim/cityjson/DenHaag_01_v2.city.json"), "--l3-districts".into(), "all".into()]),
        ("rotterdam", vec!["--source".to_string(), data("cim/cityjson/rotterdam_3-20-DELFSHAVEN_v2.city.json"), "--l3-districts".into(), "all".into()]),
    ] {
        let dir = tmp.path().join(name);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let m = build(&dir, &a);
        let t3 = &m["tiles3d"];
        let n = m["layers"]["buildings"].as_u64().unwrap();
        let skipped: u64 = t3["skipped"].as_object().unwrap().values().map(|t| t["count"].as_u64().unwrap()).sum();
        assert_eq!(t3["buildings"].as_u64().unwrap() + skipped, n, "{name}: {t3}");
        assert!(t3["buildings"].as_u64().unwrap() * 100 >= n * 99, "{name}: too many skipped: {t3}");
        if name == "rotterdam" {
            // two LoD2 buildings have self-intersecting ground surfaces: repaired, not skipped
            assert_eq!(skipped, 0, "{t3}");
            assert_eq!(t3["repaired"][scenes::threed::REPAIRED_REASON]["count"], 2, "{t3}");
        }
        let (_, c) = check_tileset(&dir);
        assert_eq!(c.features as u64, t3["buildings"].as_u64().unwrap());
        let model = scenes::store::read_model(&dir).unwrap();
        for b in &model.buildings {
            if let Some((lo, hi)) = c.heights.get(&b.id) {
                assert!((lo - b.min_height as f64).abs() < 0.15 && (hi - b.height as f64).abs() < 0.15, "{name}: building {} spans {lo}..{hi}, model {}..{}", b.id, b.min_height, b.height);
            }
        }
        // L3: none by default for ingested data; with `--l3-districts all` every building, the
        // CityJSON LoD2 solids triangulated as they are
        let l3 = t3["l3_buildings"].as_u64().unwrap();
        if name == "lyon" {
            assert_eq!((t3["l3_tiles"].as_u64().unwrap(), l3, c.l3_tiles), (0, 0, 0), "{t3}");
        } else {
            let fallbacks: u64 = t3["l3_fallbacks"].as_object().unwrap().values().map(|t| t["count"].as_u64().unwrap()).sum();
            assert_eq!(l3 + fallbacks, t3["buildings"].as_u64().unwrap(), "{name}: {t3}");
            let solids = model.buildings.iter().filter(|b| b.solid.is_some() && c.heights.contains_key(&b.id)).count() as u64;
            assert!(solids > 800, "{name}: {solids} solids");
            assert_eq!(t3["l3_solids"].as_u64().unwrap() + fallbacks, solids, "{name}: {t3}");
            assert_eq!(c.l3_levels.len() as u64, t3["buildings"].as_u64().unwrap(), "{name}: every building in an L3 tile");
            assert_eq!(c.l3_levels.values().filter(|l| *l == "L3").count() as u64, l3);
            assert_eq!(c.l3_tiles as u64, t3["l3_tiles"].as_u64().unwrap());
            for b in &model.buildings {
                if c.l3_levels.get(&b.id).map(String::as_str) == Some("L3") {
                    let (lo, hi) = c.l3_heights[&b.id];
                    assert!((lo - b.min_height as f64).abs() < 0.15 && (hi - b.height as f64).abs() < 0.15, "{name}: L3 building {} spans {lo}..{hi}, model {}..{}", b.id, b.min_height, b.height);
                }
            }
        }
        let v = validate_glbs(&dir.join("3dtiles"));
        assert_eq!(v["files"].as_u64().unwrap() as usize, c.tiles, "{v}");
        assert_eq!(v["errors"], 0, "{name}: glTF-Validator errors: {}", v["failed"]);
        assert_eq!(v["warnings"], 0, "{name}: glTF-Validator warnings: {}", v["issueCodes"]);
    }
}

#[test]
fn bad_buildings_are_reported_per_feature_and_no_3dtiles_skips_the_tileset() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("bad.geojson");
    let sq = |x: f64| format!("[[[{x},41.8],[{},41.8],[{},41.8005],[{x},41.8005],[{x},41.8]]]", x + 0.0005, x + 0.0005);
    let feats = [
        format!(r#"{{"type":"Feature","properties":{{"id":"ok","building":"yes","height":12}},"geometry":{{"type":"Polygon","coordinates":{}}}}}"#, sq(123.40)),
        format!(r#"{{"type":"Feature","properties":{{"id":"flat","building":"yes","height":10,"min_height":10}},"geometry":{{"type":"Polygon","coordinates":{}}}}}"#, sq(123.41)),
        format!(r#"{{"type":"Feature","properties":{{"id":"ok2","building":"yes","height":30,"min_height":6}},"geometry":{{"type":"Polygon","coordinates":{}}}}}"#, sq(123.42)),
    ];
    std::fs::write(&src, format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, feats.join(","))).unwrap();
    let dir = tmp.path().join("m");
    let m = build(&dir, &["--source", src.to_str().unwrap()]);
    assert_eq!(m["layers"]["buildings"], 3);
    let t3 = &m["tiles3d"];
    assert_eq!(t3["buildings"], 2, "{t3}");
    let sk = &t3["skipped"]["height not above min_height"];
    assert_eq!(sk["count"], 1, "{t3}");
    assert!(sk["examples"][0]["feature"].as_str().unwrap().starts_with("flat"), "{sk}");
    let (_, c) = check_tileset(&dir);
    assert_eq!(c.features, 2);
    // the raised block starts at 6 m
    let model = scenes::store::read_model(&dir).unwrap();
    let ok2 = model.buildings.iter().find(|b| b.source.id == "ok2").unwrap();
    assert!((c.heights[&ok2.id].0 - 6.0).abs() < 0.15);

    // only bad buildings: the build succeeds, reports them, and writes no tileset
    let only_bad = tmp.path().join("only_bad.geojson");
    std::fs::write(&only_bad, format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, feats[1])).unwrap();
    let dir3 = tmp.path().join("b");
    let m3 = build(&dir3, &["--source", only_bad.to_str().unwrap()]);
    assert_eq!(m3["tiles3d"]["tiles"], 0);
    assert_eq!(m3["tiles3d"]["skipped"]["height not above min_height"]["count"], 1);
    assert!(!dir3.join("3dtiles").exists() && m3["files"].get("3dtiles").is_none());

    let dir2 = tmp.path().join("n");
    let o = twin(&["build", "--source", src.to_str().unwrap(), "--no-3dtiles", "--out", dir2.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dir2.join("3dtiles").exists());
    let m2 = manifest(&dir2);
    assert!(m2.get("tiles3d").is_none() && m2["files"].get("3dtiles").is_none());
}

#[test]
fn bad_l4_inputs_are_reported_per_feature_and_the_build_goes_on() {
    // A CityGML LoD3 building copied without its textures directory, with one polygon made
    // degenerate; a GLB without placement; both in one build.
    let tmp = tempfile::tempdir().unwrap();
    let src = data("cim/citygml/ingolstadt-lod3/4018133/4018133.xml");
    let xml = std::fs::read_to_string(&src).unwrap();
    // the first posList: every vertex the same point (a degenerate surface)
    let start = xml.find("<gml:posList").unwrap();
    let open_end = start + xml[start..].find('>').unwrap() + 1;
    let close = open_end + xml[open_end..].find("</gml:posList>").unwrap();
    let first: Vec<&str> = xml[open_end..close].split_whitespace().take(3).collect();
    let degenerate = std::iter::repeat_n(first.join(" "), 4).collect::<Vec<_>>().join(" ");
    let broken = format!("{}{}{}", &xml[..open_end], degenerate, &xml[close..]);
    let gml = tmp.path().join("house.xml");
    std::fs::write(&gml, broken).unwrap();
    let placement = tmp.path().join("p.json");
    std::fs::write(&placement, r#"{"lon": 123.4315, "lat": 41.8057, "name": {"zh": "小屋", "en": "House"}}"#).unwrap();
    let glb = data("cim/gltf/AC20-FZK-Haus.glb");
    let dir = tmp.path().join("m");
    let m = build(&dir, &["--source", gml.to_str().unwrap(), "--placement", placement.to_str().unwrap(), "--source", &glb]);
    let rep = &m["report"];
    // the GLB without placement: dropped, named, with a warning
    let d = &rep["dropped"][scenes::cim::placed::NO_GEOREFERENCE];
    assert_eq!(d["count"], 1, "{rep}");
    assert_eq!(d["examples"][0]["source"], glb.as_str());
    // the missing textures: the building is repaired (left untextured) and a warning names them
    let t = &rep["repaired"]["texture image missing: its surfaces are left untextured"];
    assert_eq!(t["count"], 1, "{rep}");
    assert_eq!(t["examples"][0]["feature"], "4018133");
    let warnings: Vec<&str> = rep["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert!(warnings.iter().any(|w| w.contains("Wood_Cherry_Original.jpg") && w.contains("Roofing_Tile_Spanish.jpg")), "{warnings:?}");
    // the degenerate surface: removed and reported for that building
    let g = &rep["repaired"]["degenerate 3D surface or ring (< 3 distinct points) removed"];
    assert!(g["examples"].as_array().unwrap().iter().any(|e| e["feature"] == "4018133"), "{rep}");
    // the key building still gets its L4 tile, untextured, validator clean
    let t3 = &m["tiles3d"];
    assert_eq!((t3["l4_tiles"].as_u64(), t3["l4_images"].as_u64()), (Some(1), Some(0)), "{t3}");
    let (_, c) = check_tileset(&dir);
    assert_eq!(c.l4.len(), 1);
    assert!(c.l4[0].images.is_empty() && c.l4[0].textured_prims == 0);
    assert!(c.l4[0].materials.iter().all(|m| !m.contains(':')), "{:?}", c.l4[0].materials);
    assert_eq!(c.l4[0].name, "小屋");
    let v = validate_glbs(&dir.join("3dtiles"));
    assert_eq!(v["errors"], 0, "{}", v["failed"]);
}
