//! Placed glTF 2.0 / GLB and IFC models.
//!
//! A placed model is a building given in local metres (a glTF/GLB export or an IFC file). It is
//! kept in the city model as a [`CimModel`] (a file reference plus its [`Placement`], stats and
//! extent, for the 3D Tiles builder) and one L4 [`Building`] whose footprint is the convex hull of
//! the placed vertices, so it shows in 2D layers, search and the spatial index like any other.
//!
//! # Placement file (`--placement`, [`SourceSpec::placement`](crate::ingest::SourceSpec))
//!
//! A JSON object:
//!
//! ```json
//! {"lon": 123.43, "lat": 41.80, "height": 45.0, "heading_deg": 30, "scale": 1.0,
//!  "name": {"zh": "…", "en": "…"}}
//! ```
//!
//! | field         | required | meaning                                                              |
//! |---------------|----------|----------------------------------------------------------------------|
//! | `lon`, `lat`  | yes      | WGS-84 degrees of the anchor, where the model origin goes            |
//! | `height`      | no (0)   | metres of the anchor (the model origin) above the terrain / datum     |
//! | `heading_deg` | no (0)   | rotation about the up axis, **clockwise from north**, degrees: the model's local north (+Y) ends up at this bearing |
//! | `scale`       | no (1)   | uniform factor applied to model metres, > 0                          |
//! | `name`        | no       | `{"zh": …, "en": …, "local": …}` (each optional) or a plain string (taken as `en`) |
//!
//! Unknown fields are ignored. A malformed file is an [`IngestError`] naming the placement file
//! and the field. A placed point is `anchor + R(heading) · (scale · p)` where `p` is the point in
//! the model's local east-north-up frame (x east, y north, z up, metres) and `R` turns clockwise
//! seen from above: `e' = e·cos h + n·sin h`, `n' = −e·sin h + n·cos h`.
//!
//! # glTF subset ([`gltf`] module)
//!
//! - GLB (binary container, version 2: JSON chunk + optional BIN chunk) and `.gltf` JSON with
//!   `data:` URI (base64) or external relative-file buffers.
//! - The default scene (`scene`, else scene 0, else every root node) is walked; node `matrix` or
//!   `translation`/`rotation`/`scale` (TRS) are composed down the hierarchy. Cyclic or too deep
//!   (> 256) hierarchies are an error.
//! - `POSITION` accessors of type VEC3 with any component type (FLOAT, or (normalized) integer
//!   types as used by `KHR_mesh_quantization`), with `byteOffset` and `byteStride`; every accessor
//!   and buffer view is bounds-checked. Sparse accessors are not supported: such primitives are
//!   counted (`unsupported_primitives`) and reported in a warning, their vertices are skipped.
//! - Triangles: mode 4 (TRIANGLES, indexed or not) counts `count / 3` into `triangles`; modes 5/6
//!   (strips/fans) count `count − 2` into `strip_fan_triangles`; points and lines are counted in
//!   `point_primitives` / `line_primitives`. Counts are per *instance* in the scene (a mesh used
//!   by two nodes counts twice). Index values themselves are not read.
//! - Files that require `KHR_draco_mesh_compression` or `EXT_meshopt_compression` are rejected
//!   (their vertices cannot be read); other extensions are ignored.
//! - glTF is Y-up, metres, +Z forward: (x, y, z) maps to local ENU (east = x, north = −z, up = y).
//! - stats: `triangles`, `meshes`, `nodes`, `materials`, `textures` (the document's counts for
//!   the last four), plus the other counters above when non-zero.
//!
//! # IFC subset ([`ifc`] module)
//!
//! - STEP physical files (ISO 10303-21), any IFC schema, read leniently: simple entity instances
//!   `#id=IFCTYPE(args);` with strings (`''` escapes, `\X2\…\X0\` and `\X\hh` decoded), nested
//!   lists, `$`, `*`, enumerations `.X.`, typed values such as `IFCLENGTHMEASURE(1.)`, comments.
//!   Complex (multi-type) instances `#id=(…);` are skipped and counted.
//! - Length unit: the `IfcSIUnit` `.LENGTHUNIT.` of the project (with prefix, e.g. `.MILLI.`), or
//!   an `IfcConversionBasedUnit` length unit (e.g. FOOT) with its conversion factor.
//! - Georeference: a placement file overrides; else `IfcSite` `RefLatitude`/`RefLongitude`
//!   (compound plane angles: degrees, minutes, seconds, optional millionths of a second, all
//!   carrying the sign) and `RefElevation`, with the heading from the 'Model'
//!   `IfcGeometricRepresentationContext` `TrueNorth` (heading = −atan2(x, y)). Neither is a fatal
//!   error ("no georeference: pass --placement"). `IfcMapConversion` is not read.
//! - Names: `IfcProject` and `IfcBuilding` names; an `IfcBuilding` whose name, object type or
//!   long name says residential/Wohn/house/Haus/apartment/dwelling is [`BuildingUse::Residential`].
//! - stats: `storeys` (IfcBuildingStorey), `spaces` (IfcSpace), `walls` (IfcWall,
//!   IfcWallStandardCase, IfcWallElementedCase), `windows` (IfcWindow, IfcWindowStandardCase),
//!   `doors` (IfcDoor, IfcDoorStandardCase), `slabs` (IfcSlab and its IFC4 subtypes), `roofs`
//!   (IfcRoof), `entities`, and geometry counters.
//! - Geometry (for footprint, extent and height) of walls, slabs and roofs only: `IfcLocalPlacement`
//!   chains of `IfcAxis2Placement3D` (Location, Axis, RefDirection) rooted at the 'Model'
//!   context's world coordinate system; 'Body' `IfcShapeRepresentation`s of their
//!   `IfcProductDefinitionShape`; items `IfcExtrudedAreaSolid` (Position, ExtrudedDirection, Depth)
//!   over `IfcRectangleProfileDef`, `IfcCircleProfileDef` (16-gon),
//!   `IfcArbitraryClosedProfileDef`/`IfcArbitraryProfileDefWithVoids` (outer `IfcPolyline` or
//!   `IfcIndexedPolyCurve`), `IfcFacetedBrep` (its polyloop vertices), and
//!   `IfcBooleanClippingResult`/`IfcBooleanResult` evaluated as their first operand (an upper
//!   bound). `IfcMappedItem`s are skipped and counted (`mapped_items_skipped`); every other item
//!   is counted (`unsupported_items`) and named in a report warning — never fatal. With no
//!   evaluable geometry at all, the footprint is an estimated 10 m × 10 m square on the origin
//!   and the height storeys × 3 m ([`HeightSource::Estimated`]), with a report warning.
//!
//! Every read is bounds-checked: malformed input is an [`IngestError`] naming the file and what is
//! wrong, never a panic.

pub mod gltf;
pub mod ifc;

use crate::geodesy::Enu;
use crate::ingest::{SourceCtx, SourceKind};
use crate::model::{
    Building, BuildingUse, CimFormat, CimModel, HeightSource, Level, Names, Placement,
    METRES_PER_LEVEL,
};
use crate::report::IngestError;
use std::collections::BTreeMap;
use std::path::Path;

/// A model read from its file, in its local east-north-up frame (metres, before placement).
#[derive(Debug, Clone, Default)]
pub struct LocalModel {
    /// Vertices (glTF) or solid corners (IFC) in local ENU metres.
    pub points: Vec<[f64; 3]>,
    pub stats: BTreeMap<String, u64>,
    pub names: Names,
    pub use_: Option<BuildingUse>,
    /// The model's own georeference (IFC IfcSite), if any.
    pub georef: Option<Placement>,
    /// A source id for the building (IFC GlobalId), if any.
    pub id: Option<String>,
    /// True when `points` is an estimate, not geometry read from the file.
    pub estimated: bool,
    /// Storey count when known (IFC), for `Building::levels`.
    pub levels: Option<u16>,
    /// IFC: triangles of walls, slabs and roofs per semantic class (local ENU metres), for L4.
    pub mesh: Vec<(crate::model::SurfaceKind, Vec<[[f64; 3]; 3]>)>,
}

/// A parsed placement file.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementFile {
    pub placement: Placement,
    pub names: Names,
}

/// Reads and validates a placement file (see the module docs for the format).
pub fn read_placement(path: &Path) -> Result<PlacementFile, IngestError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| IngestError::file(&file, format!("cannot read placement file: {e}")))?;
    parse_placement(&text, &file)
}

/// Parses placement JSON; `file` names it in errors.
pub fn parse_placement(text: &str, file: &str) -> Result<PlacementFile, IngestError> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| IngestError::file(file, format!("placement file is not valid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| {
        IngestError::file(
            file,
            "placement file must be a JSON object {\"lon\": …, \"lat\": …}",
        )
    })?;
    let field_err =
        |field: &str, msg: String| IngestError::feature(file, format!("field `{field}`"), msg);
    let num = |field: &str, required: bool, default: f64| -> Result<f64, IngestError> {
        match obj.get(field) {
            None | Some(serde_json::Value::Null) if !required => Ok(default),
            None | Some(serde_json::Value::Null) => {
                Err(field_err(field, "missing (a number is required)".into()))
            }
            Some(x) => match x.as_f64() {
                Some(f) if f.is_finite() => Ok(f),
                _ => Err(field_err(field, format!("expected a number, got {x}"))),
            },
        }
    };
    let lon = num("lon", true, 0.0)?;
    let lat = num("lat", true, 0.0)?;
    let height = num("height", false, 0.0)?;
    let heading_deg = num("heading_deg", false, 0.0)?;
    let scale = num("scale", false, 1.0)?;
    if !(-180.0..=180.0).contains(&lon) {
        return Err(field_err("lon", format!("{lon} is outside [-180, 180]")));
    }
    if !(-90.0..=90.0).contains(&lat) {
        return Err(field_err("lat", format!("{lat} is outside [-90, 90]")));
    }
    if scale <= 0.0 {
        return Err(field_err("scale", format!("{scale} must be > 0")));
    }
    let mut names = Names::default();
    match obj.get("name") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(s)) => names.en = Some(s.clone()),
        Some(serde_json::Value::Object(m)) => {
            for (k, slot) in [
                ("zh", &mut names.zh),
                ("en", &mut names.en),
                ("local", &mut names.local),
            ] {
                match m.get(k) {
                    None | Some(serde_json::Value::Null) => {}
                    Some(serde_json::Value::String(s)) => *slot = Some(s.clone()),
                    Some(x) => {
                        return Err(field_err(
                            &format!("name.{k}"),
                            format!("expected a string, got {x}"),
                        ))
                    }
                }
            }
        }
        Some(x) => {
            return Err(field_err(
                "name",
                format!("expected an object {{\"zh\", \"en\"}} or a string, got {x}"),
            ))
        }
    }
    Ok(PlacementFile {
        placement: Placement {
            lon,
            lat,
            height,
            heading_deg,
            scale,
        },
        names,
    })
}

/// Local model metres → placed ENU metres around the anchor (scale, then heading clockwise).
pub fn place_point(p: &Placement, v: [f64; 3]) -> [f64; 3] {
    let (s, c) = p.heading_deg.to_radians().sin_cos();
    let (e, n, u) = (v[0] * p.scale, v[1] * p.scale, v[2] * p.scale);
    [e * c + n * s, -e * s + n * c, u]
}

/// Axis-aligned `[min, max]` of points (zeros when empty).
pub fn extent_of(points: &[[f64; 3]]) -> [[f64; 3]; 2] {
    if points.is_empty() {
        return [[0.0; 3]; 2];
    }
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for p in points {
        for k in 0..3 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    [lo, hi]
}

/// The `dropped` reason of a placed model without georeference.
pub const NO_GEOREFERENCE: &str = "placed model without georeference (no --placement and no IfcSite RefLatitude/RefLongitude)";

fn set_kind(ctx: &mut SourceCtx<'_>, format: CimFormat, crs: &str) {
    if let Some(src) = ctx.model.sources.get_mut(ctx.index as usize) {
        src.kind = match format {
            CimFormat::Ifc => "ifc".into(),
            _ => "gltf".into(),
        };
        src.crs = crs.into();
    }
}

/// Reads a placed glTF/IFC model. A model without georeference (no placement, no IfcSite
/// lat/lon) is not fatal: it is reported under `dropped` ([`NO_GEOREFERENCE`]) with a warning
/// and 0 features are read.
pub fn ingest(ctx: &mut SourceCtx<'_>, kind: SourceKind) -> Result<u64, IngestError> {
    let file = ctx.name();
    let path = Path::new(&ctx.spec.path);
    let placement_file = match &ctx.spec.placement {
        Some(p) => Some(read_placement(p)?),
        None => None,
    };
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let (format, mut local) = match kind {
        SourceKind::Gltf => {
            if placement_file.is_none() {
                // Not fatal: the model is reported (dropped) and the build goes on.
                ctx.report.dropped(&file, &stem, NO_GEOREFERENCE);
                ctx.report.warn(format!(
                    "{file}: a glTF/GLB model carries no georeference: pass --placement <file.json> \
                     ({{\"lon\": …, \"lat\": …, \"height\": …, \"heading_deg\": …}}); model skipped"
                ));
                set_kind(ctx, CimFormat::Gltf, "none");
                return Ok(0);
            }
            (CimFormat::Gltf, gltf::read(path, &file, ctx.report)?)
        }
        SourceKind::Ifc => (CimFormat::Ifc, ifc::read(path, &file, ctx.report)?),
        other => return Err(ctx.err(format!("not a placed-model source ({other:?})"))),
    };
    let (placement, crs) = match (&placement_file, &local.georef) {
        (Some(pf), _) => (pf.placement.clone(), "placement"),
        (None, Some(g)) => (g.clone(), "IfcSite RefLatitude/RefLongitude"),
        (None, None) => {
            ctx.report.dropped(&file, local.id.as_deref().unwrap_or(&stem), NO_GEOREFERENCE);
            ctx.report.warn(format!(
                "{file}: no georeference: pass --placement (the IFC has no IfcSite RefLatitude/RefLongitude); model skipped"
            ));
            set_kind(ctx, format, "none");
            return Ok(0);
        }
    };
    let mut names = local.names.clone();
    if let Some(pf) = &placement_file {
        if !pf.names.is_empty() {
            let mut n = pf.names.clone();
            if n.local.is_none() {
                n.local = names.local.take();
            }
            names = n;
        }
    }
    if names.is_empty() {
        names.local = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    }

    let placed: Vec<[f64; 3]> = local
        .points
        .iter()
        .map(|&v| place_point(&placement, v))
        .collect();
    let ext = extent_of(&placed);
    let extent = [ext[0].map(|x| x as f32), ext[1].map(|x| x as f32)];

    // Footprint: convex hull of the placed vertices on the ground, to WGS-84.
    use geo::ConvexHull;
    let mp: geo_types::MultiPoint<f64> = placed
        .iter()
        .map(|p| geo_types::Point::new(p[0], p[1]))
        .collect();
    let hull = mp.convex_hull();
    let enu = Enu::new(placement.lon, placement.lat, placement.height);
    let ring: Vec<geo_types::Coord<f64>> = hull
        .exterior()
        .coords()
        .map(|c| {
            let (lon, lat, _) = enu.to_geodetic(c.x, c.y, 0.0);
            geo_types::Coord { x: lon, y: lat }
        })
        .collect();
    if ring.len() < 4 {
        return Err(ctx.err(format!(
            "model has no horizontal extent ({} vertices read): cannot make a footprint",
            placed.len()
        )));
    }
    let footprint = geo_types::MultiPolygon(vec![geo_types::Polygon::new(
        geo_types::LineString(ring),
        vec![],
    )]);

    let height = (ext[1][2] - ext[0][2]).max(0.0) as f32;
    let (height, height_source) = if local.estimated {
        let h = local
            .levels
            .map(|l| l as f32 * METRES_PER_LEVEL)
            .filter(|h| *h > 0.0)
            .unwrap_or(height);
        (h, HeightSource::Estimated)
    } else {
        (height, HeightSource::Geometry)
    };

    let cim_index = ctx.model.cim_models.len() as u32;
    let id = local.id.take().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let source = ctx.source_ref(id);
    ctx.model.cim_models.push(CimModel {
        id: cim_index,
        source: source.clone(),
        format,
        path: ctx.spec.path.clone(),
        placement: placement.clone(),
        names: names.clone(),
        stats: local.stats.clone(),
        extent,
    });
    let bid = ctx.model.buildings.len() as u32;
    ctx.model.buildings.push(Building {
        id: bid,
        source,
        footprint,
        height,
        min_height: 0.0,
        height_source,
        levels: local.levels,
        use_: local.use_.unwrap_or(BuildingUse::Unknown),
        names,
        district: None,
        level: Level::L4,
        roof_shape: None,
        solid: None,
        cim_model: Some(cim_index),
    });
    if let Some(src) = ctx.model.sources.get_mut(ctx.index as usize) {
        src.kind = match format {
            CimFormat::Ifc => "ifc".into(),
            _ => "gltf".into(),
        };
        src.crs = crs.into();
    }
    tracing::info!(
        source = %file, triangles = local.stats.get("triangles").copied().unwrap_or(0),
        "placed model: extent {:.2} × {:.2} × {:.2} m", ext[1][0] - ext[0][0], ext[1][1] - ext[0][1],
        ext[1][2] - ext[0][2]
    );
    Ok(1)
}

/// Moves the CityJSON/CityGML buildings `model.buildings[first..]` of one source to a
/// placement: the first building's anchor (footprint centroid at its lowest point) is the
/// source's origin and goes to the placement's lon/lat; every point keeps its offset from that
/// origin (local ENU metres), scaled and turned clockwise by the heading. Footprints and solids
/// move together; the buildings become key buildings (`Level::L4`); the placement's names, if
/// any, go to a single placed building.
pub fn relocate(model: &mut crate::model::CityModel, first: usize, pf: &PlacementFile) {
    let Some(origin) = model.buildings.get(first).and_then(|b| b.solid.as_ref().map(|s| s.anchor)) else {
        return;
    };
    let p = &pf.placement;
    let from = Enu::new(origin[0], origin[1], origin[2]);
    let to = Enu::new(p.lon, p.lat, p.height);
    let n = model.buildings.len() - first;
    for b in model.buildings[first..].iter_mut() {
        let move_ll = |lon: f64, lat: f64| -> (f64, f64) {
            let l = from.from_geodetic(lon, lat, origin[2]);
            let q = place_point(p, [l[0], l[1], 0.0]);
            let (lo, la, _) = to.to_geodetic(q[0], q[1], 0.0);
            (lo, la)
        };
        for poly in b.footprint.0.iter_mut() {
            use geo::MapCoordsInPlace;
            poly.map_coords_in_place(|c| {
                let (x, y) = move_ll(c.x, c.y);
                geo_types::Coord { x, y }
            });
        }
        if let Some(s) = b.solid.as_mut() {
            let l = from.from_geodetic(s.anchor[0], s.anchor[1], s.anchor[2]);
            let q = place_point(p, l);
            let (lo, la, h) = to.to_geodetic(q[0], q[1], q[2]);
            s.anchor = [lo, la, h];
            let rot = Placement { lon: 0.0, lat: 0.0, height: 0.0, heading_deg: p.heading_deg, scale: p.scale };
            for surf in s.surfaces.iter_mut() {
                for r in surf.rings.iter_mut() {
                    for v in r.iter_mut() {
                        let w = place_point(&rot, [v[0] as f64, v[1] as f64, v[2] as f64]);
                        *v = [w[0] as f32, w[1] as f32, w[2] as f32];
                    }
                }
            }
        }
        b.height *= p.scale as f32;
        b.level = Level::L4;
        if n == 1 && !pf.names.is_empty() {
            let mut names = pf.names.clone();
            if names.local.is_none() {
                names.local = b.names.display().map(|s| s.to_string());
            }
            b.names = names;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_parses_and_validates() {
        let p = parse_placement(
            r#"{"lon": 123.43, "lat": 41.8, "heading_deg": 30, "name": {"zh": "楼", "en": "B"}}"#,
            "p.json",
        )
        .expect("valid");
        assert_eq!(p.placement.scale, 1.0);
        assert_eq!(p.placement.height, 0.0);
        assert_eq!(p.names.zh.as_deref(), Some("楼"));
        let e = parse_placement(r#"{"lon": 123.43, "lat": "x"}"#, "p.json").unwrap_err();
        assert_eq!(e.file, "p.json");
        assert!(e.to_string().contains("lat"), "{e}");
        let e = parse_placement(r#"{"lat": 41}"#, "p.json").unwrap_err();
        assert!(e.to_string().contains("lon"), "{e}");
        let e = parse_placement(r#"{"lon": 1, "lat": 2, "scale": 0}"#, "p.json").unwrap_err();
        assert!(e.to_string().contains("scale"), "{e}");
        assert!(parse_placement("[1]", "p.json").is_err());
    }

    #[test]
    fn heading_is_clockwise_from_north() {
        let p = Placement {
            lon: 0.0,
            lat: 0.0,
            height: 0.0,
            heading_deg: 90.0,
            scale: 2.0,
        };
        let v = place_point(&p, [0.0, 1.0, 1.0]);
        assert!(
            (v[0] - 2.0).abs() < 1e-12 && v[1].abs() < 1e-12 && (v[2] - 2.0).abs() < 1e-12,
            "{v:?}"
        );
    }
}
