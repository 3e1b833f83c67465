//! Formats and tile math shared by the server and the viewer.
//!
//! Only Web Mercator tile math lives here so far; MVT, tile archives and
//! 3D Tiles/glTF writing arrive with their issues. No GDAL, no Bevy.

pub mod mvt;
pub mod pmtiles;
#[cfg(feature = "mbtiles")]
pub mod mbtiles;

use serde::{Deserialize, Serialize};

/// Mean Earth radius used by Web Mercator (EPSG:3857), metres.
pub const WEB_MERCATOR_RADIUS: f64 = 6_378_137.0;

/// A tile address in the XYZ scheme (y grows southwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TileId {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

impl TileId {
    /// Returns `None` when x or y is out of range for z, or z > 30.
    pub fn new(z: u8, x: u32, y: u32) -> Option<Self> {
        if z > 30 {
            return None;
        }
        let n = 1u64 << z;
        ((x as u64) < n && (y as u64) < n).then_some(TileId { z, x, y })
    }

    /// The tile containing a WGS-84 point at zoom z.
    pub fn containing(lon: f64, lat: f64, z: u8) -> Self {
        let n = (1u64 << z) as f64;
        let (mx, my) = lonlat_to_unit(lon, lat);
        let x = ((mx * n).floor() as i64).clamp(0, n as i64 - 1) as u32;
        let y = ((my * n).floor() as i64).clamp(0, n as i64 - 1) as u32;
        TileId { z, x, y }
    }

    /// WGS-84 bounds `[west, south, east, north]`.
    pub fn bounds(&self) -> [f64; 4] {
        let n = (1u64 << self.z) as f64;
        let (w, n_lat) = unit_to_lonlat(self.x as f64 / n, self.y as f64 / n);
        let (e, s_lat) = unit_to_lonlat((self.x + 1) as f64 / n, (self.y + 1) as f64 / n);
        [w, s_lat, e, n_lat]
    }
}

/// WGS-84 lon/lat to the unit square of Web Mercator (x east, y south), both in 0..1.
pub fn lonlat_to_unit(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-85.051_128_779_806_59, 85.051_128_779_806_59);
    let x = (lon + 180.0) / 360.0;
    let s = lat.to_radians().sin();
    let y = 0.5 - ((1.0 + s) / (1.0 - s)).ln() / (4.0 * std::f64::consts::PI);
    (x, y)
}

/// Inverse of [`lonlat_to_unit`].
pub fn unit_to_lonlat(x: f64, y: f64) -> (f64, f64) {
    let lon = x * 360.0 - 180.0;
    let lat = (std::f64::consts::PI * (1.0 - 2.0 * y)).sinh().atan().to_degrees();
    (lon, lat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_bounds_match_hand_computed_values() {
        // z1 x0 y0 is the north-west quarter: lon -180..0, lat 0..85.0511.
        let b = TileId::new(1, 0, 0).unwrap().bounds();
        assert!((b[0] + 180.0).abs() < 1e-12 && b[2].abs() < 1e-12);
        assert!(b[1].abs() < 1e-9 && (b[3] - 85.051_128_779_806_59).abs() < 1e-9);
        // Shenyang's 市府广场 (123.4315, 41.8057) lies in z14 tile 13809/6093,
        // computed by hand: x = floor((123.4315+180)/360*2^14) = 13809,
        // y = floor((0.5 - ln((1+sin φ)/(1-sin φ))/4π)*2^14) = 6093.
        let t = TileId::containing(123.4315, 41.8057, 14);
        assert_eq!((t.x, t.y), (13809, 6093));
        assert!(TileId::new(2, 4, 0).is_none());
    }
}
