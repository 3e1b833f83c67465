//! CityTwin scenes: GIS/CIM ingest, the canonical city model and its spatial index, the built-in
//! Shenyang city, and the build pipeline that writes a model directory.

pub mod build;
pub mod cim;
pub mod geodesy;
pub mod index;
pub mod ingest;
pub mod l3;
pub mod model;
pub mod publish;
pub mod report;
pub mod routing;
pub mod shenyang;
pub mod store;
pub mod terrain;
pub mod threed;
pub mod vector_tiles;

pub use model::CityModel;
pub use report::{BuildReport, IngestError};
