//! Reading the cnmaps district boundaries (bare GeoJSON geometries in GCJ-02).

use crate::geodesy;
use crate::model::{District, Names, SourceRef};
use crate::report::IngestError;
use geo_types::{Coord, LineString, MultiPolygon, Polygon};
use std::path::{Path, PathBuf};

/// The 13 county-level divisions of Shenyang (GB/T 2260): adcode, Chinese name, English name,
/// short English name (used in generated POI names), and whether it is one of the 9 urban
/// districts whose union bounds the generated built-up area.
pub const DIVISIONS: [(u32, &str, &str, &str, bool); 13] = [
    (210102, "和平区", "Heping District", "Heping", true),
    (210103, "沈河区", "Shenhe District", "Shenhe", true),
    (210104, "大东区", "Dadong District", "Dadong", true),
    (210105, "皇姑区", "Huanggu District", "Huanggu", true),
    (210106, "铁西区", "Tiexi District", "Tiexi", true),
    (210111, "苏家屯区", "Sujiatun District", "Sujiatun", true),
    (210112, "浑南区", "Hunnan District", "Hunnan", true),
    (210113, "沈北新区", "Shenbei New District", "Shenbei", true),
    (210114, "于洪区", "Yuhong District", "Yuhong", true),
    (210115, "辽中区", "Liaozhong District", "Liaozhong", false),
    (210123, "康平县", "Kangping County", "Kangping", false),
    (210124, "法库县", "Faku County", "Faku", false),
    (210181, "新民市", "Xinmin City", "Xinmin", false),
];

/// Where the boundaries are looked for, in order (see [`super::find_boundaries`]).
pub fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = explicit {
        v.push(p.to_path_buf());
        return v;
    }
    if let Some(p) = std::env::var_os("CITYTWIN_BOUNDARIES") {
        if !p.is_empty() {
            v.push(PathBuf::from(p));
        }
    }
    v.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/shenyang/cnmaps"));
    v.push(PathBuf::from("./../shared/data/shenyang/cnmaps"));
    v.push(PathBuf::from("./../../shared/data/shenyang/cnmaps"));
    if let Some(home) = std::env::var_os("HOME") {
        v.push(PathBuf::from(home).join(".cache/citytwin/cnmaps"));
    }
    v
}

/// A directory holds the boundaries when every district file is there.
pub fn looks_complete(dir: &Path) -> bool {
    DIVISIONS.iter().all(|d| dir.join(format!("{}.geojson", d.0)).is_file())
}

fn ring(file: &str, v: &serde_json::Value, convert: bool) -> Result<LineString<f64>, IngestError> {
    let pts = v.as_array().ok_or_else(|| IngestError::file(file, "ring is not an array"))?;
    let mut out = Vec::with_capacity(pts.len() + 1);
    for p in pts {
        let a = p.as_array().ok_or_else(|| IngestError::file(file, "position is not an array"))?;
        let (x, y) = match (a.first().and_then(|x| x.as_f64()), a.get(1).and_then(|y| y.as_f64())) {
            (Some(x), Some(y)) if x.is_finite() && y.is_finite() => (x, y),
            _ => return Err(IngestError::file(file, "position without two finite numbers")),
        };
        let (x, y) = if convert { geodesy::gcj02_to_wgs84(x, y) } else { (x, y) };
        out.push(Coord { x, y });
    }
    if out.len() < 3 {
        return Err(IngestError::file(file, format!("ring with {} positions", out.len())));
    }
    if out.first() != out.last() {
        out.push(out[0]);
    }
    Ok(LineString(out))
}

fn polygon(file: &str, v: &serde_json::Value, convert: bool) -> Result<Polygon<f64>, IngestError> {
    let rings = v.as_array().ok_or_else(|| IngestError::file(file, "polygon is not an array of rings"))?;
    let mut it = rings.iter();
    let ext = ring(file, it.next().ok_or_else(|| IngestError::file(file, "polygon without rings"))?, convert)?;
    let holes = it.map(|r| ring(file, r, convert)).collect::<Result<Vec<_>, _>>()?;
    Ok(Polygon::new(ext, holes))
}

/// Parses a GeoJSON geometry (bare, or wrapped in a Feature / single-feature FeatureCollection)
/// of type Polygon or MultiPolygon. With `convert`, every vertex goes GCJ-02 → WGS-84.
pub fn parse_multipolygon(file: &str, v: &serde_json::Value, convert: bool) -> Result<MultiPolygon<f64>, IngestError> {
    let ty = v.get("type").and_then(|t| t.as_str()).ok_or_else(|| IngestError::file(file, "no GeoJSON \"type\""))?;
    match ty {
        "Feature" => {
            let g = v.get("geometry").ok_or_else(|| IngestError::file(file, "Feature without geometry"))?;
            parse_multipolygon(file, g, convert)
        }
        "FeatureCollection" => {
            let fs = v
                .get("features")
                .and_then(|f| f.as_array())
                .ok_or_else(|| IngestError::file(file, "FeatureCollection without features"))?;
            let mut polys = Vec::new();
            for f in fs {
                polys.extend(parse_multipolygon(file, f, convert)?.0);
            }
            Ok(MultiPolygon(polys))
        }
        "Polygon" => {
            let c = v.get("coordinates").ok_or_else(|| IngestError::file(file, "Polygon without coordinates"))?;
            Ok(MultiPolygon(vec![polygon(file, c, convert)?]))
        }
        "MultiPolygon" => {
            let c = v
                .get("coordinates")
                .and_then(|c| c.as_array())
                .ok_or_else(|| IngestError::file(file, "MultiPolygon without coordinates array"))?;
            Ok(MultiPolygon(c.iter().map(|p| polygon(file, p, convert)).collect::<Result<Vec<_>, _>>()?))
        }
        other => Err(IngestError::file(file, format!("expected a Polygon or MultiPolygon geometry, found {other}"))),
    }
}

/// Reads one GeoJSON file as a MultiPolygon (GCJ-02 → WGS-84 when `convert`).
pub fn read_multipolygon(path: &Path, convert: bool) -> Result<MultiPolygon<f64>, IngestError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| IngestError::file(&file, format!("cannot read: {e}")))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| IngestError::file(&file, format!("not JSON: {e}")))?;
    let mp = parse_multipolygon(&file, &v, convert)?;
    if mp.0.is_empty() {
        return Err(IngestError::file(&file, "empty geometry"));
    }
    Ok(mp)
}

pub fn load(dir: &Path) -> Result<Vec<District>, IngestError> {
    let mut out = Vec::with_capacity(DIVISIONS.len());
    for (i, &(code, zh, en, _, _)) in DIVISIONS.iter().enumerate() {
        let path = dir.join(format!("{code}.geojson"));
        let geometry = read_multipolygon(&path, true)?;
        let area_km2 = geodesy::area_km2(&geometry);
        out.push(District {
            id: i as u16,
            source: SourceRef { source: 0, id: code.to_string() },
            adcode: code,
            names: Names { zh: Some(zh.to_string()), en: Some(en.to_string()), local: None },
            geometry,
            area_km2,
        });
    }
    Ok(out)
}
