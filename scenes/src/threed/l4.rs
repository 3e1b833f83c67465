//! L4 content: one tile per key building (`Level::L4`) with its full geometry — a CityGML /
//! CityJSON solid with its semantic surfaces and appearances (textures with their texture
//! coordinates, X3DMaterial colours), a placed glTF/GLB with its own materials and images, or
//! a placed IFC's walls, slabs and roofs (extruded solids and faceted breps, one material per
//! class: IFC carries no textures; openings are not cut).
//!
//! Semantics are kept as **one material per surface class** (and per texture / colour within a
//! class): materials are named `wall`, `roof`, `ground`, `window`, `door`, `outer_ceiling`,
//! `outer_floor`, `other` (suffixed `:<texture file>` when textured), so a client can tell a
//! window from a wall by the primitive it picks. `ClosureSurface`s (virtual) are not drawn. A
//! placed glTF keeps its own materials and names (its file has no surface classes). All L4
//! materials are double-sided: LoD3 exports do not guarantee the orientation of every surface.

use crate::geodesy::Enu;
use crate::model::{Building, CimFormat, CityModel, Solid3d, SurfaceKind};
use std::collections::BTreeMap;
use std::path::Path;
use tiles::gltf;

/// The glTF pieces of one key building in a tile frame (glTF y-up), feature id 0.
#[derive(Debug, Default)]
pub struct L4Parts {
    pub materials: Vec<gltf::Material>,
    pub primitives: Vec<gltf::Primitive>,
    pub images: Vec<Vec<u8>>,
    /// [west, south, east, north] degrees, [min h, max h]
    pub region: [f64; 6],
    /// Textures of the source that could not be read (left untextured).
    pub unreadable_textures: Vec<String>,
}

impl L4Parts {
    fn new() -> Self {
        L4Parts { region: [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY], ..Default::default() }
    }
    fn grow(&mut self, lon: f64, lat: f64, h: f64) {
        let r = &mut self.region;
        *r = [r[0].min(lon), r[1].min(lat), r[2].max(lon), r[3].max(lat), r[4].min(h), r[5].max(h)];
    }
    pub fn triangles(&self) -> u64 {
        self.primitives.iter().map(|p| p.indices.len() as u64 / 3).sum()
    }
}

/// Name of a surface class (as in docs/MODEL.md).
pub fn kind_name(k: SurfaceKind) -> &'static str {
    match k {
        SurfaceKind::Ground => "ground",
        SurfaceKind::Wall => "wall",
        SurfaceKind::Roof => "roof",
        SurfaceKind::Closure => "closure",
        SurfaceKind::OuterCeiling => "outer_ceiling",
        SurfaceKind::OuterFloor => "outer_floor",
        SurfaceKind::Window => "window",
        SurfaceKind::Door => "door",
        SurfaceKind::Other => "other",
    }
}

/// Default colour of an untextured, uncoloured surface class (linear RGBA).
fn class_colour(k: SurfaceKind) -> [f32; 4] {
    match k {
        SurfaceKind::Roof | SurfaceKind::OuterCeiling => [0.55, 0.28, 0.22, 1.0],
        SurfaceKind::Window => [0.30, 0.42, 0.55, 1.0],
        SurfaceKind::Door => [0.42, 0.28, 0.18, 1.0],
        SurfaceKind::Ground | SurfaceKind::OuterFloor => [0.45, 0.45, 0.45, 1.0],
        _ => [0.85, 0.82, 0.75, 1.0],
    }
}

/// Can `b` get an L4 tile? Key buildings with a solid or a placed glTF model.
pub fn is_key(model: &CityModel, b: &Building) -> bool {
    use crate::model::Level;
    if b.level != Level::L4 {
        return false;
    }
    b.solid.is_some() || b.cim_model.and_then(|c| model.cim_models.get(c as usize)).is_some_and(|c| matches!(c.format, CimFormat::Gltf | CimFormat::Ifc))
}

/// Builds the L4 geometry of key building `b` standing on `base` (its lowest point at
/// `base + min_height`, as its block) in `frame`. `model_dir` resolves placed models' paths.
pub fn building_parts(model: &CityModel, b: &Building, base: f64, frame: &Enu, model_dir: &Path) -> Result<L4Parts, String> {
    if let Some(s) = &b.solid {
        return solid_parts(b, s, base, frame);
    }
    let Some(c) = b.cim_model.and_then(|c| model.cim_models.get(c as usize)) else {
        return Err("no 3D geometry (neither a solid nor a placed model)".into());
    };
    match c.format {
        CimFormat::Gltf => {
            let p = model_dir.join(&c.path);
            let path = if p.is_file() { p } else { std::path::PathBuf::from(&c.path) };
            let mesh = crate::cim::placed::gltf::read_mesh(&path, &c.path).map_err(|e| e.to_string())?;
            gltf_parts(&mesh, &c.placement, b.min_height as f64 + base, frame)
        }
        CimFormat::Ifc => {
            let p = model_dir.join(&c.path);
            let path = if p.is_file() { p } else { std::path::PathBuf::from(&c.path) };
            let local = crate::cim::placed::ifc::read(&path, &c.path, &mut crate::report::BuildReport::default()).map_err(|e| e.to_string())?;
            if local.mesh.is_empty() {
                return Err("the IFC has no wall, slab or roof geometry that can be meshed".into());
            }
            ifc_parts(&local.mesh, &c.placement, b.min_height as f64 + base, frame)
        }
        f => Err(format!("{f:?} models are not meshed for L4 (shown by their L3/L2 representation)")),
    }
}

/// IFC walls / slabs / roofs (triangles per class, local ENU) → one material per class.
fn ifc_parts(mesh: &[(SurfaceKind, Vec<[[f64; 3]; 3]>)], pl: &crate::model::Placement, ground: f64, frame: &Enu) -> Result<L4Parts, String> {
    let zmin = mesh
        .iter()
        .flat_map(|(_, t)| t.iter().flatten())
        .map(|v| crate::cim::placed::place_point(pl, *v)[2])
        .fold(f64::INFINITY, f64::min);
    if !zmin.is_finite() {
        return Err("the IFC mesh has no vertices".into());
    }
    let anchor = Enu::new(pl.lon, pl.lat, 0.0);
    let mut out = L4Parts::new();
    let mut by_class: BTreeMap<u8, (SurfaceKind, gltf::Primitive)> = BTreeMap::new();
    for (kind, tris) in mesh {
        let (_, prim) = by_class.entry(*kind as u8).or_insert_with(|| (*kind, gltf::Primitive::default()));
        for t in tris {
            let v0 = prim.positions.len() as u32;
            let q: Vec<[f64; 3]> = t.iter().map(|v| crate::cim::placed::place_point(pl, *v)).collect();
            // flat normal of the triangle
            let (a, b, c) = (q[0], q[1], q[2]);
            let n = cross([b[0] - a[0], b[1] - a[1], b[2] - a[2]], [c[0] - a[0], c[1] - a[1], c[2] - a[2]]);
            let l = dot(n, n).sqrt();
            if l.is_nan() || l <= 1e-12 {
                continue;
            }
            let gn = [(n[0] / l) as f32, (n[2] / l) as f32, (-n[1] / l) as f32];
            for p in &q {
                let (lon, lat, h) = anchor.to_geodetic(p[0], p[1], p[2] - zmin + ground);
                let e = frame.from_geodetic(lon, lat, h);
                out.grow(lon, lat, h);
                prim.positions.push([e[0] as f32, e[2] as f32, (-e[1]) as f32]);
                prim.normals.push(gn);
                prim.feature_ids.push(0);
            }
            prim.indices.extend_from_slice(&[v0, v0 + 1, v0 + 2]);
        }
    }
    for (_, (kind, mut prim)) in by_class {
        if prim.indices.is_empty() {
            continue;
        }
        out.materials.push(gltf::Material { name: kind_name(kind).into(), base_color: class_colour(kind), metallic: 0.0, roughness: 0.9, texture: None, double_sided: true });
        prim.material = out.materials.len() - 1;
        out.primitives.push(prim);
    }
    if out.primitives.is_empty() {
        return Err("the IFC mesh has only degenerate triangles".into());
    }
    Ok(out)
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Material key of a surface: class, texture, colour (quantised).
type MatKey = (u8, Option<u32>, Option<[u8; 4]>);

fn solid_parts(b: &Building, s: &Solid3d, base: f64, frame: &Enu) -> Result<L4Parts, String> {
    let umin = s.surfaces.iter().flat_map(|f| f.rings.iter().flatten()).map(|v| v[2] as f64).fold(f64::INFINITY, f64::min);
    if !umin.is_finite() {
        return Err("solid has no vertices".into());
    }
    let mut out = L4Parts::new();
    // textures: read once; unreadable ones leave their surfaces untextured
    let mut tex_image: Vec<Option<usize>> = Vec::with_capacity(s.textures.len());
    for t in &s.textures {
        match std::fs::read(t) {
            Ok(d) if d.starts_with(&[0xFF, 0xD8]) || d.starts_with(&[0x89, b'P', b'N', b'G']) => {
                out.images.push(d);
                tex_image.push(Some(out.images.len() - 1));
            }
            _ => {
                out.unreadable_textures.push(t.clone());
                tex_image.push(None);
            }
        }
    }
    let anchor = Enu::new(s.anchor[0], s.anchor[1], 0.0);
    let dz = base + b.min_height as f64 - umin;
    let mut prims: BTreeMap<MatKey, gltf::Primitive> = BTreeMap::new();
    let mut ec = earcut::Earcut::<f64>::default();
    let (mut flat, mut holes, mut tri): (Vec<[f64; 2]>, Vec<u32>, Vec<u32>) = (vec![], vec![], vec![]);
    let mut degenerate = 0usize;
    for surf in &s.surfaces {
        if surf.kind == SurfaceKind::Closure {
            continue;
        }
        let Some(ext) = surf.rings.first() else { continue };
        let mut n = [0.0f64; 3];
        for (i, a) in ext.iter().enumerate() {
            let c = ext[(i + 1) % ext.len()];
            let (a, c) = (a.map(|x| x as f64), c.map(|x| x as f64));
            n[0] += (a[1] - c[1]) * (a[2] + c[2]);
            n[1] += (a[2] - c[2]) * (a[0] + c[0]);
            n[2] += (a[0] - c[0]) * (a[1] + c[1]);
        }
        let l = dot(n, n).sqrt();
        if l.is_nan() || l <= 1e-9 || ext.len() < 3 {
            degenerate += 1;
            continue;
        }
        let n = [n[0] / l, n[1] / l, n[2] / l];
        let t = if n[0].abs() < 0.9 { [1.0, 0.0, 0.0] } else { [0.0, 1.0, 0.0] };
        let u = cross(t, n);
        let ul = dot(u, u).sqrt();
        let u = [u[0] / ul, u[1] / ul, u[2] / ul];
        let v = cross(n, u);
        let app = surf.appearance.as_ref();
        let tex = app.and_then(|a| a.texture).filter(|&t| tex_image.get(t as usize).copied().flatten().is_some());
        let uv_rings = app.filter(|_| tex.is_some()).map(|a| &a.uvs);
        flat.clear();
        holes.clear();
        let mut pts: Vec<[f64; 3]> = Vec::new();
        let mut uvs: Vec<[f32; 2]> = Vec::new();
        for (ri, r) in surf.rings.iter().enumerate() {
            let closed = r.len() > 1 && r.first() == r.last();
            let r: &[[f32; 3]] = if closed { &r[..r.len() - 1] } else { r };
            if ri > 0 {
                holes.push(flat.len() as u32);
            }
            for (vi, q) in r.iter().enumerate() {
                let q = q.map(|x| x as f64);
                flat.push([dot(q, u), dot(q, v)]);
                pts.push(q);
                if let Some(rings) = uv_rings {
                    // CityGML texture coordinates have v up; glTF's v runs down the image
                    let c = rings.get(ri).and_then(|x| x.get(vi)).copied().unwrap_or([0.0, 0.0]);
                    uvs.push([c[0], 1.0 - c[1]]);
                }
            }
        }
        ec.earcut(flat.iter().copied(), &holes, &mut tri);
        if tri.is_empty() {
            degenerate += 1;
            continue;
        }
        let colour = app.and_then(|a| a.colour).map(|c| c.map(|x| (x.clamp(0.0, 1.0) * 255.0).round() as u8));
        let key: MatKey = (surf.kind as u8, tex, if tex.is_some() { None } else { colour });
        let prim = prims.entry(key).or_default();
        let gn = [n[0] as f32, n[2] as f32, (-n[1]) as f32];
        let v0 = prim.positions.len() as u32;
        for q in &pts {
            let (lon, lat, h) = anchor.to_geodetic(q[0], q[1], q[2] + dz);
            let e = frame.from_geodetic(lon, lat, h);
            out.grow(lon, lat, h);
            prim.positions.push([e[0] as f32, e[2] as f32, (-e[1]) as f32]);
            prim.normals.push(gn);
            prim.feature_ids.push(0);
        }
        prim.uvs.extend_from_slice(&uvs);
        for t3 in tri.chunks_exact(3) {
            let (a, bb, c) = (flat[t3[0] as usize], flat[t3[1] as usize], flat[t3[2] as usize]);
            let cr = (bb[0] - a[0]) * (c[1] - a[1]) - (bb[1] - a[1]) * (c[0] - a[0]);
            let (i1, i2) = if cr >= 0.0 { (t3[1], t3[2]) } else { (t3[2], t3[1]) };
            prim.indices.extend_from_slice(&[v0 + t3[0], v0 + i1, v0 + i2]);
        }
    }
    if prims.is_empty() {
        return Err(format!("no surface of the solid can be triangulated ({degenerate} degenerate)"));
    }
    const KINDS: [SurfaceKind; 9] = [
        SurfaceKind::Ground,
        SurfaceKind::Wall,
        SurfaceKind::Roof,
        SurfaceKind::Closure,
        SurfaceKind::OuterCeiling,
        SurfaceKind::OuterFloor,
        SurfaceKind::Window,
        SurfaceKind::Door,
        SurfaceKind::Other,
    ];
    for ((k, tex, colour), mut prim) in prims {
        let kind = KINDS[k as usize];
        let (name, base_color, texture) = match tex {
            Some(t) => {
                let file = Path::new(&s.textures[t as usize]).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                (format!("{}:{file}", kind_name(kind)), [1.0, 1.0, 1.0, 1.0], tex_image[t as usize])
            }
            None => {
                prim.uvs.clear();
                (kind_name(kind).to_string(), colour.map(|c| c.map(|x| x as f32 / 255.0)).unwrap_or(class_colour(kind)), None)
            }
        };
        out.materials.push(gltf::Material { name, base_color, metallic: 0.0, roughness: 0.9, texture, double_sided: true });
        prim.material = out.materials.len() - 1;
        out.primitives.push(prim);
    }
    Ok(out)
}

fn gltf_parts(mesh: &crate::cim::placed::gltf::MeshModel, pl: &crate::model::Placement, ground: f64, frame: &Enu) -> Result<L4Parts, String> {
    let mut out = L4Parts::new();
    out.images = mesh.images.clone();
    let zmin = mesh
        .primitives
        .iter()
        .flat_map(|p| p.positions.iter())
        .map(|v| crate::cim::placed::place_point(pl, *v)[2])
        .fold(f64::INFINITY, f64::min);
    if !zmin.is_finite() {
        return Err("the glTF model has no triangles".into());
    }
    let anchor = Enu::new(pl.lon, pl.lat, 0.0);
    // one primitive per source material (None = default material)
    let mut by_mat: BTreeMap<Option<usize>, gltf::Primitive> = BTreeMap::new();
    for p in &mesh.primitives {
        if p.indices.is_empty() {
            continue;
        }
        let prim = by_mat.entry(p.material).or_default();
        let v0 = prim.positions.len() as u32;
        for v in &p.positions {
            let q = crate::cim::placed::place_point(pl, *v);
            let (lon, lat, h) = anchor.to_geodetic(q[0], q[1], q[2] - zmin + ground);
            let e = frame.from_geodetic(lon, lat, h);
            out.grow(lon, lat, h);
            prim.positions.push([e[0] as f32, e[2] as f32, (-e[1]) as f32]);
            prim.feature_ids.push(0);
        }
        prim.uvs.extend_from_slice(&p.uvs);
        prim.indices.extend(p.indices.iter().map(|i| v0 + i));
    }
    for (m, mut prim) in by_mat {
        let mat = match m.and_then(|m| mesh.materials.get(m)) {
            Some(mm) => gltf::Material {
                name: if mm.name.is_empty() { "material".into() } else { mm.name.clone() },
                base_color: mm.base_color,
                metallic: mm.metallic,
                roughness: mm.roughness,
                texture: mm.texture.filter(|_| prim.uvs.len() == prim.positions.len()),
                double_sided: true,
            },
            None => gltf::Material { name: "default".into(), base_color: [0.8, 0.8, 0.8, 1.0], metallic: 0.0, roughness: 0.9, texture: None, double_sided: true },
        };
        if mat.texture.is_none() {
            prim.uvs.clear();
        }
        out.materials.push(mat);
        prim.material = out.materials.len() - 1;
        out.primitives.push(prim);
    }
    // keep only the images some material uses (renumbered)
    let mut used: Vec<usize> = out.materials.iter().filter_map(|m| m.texture).collect();
    used.sort_unstable();
    used.dedup();
    let images = std::mem::take(&mut out.images);
    for m in out.materials.iter_mut() {
        m.texture = m.texture.and_then(|t| used.iter().position(|u| *u == t));
    }
    out.images = used.iter().map(|&i| images[i].clone()).collect();
    Ok(out)
}

/// The prepared block of a key building is still needed for its L3-level slot tile; this only
/// checks that the L4 region is sane (finite, non-empty).
pub fn region_ok(p: &L4Parts) -> bool {
    p.region.iter().all(|x| x.is_finite()) && p.region[0] <= p.region[2] && p.region[1] <= p.region[3]
}
