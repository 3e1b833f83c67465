//! A plain triangle mesh in local metres (x east, y north, z up), grouped by material, that the
//! L3 generators (roofs, facades, trees) produce and the 3D Tiles writer turns into glTF
//! primitives (one primitive per non-empty group).

/// Surface material of an L3 mesh group; one glTF primitive each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Material {
    Roof,
    /// Plain wall (gable triangles, windowless facades).
    Wall,
    /// Facade with a repeating window texture (UVs in bays × floors, see `l3::facade`).
    WindowFacade,
    /// Bottom of a solid (CityGML GroundSurface) and terrain.
    Ground,
    TreeCrown,
    TreeTrunk,
}

impl Material {
    pub const ALL: [Material; 6] =
        [Material::Roof, Material::Wall, Material::WindowFacade, Material::Ground, Material::TreeCrown, Material::TreeTrunk];
    pub fn as_str(self) -> &'static str {
        match self {
            Material::Roof => "roof",
            Material::Wall => "wall",
            Material::WindowFacade => "window_facade",
            Material::Ground => "ground",
            Material::TreeCrown => "tree_crown",
            Material::TreeTrunk => "tree_trunk",
        }
    }
}

/// Triangles of one material. Vertices are not shared between faces of different orientation
/// (flat shading), so `positions`, `normals` and `uvs` have one entry per vertex and `indices`
/// three per triangle, counter-clockwise seen from outside.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub positions: Vec<[f32; 3]>,
    pub normals: Vec<[f32; 3]>,
    pub uvs: Vec<[f32; 2]>,
    pub indices: Vec<u32>,
}

impl Group {
    pub fn triangle_count(&self) -> usize {
        self.indices.len() / 3
    }

    /// Adds one planar polygon given as a triangle list over `pts` (local indices), with a common
    /// normal and per-point UVs.
    pub fn add_triangles(&mut self, pts: &[[f64; 3]], uvs: &[[f64; 2]], normal: [f64; 3], tris: &[[usize; 3]]) {
        let base = self.positions.len() as u32;
        let n = [normal[0] as f32, normal[1] as f32, normal[2] as f32];
        for (i, p) in pts.iter().enumerate() {
            self.positions.push([p[0] as f32, p[1] as f32, p[2] as f32]);
            self.normals.push(n);
            let uv = uvs.get(i).copied().unwrap_or([0.0, 0.0]);
            self.uvs.push([uv[0] as f32, uv[1] as f32]);
        }
        for t in tris {
            self.indices.extend([base + t[0] as u32, base + t[1] as u32, base + t[2] as u32]);
        }
    }

    /// Adds one triangle (a, b, c counter-clockwise from outside) with its face normal.
    pub fn add_triangle(&mut self, a: [f64; 3], b: [f64; 3], c: [f64; 3], uv: [[f64; 2]; 3]) {
        let n = normalize(cross(sub(b, a), sub(c, a)));
        self.add_triangles(&[a, b, c], &uv, n, &[[0, 1, 2]]);
    }
}

/// A mesh: one [`Group`] per material, in [`Material::ALL`] order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    pub groups: std::collections::BTreeMap<Material, Group>,
}

/// A similarity transform applied when appending: rotate about z by `heading_rad`
/// (counter-clockwise from east, i.e. mathematical), scale (x/y by `scale_xy`, z by `scale_z`),
/// then translate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    pub translate: [f64; 3],
    pub rotate_z_rad: f64,
    pub scale_xy: f64,
    pub scale_z: f64,
}

impl Transform {
    pub fn translate(t: [f64; 3]) -> Self {
        Transform { translate: t, rotate_z_rad: 0.0, scale_xy: 1.0, scale_z: 1.0 }
    }
    pub fn apply_point(&self, p: [f32; 3]) -> [f32; 3] {
        let (s, c) = self.rotate_z_rad.sin_cos();
        let (x, y, z) = (p[0] as f64 * self.scale_xy, p[1] as f64 * self.scale_xy, p[2] as f64 * self.scale_z);
        [(c * x - s * y + self.translate[0]) as f32, (s * x + c * y + self.translate[1]) as f32, (z + self.translate[2]) as f32]
    }
    /// Normals transform with the inverse transpose: rotation, then scale by (1/sxy, 1/sxy, 1/sz).
    pub fn apply_normal(&self, n: [f32; 3]) -> [f32; 3] {
        let (s, c) = self.rotate_z_rad.sin_cos();
        let (x, y, z) = (n[0] as f64 / self.scale_xy, n[1] as f64 / self.scale_xy, n[2] as f64 / self.scale_z);
        let v = normalize([c * x - s * y, s * x + c * y, z]);
        [v[0] as f32, v[1] as f32, v[2] as f32]
    }
}

impl Mesh {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn group(&mut self, m: Material) -> &mut Group {
        self.groups.entry(m).or_default()
    }
    pub fn triangle_count(&self) -> usize {
        self.groups.values().map(Group::triangle_count).sum()
    }
    pub fn vertex_count(&self) -> usize {
        self.groups.values().map(|g| g.positions.len()).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.triangle_count() == 0
    }

    /// Appends `other` unchanged.
    pub fn append(&mut self, other: &Mesh) {
        self.append_transformed(other, &Transform::translate([0.0; 3]));
    }

    /// Appends `other` with `t` applied to its positions and normals (instancing trees, placing a
    /// building's local mesh in a tile frame). Scale factors must be positive.
    pub fn append_transformed(&mut self, other: &Mesh, t: &Transform) {
        for (m, g) in &other.groups {
            let dst = self.groups.entry(*m).or_default();
            let base = dst.positions.len() as u32;
            dst.positions.extend(g.positions.iter().map(|p| t.apply_point(*p)));
            dst.normals.extend(g.normals.iter().map(|n| t.apply_normal(*n)));
            dst.uvs.extend(g.uvs.iter().copied());
            dst.indices.extend(g.indices.iter().map(|i| i + base));
        }
    }

    /// Axis-aligned bounds `[min, max]`, or `None` when empty.
    pub fn bounds(&self) -> Option<[[f32; 3]; 2]> {
        let mut it = self.groups.values().flat_map(|g| g.positions.iter());
        let first = *it.next()?;
        let mut b = [first, first];
        for p in it {
            for k in 0..3 {
                b[0][k] = b[0][k].min(p[k]);
                b[1][k] = b[1][k].max(p[k]);
            }
        }
        Some(b)
    }

    /// All triangles as position triples (for checks and tests).
    pub fn triangles(&self) -> Vec<[[f32; 3]; 3]> {
        let mut out = Vec::with_capacity(self.triangle_count());
        for g in self.groups.values() {
            for t in g.indices.chunks_exact(3) {
                out.push([g.positions[t[0] as usize], g.positions[t[1] as usize], g.positions[t[2] as usize]]);
            }
        }
        out
    }

    /// Signed volume (divergence theorem over all triangles); positive for a closed mesh with
    /// outward (counter-clockwise) faces.
    pub fn signed_volume(&self) -> f64 {
        self.triangles()
            .iter()
            .map(|t| {
                let [a, b, c] = t.map(|p| [p[0] as f64, p[1] as f64, p[2] as f64]);
                dot(a, cross(b, c)) / 6.0
            })
            .sum()
    }

    /// Checks that the mesh is a closed 2-manifold after welding vertices with identical
    /// positions: every undirected edge is used by exactly two triangles, once in each direction.
    /// Returns the first offending edge otherwise.
    pub fn check_watertight(&self) -> Result<(), String> {
        use std::collections::HashMap;
        let mut ids: HashMap<[u32; 3], u32> = HashMap::new();
        let mut key = |p: [f32; 3]| {
            let k = [p[0].to_bits(), p[1].to_bits(), p[2].to_bits()].map(|b| if b == 0x8000_0000 { 0 } else { b });
            let n = ids.len() as u32;
            *ids.entry(k).or_insert(n)
        };
        let mut directed: HashMap<(u32, u32), i32> = HashMap::new();
        for t in self.triangles() {
            if t.iter().flatten().any(|v| !v.is_finite()) {
                return Err("non-finite vertex".into());
            }
            let k = t.map(&mut key);
            for i in 0..3 {
                let (a, b) = (k[i], k[(i + 1) % 3]);
                if a == b {
                    return Err(format!("triangle with coincident vertices at {:?}", t[i]));
                }
                *directed.entry((a, b)).or_default() += 1;
            }
        }
        let pos: HashMap<u32, [u32; 3]> = ids.iter().map(|(k, v)| (*v, *k)).collect();
        let show = |i: u32| pos[&i].map(f32::from_bits);
        for (&(a, b), &n) in &directed {
            let back = directed.get(&(b, a)).copied().unwrap_or(0);
            if n != 1 || back != 1 {
                return Err(format!(
                    "edge {:?}–{:?} used {n}× forward and {back}× backward (want 1 and 1)",
                    show(a),
                    show(b)
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
pub(crate) fn normalize(v: [f64; 3]) -> [f64; 3] {
    let l = dot(v, v).sqrt();
    if l > 0.0 && l.is_finite() {
        [v[0] / l, v[1] / l, v[2] / l]
    } else {
        [0.0, 0.0, 1.0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_tetra() -> Mesh {
        let mut m = Mesh::new();
        let g = m.group(Material::Wall);
        let (o, x, y, z) = ([0.0; 3], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]);
        let uv = [[0.0; 2]; 3];
        g.add_triangle(o, y, x, uv);
        g.add_triangle(o, x, z, uv);
        g.add_triangle(o, z, y, uv);
        g.add_triangle(x, y, z, uv);
        m
    }

    #[test]
    fn tetrahedron_volume_and_closure() {
        let m = unit_tetra();
        assert!((m.signed_volume() - 1.0 / 6.0).abs() < 1e-9);
        m.check_watertight().unwrap();
        // An outward normal of the slanted face is (1,1,1)/√3.
        let n = m.groups[&Material::Wall].normals[9];
        assert!((n[0] - 0.57735).abs() < 1e-4 && (n[2] - 0.57735).abs() < 1e-4);
    }

    #[test]
    fn open_mesh_is_reported() {
        let mut m = unit_tetra();
        m.groups.get_mut(&Material::Wall).unwrap().indices.truncate(9);
        let e = m.check_watertight().unwrap_err();
        assert!(e.contains("used"), "{e}");
    }

    #[test]
    fn append_transformed_scales_volume_and_keeps_normals_unit() {
        let t = Transform { translate: [10.0, -5.0, 2.0], rotate_z_rad: 0.7, scale_xy: 2.0, scale_z: 3.0 };
        let mut m = Mesh::new();
        m.append_transformed(&unit_tetra(), &t);
        m.append_transformed(&unit_tetra(), &Transform::translate([100.0, 0.0, 0.0]));
        assert_eq!(m.triangle_count(), 8);
        // Volume scales by sxy² · sz = 12, translation does not change it.
        assert!((m.signed_volume() - (12.0 + 1.0) / 6.0).abs() < 1e-4, "{}", m.signed_volume());
        m.check_watertight().unwrap();
        // Every transformed normal is unit length and perpendicular to its (transformed) triangle.
        let g = &m.groups[&Material::Wall];
        for t in g.indices.chunks_exact(3) {
            let p = [t[0], t[1], t[2]].map(|i| g.positions[i as usize].map(|v| v as f64));
            let n = g.normals[t[0] as usize].map(|v| v as f64);
            assert!((dot(n, n) - 1.0).abs() < 1e-5);
            let face = normalize(cross(sub(p[1], p[0]), sub(p[2], p[0])));
            assert!(dot(face, n) > 0.9999, "normal {n:?} vs face {face:?}");
        }
        let b = m.bounds().unwrap();
        assert_eq!(b[1][0], 101.0);
    }
}
