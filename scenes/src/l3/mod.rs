//! L3 geometry generated from footprints: roofs (flat, gabled, hipped via a straight skeleton,
//! pyramidal, skillion), facades with window UVs and a procedural texture set, and trees in
//! parks. Everything is in local metres (x east, y north, z up); the 3D Tiles builder places the
//! meshes. Rules: docs/ARCHITECTURE.md, "L3 geometry".

pub mod mesh;
pub mod skeleton;

pub use mesh::{Material, Mesh, Transform};
pub use roof::{Built, RoofShape};

use crate::model::Building;

/// An L3 building in a local frame: one closed solid per footprint part.
#[derive(Debug, Clone)]
pub struct L3Building {
    pub mesh: Mesh,
    /// The roof built on the largest part.
    pub roof: RoofShape,
    pub roof_height: f64,
    /// Fallbacks taken and parts skipped, for the build report (`part k: reason`).
    pub notes: Vec<String>,
}

/// Builds a model building at L3 in `frame`, standing on `ground` (terrain elevation, or 0):
/// roof by [`roof::choose_roof`] per footprint part, facade by [`facade::FacadeStyle::for_building`],
/// solid from `ground + min_height` to `ground + height`. Errors (with the reason, for the
/// build report) when the height is not above `min_height` or no part can be built; parts that
/// fail while others succeed are listed in `notes`.
pub fn building_mesh(b: &Building, frame: &LocalFrame, ground: f64) -> Result<L3Building, String> {
    use geo::Area;
    let (base, top) = (ground + b.min_height as f64, ground + b.height as f64);
    if !(b.height > b.min_height) || !b.height.is_finite() {
        return Err(format!("height {} m is not above min_height {} m", b.height, b.min_height));
    }
    let mut mesh = Mesh::new();
    let mut notes = Vec::new();
    let mut main: Option<(f64, RoofShape, f64)> = None;
    for (k, part) in b.footprint.0.iter().enumerate() {
        let local = frame.polygon(part);
        let (shape, rh) = roof::choose_roof(b, &local);
        let style = facade::FacadeStyle::for_building(b.use_, top - base - rh, b.levels);
        match roof::build_solid(&roof::SolidSpec { footprint: &local, base, top, roof: shape, roof_height: rh, facade: style }) {
            Ok(built) => {
                if let Some(f) = built.fallback {
                    notes.push(format!("part {k}: {f}"));
                }
                let a = local.unsigned_area();
                if main.is_none_or(|m| a > m.0) {
                    main = Some((a, built.roof, if built.roof == RoofShape::Flat { 0.0 } else { rh }));
                }
                mesh.append(&built.mesh);
            }
            Err(e) => notes.push(format!("part {k}: {e}")),
        }
    }
    match main {
        Some((_, roof, roof_height)) => Ok(L3Building { mesh, roof, roof_height, notes }),
        None => Err(if notes.is_empty() { "footprint has no parts".into() } else { notes.join("; ") }),
    }
}
pub mod facade;
pub mod roof;
pub mod trees;

use geo_types::{Coord, MultiPolygon, Polygon};

/// Mesh positions are `f32`: use a frame near the geometry (the tile's or the building's centre;
/// within ~2 km f32 keeps better than 0.2 mm).
///
/// A local metric frame around `(lon0, lat0)`: x east, y north in metres, equirectangular with
/// the spherical metres-per-degree at `lat0` (`geodesy::metres_per_degree`). Within a few km of
/// the origin it differs from the exact ENU frame (`geodesy::Enu`) by well under a metre, which
/// is what L3 generation needs; the 3D Tiles builder places the results in its ENU/ECEF frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalFrame {
    pub lon0: f64,
    pub lat0: f64,
    kx: f64,
    ky: f64,
}

impl LocalFrame {
    pub fn new(lon0: f64, lat0: f64) -> Self {
        let (kx, ky) = crate::geodesy::metres_per_degree(lat0);
        LocalFrame { lon0, lat0, kx, ky }
    }
    pub fn to_local(&self, lon: f64, lat: f64) -> [f64; 2] {
        [(lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky]
    }
    pub fn to_lonlat(&self, x: f64, y: f64) -> (f64, f64) {
        (self.lon0 + x / self.kx, self.lat0 + y / self.ky)
    }
    pub fn polygon(&self, p: &Polygon<f64>) -> Polygon<f64> {
        use geo::MapCoords;
        p.map_coords(|c| {
            let [x, y] = self.to_local(c.x, c.y);
            Coord { x, y }
        })
    }
    pub fn multipolygon(&self, mp: &MultiPolygon<f64>) -> MultiPolygon<f64> {
        MultiPolygon(mp.0.iter().map(|p| self.polygon(p)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Every building of a real OSM-derived dataset (Astana, 32,056 footprints with levels)
    /// becomes a closed solid or a clean error; the roof rule's choices are counted.
    #[test]
    fn astana_buildings_all_watertight_or_reported() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/buildings/astana_osm_buildings.geojson");
        let p = if p.exists() { p } else { std::path::PathBuf::from("/work/shared/data/buildings/astana_osm_buildings.geojson") };
        if !p.exists() {
            return eprintln!("no shared data");
        }
        let mut m = crate::CityModel::empty("astana");
        let mut rep = crate::report::BuildReport::default();
        crate::ingest::ingest_source(&crate::ingest::SourceSpec::new(p.to_str().unwrap()), &mut m, &mut rep).unwrap();
        assert!(m.buildings.len() > 30_000, "{}", m.buildings.len());
        let mut shapes: BTreeMap<&str, usize> = BTreeMap::new();
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        let mut notes: BTreeMap<String, usize> = BTreeMap::new();
        let mut tris = 0usize;
        for b in &m.buildings {
            // Positions are f32: build in a frame at the building (as a tile builder would at
            // its tile's centre), so millimetres survive.
            let Some(c) = geo::Centroid::centroid(&b.footprint) else { continue };
            let frame = LocalFrame::new(c.x(), c.y());
            match building_mesh(b, &frame, 350.0) {
                Ok(l3) => {
                    if let Err(e) = l3.mesh.check_watertight() {
                        panic!("building {} ({}): {e}", b.id, b.source.id);
                    }
                    assert!(l3.mesh.signed_volume() > 0.0);
                    let bounds = l3.mesh.bounds().unwrap();
                    assert!(bounds[0][2] >= 350.0 - 1e-3 && bounds[1][2] <= 350.0 + b.height + 1e-3);
                    *shapes.entry(l3.roof.as_str()).or_default() += 1;
                    for n in l3.notes {
                        let reason = n.split_once(": ").map(|x| x.1).unwrap_or(&n);
                        *notes.entry(reason.chars().take(70).collect()).or_default() += 1;
                    }
                    tris += l3.mesh.triangle_count();
                }
                Err(e) => *errors.entry(e.chars().take(50).collect()).or_default() += 1,
            }
        }
        let n_err: usize = errors.values().sum();
        eprintln!("roofs {shapes:?}\nnotes {notes:#?}\nerrors {errors:#?}\ntriangles {tris}");
        // Ingest has already repaired the footprints: errors must be rare.
        assert!(n_err * 1000 <= m.buildings.len(), "{n_err} errors: {errors:#?}");
        assert!(shapes.get("gabled").copied().unwrap_or(0) > 0 && shapes.get("hipped").copied().unwrap_or(0) > 0 && shapes["flat"] > 0);
        // The skeleton rarely fails on real footprints.
        let skel_fail: usize = notes.iter().filter(|(k, _)| k.contains("skeleton")).map(|(_, v)| *v).sum();
        assert!(skel_fail * 200 <= shapes.get("hipped").copied().unwrap_or(0), "{skel_fail} skeleton failures");
    }
}
