//! The viewer's readers of outside bytes, without Bevy (so they build fast and are fuzzed: tests/fuzz
//! `viewer_tileset`, `viewer_glb`): WGS-84 geodesy and the world frame, the tileset.json reader and
//! its tile tree, and the b3dm/GLB reader down to per-primitive vertex data. All math is glam f64,
//! the same glam Bevy re-exports as `bevy::math`, so the viewer uses these types as its own.

pub mod geodesy;
pub mod glb;
pub mod tileset;

/// The glam these types come from (Bevy's `bevy::math`).
pub use glam;
