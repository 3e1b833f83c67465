//! Terrain from a DEM raster read with GDAL (any GDAL raster format, any CRS): elevation at
//! WGS-84 lon/lat (bilinear between cell centres, through the DEM's CRS), void filling, and mean
//! elevation over a bbox or polygon (the flat-terrain fallback of the 3D Tiles build).
//!
//! **Voids.** A cell is void when it equals the band's nodata value, or −32768 in an Int16 band
//! (the SRTM convention, also when undeclared), or is not finite. Voids are filled at load by
//! iterative averaging: each pass sets every void cell that has at least one valid 8-neighbour to
//! the mean of those neighbours (values from before the pass), until none is left; the number of
//! filled cells and passes is reported ([`Dem::voids`], [`Dem::fill_passes`]) and logged.
//!
//! **Pixel convention.** GDAL's geotransform maps pixel corners; cell values sit at cell centres
//! (`col + 0.5`, `row + 0.5`), which also holds for `AREA_OR_POINT=Point` files such as SRTM,
//! whose geotransform is already shifted by half a cell. [`Dem::cell_value_at`] returns the value
//! of the cell containing a point (what `gdallocationinfo -wgs84` prints); [`Dem::elevation`]
//! interpolates bilinearly between the four surrounding centres (clamped at the raster's border).

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use geo::{BoundingRect, Contains, InteriorPoint};
use geo_types::{MultiPolygon, Point};
use std::collections::BTreeMap;

/// A loaded DEM with voids filled. Not `Send` (it holds GDAL coordinate transformations):
/// sample on one thread.
pub struct Dem {
    pub path: String,
    pub width: usize,
    pub height: usize,
    /// GDAL geotransform of the file.
    pub geo_transform: [f64; 6],
    inv: [f64; 6],
    /// Elevations, row-major, voids filled.
    data: Vec<f64>,
    /// Which cells were void in the file.
    void_mask: Vec<bool>,
    /// Number of void cells in the file (all filled).
    pub voids: usize,
    pub fill_passes: usize,
    /// The DEM's CRS as `EPSG:n` when identifiable, else its name.
    pub crs: String,
    to_dem: Option<CoordTransform>,
    to_wgs84: Option<CoordTransform>,
}

impl std::fmt::Debug for Dem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dem").field("path", &self.path).field("size", &(self.width, self.height)).field("crs", &self.crs).field("voids", &self.voids).finish()
    }
}

fn invert(gt: [f64; 6]) -> Option<[f64; 6]> {
    let det = gt[1] * gt[5] - gt[2] * gt[4];
    if det.abs() < 1e-300 || !det.is_finite() {
        return None;
    }
    let (a, b, c, d) = (gt[5] / det, -gt[2] / det, -gt[4] / det, gt[1] / det);
    Some([-(a * gt[0] + b * gt[3]), a, b, -(c * gt[0] + d * gt[3]), c, d])
}

impl Dem {
    /// Opens a DEM (band 1). Errors name the file: not readable by GDAL, not a raster, no
    /// georeference (no geotransform or no CRS), a CRS without a transformation from WGS-84, or
    /// no valid cell at all.
    pub fn open(path: &str) -> Result<Dem, String> {
        let ds = gdal::Dataset::open(path).map_err(|e| format!("{path}: cannot open as a raster: {e}"))?;
        if ds.raster_count() == 0 {
            return Err(format!("{path}: not a raster (no bands; driver {})", ds.driver().short_name()));
        }
        let gt = ds.geo_transform().map_err(|_| format!("{path}: raster has no georeference (no geotransform)"))?;
        let inv = invert(gt).ok_or_else(|| format!("{path}: degenerate geotransform {gt:?}"))?;
        let mut srs = ds.spatial_ref().map_err(|_| format!("{path}: raster has no georeference (no CRS)"))?;
        srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let crs = match (srs.auth_name(), srs.auth_code()) {
            (Some(n), Ok(c)) => format!("{n}:{c}"),
            _ => srs.name().unwrap_or_else(|| "unknown CRS".into()),
        };
        let mut wgs = SpatialRef::from_epsg(4326).map_err(|e| format!("cannot create EPSG:4326: {e}"))?;
        wgs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let same = srs.auth_code().ok() == Some(4326);
        let (to_dem, to_wgs84) = if same {
            (None, None)
        } else {
            (
                Some(CoordTransform::new(&wgs, &srs).map_err(|e| format!("{path}: no transformation from WGS-84 to {crs}: {e}"))?),
                Some(CoordTransform::new(&srs, &wgs).map_err(|e| format!("{path}: no transformation from {crs} to WGS-84: {e}"))?),
            )
        };
        let band = ds.rasterband(1).map_err(|e| format!("{path}: band 1: {e}"))?;
        let (w, h) = ds.raster_size();
        let nodata = band.no_data_value();
        let int16 = band.band_type() == gdal::raster::GdalDataType::Int16;
        let buf = band.read_as::<f64>((0, 0), (w, h), (w, h), None).map_err(|e| format!("{path}: reading band 1: {e}"))?;
        let mut data = buf.data().to_vec();
        let void_mask: Vec<bool> =
            data.iter().map(|&v| !v.is_finite() || Some(v) == nodata || (int16 && v == -32768.0)).collect();
        let voids = void_mask.iter().filter(|&&v| v).count();
        if voids == data.len() {
            return Err(format!("{path}: every cell is nodata"));
        }
        let fill_passes = fill_voids(&mut data, &void_mask, w, h);
        if voids > 0 {
            tracing::info!(dem = path, voids, passes = fill_passes, "DEM {path}: filled {voids} void cells in {fill_passes} passes");
        }
        Ok(Dem { path: path.to_string(), width: w, height: h, geo_transform: gt, inv, data, void_mask, voids, fill_passes, crs, to_dem, to_wgs84 })
    }

    fn to_dem_xy(&self, lon: f64, lat: f64) -> Result<(f64, f64), String> {
        if !(lon.is_finite() && lat.is_finite() && (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat)) {
            return Err(format!("{}: ({lon}, {lat}) is not a WGS-84 lon/lat", self.path));
        }
        match &self.to_dem {
            None => Ok((lon, lat)),
            Some(ct) => {
                let (mut x, mut y) = ([lon], [lat]);
                ct.transform_coords(&mut x, &mut y, &mut []).map_err(|e| format!("{}: ({lon}, {lat}) cannot be transformed to {}: {e}", self.path, self.crs))?;
                Ok((x[0], y[0]))
            }
        }
    }

    /// Fractional pixel coordinates (corner-based) of a lon/lat, or an error when outside.
    fn pixel(&self, lon: f64, lat: f64) -> Result<(f64, f64), String> {
        let (x, y) = self.to_dem_xy(lon, lat)?;
        let i = &self.inv;
        let (c, r) = (i[0] + i[1] * x + i[2] * y, i[3] + i[4] * x + i[5] * y);
        if !(c >= 0.0 && r >= 0.0 && c <= self.width as f64 && r <= self.height as f64) {
            let b = self.bounds_wgs84();
            return Err(format!("{}: ({lon}, {lat}) is outside the DEM (lon/lat bounds ≈ {b:?})", self.path));
        }
        Ok((c, r))
    }

    fn at(&self, c: usize, r: usize) -> f64 {
        self.data[r * self.width + c]
    }

    /// Value of the cell containing the point (voids filled), like `gdallocationinfo -wgs84`.
    pub fn cell_value_at(&self, lon: f64, lat: f64) -> Result<f64, String> {
        let (c, r) = self.pixel(lon, lat)?;
        Ok(self.at((c as usize).min(self.width - 1), (r as usize).min(self.height - 1)))
    }

    /// Whether the cell containing the point was void in the file.
    pub fn was_void_at(&self, lon: f64, lat: f64) -> Result<bool, String> {
        let (c, r) = self.pixel(lon, lat)?;
        Ok(self.void_mask[(r as usize).min(self.height - 1) * self.width + (c as usize).min(self.width - 1)])
    }

    /// Bilinear elevation at a WGS-84 lon/lat, metres (the DEM's vertical datum).
    pub fn elevation(&self, lon: f64, lat: f64) -> Result<f64, String> {
        let (c, r) = self.pixel(lon, lat)?;
        let (fx, fy) = ((c - 0.5).clamp(0.0, (self.width - 1) as f64), (r - 0.5).clamp(0.0, (self.height - 1) as f64));
        let (c0, r0) = (fx.floor() as usize, fy.floor() as usize);
        let (c1, r1) = ((c0 + 1).min(self.width - 1), (r0 + 1).min(self.height - 1));
        let (tx, ty) = (fx - c0 as f64, fy - r0 as f64);
        let top = self.at(c0, r0) * (1.0 - tx) + self.at(c1, r0) * tx;
        let bot = self.at(c0, r1) * (1.0 - tx) + self.at(c1, r1) * tx;
        Ok(top * (1.0 - ty) + bot * ty)
    }

    /// Approximate WGS-84 bounds `[west, south, east, north]` (corners and edge midpoints).
    pub fn bounds_wgs84(&self) -> [f64; 4] {
        let g = &self.geo_transform;
        let (w, h) = (self.width as f64, self.height as f64);
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for (c, r) in [(0.0, 0.0), (w, 0.0), (0.0, h), (w, h), (w / 2.0, 0.0), (w / 2.0, h), (0.0, h / 2.0), (w, h / 2.0)] {
            xs.push(g[0] + g[1] * c + g[2] * r);
            ys.push(g[3] + g[4] * c + g[5] * r);
        }
        if let Some(ct) = &self.to_wgs84 {
            if ct.transform_coords(&mut xs, &mut ys, &mut []).is_err() {
                return [f64::NAN; 4];
            }
        }
        let f = |v: &[f64], min: bool| v.iter().cloned().fold(if min { f64::MAX } else { f64::MIN }, if min { f64::min } else { f64::max });
        [f(&xs, true), f(&ys, true), f(&xs, false), f(&ys, false)]
    }

    /// Mean elevation over a WGS-84 bbox `[west, south, east, north]`.
    pub fn mean_over_bbox(&self, bbox: [f64; 4]) -> Result<f64, String> {
        let [w, s, e, n] = bbox;
        if !(w < e && s < n) {
            return Err(format!("{}: empty bbox {bbox:?}", self.path));
        }
        let poly = geo_types::Rect::new((w, s), (e, n)).to_polygon();
        self.mean_over(&MultiPolygon(vec![poly]))
    }

    /// Mean elevation over a WGS-84 (multi)polygon: the mean of the (void-filled) cells whose
    /// centres lie inside; a polygon smaller than a cell gets the bilinear value at its interior
    /// point. Errors when the polygon is not within the DEM.
    pub fn mean_over(&self, mp: &MultiPolygon<f64>) -> Result<f64, String> {
        let r = mp.bounding_rect().ok_or_else(|| format!("{}: empty polygon", self.path))?;
        // The pixel window covering the polygon's bbox (corners and edge midpoints transformed).
        let (mut c0, mut r0, mut c1, mut r1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        let (mx, my) = ((r.min().x + r.max().x) / 2.0, (r.min().y + r.max().y) / 2.0);
        for (x, y) in [(r.min().x, r.min().y), (r.max().x, r.max().y), (r.min().x, r.max().y), (r.max().x, r.min().y), (mx, r.min().y), (mx, r.max().y), (r.min().x, my), (r.max().x, my)] {
            let (c, rr) = self.pixel(x, y)?;
            c0 = c0.min(c);
            r0 = r0.min(rr);
            c1 = c1.max(c);
            r1 = r1.max(rr);
        }
        let (ca, cb) = ((c0.floor() as usize).saturating_sub(1), ((c1.ceil() as usize) + 1).min(self.width));
        let (ra, rb) = ((r0.floor() as usize).saturating_sub(1), ((r1.ceil() as usize) + 1).min(self.height));
        let g = &self.geo_transform;
        let mut xs = Vec::with_capacity((cb - ca) * (rb - ra));
        let mut ys = Vec::with_capacity(xs.capacity());
        let mut vals = Vec::with_capacity(xs.capacity());
        for row in ra..rb {
            for col in ca..cb {
                let (c, rr) = (col as f64 + 0.5, row as f64 + 0.5);
                xs.push(g[0] + g[1] * c + g[2] * rr);
                ys.push(g[3] + g[4] * c + g[5] * rr);
                vals.push(self.at(col, row));
            }
        }
        if let Some(ct) = &self.to_wgs84 {
            ct.transform_coords(&mut xs, &mut ys, &mut []).map_err(|e| format!("{}: cell centres to WGS-84: {e}", self.path))?;
        }
        let (mut sum, mut n) = (0.0, 0usize);
        for i in 0..vals.len() {
            if mp.contains(&Point::new(xs[i], ys[i])) {
                sum += vals[i];
                n += 1;
            }
        }
        if n > 0 {
            return Ok(sum / n as f64);
        }
        let p = mp.interior_point().ok_or_else(|| format!("{}: polygon has no interior point", self.path))?;
        self.elevation(p.x(), p.y())
    }
}

/// EGM96 geoid undulation through PROJ (`EPSG:4326+5773` → `EPSG:4979`, grid `egm96_15.gtx`,
/// Debian package `proj-data`). Not `Send`.
pub struct Geoid {
    ct: CoordTransform,
}

/// EGM96 undulation at (0°, 0°) (`echo 0 0 0 | cs2cs EPSG:4326+5773 EPSG:4979` → 17.162 m): the
/// self-check that PROJ really applies the grid (without it PROJ falls back to a "ballpark"
/// transformation with N = 0 and no error).
const EGM96_N_AT_0_0: f64 = 17.162;

impl Geoid {
    pub fn egm96() -> Result<Geoid, String> {
        let mut src = SpatialRef::from_definition("EPSG:4326+5773").map_err(|e| format!("cannot create EPSG:4326+5773 (WGS-84 + EGM96 height): {e}"))?;
        src.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let mut dst = SpatialRef::from_epsg(4979).map_err(|e| format!("cannot create EPSG:4979: {e}"))?;
        dst.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let ct = CoordTransform::new(&src, &dst).map_err(|e| format!("no transformation EGM96 height → WGS-84 ellipsoidal height: {e}"))?;
        let g = Geoid { ct };
        let n = g.undulation(0.0, 0.0)?;
        if (n - EGM96_N_AT_0_0).abs() > 0.01 {
            return Err(format!(
                "PROJ does not apply the EGM96 grid (undulation at 0°,0° is {n:.3} m, expected {EGM96_N_AT_0_0} m): is egm96_15.gtx installed (Debian: proj-data)?"
            ));
        }
        Ok(g)
    }

    /// Height of the EGM96 geoid above the WGS-84 ellipsoid at a lon/lat (m).
    pub fn undulation(&self, lon: f64, lat: f64) -> Result<f64, String> {
        let (mut x, mut y, mut z) = ([lon], [lat], [0.0]);
        self.ct.transform_coords(&mut x, &mut y, &mut z).map_err(|e| format!("EGM96 undulation at ({lon}, {lat}): {e}"))?;
        Ok(z[0])
    }
}

/// Reason of the per-feature report entry for a building whose footprint is not inside the DEM.
pub const OUTSIDE_REASON: &str = "outside the DEM";

/// `tiles3d.terrain` in manifest.json: where the buildings' ground heights came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TerrainSummary {
    /// `dem` (per building from `dem`) or `flat` (every building on `fallback_height`).
    pub source: String,
    /// The DEM file (`--dem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dem: Option<String>,
    /// The DEM's CRS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crs: Option<String>,
    /// DEM cells that were nodata in the file and were filled (and the filling passes).
    pub voids_filled: u64,
    pub fill_passes: u64,
    /// How DEM / `--ground-height` values became heights above the WGS-84 ellipsoid.
    pub vertical: String,
    /// How a building's ground is taken from the DEM.
    pub sampling: String,
    /// Buildings whose ground was sampled from the DEM.
    pub sampled: u64,
    /// reason (`outside the DEM`) → buildings on `fallback_height` instead (count, examples).
    pub outside: BTreeMap<String, crate::report::Tally>,
    /// Ground (m above the ellipsoid) of buildings not sampled: the DEM's mean over the model's
    /// bbox (clipped to the DEM), or the flat height.
    pub fallback_height: f64,
    /// Ground used, over all buildings (m above the WGS-84 ellipsoid).
    pub ground_min: f64,
    pub ground_max: f64,
    pub ground_mean: f64,
    /// Range of the EGM96 undulation added (m), when converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geoid_undulation: Option<[f64; 2]>,
}

/// Sampling rule, as reported.
pub const SAMPLING: &str = "minimum of the bilinear DEM elevation at the footprint's exterior-ring vertices (the base is at or below the terrain at every corner, so no building floats on a slope)";

/// Per-building ground heights above the WGS-84 ellipsoid, indexed like `model.buildings`.
///
/// With a DEM: the minimum of [`Dem::elevation`] over the vertices of the footprint's exterior
/// rings, plus the EGM96 undulation at the footprint's first vertex when `geoid` is given (the
/// DEM's heights are EGM96, as SRTM's); a building with a vertex outside the DEM gets the DEM's
/// mean over the model's bbox clipped to the DEM (or `flat` when they do not overlap) and an
/// `outside the DEM` entry. Without a DEM every building gets `flat`.
pub fn ground_heights(
    model: &crate::model::CityModel,
    dem: Option<&Dem>,
    geoid: Option<&Geoid>,
    flat: f64,
    flat_vertical: &str,
) -> Result<(Vec<f64>, TerrainSummary), String> {
    let n = model.buildings.len();
    let Some(dem) = dem else {
        let summary = TerrainSummary {
            source: "flat".into(),
            dem: None,
            crs: None,
            voids_filled: 0,
            fill_passes: 0,
            vertical: flat_vertical.to_string(),
            sampling: "none: every building on fallback_height".into(),
            sampled: 0,
            outside: BTreeMap::new(),
            fallback_height: flat,
            ground_min: flat,
            ground_max: flat,
            ground_mean: flat,
            geoid_undulation: None,
        };
        return Ok((vec![flat; n], summary));
    };
    let mut p = crate::report::Progress::new("terrain: sample DEM per building", Some(n as u64));
    let mut ground = vec![f64::NAN; n];
    let mut outside: BTreeMap<String, crate::report::Tally> = BTreeMap::new();
    let (mut nmin, mut nmax) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut sampled = 0u64;
    for (i, b) in model.buildings.iter().enumerate() {
        let mut lo = f64::INFINITY;
        let mut first = None;
        let mut inside = true;
        'rings: for poly in &b.footprint.0 {
            for c in poly.exterior().coords() {
                match dem.elevation(c.x, c.y) {
                    Ok(h) => {
                        lo = lo.min(h);
                        first.get_or_insert((c.x, c.y));
                    }
                    Err(_) => {
                        inside = false;
                        break 'rings;
                    }
                }
            }
        }
        match (inside, first) {
            (true, Some((x, y))) if lo.is_finite() => {
                let nu = match geoid {
                    Some(g) => g.undulation(x, y)?,
                    None => 0.0,
                };
                nmin = nmin.min(nu);
                nmax = nmax.max(nu);
                ground[i] = lo + nu;
                sampled += 1;
            }
            _ => {
                let t = outside.entry(OUTSIDE_REASON.to_string()).or_default();
                t.count += 1;
                if t.examples.len() < crate::report::EXAMPLES_PER_REASON {
                    let source = model.sources.get(b.source.source as usize).map(|s| s.path.clone()).unwrap_or_default();
                    t.examples.push(crate::report::FeatureRef { source, feature: format!("{} (building {})", b.source.id, b.id) });
                }
            }
        }
        if i % 4096 == 4095 {
            p.inc(4096);
        }
    }
    p.inc(n as u64 % 4096);
    p.finish();
    // fallback: the DEM's mean over the model's bbox clipped to the DEM
    let mut fallback = flat;
    if sampled < n as u64 {
        let db = dem.bounds_wgs84();
        if let Some(mb) = model.bbox() {
            let clip = [mb[0].max(db[0]), mb[1].max(db[1]), mb[2].min(db[2]), mb[3].min(db[3])];
            if clip[0] < clip[2] && clip[1] < clip[3] {
                if let Ok(m) = dem.mean_over_bbox(clip) {
                    let (cx, cy) = ((clip[0] + clip[2]) / 2.0, (clip[1] + clip[3]) / 2.0);
                    fallback = m + match geoid {
                        Some(g) => g.undulation(cx, cy)?,
                        None => 0.0,
                    };
                }
            }
        }
        let count = outside.values().map(|t| t.count).sum::<u64>();
        tracing::warn!(count, dem = %dem.path, fallback = format!("{fallback:.2}"), "terrain: buildings outside the DEM stand on the fallback height");
    }
    for g in ground.iter_mut().filter(|g| g.is_nan()) {
        *g = fallback;
    }
    let (mut gmin, mut gmax, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
    for &g in &ground {
        gmin = gmin.min(g);
        gmax = gmax.max(g);
        sum += g;
    }
    if n == 0 {
        (gmin, gmax) = (fallback, fallback);
    }
    let vertical = match geoid {
        Some(_) => "DEM heights taken as EGM96 orthometric, converted to WGS-84 ellipsoidal heights by adding the EGM96 undulation (PROJ EPSG:4326+5773 → EPSG:4979, egm96_15.gtx)".to_string(),
        None => "DEM heights used as WGS-84 ellipsoidal heights (--dem-ellipsoidal)".to_string(),
    };
    let summary = TerrainSummary {
        source: "dem".into(),
        dem: Some(dem.path.clone()),
        crs: Some(dem.crs.clone()),
        voids_filled: dem.voids as u64,
        fill_passes: dem.fill_passes as u64,
        vertical,
        sampling: SAMPLING.into(),
        sampled,
        outside,
        fallback_height: fallback,
        ground_min: gmin,
        ground_max: gmax,
        ground_mean: if n > 0 { sum / n as f64 } else { fallback },
        geoid_undulation: (geoid.is_some() && nmin.is_finite()).then_some([nmin, nmax]),
    };
    tracing::info!(sampled, min = format!("{gmin:.1}"), max = format!("{gmax:.1}"), "terrain: ground heights from {}", dem.path);
    Ok((ground, summary))
}

/// Fills voids in place by iterative 8-neighbour averaging; returns the number of passes.
fn fill_voids(data: &mut [f64], void: &[bool], w: usize, h: usize) -> usize {
    let mut missing: Vec<usize> = (0..data.len()).filter(|&i| void[i]).collect();
    let mut valid: Vec<bool> = void.iter().map(|v| !v).collect();
    let mut passes = 0;
    while !missing.is_empty() {
        passes += 1;
        let mut updates = Vec::new();
        let mut still = Vec::new();
        for &i in &missing {
            let (c, r) = ((i % w) as isize, (i / w) as isize);
            let (mut s, mut n) = (0.0, 0);
            for dr in -1..=1isize {
                for dc in -1..=1isize {
                    let (cc, rr) = (c + dc, r + dr);
                    if (dr != 0 || dc != 0) && cc >= 0 && rr >= 0 && (cc as usize) < w && (rr as usize) < h {
                        let j = rr as usize * w + cc as usize;
                        if valid[j] {
                            s += data[j];
                            n += 1;
                        }
                    }
                }
            }
            if n > 0 {
                updates.push((i, s / n as f64));
            } else {
                still.push(i);
            }
        }
        for (i, v) in updates {
            data[i] = v;
            valid[i] = true;
        }
        missing = still;
    }
    passes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn dem_dir() -> Option<std::path::PathBuf> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/dem");
        let p = if p.exists() { p } else { std::path::PathBuf::from("/work/shared/data/dem") };
        p.exists().then_some(p)
    }

    /// The external tool's answer: the value of the cell containing lon/lat.
    fn gdallocationinfo(file: &std::path::Path, lon: f64, lat: f64) -> f64 {
        let out = Command::new("gdallocationinfo").args(["-valonly", "-wgs84"]).arg(file).arg(lon.to_string()).arg(lat.to_string()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    #[test]
    fn srtm_voids_counted_and_filled() {
        let Some(dir) = dem_dir() else { return eprintln!("no shared DEMs") };
        // Void counts from ../shared/data/README.md (measured independently).
        for (file, voids) in [("srtm3_N42E001.tif", 7652), ("srtm3_N43E007.tif", 1595), ("srtm3_N49E011.tif", 20)] {
            let p = dir.join(file);
            let d = Dem::open(p.to_str().unwrap()).unwrap();
            assert_eq!((d.width, d.height, d.crs.as_str()), (1201, 1201, "EPSG:4326"));
            assert_eq!(d.voids, voids, "{file}");
            assert!(d.fill_passes >= 1);
            let (mut lo, mut hi) = (f64::MAX, f64::MIN);
            for i in 0..d.data.len() {
                if !d.void_mask[i] {
                    lo = lo.min(d.data[i]);
                    hi = hi.max(d.data[i]);
                }
            }
            for i in 0..d.data.len() {
                assert!(d.data[i] > -1000.0 && d.data[i] >= lo && d.data[i] <= hi, "{file}: cell {i} = {}", d.data[i]);
                // A filled cell with all-valid neighbours is exactly their mean.
                let (c, r) = (i % d.width, i / d.width);
                if d.void_mask[i] && c > 0 && r > 0 && c + 1 < d.width && r + 1 < d.height {
                    let nb: Vec<usize> = [(-1isize, -1isize), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)]
                        .iter()
                        .map(|(dc, dr)| ((r as isize + dr) as usize) * d.width + (c as isize + dc) as usize)
                        .collect();
                    if nb.iter().all(|&j| !d.void_mask[j]) {
                        let mean = nb.iter().map(|&j| d.data[j]).sum::<f64>() / 8.0;
                        assert!((d.data[i] - mean).abs() < 1e-9);
                    }
                }
            }
        }
    }

    #[test]
    fn cell_values_match_gdallocationinfo_and_bilinear_is_between() {
        let Some(dir) = dem_dir() else { return };
        let cases = [
            ("srtm3_N42E001.tif", [(1.5218, 42.5063), (1.6012, 42.5441), (1.0200, 42.9800), (1.9, 42.1)]),
            ("srtm3_N49E011.tif", [(11.5761, 49.9456), (11.2, 49.3), (11.95, 49.05), (11.61, 49.99)]),
            ("pysheds_dem.tif", [(-97.40, 32.75), (-97.33, 32.70), (-97.45, 32.80), (-97.30, 32.58)]),
        ];
        for (file, pts) in cases {
            let p = dir.join(file);
            let d = Dem::open(p.to_str().unwrap()).unwrap();
            for (lon, lat) in pts {
                let want = gdallocationinfo(&p, lon, lat);
                if d.was_void_at(lon, lat).unwrap() {
                    continue;
                }
                assert_eq!(d.cell_value_at(lon, lat).unwrap(), want, "{file} at {lon},{lat}");
                // Bilinear lies within the 2×2 neighbourhood of cell values (±1 cell).
                let e = d.elevation(lon, lat).unwrap();
                let step = d.geo_transform[1];
                let around: Vec<f64> = [(-1.0, -1.0), (-1.0, 0.0), (-1.0, 1.0), (0.0, -1.0), (0.0, 0.0), (0.0, 1.0), (1.0, -1.0), (1.0, 0.0), (1.0, 1.0)]
                    .iter()
                    .filter_map(|(a, b)| d.cell_value_at(lon + a * step, lat + b * step).ok())
                    .collect();
                let (lo, hi) = around.iter().fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
                assert!(e >= lo - 1e-9 && e <= hi + 1e-9, "{file}: bilinear {e} outside [{lo}, {hi}]");
            }
        }
        // At a cell centre bilinear equals the cell: SRTM N42E001 cell (600, 600) centre is
        // (1.5, 42.5) exactly.
        let d = Dem::open(dir.join("srtm3_N42E001.tif").to_str().unwrap()).unwrap();
        let want = gdallocationinfo(&dir.join("srtm3_N42E001.tif"), 1.5, 42.5);
        assert!((d.elevation(1.5, 42.5).unwrap() - want).abs() < 1e-6);
    }

    #[test]
    fn projected_dem_samples_through_its_crs() {
        let Some(dir) = dem_dir() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let utm = tmp.path().join("andorra_utm31.tif");
        let st = Command::new("gdalwarp")
            .args(["-q", "-t_srs", "EPSG:32631", "-te_srs", "EPSG:4326", "-te", "1.40", "42.42", "1.78", "42.66", "-tr", "90", "90", "-r", "near", "-srcnodata", "-32768", "-dstnodata", "-32768"])
            .arg(dir.join("srtm3_N42E001.tif"))
            .arg(&utm)
            .status()
            .unwrap();
        assert!(st.success());
        let d = Dem::open(utm.to_str().unwrap()).unwrap();
        assert_eq!(d.crs, "EPSG:32631");
        for (lon, lat) in [(1.5218, 42.5063), (1.6012, 42.5441), (1.45, 42.60), (1.70, 42.47)] {
            if d.was_void_at(lon, lat).unwrap() {
                continue;
            }
            assert_eq!(d.cell_value_at(lon, lat).unwrap(), gdallocationinfo(&utm, lon, lat), "{lon},{lat}");
            // Close to the geographic original (90 m cells either way, mountains: within 150 m).
            let orig = Dem::open(dir.join("srtm3_N42E001.tif").to_str().unwrap()).unwrap();
            assert!((d.elevation(lon, lat).unwrap() - orig.elevation(lon, lat).unwrap()).abs() < 150.0);
        }
        assert!(d.elevation(2.5, 42.5).unwrap_err().contains("outside"));
    }

    #[test]
    fn mean_over_bbox_matches_gdal_statistics() {
        let Some(dir) = dem_dir() else { return };
        let src = dir.join("srtm3_N49E011.tif");
        let d = Dem::open(src.to_str().unwrap()).unwrap();
        // A window on cell edges (cell centres at k/1200°, edges at (k + ½)/1200°): 120 × 60 cells.
        let e = |k: f64| (k + 0.5) / 1200.0;
        let bbox = [11.0 + e(300.0), 49.0 + e(500.0), 11.0 + e(420.0), 49.0 + e(560.0)];
        let mine = d.mean_over_bbox(bbox).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let sub = tmp.path().join("sub.tif");
        let st = Command::new("gdal_translate")
            .args(["-q", "-projwin"])
            .args([bbox[0], bbox[3], bbox[2], bbox[1]].map(|v| format!("{v:.12}")))
            .arg(&src)
            .arg(&sub)
            .status()
            .unwrap();
        assert!(st.success());
        let out = Command::new("gdalinfo").args(["-stats"]).arg(&sub).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Size is 120, 60"), "{text}");
        let mean: f64 = text.lines().find_map(|l| l.trim().strip_prefix("STATISTICS_MEAN=")).unwrap().parse().unwrap();
        let sub_voids: usize = {
            let s = Dem::open(sub.to_str().unwrap()).unwrap();
            s.voids
        };
        assert_eq!(sub_voids, 0, "pick a window without voids");
        assert!((mine - mean).abs() < 1e-6, "mine {mine}, gdalinfo {mean}");
        // A polygon (triangle) inside the window has a mean within the window's range.
        let tri = geo_types::Polygon::new(vec![(bbox[0], bbox[1]), (bbox[2], bbox[1]), (bbox[0], bbox[3]), (bbox[0], bbox[1])].into(), vec![]);
        let m2 = d.mean_over(&MultiPolygon(vec![tri])).unwrap();
        assert!(m2.is_finite() && (m2 - mean).abs() < 100.0);
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let txt = tmp.path().join("not_a_dem.txt");
        std::fs::write(&txt, "hello").unwrap();
        let e = Dem::open(txt.to_str().unwrap()).unwrap_err();
        assert!(e.contains("not_a_dem.txt") && e.contains("cannot open"), "{e}");
        let e = Dem::open("/nonexistent/dem.tif").unwrap_err();
        assert!(e.contains("/nonexistent/dem.tif"), "{e}");
        // A vector file is not a raster.
        let gj = tmp.path().join("v.geojson");
        std::fs::write(&gj, r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}}]}"#).unwrap();
        assert!(Dem::open(gj.to_str().unwrap()).is_err());
        // A raster without georeference (plain PNG from the facade encoder).
        let png = tmp.path().join("plain.png");
        std::fs::write(&png, crate::l3::facade::encode_png_rgb(2, 2, &[0u8; 12])).unwrap();
        let e = Dem::open(png.to_str().unwrap()).unwrap_err();
        assert!(e.contains("no georeference"), "{e}");
        let Some(dir) = dem_dir() else { return };
        let d = Dem::open(dir.join("srtm3_N43E007.tif").to_str().unwrap()).unwrap();
        assert!(d.elevation(123.43, 41.80).unwrap_err().contains("outside"));
        assert!(d.elevation(f64::NAN, 43.5).unwrap_err().contains("not a WGS-84"));
        assert!(d.elevation(7.5, 95.0).is_err());
    }
}
