//! The built-in default city (being written on branch wip-city; these are its signatures).

use crate::model::{CityModel, District};
use crate::report::{BuildReport, IngestError};
use std::path::{Path, PathBuf};

pub const DEFAULT_SEED: u64 = 20_251_122;

pub fn find_boundaries(explicit: Option<&Path>) -> Result<PathBuf, IngestError> {
    explicit.map(Path::to_path_buf).ok_or_else(|| IngestError::file("boundaries", "not implemented yet"))
}

pub fn load_districts(dir: &Path) -> Result<Vec<District>, IngestError> {
    Err(IngestError::file(dir.display().to_string(), "not implemented yet"))
}

pub fn build_default(dir: &Path, _seed: u64, _report: &mut BuildReport) -> Result<CityModel, IngestError> {
    Err(IngestError::file(dir.display().to_string(), "not implemented yet"))
}
