//! Tileset structure: a quadtree over building centroids (a building is never split), the
//! geometric errors of each level, and the frames (root ENU→ECEF transform, one local ENU frame
//! per content tile expressed relative to the root).
//!
//! Tree (docs/ARCHITECTURE.md, "3D Tiles"):
//!
//! ```text
//! root (no content, transform = ENU at the city centre → ECEF; ge = 2 × largest child)
//!  └─ quadtree nodes (no content; region volumes; ge = 2 × largest child)
//!      └─ L2 gate (no content, the L2 tile's region, ge = 34.21 m: opens within 2 km)
//!          └─ L2 content tile (≤ max features; transform = root⁻¹ · ENU(tile centre)→ECEF;
//!             ge = 8.55 m; refine REPLACE)
//!              └─ (next: L3 tiles of focus districts, ge 2.57 m) └─ (L4 key buildings, ge 0)
//! ```

use tiles::tileset::SseModel;

/// Distances (m) at which each level appears for a client at SSE 16 (CesiumJS defaults,
/// 60° field of view, 1080 px high view).
pub const L2_DISTANCE_M: f64 = 2000.0;
pub const L3_DISTANCE_M: f64 = 500.0;
pub const L4_DISTANCE_M: f64 = 150.0;

/// Geometric errors derived from the distances: `ge = 16 · d · 2·tan(30°) / 1080`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GeometricErrors {
    /// Error of the (empty) quadtree node directly above L2 tiles: its children (L2) are loaded
    /// once the camera is within `L2_DISTANCE_M` of them (34.21 m).
    pub l2_parent: f64,
    /// Error of an L2 tile: it would be replaced by L3 children within `L3_DISTANCE_M` (8.55 m).
    pub l2: f64,
    /// Error of an L3 tile: replaced by L4 within `L4_DISTANCE_M` (2.57 m).
    pub l3: f64,
    /// L4 tiles are leaves.
    pub l4: f64,
}

impl GeometricErrors {
    pub fn new(m: &SseModel) -> Self {
        GeometricErrors {
            l2_parent: m.geometric_error_for_distance(L2_DISTANCE_M),
            l2: m.geometric_error_for_distance(L3_DISTANCE_M),
            l3: m.geometric_error_for_distance(L4_DISTANCE_M),
            l4: 0.0,
        }
    }
}

/// A quadtree node over item points.
#[derive(Debug)]
pub enum QNode {
    Leaf { key: String, items: Vec<usize> },
    Inner { key: String, children: Vec<QNode> },
}

/// Splits `items` (with points `pts[i] = [x, y]` in a roughly isotropic plane) into quadrants
/// until each leaf holds at most `max` items (or the depth reaches `max_depth`, for piles of
/// identical points). Empty quadrants are omitted. Keys are quadrant paths: "r", "r0", "r03", …
pub fn quadtree(pts: &[[f64; 2]], items: Vec<usize>, max: usize, max_depth: usize) -> QNode {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for &i in &items {
        let p = pts[i];
        b = [
            b[0].min(p[0]),
            b[1].min(p[1]),
            b[2].max(p[0]),
            b[3].max(p[1]),
        ];
    }
    // square bounds so quadrants are square
    let s = (b[2] - b[0]).max(b[3] - b[1]).max(1e-12);
    let sq = [b[0], b[1], b[0] + s, b[1] + s];
    split(pts, items, sq, max, max_depth, "r".to_string(), 0)
}

fn split(
    pts: &[[f64; 2]],
    items: Vec<usize>,
    b: [f64; 4],
    max: usize,
    max_depth: usize,
    key: String,
    depth: usize,
) -> QNode {
    if items.len() <= max || depth >= max_depth {
        return QNode::Leaf { key, items };
    }
    let (mx, my) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    let mut q: [Vec<usize>; 4] = Default::default();
    for i in items {
        let p = pts[i];
        let k = (p[0] >= mx) as usize + 2 * (p[1] >= my) as usize;
        q[k].push(i);
    }
    let boxes = [
        [b[0], b[1], mx, my],
        [mx, b[1], b[2], my],
        [b[0], my, mx, b[3]],
        [mx, my, b[2], b[3]],
    ];
    let children = q
        .into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            split(
                pts,
                v,
                boxes[k],
                max,
                max_depth,
                format!("{key}{k}"),
                depth + 1,
            )
        })
        .collect();
    QNode::Inner { key, children }
}

impl QNode {
    pub fn leaves<'a>(&'a self, out: &mut Vec<(&'a str, &'a [usize])>) {
        match self {
            QNode::Leaf { key, items } => out.push((key, items)),
            QNode::Inner { children, .. } => children.iter().for_each(|c| c.leaves(out)),
        }
    }
}

/// Column-major 4×4 product a · b.
pub fn mat_mul(a: &[f64; 16], b: &[f64; 16]) -> [f64; 16] {
    let mut r = [0.0; 16];
    for c in 0..4 {
        for row in 0..4 {
            r[c * 4 + row] = (0..4).map(|k| a[k * 4 + row] * b[c * 4 + k]).sum();
        }
    }
    r
}

/// Inverse of a rigid (rotation + translation) column-major 4×4.
pub fn rigid_inverse(m: &[f64; 16]) -> [f64; 16] {
    // R is the upper-left 3×3 (column-major: R[row][col] = m[col*4+row]); inverse = [Rᵀ | −Rᵀt]
    let mut r = [0.0; 16];
    for row in 0..3 {
        for col in 0..3 {
            r[col * 4 + row] = m[row * 4 + col];
        }
    }
    let t = [m[12], m[13], m[14]];
    for row in 0..3 {
        r[12 + row] = -(0..3).map(|k| r[k * 4 + row] * t[k]).sum::<f64>();
    }
    r[15] = 1.0;
    r
}

/// Applies a column-major 4×4 to a point.
pub fn mat_apply(m: &[f64; 16], p: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|row| m[row] * p[0] + m[4 + row] * p[1] + m[8 + row] * p[2] + m[12 + row])
}

/// glTF y-up → 3D Tiles z-up, the rotation every 3D Tiles client applies to glTF content
/// (x, y, z) → (x, −z, y).
pub const Y_UP_TO_Z_UP: [f64; 16] = [
    1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geodesy::Enu;

    #[test]
    fn quadtree_caps_leaves_and_keeps_every_item_once() {
        let pts: Vec<[f64; 2]> = (0..10_000)
            .map(|i| [((i * 7919) % 1000) as f64, ((i * 104_729) % 997) as f64])
            .collect();
        let t = quadtree(&pts, (0..pts.len()).collect(), 300, 20);
        let mut leaves = vec![];
        t.leaves(&mut leaves);
        let mut seen = vec![false; pts.len()];
        for (_, items) in &leaves {
            assert!(items.len() <= 300);
            for &i in *items {
                assert!(!seen[i]);
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        // identical points stop at the depth cap instead of recursing forever
        let same = vec![[1.0, 1.0]; 50];
        let t = quadtree(&same, (0..50).collect(), 10, 6);
        let mut l = vec![];
        t.leaves(&mut l);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].0.len(), 7); // "r" + 6 quadrant digits
    }

    #[test]
    fn tile_transform_relative_to_root_maps_tile_enu_to_ecef() {
        let root = Enu::new(123.43, 41.80, 0.0);
        let tile = Enu::new(123.60, 41.90, 0.0);
        let rel = mat_mul(
            &rigid_inverse(&root.to_ecef_matrix()),
            &tile.to_ecef_matrix(),
        );
        let world = mat_mul(&root.to_ecef_matrix(), &rel);
        let p = tile.from_geodetic(123.61, 41.91, 30.0);
        let ecef = mat_apply(&world, p);
        let want = crate::geodesy::geodetic_to_ecef(123.61, 41.91, 30.0);
        for k in 0..3 {
            assert!((ecef[k] - want[k]).abs() < 1e-6, "{ecef:?} vs {want:?}");
        }
        // y-up → z-up: glTF (e, u, −n) back to (e, n, u)
        assert_eq!(mat_apply(&Y_UP_TO_Z_UP, [1.0, 3.0, -2.0]), [1.0, 2.0, 3.0]);
    }

    #[test]
    fn geometric_errors_match_the_documented_numbers() {
        let g = GeometricErrors::new(&SseModel::default());
        assert!((g.l2_parent - 34.2133).abs() < 1e-3);
        assert!((g.l2 - 8.5533).abs() < 1e-3);
        assert!((g.l3 - 2.5660).abs() < 1e-3);
    }
}
