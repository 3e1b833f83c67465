//! Datum and frame conversions that GDAL/PROJ do not provide: GCJ-02 (the obfuscated datum of
//! Chinese web maps) and the local east-north-up frame used for 3D geometry.
//!
//! GCJ-02: the forward transform (WGS-84 → GCJ-02) is the widely published reference formula
//! (Krasovsky-ellipsoid parameters a = 6378245 m, ee = 0.00669342162296594323). It has no closed
//! inverse; [`gcj02_to_wgs84`] inverts it by fixed-point iteration to better than 1e-9° (~0.1 mm).

const GCJ_A: f64 = 6_378_245.0;
const GCJ_EE: f64 = 0.006_693_421_622_965_943_23;

/// WGS-84 ellipsoid.
pub const WGS84_A: f64 = 6_378_137.0;
pub const WGS84_F: f64 = 1.0 / 298.257_223_563;

/// GCJ-02 applies only inside mainland China; the reference formula leaves points outside this
/// rough box untouched, and so do we.
pub fn in_china(lon: f64, lat: f64) -> bool {
    (72.004..=137.8347).contains(&lon) && (0.8293..=55.8271).contains(&lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let mut ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    ret
}

fn transform_lon(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let mut ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    ret
}

/// WGS-84 → GCJ-02 (the reference formula).
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    use std::f64::consts::PI;
    if !in_china(lon, lat) {
        return (lon, lat);
    }
    let dlat = transform_lat(lon - 105.0, lat - 35.0);
    let dlon = transform_lon(lon - 105.0, lat - 35.0);
    let radlat = lat / 180.0 * PI;
    let magic = 1.0 - GCJ_EE * radlat.sin() * radlat.sin();
    let sqrt_magic = magic.sqrt();
    let dlat = (dlat * 180.0) / ((GCJ_A * (1.0 - GCJ_EE)) / (magic * sqrt_magic) * PI);
    let dlon = (dlon * 180.0) / (GCJ_A / sqrt_magic * radlat.cos() * PI);
    (lon + dlon, lat + dlat)
}

/// GCJ-02 → WGS-84 by iterating the forward formula until it reproduces the input to 1e-10°.
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if !in_china(lon, lat) {
        return (lon, lat);
    }
    let (mut wlon, mut wlat) = (lon, lat);
    for _ in 0..30 {
        let (glon, glat) = wgs84_to_gcj02(wlon, wlat);
        let (elon, elat) = (glon - lon, glat - lat);
        wlon -= elon;
        wlat -= elat;
        if elon.abs() < 1e-10 && elat.abs() < 1e-10 {
            break;
        }
    }
    (wlon, wlat)
}

/// Geodetic (lon°, lat°, h m) → ECEF metres on WGS-84.
pub fn geodetic_to_ecef(lon: f64, lat: f64, h: f64) -> [f64; 3] {
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let (sl, cl) = lat.to_radians().sin_cos();
    let (so, co) = lon.to_radians().sin_cos();
    let n = WGS84_A / (1.0 - e2 * sl * sl).sqrt();
    [(n + h) * cl * co, (n + h) * cl * so, (n * (1.0 - e2) + h) * sl]
}

/// ECEF → geodetic (lon°, lat°, h m) by Bowring's method, iterated (sub-millimetre on Earth).
pub fn ecef_to_geodetic(p: [f64; 3]) -> (f64, f64, f64) {
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let lon = p[1].atan2(p[0]);
    let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
    let mut lat = p[2].atan2(r * (1.0 - e2));
    let mut h = 0.0;
    for _ in 0..10 {
        let s = lat.sin();
        let n = WGS84_A / (1.0 - e2 * s * s).sqrt();
        h = r / lat.cos() - n;
        lat = p[2].atan2(r * (1.0 - e2 * n / (n + h)));
    }
    (lon.to_degrees(), lat.to_degrees(), h)
}

/// A local east-north-up frame tangent to the WGS-84 ellipsoid at an anchor.
#[derive(Debug, Clone, Copy)]
pub struct Enu {
    pub origin: [f64; 3],
    origin_ecef: [f64; 3],
    // rows: east, north, up (unit vectors in ECEF)
    rot: [[f64; 3]; 3],
}

impl Enu {
    pub fn new(lon: f64, lat: f64, h: f64) -> Self {
        let (sl, cl) = lat.to_radians().sin_cos();
        let (so, co) = lon.to_radians().sin_cos();
        Enu {
            origin: [lon, lat, h],
            origin_ecef: geodetic_to_ecef(lon, lat, h),
            rot: [[-so, co, 0.0], [-sl * co, -sl * so, cl], [cl * co, cl * so, sl]],
        }
    }
    /// Geodetic → local metres (east, north, up).
    pub fn from_geodetic(&self, lon: f64, lat: f64, h: f64) -> [f64; 3] {
        let p = geodetic_to_ecef(lon, lat, h);
        let d = [p[0] - self.origin_ecef[0], p[1] - self.origin_ecef[1], p[2] - self.origin_ecef[2]];
        let r = &self.rot;
        [
            r[0][0] * d[0] + r[0][1] * d[1] + r[0][2] * d[2],
            r[1][0] * d[0] + r[1][1] * d[1] + r[1][2] * d[2],
            r[2][0] * d[0] + r[2][1] * d[1] + r[2][2] * d[2],
        ]
    }
    /// Local metres → geodetic (lon°, lat°, h m).
    pub fn to_geodetic(&self, e: f64, n: f64, u: f64) -> (f64, f64, f64) {
        let r = &self.rot;
        let p = [
            self.origin_ecef[0] + r[0][0] * e + r[1][0] * n + r[2][0] * u,
            self.origin_ecef[1] + r[0][1] * e + r[1][1] * n + r[2][1] * u,
            self.origin_ecef[2] + r[0][2] * e + r[1][2] * n + r[2][2] * u,
        ];
        ecef_to_geodetic(p)
    }
    /// Column-major 4×4 ENU→ECEF transform (the 3D Tiles root `transform`).
    pub fn to_ecef_matrix(&self) -> [f64; 16] {
        let r = &self.rot;
        let o = &self.origin_ecef;
        [
            r[0][0], r[0][1], r[0][2], 0.0, //
            r[1][0], r[1][1], r[1][2], 0.0, //
            r[2][0], r[2][1], r[2][2], 0.0, //
            o[0], o[1], o[2], 1.0,
        ]
    }
}

/// Metres per degree of longitude and latitude at a latitude (spherical mean radius; for areas and
/// distances inside a city, error < 0.5 %).
pub fn metres_per_degree(lat: f64) -> (f64, f64) {
    let m = 6_371_008.8 * std::f64::consts::PI / 180.0;
    (m * lat.to_radians().cos(), m)
}

/// Geodesic area of a polygon in km², computed on the sphere (accurate to well under 1 % for a
/// city-sized polygon): each exterior ring's area less its holes', whatever the rings'
/// orientation (geo's polygon form subtracts the holes' *signed* areas, which adds them when
/// holes are clockwise, as oriented output has them).
pub fn area_km2(mp: &geo_types::MultiPolygon<f64>) -> f64 {
    use geo::ChamberlainDuquetteArea;
    let ring = |r: &geo_types::LineString<f64>| geo_types::Polygon::new(r.clone(), vec![]).chamberlain_duquette_unsigned_area();
    mp.0.iter().map(|p| ring(p.exterior()) - p.interiors().iter().map(ring).sum::<f64>()).sum::<f64>() / 1e6
}

/// Haversine distance in metres.
pub fn haversine_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.1.to_radians(), b.1.to_radians());
    let dla = la2 - la1;
    let dlo = (b.0 - a.0).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * h.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_subtracts_holes_in_either_orientation() {
        use geo::orient::{Direction, Orient};
        // A 0.02° square at 47°N with a 0.01° hole: three quarters of the square's area
        // (Chamberlain–Duquette's sphere, R = 6378137 m: R²·Δλ·(sin φ₂ − sin φ₁)).
        let sq = |x0: f64, y0: f64, d: f64| {
            geo_types::LineString::from(vec![(x0, y0), (x0 + d, y0), (x0 + d, y0 + d), (x0, y0 + d), (x0, y0)])
        };
        let p = geo_types::Polygon::new(sq(9.5, 47.0, 0.02), vec![sq(9.505, 47.005, 0.01)]);
        let full = area_km2(&geo_types::MultiPolygon(vec![geo_types::Polygon::new(sq(9.5, 47.0, 0.02), vec![])]));
        let r = 6_378.137_f64;
        let expect_full = r * r * 0.02_f64.to_radians() * (47.02_f64.to_radians().sin() - 47.0_f64.to_radians().sin());
        assert!((full - expect_full).abs() / expect_full < 1e-3, "{full} vs {expect_full}");
        for dir in [Direction::Default, Direction::Reversed] {
            let a = area_km2(&geo_types::MultiPolygon(vec![p.orient(dir)]));
            assert!((a - 0.75 * full).abs() / full < 1e-3, "{dir:?}: {a} vs {}", 0.75 * full);
        }
    }

    #[test]
    fn gcj02_forward_matches_reference_values() {
        // Values computed with an independent Python transcription of the published formula
        // (eviltransform's wgs2gcj), printed to 1e-9°.
        for ((lon, lat), (glon, glat)) in [
            ((116.397_128, 39.916_527), (116.403_372_494, 39.917_930_749)),
            ((114.28, 30.56), (114.285_415_556, 30.557_541_842)),
            ((123.4315, 41.8057), (123.437_635_698, 41.808_128_043)),
        ] {
            let (g0, g1) = wgs84_to_gcj02(lon, lat);
            assert!((g0 - glon).abs() < 2e-9 && (g1 - glat).abs() < 2e-9, "{lon},{lat} -> {g0},{g1}");
        }
        // Outside China: unchanged.
        assert_eq!(wgs84_to_gcj02(2.35, 48.85), (2.35, 48.85));
    }

    #[test]
    fn gcj02_round_trip_is_sub_half_metre_over_shenyang() {
        let mut worst: f64 = 0.0;
        for i in 0..50 {
            for j in 0..50 {
                let lon = 122.4 + 1.4 * i as f64 / 49.0;
                let lat = 41.2 + 1.7 * j as f64 / 49.0;
                let (g0, g1) = wgs84_to_gcj02(lon, lat);
                let (w0, w1) = gcj02_to_wgs84(g0, g1);
                worst = worst.max(haversine_m((lon, lat), (w0, w1)));
            }
        }
        assert!(worst < 0.5, "worst round trip error {worst} m");
        assert!(worst < 0.001, "iteration should converge far below a millimetre: {worst} m");
    }

    #[test]
    fn gcj02_shift_in_shenyang_is_about_500m_east_260m_north() {
        let (lon, lat) = (123.4315, 41.8057);
        let (glon, glat) = wgs84_to_gcj02(lon, lat);
        let (mx, my) = metres_per_degree(lat);
        let (de, dn) = ((glon - lon) * mx, (glat - lat) * my);
        assert!((400.0..600.0).contains(&de), "east shift {de}");
        assert!((180.0..340.0).contains(&dn), "north shift {dn}");
    }

    #[test]
    fn enu_round_trips_and_is_metric() {
        let enu = Enu::new(123.43, 41.80, 50.0);
        let p = enu.from_geodetic(123.44, 41.80, 50.0);
        // 0.01° of longitude at 41.8° ≈ 829.9 m.
        assert!((p[0] - 829.9).abs() < 1.5, "{p:?}");
        let (lon, lat, h) = enu.to_geodetic(p[0], p[1], p[2]);
        assert!((lon - 123.44).abs() < 1e-9 && (lat - 41.80).abs() < 1e-9 && (h - 50.0).abs() < 1e-4);
        let (lon, lat, h) = ecef_to_geodetic(geodetic_to_ecef(-70.0, -33.0, 1234.5));
        assert!((lon + 70.0).abs() < 1e-10 && (lat + 33.0).abs() < 1e-10 && (h - 1234.5).abs() < 1e-5);
    }
}
