//! The build pipeline: ingest every source (or generate the built-in Shenyang), finish the model
//! (districts, ids), index it, and write the model directory atomically.
//!
//! Each build is written into its own immutable directory `.<name>.builds/<build_id>/` beside the
//! output path, and `--out DIR` is then switched atomically to it (a symlink renamed over DIR; see
//! [`crate::publish`]), so a failed build leaves no partial model, the previous model stays intact
//! until the new one is complete, and a running server never sees a half-written model.

use crate::index::SpatialIndex;
use crate::ingest::{ingest_source, SourceSpec};
use crate::model::CityModel;
use crate::report::{BuildReport, Progress};
use crate::store;
use crate::publish;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Sources in order; empty builds the built-in Shenyang city.
    pub sources: Vec<SourceSpec>,
    pub out: PathBuf,
    /// Seed of the built-in generator.
    pub seed: u64,
    /// Directory of the Shenyang boundary files (cnmaps layout); searched for when `None`.
    pub boundaries: Option<PathBuf>,
    /// The NBS street list (`streets_2101.csv`) for the built-in city's 街道/乡镇 (`--divisions`);
    /// `None`: `$CITYTWIN_DIVISIONS`, else `<boundaries>/../divisions/streets_2101.csv`.
    pub divisions: Option<PathBuf>,
    /// Model name (default: "shenyang" for the built-in city, else the first source's stem).
    pub name: Option<String>,
    /// Vector tile pyramid written to `tiles/<name>.pmtiles`; `None` (`--no-tiles`) skips it.
    pub tiles: Option<crate::vector_tiles::TileOptions>,
    /// Write the 3D Tiles tileset (`DIR/3dtiles/`); `--no-3dtiles` turns it off.
    pub tiles3d: bool,
    /// DEM raster for the buildings' ground (`--dem`); read by GDAL, any CRS.
    pub dem: Option<PathBuf>,
    /// The DEM's heights are already WGS-84 ellipsoidal (`--dem-ellipsoidal`); default: EGM96
    /// orthometric (SRTM), converted with PROJ's egm96_15.gtx.
    pub dem_ellipsoidal: bool,
    /// Flat ground in metres above mean sea level (EGM96) where no DEM is given
    /// (`--ground-height`); default: 0 m above the WGS-84 ellipsoid.
    pub ground_height: Option<f64>,
    /// Buildings with L3 tiles (`--l3-districts`); `None`: 和平区 and 沈河区 for the built-in city,
    /// none for ingested data.
    pub l3_districts: Option<crate::threed::L3Districts>,
    /// Theme areas with L3 (`--l3-area NAME=w,s,e,n`, repeatable); `None`: 好游玩·北陵公园 for the
    /// built-in city, none for ingested data.
    pub l3_areas: Option<Vec<crate::threed::L3Area>>,
}

/// Feature counts per layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerCounts {
    pub buildings: u64,
    pub roads: u64,
    pub water: u64,
    pub landuse: u64,
    pub districts: u64,
    /// Street-level divisions (absent in manifests written before the layer existed).
    #[serde(default)]
    pub streets: u64,
    pub pois: u64,
    pub cim_models: u64,
}

impl LayerCounts {
    pub fn of(m: &CityModel) -> Self {
        LayerCounts {
            buildings: m.buildings.len() as u64,
            roads: m.roads.len() as u64,
            water: m.water.len() as u64,
            landuse: m.landuse.len() as u64,
            districts: m.districts.len() as u64,
            streets: m.streets.len() as u64,
            pois: m.pois.len() as u64,
            // Everything that came from a CIM format: CityJSON/CityGML buildings carry a solid,
            // glTF/IFC models are listed in cim_models.
            cim_models: (m.buildings.iter().filter(|b| b.solid.is_some()).count() + m.cim_models.len()) as u64,
        }
    }
    fn minus(&self, o: &LayerCounts) -> LayerCounts {
        LayerCounts {
            buildings: self.buildings - o.buildings,
            roads: self.roads - o.roads,
            water: self.water - o.water,
            landuse: self.landuse - o.landuse,
            districts: self.districts - o.districts,
            streets: self.streets - o.streets,
            pois: self.pois - o.pois,
            cim_models: self.cim_models - o.cim_models,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestSource {
    pub path: String,
    pub kind: String,
    pub crs: String,
    pub datum: Option<String>,
    pub features_read: u64,
    /// What this source added to each layer.
    pub accepted: LayerCounts,
    pub repaired: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeightCounts {
    /// From a measured attribute, by attribute name.
    pub attribute: BTreeMap<String, u64>,
    pub levels: u64,
    pub geometry: u64,
    pub generated: u64,
    pub estimated: u64,
}

/// `DIR/manifest.json`: the contract other tools and tests read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// Identifies this build: `YYYYMMDDTHHMMSSZ-<pid hex>-<random hex>` (UTC); the name of its
    /// immutable directory under `.<name>.builds/`. Served as `X-Build-Id`.
    #[serde(default)]
    pub build_id: String,
    pub name: String,
    pub generated: bool,
    pub label: String,
    pub attribution: Vec<String>,
    pub seed: Option<u64>,
    pub built_by: String,
    /// Seconds since the Unix epoch when the build finished.
    pub built_at_unix: u64,
    pub build_duration_s: f64,
    pub sources: Vec<ManifestSource>,
    pub layers: LayerCounts,
    pub heights: HeightCounts,
    pub repaired_total: u64,
    pub dropped_total: u64,
    pub report: BuildReport,
    /// `[west, south, east, north]`, WGS-84.
    pub bbox: Option<[f64; 4]>,
    /// The modelled built-up area: the defined polygon for the built-in city; for ingested data,
    /// the area of the 100 m × 100 m cells that hold at least one building footprint's centroid.
    pub built_up_area_km2: f64,
    pub built_up_definition: String,
    pub files: BTreeMap<String, String>,
    /// The vector tile pyramid (absent for `--no-tiles` and for models built before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_tiles: Option<crate::vector_tiles::TileSummary>,
    /// The 3D Tiles tileset, when written (docs/MODEL.md, "3D Tiles").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiles3d: Option<crate::threed::Tiles3dSummary>,
}

/// Area of the 100 m grid cells holding a building centroid (km²).
fn built_up_from_buildings(m: &CityModel) -> f64 {
    use geo::Centroid;
    let mut cells = std::collections::BTreeSet::new();
    for b in &m.buildings {
        if let Some(c) = b.footprint.centroid() {
            let (mx, my) = crate::geodesy::metres_per_degree(c.y());
            cells.insert(((c.x() * mx / 100.0).floor() as i64, (c.y() * my / 100.0).floor() as i64));
        }
    }
    cells.len() as f64 * 0.01
}

/// Sets `district` of buildings that have none to the district containing their centroid.
fn assign_districts(m: &mut CityModel) {
    use geo::{BoundingRect, Centroid, Contains};
    if m.districts.is_empty() {
        return;
    }
    let rects: Vec<_> = m.districts.iter().map(|d| d.geometry.bounding_rect()).collect();
    for b in m.buildings.iter_mut().filter(|b| b.district.is_none()) {
        let Some(c) = b.footprint.centroid() else { continue };
        b.district = m
            .districts
            .iter()
            .zip(&rects)
            .position(|(d, r)| r.is_some_and(|r| r.contains(&c)) && d.geometry.contains(&c))
            .map(|i| i as u16);
    }
}

/// Sets `district` of streets that have none: the district whose adcode is the first six digits
/// of the street's code, else the district containing the street's interior point.
pub fn assign_street_districts(m: &mut CityModel) {
    use geo::{Contains, InteriorPoint};
    for s in m.streets.iter_mut().filter(|s| s.district.is_none()) {
        let by_code = crate::ingest::attrs::street_parent_adcode(s.code)
            .and_then(|a| m.districts.iter().position(|d| d.adcode == a));
        s.district = by_code
            .or_else(|| {
                let p = s.geometry.interior_point()?;
                m.districts.iter().position(|d| d.geometry.contains(&p))
            })
            .map(|i| i as u16);
    }
}

fn height_counts(m: &CityModel) -> HeightCounts {
    use crate::model::HeightSource as H;
    let mut h = HeightCounts { attribute: BTreeMap::new(), levels: 0, geometry: 0, generated: 0, estimated: 0 };
    for b in &m.buildings {
        match &b.height_source {
            H::Attribute { name } => *h.attribute.entry(name.clone()).or_default() += 1,
            H::Levels => h.levels += 1,
            H::Geometry => h.geometry += 1,
            H::Generated => h.generated += 1,
            H::Estimated => h.estimated += 1,
        }
    }
    h
}

/// The tileset (and archive file) name of a model: its name with anything but letters, digits,
/// `-`, `_` and `.` replaced by `_`.
pub fn tileset_name(model_name: &str) -> String {
    let s: String = model_name
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("model{s}")
    } else {
        s
    }
}

/// Ground heights (m above the WGS-84 ellipsoid) per building, from the DEM or flat.
fn ground_for(
    model: &CityModel,
    dem: Option<&crate::terrain::Dem>,
    opts: &BuildOptions,
    report: &mut BuildReport,
) -> Result<(Vec<f64>, crate::terrain::TerrainSummary)> {
    use crate::terrain::Geoid;
    let need_geoid = (dem.is_some() && !opts.dem_ellipsoidal) || (dem.is_none() && opts.ground_height.is_some());
    let geoid = if need_geoid { Some(Geoid::egm96().map_err(|e| anyhow::anyhow!("terrain: {e}"))?) } else { None };
    let (flat, flat_vertical) = match (opts.ground_height, &geoid, model.bbox()) {
        (Some(h), Some(g), Some(b)) => {
            let (x, y) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
            let n = g.undulation(x, y).map_err(|e| anyhow::anyhow!("terrain: {e}"))?;
            (h + n, format!("--ground-height {h} m above mean sea level (EGM96) + EGM96 undulation {n:.2} m at the model's centre"))
        }
        (Some(h), _, _) => (h, format!("--ground-height {h} m (no model extent: used as ellipsoidal)")),
        (None, _, _) => (0.0, "default: flat at 0 m above the WGS-84 ellipsoid (no --dem, no --ground-height)".to_string()),
    };
    let (ground, t) = crate::terrain::ground_heights(model, dem, geoid.as_ref(), flat, &flat_vertical).map_err(|e| anyhow::anyhow!("terrain: {e}"))?;
    if let Some(o) = t.outside.get(crate::terrain::OUTSIDE_REASON) {
        report.warn(format!(
            "terrain: {} buildings outside the DEM {} stand on {:.2} m (the DEM's mean over the model's extent, or the flat height)",
            o.count,
            t.dem.as_deref().unwrap_or(""),
            t.fallback_height
        ));
    }
    Ok((ground, t))
}

/// Runs a build. On error nothing is left at `opts.out` that was not there before.
pub fn build(opts: &BuildOptions) -> Result<Manifest> {
    let t0 = Instant::now();
    // Refuse an unusable --out before any work.
    let target = publish::Target::check(&opts.out)?;
    // The DEM is opened (and checked) before any work; a bad one fails the build here.
    let dem = match (&opts.dem, opts.tiles3d) {
        (Some(path), true) => Some(crate::terrain::Dem::open(&path.to_string_lossy()).map_err(|e| anyhow::anyhow!("--dem: {e}"))?),
        (Some(_), false) => {
            tracing::warn!("--dem is ignored with --no-3dtiles");
            None
        }
        _ => None,
    };
    let mut report = BuildReport::default();
    let mut sources_out = Vec::new();
    let mut model = if opts.sources.is_empty() {
        let dir = crate::shenyang::find_boundaries(opts.boundaries.as_deref())?;
        tracing::info!(boundaries = %dir.display(), seed = opts.seed, "building the built-in Shenyang city");
        let mut m = crate::shenyang::build_default_with(&dir, opts.divisions.as_deref(), opts.seed, &mut report)?;
        // Landmarks (L4 key buildings from the shared CIM data) around 市府广场.
        let n = crate::shenyang::landmarks::add(&mut m, None, &mut report);
        if n > 0 {
            m.info.attribution.push(format!(
                "{n} landmarks: CIM models from the project's shared data (Ingolstadt LoD3 CC BY-SA 4.0, PLATEAU CC BY 4.0, KIT FZK-Haus, NCTU), placed by CityTwin"
            ));
            m.renumber();
        }
        let counts = LayerCounts::of(&m);
        for s in &m.sources {
            sources_out.push(ManifestSource {
                path: s.path.clone(),
                kind: s.kind.clone(),
                crs: s.crs.clone(),
                datum: s.datum.clone(),
                features_read: counts.districts,
                accepted: counts.clone(),
                repaired: report.repaired_total(),
                dropped: report.dropped_total(),
            });
        }
        m
    } else {
        let name = opts.name.clone().unwrap_or_else(|| opts.sources[0].default_name());
        let mut m = CityModel::empty(&name);
        m.info.label = "Ingested from the sources listed in the manifest".into();
        for spec in &opts.sources {
            let before = LayerCounts::of(&m);
            let mut src_report = BuildReport::default();
            let read = ingest_source(spec, &mut m, &mut src_report)?;
            let info = m.sources.last().cloned().expect("ingest_source records the source");
            if info.kind.starts_with("osm") {
                if !m.info.attribution.iter().any(|a| a.contains("OpenStreetMap")) {
                    m.info.attribution.push("© OpenStreetMap contributors (ODbL 1.0)".into());
                }
            }
            sources_out.push(ManifestSource {
                path: info.path,
                kind: info.kind,
                crs: info.crs,
                datum: info.datum,
                features_read: read,
                accepted: LayerCounts::of(&m).minus(&before),
                repaired: src_report.repaired_total(),
                dropped: src_report.dropped_total(),
            });
            report.merge(src_report);
        }
        m
    };
    assign_districts(&mut model);
    assign_street_districts(&mut model);
    model.renumber();

    let mut p = Progress::new("spatial index", Some((model.buildings.len() + model.pois.len()) as u64));
    let index = SpatialIndex::build(&model);
    p.inc((model.buildings.len() + model.pois.len()) as u64);
    p.finish();

    let (built_up_area_km2, built_up_definition) = match &model.built_up {
        Some(bu) => (
            crate::geodesy::area_km2(bu),
            "the built-in city's built-up polygon (scenes/src/shenyang), geodesic area".to_string(),
        ),
        None => (built_up_from_buildings(&model), "area of the 100 m × 100 m cells holding at least one building centroid".to_string()),
    };

    // Write everything into a new immutable build directory beside DIR, then point DIR at it.
    let out = &opts.out;
    let build_id = publish::new_build_id();
    let staging = target.staging_dir(&build_id)?;
    let tmp = &staging;
    // Placed glTF/IFC models are copied in, so the directory is self-contained and immutable.
    if !model.cim_models.is_empty() {
        let cim_dir = tmp.path().join("cim");
        std::fs::create_dir_all(&cim_dir)?;
        for c in model.cim_models.iter_mut() {
            let src = PathBuf::from(&c.path);
            let fname = src.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
            let rel = format!("cim/{}-{}", c.id, fname);
            std::fs::copy(&src, tmp.path().join(&rel)).with_context(|| format!("cannot copy {} into the model", src.display()))?;
            c.path = rel;
        }
    }
    let mut wp = Progress::new("write model", None);
    store::write_model(tmp.path(), &model)?;
    store::write_index(tmp.path(), &index)?;
    wp.inc(2);
    wp.finish();
    let tiles3d = if opts.tiles3d {
        let dir = tmp.path().join(crate::threed::DIR);
        let l3 = opts.l3_districts.clone().unwrap_or_else(|| {
            if opts.sources.is_empty() {
                crate::threed::L3Districts::builtin_default()
            } else {
                crate::threed::L3Districts::None
            }
        });
        let (ground, terrain) = ground_for(&model, dem.as_ref(), opts, &mut report)?;
        let l3_areas = opts.l3_areas.clone().unwrap_or_else(|| if opts.sources.is_empty() { crate::threed::L3Area::builtin_default() } else { vec![] });
        let topts = crate::threed::Options { base_height: terrain.fallback_height, ground: Some(ground), l3, l3_areas, ..Default::default() };
        // Trees stand on the DEM (+ the geoid undulation unless the DEM is ellipsoidal), sampled
        // per tree; outside the DEM on the fallback ground.
        let geoid = match (&dem, opts.dem_ellipsoidal) {
            (Some(_), false) => Some(crate::terrain::Geoid::egm96().map_err(|e| anyhow::anyhow!("terrain: {e}"))?),
            _ => None,
        };
        let tree_ground = |lon: f64, lat: f64| -> Option<f64> {
            let d = dem.as_ref()?;
            let h = d.elevation(lon, lat).ok()?;
            let n = match &geoid {
                Some(g) => g.undulation(lon, lat).ok()?,
                None => 0.0,
            };
            Some(h + n)
        };
        let mut s = crate::threed::write_with_ground(&model, &dir, &topts, dem.as_ref().map(|_| &tree_ground as crate::threed::GroundFn<'_>))?;
        s.terrain = Some(terrain);
        Some(s)
    } else {
        None
    };

    let mut files = BTreeMap::new();
    files.insert("model".to_string(), store::MODEL_FILE.to_string());
    files.insert("index".to_string(), store::INDEX_FILE.to_string());

    let vector_tiles = match &opts.tiles {
        Some(topts) => {
            let rel = format!("tiles/{}.pmtiles", tileset_name(&model.info.name));
            let summary = crate::vector_tiles::write_pmtiles(&model, &tmp.path().join(&rel), topts)
                .context("vector tiles")?;
            files.insert("vector_tiles".to_string(), rel.clone());
            Some(crate::vector_tiles::TileSummary { file: rel, ..summary })
        }
        None => None,
    };
    if let Some(t) = tiles3d.as_ref().filter(|t| t.tiles > 0) {
        files.insert("3dtiles".to_string(), t.tileset.clone());
    }
    let manifest = Manifest {
        format: "citytwin-model".into(),
        format_version: crate::model::MODEL_FORMAT_VERSION,
        build_id: build_id.clone(),
        name: model.info.name.clone(),
        generated: model.info.generated,
        label: model.info.label.clone(),
        attribution: model.info.attribution.clone(),
        seed: model.info.seed,
        built_by: format!("twin-server {}", env!("CARGO_PKG_VERSION")),
        built_at_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        build_duration_s: t0.elapsed().as_secs_f64(),
        sources: sources_out,
        layers: LayerCounts::of(&model),
        heights: height_counts(&model),
        repaired_total: report.repaired_total(),
        dropped_total: report.dropped_total(),
        report,
        bbox: model.bbox(),
        built_up_area_km2,
        built_up_definition,
        files,
        vector_tiles,
        tiles3d,
    };
    let mjson = serde_json::to_vec_pretty(&manifest)?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(tmp.path().join(store::MANIFEST_FILE))?;
        f.write_all(&mjson)?;
        f.sync_all()?;
    }

    target.publish(staging, &build_id)?;
    tracing::info!(
        out = %out.display(),
        build_id = %build_id,
        buildings = manifest.layers.buildings,
        roads = manifest.layers.roads,
        pois = manifest.layers.pois,
        secs = format!("{:.2}", manifest.build_duration_s),
        "model written"
    );
    Ok(manifest)
}
