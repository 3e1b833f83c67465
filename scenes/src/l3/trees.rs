//! Trees in parks and forests: deterministic placement (a jittered grid seeded per cell) inside
//! the model's park/forest landuse polygons, away from buildings and roads, and a low-poly tree
//! mesh (hexagonal trunk + octahedral crown) instanced per tree.
//!
//! **Density** (trees per 100 m², [`density_per_100m2`]): `forest`/`wood` 1.5, `nature_reserve`
//! 1.0, `park`/`garden` 0.6, `cemetery`/`recreation_ground`/`village_green` 0.3; other classes get
//! none. The grid cell is `√(100 / density)` metres (12.9 m in parks), one candidate per cell at
//! a position jittered within the cell's central 80 % by a hash of (seed, cell); a candidate is
//! kept when it lies inside the area, at least [`BUILDING_CLEARANCE_M`] from every building
//! footprint and at least half the road's width + [`ROAD_CLEARANCE_M`] from every road centre
//! line (width = lanes × 3.5 m, default lanes by class). The expected count is therefore
//! `density × (area − excluded area) / 100`, up to the grid's boundary effect.

use super::mesh::{Material, Mesh, Transform};
use super::LocalFrame;
use crate::model::{CityModel, RoadClass};
use geo::{Contains, Distance, Euclidean};
use geo_types::{Line, Point, Polygon};
use rstar::{RTree, RTreeObject, AABB};

pub const BUILDING_CLEARANCE_M: f64 = 2.0;
pub const ROAD_CLEARANCE_M: f64 = 1.5;

/// Trees per 100 m² for a landuse class, or `None` for classes without trees.
pub fn density_per_100m2(class: &str) -> Option<f64> {
    match class {
        "forest" | "wood" => Some(1.5),
        "nature_reserve" => Some(1.0),
        "park" | "garden" => Some(0.6),
        "cemetery" | "recreation_ground" | "village_green" => Some(0.3),
        _ => None,
    }
}

/// One placed tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tree {
    pub lon: f64,
    pub lat: f64,
    /// Position in the frame passed to [`place_trees`], metres.
    pub local: [f64; 2],
    /// Total height, 6–12 m.
    pub height: f64,
    /// Crown radius, 0.3 × height.
    pub crown_radius: f64,
    /// Heading of the instance, radians (varies the look).
    pub heading: f64,
    /// Index of the landuse area it stands in.
    pub area: u32,
}

fn hash(seed: u64, a: i64, b: i64, k: u64) -> f64 {
    let mut h = seed ^ (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ k.wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

struct Obstacle {
    env: AABB<[f64; 2]>,
    kind: ObstacleKind,
}
enum ObstacleKind {
    Footprint(Polygon<f64>),
    Road(Line<f64>, f64),
}
impl RTreeObject for Obstacle {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.env
    }
}

fn road_half_width(class: RoadClass, lanes: Option<u8>) -> f64 {
    let lanes = lanes.map(|l| l as f64).unwrap_or(match class {
        RoadClass::Motorway | RoadClass::Trunk => 6.0,
        RoadClass::Primary | RoadClass::Secondary => 4.0,
        RoadClass::Tertiary | RoadClass::Residential => 2.0,
        RoadClass::Service | RoadClass::Rail | RoadClass::Other => 1.0,
        RoadClass::Path => 0.5,
    });
    lanes * 3.5 / 2.0
}

/// Places trees in every landuse area of the model with a tree density. Deterministic for a
/// given model, frame and seed.
pub fn place_trees(model: &CityModel, frame: &LocalFrame, seed: u64) -> Vec<Tree> {
    use geo::BoundingRect;
    let mut obstacles = Vec::new();
    for b in &model.buildings {
        for p in &frame.multipolygon(&b.footprint).0 {
            if let Some(r) = p.bounding_rect() {
                let c = BUILDING_CLEARANCE_M;
                obstacles.push(Obstacle {
                    env: AABB::from_corners([r.min().x - c, r.min().y - c], [r.max().x + c, r.max().y + c]),
                    kind: ObstacleKind::Footprint(p.clone()),
                });
            }
        }
    }
    for r in &model.roads {
        let hw = road_half_width(r.class, r.lanes) + ROAD_CLEARANCE_M;
        for seg in r.geometry.lines() {
            let (a, b) = (frame.to_local(seg.start.x, seg.start.y), frame.to_local(seg.end.x, seg.end.y));
            obstacles.push(Obstacle {
                env: AABB::from_corners([a[0].min(b[0]) - hw, a[1].min(b[1]) - hw], [a[0].max(b[0]) + hw, a[1].max(b[1]) + hw]),
                kind: ObstacleKind::Road(Line::new((a[0], a[1]), (b[0], b[1])), hw),
            });
        }
    }
    let tree = RTree::bulk_load(obstacles);
    let blocked = |p: [f64; 2]| {
        let pt = Point::new(p[0], p[1]);
        tree.locate_in_envelope_intersecting(&AABB::from_point(p)).any(|o: &Obstacle| match &o.kind {
            ObstacleKind::Footprint(poly) => poly.contains(&pt) || Euclidean.distance(&pt, poly) < BUILDING_CLEARANCE_M,
            ObstacleKind::Road(line, hw) => Euclidean.distance(&pt, line) < *hw,
        })
    };
    let mut out = Vec::new();
    let mut progress = crate::report::Progress::new("trees", Some(model.landuse.len() as u64));
    for a in &model.landuse {
        progress.inc(1);
        let Some(d) = density_per_100m2(&a.class) else { continue };
        let cell = (100.0 / d).sqrt();
        let local = frame.multipolygon(&a.geometry);
        let Some(r) = local.bounding_rect() else { continue };
        let (i0, i1) = ((r.min().x / cell).floor() as i64, (r.max().x / cell).floor() as i64);
        let (j0, j1) = ((r.min().y / cell).floor() as i64, (r.max().y / cell).floor() as i64);
        for i in i0..=i1 {
            for j in j0..=j1 {
                let p = [(i as f64 + 0.1 + 0.8 * hash(seed, i, j, 0)) * cell, (j as f64 + 0.1 + 0.8 * hash(seed, i, j, 1)) * cell];
                if !local.contains(&Point::new(p[0], p[1])) || blocked(p) {
                    continue;
                }
                let (lon, lat) = frame.to_lonlat(p[0], p[1]);
                let height = 6.0 + 6.0 * hash(seed, i, j, 2);
                out.push(Tree { lon, lat, local: p, height, crown_radius: 0.3 * height, heading: hash(seed, i, j, 3) * std::f64::consts::TAU, area: a.id });
            }
        }
    }
    progress.finish();
    tracing::info!(trees = out.len(), "placed {} trees", out.len());
    out
}

/// The unit tree: 1 m tall overall, trunk (hexagonal prism, radius 0.04, 0–0.4) and crown
/// (octahedron, radius 0.3, 0.35–1.0). Both closed and outward-facing.
pub fn unit_tree() -> Mesh {
    let mut m = Mesh::new();
    let hex: Vec<[f64; 2]> = (0..6).map(|k| {
        let a = k as f64 * std::f64::consts::PI / 3.0;
        [0.04 * a.cos(), 0.04 * a.sin()]
    }).collect();
    let trunk = m.group(Material::TreeTrunk);
    for k in 0..6 {
        let (p, q) = (hex[k], hex[(k + 1) % 6]);
        let uv = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]];
        trunk.add_triangle([p[0], p[1], 0.0], [q[0], q[1], 0.0], [q[0], q[1], 0.4], uv);
        trunk.add_triangle([p[0], p[1], 0.0], [q[0], q[1], 0.4], [p[0], p[1], 0.4], uv);
        trunk.add_triangle([0.0, 0.0, 0.0], [q[0], q[1], 0.0], [p[0], p[1], 0.0], uv);
        trunk.add_triangle([0.0, 0.0, 0.4], [p[0], p[1], 0.4], [q[0], q[1], 0.4], uv);
    }
    let crown = m.group(Material::TreeCrown);
    let (c, r, bot, top) = (0.675, 0.3, 0.35, 1.0);
    let ring = [[r, 0.0], [0.0, r], [-r, 0.0], [0.0, -r]];
    for k in 0..4 {
        let (p, q) = (ring[k], ring[(k + 1) % 4]);
        let uv = [[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]];
        crown.add_triangle([p[0], p[1], c], [q[0], q[1], c], [0.0, 0.0, top], uv);
        crown.add_triangle([q[0], q[1], c], [p[0], p[1], c], [0.0, 0.0, bot], uv);
    }
    m
}

/// All trees as one mesh in the frame's local metres, `z` from `ground(tree)` (terrain or 0).
pub fn trees_mesh(trees: &[Tree], ground: impl Fn(&Tree) -> f64) -> Mesh {
    let unit = unit_tree();
    let mut m = Mesh::new();
    for t in trees {
        let tr = Transform { translate: [t.local[0], t.local[1], ground(t)], rotate_z_rad: t.heading, scale_xy: t.height, scale_z: t.height };
        m.append_transformed(&unit, &tr);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AreaFeature, Building, BuildingUse, Names, Road, SourceRef};
    use geo::Area;
    use geo_types::{LineString, MultiPolygon};

    fn sref() -> SourceRef {
        SourceRef { source: 0, id: String::new() }
    }

    /// A 300 m × 200 m park near 沈阳 with one 40 × 30 m building inside and a residential road
    /// (2 lanes) crossing it.
    fn synthetic() -> (CityModel, LocalFrame, f64) {
        let f = LocalFrame::new(123.43, 41.80);
        let ll = |x: f64, y: f64| f.to_lonlat(x, y);
        let rect = |x0: f64, y0: f64, x1: f64, y1: f64| {
            Polygon::new(LineString::from(vec![ll(x0, y0), ll(x1, y0), ll(x1, y1), ll(x0, y1), ll(x0, y0)]), vec![])
        };
        let mut m = CityModel::empty("t");
        m.landuse.push(AreaFeature { id: 0, source: sref(), class: "park".into(), geometry: MultiPolygon(vec![rect(0.0, 0.0, 300.0, 200.0)]), names: Names::default() });
        m.landuse.push(AreaFeature { id: 1, source: sref(), class: "industrial".into(), geometry: MultiPolygon(vec![rect(400.0, 0.0, 500.0, 100.0)]), names: Names::default() });
        m.buildings.push(Building::block(sref(), MultiPolygon(vec![rect(100.0, 50.0, 140.0, 80.0)]), 9.0, BuildingUse::Public));
        m.roads.push(Road {
            id: 0,
            source: sref(),
            class: RoadClass::Residential,
            geometry: LineString::from(vec![ll(-10.0, 150.0), ll(310.0, 150.0)]),
            names: Names::default(),
            lanes: Some(2),
            oneway: false,
            max_speed_kmh: None,
            layer: 0,
        });
        // Excluded area: building + 2 m clearance (44 × 34 plus rounded corners: 4·(2²)(1 − π/4)
        // less), road corridor 2 × (3.5 + 1.5) = 10 m wide over 300 m.
        let building_ex = 44.0 * 34.0 - 4.0 * 4.0 * (1.0 - std::f64::consts::PI / 4.0);
        let free = 300.0 * 200.0 - building_ex - 10.0 * 300.0;
        (m, f, free)
    }

    #[test]
    fn count_matches_density_and_nothing_in_buildings_or_on_roads() {
        let (m, f, free) = synthetic();
        let trees = place_trees(&m, &f, 7);
        let expected = free * 0.6 / 100.0;
        let n = trees.len() as f64;
        assert!((n - expected).abs() <= 0.05 * expected, "{n} trees, expected {expected:.0}");
        assert!(trees.iter().all(|t| t.area == 0), "no trees in the industrial area");
        let fp = &m.buildings[0].footprint;
        for t in &trees {
            // Checked in lon/lat against the original footprint, independently of the local frame.
            assert!(!fp.contains(&Point::new(t.lon, t.lat)));
            assert!(Euclidean.distance(&Point::new(t.local[0], t.local[1]), &f.multipolygon(fp)) >= BUILDING_CLEARANCE_M - 1e-9);
            assert!((t.local[1] - 150.0).abs() >= 5.0 - 1e-9, "tree on the road at {:?}", t.local);
            assert!((6.0..=12.0).contains(&t.height));
        }
        // Deterministic; another seed moves trees but keeps the count close.
        assert_eq!(trees, place_trees(&m, &f, 7));
        let other = place_trees(&m, &f, 8);
        assert_ne!(trees[0].local, other[0].local);
        assert!((other.len() as f64 - expected).abs() <= 0.05 * expected);
    }

    #[test]
    fn forest_is_denser() {
        let (mut m, f, _) = synthetic();
        m.landuse[0].class = "forest".into();
        m.buildings.clear();
        m.roads.clear();
        let area = f.multipolygon(&m.landuse[0].geometry).unsigned_area();
        let n = place_trees(&m, &f, 1).len() as f64;
        assert!((n - area * 1.5 / 100.0).abs() <= 0.03 * area * 1.5 / 100.0, "{n}");
    }

    #[test]
    fn tree_mesh_is_closed_and_instanced() {
        let u = unit_tree();
        // Trunk and crown are each closed: check each group on its own.
        for g in [Material::TreeTrunk, Material::TreeCrown] {
            let mut one = Mesh::new();
            one.groups.insert(g, u.groups[&g].clone());
            one.check_watertight().unwrap();
            assert!(one.signed_volume() > 0.0);
        }
        // Octahedron volume: (4/3)·r²·h_half·… = 2 · (1/3)·(2r²)·0.325.
        let mut crown = Mesh::new();
        crown.groups.insert(Material::TreeCrown, u.groups[&Material::TreeCrown].clone());
        assert!((crown.signed_volume() - 2.0 * (2.0 * 0.09) * 0.325 / 3.0).abs() < 1e-6);
        let trees = [
            Tree { lon: 0.0, lat: 0.0, local: [10.0, 5.0], height: 10.0, crown_radius: 3.0, heading: 0.5, area: 0 },
            Tree { lon: 0.0, lat: 0.0, local: [30.0, 5.0], height: 8.0, crown_radius: 2.4, heading: 0.0, area: 0 },
        ];
        let m = trees_mesh(&trees, |_| 40.0);
        assert_eq!(m.triangle_count(), 2 * u.triangle_count());
        let b = m.bounds().unwrap();
        assert!((b[0][2] - 40.0).abs() < 1e-4 && (b[1][2] - 50.0).abs() < 1e-4, "{b:?}");
        // Volume scales with height³.
        assert!((m.signed_volume() - u.signed_volume() * (1000.0 + 512.0)).abs() < 1e-3);
    }

    #[test]
    fn osm_parks_keep_trees_out_of_buildings() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/osm/monaco.osm.pbf");
        let p = if p.exists() { p } else { std::path::PathBuf::from("/work/shared/data/osm/monaco.osm.pbf") };
        if !p.exists() {
            return eprintln!("no shared data");
        }
        let mut m = CityModel::empty("monaco");
        let mut rep = crate::report::BuildReport::default();
        crate::ingest::ingest_source(&crate::ingest::SourceSpec::new(p.to_str().unwrap()), &mut m, &mut rep).unwrap();
        m.renumber();
        let idx = crate::index::SpatialIndex::build(&m);
        let bb = m.bbox().unwrap();
        let f = LocalFrame::new((bb[0] + bb[2]) / 2.0, (bb[1] + bb[3]) / 2.0);
        let trees = place_trees(&m, &f, 42);
        let parks: f64 = m.landuse.iter().filter(|a| density_per_100m2(&a.class).is_some()).map(|a| f.multipolygon(&a.geometry).unsigned_area()).sum();
        eprintln!("{} trees on {parks:.0} m² of green areas", trees.len());
        assert!(!trees.is_empty());
        // Upper bound: never more than the density allows.
        assert!((trees.len() as f64) < parks * 1.5 / 100.0 * 1.05);
        for t in &trees {
            // The model's own spatial index (exact footprint test) finds no building at any tree.
            assert_eq!(idx.pick_building(&m, t.lon, t.lat), None, "tree at {}, {}", t.lon, t.lat);
        }
    }
}
