//! Ingest: every source becomes canonical features in WGS-84.
//!
//! A source is a path or a DSN plus per-source options (CRS override, declared datum, placement
//! file). Its kind is chosen from the extension (or `PG:` prefix):
//! - `.city.json`/`.json` with `"type": "CityJSON"` → [`crate::cim::cityjson`]
//! - `.gml`/`.xml` with a CityGML root → [`crate::cim::citygml`]
//! - `.glb`/`.gltf` and `.ifc` → [`crate::cim::placed`] (needs a placement, IFC may use IfcSite)
//! - `.osm.pbf`/`.pbf`/`.osm`/`.osm.gz` → [`osm`] (native, order-independent; GDAL's OSM driver
//!   drops multipolygons of files not sorted node → way → relation)
//! - everything else → GDAL ([`gdal_vector`]): GeoJSON, Shapefile, GeoPackage, FlatGeobuf,
//!   PostGIS `PG:` DSNs, …
//!
//! Fatal problems with a whole source (unreadable file, unknown CRS, malformed document) are
//! [`IngestError`]s naming the file and, where there is one, the feature. Problems with single
//! features are repaired or dropped and tallied in the [`BuildReport`].

pub mod attrs;
pub mod crs;
pub mod gdal_vector;
pub mod geom;
pub mod osm;

use crate::model::{CityModel, SourceInfo};
use crate::report::{BuildReport, IngestError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A horizontal datum a source may be declared to be in, beyond what its CRS says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datum {
    /// Coordinates are what the CRS says (the default).
    Native,
    /// Coordinates are GCJ-02 (AMap/Tencent "Mars" coordinates): converted to WGS-84 after the CRS
    /// transform. Only meaningful for geographic lon/lat inside China.
    Gcj02,
}

impl std::str::FromStr for Datum {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "gcj02" | "gcj-02" | "gcj" => Ok(Datum::Gcj02),
            "native" | "wgs84" | "none" => Ok(Datum::Native),
            other => Err(format!("unknown datum '{other}' (expected gcj02 or native)")),
        }
    }
}

/// Which layer a GDAL source's features go to when their attributes do not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerHint {
    Buildings,
    Roads,
    Water,
    Landuse,
    Pois,
    Districts,
    /// Street-level divisions (街道/乡镇).
    Streets,
}

impl std::str::FromStr for LayerHint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "buildings" => LayerHint::Buildings,
            "roads" => LayerHint::Roads,
            "water" => LayerHint::Water,
            "landuse" => LayerHint::Landuse,
            "pois" => LayerHint::Pois,
            "districts" => LayerHint::Districts,
            "streets" => LayerHint::Streets,
            o => return Err(format!("unknown layer '{o}' (buildings, roads, water, landuse, pois, districts, streets)")),
        })
    }
}

/// One `--source` of a build with its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSpec {
    /// A file path or a GDAL connection string (`PG:dbname=…`).
    pub path: String,
    /// CRS override (`EPSG:4490`, WKT, PROJ string). Required where the source has none
    /// (CityGML without srsName).
    pub crs: Option<String>,
    pub datum: Datum,
    /// Placement JSON (anchor lon/lat/height, heading, scale) for glTF/IFC models.
    pub placement: Option<PathBuf>,
    /// Force every feature of a GIS source into this layer.
    pub layer: Option<LayerHint>,
    /// OSM: the `admin_level` of `boundary=administrative` areas read as districts (default: 5
    /// and 6); streets are then the levels above it up to 9 (default 7–9).
    pub district_admin_level: Option<u8>,
}

impl SourceSpec {
    pub fn new(path: impl Into<String>) -> Self {
        SourceSpec { path: path.into(), crs: None, datum: Datum::Native, placement: None, layer: None, district_admin_level: None }
    }
    /// The path with any password in a DSN masked, for manifests and logs.
    pub fn display_path(&self) -> String {
        mask_password(&self.path)
    }
    /// A default model name for this source: the file stem, or for a `PG:` DSN its first
    /// `tables=` table (else its `dbname=`) — never any other part of the DSN (it may hold a
    /// password, and `/` in a socket directory would make `file_name` pick up the rest).
    pub fn default_name(&self) -> String {
        if self.path.to_ascii_lowercase().starts_with("pg:") {
            let param = |key: &str| {
                self.path[3..].split_whitespace().find_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    (k.eq_ignore_ascii_case(key) && !v.is_empty()).then(|| v.trim_matches('\'').to_string())
                })
            };
            let table = param("tables").map(|t| {
                let first = t.split(',').next().unwrap_or_default();
                let first = first.split('(').next().unwrap_or_default(); // table(geom_column)
                first.rsplit('.').next().unwrap_or_default().to_string() // schema.table
            });
            return table.filter(|t| !t.is_empty()).or_else(|| param("dbname")).unwrap_or_else(|| "postgis".into());
        }
        std::path::Path::new(&self.path)
            .file_name()
            .map(|f| f.to_string_lossy().split('.').next().unwrap_or("model").to_string())
            .unwrap_or_else(|| "model".into())
    }
}

/// Replaces the value of every `password=` in a DSN (also right after `PG:`, with spaces around
/// `=`, or single-quoted as libpq allows) by `***`.
fn mask_password(dsn: &str) -> String {
    let lower = dsn.to_ascii_lowercase();
    let b = dsn.as_bytes();
    let mut out = String::with_capacity(dsn.len());
    let mut i = 0;
    while let Some(rel) = lower[i..].find("password") {
        let start = i + rel;
        let mut j = start + "password".len();
        // A key, not the tail of another word (`mypassword=`): preceded by start, space or `:`.
        let is_key = start == 0 || matches!(b[start - 1], b' ' | b'\t' | b':');
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if !is_key || j >= b.len() || b[j] != b'=' {
            out.push_str(&dsn[i..start + 1]);
            i = start + 1;
            continue;
        }
        j += 1;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        out.push_str(&dsn[i..j]);
        out.push_str("***");
        if j < b.len() && b[j] == b'\'' {
            j += 1;
            while j < b.len() && b[j] != b'\'' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            j = (j + 1).min(b.len());
        } else {
            while j < b.len() && !b[j].is_ascii_whitespace() {
                j += 1;
            }
        }
        i = j;
    }
    out.push_str(&dsn[i..]);
    out
}

/// The kinds of source the build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    CityJson,
    CityGml,
    Gltf,
    Ifc,
    Osm,
    Gdal,
}

/// Decides the kind of a source from its name and, for JSON/XML, its first bytes.
pub fn detect_kind(path: &str) -> SourceKind {
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("pg:") {
        return SourceKind::Gdal;
    }
    if osm::is_osm(&lower) {
        return SourceKind::Osm;
    }
    if lower.ends_with(".glb") || lower.ends_with(".gltf") {
        return SourceKind::Gltf;
    }
    if lower.ends_with(".ifc") {
        return SourceKind::Ifc;
    }
    if lower.ends_with(".city.json") || lower.ends_with(".cityjson") {
        return SourceKind::CityJson;
    }
    let head = || -> Option<String> {
        use std::io::Read;
        let mut buf = vec![0u8; 65536];
        let mut f = std::fs::File::open(path).ok()?;
        let n = f.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    if lower.ends_with(".json") {
        if let Some(h) = head() {
            let compact: String = h.chars().filter(|c| !c.is_whitespace()).collect();
            if compact.contains("\"type\":\"CityJSON\"") || compact.contains("\"CityObjects\":{") {
                return SourceKind::CityJson;
            }
        }
    }
    if lower.ends_with(".gml") || lower.ends_with(".xml") {
        if let Some(h) = head() {
            if h.contains("CityModel") || h.contains("opengis.net/citygml") {
                return SourceKind::CityGml;
            }
        }
    }
    SourceKind::Gdal
}

/// Everything an ingester needs: the model it adds to, the report it tallies in, and its index in
/// [`CityModel::sources`] (for [`crate::model::SourceRef`]s).
pub struct SourceCtx<'a> {
    pub index: u16,
    pub spec: &'a SourceSpec,
    pub model: &'a mut CityModel,
    pub report: &'a mut BuildReport,
}

impl SourceCtx<'_> {
    pub fn source_ref(&self, id: impl Into<String>) -> crate::model::SourceRef {
        crate::model::SourceRef { source: self.index, id: id.into() }
    }
    pub fn name(&self) -> String {
        self.spec.display_path()
    }
    pub fn err(&self, message: impl Into<String>) -> IngestError {
        IngestError::file(self.name(), message)
    }
    pub fn err_at(&self, feature: impl Into<String>, message: impl Into<String>) -> IngestError {
        IngestError::feature(self.name(), feature, message)
    }
}

/// Ingests one source into `model`, recording it in `model.sources`. Returns how many features
/// were read from it (before any were dropped).
pub fn ingest_source(
    spec: &SourceSpec,
    model: &mut CityModel,
    report: &mut BuildReport,
) -> Result<u64, IngestError> {
    let kind = detect_kind(&spec.path);
    if !spec.path.to_ascii_lowercase().starts_with("pg:") && !std::path::Path::new(&spec.path).exists() {
        return Err(IngestError::file(spec.display_path(), "no such file"));
    }
    let index = model.sources.len() as u16;
    model.sources.push(SourceInfo {
        path: spec.display_path(),
        kind: String::new(),
        crs: String::new(),
        datum: match spec.datum {
            Datum::Native => None,
            Datum::Gcj02 => Some("gcj02".into()),
        },
    });
    let mut ctx = SourceCtx { index, spec, model, report };
    tracing::info!(source = %spec.display_path(), kind = ?kind, "ingesting source");
    match kind {
        SourceKind::Gdal => gdal_vector::ingest(&mut ctx),
        SourceKind::Osm => osm::ingest(&mut ctx),
        SourceKind::CityJson | SourceKind::CityGml => {
            let first = ctx.model.buildings.len();
            let n = if kind == SourceKind::CityJson { crate::cim::cityjson::ingest(&mut ctx)? } else { crate::cim::citygml::ingest(&mut ctx)? };
            // With --placement the source's buildings are key buildings placed by it (L4).
            if let Some(pf) = &spec.placement {
                let pf = crate::cim::placed::read_placement(pf)?;
                crate::cim::placed::relocate(ctx.model, first, &pf);
                if let Some(src) = ctx.model.sources.get_mut(index as usize) {
                    src.crs = format!("{} → placement", src.crs);
                }
            }
            Ok(n)
        }
        SourceKind::Gltf | SourceKind::Ifc => crate::cim::placed::ingest(&mut ctx, kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_wherever_they_are() {
        assert_eq!(mask_password("PG:host=h password=secret dbname=d"), "PG:host=h password=*** dbname=d");
        assert_eq!(mask_password("PG:password=secret host=h"), "PG:password=*** host=h");
        assert_eq!(mask_password("PG:PASSWORD = secret host=h"), "PG:PASSWORD = *** host=h");
        assert_eq!(mask_password("PG:host=h password='se cr\\'et' user=u"), "PG:host=h password=*** user=u");
        assert_eq!(mask_password("/data/password/file.geojson"), "/data/password/file.geojson");
        assert_eq!(mask_password("PG:mypassword=x"), "PG:mypassword=x");
    }

    #[test]
    fn default_names_of_dsns_hold_no_secrets() {
        let n = |p: &str| SourceSpec::new(p).default_name();
        assert_eq!(n("PG:host=/tmp/s port=5 password=secret dbname=city tables=public.lyon_buildings(geom),x"), "lyon_buildings");
        assert_eq!(n("PG:host=/tmp/s password=secret dbname=city"), "city");
        assert_eq!(n("PG:host=/tmp/s password=secret"), "postgis");
        assert_eq!(n("/data/lyon1_bdtopo.geojson"), "lyon1_bdtopo");
    }
}
