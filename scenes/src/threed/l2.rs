//! L2 geometry: every building an extruded block — its footprint (polygons with holes) from
//! `base + min_height` to `base + height` — closed (floor, walls, roof), counter-clockwise seen
//! from outside, walls and roof sharing vertices (no normals are written; clients compute flat
//! normals).
//!
//! Vertices are computed through ECEF: footprint vertex (lon, lat) at ellipsoidal height h →
//! ECEF → the tile's local east-north-up frame, so curvature is exact in every tile; then the
//! ENU vector (e, n, u) is written in glTF's y-up frame as (e, u, −n) (a proper rotation, so
//! winding is preserved; 3D Tiles clients rotate y-up back to z-up).

use crate::geodesy::Enu;
use crate::model::Building;
use geo::Validation;
use geo_types::Polygon;

/// Why a building gets no L2 block (reported per feature in the manifest's `tiles3d.skipped`).
pub mod reason {
    pub const NON_FINITE: &str = "non-finite coordinate or height";
    pub const HEIGHT: &str = "zero or negative height";
    pub const THICKNESS: &str = "height not above min_height";
    pub const DEGENERATE: &str =
        "degenerate footprint (fewer than 3 distinct vertices or area < 0.01 m²)";
    pub const SELF_INTERSECTING: &str = "self-intersecting or otherwise invalid ring";
}

/// A footprint ring in local metres (east, north) around the building, without the closing
/// vertex, consecutive duplicates removed, oriented (exterior CCW, holes CW).
type Ring = Vec<[f64; 2]>;

/// The prepared, checked footprint of one building.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Polygons as (exterior, holes) in lon/lat degrees, cleaned and oriented.
    pub polygons: Vec<Vec<Vec<[f64; 2]>>>,
    pub bottom: f64,
    pub top: f64,
    /// Footprint area in m² (local plane at the centroid).
    pub area_m2: f64,
    pub centroid: [f64; 2],
    /// [west, south, east, north] degrees
    pub bbox: [f64; 4],
}

/// Metres per degree of longitude and latitude on the WGS-84 ellipsoid at `lat` (N·cos φ and M,
/// in metres per radian × π/180): the local plane of a footprint matches the ECEF geometry to
/// ~1e-6 relative over a building.
pub fn ellipsoid_metres_per_degree(lat: f64) -> (f64, f64) {
    use crate::geodesy::{WGS84_A, WGS84_F};
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let (s, c) = lat.to_radians().sin_cos();
    let w = (1.0 - e2 * s * s).sqrt();
    let n = WGS84_A / w;
    let m = WGS84_A * (1.0 - e2) / (w * w * w);
    let k = std::f64::consts::PI / 180.0;
    (n * c * k, m * k)
}

fn signed_area(r: &[[f64; 2]]) -> f64 {
    let mut a = 0.0;
    for i in 0..r.len() {
        let (p, q) = (r[i], r[(i + 1) % r.len()]);
        a += p[0] * q[1] - q[0] * p[1];
    }
    a / 2.0
}

/// Checks a building and cleans its rings. `Err(reason)` when it cannot become a block.
pub fn prepare(b: &Building) -> Result<Prepared, &'static str> {
    let (h, mh) = (b.height as f64, b.min_height as f64);
    if !h.is_finite() || !mh.is_finite() {
        return Err(reason::NON_FINITE);
    }
    if h <= 0.0 {
        return Err(reason::HEIGHT);
    }
    let bottom = mh.max(0.0);
    if h - bottom < 0.01 {
        return Err(reason::THICKNESS);
    }
    let mut bbox = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for p in &b.footprint.0 {
        for c in p.exterior().0.iter() {
            if !c.x.is_finite() || !c.y.is_finite() {
                return Err(reason::NON_FINITE);
            }
            bbox = [
                bbox[0].min(c.x),
                bbox[1].min(c.y),
                bbox[2].max(c.x),
                bbox[3].max(c.y),
            ];
        }
    }
    if !bbox[0].is_finite() {
        return Err(reason::DEGENERATE);
    }
    let (lon0, lat0) = ((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0);
    let (mx, my) = ellipsoid_metres_per_degree(lat0);
    let to_local = |c: &geo_types::Coord<f64>| [(c.x - lon0) * mx, (c.y - lat0) * my];
    let clean = |ls: &geo_types::LineString<f64>| -> Option<(Ring, Vec<[f64; 2]>)> {
        let mut loc: Ring = Vec::with_capacity(ls.0.len());
        let mut deg: Vec<[f64; 2]> = Vec::with_capacity(ls.0.len());
        for c in &ls.0 {
            if !c.x.is_finite() || !c.y.is_finite() {
                return None;
            }
            let p = to_local(c);
            if loc.last().is_some_and(|q: &[f64; 2]| {
                (q[0] - p[0]).abs() < 1e-3 && (q[1] - p[1]).abs() < 1e-3
            }) {
                continue;
            }
            loc.push(p);
            deg.push([c.x, c.y]);
        }
        while loc.len() > 1 {
            let (f, l) = (loc[0], loc[loc.len() - 1]);
            if (f[0] - l[0]).abs() < 1e-3 && (f[1] - l[1]).abs() < 1e-3 {
                loc.pop();
                deg.pop();
            } else {
                break;
            }
        }
        Some((loc, deg))
    };
    let mut polygons = Vec::new();
    let mut area = 0.0;
    let mut ext_sum = 0.0;
    let (mut cx, mut cy) = (0.0, 0.0);
    for poly in &b.footprint.0 {
        let (mut ext, mut ext_deg) = clean(poly.exterior()).ok_or(reason::NON_FINITE)?;
        if ext.len() < 3 || signed_area(&ext).abs() < 0.01 {
            continue; // a degenerate part; the building fails only if no part is left
        }
        if !is_simple(poly) {
            return Err(reason::SELF_INTERSECTING);
        }
        if signed_area(&ext) < 0.0 {
            ext.reverse();
            ext_deg.reverse();
        }
        let a_ext = signed_area(&ext);
        let mut rings = vec![ext_deg];
        let mut a = a_ext;
        for hole in poly.interiors() {
            let (mut hl, mut hd) = clean(hole).ok_or(reason::NON_FINITE)?;
            if hl.len() < 3 || signed_area(&hl).abs() < 0.01 {
                continue;
            }
            if signed_area(&hl) > 0.0 {
                hl.reverse();
                hd.reverse();
            }
            a += signed_area(&hl);
            rings.push(hd);
        }
        // centroid of the exterior (good enough for batching)
        let (mut sx, mut sy) = (0.0, 0.0);
        for i in 0..ext.len() {
            let (p, q) = (ext[i], ext[(i + 1) % ext.len()]);
            let c = p[0] * q[1] - q[0] * p[1];
            sx += (p[0] + q[0]) * c;
            sy += (p[1] + q[1]) * c;
        }
        cx += sx / 6.0;
        cy += sy / 6.0;
        area += a;
        ext_sum += a_ext;
        polygons.push(rings);
    }
    if polygons.is_empty() || area < 0.01 {
        return Err(reason::DEGENERATE);
    }
    // area-weighted centroid of the exteriors → degrees
    let centroid = [lon0 + cx / ext_sum / mx, lat0 + cy / ext_sum / my];
    Ok(Prepared {
        polygons,
        bottom,
        top: h,
        area_m2: area,
        centroid,
        bbox,
    })
}

/// geo's OGC validity check (self-intersecting or crossing rings, holes outside the exterior, …).
/// The ingest paths already repair invalid polygons, so this normally passes; it guards models
/// built by other means.
fn is_simple(p: &Polygon<f64>) -> bool {
    p.is_valid()
}

/// Per-tile vertex/index buffers of one material.
#[derive(Debug, Clone, Default)]
pub struct MeshBuf {
    pub positions: Vec<[f32; 3]>,
    pub feature_ids: Vec<u32>,
    pub indices: Vec<u32>,
    /// Only with [`Extruder::normals`]: one flat normal per vertex.
    pub normals: Vec<[f32; 3]>,
}

/// Reusable triangulator state.
#[derive(Default)]
pub struct Extruder {
    /// Write flat normals: every face gets its own vertices (for the size measurement in
    /// docs/BENCHMARKS.md; CityTwin tiles are written without).
    pub normals: bool,
    earcut: earcut::Earcut<f64>,
    tri: Vec<u32>,
    flat: Vec<[f64; 2]>,
    holes: Vec<u32>,
}

impl Extruder {
    pub fn new(normals: bool) -> Self {
        Extruder { normals, ..Default::default() }
    }

    /// Appends the block of `p` to `out` in the frame `frame` (glTF y-up coordinates), standing on
    /// `base` metres above the ellipsoid. Returns the number of triangles added.
    pub fn extrude(
        &mut self,
        p: &Prepared,
        base: f64,
        frame: &Enu,
        feature: u32,
        out: &mut MeshBuf,
    ) -> usize {
        let mut added = 0;
        let (v_start, i_start) = (out.positions.len(), out.indices.len());
        let (mx, my) = ellipsoid_metres_per_degree(p.centroid[1]);
        for rings in &p.polygons {
            // triangulate in local metres (planar, around the centroid)
            self.flat.clear();
            self.holes.clear();
            for (i, r) in rings.iter().enumerate() {
                if i > 0 {
                    self.holes.push(self.flat.len() as u32);
                }
                self.flat.extend(
                    r.iter()
                        .map(|c| [(c[0] - p.centroid[0]) * mx, (c[1] - p.centroid[1]) * my]),
                );
            }
            let n = self.flat.len() as u32;
            self.earcut
                .earcut(self.flat.iter().copied(), &self.holes, &mut self.tri);
            if self.tri.is_empty() {
                continue;
            }
            let v0 = out.positions.len() as u32;
            // top vertices [v0, v0+n), bottom [v0+n, v0+2n)
            for (h, _) in [(base + p.top, 0), (base + p.bottom, 1)] {
                for r in rings {
                    for c in r {
                        let enu = frame.from_geodetic(c[0], c[1], h);
                        out.positions
                            .push([enu[0] as f32, enu[2] as f32, (-enu[1]) as f32]);
                        out.feature_ids.push(feature);
                    }
                }
            }
            // roof (CCW from above) and floor (reversed), orienting each earcut triangle
            for t in self.tri.chunks_exact(3) {
                let (a, b, c) = (t[0], t[1], t[2]);
                let (pa, pb, pc) = (
                    self.flat[a as usize],
                    self.flat[b as usize],
                    self.flat[c as usize],
                );
                let cross = (pb[0] - pa[0]) * (pc[1] - pa[1]) - (pb[1] - pa[1]) * (pc[0] - pa[0]);
                let (b, c) = if cross >= 0.0 { (b, c) } else { (c, b) };
                out.indices.extend_from_slice(&[v0 + a, v0 + b, v0 + c]);
                out.indices
                    .extend_from_slice(&[v0 + n + a, v0 + n + c, v0 + n + b]);
                added += 2;
            }
            // walls: edge i → j of every ring (exterior CCW, holes CW: outward is to the right)
            let mut start = 0u32;
            for r in rings {
                let m = r.len() as u32;
                for k in 0..m {
                    let (i, j) = (v0 + start + k, v0 + start + (k + 1) % m);
                    let (bi, bj) = (i + n, j + n);
                    out.indices.extend_from_slice(&[bi, bj, j, bi, j, i]);
                    added += 2;
                }
                start += m;
            }
        }
        if self.normals {
            split_by_face(out, v_start, i_start);
        }
        added
    }
}

/// Re-indexes the triangles from `i_start` on so that vertices are shared only within a plane
/// (same flat normal), and fills `normals`.
fn split_by_face(out: &mut MeshBuf, v_start: usize, i_start: usize) {
    let old_pos: Vec<[f32; 3]> = out.positions.drain(v_start..).collect();
    let old_fid: Vec<u32> = out.feature_ids.drain(v_start..).collect();
    out.normals.truncate(v_start);
    let mut map: std::collections::HashMap<(u32, [i32; 3]), u32> = std::collections::HashMap::new();
    for t in (i_start..out.indices.len()).step_by(3) {
        let tri = [out.indices[t], out.indices[t + 1], out.indices[t + 2]];
        let p = |i: u32| old_pos[i as usize - v_start].map(|c| c as f64);
        let (a, b, c) = (p(tri[0]), p(tri[1]), p(tri[2]));
        let (u, v) = ([b[0] - a[0], b[1] - a[1], b[2] - a[2]], [c[0] - a[0], c[1] - a[1], c[2] - a[2]]);
        let n = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
        let l = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt().max(1e-30);
        let n = [n[0] / l, n[1] / l, n[2] / l];
        let key_n = n.map(|c| (c * 1000.0).round() as i32);
        for (k, &vi) in tri.iter().enumerate() {
            let idx = *map.entry((vi, key_n)).or_insert_with(|| {
                out.positions.push(old_pos[vi as usize - v_start]);
                out.feature_ids.push(old_fid[vi as usize - v_start]);
                out.normals.push(n.map(|c| c as f32));
                (out.positions.len() - 1) as u32
            });
            out.indices[t + k] = idx;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use geo_types::{polygon, MultiPolygon};
    use std::collections::HashMap;

    fn building(fp: MultiPolygon<f64>, h: f32, mh: f32) -> Building {
        Building { id: 7, min_height: mh, ..Building::block(SourceRef { source: 0, id: "t".into() }, fp, h, BuildingUse::Office) }
    }

    fn metres_to_deg(lon0: f64, lat0: f64, pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
        let (mx, my) = ellipsoid_metres_per_degree(lat0);
        pts.iter()
            .map(|(x, y)| (lon0 + x / mx, lat0 + y / my))
            .collect()
    }

    fn ring(pts: Vec<(f64, f64)>) -> geo_types::LineString<f64> {
        geo_types::LineString::from(pts)
    }

    /// Exact checks on a mesh: every undirected edge used by exactly two triangles, in opposite
    /// directions (closed, consistently oriented); signed volume.
    fn check_closed(m: &MeshBuf) -> f64 {
        let mut edges: HashMap<(u32, u32), i32> = HashMap::new();
        for t in m.indices.chunks_exact(3) {
            for (a, b) in [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])] {
                *edges.entry((a, b)).or_default() += 1;
            }
        }
        for (&(a, b), &c) in &edges {
            assert_eq!(c, 1, "directed edge {a}->{b} used {c} times");
            assert_eq!(
                edges.get(&(b, a)),
                Some(&1),
                "edge {a}-{b} is not shared by exactly two triangles"
            );
        }
        let p = |i: u32| m.positions[i as usize].map(|v| v as f64);
        let mut vol = 0.0;
        for t in m.indices.chunks_exact(3) {
            let (a, b, c) = (p(t[0]), p(t[1]), p(t[2]));
            vol += a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0])
                + a[2] * (b[0] * c[1] - b[1] * c[0]);
        }
        vol / 6.0
    }

    #[test]
    fn block_with_hole_is_closed_outward_and_has_the_right_volume() {
        let (lon0, lat0) = (123.4315, 41.8057);
        // 40 × 30 m L-free rectangle with a 10 × 10 m courtyard, given clockwise (wrong way) to
        // check re-orientation; hole given CCW.
        let ext = metres_to_deg(
            lon0,
            lat0,
            &[(0., 0.), (0., 30.), (40., 30.), (40., 0.), (0., 0.)],
        );
        let hole = metres_to_deg(
            lon0,
            lat0,
            &[(15., 10.), (25., 10.), (25., 20.), (15., 20.), (15., 10.)],
        );
        let b = building(
            MultiPolygon(vec![geo_types::Polygon::new(ring(ext), vec![ring(hole)])]),
            25.0,
            5.0,
        );
        let p = prepare(&b).unwrap();
        assert!(
            (p.area_m2 - (1200.0 - 100.0)).abs() < 0.5,
            "area {}",
            p.area_m2
        );
        let frame = Enu::new(lon0 + 0.001, lat0 + 0.001, 0.0);
        let mut m = MeshBuf::default();
        let tris = Extruder::default().extrude(&p, 0.0, &frame, 3, &mut m);
        // 8 ring vertices; roof+floor: 2 × 8 triangles (earcut of a ring with one hole: n + 2·holes − 2 = 8), walls 2 × 8
        assert_eq!(tris, 32);
        assert_eq!(m.positions.len(), 16);
        assert!(m.feature_ids.iter().all(|&f| f == 3));
        let vol = check_closed(&m);
        let expected = p.area_m2 * 20.0;
        assert!(vol > 0.0, "inward winding: volume {vol}");
        assert!(
            ((vol - expected) / expected).abs() < 1e-3,
            "volume {vol} vs area × height {expected}"
        );
    }

    #[test]
    fn multipolygon_concave_block_is_closed() {
        let (lon0, lat0) = (123.40, 41.80);
        let l = metres_to_deg(
            lon0,
            lat0,
            &[
                (0., 0.),
                (30., 0.),
                (30., 10.),
                (10., 10.),
                (10., 30.),
                (0., 30.),
                (0., 0.),
            ],
        );
        let sq = metres_to_deg(
            lon0,
            lat0,
            &[(50., 0.), (60., 0.), (60., 10.), (50., 10.), (50., 0.)],
        );
        let b = building(
            MultiPolygon(vec![polygon_from(l), polygon_from(sq)]),
            12.0,
            0.0,
        );
        let p = prepare(&b).unwrap();
        assert!((p.area_m2 - 600.0).abs() < 0.5, "{}", p.area_m2);
        let mut m = MeshBuf::default();
        Extruder::default().extrude(&p, 0.0, &Enu::new(lon0, lat0, 0.0), 0, &mut m);
        let vol = check_closed(&m);
        assert!(((vol - 7200.0) / 7200.0).abs() < 1e-3, "{vol}");
    }

    fn polygon_from(pts: Vec<(f64, f64)>) -> geo_types::Polygon<f64> {
        geo_types::Polygon::new(ring(pts), vec![])
    }

    #[test]
    fn normals_mode_splits_vertices_per_face_with_outward_normals() {
        let (lon0, lat0) = (123.4315, 41.8057);
        let ext = metres_to_deg(lon0, lat0, &[(0., 0.), (20., 0.), (20., 10.), (0., 10.), (0., 0.)]);
        let b = building(MultiPolygon(vec![polygon_from(ext)]), 9.0, 0.0);
        let p = prepare(&b).unwrap();
        let mut m = MeshBuf::default();
        Extruder::new(true).extrude(&p, 0.0, &Enu::new(lon0, lat0, 0.0), 0, &mut m);
        // box: 6 faces × 4 corners
        assert_eq!(m.positions.len(), 24);
        assert_eq!(m.normals.len(), 24);
        let c: [f64; 3] = std::array::from_fn(|k| m.positions.iter().map(|v| v[k] as f64).sum::<f64>() / 24.0);
        for t in m.indices.chunks_exact(3) {
            let v = m.positions[t[0] as usize];
            let n = m.normals[t[0] as usize];
            assert!((n[0] * n[0] + n[1] * n[1] + n[2] * n[2] - 1.0).abs() < 1e-5);
            let out = (0..3).map(|k| (v[k] as f64 - c[k]) * n[k] as f64).sum::<f64>();
            assert!(out > 0.0, "normal {n:?} points inwards");
        }
    }

    #[test]
    fn bad_buildings_get_reasons() {
        let sq = polygon![(x: 123.0, y: 41.0), (x: 123.001, y: 41.0), (x: 123.001, y: 41.001), (x: 123.0, y: 41.001)];
        let ok = MultiPolygon(vec![sq.clone()]);
        assert_eq!(
            prepare(&building(ok.clone(), 0.0, 0.0)).unwrap_err(),
            reason::HEIGHT
        );
        assert_eq!(
            prepare(&building(ok.clone(), -3.0, 0.0)).unwrap_err(),
            reason::HEIGHT
        );
        assert_eq!(
            prepare(&building(ok.clone(), 10.0, 10.0)).unwrap_err(),
            reason::THICKNESS
        );
        assert_eq!(
            prepare(&building(ok.clone(), f32::NAN, 0.0)).unwrap_err(),
            reason::NON_FINITE
        );
        let line = polygon![(x: 123.0, y: 41.0), (x: 123.001, y: 41.0), (x: 123.002, y: 41.0)];
        assert_eq!(
            prepare(&building(MultiPolygon(vec![line]), 10.0, 0.0)).unwrap_err(),
            reason::DEGENERATE
        );
        let point = polygon![(x: 123.0, y: 41.0), (x: 123.0, y: 41.0), (x: 123.0, y: 41.0), (x: 123.0, y: 41.0)];
        assert_eq!(
            prepare(&building(MultiPolygon(vec![point]), 10.0, 0.0)).unwrap_err(),
            reason::DEGENERATE
        );
        let bowtie = polygon![(x: 123.0, y: 41.0), (x: 123.002, y: 41.002), (x: 123.002, y: 41.0), (x: 123.0, y: 41.001)];
        assert_eq!(
            prepare(&building(MultiPolygon(vec![bowtie]), 10.0, 0.0)).unwrap_err(),
            reason::SELF_INTERSECTING
        );
        assert_eq!(
            prepare(&building(MultiPolygon(vec![]), 10.0, 0.0)).unwrap_err(),
            reason::DEGENERATE
        );
        assert!(prepare(&building(ok, 10.0, 0.0)).is_ok());
    }

    #[test]
    fn curvature_is_exact_far_from_the_frame_origin() {
        // 15 km east of the frame origin the ground drops ~17.6 m below the tangent plane; the
        // block's base vertices must sit there (computed through ECEF), not on the plane.
        let (lon0, lat0) = (123.4315, 41.8057);
        let (mx, _) = crate::geodesy::metres_per_degree(lat0);
        let lon = lon0 + 15_000.0 / mx;
        let sq = polygon![(x: lon, y: lat0), (x: lon + 0.0002, y: lat0), (x: lon + 0.0002, y: lat0 + 0.0002), (x: lon, y: lat0 + 0.0002)];
        let p = prepare(&building(MultiPolygon(vec![sq]), 10.0, 0.0)).unwrap();
        let frame = Enu::new(lon0, lat0, 0.0);
        let mut m = MeshBuf::default();
        Extruder::default().extrude(&p, 0.0, &frame, 0, &mut m);
        let min_up = m
            .positions
            .iter()
            .map(|v| v[1])
            .fold(f32::INFINITY, f32::min);
        // drop ≈ d² / (2R) = 15000² / (2 · 6.38e6) ≈ 17.6 m
        assert!(
            (min_up as f64 + 17.6).abs() < 0.5,
            "base at {min_up} m in the origin's frame"
        );
    }
}
