//! OGC 3D Tiles 1.1 `tileset.json` types and the screen-space-error arithmetic used to choose
//! geometric errors.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tileset {
    pub asset: Asset,
    pub geometric_error: f64,
    pub root: Tile,
    /// Inline metadata schema (3D Tiles 1.1); CityTwin embeds the schema in each GLB instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions_used: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    /// "1.1"
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tileset_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refine {
    #[serde(rename = "ADD")]
    Add,
    #[serde(rename = "REPLACE")]
    Replace,
}

/// One of `box` (12 numbers: centre, then x, y, z half-axis vectors, in the tile's frame),
/// `region` (west, south, east, north radians, min/max height metres above WGS-84, never
/// transformed) or `sphere`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BoundingVolume {
    #[serde(rename = "box", default, skip_serializing_if = "Option::is_none")]
    pub box_: Option<[f64; 12]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<[f64; 6]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sphere: Option<[f64; 4]>,
}

impl BoundingVolume {
    pub fn region(r: [f64; 6]) -> Self {
        BoundingVolume {
            region: Some(r),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounding_volume: Option<BoundingVolume>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tile {
    pub bounding_volume: BoundingVolume,
    pub geometric_error: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refine: Option<Refine>,
    /// Column-major 4×4, relative to the parent tile's frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<[f64; 16]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Tile>,
}

impl Tile {
    /// Visits every tile depth-first with its depth.
    pub fn walk<'a>(&'a self, depth: usize, f: &mut dyn FnMut(&'a Tile, usize)) {
        f(self, depth);
        for c in &self.children {
            c.walk(depth + 1, f);
        }
    }
}

/// The viewing model behind CityTwin's geometric errors: a client refines a tile when
/// `sse = geometric_error · screen_height_px / (distance · 2·tan(fov_y / 2)) > max_sse`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SseModel {
    pub max_sse: f64,
    pub screen_height_px: f64,
    pub fov_y_deg: f64,
}

impl Default for SseModel {
    /// CesiumJS defaults: maximumScreenSpaceError 16, 60° vertical field of view; a 1080 px high view.
    fn default() -> Self {
        SseModel {
            max_sse: 16.0,
            screen_height_px: 1080.0,
            fov_y_deg: 60.0,
        }
    }
}

impl SseModel {
    fn k(&self) -> f64 {
        2.0 * (self.fov_y_deg.to_radians() / 2.0).tan()
    }
    /// The geometric error that makes a tile refine exactly at `distance_m`.
    pub fn geometric_error_for_distance(&self, distance_m: f64) -> f64 {
        self.max_sse * distance_m * self.k() / self.screen_height_px
    }
    /// The distance below which a tile of this geometric error refines.
    pub fn refine_distance(&self, geometric_error: f64) -> f64 {
        geometric_error * self.screen_height_px / (self.max_sse * self.k())
    }
    pub fn sse(&self, geometric_error: f64, distance_m: f64) -> f64 {
        geometric_error * self.screen_height_px / (distance_m.max(1e-9) * self.k())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_formula_matches_hand_computation() {
        let m = SseModel::default();
        // 16 · 2000 · 2·tan 30° / 1080 = 34.2133…
        let g = m.geometric_error_for_distance(2000.0);
        assert!((g - 34.2133).abs() < 1e-3, "{g}");
        assert!((m.refine_distance(g) - 2000.0).abs() < 1e-9);
        assert!((m.sse(g, 2000.0) - 16.0).abs() < 1e-9);
    }

    #[test]
    fn tileset_json_uses_spec_names() {
        let t = Tileset {
            asset: Asset {
                version: "1.1".into(),
                tileset_version: None,
                generator: None,
            },
            geometric_error: 100.0,
            root: Tile {
                bounding_volume: BoundingVolume::region([0.0, 0.0, 0.1, 0.1, 0.0, 10.0]),
                geometric_error: 50.0,
                refine: Some(Refine::Replace),
                transform: None,
                content: Some(Content {
                    uri: "a.glb".into(),
                    bounding_volume: None,
                }),
                children: vec![],
            },
            schema: None,
            schema_uri: None,
            extensions_used: vec![],
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["asset"]["version"], "1.1");
        assert_eq!(v["geometricError"], 100.0);
        assert_eq!(v["root"]["boundingVolume"]["region"][5], 10.0);
        assert_eq!(v["root"]["refine"], "REPLACE");
        assert_eq!(v["root"]["content"]["uri"], "a.glb");
        assert!(v["root"].get("children").is_none());
        let back: Tileset = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
    }
}
