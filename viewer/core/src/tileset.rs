//! The client's view of a 3D Tiles tileset: an arena of nodes with their bounding volumes and
//! content frames resolved into the world frame (f64), external tilesets grafted in as they load,
//! and the georeferencing check that rejects tilesets whose volumes are not in ECEF.

use crate::geodesy::{ecef_to_geodetic, WorldFrame};
use glam::{DMat3, DMat4, DVec3};
use serde_json::Value;

/// An oriented box in world coordinates: centre and three half-axis vectors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Obb {
    pub center: DVec3,
    pub half: [DVec3; 3],
}

impl Obb {
    pub fn from_aabb(min: DVec3, max: DVec3) -> Obb {
        let c = (min + max) * 0.5;
        let h = (max - min) * 0.5;
        Obb { center: c, half: [DVec3::X * h.x, DVec3::Y * h.y, DVec3::Z * h.z] }
    }

    /// Euclidean distance from `p` to the box (0 inside).
    pub fn distance(&self, p: DVec3) -> f64 {
        let d = p - self.center;
        let mut s = 0.0;
        for (i, a) in self.half.iter().enumerate() {
            let len = a.length();
            let excess = if len < 1e-9 {
                // a flat box: the distance along the missing axis is the distance off the plane
                let n = self.half[(i + 1) % 3].cross(self.half[(i + 2) % 3]);
                if n.length() < 1e-12 {
                    0.0
                } else {
                    d.dot(n.normalize()).abs()
                }
            } else {
                (d.dot(*a / len).abs() - len).max(0.0)
            };
            s += excess * excess;
        }
        s.sqrt()
    }

    /// The eight corners.
    pub fn corners(&self) -> [DVec3; 8] {
        let mut out = [DVec3::ZERO; 8];
        for (i, o) in out.iter_mut().enumerate() {
            let sx = if i & 1 == 0 { -1.0 } else { 1.0 };
            let sy = if i & 2 == 0 { -1.0 } else { 1.0 };
            let sz = if i & 4 == 0 { -1.0 } else { 1.0 };
            *o = self.center + self.half[0] * sx + self.half[1] * sy + self.half[2] * sz;
        }
        out
    }

    /// The box under an affine transform.
    pub fn transformed(&self, m: &DMat4) -> Obb {
        Obb {
            center: m.transform_point3(self.center),
            half: [m.transform_vector3(self.half[0]), m.transform_vector3(self.half[1]), m.transform_vector3(self.half[2])],
        }
    }
}

/// A plane `n · p + d = 0` with unit normal pointing into the frustum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plane {
    pub n: DVec3,
    pub d: f64,
}

impl Plane {
    /// True when the whole box lies on the outer side of the plane.
    pub fn box_outside(&self, b: &Obb) -> bool {
        let r: f64 = b.half.iter().map(|a| self.n.dot(*a).abs()).sum();
        self.n.dot(b.center) + self.d < -r
    }
}

/// What a tile's content URI points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    Glb,
    B3dm,
    /// An external tileset, grafted under the node once loaded.
    Tileset,
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContentRef {
    pub url: String,
    pub kind: ContentKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    pub depth: usize,
    pub geometric_error: f64,
    pub replace: bool,
    /// world ← the tile's frame (all transforms down to this tile, then world ← ECEF)
    pub world: DMat4,
    pub volume: Obb,
    pub content: Option<ContentRef>,
    /// glTF content is z-up (asset.gltfUpAxis "Z", a pre-1.0 convention some writers keep)
    pub gltf_up_z: bool,
    /// An external tileset's content has been grafted under this node.
    pub grafted: bool,
}

/// Why a tileset cannot be shown.
#[derive(Debug, Clone, PartialEq)]
pub struct TilesetError(pub String);

impl std::fmt::Display for TilesetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone)]
pub struct Tree {
    pub name: String,
    pub frame: WorldFrame,
    pub nodes: Vec<Node>,
    /// Height of the lowest point of the root volume above the ellipsoid (ground plane).
    pub ground_height: f64,
    /// The root volume's footprint as (lon, lat) extremes.
    pub extent: (f64, f64, f64, f64),
}

/// Resolves `uri` against the URL (or path) of the document that references it.
pub fn resolve(base: &str, uri: &str) -> String {
    if uri.contains("://") || uri.starts_with('/') && !base.contains("://") {
        return uri.to_string();
    }
    let base = base.split(['?', '#']).next().unwrap_or(base);
    let (prefix, path) = match base.find("://") {
        Some(i) => {
            let rest = &base[i + 3..];
            let slash = rest.find('/').map(|j| i + 3 + j).unwrap_or(base.len());
            (&base[..slash], &base[slash..])
        }
        None => ("", base),
    };
    if let Some(abs) = uri.strip_prefix('/') {
        return format!("{prefix}/{abs}");
    }
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    };
    let mut parts: Vec<&str> = dir.split('/').collect();
    parts.pop(); // the empty piece after the last '/'
    for seg in uri.split('/') {
        match seg {
            "." | "" => {}
            ".." => {
                if parts.len() > 1 {
                    parts.pop();
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    format!("{prefix}{joined}")
}

fn kind_of(uri: &str) -> ContentKind {
    let u = uri.split(['?', '#']).next().unwrap_or(uri).to_ascii_lowercase();
    if u.ends_with(".glb") || u.ends_with(".glb.gz") {
        ContentKind::Glb
    } else if u.ends_with(".b3dm") {
        ContentKind::B3dm
    } else if u.ends_with(".json") {
        ContentKind::Tileset
    } else {
        ContentKind::Other
    }
}

fn mat4(v: &Value) -> Option<DMat4> {
    let a = v.as_array()?;
    if a.len() != 16 {
        return None;
    }
    let mut m = [0.0; 16];
    for (i, x) in a.iter().enumerate() {
        m[i] = x.as_f64()?;
    }
    Some(DMat4::from_cols_array(&m))
}

/// The volume of a tile in ECEF (before the world frame), or an error naming what is wrong.
fn ecef_volume(bv: &Value, tile_to_ecef: &DMat4, where_: &str) -> Result<Obb, String> {
    if let Some(b) = bv.get("box").and_then(|b| b.as_array()) {
        let f: Vec<f64> = b.iter().filter_map(|x| x.as_f64()).collect();
        if f.len() != 12 {
            return Err(format!("{where_}: boundingVolume.box needs 12 numbers, has {}", f.len()));
        }
        let obb = Obb {
            center: DVec3::new(f[0], f[1], f[2]),
            half: [DVec3::new(f[3], f[4], f[5]), DVec3::new(f[6], f[7], f[8]), DVec3::new(f[9], f[10], f[11])],
        };
        return Ok(obb.transformed(tile_to_ecef));
    }
    if let Some(r) = bv.get("region").and_then(|b| b.as_array()) {
        let f: Vec<f64> = r.iter().filter_map(|x| x.as_f64()).collect();
        if f.len() != 6 {
            return Err(format!("{where_}: boundingVolume.region needs 6 numbers, has {}", f.len()));
        }
        let (w, s, e, n, lo, hi) = (f[0], f[1], f[2], f[3], f[4], f[5]);
        let pi = std::f64::consts::PI;
        if !(w.abs() <= pi + 1e-9 && e.abs() <= pi + 1e-9 && s.abs() <= pi / 2.0 + 1e-9 && n.abs() <= pi / 2.0 + 1e-9 && s <= n && lo <= hi) {
            return Err(format!(
                "{where_}: boundingVolume.region [{w}, {s}, {e}, {n}, {lo}, {hi}] is not (west, south, east, north) in radians with min ≤ max height"
            ));
        }
        // An ECEF box around the region: ENU at its centre, fitted to a 5 × 5 grid at both heights
        // (regions are never transformed).
        let (clon, clat) = (((w + e) / 2.0).to_degrees(), ((s + n) / 2.0).to_degrees());
        let local = WorldFrame::new(clon, clat, lo);
        let (mut mn, mut mx) = (DVec3::splat(f64::MAX), DVec3::splat(f64::MIN));
        for i in 0..5 {
            for j in 0..5 {
                for h in [lo, hi] {
                    let lon = (w + (e - w) * i as f64 / 4.0).to_degrees();
                    let lat = (s + (n - s) * j as f64 / 4.0).to_degrees();
                    let p = local.world_of_geodetic(lon, lat, h);
                    mn = mn.min(p);
                    mx = mx.max(p);
                }
            }
        }
        return Ok(Obb::from_aabb(mn, mx).transformed(&local.to_ecef));
    }
    if let Some(sp) = bv.get("sphere").and_then(|b| b.as_array()) {
        let f: Vec<f64> = sp.iter().filter_map(|x| x.as_f64()).collect();
        if f.len() != 4 {
            return Err(format!("{where_}: boundingVolume.sphere needs 4 numbers, has {}", f.len()));
        }
        let c = tile_to_ecef.transform_point3(DVec3::new(f[0], f[1], f[2]));
        let m3 = DMat3::from_mat4(*tile_to_ecef);
        let s = m3.x_axis.length().max(m3.y_axis.length()).max(m3.z_axis.length());
        let r = f[3] * s;
        return Ok(Obb { center: c, half: [DVec3::X * r, DVec3::Y * r, DVec3::Z * r] });
    }
    Err(format!("{where_}: boundingVolume has none of box, region, sphere"))
}

/// Checks that a volume given in ECEF lies on the Earth: its centre within 6,200…6,600 km of the
/// Earth's centre (the ellipsoid is 6,357–6,378 km from it).
fn check_ecef(v: &Obb, name: &str) -> Result<(), TilesetError> {
    let r = v.center.length();
    if (6_200_000.0..=6_600_000.0).contains(&r) {
        return Ok(());
    }
    Err(TilesetError(format!(
        "tileset '{name}': the root bounding volume is not in ECEF (EPSG:4978): its centre ({:.1}, {:.1}, {:.1}) is {:.1} km from the Earth's centre, but the ellipsoid is 6,357–6,378 km from it — the volumes are probably in a projected CRS (e.g. EPSG:3946 or UTM metres); re-export the tileset with ECEF bounding volumes and transforms",
        v.center.x,
        v.center.y,
        v.center.z,
        r / 1000.0
    )))
}

pub struct Parsed {
    pub root: Value,
    pub up_z: bool,
}

pub fn parse_json(bytes: &[u8], name: &str) -> Result<Parsed, TilesetError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| TilesetError(format!("tileset '{name}': not valid JSON: {e}")))?;
    let version = v["asset"]["version"].as_str().unwrap_or("");
    if version.is_empty() {
        return Err(TilesetError(format!("tileset '{name}': asset.version missing (not a 3D Tiles tileset.json?)")));
    }
    if !v["root"].is_object() {
        return Err(TilesetError(format!("tileset '{name}': no root tile")));
    }
    let up_z = v["asset"]["gltfUpAxis"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("z"));
    Ok(Parsed { root: v["root"].clone(), up_z })
}

impl Tree {
    /// Builds the tree of a root tileset document fetched from `url`.
    pub fn load(bytes: &[u8], url: &str, name: &str) -> Result<Tree, TilesetError> {
        let p = parse_json(bytes, name)?;
        let root_tf = p.root.get("transform").and_then(mat4).unwrap_or(DMat4::IDENTITY);
        let root_vol = ecef_volume(&p.root["boundingVolume"], &root_tf, &format!("tileset '{name}': root"))
            .map_err(TilesetError)?;
        check_ecef(&root_vol, name)?;
        // the world frame: ENU at the root volume's centre, on its lowest corner's height
        let (lon, lat, _) = ecef_to_geodetic(root_vol.center);
        let mut ground = f64::MAX;
        let (mut w, mut s, mut e, mut n) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for c in root_vol.corners() {
            let (clon, clat, h) = ecef_to_geodetic(c);
            ground = ground.min(h);
            w = w.min(clon);
            e = e.max(clon);
            s = s.min(clat);
            n = n.max(clat);
        }
        if let Some(r) = p.root["boundingVolume"].get("region").and_then(|r| r.as_array()) {
            // a region's own minimum height is exact
            // (only when the region is the volume used: a root may carry a box and a malformed region)
            let f: Vec<f64> = r.iter().filter_map(|x| x.as_f64()).collect();
            if f.len() == 6 && p.root["boundingVolume"].get("box").and_then(|b| b.as_array()).is_none() {
                ground = f[4];
                (w, s, e, n) = (f[0].to_degrees(), f[1].to_degrees(), f[2].to_degrees(), f[3].to_degrees());
            }
        }
        let frame = WorldFrame::new(lon, lat, ground);
        let mut tree = Tree { name: name.to_string(), frame, nodes: Vec::new(), ground_height: ground, extent: (w, s, e, n) };
        tree.add_subtree(&p.root, None, DMat4::IDENTITY, url, p.up_z, 0).map_err(TilesetError)?;
        Ok(tree)
    }

    /// Grafts an external tileset (fetched from `url`) under `node`.
    pub fn graft(&mut self, node: usize, bytes: &[u8], url: &str) -> Result<(), String> {
        let p = parse_json(bytes, &self.name).map_err(|e| format!("external tileset {url}: {e}"))?;
        // the parent's frame: ECEF ← tile = to_ecef · world
        let parent_ecef = self.frame.to_ecef * self.nodes[node].world;
        let depth = self.nodes[node].depth + 1;
        let child = self.add_subtree(&p.root, Some(node), parent_ecef, url, p.up_z, depth)?;
        self.nodes[node].children.push(child);
        self.nodes[node].grafted = true;
        Ok(())
    }

    fn add_subtree(&mut self, t: &Value, parent: Option<usize>, parent_ecef: DMat4, base_url: &str, up_z: bool, depth: usize) -> Result<usize, String> {
        let tf = match t.get("transform") {
            Some(v) => mat4(v).ok_or_else(|| format!("tileset '{}': a transform is not 16 numbers", self.name))?,
            None => DMat4::IDENTITY,
        };
        let ecef = parent_ecef * tf;
        let where_ = format!("tileset '{}': tile at depth {depth}", self.name);
        let vol_ecef = ecef_volume(&t["boundingVolume"], &ecef, &where_)?;
        let volume = vol_ecef.transformed(&self.frame.from_ecef);
        let ge = t["geometricError"].as_f64().unwrap_or(0.0).max(0.0);
        let replace = match t.get("refine").and_then(|r| r.as_str()) {
            Some(r) => r.eq_ignore_ascii_case("replace"),
            None => parent.map(|p| self.nodes[p].replace).unwrap_or(true),
        };
        // 1.1 `content`, the 1.0 draft's `url`, or the first of 1.1 `contents`
        let c = t.get("content").or_else(|| t.get("contents").and_then(|c| c.get(0)));
        let content = c.and_then(|c| c.get("uri").or_else(|| c.get("url"))).and_then(|u| u.as_str()).map(|u| ContentRef {
            url: resolve(base_url, u),
            kind: kind_of(u),
        });
        let id = self.nodes.len();
        self.nodes.push(Node {
            parent,
            children: Vec::new(),
            depth,
            geometric_error: ge,
            replace,
            world: self.frame.from_ecef * ecef,
            volume,
            content,
            gltf_up_z: up_z,
            grafted: false,
        });
        if let Some(ch) = t.get("children").and_then(|c| c.as_array()) {
            for c in ch {
                let cid = self.add_subtree(c, Some(id), ecef, base_url, up_z, depth + 1)?;
                self.nodes[id].children.push(cid);
            }
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_uris() {
        assert_eq!(resolve("http://h:1/3dtiles/sy/tileset.json", "content/a.glb"), "http://h:1/3dtiles/sy/content/a.glb");
        assert_eq!(resolve("http://h:1/a/b/tileset.json", "../c/x.json"), "http://h:1/a/c/x.json");
        assert_eq!(resolve("http://h:1/a/tileset.json", "/x.glb"), "http://h:1/x.glb");
        assert_eq!(resolve("http://h:1/a/tileset.json?v=1", "./t.glb"), "http://h:1/a/t.glb");
        assert_eq!(resolve("/data/3dbag/tiles/tileset.json", "tile_0.glb"), "/data/3dbag/tiles/tile_0.glb");
        assert_eq!(resolve("/data/x/tileset.json", "https://o/t.glb"), "https://o/t.glb");
    }

    #[test]
    fn obb_distance_hand_computed() {
        let b = Obb::from_aabb(DVec3::new(-10.0, 0.0, -5.0), DVec3::new(10.0, 20.0, 5.0));
        assert_eq!(b.distance(DVec3::new(0.0, 10.0, 0.0)), 0.0);
        assert!((b.distance(DVec3::new(13.0, 24.0, 0.0)) - 5.0).abs() < 1e-12); // 3-4-5
        assert!((b.distance(DVec3::new(0.0, 120.0, 0.0)) - 100.0).abs() < 1e-12);
        // a box rotated 45° about y: the corner direction
        let s = 0.5f64.sqrt();
        let r = Obb { center: DVec3::ZERO, half: [DVec3::new(s, 0.0, s) * 10.0, DVec3::Y * 10.0, DVec3::new(-s, 0.0, s) * 10.0] };
        assert!((r.distance(DVec3::new(20.0, 0.0, 0.0)) - (20.0 - 10.0 * 2f64.sqrt())).abs() < 1e-9);
    }

    fn tileset_with_box(center: [f64; 3], transform: Option<[f64; 16]>) -> Vec<u8> {
        let mut root = serde_json::json!({
            "boundingVolume": {"box": [center[0], center[1], center[2], 100.0, 0, 0, 0, 100.0, 0, 0, 0, 20.0]},
            "geometricError": 10.0, "refine": "REPLACE", "content": {"uri": "0.b3dm"}
        });
        if let Some(t) = transform {
            root["transform"] = serde_json::json!(t);
        }
        serde_json::to_vec(&serde_json::json!({"asset": {"version": "1.0"}, "geometricError": 50.0, "root": root})).unwrap()
    }

    #[test]
    fn projected_crs_volumes_are_rejected_with_the_distance() {
        // Lyon in EPSG:3946 metres (x 1.84e6, y 5.18e6): 5,494 km from the Earth's centre
        let e = Tree::load(&tileset_with_box([1_842_009.1, 5_176_046.7, 258.9], None), "file:///x/tileset.json", "lyon").unwrap_err();
        assert!(e.0.contains("tileset 'lyon'") && e.0.contains("not in ECEF") && e.0.contains("5494.") , "{e}");
        // a local, un-georeferenced tileset (centre at the origin) is rejected too
        assert!(Tree::load(&tileset_with_box([0.0, 0.0, 0.0], None), "t.json", "local").is_err());
        // the same box moved to ECEF by a root transform is accepted
        let p = crate::geodesy::geodetic_to_ecef(123.43, 41.80, 0.0);
        let t = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, p.x, p.y, p.z, 1.0];
        let tree = Tree::load(&tileset_with_box([0.0, 0.0, 0.0], Some(t)), "http://h/t/tileset.json", "ok").unwrap();
        assert_eq!(tree.nodes.len(), 1);
        assert_eq!(tree.nodes[0].content.as_ref().unwrap().url, "http://h/t/0.b3dm");
        assert_eq!(tree.nodes[0].content.as_ref().unwrap().kind, ContentKind::B3dm);
        // the world origin is under the root centre, on its lowest corner
        let c = tree.nodes[0].volume.center;
        assert!(c.x.abs() < 1e-6 && c.z.abs() < 1e-6 && c.y > 0.0, "{c}");
        assert!(tree.nodes[0].volume.corners().iter().all(|k| k.y > -0.01), "no corner below the frame's origin");
    }

    #[test]
    fn a_root_box_with_a_short_region_beside_it_is_read_not_a_panic() {
        // the box is the volume; the region (2 numbers) was indexed [0..4] for the extent before
        let p = crate::geodesy::geodetic_to_ecef(123.43, 41.80, 0.0);
        let doc = serde_json::json!({"asset": {"version": "1.0"}, "geometricError": 1, "root": {
            "boundingVolume": {"box": [p.x, p.y, p.z, 10, 0, 0, 0, 10, 0, 0, 0, 10], "region": [1, 2]}, "geometricError": 1}});
        let tree = Tree::load(&serde_json::to_vec(&doc).unwrap(), "t.json", "both").unwrap();
        assert_eq!(tree.nodes.len(), 1);
        // the extent comes from the box's corners: about ±10 m around 123.43° E, 41.80° N
        let (w, s, e, n) = tree.extent;
        assert!(w < 123.43 && e > 123.43 && s < 41.80 && n > 41.80 && e - w < 0.001, "{:?}", tree.extent);
        // a region alone with 2 numbers is an error naming it
        let doc = serde_json::json!({"asset": {"version": "1.0"}, "root": {"boundingVolume": {"region": [1, 2]}}});
        let e = Tree::load(&serde_json::to_vec(&doc).unwrap(), "t.json", "short").unwrap_err();
        assert!(e.0.contains("boundingVolume.region needs 6 numbers, has 2"), "{e}");
    }

    #[test]
    fn region_volumes_contain_their_corners_in_world() {
        let r = [2.1542f64, 0.7296, 2.1546, 0.7299, 0.0, 80.0];
        let doc = serde_json::json!({"asset": {"version": "1.1"}, "geometricError": 100,
            "root": {"boundingVolume": {"region": r}, "geometricError": 50, "refine": "REPLACE",
                     "children": [{"boundingVolume": {"region": r}, "geometricError": 8, "content": {"uri": "c/a.glb"}}]}});
        let tree = Tree::load(&serde_json::to_vec(&doc).unwrap(), "http://h/a/tileset.json", "sy").unwrap();
        assert_eq!(tree.nodes.len(), 2);
        assert!(tree.nodes[1].replace, "refine is inherited");
        assert_eq!(tree.ground_height, 0.0);
        let v = tree.nodes[0].volume;
        for (lon, lat, h) in [(r[0], r[1], 0.0), (r[2], r[3], 80.0), (r[0], r[3], 40.0), (r[2], r[1], 0.0)] {
            let p = tree.frame.world_of_geodetic(lon.to_degrees(), lat.to_degrees(), h);
            assert!(v.distance(p) < 1e-6, "corner {p} outside the region's box");
        }
        // ~0.0004 rad of longitude at 41.8° ≈ 1.9 km across: the box is not much larger
        let w = v.half[0].length() * 2.0;
        assert!(w > 1800.0 && w < 2000.0, "{w}");
    }
}

#[cfg(test)]
mod seed_tests {
    use super::*;

    /// The committed fuzz seeds of `viewer_tileset` load, so fuzzing starts from inputs that reach
    /// the tree building (the third-party samples, e.g. the EPSG:3946 Lyon one that must be refused
    /// as not ECEF, are added from ../shared/data by scripts/fuzz.sh and tested in viewer/tests/render.rs).
    #[test]
    fn every_viewer_tileset_seed_loads() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/seeds/viewer_tileset");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let r = Tree::load(&std::fs::read(&p).unwrap(), "http://h/t/tileset.json", &name);
            assert!(!r.unwrap_or_else(|e| panic!("{name}: {e}")).nodes.is_empty(), "{name}");
            n += 1;
        }
        assert!(n >= 2);
    }
}
