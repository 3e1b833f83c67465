//! GIS ingest through GDAL: any vector format GDAL reads (GeoJSON, Shapefile, GeoPackage,
//! FlatGeobuf, GML, KML, …) and PostGIS through a `PG:` connection string. (OSM PBF/XML go
//! through [`super::osm`] instead: GDAL's OSM driver silently drops multipolygon relations when a
//! file is not sorted node→way→relation.)
//!
//! Per layer: the CRS is the `--crs` override, else the layer's own, else WGS-84 for GeoJSON
//! (RFC 7946); a layer without one is a fatal error asking for `--crs`. Every feature is
//! classified by its attributes (attrs.rs rules) or by the `--layer` hint or the layer's name,
//! reprojected to WGS-84, its geometry repaired or rejected per feature with a reason.

use super::attrs;
use super::crs::{AxisOrder, ToWgs84};
use super::geom::{map_coords_mp, repair_polygons, Repaired};
use super::{LayerHint, SourceCtx};
use crate::model::{AreaFeature, Building, District, Level, Poi, Road, Street};
use crate::report::{IngestError, Progress};
use gdal::vector::LayerAccess;
use gdal::{Dataset, DatasetOptions, GdalOpenFlags};
use geo_types::{Geometry, LineString, MultiPolygon, Point};
use std::collections::BTreeMap;

/// Attributes of one feature as strings.
type Attrs = BTreeMap<String, String>;

fn open(ctx: &SourceCtx<'_>) -> Result<Dataset, IngestError> {
    let opts = DatasetOptions {
        open_flags: GdalOpenFlags::GDAL_OF_VECTOR | GdalOpenFlags::GDAL_OF_READONLY | GdalOpenFlags::GDAL_OF_VERBOSE_ERROR,
        ..Default::default()
    };
    Dataset::open_ex(&ctx.spec.path, opts).map_err(|e| ctx.err(format!("GDAL cannot open it as a vector dataset: {e}")))
}

/// What a feature is, by hint, attributes or layer name.
fn classify(hint: Option<LayerHint>, layer_name: &str, get: &dyn Fn(&str) -> Option<String>) -> Option<LayerHint> {
    if hint.is_some() {
        return hint;
    }
    if get("building").is_some_and(|b| b != "no") || attrs::HEIGHT_ATTRIBUTES.iter().any(|k| *k != "height" && get(k).is_some()) {
        return Some(LayerHint::Buildings);
    }
    if attrs::road_class(get).is_some() {
        return Some(LayerHint::Roads);
    }
    if attrs::water_class(get).is_some() {
        return Some(LayerHint::Water);
    }
    if attrs::is_street(get) {
        return Some(LayerHint::Streets);
    }
    if get("boundary").as_deref() == Some("administrative") || get("adcode").is_some() {
        return Some(LayerHint::Districts);
    }
    if attrs::poi_kind(get).is_some() {
        return Some(LayerHint::Pois);
    }
    if attrs::landuse_class(get).is_some() {
        return Some(LayerHint::Landuse);
    }
    let l = layer_name.to_ascii_lowercase();
    if ["build", "bati", "bldg", "footprint", "建筑", "房屋"].iter().any(|k| l.contains(k)) {
        return Some(LayerHint::Buildings);
    }
    if ["road", "street", "highway", "route", "道路"].iter().any(|k| l.contains(k)) {
        return Some(LayerHint::Roads);
    }
    None
}

fn to_multipolygon(g: Geometry<f64>) -> Option<MultiPolygon<f64>> {
    match g {
        Geometry::Polygon(p) => Some(MultiPolygon::new(vec![p])),
        Geometry::MultiPolygon(mp) => Some(mp),
        Geometry::GeometryCollection(gc) => {
            let polys: Vec<_> = gc.0.into_iter().filter_map(to_multipolygon).flat_map(|m| m.0).collect();
            (!polys.is_empty()).then(|| MultiPolygon::new(polys))
        }
        _ => None,
    }
}

fn to_lines(g: Geometry<f64>) -> Vec<LineString<f64>> {
    match g {
        Geometry::LineString(l) => vec![l],
        Geometry::MultiLineString(m) => m.0,
        Geometry::GeometryCollection(gc) => gc.0.into_iter().flat_map(to_lines).collect(),
        _ => vec![],
    }
}

fn representative_point(g: &Geometry<f64>) -> Option<Point<f64>> {
    use geo::InteriorPoint;
    match g {
        Geometry::Point(p) => Some(*p),
        other => other.interior_point(),
    }
}

fn reproject_mp(t: &ToWgs84, mp: &mut MultiPolygon<f64>) -> Result<(), String> {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    map_coords_mp(mp, &mut |c| {
        xs.push(c.x);
        ys.push(c.y);
    });
    t.transform(&mut xs, &mut ys, &mut [])?;
    let mut i = 0;
    map_coords_mp(mp, &mut |c| {
        c.x = xs[i];
        c.y = ys[i];
        i += 1;
    });
    Ok(())
}

fn reproject_line(t: &ToWgs84, l: &mut LineString<f64>) -> Result<(), String> {
    let mut xs: Vec<f64> = l.0.iter().map(|c| c.x).collect();
    let mut ys: Vec<f64> = l.0.iter().map(|c| c.y).collect();
    t.transform(&mut xs, &mut ys, &mut [])?;
    for (c, (x, y)) in l.0.iter_mut().zip(xs.into_iter().zip(ys)) {
        c.x = x;
        c.y = y;
    }
    Ok(())
}

/// GDAL reports a broken GeoJSON only as "Failed to read GeoJSON data" and silently ignores a
/// `crs` member it cannot resolve (the data would then be taken as WGS-84). So GeoJSON files are
/// checked first: the syntax, with line, column and the feature the error falls in, and the `crs`
/// member, which must name a CRS PROJ knows.
fn geojson_precheck(ctx: &SourceCtx<'_>) -> Result<(), IngestError> {
    let lower = ctx.spec.path.to_ascii_lowercase();
    if !(lower.ends_with(".geojson") || lower.ends_with(".json")) {
        return Ok(());
    }
    let bytes = std::fs::read(&ctx.spec.path).map_err(|e| ctx.err(format!("cannot read: {e}")))?;
    geojson_precheck_bytes(ctx, &bytes)
}

/// The GeoJSON pre-check of [`ingest`] on bytes in memory (the pure part before GDAL opens the
/// file): syntax errors with line, column and feature index; a `crs` member PROJ must know
/// (unless the source has a `--crs` override).
pub fn geojson_precheck_bytes(ctx: &SourceCtx<'_>, bytes: &[u8]) -> Result<(), IngestError> {
    #[derive(serde::Deserialize)]
    struct Head {
        crs: Option<serde_json::Value>,
        #[serde(default)]
        #[allow(dead_code)]
        features: serde::de::IgnoredAny,
    }
    match serde_json::from_slice::<Head>(bytes) {
        Err(e) => {
            // Byte offset of the error → index of the feature it falls in.
            let mut offset = 0usize;
            for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if i + 1 == e.line() {
                    offset += e.column().min(line.len());
                    break;
                }
                offset += line.len() + 1;
            }
            let head = &bytes[..offset.min(bytes.len())];
            let features = head.windows(9).filter(|w| w == b"\"Feature\"").count();
            let feature = if features > 0 { format!("features[{}]", features - 1) } else { "(before the first feature)".into() };
            Err(ctx.err_at(feature, format!("malformed GeoJSON at line {}, column {}: {e}", e.line(), e.column())))
        }
        Ok(h) => {
            if let Some(crs) = h.crs {
                let name = crs["properties"]["name"].as_str().map(str::to_string).unwrap_or_else(|| crs.to_string());
                if ctx.spec.crs.is_none() {
                    super::crs::parse_crs(&name).map_err(|m| ctx.err(format!("the file's crs member: {m}")))?;
                }
            }
            Ok(())
        }
    }
}

/// Ingests every layer of a GDAL dataset.
pub fn ingest(ctx: &mut SourceCtx<'_>) -> Result<u64, IngestError> {
    geojson_precheck(ctx)?;
    let ds = open(ctx)?;
    let driver = ds.driver().short_name();
    let file = ctx.name();
    let mut total = 0u64;
    let mut crs_labels: Vec<String> = Vec::new();
    let layer_count = ds.layer_count();
    for li in 0..layer_count {
        let mut layer = ds.layer(li).map_err(|e| ctx.err(format!("layer {li}: {e}")))?;
        let lname = layer.name();
        let t = match (&ctx.spec.crs, layer.spatial_ref()) {
            (Some(def), _) => ToWgs84::from_definition(def, AxisOrder::Traditional, ctx.spec.datum),
            (None, Some(srs)) => ToWgs84::new(&srs, AxisOrder::Traditional, ctx.spec.datum),
            (None, None) if driver == "GeoJSON" || driver == "GeoJSONSeq" => Ok(ToWgs84::identity(ctx.spec.datum)),
            (None, None) => Err(format!("layer '{lname}' has no CRS: pass --crs for this source")),
        }
        .map_err(|m| ctx.err(format!("layer '{lname}': {m}")))?;
        if !crs_labels.contains(&t.label) {
            crs_labels.push(t.label.clone());
        }
        let field_names: Vec<String> = layer.defn().fields().map(|f| f.name()).collect();
        // Field names case-insensitively: PostGIS tables loaded by ogr2ogr/shp2pgsql have their
        // column names laundered to lower case (BD TOPO's USAGE1 → usage1).
        let mut lower_names: BTreeMap<String, String> = BTreeMap::new();
        for n in &field_names {
            lower_names.entry(n.to_lowercase()).or_insert_with(|| n.clone());
        }
        // GDAL reports read errors mid-iteration (a truncated file, a lost connection) only
        // through CPLError and then ends the iteration early: check it after the loop.
        unsafe { gdal_sys::CPLErrorReset() };
        let mut progress = Progress::new(format!("{file} [{lname}]"), layer.try_feature_count());
        let mut unclassified = 0u64;
        for (fi, feature) in layer.features().enumerate() {
            total += 1;
            progress.inc(1);
            let fid = feature.fid().map(|f| f.to_string()).unwrap_or_else(|| fi.to_string());
            let mut attrs: Attrs = BTreeMap::new();
            for (idx, name) in field_names.iter().enumerate() {
                if let Ok(Some(v)) = feature.field_as_string(idx) {
                    if !v.is_empty() {
                        attrs.insert(name.clone(), v);
                    }
                }
            }
            let feat_id = attrs.get("id").or(attrs.get("@id")).or(attrs.get("ID")).cloned().unwrap_or_else(|| fid.clone());
            let feat_label = format!("{lname}:{feat_id}");
            let get = |k: &str| attrs.get(k).or_else(|| attrs.get(lower_names.get(&k.to_lowercase())?)).cloned();
            let Some(geom) = feature.geometry() else {
                ctx.report.dropped(&file, &feat_label, "no geometry");
                continue;
            };
            // geo is 2D: drop Z/M first (GDAL's conversion refuses 2.5D types).
            let mut flat = geom.clone();
            flat.flatten_to_2d();
            let g: Geometry<f64> = match flat.to_geo() {
                Ok(g) => g,
                Err(e) => {
                    ctx.report.dropped(&file, &feat_label, "geometry GDAL cannot convert");
                    tracing::debug!(feature = %feat_label, error = %e, "unconvertible geometry");
                    continue;
                }
            };
            let Some(kind) = classify(ctx.spec.layer, &lname, &get) else {
                unclassified += 1;
                ctx.report.dropped(&file, &feat_label, "no recognised class (pass --layer to say what the source holds)");
                continue;
            };
            let src = ctx.source_ref(feat_id.clone());
            let names = attrs::names(&get);
            match kind {
                LayerHint::Buildings | LayerHint::Water | LayerHint::Landuse | LayerHint::Districts | LayerHint::Streets => {
                    let Some(mut mp) = to_multipolygon(g) else {
                        let why = if kind == LayerHint::Buildings { "building without a polygon footprint (point or line)" } else { "area feature without a polygon" };
                        ctx.report.dropped(&file, &feat_label, why);
                        continue;
                    };
                    if let Err(m) = reproject_mp(&t, &mut mp) {
                        ctx.report.dropped(&file, &feat_label, "coordinates outside the CRS's valid area");
                        tracing::debug!(feature = %feat_label, "{m}");
                        continue;
                    }
                    let mp = match repair_polygons(mp) {
                        Repaired::Valid(mp) => mp,
                        Repaired::Fixed(mp, why) => {
                            ctx.report.repaired(&file, &feat_label, why);
                            if matches!(kind, LayerHint::Districts | LayerHint::Streets) {
                                ctx.report.warn(format!(
                                    "{file}: {} {feat_label} ({}): geometry repaired: {why}",
                                    if kind == LayerHint::Streets { "street" } else { "district" },
                                    names.display().unwrap_or("unnamed")
                                ));
                            }
                            mp
                        }
                        Repaired::Rejected(why) => {
                            ctx.report.dropped(&file, &feat_label, why);
                            if matches!(kind, LayerHint::Districts | LayerHint::Streets) {
                                ctx.report.warn(format!(
                                    "{file}: {} {feat_label} ({}) dropped: unusable geometry: {why}",
                                    if kind == LayerHint::Streets { "street" } else { "district" },
                                    names.display().unwrap_or("unnamed")
                                ));
                            }
                            continue;
                        }
                    };
                    match kind {
                        LayerHint::Buildings => {
                            let use_ = attrs::building_use(&get);
                            let h = attrs::building_height(&get, use_);
                            ctx.model.buildings.push(Building {
                                id: 0,
                                source: src,
                                footprint: mp,
                                height: h.height,
                                min_height: h.min_height,
                                height_source: h.source,
                                levels: h.levels,
                                use_,
                                names,
                                district: None,
                                level: Level::L2,
                                roof_shape: get("roof:shape"),
                                solid: None,
                                cim_model: None,
                            });
                        }
                        LayerHint::Water => ctx.model.water.push(AreaFeature {
                            id: 0,
                            source: src,
                            class: attrs::water_class(&get).unwrap_or_else(|| "water".into()),
                            geometry: mp,
                            names,
                        }),
                        LayerHint::Landuse => ctx.model.landuse.push(AreaFeature {
                            id: 0,
                            source: src,
                            class: attrs::landuse_class(&get).unwrap_or_else(|| "other".into()),
                            geometry: mp,
                            names,
                        }),
                        LayerHint::Streets => {
                            let area_km2 = crate::geodesy::area_km2(&mp);
                            ctx.model.streets.push(Street {
                                id: 0,
                                source: src,
                                code: attrs::street_code(&get).unwrap_or(0),
                                district: None,
                                names,
                                geometry: mp,
                                area_km2,
                            })
                        }
                        _ => {
                            let area_km2 = crate::geodesy::area_km2(&mp);
                            ctx.model.districts.push(District {
                                id: 0,
                                source: src,
                                adcode: get("adcode").and_then(|a| a.parse().ok()).unwrap_or(0),
                                names,
                                geometry: mp,
                                area_km2,
                            })
                        }
                    }
                }
                LayerHint::Roads => {
                    let class = attrs::road_class(&get).unwrap_or(crate::model::RoadClass::Other);
                    let lines = to_lines(g);
                    if lines.is_empty() {
                        ctx.report.dropped(&file, &feat_label, "road without a line geometry");
                        continue;
                    }
                    for mut l in lines {
                        if l.0.len() < 2 {
                            ctx.report.dropped(&file, &feat_label, "road with fewer than 2 vertices");
                            continue;
                        }
                        if reproject_line(&t, &mut l).is_err() {
                            ctx.report.dropped(&file, &feat_label, "coordinates outside the CRS's valid area");
                            continue;
                        }
                        ctx.model.roads.push(Road {
                            id: 0,
                            source: src.clone(),
                            class,
                            geometry: l,
                            names: names.clone(),
                            lanes: get("lanes").and_then(|v| v.parse().ok()),
                            oneway: matches!(get("oneway").as_deref(), Some("yes" | "1" | "true")),
                            max_speed_kmh: get("maxspeed").and_then(|v| v.trim().parse().ok()),
                            layer: get("layer").and_then(|v| v.parse().ok()).unwrap_or(0),
                        });
                    }
                }
                LayerHint::Pois => {
                    let Some(kind) = attrs::poi_kind(&get) else {
                        ctx.report.dropped(&file, &feat_label, "POI of an unknown kind");
                        continue;
                    };
                    let Some(p) = representative_point(&g) else {
                        ctx.report.dropped(&file, &feat_label, "POI without a usable geometry");
                        continue;
                    };
                    let Ok((lon, lat, _)) = t.point(p.x(), p.y(), 0.0) else {
                        ctx.report.dropped(&file, &feat_label, "coordinates outside the CRS's valid area");
                        continue;
                    };
                    ctx.model.pois.push(Poi {
                        id: 0,
                        source: src,
                        kind,
                        location: Point::new(lon, lat),
                        names,
                        capacity: get("capacity").and_then(|v| v.parse().ok()),
                    });
                }
            }
        }
        let (err_type, err_msg) = unsafe {
            let t = gdal_sys::CPLGetLastErrorType();
            let m = std::ffi::CStr::from_ptr(gdal_sys::CPLGetLastErrorMsg()).to_string_lossy().into_owned();
            (t, m)
        };
        if err_type >= gdal_sys::CPLErr::CE_Failure {
            return Err(ctx.err(format!("layer '{lname}': read error after {} features: {err_msg}", progress.done())));
        }
        if unclassified > 0 {
            ctx.report.warn(format!(
                "{file} [{lname}]: {unclassified} features had no recognised class and were dropped (pass --layer buildings|roads|water|landuse|pois|districts|streets)"
            ));
        }
        progress.finish();
    }
    let info = &mut ctx.model.sources[ctx.index as usize];
    info.kind = format!("gdal:{driver}");
    info.crs = crs_labels.join(",");
    Ok(total)
}
