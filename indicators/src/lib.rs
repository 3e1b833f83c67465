//! The indicator platform (指标管理平台): definitions, validation, the incremental engine.
//!
//! * [`load`] — `assets/indicators/*.toml` → [`Library`] with errors naming file, line, field;
//! * [`def`] — the definition types (serialisable for the API);
//! * [`engine`] — [`Engine`]: inputs in ([`Input`]: twin-protocol events and transitions,
//!   [`Observation`]s), values out (`values_at`, `series`), runtime publish/retire;
//! * [`expr`], [`units`], [`sketch`] — derived expressions, unit algebra, the percentile sketch.
//!
//! No HTTP, no database, no GDAL: the server feeds it; the viewer may read its types.
//! Schema and API contract: docs/INDICATORS.md.

pub mod def;
pub mod engine;
pub mod expr;
pub mod load;
pub mod sketch;
pub mod units;

pub use def::*;
pub use engine::{
    Area, Engine, EngineConfig, Input, Ms, Observation, SeriesError, Value, SHANGHAI_OFFSET_MS,
};
pub use load::{parse_duration, DefError, DefErrors, Library};

/// The default library shipped with the repository (`assets/indicators`).
pub fn default_library_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/indicators")
}

// The server keeps the engine behind a mutex shared by its tasks.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Engine>();
    send_sync::<Library>();
};
