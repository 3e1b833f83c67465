//! L3 geometry generated from footprints: roofs (flat, gabled, hipped via a straight skeleton,
//! pyramidal, skillion), facades with window UVs and a procedural texture set, and trees in
//! parks. Everything is in local metres (x east, y north, z up); the 3D Tiles builder places the
//! meshes. Rules: docs/ARCHITECTURE.md, "L3 geometry".

pub mod mesh;
pub mod skeleton;

pub use mesh::{Material, Mesh, Transform};
pub mod facade;
pub mod roof;
pub mod trees;

use geo_types::{Coord, MultiPolygon, Polygon};

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
