//! WGS-84 geodesy in f64: geodetic ↔ ECEF, local east-north-up frames, and the viewer's *world*
//! frame: an ENU frame at the tileset's centre with Bevy's axes (x = east, y = up, z = south).
//! Everything the client computes (bounding volumes, SSE, culling, vertex baking) is in world
//! coordinates in f64; only the final vertex and camera positions are cast to f32 for rendering,
//! so precision is ~1 mm anywhere within 20 km of the centre.

use glam::{DMat3, DMat4, DVec3};

pub const WGS84_A: f64 = 6_378_137.0;
pub const WGS84_F: f64 = 1.0 / 298.257_223_563;
pub const WGS84_B: f64 = WGS84_A * (1.0 - WGS84_F);
const E2: f64 = WGS84_F * (2.0 - WGS84_F);

/// (lon°, lat°, height above the ellipsoid m) → ECEF metres.
pub fn geodetic_to_ecef(lon_deg: f64, lat_deg: f64, h: f64) -> DVec3 {
    let (lon, lat) = (lon_deg.to_radians(), lat_deg.to_radians());
    let n = WGS84_A / (1.0 - E2 * lat.sin() * lat.sin()).sqrt();
    DVec3::new((n + h) * lat.cos() * lon.cos(), (n + h) * lat.cos() * lon.sin(), (n * (1.0 - E2) + h) * lat.sin())
}

/// ECEF → (lon°, lat°, h m); Bowring's iteration, sub-millimetre near the surface.
pub fn ecef_to_geodetic(p: DVec3) -> (f64, f64, f64) {
    let lon = p.y.atan2(p.x);
    let r = (p.x * p.x + p.y * p.y).sqrt();
    if r < 1e-6 {
        let lat = if p.z >= 0.0 { 90.0 } else { -90.0 };
        return (lon.to_degrees(), lat, p.z.abs() - WGS84_B);
    }
    let mut lat = (p.z / (r * (1.0 - E2))).atan();
    let mut h = 0.0;
    for _ in 0..6 {
        let n = WGS84_A / (1.0 - E2 * lat.sin() * lat.sin()).sqrt();
        h = r / lat.cos() - n;
        lat = (p.z / (r * (1.0 - E2 * n / (n + h)))).atan();
    }
    (lon.to_degrees(), lat.to_degrees(), h)
}

/// The rotation whose columns are east, north, up at (lon°, lat°).
pub fn enu_axes(lon_deg: f64, lat_deg: f64) -> DMat3 {
    let (lon, lat) = (lon_deg.to_radians(), lat_deg.to_radians());
    let east = DVec3::new(-lon.sin(), lon.cos(), 0.0);
    let north = DVec3::new(-lat.sin() * lon.cos(), -lat.sin() * lon.sin(), lat.cos());
    let up = DVec3::new(lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin());
    DMat3::from_cols(east, north, up)
}

/// ENU (e, n, u) → Bevy (x = e, y = u, z = −n).
pub const ENU_TO_BEVY: DMat3 = DMat3::from_cols(DVec3::X, DVec3::new(0.0, 0.0, -1.0), DVec3::Y);

/// The viewer's world frame: ENU at `origin` (lon°, lat°, h) with Bevy axes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorldFrame {
    pub origin: (f64, f64, f64),
    /// world ← ECEF
    pub from_ecef: DMat4,
    /// ECEF ← world
    pub to_ecef: DMat4,
}

impl WorldFrame {
    pub fn new(lon_deg: f64, lat_deg: f64, h: f64) -> Self {
        let o = geodetic_to_ecef(lon_deg, lat_deg, h);
        let r = enu_axes(lon_deg, lat_deg) * ENU_TO_BEVY.transpose(); // world → ECEF rotation
        let to_ecef = DMat4::from_cols(
            r.x_axis.extend(0.0),
            r.y_axis.extend(0.0),
            r.z_axis.extend(0.0),
            o.extend(1.0),
        );
        WorldFrame { origin: (lon_deg, lat_deg, h), from_ecef: to_ecef.inverse(), to_ecef }
    }

    pub fn world_of_geodetic(&self, lon_deg: f64, lat_deg: f64, h: f64) -> DVec3 {
        self.from_ecef.transform_point3(geodetic_to_ecef(lon_deg, lat_deg, h))
    }

    pub fn geodetic_of_world(&self, p: DVec3) -> (f64, f64, f64) {
        ecef_to_geodetic(self.to_ecef.transform_point3(p))
    }

    /// East, north, up at a geodetic position, as world directions.
    pub fn enu_at(&self, lon_deg: f64, lat_deg: f64) -> (DVec3, DVec3, DVec3) {
        let a = enu_axes(lon_deg, lat_deg);
        let f = |v: DVec3| self.from_ecef.transform_vector3(v);
        (f(a.x_axis), f(a.y_axis), f(a.z_axis))
    }
}

/// A camera pose given as `--at lon,lat,alt,heading,pitch`: heading in degrees clockwise from
/// north, pitch in degrees above the horizon (−90 looks straight down), no roll — CesiumJS's
/// convention, taken in the ENU frame at the camera's own position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPose {
    pub lon: f64,
    pub lat: f64,
    pub alt: f64,
    pub heading_deg: f64,
    pub pitch_deg: f64,
}

impl GeoPose {
    /// (position, forward, up) in world coordinates.
    pub fn to_world(&self, w: &WorldFrame) -> (DVec3, DVec3, DVec3) {
        let pos = w.world_of_geodetic(self.lon, self.lat, self.alt);
        let (e, n, u) = w.enu_at(self.lon, self.lat);
        let (h, p) = (self.heading_deg.to_radians(), self.pitch_deg.to_radians());
        let fwd = (e * h.sin() + n * h.cos()) * p.cos() + u * p.sin();
        let right = e * h.cos() - n * h.sin();
        let up = right.cross(fwd).normalize();
        (pos, fwd.normalize(), up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecef_round_trip_and_known_point() {
        // 市府广场, Shenyang: lon 123.4315, lat 41.8057
        let p = geodetic_to_ecef(123.4315, 41.8057, 50.0);
        let (lon, lat, h) = ecef_to_geodetic(p);
        assert!((lon - 123.4315).abs() < 1e-9 && (lat - 41.8057).abs() < 1e-9 && (h - 50.0).abs() < 1e-4);
        // equator / prime meridian: (a, 0, 0)
        let q = geodetic_to_ecef(0.0, 0.0, 0.0);
        assert!((q.x - WGS84_A).abs() < 1e-6 && q.y.abs() < 1e-6 && q.z.abs() < 1e-6);
        // north pole: (0, 0, b)
        let np = geodetic_to_ecef(0.0, 90.0, 0.0);
        assert!((np.z - WGS84_B).abs() < 1e-6);
    }

    #[test]
    fn world_frame_axes_are_bevy_east_up_south() {
        let w = WorldFrame::new(123.43, 41.80, 0.0);
        assert!(w.world_of_geodetic(123.43, 41.80, 0.0).length() < 1e-6);
        let up = w.world_of_geodetic(123.43, 41.80, 100.0);
        assert!((up - DVec3::new(0.0, 100.0, 0.0)).length() < 1e-6, "{up}");
        // 0.001° north ≈ 111.1 m along −z; 0.001° east ≈ 83.0 m along +x (cos 41.8°)
        let n = w.world_of_geodetic(123.43, 41.801, 0.0);
        assert!(n.z < -110.0 && n.z > -112.0 && n.x.abs() < 1e-3, "{n}");
        let e = w.world_of_geodetic(123.431, 41.80, 0.0);
        assert!(e.x > 82.5 && e.x < 83.5 && e.z.abs() < 1e-3, "{e}");
        // curvature: 15 km east the ellipsoid is ~17.6 m below the tangent plane
        let far = w.world_of_geodetic(123.43 + 15_000.0 / 83_000.0, 41.80, 0.0);
        assert!(far.y < -17.0 && far.y > -18.5, "{far}");
    }

    #[test]
    fn pose_heading_and_pitch() {
        let w = WorldFrame::new(123.43, 41.80, 0.0);
        let look = |h: f64, p: f64| GeoPose { lon: 123.43, lat: 41.80, alt: 500.0, heading_deg: h, pitch_deg: p }.to_world(&w);
        let (pos, f, u) = look(0.0, 0.0);
        assert!((pos.y - 500.0).abs() < 1e-6);
        assert!((f - DVec3::new(0.0, 0.0, -1.0)).length() < 1e-9, "north is −z: {f}");
        assert!((u - DVec3::Y).length() < 1e-9);
        let (_, f, _) = look(90.0, 0.0);
        assert!((f - DVec3::X).length() < 1e-9, "east is +x: {f}");
        let (_, f, u) = look(0.0, -90.0);
        assert!((f + DVec3::Y).length() < 1e-9 && (u - DVec3::new(0.0, 0.0, -1.0)).length() < 1e-9, "{f} {u}");
        let (_, f, _) = look(180.0, -45.0);
        let s = 0.5f64.sqrt();
        assert!((f - DVec3::new(0.0, -s, s)).length() < 1e-9, "{f}");
    }
}
