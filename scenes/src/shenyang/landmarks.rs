//! Landmarks of the built-in city: real CIM models from the project's shared data
//! (`shared/data/cim`), placed around 市府广场 as L4 key buildings.
//!
//! | file (under `cim/`) | what | where (offset from 市府广场 123.4315° E, 41.8057° N) |
//! |---|---|---|
//! | `citygml/ingolstadt-lod3/4018148/4018148.xml` | Ingolstadt CityGML 2.0 LoD3 house, 4 JPG textures | 170 m W, 140 m N |
//! | `citygml/plateau-tokyo-shinjuku/53394517_bldg_6697_2_op_CityGML2.gml` | PLATEAU 明治記念館 gallery, LoD2, textured | 240 m E, 160 m N |
//! | `gltf/AC20-FZK-Haus.glb` | KIT FZK-Haus (IfcConvert export), IFC surface-style colours | 170 m W, 150 m S |
//! | `gltf/NCTU_Engineering_Building_IV.glb` | NCTU Engineering Building IV, 6 JPEG textures | 240 m E, 170 m S |
//! | `ifc/AC20-FZK-Haus.ifc` | KIT FZK-Haus, IFC4 (walls, slabs, roof meshed by class) | 90 m W, 150 m S |
//!
//! Each is ingested by the ordinary CIM readers with a placement (so it is an L4 key building)
//! and replaces every generated building whose footprint it overlaps. The models are not part of
//! the repository: when the shared data cannot be found (a fresh machine), the city is built
//! without landmarks and a warning says so; a landmark that fails to read is skipped with a
//! warning. Search order for the `cim` directory: `$CITYTWIN_CIM`, `<workspace>/../shared/data/cim`
//! (from this crate's manifest directory), `./../shared/data/cim`, `./../../shared/data/cim`.

use crate::ingest::SourceSpec;
use crate::model::{CityModel, Level};
use crate::report::BuildReport;
use std::path::{Path, PathBuf};

/// 市府广场 (Shifu Square), the centre the landmarks are placed around.
pub const CENTRE: [f64; 2] = [123.4315, 41.8057];

/// (file under `cim/`, east m, north m, heading °, zh name, en name)
pub const LANDMARKS: [(&str, f64, f64, f64, &str, &str); 5] = [
    ("citygml/ingolstadt-lod3/4018148/4018148.xml", -170.0, 140.0, 0.0, "英戈尔施塔特民居 (LoD3)", "Ingolstadt house 4018148 (LoD3)"),
    ("citygml/plateau-tokyo-shinjuku/53394517_bldg_6697_2_op_CityGML2.gml", 240.0, 160.0, 0.0, "明治纪念馆画廊 (PLATEAU)", "Meiji Memorial Picture Gallery (PLATEAU)"),
    ("gltf/AC20-FZK-Haus.glb", -170.0, -150.0, 0.0, "FZK 住宅 (KIT)", "FZK-Haus (KIT)"),
    ("gltf/NCTU_Engineering_Building_IV.glb", 240.0, -170.0, 0.0, "交通大学工程四馆", "NCTU Engineering Building IV"),
    ("ifc/AC20-FZK-Haus.ifc", -90.0, -150.0, 0.0, "FZK 住宅 (IFC)", "FZK-Haus (IFC)"),
];

/// Finds the shared `cim` directory (see the module docs), `None` when absent.
pub fn find_cim_dir() -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("CITYTWIN_CIM").filter(|p| !p.is_empty()) {
        v.push(PathBuf::from(p));
    }
    v.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/cim"));
    v.push(PathBuf::from("./../shared/data/cim"));
    v.push(PathBuf::from("./../../shared/data/cim"));
    v.into_iter().find(|d| LANDMARKS.iter().any(|l| d.join(l.0).is_file()))
}

/// Adds the landmarks found under `cim_dir` to `model` (before `renumber`): each replaces the
/// generated buildings its footprint overlaps. Returns the number of landmarks placed.
pub fn add(model: &mut CityModel, cim_dir: Option<&Path>, report: &mut BuildReport) -> usize {
    let Some(dir) = cim_dir.map(Path::to_path_buf).or_else(find_cim_dir) else {
        report.warn("built-in city: shared CIM data (shared/data/cim) not found: built without landmarks (set CITYTWIN_CIM)".to_string());
        return 0;
    };
    let mut placed = 0;
    for (file, east, north, heading, zh, en) in LANDMARKS {
        let path = dir.join(file);
        if !path.is_file() {
            report.warn(format!("built-in city: landmark {} not found: skipped", path.display()));
            continue;
        }
        let enu = crate::geodesy::Enu::new(CENTRE[0], CENTRE[1], 0.0);
        let (lon, lat, _) = enu.to_geodetic(east, north, 0.0);
        let placement = serde_json::json!({"lon": lon, "lat": lat, "heading_deg": heading, "name": {"zh": zh, "en": en}});
        let tmp = match tempfile::NamedTempFile::new().and_then(|mut f| {
            use std::io::Write;
            f.write_all(placement.to_string().as_bytes())?;
            Ok(f)
        }) {
            Ok(f) => f,
            Err(e) => {
                report.warn(format!("built-in city: landmark {file}: cannot write its placement: {e}"));
                continue;
            }
        };
        let mut spec = SourceSpec::new(path.display().to_string());
        spec.placement = Some(tmp.path().to_path_buf());
        let first = model.buildings.len();
        let (n_sources, n_cim) = (model.sources.len(), model.cim_models.len());
        let mut sub = BuildReport::default();
        match crate::ingest::ingest_source(&spec, model, &mut sub) {
            Ok(_) if model.buildings.len() > first => {
                report.merge(sub);
                // every new building is a key building; the generated ones it overlaps go
                let new: Vec<geo_types::MultiPolygon<f64>> = model.buildings[first..].iter().map(|b| b.footprint.clone()).collect();
                for b in model.buildings[first..].iter_mut() {
                    b.level = Level::L4;
                }
                let before = model.buildings.len();
                let mut i = 0usize;
                model.buildings.retain(|b| {
                    let keep = i >= first || {
                        use geo::Intersects;
                        !new.iter().any(|f| f.intersects(&b.footprint))
                    };
                    i += 1;
                    keep
                });
                tracing::info!(landmark = %file, replaced = before - model.buildings.len(), "built-in city: landmark placed");
                placed += 1;
            }
            Ok(_) => report.warn(format!("built-in city: landmark {file} holds no building: skipped")),
            Err(e) => {
                // roll back whatever the failed source added
                model.buildings.truncate(first);
                model.sources.truncate(n_sources);
                model.cim_models.truncate(n_cim);
                report.warn(format!("built-in city: landmark skipped: {e}"));
            }
        }
    }
    placed
}
