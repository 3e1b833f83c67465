//! CityJSON ingest (CityJSON 1.0, 1.1 and 2.0).
//!
//! Supported subset:
//! - The document's `transform` (scale/translate) is applied to the integer vertices; CityJSON 1.0
//!   files without a transform are read as real coordinates.
//! - The CRS comes from `metadata.referenceSystem` in any of the usual spellings
//!   (`https://www.opengis.net/def/crs/EPSG/0/7415`, `urn:ogc:def:crs:EPSG::7415`, `EPSG:7415`) or
//!   the CityJSON 0.x/1.0 `metadata.crs.epsg`; `SourceSpec::crs` overrides it. A document with
//!   neither is refused. Vertices are reprojected in traditional x/y order (CityJSON's order), the
//!   declared datum applied; heights are kept as given. A compound CRS that PROJ cannot turn into
//!   a transformation falls back to its horizontal component.
//! - Every top-level `Building` becomes one canonical [`Building`]; its children (`BuildingPart`,
//!   `BuildingInstallation`, recursively) are merged into it. Geometry: the highest LoD found
//!   among the building and its children is kept, and every member's geometry at that LoD is
//!   merged (`Solid`, `MultiSolid`, `CompositeSolid`, `MultiSurface`, `CompositeSurface`), with
//!   semantic surfaces mapped onto [`SurfaceKind`]. `GeometryInstance` (templates), points and
//!   lines are skipped and counted in a warning.
//! - Other city object types (Road, LandUse, WaterBody, TINRelief, …) are not ingested; a warning
//!   counts them per type.
//!
//! Errors: malformed JSON (with serde's line/column) and an out-of-range vertex index (naming the
//! city object) are fatal; a surface with fewer than 3 distinct points is removed and tallied as
//! repaired; a building with no usable geometry is tallied as dropped.
//!
//! The building assembly ([`assemble`]) is shared with the CityGML reader: Solid3d anchored at the
//! footprint centroid at the lowest point, footprint from the GroundSurfaces (else the convex hull
//! of each part), height from the 3D extent (else the measured-height attribute rules), level from
//! the LoD.

use crate::geodesy::Enu;
use crate::ingest::attrs;
use crate::ingest::crs::{parse_crs, AxisOrder, ToWgs84};
use crate::ingest::SourceCtx;
use crate::model::{Building, HeightSource, Level, Solid3d, Surface, SurfaceKind};
use crate::report::IngestError;
use geo::{Area, Centroid, ConvexHull};
use geo_types::{Coord, LineString, MultiPoint, MultiPolygon, Point, Polygon};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

// ---------------------------------------------------------------------------------------------
// Shared with the CityGML reader.

/// A surface in WGS-84 (lon°, lat°, h m) before assembly. `part` groups surfaces by the city
/// object they came from (building or building part) for the footprint.
pub(crate) struct RawSurface {
    pub kind: SurfaceKind,
    pub part: u32,
    pub rings: Vec<Vec<[f64; 3]>>,
    /// Appearance (CityGML): texture index and per-ring-vertex UVs, material colour.
    pub app: Option<crate::model::SurfaceAppearance>,
}

/// CityGML/CityJSON semantic surface type → [`SurfaceKind`] (namespace prefix ignored).
pub(crate) fn surface_kind(name: &str) -> Option<SurfaceKind> {
    let local = name.rsplit(':').next().unwrap_or(name);
    Some(match local {
        "GroundSurface" => SurfaceKind::Ground,
        "WallSurface" => SurfaceKind::Wall,
        "RoofSurface" => SurfaceKind::Roof,
        "ClosureSurface" => SurfaceKind::Closure,
        "OuterCeilingSurface" => SurfaceKind::OuterCeiling,
        "OuterFloorSurface" => SurfaceKind::OuterFloor,
        "Window" | "WindowSurface" => SurfaceKind::Window,
        "Door" | "DoorSurface" => SurfaceKind::Door,
        "InteriorWallSurface" | "FloorSurface" | "CeilingSurface" => SurfaceKind::Other,
        _ => return None,
    })
}

/// Level of detail of the canonical model for a CityGML/CityJSON LoD.
pub(crate) fn level_of(lod: f32) -> Level {
    if lod < 2.0 {
        Level::L2
    } else if lod < 3.0 {
        Level::L3
    } else {
        Level::L4
    }
}

/// Builds the reprojection for a CIM source: `spec.crs` overrides `declared`; ADV URNs
/// (`urn:adv:crs:ETRS89_UTM32*DE_DHHN92_NH`) are mapped to their horizontal EPSG code; a compound
/// CRS without a transformation falls back to its horizontal part. Records the CRS label in the
/// model's source entry.
pub(crate) fn make_transform(
    ctx: &mut SourceCtx<'_>,
    declared: Option<&str>,
    order: AxisOrder,
    missing_hint: &str,
) -> Result<ToWgs84, IngestError> {
    let (def, mut order) = match (&ctx.spec.crs, declared) {
        (Some(c), _) => (c.clone(), order),
        (None, Some(d)) => (d.to_string(), order),
        (None, None) => return Err(ctx.err(missing_hint.to_string())),
    };
    let def = match adv_epsg(&def) {
        Some(code) => {
            order = AxisOrder::Traditional; // ADV data is written easting, northing
            format!("EPSG:{code}")
        }
        None => def,
    };
    let sr = parse_crs(&def).map_err(|e| ctx.err(e))?;
    let t = match ToWgs84::new(&sr, order, ctx.spec.datum) {
        Ok(t) => t,
        Err(e) if sr.is_compound() => {
            let horiz = ["COMPD_CS|PROJCS|AUTHORITY", "COMPD_CS|GEOGCS|AUTHORITY"]
                .iter()
                .find_map(|p| sr.get_attr_value(p, 1).ok().flatten())
                .and_then(|c| c.parse::<u32>().ok());
            let Some(code) = horiz else { return Err(ctx.err(e)) };
            let t = ToWgs84::from_definition(&format!("EPSG:{code}"), order, ctx.spec.datum).map_err(|e2| ctx.err(format!("{e}; horizontal EPSG:{code}: {e2}")))?;
            ctx.report.warn(format!("{}: compound CRS {def} has no transformation ({e}); using its horizontal part EPSG:{code}, heights kept as given", ctx.name()));
            t
        }
        Err(e) => return Err(ctx.err(e)),
    };
    let idx = ctx.index as usize;
    if let Some(s) = ctx.model.sources.get_mut(idx) {
        s.crs = t.label.clone();
    }
    Ok(t)
}

/// AdV (German surveying authorities) CRS URNs → horizontal EPSG code.
fn adv_epsg(def: &str) -> Option<u32> {
    let d = def.trim().to_ascii_uppercase();
    let rest = d.strip_prefix("URN:ADV:CRS:")?;
    let horiz = rest.split('*').next()?;
    Some(match horiz {
        "ETRS89_UTM32" => 25832,
        "ETRS89_UTM33" => 25833,
        "ETRS89_LAT-LON" | "ETRS89_LAT-LON_H" => 4258,
        "DE_DHDN_3GK2" => 31466,
        "DE_DHDN_3GK3" => 31467,
        "DE_DHDN_3GK4" => 31468,
        "DE_DHDN_3GK5" => 31469,
        _ => return None,
    })
}

/// Removes consecutive duplicate points and the closing point; `None` when fewer than 3
/// distinct points remain.
/// The indices of `ring` kept by [`clean_ring`] (so per-vertex data such as UVs follow).
fn clean_ring_idx(ring: &[[f64; 3]]) -> Option<Vec<usize>> {
    let same = |a: &[f64; 3], b: &[f64; 3]| (a[0] - b[0]).abs() < 1e-10 && (a[1] - b[1]).abs() < 1e-10 && (a[2] - b[2]).abs() < 1e-4;
    let mut out: Vec<usize> = Vec::with_capacity(ring.len());
    for (i, p) in ring.iter().enumerate() {
        if !p.iter().all(|c| c.is_finite()) {
            return None;
        }
        if out.last().is_none_or(|&q| !same(&ring[q], p)) {
            out.push(i);
        }
    }
    while out.len() > 1 && same(&ring[out[0]], &ring[out[out.len() - 1]]) {
        out.pop();
    }
    let mut distinct: Vec<[f64; 3]> = Vec::new();
    for &i in &out {
        let p = &ring[i];
        if !distinct.iter().any(|q| same(q, p)) {
            distinct.push(*p);
            if distinct.len() >= 3 {
                return Some(out);
            }
        }
    }
    None
}

fn polygon_2d(rings: &[Vec<[f64; 3]>]) -> Polygon<f64> {
    let ls = |r: &Vec<[f64; 3]>| LineString::from(r.iter().map(|p| Coord { x: p[0], y: p[1] }).collect::<Vec<_>>());
    let mut it = rings.iter();
    let ext = it.next().map(ls).unwrap_or_else(|| LineString::new(vec![]));
    Polygon::new(ext, it.map(ls).collect())
}

/// Polygons smaller than this (deg², ≈ 0.01 m²) are vertical or degenerate in plan.
const MIN_PLAN_AREA_DEG2: f64 = 1e-12;

/// Assembles one canonical building from its surfaces (see the module docs for the rules).
/// Returns `None` (tallied as dropped) when nothing usable is left.
pub(crate) fn assemble(
    ctx: &mut SourceCtx<'_>,
    id: &str,
    lod: f32,
    surfaces: Vec<RawSurface>,
    textures: Vec<String>,
    get: &dyn Fn(&str) -> Option<String>,
) -> Option<Building> {
    let name = ctx.name();
    let mut degenerate = 0usize;
    let mut clean: Vec<RawSurface> = Vec::with_capacity(surfaces.len());
    for s in surfaces {
        let mut out = Vec::with_capacity(s.rings.len());
        let mut uvs_out = Vec::with_capacity(s.rings.len());
        let textured = s.app.as_ref().is_some_and(|a| a.texture.is_some() && a.uvs.len() == s.rings.len());
        for (ri, r) in s.rings.iter().enumerate() {
            match clean_ring_idx(r) {
                Some(k) => {
                    if textured {
                        let uv = &s.app.as_ref().unwrap().uvs[ri];
                        uvs_out.push(k.iter().map(|&i| uv.get(i).copied().unwrap_or([0.0, 0.0])).collect::<Vec<_>>());
                    }
                    out.push(k.into_iter().map(|i| r[i]).collect::<Vec<_>>());
                }
                None if ri == 0 => break,
                None => degenerate += 1,
            }
        }
        if out.is_empty() {
            degenerate += 1;
            continue;
        }
        let app = s.app.map(|a| {
            if textured && uvs_out.len() == out.len() {
                crate::model::SurfaceAppearance { texture: a.texture, uvs: uvs_out, colour: a.colour }
            } else {
                crate::model::SurfaceAppearance { texture: None, uvs: vec![], colour: a.colour }
            }
        });
        clean.push(RawSurface { kind: s.kind, part: s.part, rings: out, app });
    }
    if degenerate > 0 {
        ctx.report.repaired(&name, id, "degenerate 3D surface or ring (< 3 distinct points) removed");
    }
    if clean.is_empty() {
        ctx.report.dropped(&name, id, "no usable 3D geometry");
        return None;
    }
    let (mut zmin, mut zmax) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in clean.iter().flat_map(|s| s.rings.iter().flatten()) {
        zmin = zmin.min(p[2]);
        zmax = zmax.max(p[2]);
    }

    // Footprint: per part its ground surfaces, else the convex hull of its points; then the union.
    // part → (its ground polygons, all its points)
    type PartPlan = (Vec<Polygon<f64>>, Vec<Point<f64>>);
    let mut parts: BTreeMap<u32, PartPlan> = BTreeMap::new();
    for s in &clean {
        let e = parts.entry(s.part).or_default();
        if s.kind == SurfaceKind::Ground {
            let mut p = polygon_2d(&s.rings);
            if p.unsigned_area() > MIN_PLAN_AREA_DEG2 {
                use geo::orient::{Direction, Orient};
                p = p.orient(Direction::Default);
                e.0.push(p);
            }
        }
        e.1.extend(s.rings[0].iter().map(|p| Point::new(p[0], p[1])));
    }
    let mut pieces: Vec<Polygon<f64>> = Vec::new();
    for (_, (ground, points)) in parts {
        if ground.is_empty() {
            let hull = MultiPoint::from(points).convex_hull();
            if hull.unsigned_area() > MIN_PLAN_AREA_DEG2 {
                pieces.push(hull);
            }
        } else {
            pieces.extend(ground);
        }
    }
    if pieces.is_empty() {
        ctx.report.dropped(&name, id, "3D geometry has no horizontal extent (no footprint)");
        return None;
    }
    let mut footprint = if pieces.len() == 1 {
        MultiPolygon::new(pieces.clone())
    } else {
        geo::unary_union(pieces.iter())
    };
    if footprint.unsigned_area() <= MIN_PLAN_AREA_DEG2 {
        footprint = MultiPolygon::new(pieces);
    }
    let Some(c) = footprint.centroid() else {
        ctx.report.dropped(&name, id, "3D geometry has no horizontal extent (no footprint)");
        return None;
    };

    let enu = Enu::new(c.x(), c.y(), zmin);
    let out_surfaces: Vec<Surface> = clean
        .iter()
        .map(|s| Surface {
            appearance: s.app.clone(),
            kind: s.kind,
            rings: s
                .rings
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|p| {
                            let l = enu.from_geodetic(p[0], p[1], p[2]);
                            [l[0] as f32, l[1] as f32, l[2] as f32]
                        })
                        .collect()
                })
                .collect(),
        })
        .collect();

    let use_ = attrs::building_use(get);
    let info = attrs::building_height(get, use_);
    let extent = (zmax - zmin) as f32;
    let (height, height_source) = if extent > 0.1 { (extent, HeightSource::Geometry) } else { (info.height, info.source) };
    Some(Building {
        id: ctx.model.buildings.len() as u32,
        source: ctx.source_ref(id),
        footprint,
        height,
        min_height: 0.0,
        height_source,
        levels: info.levels,
        use_,
        names: attrs::names(get),
        district: None,
        level: level_of(lod),
        roof_shape: None,
        solid: Some(Solid3d { lod, anchor: [c.x(), c.y(), zmin], surfaces: out_surfaces, textures }),
        cim_model: None,
    })
}

// ---------------------------------------------------------------------------------------------
// CityJSON document.

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    transform: Option<Transform>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(rename = "CityObjects")]
    objects: BTreeMap<String, CityObject>,
    vertices: Vec<[f64; 3]>,
}

#[derive(Deserialize)]
struct Transform {
    scale: [f64; 3],
    translate: [f64; 3],
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(rename = "referenceSystem", default)]
    reference_system: Option<String>,
    /// CityJSON 0.x: `"crs": {"epsg": 7415}`.
    #[serde(default)]
    crs: Option<Value>,
}

#[derive(Deserialize)]
struct CityObject {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    attributes: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    geometry: Vec<Geometry>,
    #[serde(default)]
    children: Vec<String>,
    #[serde(default)]
    parents: Vec<String>,
}

#[derive(Deserialize)]
struct Geometry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    lod: Option<Value>,
    #[serde(default)]
    boundaries: Value,
    #[serde(default)]
    semantics: Option<Semantics>,
}

#[derive(Deserialize)]
struct Semantics {
    #[serde(default)]
    surfaces: Vec<SemSurface>,
    #[serde(default)]
    values: Value,
}

#[derive(Deserialize)]
struct SemSurface {
    #[serde(rename = "type")]
    kind: String,
}

impl Geometry {
    /// Nesting depth above the surfaces, for the surface-based types.
    fn surface_depth(&self) -> Option<usize> {
        match self.kind.as_str() {
            "MultiSurface" | "CompositeSurface" => Some(0),
            "Solid" => Some(1),
            "MultiSolid" | "CompositeSolid" => Some(2),
            _ => None,
        }
    }
    fn lod_value(&self) -> f32 {
        match &self.lod {
            Some(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0) as f32,
            _ => 0.0,
        }
    }
}

/// Walks a boundary array down to its surfaces, pairing each with its semantic index.
fn collect_surfaces<'v>(b: &'v Value, sem: Option<&'v Value>, depth: usize, out: &mut Vec<(&'v Value, Option<usize>)>) {
    let Some(items) = b.as_array() else { return };
    for (i, item) in items.iter().enumerate() {
        let s = sem.and_then(|v| v.as_array()).and_then(|a| a.get(i));
        if depth == 0 {
            out.push((item, s.and_then(|v| v.as_u64()).map(|v| v as usize)));
        } else {
            collect_surfaces(item, s, depth - 1, out);
        }
    }
}

fn attr_getter(a: Option<&serde_json::Map<String, Value>>) -> impl Fn(&str) -> Option<String> + '_ {
    move |k: &str| match a?.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads a CityJSON file into `ctx.model`. Returns the number of city objects in the document.
pub fn ingest(ctx: &mut SourceCtx<'_>) -> Result<u64, IngestError> {
    ctx.model.sources[ctx.index as usize].kind = "cityjson".into();
    let bytes = std::fs::read(&ctx.spec.path).map_err(|e| ctx.err(format!("cannot read: {e}")))?;
    ingest_bytes(ctx, &bytes)
}

/// [`ingest`] from memory: `bytes` is the CityJSON document (`ctx.spec.path` only names it).
pub fn ingest_bytes(ctx: &mut SourceCtx<'_>, bytes: &[u8]) -> Result<u64, IngestError> {
    ctx.model.sources[ctx.index as usize].kind = "cityjson".into();
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| ctx.err(format!("malformed CityJSON: {e}")))?;
    if doc.kind != "CityJSON" {
        return Err(ctx.err(format!("not a CityJSON document (type '{}')", doc.kind)));
    }
    let version = doc.version.clone().unwrap_or_else(|| "?".into());
    if !(version.starts_with("1.") || version.starts_with("2.")) {
        ctx.report.warn(format!("{}: CityJSON version {version} is not 1.x/2.0; reading it as 2.0", ctx.name()));
    }

    let declared = doc.metadata.as_ref().and_then(|m| {
        m.reference_system.clone().or_else(|| {
            m.crs.as_ref().and_then(|c| c.get("epsg")).and_then(|v| v.as_u64()).map(|c| format!("EPSG:{c}"))
        })
    });
    let declared = declared.filter(|d| !d.trim().is_empty());
    let to_wgs = make_transform(
        ctx,
        declared.as_deref(),
        AxisOrder::Traditional,
        "CityJSON has no metadata.referenceSystem; pass the CRS with --crs (e.g. --crs EPSG:7415)",
    )?;

    // Real-world coordinates, then WGS-84.
    let n = doc.vertices.len();
    let (mut xs, mut ys, mut zs) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for v in &doc.vertices {
        let (x, y, z) = match &doc.transform {
            Some(t) => (v[0] * t.scale[0] + t.translate[0], v[1] * t.scale[1] + t.translate[1], v[2] * t.scale[2] + t.translate[2]),
            None => (v[0], v[1], v[2]),
        };
        xs.push(x);
        ys.push(y);
        zs.push(z);
    }
    to_wgs.transform(&mut xs, &mut ys, &mut zs).map_err(|e| ctx.err(e))?;

    let mut other_types: BTreeMap<String, u64> = BTreeMap::new();
    let mut skipped_geoms: BTreeMap<String, u64> = BTreeMap::new();
    let mut missing_children = 0u64;
    let mut absorbed: HashSet<&str> = HashSet::new();

    for (key, obj) in &doc.objects {
        if !obj.parents.is_empty() {
            continue;
        }
        if obj.kind != "Building" && obj.kind != "BuildingPart" {
            continue;
        }
        // The building and its descendants.
        let mut members: Vec<(&str, &CityObject)> = Vec::new();
        let mut stack: Vec<&str> = vec![key.as_str()];
        let mut seen: HashSet<&str> = HashSet::new();
        while let Some(k) = stack.pop() {
            if !seen.insert(k) {
                continue;
            }
            match doc.objects.get(k) {
                Some(o) => {
                    members.push((k, o));
                    stack.extend(o.children.iter().rev().map(|c| c.as_str()));
                }
                None => missing_children += 1,
            }
        }
        absorbed.extend(members.iter().map(|(k, _)| *k));

        let mut lod: Option<f32> = None;
        for (_, o) in &members {
            for g in &o.geometry {
                if g.surface_depth().is_some() {
                    let l = g.lod_value();
                    lod = Some(lod.map_or(l, |m: f32| m.max(l)));
                } else {
                    *skipped_geoms.entry(g.kind.clone()).or_default() += 1;
                }
            }
        }
        let Some(lod) = lod else {
            let name = ctx.name();
            ctx.report.dropped(&name, key, "building without surface geometry");
            continue;
        };

        let mut surfaces: Vec<RawSurface> = Vec::new();
        for (part, (mk, o)) in members.iter().enumerate() {
            for g in o.geometry.iter().filter(|g| g.lod_value() == lod) {
                let Some(depth) = g.surface_depth() else { continue };
                let mut found = Vec::new();
                collect_surfaces(&g.boundaries, g.semantics.as_ref().map(|s| &s.values), depth, &mut found);
                for (surf, sem) in found {
                    let kind = sem
                        .and_then(|i| g.semantics.as_ref().and_then(|s| s.surfaces.get(i)))
                        .map(|s| surface_kind(&s.kind).unwrap_or(SurfaceKind::Other))
                        .unwrap_or(SurfaceKind::Other);
                    let mut rings = Vec::new();
                    for ring in surf.as_array().map(|a| a.as_slice()).unwrap_or(&[]) {
                        let Some(idx) = ring.as_array() else {
                            return Err(ctx.err_at(*mk, "malformed boundary: a ring is not an array of vertex indices"));
                        };
                        let mut pts = Vec::with_capacity(idx.len());
                        for i in idx {
                            let Some(i) = i.as_u64() else {
                                return Err(ctx.err_at(*mk, format!("malformed boundary: vertex index {i} is not a non-negative integer")));
                            };
                            let i = i as usize;
                            if i >= n {
                                return Err(ctx.err_at(*mk, format!("vertex index {i} out of range ({n} vertices)")));
                            }
                            pts.push([xs[i], ys[i], zs[i]]);
                        }
                        rings.push(pts);
                    }
                    surfaces.push(RawSurface { kind, part: part as u32, rings, app: None });
                }
            }
        }
        let get = attr_getter(obj.attributes.as_ref());
        if let Some(b) = assemble(ctx, key, lod, surfaces, vec![], &get) {
            ctx.model.buildings.push(b);
        }
    }

    for (k, o) in &doc.objects {
        if !absorbed.contains(k.as_str()) {
            *other_types.entry(o.kind.clone()).or_default() += 1;
        }
    }
    let name = ctx.name();
    if !other_types.is_empty() {
        let total: u64 = other_types.values().sum();
        let list: Vec<String> = other_types.iter().map(|(t, c)| format!("{t} {c}")).collect();
        ctx.report.warn(format!("{name}: {total} non-building city objects not ingested: {}", list.join(", ")));
    }
    if !skipped_geoms.is_empty() {
        let list: Vec<String> = skipped_geoms.iter().map(|(t, c)| format!("{t} {c}")).collect();
        ctx.report.warn(format!("{name}: building geometries skipped (not surfaces): {}", list.join(", ")));
    }
    if missing_children > 0 {
        ctx.report.warn(format!("{name}: {missing_children} children referenced by buildings are missing from CityObjects"));
    }
    Ok(doc.objects.len() as u64)
}
