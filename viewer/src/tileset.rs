//! The client's tile tree; the tileset.json reader lives in `viewer-core` (no Bevy, fuzzed) and
//! is re-exported here.
pub use viewer_core::tileset::*;
