//! Shared setup for the fuzz targets: a source context over an empty model.
//!
//! Every source gets a `--crs EPSG:4326` override, so a CRS string from the input is never handed
//! to GDAL/PROJ (GDAL itself is not fuzzed here; the override path is the same code otherwise).

use scenes::ingest::{SourceCtx, SourceSpec};
use scenes::model::SourceInfo;
use scenes::report::BuildReport;
use scenes::CityModel;

/// Runs `f` with a fresh context naming the source `name`.
pub fn with_ctx<T>(name: &str, f: impl FnOnce(&mut SourceCtx<'_>) -> T) -> T {
    let mut spec = SourceSpec::new(name);
    spec.crs = Some("EPSG:4326".into());
    let mut model = CityModel::empty("fuzz");
    model.sources.push(SourceInfo { path: name.into(), kind: String::new(), crs: String::new(), datum: None });
    let mut report = BuildReport::default();
    let mut ctx = SourceCtx { index: 0, spec: &spec, model: &mut model, report: &mut report };
    f(&mut ctx)
}
