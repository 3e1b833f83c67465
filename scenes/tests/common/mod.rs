//! Helpers shared by the scenes integration tests.
#![allow(dead_code)]

use scenes::ingest::{ingest_source, SourceSpec};
use scenes::model::CityModel;
use scenes::report::{BuildReport, IngestError};

/// `../shared/data/<sub>/<name>`.
pub fn shared(sub: &str, name: &str) -> String {
    format!("{}/../../shared/data/{sub}/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Ingests one source into an empty model: (model, report, features read).
pub fn ingest(spec: SourceSpec) -> Result<(CityModel, BuildReport, u64), IngestError> {
    let mut model = CityModel::empty("t");
    let mut report = BuildReport::default();
    let n = ingest_source(&spec, &mut model, &mut report)?;
    Ok((model, report, n))
}
