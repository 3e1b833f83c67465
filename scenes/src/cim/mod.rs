//! CIM ingest: CityJSON, CityGML and placed glTF/IFC models.

pub mod citygml;
pub mod cityjson;
pub mod placed;
