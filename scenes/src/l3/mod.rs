//! L3 geometry generated from footprints: roofs (flat, gabled, hipped via a straight skeleton,
//! pyramidal, skillion), facades with window UVs and a procedural texture set, and trees in
//! parks. Everything is in local metres (x east, y north, z up); the 3D Tiles builder places the
//! meshes. Rules: docs/ARCHITECTURE.md, "L3 geometry".

pub mod mesh;
pub mod skeleton;

pub use mesh::{Material, Mesh, Transform};
pub mod facade;
pub mod roof;
