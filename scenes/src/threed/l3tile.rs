//! L3 content tiles: the buildings of focus districts with roofs and facades (`crate::l3`), or
//! their CityJSON/CityGML solid as is, in REPLACE children of the L2 tiles holding them. Every
//! building of a refined L2 tile is present in its L3 children (REPLACE hides the L2 tile): a
//! building outside the focus districts, or one whose L3 geometry fails, is written as its L2
//! block (with flat normals) and keeps `level` 2 in the property table.

use super::l2::{self, MeshBuf};
use crate::geodesy::Enu;
use crate::l3::{self, facade::FacadeVariant, LocalFrame, Material};
use crate::model::{Building, CityModel, Solid3d, SurfaceKind};
use serde::{Deserialize, Serialize};

/// Which buildings get L3 tiles.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum L3Districts {
    /// No L3 tiles.
    #[default]
    None,
    /// Every building (ingested CIM data, tests).
    All,
    /// Districts by name (Chinese or English) or adcode.
    Districts(Vec<String>),
}

impl L3Districts {
    /// The built-in city's focus districts: 和平区 and 沈河区 (the centre).
    pub fn builtin_default() -> Self {
        L3Districts::Districts(vec!["和平区".into(), "沈河区".into()])
    }

    /// `all`, `none`, or a comma-separated list of district names / adcodes.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "all" => return Ok(L3Districts::All),
            "none" | "" => return Ok(L3Districts::None),
            _ => {}
        }
        let v: Vec<String> = t.split([',', '，']).map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect();
        if v.is_empty() {
            return Err(format!("--l3-districts {s:?}: no district given (use names, adcodes, `all` or `none`)"));
        }
        Ok(L3Districts::Districts(v))
    }

    /// One flag per building: does it get L3? Errors name a district that the model lacks.
    pub fn focus(&self, model: &CityModel) -> Result<Vec<bool>, String> {
        Ok(match self.district_mask(model)? {
            None => vec![true; model.buildings.len()],
            Some(chosen) => model.buildings.iter().map(|b| b.district.is_some_and(|d| chosen.get(d as usize).copied().unwrap_or(false))).collect(),
        })
    }

    /// One flag per district (`None`: everything is in focus).
    pub fn district_mask(&self, model: &CityModel) -> Result<Option<Vec<bool>>, String> {
        match self {
            L3Districts::None => Ok(Some(vec![false; model.districts.len()])),
            L3Districts::All => Ok(None),
            L3Districts::Districts(names) => {
                let mut chosen = vec![false; model.districts.len()];
                for n in names {
                    let hits: Vec<usize> = model
                        .districts
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| {
                            d.names.zh.as_deref() == Some(n.as_str())
                                || d.names.en.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(n))
                                || (d.adcode != 0 && d.adcode.to_string() == *n)
                        })
                        .map(|(i, _)| i)
                        .collect();
                    if hits.is_empty() {
                        let known: Vec<String> = model
                            .districts
                            .iter()
                            .map(|d| d.names.zh.clone().or_else(|| d.names.en.clone()).unwrap_or_else(|| d.adcode.to_string()))
                            .collect();
                        return Err(format!(
                            "--l3-districts: no district named {n:?} in the model (known: {})",
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ));
                    }
                    for i in hits {
                        chosen[i] = true;
                    }
                }
                Ok(Some(chosen))
            }
        }
    }
}

/// A named theme area (好系列 …) whose buildings and trees get L3 like a focus district:
/// `NAME=west,south,east,north` in WGS-84 degrees (CLI `--l3-area`). A building belongs to it when
/// its footprint centroid lies inside the box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L3Area {
    pub name: String,
    /// [west, south, east, north] degrees
    pub bbox: [f64; 4],
}

impl L3Area {
    /// `NAME=w,s,e,n`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, rest) = s.split_once('=').ok_or_else(|| format!("--l3-area {s:?}: expected NAME=west,south,east,north"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("--l3-area {s:?}: the area needs a name"));
        }
        let v: Vec<f64> = rest
            .split(',')
            .map(|x| x.trim().parse::<f64>().map_err(|_| format!("--l3-area {s:?}: {x:?} is not a number")))
            .collect::<Result<_, _>>()?;
        let [w, so, e, n] = v[..] else {
            return Err(format!("--l3-area {s:?}: expected 4 numbers west,south,east,north, got {}", v.len()));
        };
        if !(v.iter().all(|x| x.is_finite()) && (-180.0..=180.0).contains(&w) && (-180.0..=180.0).contains(&e) && (-90.0..=90.0).contains(&so) && (-90.0..=90.0).contains(&n)) {
            return Err(format!("--l3-area {s:?}: longitudes must lie in [-180, 180] and latitudes in [-90, 90]"));
        }
        if !(w < e && so < n) {
            return Err(format!("--l3-area {s:?}: west must be < east and south < north"));
        }
        Ok(L3Area { name: name.to_string(), bbox: [w, so, e, n] })
    }

    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        lon >= self.bbox[0] && lon <= self.bbox[2] && lat >= self.bbox[1] && lat <= self.bbox[3]
    }

    /// The built-in city's theme area: 好游玩 · 北陵公园 (清昭陵) and its surroundings — the
    /// generator's park (centre 123.4250° E, 41.8400° N, semi-axes 850 m × 1,100 m) plus 300 m
    /// on every side: 123.4111–123.4389° E, 41.8273–41.8527° N.
    pub fn builtin_default() -> Vec<L3Area> {
        vec![L3Area { name: "好游玩·北陵公园".into(), bbox: [123.4111, 41.8273, 123.4389, 41.8527] }]
    }
}

/// Primitive slots of an L3 tile: roof, wall, then window_facade once per facade variant
/// (`WINDOW_FACADE + FacadeVariant::ALL` index), each with its own repeating texture.
pub const ROOF: usize = 0;
pub const WALL: usize = 1;
pub const WINDOW_FACADE: usize = 2;
pub const SLOTS: usize = 6;
pub const MATERIAL_NAMES: [&str; SLOTS] = ["roof", "wall", "window_facade", "window_facade", "window_facade", "window_facade"];

/// The facade variant of slot `k` (`None` for roof and wall).
pub fn slot_variant(k: usize) -> Option<FacadeVariant> {
    k.checked_sub(WINDOW_FACADE).and_then(|i| FacadeVariant::ALL.get(i).copied())
}

/// The facade textures (PNG), drawn once per process.
pub fn facade_pngs() -> &'static [Vec<u8>; 4] {
    static PNGS: std::sync::OnceLock<[Vec<u8>; 4]> = std::sync::OnceLock::new();
    PNGS.get_or_init(|| FacadeVariant::ALL.map(crate::l3::facade::facade_png))
}

/// Per-tile buffers (see the slots above), all with normals, and UVs (used by the facades).
#[derive(Debug, Default)]
pub struct L3Bufs {
    pub bufs: [MeshBuf; SLOTS],
    pub uvs: [Vec<[f32; 2]>; SLOTS],
    /// [west, south, east, north] degrees, [min h, max h]
    pub region: [f64; 6],
}

impl L3Bufs {
    pub fn new() -> Self {
        L3Bufs { region: [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY], ..Default::default() }
    }
    fn grow(&mut self, lon: f64, lat: f64, h: f64) {
        let r = &mut self.region;
        *r = [r[0].min(lon), r[1].min(lat), r[2].max(lon), r[3].max(lat), r[4].min(h), r[5].max(h)];
    }
    /// Pads UV lists to the vertex counts (fallback blocks and solids have no UVs).
    fn pad_uvs(&mut self) {
        for k in 0..SLOTS {
            let n = self.bufs[k].positions.len();
            self.uvs[k].resize(n, [0.0, 0.0]);
        }
    }
}

/// What became of one building in an L3 tile.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Generated roof and facades.
    Generated,
    /// The source's solid, triangulated.
    Solid,
    /// Its L2 block: not in a focus district.
    Block,
    /// Its L2 block because L3 failed (reason).
    Fallback(String),
}

/// Appends building `b` (prepared block `p`) to `out` in `frame` (glTF y-up) as feature `fid`.
#[allow(clippy::too_many_arguments)]
pub fn append_building(
    b: &Building,
    p: &l2::Prepared,
    focus: bool,
    base: f64,
    frame: &Enu,
    fid: u32,
    ex: &mut l2::Extruder,
    out: &mut L3Bufs,
) -> Outcome {
    let outcome = if !focus {
        Outcome::Block
    } else if let Some(s) = &b.solid {
        match append_solid(b, s, base, frame, fid, out) {
            Ok(()) => Outcome::Solid,
            Err(e) => Outcome::Fallback(e),
        }
    } else {
        let lf = LocalFrame::new(p.centroid[0], p.centroid[1]);
        match l3::building_mesh(b, &lf, base) {
            Ok(m) => {
                append_mesh(&m.mesh, FacadeVariant::for_use(b.use_), &lf, frame, fid, out);
                Outcome::Generated
            }
            Err(e) => Outcome::Fallback(e),
        }
    };
    if matches!(outcome, Outcome::Block | Outcome::Fallback(_)) {
        out.pad_uvs();
        ex.extrude(p, base, frame, fid, &mut out.bufs[WALL]);
        out.grow(p.bbox[0], p.bbox[1], base + p.bottom);
        out.grow(p.bbox[2], p.bbox[3], base + p.top);
        out.pad_uvs();
    }
    outcome
}

fn slot(m: Material, v: FacadeVariant) -> Option<usize> {
    match m {
        Material::Roof => Some(ROOF),
        Material::Wall | Material::Ground => Some(WALL),
        Material::WindowFacade => Some(WINDOW_FACADE + FacadeVariant::ALL.iter().position(|x| *x == v).unwrap_or(0)),
        Material::TreeCrown | Material::TreeTrunk => None,
    }
}

fn append_mesh(mesh: &l3::Mesh, variant: FacadeVariant, lf: &LocalFrame, frame: &Enu, fid: u32, out: &mut L3Bufs) {
    out.pad_uvs();
    for (m, g) in &mesh.groups {
        let Some(k) = slot(*m, variant) else { continue };
        let v0 = out.bufs[k].positions.len() as u32;
        for ((p, n), uv) in g.positions.iter().zip(&g.normals).zip(&g.uvs) {
            let (lon, lat) = lf.to_lonlat(p[0] as f64, p[1] as f64);
            let h = p[2] as f64;
            let e = frame.from_geodetic(lon, lat, h);
            out.grow(lon, lat, h);
            let buf = &mut out.bufs[k];
            buf.positions.push([e[0] as f32, e[2] as f32, (-e[1]) as f32]);
            buf.normals.push([n[0], n[2], -n[1]]);
            buf.feature_ids.push(fid);
            out.uvs[k].push(*uv);
        }
        out.bufs[k].indices.extend(g.indices.iter().map(|i| v0 + i));
    }
}

/// Triangulates the solid's surfaces (earcut in each surface's plane, holes kept) into `out`.
/// The solid is placed with its lowest point at `base + min_height` (as the L2 block).
fn append_solid(b: &Building, s: &Solid3d, base: f64, frame: &Enu, fid: u32, out: &mut L3Bufs) -> Result<(), String> {
    let umin = s.surfaces.iter().flat_map(|f| f.rings.iter().flatten()).map(|v| v[2] as f64).fold(f64::INFINITY, f64::min);
    if !umin.is_finite() {
        return Err("solid has no vertices".into());
    }
    let anchor = Enu::new(s.anchor[0], s.anchor[1], 0.0);
    let dz = base + b.min_height as f64 - umin;
    let mut ec = earcut::Earcut::<f64>::default();
    let (mut flat, mut holes, mut tri): (Vec<[f64; 2]>, Vec<u32>, Vec<u32>) = (vec![], vec![], vec![]);
    let mut added = 0usize;
    out.pad_uvs();
    let starts: [(usize, usize); 3] = std::array::from_fn(|k| (out.bufs[k].positions.len(), out.bufs[k].indices.len()));
    for surf in &s.surfaces {
        let k = match surf.kind {
            SurfaceKind::Roof | SurfaceKind::OuterCeiling => ROOF,
            _ => WALL,
        };
        let Some(ext) = surf.rings.first() else { continue };
        // Newell normal of the exterior ring
        let mut n = [0.0f64; 3];
        for (i, a) in ext.iter().enumerate() {
            let c = ext[(i + 1) % ext.len()];
            let (a, c) = (a.map(|x| x as f64), c.map(|x| x as f64));
            n[0] += (a[1] - c[1]) * (a[2] + c[2]);
            n[1] += (a[2] - c[2]) * (a[0] + c[0]);
            n[2] += (a[0] - c[0]) * (a[1] + c[1]);
        }
        let l = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        if l.is_nan() || l <= 1e-9 || ext.len() < 3 {
            continue;
        }
        let n = [n[0] / l, n[1] / l, n[2] / l];
        // a plane basis (u, v) with u × v = n
        let t = if n[0].abs() < 0.9 { [1.0, 0.0, 0.0] } else { [0.0, 1.0, 0.0] };
        let u = normalize(cross(t, n));
        let v = cross(n, u);
        flat.clear();
        holes.clear();
        let mut pts: Vec<[f64; 3]> = Vec::new();
        for (ri, r) in surf.rings.iter().enumerate() {
            // drop a repeated closing vertex
            let r: &[[f32; 3]] = if r.len() > 1 && r.first() == r.last() { &r[..r.len() - 1] } else { r };
            if ri > 0 {
                holes.push(flat.len() as u32);
            }
            for q in r {
                let q = q.map(|x| x as f64);
                flat.push([dot(q, u), dot(q, v)]);
                pts.push(q);
            }
        }
        ec.earcut(flat.iter().copied(), &holes, &mut tri);
        if tri.is_empty() {
            continue;
        }
        let gn = [n[0] as f32, n[2] as f32, (-n[1]) as f32];
        let v0 = out.bufs[k].positions.len() as u32;
        for q in &pts {
            let (lon, lat, h) = anchor.to_geodetic(q[0], q[1], q[2] + dz);
            let e = frame.from_geodetic(lon, lat, h);
            out.grow(lon, lat, h);
            let buf = &mut out.bufs[k];
            buf.positions.push([e[0] as f32, e[2] as f32, (-e[1]) as f32]);
            buf.normals.push(gn);
            buf.feature_ids.push(fid);
            out.uvs[k].push([0.0, 0.0]);
        }
        for t3 in tri.chunks_exact(3) {
            let (a, bb, c) = (flat[t3[0] as usize], flat[t3[1] as usize], flat[t3[2] as usize]);
            // counter-clockwise in the (u, v) plane = counter-clockwise seen along -n (outside)
            let cr = (bb[0] - a[0]) * (c[1] - a[1]) - (bb[1] - a[1]) * (c[0] - a[0]);
            let (i1, i2) = if cr >= 0.0 { (t3[1], t3[2]) } else { (t3[2], t3[1]) };
            out.bufs[k].indices.extend_from_slice(&[v0 + t3[0], v0 + i1, v0 + i2]);
            added += 1;
        }
    }
    if added == 0 {
        return Err("solid has no surface that can be triangulated".into());
    }
    // A solid whose rings are clockwise seen from outside (negative signed volume) is turned
    // inside out as a whole, so that clients cull the right faces.
    let mut vol = 0.0f64;
    for (k, &(_, i0)) in starts.iter().enumerate() {
        let b = &out.bufs[k];
        for t in b.indices[i0..].chunks_exact(3) {
            let [a, bb, c] = [t[0], t[1], t[2]].map(|i| b.positions[i as usize].map(|x| x as f64));
            vol += dot(a, cross(bb, c)) / 6.0;
        }
    }
    if vol < 0.0 {
        for (k, &(v0, i0)) in starts.iter().enumerate() {
            let b = &mut out.bufs[k];
            for t in b.indices[i0..].chunks_exact_mut(3) {
                t.swap(1, 2);
            }
            for n in &mut b.normals[v0..] {
                *n = n.map(|x| -x);
            }
        }
    }
    Ok(())
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn normalize(a: [f64; 3]) -> [f64; 3] {
    let l = dot(a, a).sqrt().max(1e-30);
    [a[0] / l, a[1] / l, a[2] / l]
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::{BuildingUse, SourceRef, Surface};
    use geo_types::{polygon, MultiPolygon};

    /// A 10 × 10 × 6 m box solid (anchor on the ground), each face a quad; `cw` reverses every
    /// ring (clockwise from outside, as some sources write them).
    fn box_building(cw: bool) -> (Building, l2::Prepared) {
        let (lon, lat) = (123.43, 41.80);
        let (mx, my) = crate::geodesy::metres_per_degree(lat);
        let (dx, dy) = (10.0 / mx, 10.0 / my);
        let mut b = Building::block(
            SourceRef { source: 0, id: "box".into() },
            MultiPolygon(vec![polygon![(x: lon, y: lat), (x: lon + dx, y: lat), (x: lon + dx, y: lat + dy), (x: lon, y: lat + dy)]]),
            6.0,
            BuildingUse::Residential,
        );
        let c = |x: f32, y: f32, z: f32| [x, y, z];
        let quads: Vec<(SurfaceKind, Vec<[f32; 3]>)> = vec![
            (SurfaceKind::Ground, vec![c(0., 0., 0.), c(0., 10., 0.), c(10., 10., 0.), c(10., 0., 0.)]),
            (SurfaceKind::Roof, vec![c(0., 0., 6.), c(10., 0., 6.), c(10., 10., 6.), c(0., 10., 6.)]),
            (SurfaceKind::Wall, vec![c(0., 0., 0.), c(10., 0., 0.), c(10., 0., 6.), c(0., 0., 6.)]),
            (SurfaceKind::Wall, vec![c(10., 0., 0.), c(10., 10., 0.), c(10., 10., 6.), c(10., 0., 6.)]),
            (SurfaceKind::Wall, vec![c(10., 10., 0.), c(0., 10., 0.), c(0., 10., 6.), c(10., 10., 6.)]),
            (SurfaceKind::Wall, vec![c(0., 10., 0.), c(0., 0., 0.), c(0., 0., 6.), c(0., 10., 6.)]),
        ];
        b.solid = Some(Solid3d {
            lod: 2.0,
            anchor: [lon, lat, 3.0],
            surfaces: quads
                .into_iter()
                .map(|(kind, mut r)| {
                    if cw {
                        r.reverse();
                    }
                    Surface { kind, rings: vec![r], appearance: None }
                })
                .collect(),
            textures: vec![],
        });
        let p = l2::prepare(&b).unwrap();
        (b, p)
    }

    #[test]
    fn solids_are_triangulated_outward_and_placed_on_the_base() {
        for cw in [false, true] {
            let (b, p) = box_building(cw);
            let frame = Enu::new(123.43, 41.80, 0.0);
            let mut out = L3Bufs::new();
            let mut ex = l2::Extruder::new(true);
            assert_eq!(append_building(&b, &p, true, 0.0, &frame, 0, &mut ex, &mut out), Outcome::Solid);
            // 6 quads → 12 triangles: 2 roof, 10 wall (walls + ground)
            assert_eq!((out.bufs[ROOF].indices.len() / 3, out.bufs[WALL].indices.len() / 3), (2, 10));
            // signed volume over both primitives = 600 m³ (outward), in glTF coordinates
            let mut vol = 0.0;
            for k in [ROOF, WALL] {
                let bf = &out.bufs[k];
                for t in bf.indices.chunks_exact(3) {
                    let [a, bb, c] = [t[0], t[1], t[2]].map(|i| bf.positions[i as usize].map(|x| x as f64));
                    vol += dot(a, cross(bb, c)) / 6.0;
                }
            }
            assert!((vol - 600.0).abs() < 0.5, "cw {cw}: volume {vol}");
            // roof normals point up (glTF +y); the solid stands on the base (anchor h ignored)
            assert!(out.bufs[ROOF].normals.iter().all(|n| n[1] > 0.99), "cw {cw}");
            assert!(out.region[4].abs() < 1e-3 && (out.region[5] - 6.0).abs() < 1e-3, "{:?}", out.region);
        }
    }

    #[test]
    fn parse_district_lists() {
        assert_eq!(L3Districts::parse("all").unwrap(), L3Districts::All);
        assert_eq!(L3Districts::parse("none").unwrap(), L3Districts::None);
        assert_eq!(
            L3Districts::parse("和平区, 沈河区，210103").unwrap(),
            L3Districts::Districts(vec!["和平区".into(), "沈河区".into(), "210103".into()])
        );
        assert!(L3Districts::parse(" , ").is_err());
    }
}

/// The unit tree (1 m tall, `l3::trees::unit_tree`) as glTF primitives (y up): crown, trunk.
pub fn unit_tree_gltf() -> Vec<(Material, MeshBuf)> {
    let m = l3::trees::unit_tree();
    m.groups
        .iter()
        .map(|(mat, g)| {
            let buf = MeshBuf {
                positions: g.positions.iter().map(|p| [p[0], p[2], -p[1]]).collect(),
                feature_ids: vec![0; g.positions.len()],
                indices: g.indices.clone(),
                normals: g.normals.iter().map(|n| [n[0], n[2], -n[1]]).collect(),
            };
            (*mat, buf)
        })
        .collect()
}

/// glTF instance rotation (about +y, the up axis) for a heading counter-clockwise from east.
pub fn heading_quaternion(heading: f64) -> [f32; 4] {
    [0.0, (heading / 2.0).sin() as f32, 0.0, (heading / 2.0).cos() as f32]
}
