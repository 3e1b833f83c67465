//! The city as an OGC 3D Tiles 1.1 tileset: `DIR/3dtiles/tileset.json` and GLB content.
//!
//! Pipeline ([`write`]): check and clean every building ([`l2::prepare`]; failures are reported
//! per feature in [`Tiles3dSummary::skipped`]) → quadtree over footprint centroids
//! ([`tileset::quadtree`], ≤ `max_features_per_tile` buildings per tile, a building is never
//! split) → in parallel (rayon), per leaf: extrude its buildings in the leaf's own ENU frame,
//! batch them by use into one GLB (feature ids + property table), gzip, write → assemble
//! tileset.json (regions, geometric errors, transforms).
//!
//! Storage: content is stored gzip-compressed only (`content/<key>.glb.gz`, the tileset's URIs
//! say `content/<key>.glb`); `tileset.json` is stored plain and as `tileset.json.gz`. The server
//! sends the `.gz` bytes as they are with `Content-Encoding: gzip` (and inflates them for the
//! rare client that does not accept gzip). This halves the disk use and makes serving a file
//! read. A static file server needs the same `.gz` mapping.

pub mod l2;
pub mod l3tile;
pub mod l4;
pub mod tileset;

pub use l3tile::{L3Area, L3Districts};

use crate::model::{BuildingUse, CityModel};
use crate::report::{FeatureRef, Progress, Tally, EXAMPLES_PER_REASON};
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use tiles::gltf::{self, Column, PositionEncoding};
use tiles::tileset::{Asset, BoundingVolume, Content, Refine, SseModel, Tile, Tileset};

/// Directory of the tileset inside a model directory.
pub const DIR: &str = "3dtiles";
pub const TILESET_FILE: &str = "tileset.json";
/// Margin (m) added around every content region so it contains the stored positions (int16
/// quantisation moves a vertex by at most half a step: ≤ 0.125 m, else the tile is written with
/// float positions).
pub const REGION_PAD_M: f64 = 0.25;
/// The `repaired` reason for footprints made valid by a boolean union.
pub const REPAIRED_REASON: &str = "invalid footprint (self-intersecting or crossing rings) resolved by a boolean union";

#[derive(Debug, Clone)]
pub struct Options {
    /// At most this many buildings per content tile (see docs/BENCHMARKS.md for the measurement
    /// behind the default).
    pub max_features_per_tile: usize,
    pub positions: PositionEncoding,
    /// gzip level 0–9.
    pub gzip_level: u32,
    /// Height of the terrain above the WGS-84 ellipsoid where `ground` gives none (flat).
    pub base_height: f64,
    /// Per-building ground height above the WGS-84 ellipsoid (m), indexed like
    /// `model.buildings` (from a DEM, `build --dem`); a building's block stands on its own value.
    /// `None`: every building on `base_height`.
    pub ground: Option<Vec<f64>>,
    pub sse: SseModel,
    /// Write flat normals (own vertices per face) — only for the size measurement.
    pub normals: bool,
    /// Buildings that get L3 children under their L2 tile.
    pub l3: L3Districts,
    /// At most this many buildings per L3 tile.
    pub max_features_per_l3_tile: usize,
    /// Theme areas whose buildings (footprint centroid inside) and trees also get L3.
    pub l3_areas: Vec<L3Area>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_features_per_tile: 2000,
            positions: PositionEncoding::Int16,
            gzip_level: 6,
            base_height: 0.0,
            ground: None,
            sse: SseModel::default(),
            normals: false,
            l3: L3Districts::None,
            max_features_per_l3_tile: 250,
            l3_areas: vec![],
        }
    }
}

/// `tiles3d` in manifest.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tiles3dSummary {
    /// Path of tileset.json relative to the model directory.
    pub tileset: String,
    /// Content (GLB) tiles.
    pub tiles: u64,
    /// All tiles of the tree, content or not.
    pub nodes: u64,
    pub depth: u64,
    pub buildings: u64,
    pub triangles: u64,
    pub vertices: u64,
    /// Sum of the GLB sizes before compression.
    pub bytes_raw: u64,
    /// What is stored and sent (gzip), content and tileset.json.
    pub bytes: u64,
    pub seconds: f64,
    pub max_features_per_tile: u64,
    pub position_encoding: String,
    pub geometric_errors: tileset::GeometricErrors,
    /// reason → buildings without a block (count and examples).
    pub skipped: BTreeMap<String, Tally>,
    /// reason → buildings whose footprint was repaired for their block (count and examples).
    #[serde(default)]
    pub repaired: BTreeMap<String, Tally>,
    /// Where the buildings' ground heights came from (DEM or flat); set by the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terrain: Option<crate::terrain::TerrainSummary>,
    /// L3 content tiles (children of L2 tiles holding focus-district buildings).
    #[serde(default)]
    pub l3_tiles: u64,
    /// Buildings written at L3 (generated roofs and facades, or their source solid).
    #[serde(default)]
    pub l3_buildings: u64,
    /// Of those, buildings written from their CityJSON/CityGML solid.
    #[serde(default)]
    pub l3_solids: u64,
    /// Gzip bytes of the L3 content.
    #[serde(default)]
    pub l3_bytes: u64,
    /// reason → focus-district buildings written as their L2 block in the L3 tile.
    #[serde(default)]
    pub l3_fallbacks: BTreeMap<String, Tally>,
    /// Instanced tree tiles (parks of the focus districts) and their trees.
    #[serde(default)]
    pub tree_tiles: u64,
    #[serde(default)]
    pub trees: u64,
    /// Theme areas given L3 (`--l3-area`) with the buildings whose centroid lies inside.
    #[serde(default)]
    pub l3_areas: Vec<L3AreaSummary>,
    /// L4 tiles (one per key building) and what they hold.
    #[serde(default)]
    pub l4_tiles: u64,
    #[serde(default)]
    pub l4_buildings: u64,
    /// Gzip bytes of the L4 tiles.
    #[serde(default)]
    pub l4_bytes: u64,
    /// Texture images embedded in the L4 tiles.
    #[serde(default)]
    pub l4_images: u64,
    /// reason → key buildings without an L4 tile (shown by their L3/L2 representation), and
    /// key buildings whose textures could not be read (drawn untextured).
    #[serde(default)]
    pub l4_fallbacks: BTreeMap<String, Tally>,
}

/// One `--l3-area` in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L3AreaSummary {
    pub name: String,
    pub bbox: [f64; 4],
    pub buildings: u64,
}

/// Colour per use (linear RGB).
pub fn use_colour(u: BuildingUse) -> [f32; 4] {
    let (r, g, b) = match u {
        BuildingUse::Residential => (0.80, 0.72, 0.58),
        BuildingUse::Commercial => (0.85, 0.45, 0.30),
        BuildingUse::Office => (0.45, 0.60, 0.85),
        BuildingUse::Industrial => (0.55, 0.52, 0.60),
        BuildingUse::Public => (0.75, 0.40, 0.55),
        BuildingUse::Education => (0.90, 0.75, 0.30),
        BuildingUse::Healthcare => (0.90, 0.35, 0.35),
        BuildingUse::Religious => (0.65, 0.45, 0.80),
        BuildingUse::Transport => (0.40, 0.70, 0.70),
        BuildingUse::Agricultural => (0.55, 0.70, 0.35),
        BuildingUse::Ancillary => (0.60, 0.60, 0.55),
        BuildingUse::Unknown => (0.70, 0.70, 0.70),
    };
    [r, g, b, 1.0]
}

impl Options {
    /// Ground height (m above the ellipsoid) of building `i` of the model.
    pub fn base_of(&self, i: usize) -> f64 {
        self.ground.as_ref().and_then(|g| g.get(i).copied()).filter(|h| h.is_finite()).unwrap_or(self.base_height)
    }
}

struct LeafOut {
    key: String,
    region: [f64; 6],
    transform: [f64; 16],
    raw: u64,
    gz: u64,
    triangles: u64,
    vertices: u64,
}

/// Writes the tileset of `model` into `dir` (created). Never fails on a bad building; fails on
/// I/O errors only.
pub fn write(model: &CityModel, dir: &Path, opts: &Options) -> Result<Tiles3dSummary> {
    write_with_ground(model, dir, opts, None)
}

/// Ground height (m above the ellipsoid) at a point, `None` outside the terrain: called on the
/// calling thread only (a GDAL-backed DEM is not `Send`).
pub type GroundFn<'a> = &'a dyn Fn(f64, f64) -> Option<f64>;

/// [`write`], with the trees standing on `tree_ground` sampled per tree (else on
/// `opts.base_height`).
pub fn write_with_ground(model: &CityModel, dir: &Path, opts: &Options, tree_ground: Option<GroundFn<'_>>) -> Result<Tiles3dSummary> {
    let t0 = std::time::Instant::now();
    let content_dir = dir.join("content");
    let ge = tileset::GeometricErrors::new(&opts.sse);

    // 1. check every building
    let mut p = Progress::new("3d tiles: prepare", Some(model.buildings.len() as u64));
    // An invalid footprint (self-intersecting or crossing rings) is resolved by the ingest's
    // boolean-union repair and tried again; such buildings are listed in `repaired`.
    let prepared: Vec<(Result<l2::Prepared, &'static str>, bool)> = model
        .buildings
        .par_iter()
        .map(|b| match l2::prepare(b) {
            Err(l2::reason::SELF_INTERSECTING) => {
                match crate::ingest::geom::repair_polygons(b.footprint.clone()) {
                    crate::ingest::geom::Repaired::Valid(mp) | crate::ingest::geom::Repaired::Fixed(mp, _) => {
                        let mut fixed = b.clone();
                        fixed.footprint = mp;
                        let r = l2::prepare(&fixed);
                        let ok = r.is_ok();
                        (r, ok)
                    }
                    crate::ingest::geom::Repaired::Rejected(_) => (Err(l2::reason::SELF_INTERSECTING), false),
                }
            }
            r => (r, false),
        })
        .collect();
    p.inc(prepared.len() as u64);
    p.finish();
    let mut repaired: BTreeMap<String, Tally> = BTreeMap::new();
    for (i, _) in prepared.iter().enumerate().filter(|(_, (_, fixed))| *fixed) {
        let b = &model.buildings[i];
        let t = repaired.entry(REPAIRED_REASON.to_string()).or_default();
        t.count += 1;
        if t.examples.len() < EXAMPLES_PER_REASON {
            let source = model.sources.get(b.source.source as usize).map(|s| s.path.clone()).unwrap_or_default();
            t.examples.push(FeatureRef { source, feature: format!("{} (building {})", b.source.id, b.id) });
        }
    }
    let prepared: Vec<Result<l2::Prepared, &'static str>> = prepared.into_iter().map(|(r, _)| r).collect();
    let mut skipped: BTreeMap<String, Tally> = BTreeMap::new();
    let mut ok: Vec<usize> = Vec::with_capacity(prepared.len());
    for (i, r) in prepared.iter().enumerate() {
        match r {
            Ok(_) => ok.push(i),
            Err(reason) => {
                let b = &model.buildings[i];
                let t = skipped.entry(reason.to_string()).or_default();
                t.count += 1;
                if t.examples.len() < EXAMPLES_PER_REASON {
                    let source = model
                        .sources
                        .get(b.source.source as usize)
                        .map(|s| s.path.clone())
                        .unwrap_or_default();
                    t.examples.push(FeatureRef {
                        source,
                        feature: format!("{} (building {})", b.source.id, b.id),
                    });
                }
            }
        }
    }
    for (reason, t) in &skipped {
        tracing::warn!(count = t.count, reason = %reason, "3d tiles: buildings without an L2 block");
    }

    // Nothing to tile: no tileset is written (tiles = 0, no files entry in the manifest).
    if ok.is_empty() {
        tracing::warn!("3d tiles: no building can be tiled; no tileset written");
        return Ok(Tiles3dSummary {
            tileset: String::new(),
            tiles: 0,
            nodes: 0,
            depth: 0,
            buildings: 0,
            triangles: 0,
            vertices: 0,
            bytes_raw: 0,
            bytes: 0,
            seconds: t0.elapsed().as_secs_f64(),
            max_features_per_tile: opts.max_features_per_tile as u64,
            position_encoding: String::new(),
            geometric_errors: ge,
            skipped,
            repaired,
            terrain: None,
            l3_tiles: 0,
            l3_buildings: 0,
            l3_solids: 0,
            l3_bytes: 0,
            l3_fallbacks: BTreeMap::new(),
            tree_tiles: 0,
            trees: 0,
            l3_areas: vec![],
            l4_tiles: 0,
            l4_buildings: 0,
            l4_bytes: 0,
            l4_images: 0,
            l4_fallbacks: BTreeMap::new(),
        });
    }
    std::fs::create_dir_all(&content_dir)
        .with_context(|| format!("cannot create {}", content_dir.display()))?;

    // 2. quadtree on centroids (x scaled by cos φ so quadrants are square on the ground)
    let lat_mid = ok
        .iter()
        .map(|&i| prepared[i].as_ref().unwrap().centroid[1])
        .sum::<f64>()
        / ok.len().max(1) as f64;
    let kx = lat_mid.to_radians().cos();
    let pts: Vec<[f64; 2]> = prepared
        .iter()
        .map(|r| {
            r.as_ref()
                .map(|p| [p.centroid[0] * kx, p.centroid[1]])
                .unwrap_or([0.0, 0.0])
        })
        .collect();
    let tree = if ok.is_empty() {
        None
    } else {
        Some(tileset::quadtree(
            &pts,
            ok.clone(),
            opts.max_features_per_tile.max(1),
            24,
        ))
    };
    let mut leaves = Vec::new();
    if let Some(t) = &tree {
        t.leaves(&mut leaves);
    }

    // root frame: ENU at the centre of all footprints, on the base
    let mut bb = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for &i in &ok {
        let b = prepared[i].as_ref().unwrap().bbox;
        bb = [
            bb[0].min(b[0]),
            bb[1].min(b[1]),
            bb[2].max(b[2]),
            bb[3].max(b[3]),
        ];
    }
    // (with per-building ground: on the lowest ground, so the frame lies at or below every base)
    let root_base = ok.iter().map(|&i| opts.base_of(i)).fold(f64::INFINITY, f64::min);
    let root_frame = if ok.is_empty() {
        crate::geodesy::Enu::new(0.0, 0.0, 0.0)
    } else {
        crate::geodesy::Enu::new(
            (bb[0] + bb[2]) / 2.0,
            (bb[1] + bb[3]) / 2.0,
            root_base,
        )
    };
    let root_m = root_frame.to_ecef_matrix();
    let root_inv = tileset::rigid_inverse(&root_m);

    // 3. content tiles in parallel
    let uses: Vec<&str> = BuildingUse::ALL.iter().map(|u| u.as_str()).collect();
    let schema = gltf::building_schema(&uses);
    let progress = Mutex::new(Progress::new("3d tiles: L2 content", Some(ok.len() as u64)));
    let results: Vec<Result<LeafOut>> = leaves
        .par_iter()
        .map_init(|| l2::Extruder::new(opts.normals), |ex, (key, items)| {
            let out = write_leaf(
                model,
                &prepared,
                key,
                items,
                ex,
                opts,
                &schema,
                &root_inv,
                &content_dir,
            )?;
            progress.lock().unwrap().inc(items.len() as u64);
            Ok(out)
        })
        .collect();
    progress.into_inner().unwrap().finish();
    let mut by_key: BTreeMap<String, LeafOut> = BTreeMap::new();
    for r in results {
        let l = r?;
        by_key.insert(l.key.clone(), l);
    }

    // 3a. L4: one tile per key building (Level::L4 with a solid or a placed glTF), below a
    // slot tile of its own that holds the building alone at L3 (see docs/ARCHITECTURE.md).
    let model_dir = dir.parent().unwrap_or(dir);
    let mut leaf_of: BTreeMap<usize, String> = BTreeMap::new();
    for (key, items) in &leaves {
        for &i in items.iter() {
            if l4::is_key(model, &model.buildings[i]) {
                leaf_of.insert(i, key.to_string());
            }
        }
    }
    // per key building: (tile, embedded images, unreadable textures), or why it has no L4 tile
    type L4Result = Result<(LeafOut, u64, Vec<String>), String>;
    let l4_results: Vec<(usize, L4Result)> = leaf_of
        .par_iter()
        .map(|(&i, leaf)| {
            let r = (|| -> Result<(LeafOut, u64, Vec<String>), String> {
                let b = &model.buildings[i];
                let p = prepared[i].as_ref().unwrap();
                let base = opts.base_of(i);
                let frame = crate::geodesy::Enu::new((p.bbox[0] + p.bbox[2]) / 2.0, (p.bbox[1] + p.bbox[3]) / 2.0, base);
                let parts = l4::building_parts(model, b, base, &frame, model_dir)?;
                if !l4::region_ok(&parts) {
                    return Err("L4 geometry has no extent".into());
                }
                let transform = tileset::mat_mul(&root_inv, &frame.to_ecef_matrix());
                let triangles = parts.triangles();
                let images = parts.images.len() as u64;
                let mut primitives = parts.primitives;
                // The tile's frame origin is the building's block centre: positions stay small.
                let vertices = primitives.iter().map(|p| p.positions.len() as u64).sum();
                for p in primitives.iter_mut() {
                    p.feature_ids.iter_mut().for_each(|f| *f = 0);
                }
                let positions = position_encoding(&primitives, opts);
                let doc = gltf::Document {
                    generator: format!("CityTwin twin-server {}", env!("CARGO_PKG_VERSION")),
                    materials: parts.materials,
                    primitives,
                    positions,
                    schema: Some(schema.clone()),
                    property_table: Some(property_table(model, &[i], vec![4])),
                    images: parts.images,
                    instances: None,
                };
                let out = write_content(&doc, format!("{leaf}-l4-{}", b.id), parts.region, transform, triangles, vertices, opts, &content_dir)
                    .map_err(|e| format!("I/O: {e:#}"))?;
                Ok((out, images, parts.unreadable_textures))
            })();
            (i, r)
        })
        .collect();
    let mut l4_by_building: BTreeMap<usize, LeafOut> = BTreeMap::new();
    let mut l4_fallbacks: BTreeMap<String, Tally> = BTreeMap::new();
    let mut l4_images = 0u64;
    let tally = |m: &mut BTreeMap<String, Tally>, reason: String, i: usize| {
        let b = &model.buildings[i];
        let t = m.entry(reason.chars().take(160).collect()).or_default();
        t.count += 1;
        if t.examples.len() < EXAMPLES_PER_REASON {
            let source = model.sources.get(b.source.source as usize).map(|s| s.path.clone()).unwrap_or_default();
            t.examples.push(FeatureRef { source, feature: format!("{} (building {})", b.source.id, b.id) });
        }
    };
    for (i, r) in l4_results {
        match r {
            Ok((out, images, unreadable)) => {
                l4_images += images;
                if !unreadable.is_empty() {
                    tally(&mut l4_fallbacks, "texture image unreadable: surfaces drawn untextured".into(), i);
                }
                l4_by_building.insert(i, out);
            }
            Err(e) if e.starts_with("I/O: ") => anyhow::bail!("3d tiles: L4 tile of building {}: {e}", model.buildings[i].id),
            Err(e) => tally(&mut l4_fallbacks, e, i),
        }
    }
    for (reason, t) in &l4_fallbacks {
        tracing::warn!(count = t.count, reason = %reason, "3d tiles: key buildings (L4)");
    }

    // 3b. L3 children of the L2 tiles holding focus-district buildings or key buildings: every
    // building of such a tile goes into one of its L3 tiles (≤ max_features_per_l3_tile each);
    // a key building with an L4 tile gets an L3 tile of its own (its slot, parent of the L4).
    let mut focus = opts.l3.focus(model).map_err(anyhow::Error::msg)?;
    let mut l3_area_counts = vec![0u64; opts.l3_areas.len()];
    for (i, r) in prepared.iter().enumerate() {
        if let Ok(p) = r {
            for (k, a) in opts.l3_areas.iter().enumerate() {
                if a.contains(p.centroid[0], p.centroid[1]) {
                    l3_area_counts[k] += 1;
                    focus[i] = true;
                }
            }
        }
    }
    let mut l3_jobs: Vec<(String, String, Vec<usize>)> = Vec::new();
    let mut slot_of: BTreeMap<String, usize> = BTreeMap::new();
    for (key, items) in &leaves {
        let keys: Vec<usize> = items.iter().copied().filter(|i| l4_by_building.contains_key(i)).collect();
        if !items.iter().any(|&i| focus[i]) && keys.is_empty() {
            continue;
        }
        let rest: Vec<usize> = items.iter().copied().filter(|i| !l4_by_building.contains_key(i)).collect();
        if !rest.is_empty() {
            let sub = tileset::quadtree(&pts, rest, opts.max_features_per_l3_tile.max(1), 24);
            let mut subs = Vec::new();
            sub.leaves(&mut subs);
            for (n, (_, its)) in subs.iter().enumerate() {
                l3_jobs.push((key.to_string(), format!("{key}-l3-{n}"), its.to_vec()));
            }
        }
        for i in keys {
            let k = format!("{key}-k{}", model.buildings[i].id);
            slot_of.insert(k.clone(), i);
            l3_jobs.push((key.to_string(), k, vec![i]));
        }
    }
    let l3_total: u64 = l3_jobs.iter().map(|j| j.2.len() as u64).sum();
    let progress = Mutex::new(Progress::new("3d tiles: L3 content", Some(l3_total)));
    let l3_results: Vec<Result<(String, LeafOut, L3Stats)>> = l3_jobs
        .par_iter()
        .map_init(|| l2::Extruder::new(true), |ex, (parent, key, items)| {
            let (out, st) = write_l3_tile(model, &prepared, &focus, key, items, ex, opts, &schema, &root_inv, &content_dir)?;
            progress.lock().unwrap().inc(items.len() as u64);
            Ok((parent.clone(), out, st))
        })
        .collect();
    progress.into_inner().unwrap().finish();
    let mut l3_by_parent: BTreeMap<String, Vec<LeafOut>> = BTreeMap::new();
    let mut l3_stats = L3Stats::default();
    let (mut l3_tiles, mut l3_bytes, mut l3_raw, mut l3_tris, mut l3_verts) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for r in l3_results {
        let (parent, out, st) = r?;
        l3_tiles += 1;
        l3_bytes += out.gz;
        l3_raw += out.raw;
        l3_tris += out.triangles;
        l3_verts += out.vertices;
        l3_stats.merge(st);
        l3_by_parent.entry(parent).or_default().push(out);
    }
    for (reason, t) in &l3_stats.fallbacks {
        tracing::warn!(count = t.count, reason = %reason, "3d tiles: focus buildings written as their L2 block in L3 tiles");
    }

    // 3c. trees in the parks of the focus districts: instanced tree tiles
    let tree_tiles = if focus.iter().any(|f| *f) {
        write_tree_tiles(model, opts, &root_inv, &content_dir, root_frame_lonlat(&bb), kx, tree_ground)?
    } else {
        vec![]
    };

    // 4. tree → tileset.json
    let (mut nodes, mut depth) = (0u64, 0u64);
    let mut children = match &tree {
        Some(t) => {
            let l4 = L4Links { slot_of: &slot_of, tiles: &l4_by_building };
            vec![assemble(t, &by_key, &l3_by_parent, &l4, &ge, 1, &mut nodes, &mut depth)]
        }
        None => vec![],
    };
    let n_trees: u64 = tree_tiles.iter().map(|t| t.1).sum();
    if !tree_tiles.is_empty() {
        // A gate (ge of an L2 tile: refined within 500 m) over tree tiles with the L3 error.
        let kids: Vec<Tile> = tree_tiles
            .iter()
            .map(|(t, _)| Tile {
                bounding_volume: BoundingVolume::region(t.region),
                geometric_error: ge.l3,
                refine: Some(Refine::Replace),
                transform: Some(t.transform),
                content: Some(Content { uri: format!("content/{}.glb", t.key), bounding_volume: None }),
                children: vec![],
            })
            .collect();
        let region = kids.iter().filter_map(|c| c.bounding_volume.region).reduce(union).unwrap();
        nodes += 1 + kids.len() as u64;
        children.push(Tile {
            bounding_volume: BoundingVolume::region(region),
            geometric_error: ge.l2,
            refine: Some(Refine::Replace),
            transform: None,
            content: None,
            children: kids,
        });
    }
    let region = children
        .iter()
        .filter_map(|c| c.bounding_volume.region)
        .reduce(union)
        .unwrap_or([0.0; 6]);
    let root_ge = children
        .iter()
        .map(|c| c.geometric_error * 2.0)
        .fold(ge.l2_parent, f64::max);
    nodes += 1;
    let root = Tile {
        bounding_volume: BoundingVolume::region(region),
        geometric_error: root_ge,
        refine: Some(Refine::Replace),
        transform: Some(root_m),
        content: None,
        children,
    };
    let ts = Tileset {
        asset: Asset {
            version: "1.1".into(),
            tileset_version: Some(model.info.name.clone()),
            generator: Some(format!(
                "CityTwin twin-server {}",
                env!("CARGO_PKG_VERSION")
            )),
        },
        geometric_error: root_ge * 2.0,
        root,
        schema: None,
        schema_uri: None,
        extensions_used: vec![],
    };
    let json = serde_json::to_vec(&ts)?;
    std::fs::write(dir.join(TILESET_FILE), &json)?;
    let gz = gzip(&json, opts.gzip_level)?;
    std::fs::write(dir.join(format!("{TILESET_FILE}.gz")), &gz)?;

    let summary = Tiles3dSummary {
        tileset: format!("{DIR}/{TILESET_FILE}"),
        tiles: by_key.len() as u64 + l3_tiles + tree_tiles.len() as u64 + l4_by_building.len() as u64,
        nodes,
        depth,
        buildings: ok.len() as u64,
        triangles: by_key.values().map(|l| l.triangles).sum::<u64>() + l3_tris + tree_tiles.iter().map(|t| t.0.triangles).sum::<u64>()
            + l4_by_building.values().map(|l| l.triangles).sum::<u64>(),
        vertices: by_key.values().map(|l| l.vertices).sum::<u64>() + l3_verts + l4_by_building.values().map(|l| l.vertices).sum::<u64>(),
        bytes_raw: by_key.values().map(|l| l.raw).sum::<u64>() + l3_raw + json.len() as u64 + l4_by_building.values().map(|l| l.raw).sum::<u64>(),
        bytes: by_key.values().map(|l| l.gz).sum::<u64>()
            + l3_bytes
            + tree_tiles.iter().map(|t| t.0.gz).sum::<u64>()
            + gz.len() as u64
            + l4_by_building.values().map(|l| l.gz).sum::<u64>(),
        seconds: t0.elapsed().as_secs_f64(),
        max_features_per_tile: opts.max_features_per_tile as u64,
        position_encoding: match opts.positions {
            PositionEncoding::Float => "float32".into(),
            PositionEncoding::Int16 => "int16 (KHR_mesh_quantization)".into(),
        },
        geometric_errors: ge,
        skipped,
        repaired,
        terrain: None,
        l3_tiles,
        l3_buildings: l3_stats.generated + l3_stats.solids,
        l3_solids: l3_stats.solids,
        l3_bytes,
        l3_fallbacks: l3_stats.fallbacks,
        tree_tiles: tree_tiles.len() as u64,
        trees: n_trees,
        l3_areas: opts
            .l3_areas
            .iter()
            .zip(&l3_area_counts)
            .map(|(a, &n)| L3AreaSummary { name: a.name.clone(), bbox: a.bbox, buildings: n })
            .collect(),
        l4_tiles: l4_by_building.len() as u64,
        l4_buildings: l4_by_building.len() as u64,
        l4_bytes: l4_by_building.values().map(|l| l.gz).sum(),
        l4_images,
        l4_fallbacks,
    };
    tracing::info!(
        l3_tiles = summary.l3_tiles,
        l3_buildings = summary.l3_buildings,
        l3_solids = summary.l3_solids,
        l3_bytes_per_building = format!("{:.0}", summary.l3_bytes as f64 / summary.l3_buildings.max(1) as f64),
        "3d tiles: L3"
    );
    tracing::info!(
        tiles = summary.tiles,
        buildings = summary.buildings,
        bytes = summary.bytes,
        bytes_per_building = format!(
            "{:.0}",
            summary.bytes as f64 / summary.buildings.max(1) as f64
        ),
        secs = format!("{:.2}", summary.seconds),
        "3d tiles written"
    );
    Ok(summary)
}

fn union(a: [f64; 6], b: [f64; 6]) -> [f64; 6] {
    [
        a[0].min(b[0]),
        a[1].min(b[1]),
        a[2].max(b[2]),
        a[3].max(b[3]),
        a[4].min(b[4]),
        a[5].max(b[5]),
    ]
}

/// Slot tiles (L3 tile key → key building) and the key buildings' L4 tiles.
struct L4Links<'a> {
    slot_of: &'a BTreeMap<String, usize>,
    tiles: &'a BTreeMap<usize, LeafOut>,
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    n: &tileset::QNode,
    leaves: &BTreeMap<String, LeafOut>,
    l3: &BTreeMap<String, Vec<LeafOut>>,
    l4: &L4Links<'_>,
    ge: &tileset::GeometricErrors,
    depth: u64,
    nodes: &mut u64,
    max_depth: &mut u64,
) -> Tile {
    *nodes += 1;
    *max_depth = (*max_depth).max(depth);
    match n {
        tileset::QNode::Leaf { key, .. } => {
            let l = &leaves[key];
            *nodes += 1;
            *max_depth = (*max_depth).max(depth + 1);
            // L3 children: own ENU frames, given relative to the L2 tile's (the parent's
            // transform applies to them).
            let l2_inv = tileset::rigid_inverse(&l.transform);
            let l3_children: Vec<Tile> = l3
                .get(key)
                .map(|v| {
                    v.iter()
                        .map(|c| {
                            // A key building's slot: its L4 tile below (REPLACE: only the key
                            // building is replaced, its neighbours are in the other L3 tiles).
                            let l4_child: Vec<Tile> = l4
                                .slot_of
                                .get(&c.key)
                                .and_then(|i| l4.tiles.get(i))
                                .map(|t| Tile {
                                    bounding_volume: BoundingVolume::region(t.region),
                                    geometric_error: ge.l4,
                                    refine: Some(Refine::Replace),
                                    transform: Some(tileset::mat_mul(&tileset::rigid_inverse(&c.transform), &t.transform)),
                                    content: Some(Content { uri: format!("content/{}.glb", t.key), bounding_volume: None }),
                                    children: vec![],
                                })
                                .into_iter()
                                .collect();
                            let region = l4_child.iter().filter_map(|t| t.bounding_volume.region).fold(c.region, union);
                            Tile {
                                bounding_volume: BoundingVolume::region(region),
                                geometric_error: ge.l3,
                                refine: Some(Refine::Replace),
                                transform: Some(tileset::mat_mul(&l2_inv, &c.transform)),
                                content: Some(Content {
                                    uri: format!("content/{}.glb", c.key),
                                    bounding_volume: (!l4_child.is_empty()).then(|| BoundingVolume::region(c.region)),
                                }),
                                children: l4_child,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let refined = !l3_children.is_empty();
            if refined {
                *nodes += l3_children.len() as u64;
                *max_depth = (*max_depth).max(depth + 2);
                let n4 = l3_children.iter().map(|c| c.children.len() as u64).sum::<u64>();
                if n4 > 0 {
                    *nodes += n4;
                    *max_depth = (*max_depth).max(depth + 3);
                }
            }
            // The L2 region must contain its children's (solids may exceed the footprint's block).
            let region = l3_children.iter().filter_map(|c| c.bounding_volume.region).fold(l.region, union);
            let content = Tile {
                bounding_volume: BoundingVolume::region(region),
                geometric_error: ge.l2,
                refine: Some(Refine::Replace),
                transform: Some(l.transform),
                content: Some(Content {
                    uri: format!("content/{key}.glb"),
                    bounding_volume: refined.then(|| BoundingVolume::region(l.region)),
                }),
                children: l3_children,
            };
            // The L2 gate: an empty tile with the content's region and error ge.l2_parent, so the
            // L2 tile appears exactly when the camera is within L2_DISTANCE_M of its region.
            Tile {
                bounding_volume: BoundingVolume::region(region),
                geometric_error: ge.l2_parent,
                refine: Some(Refine::Replace),
                transform: None,
                content: None,
                children: vec![content],
            }
        }
        tileset::QNode::Inner { children, .. } => {
            let children: Vec<Tile> = children
                .iter()
                .map(|c| assemble(c, leaves, l3, l4, ge, depth + 1, nodes, max_depth))
                .collect();
            let region = children
                .iter()
                .filter_map(|c| c.bounding_volume.region)
                .reduce(union)
                .unwrap_or([0.0; 6]);
            // Above the L2 gates the error only gates traversal: twice the largest child's.
            let g = children.iter().map(|c| c.geometric_error * 2.0).fold(ge.l2_parent, f64::max);
            Tile {
                bounding_volume: BoundingVolume::region(region),
                geometric_error: g,
                refine: Some(Refine::Replace),
                transform: None,
                content: None,
                children,
            }
        }
    }
}

fn gzip(data: &[u8], level: u32) -> Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3),
        flate2::Compression::new(level),
    );
    e.write_all(data)?;
    Ok(e.finish()?)
}

#[allow(clippy::too_many_arguments)]
fn write_leaf(
    model: &CityModel,
    prepared: &[Result<l2::Prepared, &'static str>],
    key: &str,
    items: &[usize],
    ex: &mut l2::Extruder,
    opts: &Options,
    schema: &serde_json::Value,
    root_inv: &[f64; 16],
    content_dir: &Path,
) -> Result<LeafOut> {
    // order features by use so each material's primitive holds a contiguous run of ids
    let mut items: Vec<usize> = items.to_vec();
    items.sort_by_key(|&i| (model.buildings[i].use_, i));
    let mut reg = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for &i in &items {
        let p = prepared[i].as_ref().unwrap();
        reg = [
            reg[0].min(p.bbox[0]),
            reg[1].min(p.bbox[1]),
            reg[2].max(p.bbox[2]),
            reg[3].max(p.bbox[3]),
            reg[4].min(opts.base_of(i) + p.bottom),
            reg[5].max(opts.base_of(i) + p.top),
        ];
    }
    let base = items.iter().map(|&i| opts.base_of(i)).fold(f64::INFINITY, f64::min);
    let frame = crate::geodesy::Enu::new((reg[0] + reg[2]) / 2.0, (reg[1] + reg[3]) / 2.0, base);
    let transform = tileset::mat_mul(root_inv, &frame.to_ecef_matrix());

    let mut materials = Vec::new();
    let mut primitives: Vec<gltf::Primitive> = Vec::new();
    let mut current: Option<BuildingUse> = None;
    let mut buf = l2::MeshBuf::default();
    let mut triangles = 0u64;
    let flush = |buf: &mut l2::MeshBuf,
                 u: BuildingUse,
                 materials: &mut Vec<gltf::Material>,
                 primitives: &mut Vec<gltf::Primitive>| {
        if buf.indices.is_empty() {
            return;
        }
        materials.push(gltf::Material {
            name: u.as_str().into(),
            base_color: use_colour(u),
            metallic: 0.0,
            roughness: 0.9,
            texture: None,
            double_sided: false,
        });
        let b = std::mem::take(buf);
        primitives.push(gltf::Primitive {
            material: materials.len() - 1,
            positions: b.positions,
            feature_ids: b.feature_ids,
            indices: b.indices,
            normals: b.normals,
            uvs: vec![],
        });
    };
    for (fid, &i) in items.iter().enumerate() {
        let b = &model.buildings[i];
        if current != Some(b.use_) {
            if let Some(u) = current {
                flush(&mut buf, u, &mut materials, &mut primitives);
            }
            current = Some(b.use_);
        }
        let p = prepared[i].as_ref().unwrap();
        triangles += ex.extrude(p, opts.base_of(i), &frame, fid as u32, &mut buf) as u64;
    }
    if let Some(u) = current {
        flush(&mut buf, u, &mut materials, &mut primitives);
    }
    let vertices = primitives.iter().map(|p| p.positions.len() as u64).sum();
    let positions = position_encoding(&primitives, opts);
    let doc = gltf::Document {
        generator: format!("CityTwin twin-server {}", env!("CARGO_PKG_VERSION")),
        materials,
        primitives,
        positions,
        schema: Some(schema.clone()),
        property_table: Some(property_table(model, &items, vec![2; items.len()])),
        images: vec![],
        instances: None,
    };
    write_content(&doc, key.to_string(), reg, transform, triangles, vertices, opts, content_dir)
}

/// Writes one content tile (`content/<key>.glb.gz`) and returns it with its region: `reg`
/// (degrees, metres) padded by `REGION_PAD_M` so that it contains the stored (rounded /
/// quantised) positions, not only the exact ones, in radians.
#[allow(clippy::too_many_arguments)]
fn write_content(
    doc: &gltf::Document,
    key: String,
    reg: [f64; 6],
    transform: [f64; 16],
    triangles: u64,
    vertices: u64,
    opts: &Options,
    content_dir: &Path,
) -> Result<LeafOut> {
    let glb = gltf::write_glb(doc);
    let gz = gzip(&glb, opts.gzip_level)?;
    let path = content_dir.join(format!("{key}.glb.gz"));
    std::fs::write(&path, &gz).with_context(|| format!("cannot write {}", path.display()))?;
    let (mx, my) = l2::ellipsoid_metres_per_degree((reg[1] + reg[3]) / 2.0);
    let (dx, dy) = (REGION_PAD_M / mx, REGION_PAD_M / my);
    let region = [
        (reg[0] - dx).to_radians(),
        (reg[1] - dy).to_radians(),
        (reg[2] + dx).to_radians(),
        (reg[3] + dy).to_radians(),
        reg[4] - REGION_PAD_M,
        reg[5] + REGION_PAD_M,
    ];
    Ok(LeafOut { key, region, transform, raw: glb.len() as u64, gz: gz.len() as u64, triangles, vertices })
}

/// Counts of one or all L3 tiles.
#[derive(Debug, Default)]
struct L3Stats {
    generated: u64,
    solids: u64,
    fallbacks: BTreeMap<String, Tally>,
}

impl L3Stats {
    fn merge(&mut self, o: L3Stats) {
        self.generated += o.generated;
        self.solids += o.solids;
        for (k, t) in o.fallbacks {
            let e = self.fallbacks.entry(k).or_default();
            e.count += t.count;
            for x in t.examples {
                if e.examples.len() < EXAMPLES_PER_REASON {
                    e.examples.push(x);
                }
            }
        }
    }
}

/// The property table of a content tile: one row per building of `items`, in feature-id order.
/// int16 positions (KHR_mesh_quantization) unless half a quantisation step of this tile's extent
/// would not stay well inside the region padding; then floats.
fn position_encoding(primitives: &[gltf::Primitive], opts: &Options) -> PositionEncoding {
    let extent = primitives.iter().flat_map(|p| p.positions.iter()).fold([f32::INFINITY, f32::NEG_INFINITY], |a, v| {
        [a[0].min(v[0]).min(v[1]).min(v[2]), a[1].max(v[0]).max(v[1]).max(v[2])]
    });
    if opts.positions == PositionEncoding::Int16 && ((extent[1] - extent[0]) as f64 / 65534.0 / 2.0) > REGION_PAD_M / 2.0 {
        PositionEncoding::Float
    } else {
        opts.positions
    }
}

/// The building property table (EXT_structural_metadata) of a tile's features, in `items` order.
fn property_table(model: &CityModel, items: &[usize], levels: Vec<u8>) -> gltf::PropertyTable {
    let n = items.len();
    let bs = || items.iter().map(|&i| &model.buildings[i]);
    gltf::PropertyTable {
        class: "building".into(),
        count: n,
        columns: vec![
            ("id".into(), Column::U32(bs().map(|b| b.id).collect())),
            ("name".into(), Column::Str(bs().map(|b| b.names.display().unwrap_or("").to_string()).collect())),
            ("height".into(), Column::F32(bs().map(|b| b.height).collect())),
            ("floors".into(), Column::U16(bs().map(|b| b.levels.map(|l| l.min(65534)).unwrap_or(u16::MAX)).collect())),
            ("use".into(), Column::U8(bs().map(|b| BuildingUse::ALL.iter().position(|u| *u == b.use_).unwrap_or(11) as u8).collect())),
            (
                "district".into(),
                Column::Str(
                    bs().map(|b| {
                        b.district
                            .and_then(|d| model.districts.get(d as usize))
                            .and_then(|d| d.names.zh.clone().or_else(|| d.names.en.clone()))
                            .unwrap_or_default()
                    })
                    .collect(),
                ),
            ),
            ("source".into(), Column::Str(bs().map(|b| model.sources.get(b.source.source as usize).map(|s| s.path.clone()).unwrap_or_default()).collect())),
            ("level".into(), Column::U8(levels)),
        ],
    }
}

/// Writes one L3 tile: the focus buildings of `items` at L3, the others (and L3 failures) as
/// their L2 block; materials roof / wall / window_facade with flat normals.
#[allow(clippy::too_many_arguments)]
fn write_l3_tile(
    model: &CityModel,
    prepared: &[Result<l2::Prepared, &'static str>],
    focus: &[bool],
    key: &str,
    items: &[usize],
    ex: &mut l2::Extruder,
    opts: &Options,
    schema: &serde_json::Value,
    root_inv: &[f64; 16],
    content_dir: &Path,
) -> Result<(LeafOut, L3Stats)> {
    let mut items: Vec<usize> = items.to_vec();
    items.sort_unstable();
    // The tile's frame on the lowest ground of its buildings (as the L2 tiles).
    let base = items.iter().map(|&i| opts.base_of(i)).fold(f64::INFINITY, f64::min);
    let mut bb = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    for &i in &items {
        let b = prepared[i].as_ref().unwrap().bbox;
        bb = [bb[0].min(b[0]), bb[1].min(b[1]), bb[2].max(b[2]), bb[3].max(b[3])];
    }
    let frame = crate::geodesy::Enu::new((bb[0] + bb[2]) / 2.0, (bb[1] + bb[3]) / 2.0, base);
    let transform = tileset::mat_mul(root_inv, &frame.to_ecef_matrix());
    let mut out = l3tile::L3Bufs::new();
    let mut st = L3Stats::default();
    let mut levels = Vec::with_capacity(items.len());
    for (fid, &i) in items.iter().enumerate() {
        let b = &model.buildings[i];
        let p = prepared[i].as_ref().unwrap();
        let level = match l3tile::append_building(b, p, focus[i], opts.base_of(i), &frame, fid as u32, ex, &mut out) {
            l3tile::Outcome::Generated => {
                st.generated += 1;
                3
            }
            l3tile::Outcome::Solid => {
                st.solids += 1;
                3
            }
            l3tile::Outcome::Block => 2,
            l3tile::Outcome::Fallback(reason) => {
                let t = st.fallbacks.entry(reason.chars().take(120).collect()).or_default();
                t.count += 1;
                if t.examples.len() < EXAMPLES_PER_REASON {
                    let source = model.sources.get(b.source.source as usize).map(|s| s.path.clone()).unwrap_or_default();
                    t.examples.push(FeatureRef { source, feature: format!("{} (building {})", b.source.id, b.id) });
                }
                2
            }
        };
        levels.push(level);
    }
    // roof, plain wall; textured facades are white × their texture
    let colours: [[f32; 4]; 2] = [[0.55, 0.30, 0.25, 1.0], [0.82, 0.78, 0.70, 1.0]];
    let mut materials = Vec::new();
    let mut primitives = Vec::new();
    let mut images = Vec::new();
    let l3tile::L3Bufs { bufs, uvs, region: reg, .. } = out;
    for (k, (buf, uv)) in bufs.into_iter().zip(uvs).enumerate() {
        if buf.indices.is_empty() {
            continue;
        }
        let (base_color, texture, uvs) = match l3tile::slot_variant(k) {
            Some(_) => {
                images.push(l3tile::facade_pngs()[k - l3tile::WINDOW_FACADE].clone());
                ([1.0, 1.0, 1.0, 1.0], Some(images.len() - 1), uv)
            }
            None => (colours[k], None, vec![]),
        };
        materials.push(gltf::Material { name: l3tile::MATERIAL_NAMES[k].into(), base_color, metallic: 0.0, roughness: 0.9, texture, double_sided: false });
        primitives.push(gltf::Primitive {
            material: materials.len() - 1,
            positions: buf.positions,
            feature_ids: buf.feature_ids,
            indices: buf.indices,
            normals: buf.normals,
            uvs,
        });
    }
    let triangles = primitives.iter().map(|p| p.indices.len() as u64 / 3).sum();
    let vertices = primitives.iter().map(|p| p.positions.len() as u64).sum();
    let positions = position_encoding(&primitives, opts);
    let doc = gltf::Document {
        generator: format!("CityTwin twin-server {}", env!("CARGO_PKG_VERSION")),
        materials,
        primitives,
        positions,
        schema: Some(schema.clone()),
        property_table: Some(property_table(model, &items, levels)),
        images,
        instances: None,
    };
    Ok((write_content(&doc, key.to_string(), reg, transform, triangles, vertices, opts, content_dir)?, st))
}

fn root_frame_lonlat(bb: &[f64; 4]) -> [f64; 2] {
    [(bb[0] + bb[2]) / 2.0, (bb[1] + bb[3]) / 2.0]
}

/// At most this many trees per tree tile.
pub const MAX_TREES_PER_TILE: usize = 5000;

/// Places trees (`l3::trees::place_trees`) in the landuse areas of the focus districts (a tree
/// counts when it stands inside a focus district; every tree with `L3Districts::All`) and writes
/// them as instanced tiles `content/trees-<key>.glb` (EXT_mesh_gpu_instancing over the unit
/// tree). Returns the tiles with their tree counts.
fn write_tree_tiles(
    model: &CityModel,
    opts: &Options,
    root_inv: &[f64; 16],
    content_dir: &Path,
    centre: [f64; 2],
    kx: f64,
    tree_ground: Option<GroundFn<'_>>,
) -> Result<Vec<(LeafOut, u64)>> {
    use geo::Contains;
    let mask = opts.l3.district_mask(model).map_err(anyhow::Error::msg)?;
    let frame = crate::l3::LocalFrame::new(centre[0], centre[1]);
    let trees: Vec<crate::l3::trees::Tree> = crate::l3::trees::place_trees(model, &frame, 1)
        .into_iter()
        .filter(|t| {
            opts.l3_areas.iter().any(|a| a.contains(t.lon, t.lat))
                || match &mask {
                    None => true,
                    Some(m) => model
                        .districts
                        .iter()
                        .enumerate()
                        .any(|(i, d)| m[i] && d.geometry.contains(&geo_types::Point::new(t.lon, t.lat))),
                }
        })
        .collect();
    if trees.is_empty() {
        return Ok(vec![]);
    }
    let pts: Vec<[f64; 2]> = trees.iter().map(|t| [t.lon * kx, t.lat]).collect();
    let q = tileset::quadtree(&pts, (0..trees.len()).collect(), MAX_TREES_PER_TILE, 24);
    let mut leaves = Vec::new();
    q.leaves(&mut leaves);
    let unit = l3tile::unit_tree_gltf();
    // Each tree stands on the ground under it (the DEM sampled per tree, with `--dem`), else on
    // the flat / fallback ground. Sampled here, on the calling thread.
    let bases: Vec<f64> = trees
        .iter()
        .map(|t| tree_ground.and_then(|g| g(t.lon, t.lat)).filter(|h| h.is_finite()).unwrap_or(opts.base_height))
        .collect();
    leaves
        .par_iter()
        .map(|(key, items)| {
            let base = items.iter().map(|&i| bases[i]).fold(f64::INFINITY, f64::min);
            let mut reg = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY, base, f64::NEG_INFINITY];
            for &i in items.iter() {
                let t = &trees[i];
                let (mx, my) = l2::ellipsoid_metres_per_degree(t.lat);
                let (dx, dy) = (t.crown_radius / mx, t.crown_radius / my);
                reg = [reg[0].min(t.lon - dx), reg[1].min(t.lat - dy), reg[2].max(t.lon + dx), reg[3].max(t.lat + dy), base, reg[5].max(bases[i] + t.height)];
            }
            let tframe = crate::geodesy::Enu::new((reg[0] + reg[2]) / 2.0, (reg[1] + reg[3]) / 2.0, base);
            let transform = tileset::mat_mul(root_inv, &tframe.to_ecef_matrix());
            // per-tree feature ids (EXT_instance_features) into a `tree` property table
            let mut inst = gltf::Instances { feature_ids: (0..items.len() as u32).collect(), ..Default::default() };
            let table = gltf::PropertyTable {
                class: "tree".into(),
                count: items.len(),
                columns: vec![
                    ("id".into(), Column::U32(items.iter().map(|&i| i as u32).collect())),
                    ("height".into(), Column::F32(items.iter().map(|&i| trees[i].height as f32).collect())),
                ],
            };
            for &i in items.iter() {
                let t = &trees[i];
                let e = tframe.from_geodetic(t.lon, t.lat, bases[i]);
                inst.translations.push([e[0] as f32, e[2] as f32, (-e[1]) as f32]);
                inst.rotations.push(l3tile::heading_quaternion(t.heading));
                inst.scales.push([t.height as f32; 3]);
            }
            let mut materials = Vec::new();
            let mut primitives = Vec::new();
            for (m, buf) in &unit {
                let colour = match m {
                    crate::l3::Material::TreeCrown => [0.20, 0.45, 0.18, 1.0],
                    _ => [0.40, 0.28, 0.18, 1.0],
                };
                materials.push(gltf::Material { name: m.as_str().into(), base_color: colour, metallic: 0.0, roughness: 0.9, texture: None, double_sided: false });
                primitives.push(gltf::Primitive {
                    material: materials.len() - 1,
                    positions: buf.positions.clone(),
                    feature_ids: buf.feature_ids.clone(),
                    indices: buf.indices.clone(),
                    normals: buf.normals.clone(),
                    uvs: vec![],
                });
            }
            let triangles = items.len() as u64 * primitives.iter().map(|p| p.indices.len() as u64 / 3).sum::<u64>();
            let doc = gltf::Document {
                generator: format!("CityTwin twin-server {}", env!("CARGO_PKG_VERSION")),
                materials,
                primitives,
                positions: PositionEncoding::Float,
                schema: Some(gltf::tree_schema()),
                property_table: Some(table),
                images: vec![],
                instances: Some(inst),
            };
            Ok((write_content(&doc, format!("trees-{key}"), reg, transform, triangles, 0, opts, content_dir)?, items.len() as u64))
        })
        .collect()
}
