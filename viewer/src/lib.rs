//! CityTwin viewer: a Bevy 0.19 / wgpu 3D Tiles client for the twin-server (and third-party
//! tilesets), windowed or headless (off-screen, e.g. on lavapipe) with PNG screenshots.
//!
//! Pure, GPU-free parts: [`geodesy`] (WGS-84, ECEF, the ENU world frame), [`tileset`] (the tile
//! tree with world-space bounding volumes, external tilesets, the ECEF check), [`select`]
//! (screen-space-error selection, frustum culling, request priorities), [`lru`] (memory budget),
//! [`fetch`] (loader threads), [`decode`] (GLB/b3dm → meshes). [`app`] is the Bevy plugin and
//! [`cli`] the command line. The cockpit: [`live`] (the stream and indicator feed, a pure model),
//! [`groundmap`] (vector tiles → flat meshes), [`cockpit`] (overlays, bevy_ui panels, dispatcher). Interaction: [`features`] (CPU pick data and
//! property tables kept at decode time), [`interact`] (picking, the incident detail panel,
//! planner tools: level toggles, measurement), [`flight`] (eased camera flights to a selected
//! incident and the leader tour's stops), [`script`] (`--input-script`: scripted input as real Bevy
//! input messages, so the windowed interaction systems run headless); [`choropleth`] (district fills and legend), [`charts`]
//! (sparklines, bar charts, ticker), [`units`] (indicator units per language).

pub mod app;
pub mod charts;
pub mod choropleth;
pub mod cli;
pub mod cockpit;
pub mod decode;
pub mod features;
pub mod fetch;
pub mod flight;
pub mod geodesy;
pub mod groundmap;
pub mod interact;
pub mod live;
pub mod login;
pub mod lru;
pub mod script;
pub mod select;
pub mod tileset;
pub mod units;
