//! Reprojection of source coordinates to WGS-84 lon/lat through GDAL/PROJ, followed by the
//! declared datum conversion (GCJ-02 → WGS-84) where a source is declared to be GCJ-02.

use super::Datum;
use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};

/// How the source's coordinate tuples are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AxisOrder {
    /// x = easting/longitude, y = northing/latitude whatever the CRS says (GeoJSON, Shapefile,
    /// GDAL layers, CityJSON).
    Traditional,
    /// The CRS definition's own axis order (GML, so EPSG:6697 and EPSG:4326 are lat, lon).
    Authority,
}

/// A converter from one source CRS (+ declared datum) to WGS-84 lon/lat with height kept.
pub struct ToWgs84 {
    ct: Option<CoordTransform>,
    datum: Datum,
    /// `EPSG:xxxx` where GDAL can identify the CRS, else its name.
    pub label: String,
    /// True when the source CRS is geographic (degrees), e.g. for choosing tolerances.
    pub geographic: bool,
}

fn wgs84() -> Result<SpatialRef, String> {
    let mut t = SpatialRef::from_epsg(4326).map_err(|e| format!("cannot create EPSG:4326: {e}"))?;
    t.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    Ok(t)
}

/// Parses a user CRS string: `EPSG:3946`, `urn:ogc:def:crs:EPSG::6697`,
/// `http://www.opengis.net/def/crs/EPSG/0/7415`, a bare number, WKT or a PROJ string.
pub fn parse_crs(def: &str) -> Result<SpatialRef, String> {
    let d = def.trim();
    if let Some(code) = epsg_code_of(d) {
        return SpatialRef::from_epsg(code).map_err(|_| format!("unknown CRS '{def}' (EPSG:{code} is not in the PROJ database)"));
    }
    SpatialRef::from_definition(d).map_err(|_| format!("unknown CRS '{def}'"))
}

/// Extracts an EPSG code from the usual spellings (`EPSG:x`, `urn:ogc:def:crs:EPSG::x`,
/// `urn:ogc:def:crs:EPSG:6.12:x`, `http(s)://www.opengis.net/def/crs/EPSG/0/x`, `x`).
pub fn epsg_code_of(def: &str) -> Option<u32> {
    let d = def.trim();
    if let Ok(n) = d.parse::<u32>() {
        return Some(n);
    }
    let upper = d.to_ascii_uppercase();
    if upper.starts_with("EPSG:") {
        return d[5..].trim().parse().ok();
    }
    if upper.contains("EPSG") && (upper.starts_with("URN:") || upper.starts_with("HTTP")) {
        let last = d.rsplit(['/', ':']).next()?;
        return last.parse().ok();
    }
    None
}

impl ToWgs84 {
    /// From a source SRS. Fails with a message naming the CRS when PROJ finds no transformation.
    pub fn new(src: &SpatialRef, order: AxisOrder, datum: Datum) -> Result<Self, String> {
        let mut src = src.clone();
        src.set_axis_mapping_strategy(match order {
            AxisOrder::Traditional => AxisMappingStrategy::TraditionalGisOrder,
            AxisOrder::Authority => AxisMappingStrategy::AuthorityCompliant,
        });
        let label = match (src.auth_name(), src.auth_code()) {
            (Some(a), Ok(c)) => format!("{a}:{c}"),
            _ => {
                let mut s2 = src.clone();
                match (s2.auto_identify_epsg(), s2.auth_code()) {
                    (Ok(()), Ok(c)) => format!("EPSG:{c}"),
                    _ => src.name().unwrap_or_else(|| "unnamed CRS".into()),
                }
            }
        };
        let geographic = src.is_geographic();
        let target = wgs84()?;
        let is_wgs84_lonlat = label == "EPSG:4326" && order == AxisOrder::Traditional;
        let ct = if is_wgs84_lonlat {
            None
        } else {
            Some(CoordTransform::new(&src, &target).map_err(|e| format!("no transformation from {label} to WGS-84: {e}"))?)
        };
        Ok(ToWgs84 { ct, datum, label, geographic })
    }

    /// From a user CRS string (see [`parse_crs`]).
    pub fn from_definition(def: &str, order: AxisOrder, datum: Datum) -> Result<Self, String> {
        Self::new(&parse_crs(def)?, order, datum)
    }

    /// Already WGS-84 lon/lat; only the datum conversion applies.
    pub fn identity(datum: Datum) -> Self {
        ToWgs84 { ct: None, datum, label: "EPSG:4326".into(), geographic: true }
    }

    /// Transforms in place. `z` may be empty (2D). Fails if any point cannot be transformed.
    pub fn transform(&self, x: &mut [f64], y: &mut [f64], z: &mut [f64]) -> Result<(), String> {
        if let Some(ct) = &self.ct {
            if !x.is_empty() {
                if z.is_empty() {
                    let mut zz = vec![0.0; x.len()];
                    ct.transform_coords(x, y, &mut zz).map_err(|e| format!("reprojection from {} failed: {e}", self.label))?;
                } else {
                    ct.transform_coords(x, y, z).map_err(|e| format!("reprojection from {} failed: {e}", self.label))?;
                }
            }
        }
        if self.datum == Datum::Gcj02 {
            for (lon, lat) in x.iter_mut().zip(y.iter_mut()) {
                let (a, b) = crate::geodesy::gcj02_to_wgs84(*lon, *lat);
                *lon = a;
                *lat = b;
            }
        }
        for (lon, lat) in x.iter().zip(y.iter()) {
            if !lon.is_finite() || !lat.is_finite() || lon.abs() > 180.0 || lat.abs() > 90.0 {
                return Err(format!("coordinate ({lon}, {lat}) out of range after reprojection from {}", self.label));
            }
        }
        Ok(())
    }

    /// Transforms one point.
    pub fn point(&self, x: f64, y: f64, z: f64) -> Result<(f64, f64, f64), String> {
        let (mut a, mut b, mut c) = ([x], [y], [z]);
        self.transform(&mut a, &mut b, &mut c)?;
        Ok((a[0], b[0], c[0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsg_spellings() {
        assert_eq!(epsg_code_of("EPSG:3946"), Some(3946));
        assert_eq!(epsg_code_of("urn:ogc:def:crs:EPSG::6697"), Some(6697));
        assert_eq!(epsg_code_of("http://www.opengis.net/def/crs/EPSG/0/7415"), Some(7415));
        assert_eq!(epsg_code_of("https://www.opengis.net/def/crs/EPSG/0/28992"), Some(28992));
        assert_eq!(epsg_code_of("urn:ogc:def:crs:EPSG:6.12:3068"), Some(3068));
        assert_eq!(epsg_code_of("4490"), Some(4490));
        assert_eq!(epsg_code_of("+proj=longlat"), None);
    }

    #[test]
    fn lyon_cc46_lands_in_lyon() {
        // Place des Terreaux, Lyon: RGF93 CC46 (EPSG:3946) ≈ (1842220, 5176470) ↔ (4.8340, 45.7675).
        let t = ToWgs84::from_definition("EPSG:3946", AxisOrder::Traditional, Datum::Native).unwrap();
        let (lon, lat, _) = t.point(1_842_220.0, 5_176_470.0, 0.0).unwrap();
        assert!((lon - 4.834).abs() < 0.01 && (lat - 45.7675).abs() < 0.01, "{lon},{lat}");
        assert_eq!(t.label, "EPSG:3946");
    }

    #[test]
    fn epsg_6697_in_authority_order_is_lat_lon() {
        let t = ToWgs84::from_definition("EPSG:6697", AxisOrder::Authority, Datum::Native).unwrap();
        let (lon, lat, h) = t.point(35.6895, 139.6917, 40.0).unwrap();
        assert!((lon - 139.6917).abs() < 1e-6 && (lat - 35.6895).abs() < 1e-6, "{lon},{lat}");
        assert!((h - 40.0).abs() < 100.0);
    }

    #[test]
    fn cgcs2000_is_within_a_metre_of_wgs84() {
        let t = ToWgs84::from_definition("EPSG:4490", AxisOrder::Traditional, Datum::Native).unwrap();
        let (lon, lat, _) = t.point(123.4315, 41.8057, 0.0).unwrap();
        assert!(crate::geodesy::haversine_m((lon, lat), (123.4315, 41.8057)) < 1.0);
    }

    #[test]
    fn unknown_epsg_is_named() {
        let e = ToWgs84::from_definition("EPSG:999999", AxisOrder::Traditional, Datum::Native).err().unwrap();
        assert!(e.contains("999999"), "{e}");
    }
}
