//! Closed building solids with roofs from a footprint in local metres: flat, gabled, hipped
//! (straight skeleton), pyramidal, skillion, plus the rule that picks a roof when the source has
//! no `roof:shape` ([`choose_roof`]).
//!
//! Every solid is watertight (each edge shared by exactly two triangles in opposite directions,
//! after welding equal positions) with outward faces: walls follow the roof's eave line exactly
//! (gable crossings are computed once per footprint edge, from the edge's endpoints in a fixed
//! order, so walls and roof triangles share bit-identical vertices).

use super::facade::FacadeStyle;
use super::mesh::{Material, Mesh};
use super::skeleton::{ear_clip, straight_skeleton};
use crate::model::{Building, BuildingUse};
use geo::{Area, MinimumRotatedRect, TriangulateEarcut};
use geo_types::{Coord, LineString, Polygon};

/// Roof shapes that are built (OSM `roof:shape` vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoofShape {
    Flat,
    Gabled,
    Hipped,
    Pyramidal,
    Skillion,
}

impl RoofShape {
    pub fn as_str(self) -> &'static str {
        match self {
            RoofShape::Flat => "flat",
            RoofShape::Gabled => "gabled",
            RoofShape::Hipped => "hipped",
            RoofShape::Pyramidal => "pyramidal",
            RoofShape::Skillion => "skillion",
        }
    }

    /// Maps an OSM `roof:shape` value; shapes we do not model map to their closest built shape,
    /// unknown values to `None`.
    pub fn from_osm(v: &str) -> Option<RoofShape> {
        Some(match v.trim().to_ascii_lowercase().as_str() {
            "flat" => RoofShape::Flat,
            "gabled" | "saltbox" | "gambrel" | "round" => RoofShape::Gabled,
            "hipped" | "half-hipped" | "half_hipped" | "side_hipped" | "mansard" => RoofShape::Hipped,
            "pyramidal" | "dome" | "onion" | "cone" => RoofShape::Pyramidal,
            "skillion" | "lean_to" => RoofShape::Skillion,
            _ => return None,
        })
    }
}

/// Roof pitch for gabled/hipped/pyramidal roofs chosen by rule, degrees.
pub const DEFAULT_PITCH_DEG: f64 = 30.0;
/// Skillion roofs chosen by rule: pitch in degrees.
pub const SKILLION_PITCH_DEG: f64 = 10.0;
/// A pitched roof never takes more than this share of the building's height.
pub const MAX_ROOF_SHARE: f64 = 0.4;

/// The roof for a building: its `roof_shape` attribute when it names a known shape, else the rule
/// (documented in docs/ARCHITECTURE.md, "L3 geometry"):
/// - taller than 24 m, or footprint over 1,000 m², or industrial/commercial/office/transport → flat;
/// - residential, religious, agricultural, ancillary, education, public, healthcare or unknown
///   use up to 24 m and 1,000 m²: footprints that fill ≥ 80 % of their minimum rotated rectangle
///   and are elongated (long/short ≥ 1.5) get **gabled**, others **hipped**.
///
/// Returns the shape and the roof height in metres: `half span × tan(pitch)` (span = short side of
/// the minimum rotated rectangle), at most 40 % of the building's height; 0 for flat.
pub fn choose_roof(b: &Building, footprint_local: &Polygon<f64>) -> (RoofShape, f64) {
    let dims = ombr(footprint_local).map(|o| (o.long, o.short)).unwrap_or((0.0, 0.0));
    let area = footprint_local.unsigned_area();
    let h = b.height as f64 - b.min_height as f64;
    let shape = b.roof_shape.as_deref().and_then(RoofShape::from_osm).unwrap_or_else(|| {
        let pitched_use = !matches!(
            b.use_,
            BuildingUse::Industrial | BuildingUse::Commercial | BuildingUse::Office | BuildingUse::Transport
        );
        if !pitched_use || h > 24.0 || area > 1000.0 || dims.1 <= 0.0 {
            RoofShape::Flat
        } else {
            let fill = area / (dims.0 * dims.1);
            if fill >= 0.8 && dims.0 / dims.1 >= 1.5 {
                RoofShape::Gabled
            } else {
                RoofShape::Hipped
            }
        }
    });
    let pitch = if shape == RoofShape::Skillion { SKILLION_PITCH_DEG } else { DEFAULT_PITCH_DEG };
    let span = if shape == RoofShape::Skillion { dims.1 } else { dims.1 / 2.0 };
    let rh = match shape {
        RoofShape::Flat => 0.0,
        _ => (span * pitch.to_radians().tan()).min(MAX_ROOF_SHARE * h).max(0.0),
    };
    (shape, rh)
}

/// Minimum rotated rectangle of a footprint: centre, unit long axis, long and short side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ombr {
    pub centre: [f64; 2],
    pub axis: [f64; 2],
    pub long: f64,
    pub short: f64,
}

pub fn ombr(p: &Polygon<f64>) -> Option<Ombr> {
    let r = p.exterior().minimum_rotated_rect()?;
    let c: Vec<Coord<f64>> = r.exterior().0.clone();
    if c.len() < 4 {
        return None;
    }
    let e1 = [c[1].x - c[0].x, c[1].y - c[0].y];
    let e2 = [c[2].x - c[1].x, c[2].y - c[1].y];
    let (l1, l2) = (e1[0].hypot(e1[1]), e2[0].hypot(e2[1]));
    if !(l1 > 0.0 && l2 > 0.0) {
        return None;
    }
    let centre = [(c[0].x + c[2].x) / 2.0, (c[0].y + c[2].y) / 2.0];
    Some(if l1 >= l2 {
        Ombr { centre, axis: [e1[0] / l1, e1[1] / l1], long: l1, short: l2 }
    } else {
        Ombr { centre, axis: [e2[0] / l2, e2[1] / l2], long: l2, short: l1 }
    })
}

/// What to build.
#[derive(Debug, Clone)]
pub struct SolidSpec<'a> {
    /// Footprint in local metres (x east, y north); orientation and closing points are normalised.
    pub footprint: &'a Polygon<f64>,
    /// Bottom of the solid (the building's `min_height`, plus the terrain if the caller wants).
    pub base: f64,
    /// Top of the roof (ridge); the eaves are at `top − roof_height`.
    pub top: f64,
    pub roof: RoofShape,
    pub roof_height: f64,
    pub facade: FacadeStyle,
}

/// A built solid: the mesh, the roof shape actually built and, when it differs from the one
/// asked for, why.
#[derive(Debug, Clone)]
pub struct Built {
    pub mesh: Mesh,
    pub roof: RoofShape,
    pub fallback: Option<String>,
}

/// Cleans a footprint: drops closing and repeated points (closer than 1 mm), orients the exterior
/// counter-clockwise and holes clockwise, drops holes with fewer than 3 points.
fn rings(p: &Polygon<f64>) -> Result<(Vec<[f64; 2]>, Vec<Vec<[f64; 2]>>), String> {
    fn clean(ls: &LineString<f64>, ccw: bool) -> Vec<[f64; 2]> {
        let mut v: Vec<[f64; 2]> = Vec::new();
        for c in &ls.0 {
            let q = [c.x, c.y];
            if v.last().is_none_or(|l: &[f64; 2]| (l[0] - q[0]).hypot(l[1] - q[1]) > 1e-3) {
                v.push(q);
            }
        }
        while v.len() > 1 {
            let (f, l) = (v[0], v[v.len() - 1]);
            if (f[0] - l[0]).hypot(f[1] - l[1]) <= 1e-3 {
                v.pop();
            } else {
                break;
            }
        }
        let a: f64 = (0..v.len()).map(|i| v[i][0] * v[(i + 1) % v.len()][1] - v[(i + 1) % v.len()][0] * v[i][1]).sum();
        if (a > 0.0) != ccw {
            v.reverse();
        }
        v
    }
    if p.exterior().0.iter().any(|c| !c.x.is_finite() || !c.y.is_finite()) {
        return Err("footprint has a non-finite coordinate".into());
    }
    let ext = clean(p.exterior(), true);
    if ext.len() < 3 {
        return Err(format!("footprint has {} distinct points (need ≥ 3)", ext.len()));
    }
    let holes: Vec<Vec<[f64; 2]>> = p.interiors().iter().map(|h| clean(h, false)).filter(|h| h.len() >= 3).collect();
    Ok((ext, holes))
}

fn to_polygon(ext: &[[f64; 2]], holes: &[Vec<[f64; 2]>]) -> Polygon<f64> {
    let ls = |r: &[[f64; 2]]| LineString::from(r.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>());
    Polygon::new(ls(ext), holes.iter().map(|h| ls(h)).collect())
}

/// Triangles of the footprint (counter-clockwise), with original coordinates.
fn footprint_triangles(poly: &Polygon<f64>) -> Vec<[[f64; 2]; 3]> {
    poly.earcut_triangles()
        .into_iter()
        .map(|t| {
            let (a, b, c) = ([t.v1().x, t.v1().y], [t.v2().x, t.v2().y], [t.v3().x, t.v3().y]);
            if (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]) >= 0.0 {
                [a, b, c]
            } else {
                [a, c, b]
            }
        })
        .collect()
}

/// Roof height above the eaves as a function of plan position, for the "function" roofs.
#[derive(Debug, Clone, Copy)]
enum RoofFn {
    Flat,
    /// Two planes meeting at the ridge line through `o` along `axis`; `half` = half span.
    Gable { o: [f64; 2], nrm: [f64; 2], half: f64, h: f64 },
    /// One plane rising along `nrm` from `s0` to `s1`.
    Skillion { o: [f64; 2], nrm: [f64; 2], s0: f64, s1: f64, h: f64 },
}

impl RoofFn {
    fn z(&self, p: [f64; 2]) -> f64 {
        match *self {
            RoofFn::Flat => 0.0,
            RoofFn::Gable { o, nrm, half, h } => {
                let s = (p[0] - o[0]) * nrm[0] + (p[1] - o[1]) * nrm[1];
                (h * (1.0 - s.abs() / half)).max(0.0)
            }
            RoofFn::Skillion { o, nrm, s0, s1, h } => {
                let s = (p[0] - o[0]) * nrm[0] + (p[1] - o[1]) * nrm[1];
                (h * (s - s0) / (s1 - s0)).clamp(0.0, h)
            }
        }
    }
    /// Signed distance to the ridge line (gables only).
    fn side(&self, p: [f64; 2]) -> f64 {
        match *self {
            RoofFn::Gable { o, nrm, .. } => (p[0] - o[0]) * nrm[0] + (p[1] - o[1]) * nrm[1],
            _ => 1.0,
        }
    }
    /// Where segment p–q crosses the ridge strictly inside, computed from the endpoints in a
    /// fixed (lexicographic) order so both users of an edge get identical bits.
    fn crossing(&self, p: [f64; 2], q: [f64; 2]) -> Option<[f64; 2]> {
        let (a, b) = if (p[0], p[1]) <= (q[0], q[1]) { (p, q) } else { (q, p) };
        let (sa, sb) = (self.side(a), self.side(b));
        if (sa > 0.0 && sb < 0.0) || (sa < 0.0 && sb > 0.0) {
            let t = sa / (sa - sb);
            Some([a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t])
        } else {
            None
        }
    }
}

fn push_roof_poly(mesh: &mut Mesh, pts: &[[f64; 3]]) {
    // Convex polygon in plan (counter-clockwise): fan.
    for k in 1..pts.len() - 1 {
        mesh.group(Material::Roof).add_triangle(pts[0], pts[k], pts[k + 1], [pts[0], pts[k], pts[k + 1]].map(|p| [p[0], p[1]]));
    }
}

/// Walls for every ring edge from `base` up to `top(p)`, with the top polyline `p, [crossing], q`.
fn walls(mesh: &mut Mesh, ext: &[[f64; 2]], holes: &[Vec<[f64; 2]>], base: f64, eave: f64, f: &RoofFn, style: &FacadeStyle) {
    for ring in std::iter::once(ext).chain(holes.iter().map(|h| h.as_slice())) {
        let m = ring.len();
        for i in 0..m {
            let (p, q) = (ring[i], ring[(i + 1) % m]);
            let len = (q[0] - p[0]).hypot(q[1] - p[1]);
            let mut top = vec![p];
            if let Some(c) = f.crossing(p, q) {
                top.push(c);
            }
            top.push(q);
            // Polygon: bp, bq, then the top from q back to p.
            let mut pts: Vec<[f64; 3]> = vec![[p[0], p[1], base], [q[0], q[1], base]];
            for t in top.iter().rev() {
                pts.push([t[0], t[1], eave + f.z(*t)]);
            }
            let uvs: Vec<[f64; 2]> = pts
                .iter()
                .map(|v| {
                    let s = ((v[0] - p[0]) * (q[0] - p[0]) + (v[1] - p[1]) * (q[1] - p[1])) / len;
                    style.uv(s, len, v[2] - base)
                })
                .collect();
            let normal = [(q[1] - p[1]) / len, -(q[0] - p[0]) / len, 0.0];
            let tris: Vec<[usize; 3]> = (1..pts.len() - 1).map(|k| [0, k, k + 1]).collect();
            mesh.group(style.material).add_triangles(&pts, &uvs, normal, &tris);
        }
    }
}

fn bottom(mesh: &mut Mesh, tris: &[[[f64; 2]; 3]], base: f64) {
    for t in tris {
        let [a, b, c] = t.map(|p| [p[0], p[1], base]);
        mesh.group(Material::Ground).add_triangle(a, c, b, [t[0], t[2], t[1]]);
    }
}

/// Builds the closed solid. Errors (for the build report) on footprints with fewer than three
/// distinct points, zero area, non-finite coordinates, or `top ≤ base`. A roof that cannot be
/// built on this footprint falls back (gabled on a non-rectangular footprint → hipped; pyramidal
/// on a footprint not star-shaped around its centroid or with holes → hipped; a failed straight
/// skeleton → flat) and says so in [`Built::fallback`].
pub fn build_solid(spec: &SolidSpec) -> Result<Built, String> {
    let (ext, holes) = rings(spec.footprint)?;
    let poly = to_polygon(&ext, &holes);
    let area = poly.signed_area();
    if !(area > 1e-4) {
        return Err(format!("footprint area {area:.2e} m² is zero or negative"));
    }
    if !(spec.top > spec.base) || !spec.top.is_finite() || !spec.base.is_finite() {
        return Err(format!("top {} m is not above base {} m", spec.top, spec.base));
    }
    let mut rh = spec.roof_height.clamp(0.0, spec.top - spec.base);
    let mut shape = spec.roof;
    let mut fallback = None;
    if shape != RoofShape::Flat && rh <= 1e-3 {
        fallback = Some(format!("{}: roof height {rh:.3} m, built flat", shape.as_str()));
        shape = RoofShape::Flat;
    }
    let o = ombr(&poly);
    if shape == RoofShape::Gabled {
        match o {
            Some(o) if area / (o.long * o.short) >= 0.8 => {}
            _ => {
                fallback = Some("gabled: footprint fills < 80 % of its minimum rotated rectangle, built hipped".into());
                shape = RoofShape::Hipped;
            }
        }
    }
    if shape == RoofShape::Pyramidal {
        let c = centroid(&ext);
        let star = holes.is_empty()
            && (0..ext.len()).all(|i| {
                let (p, q) = (ext[i], ext[(i + 1) % ext.len()]);
                (q[0] - p[0]) * (c[1] - p[1]) - (q[1] - p[1]) * (c[0] - p[0]) > 1e-9
            });
        if !star {
            fallback = Some("pyramidal: footprint has holes or is not star-shaped around its centroid, built hipped".into());
            shape = RoofShape::Hipped;
        }
    }
    if shape == RoofShape::Flat {
        rh = 0.0;
    }
    let eave = spec.top - rh;
    let tris = footprint_triangles(&poly);
    let mut mesh = Mesh::new();

    if shape == RoofShape::Hipped {
        match straight_skeleton(&ext, &holes) {
            Ok(sk) => {
                let tmax = sk.time.iter().cloned().fold(0.0, f64::max);
                if tmax > 0.0 {
                    let k = rh / tmax;
                    for face in &sk.faces {
                        let plan: Vec<[f64; 2]> = face.iter().map(|&i| sk.nodes[i]).collect();
                        let pts: Vec<[f64; 3]> = face.iter().map(|&i| [sk.nodes[i][0], sk.nodes[i][1], eave + k * sk.time[i]]).collect();
                        for t in ear_clip(&plan) {
                            mesh.group(Material::Roof).add_triangle(pts[t[0]], pts[t[1]], pts[t[2]], [plan[t[0]], plan[t[1]], plan[t[2]]]);
                        }
                    }
                    walls(&mut mesh, &ext, &holes, spec.base, eave, &RoofFn::Flat, &spec.facade);
                    bottom(&mut mesh, &tris, spec.base);
                    return Ok(Built { mesh, roof: RoofShape::Hipped, fallback });
                }
                fallback = Some("hipped: skeleton has no interior, built flat".into());
            }
            Err(e) => fallback = Some(format!("hipped: straight skeleton failed ({e}), built flat")),
        }
        return build_solid(&SolidSpec { roof: RoofShape::Flat, roof_height: 0.0, ..spec.clone() })
            .map(|b| Built { fallback, ..b });
    }

    if shape == RoofShape::Pyramidal {
        let c = centroid(&ext);
        let apex = [c[0], c[1], spec.top];
        for i in 0..ext.len() {
            let (p, q) = (ext[i], ext[(i + 1) % ext.len()]);
            mesh.group(Material::Roof).add_triangle([p[0], p[1], eave], [q[0], q[1], eave], apex, [p, q, c]);
        }
        walls(&mut mesh, &ext, &holes, spec.base, eave, &RoofFn::Flat, &spec.facade);
        bottom(&mut mesh, &tris, spec.base);
        return Ok(Built { mesh, roof: shape, fallback });
    }

    let f = match (shape, o) {
        (RoofShape::Gabled, Some(o)) => RoofFn::Gable { o: o.centre, nrm: [-o.axis[1], o.axis[0]], half: o.short / 2.0, h: rh },
        (RoofShape::Skillion, Some(o)) => {
            let nrm = [-o.axis[1], o.axis[0]];
            let s: Vec<f64> = ext.iter().map(|p| (p[0] - o.centre[0]) * nrm[0] + (p[1] - o.centre[1]) * nrm[1]).collect();
            let (s0, s1) = (s.iter().cloned().fold(f64::MAX, f64::min), s.iter().cloned().fold(f64::MIN, f64::max));
            RoofFn::Skillion { o: o.centre, nrm, s0, s1, h: rh }
        }
        _ => RoofFn::Flat,
    };
    let lift = |p: [f64; 2]| [p[0], p[1], eave + f.z(p)];
    for t in &tris {
        // Split each footprint triangle by the ridge line (gables): walk a→b→c inserting
        // crossings, and emit the part on each side as a convex fan.
        let mut ring: Vec<[f64; 2]> = Vec::with_capacity(5);
        for i in 0..3 {
            ring.push(t[i]);
            if let Some(c) = f.crossing(t[i], t[(i + 1) % 3]) {
                ring.push(c);
            }
        }
        if ring.len() == 3 {
            push_roof_poly(&mut mesh, &ring.iter().map(|p| lift(*p)).collect::<Vec<_>>());
            continue;
        }
        for sign in [1.0, -1.0] {
            let part: Vec<[f64; 3]> = ring.iter().filter(|p| f.side(**p) * sign >= 0.0 || is_on_ridge(&f, **p, t)).map(|p| lift(*p)).collect();
            if part.len() >= 3 {
                push_roof_poly(&mut mesh, &part);
            }
        }
    }
    walls(&mut mesh, &ext, &holes, spec.base, eave, &f, &spec.facade);
    bottom(&mut mesh, &tris, spec.base);
    Ok(Built { mesh, roof: shape, fallback })
}

/// Crossing points are on the ridge by construction (their side() may round to ±tiny).
fn is_on_ridge(f: &RoofFn, p: [f64; 2], tri: &[[f64; 2]; 3]) -> bool {
    !tri.contains(&p) && f.side(p).abs() < 1e-6
}

fn centroid(r: &[[f64; 2]]) -> [f64; 2] {
    let (mut a, mut cx, mut cy) = (0.0, 0.0, 0.0);
    let o = r[0];
    for i in 0..r.len() {
        let (p, q) = ([r[i][0] - o[0], r[i][1] - o[1]], [r[(i + 1) % r.len()][0] - o[0], r[(i + 1) % r.len()][1] - o[1]]);
        let w = p[0] * q[1] - q[0] * p[1];
        a += w;
        cx += (p[0] + q[0]) * w;
        cy += (p[1] + q[1]) * w;
    }
    [o[0] + cx / (3.0 * a), o[1] + cy / (3.0 * a)]
}
