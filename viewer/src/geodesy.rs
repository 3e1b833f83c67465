//! WGS-84 geodesy; lives in `viewer-core` (no Bevy) and is re-exported here.
pub use viewer_core::geodesy::*;
