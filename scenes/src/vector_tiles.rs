//! The vector tile pyramid of a [`CityModel`]: MVT tiles z0..=max_zoom written into a PMTiles v3
//! archive (`DIR/tiles/<name>.pmtiles`).
//!
//! Steps (docs/ARCHITECTURE.md, "Vector tiles"):
//! 1. every feature is projected once to the Web Mercator unit square and given its layer,
//!    properties, first zoom and drop priority;
//! 2. per zoom, in parallel over features: the geometry is scaled to world tile units
//!    (`2^z · 4096`), simplified (lines Douglas–Peucker, polygons topology-preserving
//!    Visvalingam–Whyatt, tolerance a fraction of a tile pixel), then split recursively into the
//!    tiles it touches, clipping each half with the 64-unit buffer (Sutherland–Hodgman per ring for
//!    polygons, Liang–Barsky per segment for lines); points go to the one tile containing them;
//! 3. per tile, in parallel: features are encoded layer by layer (the MVT encoder orients rings
//!    and drops rings collapsed by quantization), gzipped, and checked against the density limits;
//!    over a limit, the least important features (buildings smallest first, then POIs, roads of the
//!    lowest class, landuse, water, labels) are dropped until it fits, and the tile is reported.
//!
//! Tiles without any feature are not written.

use crate::model::{CityModel, Names, RoadClass};
use crate::report::Progress;
use anyhow::{Context, Result};
use geo::{Area, BoundingRect, InteriorPoint, Simplify, SimplifyVwPreserve};
use geo_types::{Coord, LineString, MultiPolygon, Polygon};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::time::Instant;
use tiles::mvt::{self, Geometry, LayerBuilder, Value};

/// Pyramid options; [`TileOptions::default`] is the contract (z0–16, extent 4096, buffer 64,
/// 500 KB / 200,000 features per tile).
#[derive(Debug, Clone)]
pub struct TileOptions {
    pub max_zoom: u8,
    pub extent: u32,
    pub buffer: u32,
    /// Compressed (gzip) size limit per tile, bytes.
    pub max_tile_bytes: usize,
    pub max_tile_features: usize,
}

impl Default for TileOptions {
    fn default() -> Self {
        TileOptions { max_zoom: 16, extent: mvt::EXTENT, buffer: 64, max_tile_bytes: 500_000, max_tile_features: 200_000 }
    }
}

/// Highest zoom the CLI accepts.
pub const MAX_ZOOM_LIMIT: u8 = 18;

/// One tile that hit a density limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitHit {
    pub z: u8,
    pub x: u32,
    pub y: u32,
    /// `bytes` or `features`.
    pub limit: String,
    pub features_before: u64,
    pub features_dropped: u64,
    /// Compressed size finally written.
    pub bytes: u64,
}

/// What the pyramid build did (the manifest's `vector_tiles`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileSummary {
    /// The archive, relative to the model directory.
    pub file: String,
    pub min_zoom: u8,
    pub max_zoom: u8,
    pub tiles: u64,
    /// Tiles per zoom, index = zoom.
    pub tiles_per_zoom: Vec<u64>,
    /// Features written, summed over tiles.
    pub features: u64,
    /// Archive size in bytes.
    pub bytes: u64,
    pub limits_hit: Vec<LimitHit>,
    pub seconds: f64,
}

/// Layers in drawing order (also the order within a tile).
pub const LAYERS: [&str; 8] = ["districts", "streets", "water", "landuse", "roads", "buildings", "pois", "labels"];
const L_DISTRICTS: u8 = 0;
const L_STREETS: u8 = 1;
const L_WATER: u8 = 2;
const L_LANDUSE: u8 = 3;
const L_ROADS: u8 = 4;
const L_BUILDINGS: u8 = 5;
const L_POIS: u8 = 6;
const L_LABELS: u8 = 7;

/// First zoom of the `streets` layer (street divisions are a few km across: legible from z10).
pub const STREETS_MIN_ZOOM: u8 = 10;

/// Drop order under a density limit: lower goes first; districts and streets are never dropped.
fn drop_rank(layer: u8) -> u8 {
    match layer {
        L_BUILDINGS => 0,
        L_POIS => 1,
        L_ROADS => 2,
        L_LANDUSE => 3,
        L_WATER => 4,
        L_LABELS => 5,
        _ => u8::MAX,
    }
}

/// First zoom of a road class (the contract's table).
pub fn road_min_zoom(c: RoadClass) -> u8 {
    match c {
        RoadClass::Motorway | RoadClass::Trunk => 5,
        RoadClass::Primary => 8,
        RoadClass::Rail => 9,
        RoadClass::Secondary => 10,
        RoadClass::Tertiary => 11,
        RoadClass::Residential => 12,
        RoadClass::Service | RoadClass::Path | RoadClass::Other => 13,
    }
}

fn road_rank(c: RoadClass) -> f64 {
    match c {
        RoadClass::Motorway => 9.0,
        RoadClass::Trunk => 8.0,
        RoadClass::Primary => 7.0,
        RoadClass::Rail => 6.0,
        RoadClass::Secondary => 5.0,
        RoadClass::Tertiary => 4.0,
        RoadClass::Residential => 3.0,
        RoadClass::Service => 2.0,
        RoadClass::Other => 1.0,
        RoadClass::Path => 0.0,
    }
}

/// `(layer id, min zoom, fields with their TileJSON types, description)`.
fn layer_schema() -> Vec<(&'static str, u8, Vec<(&'static str, &'static str)>, &'static str)> {
    let s = "String";
    let n = "Number";
    vec![
        ("districts", 0, vec![("adcode", n), ("name", s), ("name_en", s), ("area_km2", n)], "Administrative districts"),
        (
            "streets",
            STREETS_MIN_ZOOM,
            vec![("id", n), ("code", n), ("name", s), ("name_en", s), ("district", s)],
            "Street-level divisions (街道/乡镇)",
        ),
        ("water", 6, vec![("class", s), ("name", s), ("name_en", s)], "Water areas"),
        ("landuse", 8, vec![("class", s), ("name", s), ("name_en", s)], "Land use areas"),
        (
            "roads",
            5,
            vec![
                ("id", n),
                ("class", s),
                ("name", s),
                ("name_en", s),
                ("oneway", "Boolean"),
                ("lanes", n),
                ("layer", n),
                ("max_speed", n),
            ],
            "Roads and rail by class (motorway/trunk from z5 … service/path/other from z13)",
        ),
        (
            "buildings",
            12,
            vec![
                ("id", n),
                ("height", n),
                ("min_height", n),
                ("use", s),
                ("name", s),
                ("name_en", s),
                ("level", s),
                ("district", s),
            ],
            "Building footprints (generalised below the max zoom)",
        ),
        ("pois", 12, vec![("id", n), ("kind", s), ("name", s), ("name_en", s), ("capacity", n)], "Points of interest"),
        ("labels", 3, vec![("kind", s), ("name", s), ("name_en", s), ("rank", n)], "Label points (district, water, park, landmark)"),
    ]
}

/// TileJSON `vector_layers` for a pyramid up to `max_zoom`.
pub fn vector_layers(max_zoom: u8) -> serde_json::Value {
    serde_json::Value::Array(
        layer_schema()
            .into_iter()
            .map(|(id, minz, fields, desc)| {
                let f: serde_json::Map<String, serde_json::Value> =
                    fields.into_iter().map(|(k, t)| (k.to_string(), serde_json::Value::from(t))).collect();
                serde_json::json!({"id": id, "description": desc, "minzoom": minz.min(max_zoom), "maxzoom": max_zoom, "fields": f})
            })
            .collect(),
    )
}

#[derive(Clone)]
enum SrcGeom {
    Point([f64; 2]),
    Line(Vec<[f64; 2]>),
    /// Polygons, each exterior then holes, in unit coordinates.
    Poly(Vec<Vec<Vec<[f64; 2]>>>),
}

struct Src {
    layer: u8,
    id: Option<u64>,
    props: Vec<(&'static str, Value)>,
    geom: SrcGeom,
    min_zoom: u8,
    /// Larger = kept longer under a density limit.
    importance: f64,
    /// Area in unit² for polygons (building generalisation).
    area: f64,
    /// Buildings kept at every zoom ≥ 12 whatever their size (named or ≥ 100 m).
    landmark: bool,
    /// `[minx, miny, maxx, maxy]`, unit coordinates.
    bbox: [f64; 4],
}

fn unit(c: Coord<f64>) -> [f64; 2] {
    let (x, y) = tiles::lonlat_to_unit(c.x, c.y);
    [x, y]
}

fn bbox_of<'a>(pts: impl Iterator<Item = &'a [f64; 2]>) -> [f64; 4] {
    let mut b = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    for p in pts {
        b[0] = b[0].min(p[0]);
        b[1] = b[1].min(p[1]);
        b[2] = b[2].max(p[0]);
        b[3] = b[3].max(p[1]);
    }
    b
}

fn poly_unit(mp: &MultiPolygon<f64>) -> Vec<Vec<Vec<[f64; 2]>>> {
    mp.0.iter()
        .map(|p| {
            std::iter::once(p.exterior())
                .chain(p.interiors())
                .map(|r| r.0.iter().map(|c| unit(*c)).collect())
                .collect()
        })
        .collect()
}

fn poly_area_unit(p: &[Vec<Vec<[f64; 2]>>]) -> f64 {
    p.iter()
        .map(|rings| {
            rings
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let a = shoelace(r).abs();
                    if i == 0 {
                        a
                    } else {
                        -a
                    }
                })
                .sum::<f64>()
        })
        .sum::<f64>()
        .max(0.0)
}

fn shoelace(r: &[[f64; 2]]) -> f64 {
    let n = r.len();
    let mut s = 0.0;
    for i in 0..n {
        let (a, b) = (r[i], r[(i + 1) % n]);
        s += a[0] * b[1] - b[0] * a[1];
    }
    s / 2.0
}

fn names(props: &mut Vec<(&'static str, Value)>, n: &Names) {
    if let Some(name) = n.display() {
        props.push(("name", Value::from(name)));
    }
    if let Some(en) = &n.en {
        props.push(("name_en", Value::from(en.as_str())));
    }
}

/// Rounds an f32 attribute to centimetres so values like 24.000001 encode as integers.
fn metres(v: f32) -> Value {
    Value::from(((v as f64) * 100.0).round() / 100.0)
}

fn label_point(mp: &MultiPolygon<f64>) -> Option<[f64; 2]> {
    // The interior point of the largest part.
    let largest = mp.0.iter().max_by(|a, b| a.unsigned_area().total_cmp(&b.unsigned_area()))?;
    largest.interior_point().map(|p| unit(p.0))
}

/// Everything the pyramid needs, projected once.
fn prepare(model: &CityModel) -> Vec<Src> {
    let mut out: Vec<Src> = Vec::new();
    for d in &model.districts {
        let geom = poly_unit(&d.geometry);
        let mut props = Vec::new();
        if d.adcode != 0 {
            props.push(("adcode", Value::from(d.adcode)));
        }
        names(&mut props, &d.names);
        props.push(("area_km2", Value::from((d.area_km2 * 1000.0).round() / 1000.0)));
        let bbox = bbox_of(geom.iter().flatten().flatten());
        out.push(Src { layer: L_DISTRICTS, id: Some(d.id as u64), props, area: poly_area_unit(&geom), geom: SrcGeom::Poly(geom), min_zoom: 0, importance: f64::MAX, landmark: false, bbox });
        if let (Some(p), Some(_)) = (label_point(&d.geometry), d.names.display()) {
            let mut props = vec![("kind", Value::from("district"))];
            names(&mut props, &d.names);
            props.push(("rank", Value::from(1u32)));
            out.push(Src { layer: L_LABELS, id: Some(d.id as u64), props, geom: SrcGeom::Point(p), min_zoom: 3, importance: 1e9, area: 0.0, landmark: false, bbox: [p[0], p[1], p[0], p[1]] });
        }
    }
    for s in &model.streets {
        let geom = poly_unit(&s.geometry);
        let mut props = vec![("id", Value::from(s.id))];
        if s.code != 0 {
            props.push(("code", Value::UInt(s.code)));
        }
        names(&mut props, &s.names);
        if let Some(d) = s.district.and_then(|d| model.districts.get(d as usize)).and_then(|d| d.names.display()) {
            props.push(("district", Value::from(d)));
        }
        let bbox = bbox_of(geom.iter().flatten().flatten());
        out.push(Src { layer: L_STREETS, id: Some(s.id as u64), props, area: poly_area_unit(&geom), geom: SrcGeom::Poly(geom), min_zoom: STREETS_MIN_ZOOM, importance: f64::MAX, landmark: false, bbox });
    }
    for (layer, list, min_zoom) in [(L_WATER, &model.water, 6u8), (L_LANDUSE, &model.landuse, 8u8)] {
        for a in list {
            let geom = poly_unit(&a.geometry);
            let mut props = vec![("class", Value::from(a.class.as_str()))];
            names(&mut props, &a.names);
            let area = poly_area_unit(&geom);
            let bbox = bbox_of(geom.iter().flatten().flatten());
            out.push(Src { layer, id: Some(a.id as u64), props, geom: SrcGeom::Poly(geom), min_zoom, importance: area, area, landmark: false, bbox });
            let label = match (layer, a.class.as_str()) {
                (L_WATER, _) => Some(("water", 2u32, 8u8)),
                (L_LANDUSE, "park") => Some(("park", 3, 10)),
                _ => None,
            };
            if let (Some((kind, rank, mz)), Some(_), Some(p)) = (label, a.names.display(), label_point(&a.geometry)) {
                let mut props = vec![("kind", Value::from(kind))];
                names(&mut props, &a.names);
                props.push(("rank", Value::from(rank)));
                out.push(Src { layer: L_LABELS, id: Some(a.id as u64), props, geom: SrcGeom::Point(p), min_zoom: mz, importance: 1e9 / rank as f64 + area, area: 0.0, landmark: false, bbox: [p[0], p[1], p[0], p[1]] });
            }
        }
    }
    for r in &model.roads {
        let line: Vec<[f64; 2]> = r.geometry.0.iter().map(|c| unit(*c)).collect();
        if line.len() < 2 {
            continue;
        }
        let mut props = vec![("id", Value::from(r.id)), ("class", Value::from(r.class.as_str()))];
        names(&mut props, &r.names);
        props.push(("oneway", Value::Bool(r.oneway)));
        if let Some(l) = r.lanes {
            props.push(("lanes", Value::from(l as u32)));
        }
        if r.layer != 0 {
            props.push(("layer", Value::from(r.layer as i64)));
        }
        if let Some(s) = r.max_speed_kmh {
            props.push(("max_speed", Value::from((s as f64 * 10.0).round() / 10.0)));
        }
        let bbox = bbox_of(line.iter());
        let len: f64 = line.windows(2).map(|w| ((w[1][0] - w[0][0]).powi(2) + (w[1][1] - w[0][1]).powi(2)).sqrt()).sum();
        out.push(Src { layer: L_ROADS, id: Some(r.id as u64), props, geom: SrcGeom::Line(line), min_zoom: road_min_zoom(r.class), importance: road_rank(r.class) + len.min(0.5), area: 0.0, landmark: false, bbox });
    }
    let buildings: Vec<Src> = model
        .buildings
        .par_iter()
        .map(|b| {
            let geom = poly_unit(&b.footprint);
            let mut props = vec![("id", Value::from(b.id)), ("height", metres(b.height))];
            if b.min_height != 0.0 {
                props.push(("min_height", metres(b.min_height)));
            }
            props.push(("use", Value::from(b.use_.as_str())));
            names(&mut props, &b.names);
            props.push(("level", Value::from(format!("{:?}", b.level))));
            if let Some(d) = b.district.and_then(|d| model.districts.get(d as usize)) {
                if let Some(n) = d.names.display() {
                    props.push(("district", Value::from(n)));
                }
            }
            let area = poly_area_unit(&geom);
            let bbox = bbox_of(geom.iter().flatten().flatten());
            let landmark = b.names.display().is_some() || b.height >= 100.0;
            Src { layer: L_BUILDINGS, id: Some(b.id as u64), props, geom: SrcGeom::Poly(geom), min_zoom: 12, importance: area, area, landmark, bbox }
        })
        .collect();
    out.extend(buildings);
    for p in &model.pois {
        let pt = unit(p.location.0);
        let mut props = vec![("id", Value::from(p.id)), ("kind", Value::from(p.kind.as_str()))];
        names(&mut props, &p.names);
        if let Some(c) = p.capacity {
            props.push(("capacity", Value::from(c)));
        }
        out.push(Src { layer: L_POIS, id: Some(p.id as u64), props, geom: SrcGeom::Point(pt), min_zoom: 12, importance: 1.0, area: 0.0, landmark: false, bbox: [pt[0], pt[1], pt[0], pt[1]] });
        use crate::model::PoiKind;
        if matches!(p.kind, PoiKind::Landmark | PoiKind::Station) && p.names.display().is_some() {
            let mut props = vec![("kind", Value::from("landmark"))];
            names(&mut props, &p.names);
            props.push(("rank", Value::from(4u32)));
            out.push(Src { layer: L_LABELS, id: Some(p.id as u64), props, geom: SrcGeom::Point(pt), min_zoom: 12, importance: 1e9 / 4.0, area: 0.0, landmark: false, bbox: [pt[0], pt[1], pt[0], pt[1]] });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Clipping

type Ring = Vec<[f64; 2]>;

/// Sutherland–Hodgman of one ring against the box `[x0, y0, x1, y1]`.
fn clip_ring(ring: &[[f64; 2]], b: [f64; 4]) -> Ring {
    let mut pts: Ring = ring.to_vec();
    if pts.len() > 1 && pts.first() == pts.last() {
        pts.pop();
    }
    for edge in 0..4 {
        if pts.is_empty() {
            break;
        }
        let inside = |p: &[f64; 2]| match edge {
            0 => p[0] >= b[0],
            1 => p[0] <= b[2],
            2 => p[1] >= b[1],
            _ => p[1] <= b[3],
        };
        let cross = |p: [f64; 2], q: [f64; 2]| -> [f64; 2] {
            match edge {
                0 | 1 => {
                    let x = if edge == 0 { b[0] } else { b[2] };
                    let t = (x - p[0]) / (q[0] - p[0]);
                    [x, p[1] + t * (q[1] - p[1])]
                }
                _ => {
                    let y = if edge == 2 { b[1] } else { b[3] };
                    let t = (y - p[1]) / (q[1] - p[1]);
                    [p[0] + t * (q[0] - p[0]), y]
                }
            }
        };
        let mut out = Vec::with_capacity(pts.len() + 4);
        let mut prev = *pts.last().unwrap();
        let mut prev_in = inside(&prev);
        for &cur in &pts {
            let cur_in = inside(&cur);
            if cur_in {
                if !prev_in {
                    out.push(cross(prev, cur));
                }
                out.push(cur);
            } else if prev_in {
                out.push(cross(prev, cur));
            }
            prev = cur;
            prev_in = cur_in;
        }
        pts = out;
    }
    pts
}

fn ring_bbox_inside(r: &[[f64; 2]], b: [f64; 4]) -> bool {
    r.iter().all(|p| p[0] >= b[0] && p[0] <= b[2] && p[1] >= b[1] && p[1] <= b[3])
}

fn clip_polys(polys: &[Vec<Ring>], b: [f64; 4]) -> Vec<Vec<Ring>> {
    let mut out = Vec::new();
    for poly in polys {
        let mut rings = Vec::with_capacity(poly.len());
        for (i, r) in poly.iter().enumerate() {
            let c = if ring_bbox_inside(r, b) { r.clone() } else { clip_ring(r, b) };
            if c.len() < 3 || shoelace(&c).abs() < 1e-9 {
                if i == 0 {
                    break;
                }
                continue;
            }
            rings.push(c);
        }
        if !rings.is_empty() {
            out.push(rings);
        }
    }
    out
}

/// Liang–Barsky clipping of a polyline; returns the pieces inside.
fn clip_line(line: &[[f64; 2]], b: [f64; 4]) -> Vec<Ring> {
    let mut out: Vec<Ring> = Vec::new();
    let mut cur: Ring = Vec::new();
    for w in line.windows(2) {
        let (p, q) = (w[0], w[1]);
        let (dx, dy) = (q[0] - p[0], q[1] - p[1]);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        let mut visible = true;
        for (pp, qq) in [(-dx, p[0] - b[0]), (dx, b[2] - p[0]), (-dy, p[1] - b[1]), (dy, b[3] - p[1])] {
            if pp == 0.0 {
                if qq < 0.0 {
                    visible = false;
                    break;
                }
            } else {
                let r = qq / pp;
                if pp < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
            }
        }
        if !visible || t0 > t1 {
            if cur.len() >= 2 {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.clear();
            }
            continue;
        }
        let a = [p[0] + t0 * dx, p[1] + t0 * dy];
        let c = [p[0] + t1 * dx, p[1] + t1 * dy];
        if cur.last() != Some(&a) {
            if cur.len() >= 2 {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.clear();
            }
            cur.push(a);
        }
        cur.push(c);
        if t1 < 1.0 {
            if cur.len() >= 2 {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.clear();
            }
        }
    }
    if cur.len() >= 2 {
        out.push(cur);
    }
    out
}

enum WorldGeom {
    Lines(Vec<Ring>),
    Polys(Vec<Vec<Ring>>),
}

fn quantize(pts: &[[f64; 2]], ox: f64, oy: f64) -> Vec<[i64; 2]> {
    pts.iter().map(|p| [(p[0] - ox).round() as i64, (p[1] - oy).round() as i64]).collect()
}

/// Splits `g` (world units at this zoom) over the tile range `[tx0, tx1) × [ty0, ty1)`,
/// clipping with the buffer, and emits one quantized piece per tile.
fn split(g: WorldGeom, r: [u32; 4], e: f64, buf: f64, out: &mut Vec<(u32, u32, Geometry)>) {
    let [tx0, ty0, tx1, ty1] = r;
    if tx1 - tx0 == 1 && ty1 - ty0 == 1 {
        let b = [tx0 as f64 * e - buf, ty0 as f64 * e - buf, tx1 as f64 * e + buf, ty1 as f64 * e + buf];
        let (ox, oy) = (tx0 as f64 * e, ty0 as f64 * e);
        let geom = match g {
            WorldGeom::Lines(ls) => {
                let pieces: Vec<Vec<[i64; 2]>> = ls.iter().flat_map(|l| clip_line(l, b)).map(|l| quantize(&l, ox, oy)).collect();
                if pieces.is_empty() {
                    return;
                }
                Geometry::Lines(pieces)
            }
            WorldGeom::Polys(ps) => {
                let c = clip_polys(&ps, b);
                if c.is_empty() {
                    return;
                }
                let q = make_valid(c.iter().map(|p| p.iter().map(|r| quantize(r, ox, oy)).collect()).collect());
                if q.is_empty() {
                    return;
                }
                Geometry::Polygons(q)
            }
        };
        out.push((tx0, ty0, geom));
        return;
    }
    let halves = if tx1 - tx0 >= ty1 - ty0 {
        let m = tx0 + (tx1 - tx0) / 2;
        [[tx0, ty0, m, ty1], [m, ty0, tx1, ty1]]
    } else {
        let m = ty0 + (ty1 - ty0) / 2;
        [[tx0, ty0, tx1, m], [tx0, m, tx1, ty1]]
    };
    for h in halves {
        let b = [h[0] as f64 * e - buf, h[1] as f64 * e - buf, h[2] as f64 * e + buf, h[3] as f64 * e + buf];
        let part = match &g {
            WorldGeom::Lines(ls) => {
                let v: Vec<Ring> = ls.iter().flat_map(|l| clip_line(l, b)).collect();
                if v.is_empty() {
                    continue;
                }
                WorldGeom::Lines(v)
            }
            WorldGeom::Polys(ps) => {
                let v = clip_polys(ps, b);
                if v.is_empty() {
                    continue;
                }
                WorldGeom::Polys(v)
            }
        };
        split(part, h, e, buf, out);
    }
}

/// Makes quantized polygons OGC-valid on the integer grid: rounding can make a ring touch or
/// cross itself or another ring, and Sutherland–Hodgman leaves zero-width connections along the
/// clip edge for concave shapes. i_overlay's integer simplification (even-odd fill of the rings
/// as drawn, OGC extraction) resolves these without leaving the grid; rings that collapse vanish.
/// Orientation is left to the MVT encoder.
fn make_valid(polys: Vec<Vec<Vec<[i64; 2]>>>) -> Vec<Vec<Vec<[i64; 2]>>> {
    use i_overlay::core::fill_rule::FillRule;
    use i_overlay::core::overlay::IntOverlayOptions;
    use i_overlay::core::simplify::Simplify;
    use i_overlay::i_float::int::point::IntPoint;
    let opts = IntOverlayOptions { ogc: true, ..Default::default() };
    let mut out = Vec::with_capacity(polys.len());
    for p in polys {
        let shape: Vec<Vec<IntPoint>> = p
            .iter()
            .map(|r| {
                let mut c: Vec<IntPoint> = Vec::with_capacity(r.len());
                for q in r {
                    let ip = IntPoint::new(q[0] as i32, q[1] as i32);
                    if c.last() != Some(&ip) {
                        c.push(ip);
                    }
                }
                while c.len() > 1 && c.first() == c.last() {
                    c.pop();
                }
                c
            })
            .filter(|c| c.len() >= 3)
            .collect();
        if shape.is_empty() {
            continue;
        }
        for s in shape.simplify(FillRule::EvenOdd, opts) {
            let rings: Vec<Vec<[i64; 2]>> =
                s.iter().filter(|c| c.len() >= 3).map(|c| c.iter().map(|q| [q.x as i64, q.y as i64]).collect()).collect();
            if !rings.is_empty() {
                out.push(rings);
            }
        }
    }
    out
}

fn to_ls(r: &[[f64; 2]]) -> LineString<f64> {
    LineString(r.iter().map(|p| Coord { x: p[0], y: p[1] }).collect())
}

fn from_ls(l: &LineString<f64>) -> Ring {
    l.0.iter().map(|c| [c.x, c.y]).collect()
}

/// Simplification tolerance in tile units: 1/4 tile pixel (4096/256/4 = 4 units) below the
/// max zoom, 1 unit (the quantization step) at the max zoom.
fn tolerance(z: u8, max_zoom: u8, extent: u32) -> f64 {
    let px = extent as f64 / 256.0;
    if z >= max_zoom {
        1.0
    } else {
        px / 4.0
    }
}

/// Pieces of one feature at zoom z.
fn feature_pieces(s: &Src, z: u8, opts: &TileOptions) -> Vec<(u32, u32, Geometry)> {
    let e = opts.extent as f64;
    let scale = (1u64 << z) as f64 * e;
    let n = 1u32 << z;
    let buf = opts.buffer as f64;
    let tol = tolerance(z, opts.max_zoom, opts.extent);
    let range = |bb: [f64; 4]| -> [u32; 4] {
        let f = |v: f64| ((v / e).floor().max(0.0) as u64).min(n as u64 - 1) as u32;
        [f(bb[0] * scale - buf), f(bb[1] * scale - buf), f(bb[2] * scale + buf) + 1, f(bb[3] * scale + buf) + 1]
    };
    let mut out = Vec::new();
    match &s.geom {
        SrcGeom::Point(p) => {
            let (wx, wy) = (p[0] * scale, p[1] * scale);
            let tx = ((wx / e).floor().max(0.0) as u64).min(n as u64 - 1) as u32;
            let ty = ((wy / e).floor().max(0.0) as u64).min(n as u64 - 1) as u32;
            let q = [(wx - tx as f64 * e).round() as i64, (wy - ty as f64 * e).round() as i64];
            if q[0] >= 0 && q[1] >= 0 && q[0] < e as i64 && q[1] < e as i64 {
                out.push((tx, ty, Geometry::Points(vec![q])));
            } else {
                // Rounded onto the next tile's edge: clamp inside this one.
                out.push((tx, ty, Geometry::Points(vec![[q[0].clamp(0, e as i64 - 1), q[1].clamp(0, e as i64 - 1)]])));
            }
        }
        SrcGeom::Line(l) => {
            let w: Vec<[f64; 2]> = l.iter().map(|p| [p[0] * scale, p[1] * scale]).collect();
            let simplified = from_ls(&to_ls(&w).simplify(tol));
            split(WorldGeom::Lines(vec![simplified]), range(s.bbox), e, buf, &mut out);
        }
        SrcGeom::Poly(ps) => {
            let mut polys: Vec<Vec<Ring>> = Vec::with_capacity(ps.len());
            for rings in ps {
                let w: Vec<Ring> = rings.iter().map(|r| r.iter().map(|p| [p[0] * scale, p[1] * scale]).collect()).collect();
                let nverts: usize = w.iter().map(|r| r.len()).sum();
                if nverts > 16 {
                    // Topology-preserving simplification (no self-intersections introduced);
                    // epsilon is a triangle area.
                    let poly = Polygon::new(to_ls(&w[0]), w[1..].iter().map(|r| to_ls(r)).collect());
                    let sp = poly.simplify_vw_preserve(tol * tol);
                    let mut v = vec![from_ls(sp.exterior())];
                    v.extend(sp.interiors().iter().map(from_ls));
                    polys.push(v);
                } else {
                    polys.push(w);
                }
            }
            split(WorldGeom::Polys(polys), range(s.bbox), e, buf, &mut out);
        }
    }
    out
}

/// Encodes one tile from its pieces (sorted by layer), applying the density limits.
/// Returns `(gzipped tile, features written, limit hit)`.
fn encode_tile(
    z: u8,
    x: u32,
    y: u32,
    pieces: &[(u64, u32, Geometry)],
    srcs: &[Src],
    opts: &TileOptions,
) -> Result<(Vec<u8>, u64, Option<LimitHit>)> {
    let build = |keep: &dyn Fn(usize) -> bool| -> Result<(Vec<u8>, u64)> {
        let mut layers: Vec<LayerBuilder> = LAYERS.iter().map(|n| LayerBuilder::new(n, opts.extent)).collect();
        let mut count = 0u64;
        for (i, (_, si, g)) in pieces.iter().enumerate() {
            if !keep(i) {
                continue;
            }
            let s = &srcs[*si as usize];
            if layers[s.layer as usize].add_feature(s.id, &s.props, g) {
                count += 1;
            }
        }
        let raw = mvt::encode_tile(&layers);
        if count == 0 {
            return Ok((Vec::new(), 0));
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 3), flate2::Compression::default());
        enc.write_all(&raw)?;
        Ok((enc.finish()?, count))
    };
    let (gz, count) = build(&|_| true)?;
    let over = |gz: &Vec<u8>, count: u64| -> Option<&'static str> {
        if count as usize > opts.max_tile_features {
            Some("features")
        } else if gz.len() > opts.max_tile_bytes {
            Some("bytes")
        } else {
            None
        }
    };
    let Some(limit) = over(&gz, count) else { return Ok((gz, count, None)) };
    // Drop order: least important first.
    let mut order: Vec<usize> = (0..pieces.len()).filter(|&i| drop_rank(srcs[pieces[i].1 as usize].layer) != u8::MAX).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (&srcs[pieces[a].1 as usize], &srcs[pieces[b].1 as usize]);
        drop_rank(sa.layer).cmp(&drop_rank(sb.layer)).then(sa.importance.total_cmp(&sb.importance))
    });
    let mut dropped = vec![false; pieces.len()];
    let mut ndrop = 0usize;
    let mut result = (gz, count);
    while let Some(_) = over(&result.0, result.1) {
        if ndrop >= order.len() {
            break; // only undroppable features left; write what remains
        }
        let excess = (result.1 as usize).saturating_sub(opts.max_tile_features);
        let step = excess.max((order.len() - ndrop) / 8).max(1);
        for &i in &order[ndrop..(ndrop + step).min(order.len())] {
            dropped[i] = true;
        }
        ndrop = (ndrop + step).min(order.len());
        result = build(&|i| !dropped[i])?;
    }
    let hit = LimitHit {
        z,
        x,
        y,
        limit: limit.to_string(),
        features_before: count,
        features_dropped: count - result.1,
        bytes: result.0.len() as u64,
    };
    tracing::warn!(z, x, y, limit, features_before = count, dropped = hit.features_dropped, bytes = hit.bytes, "tile {z}/{x}/{y} hit the {limit} limit: dropped {} of {count} features", hit.features_dropped);
    Ok((result.0, result.1, Some(hit)))
}

/// Builds the pyramid of `model` and writes it to `path` (a PMTiles archive).
pub fn write_pmtiles(model: &CityModel, path: &Path, opts: &TileOptions) -> Result<TileSummary> {
    anyhow::ensure!(opts.max_zoom <= MAX_ZOOM_LIMIT, "max zoom {} is above {MAX_ZOOM_LIMIT}", opts.max_zoom);
    let t0 = Instant::now();
    let srcs = prepare(model);
    tracing::info!(features = srcs.len(), max_zoom = opts.max_zoom, "vector tiles: {} features projected", srcs.len());
    let bbox = model.bbox().unwrap_or([-180.0, -85.0511, 180.0, 85.0511]);
    let center = [(bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0];
    let mut writer = tiles::pmtiles::Writer::new(tiles::pmtiles::WriterOptions {
        bounds: bbox,
        center,
        center_zoom: opts.max_zoom.min(12),
        ..Default::default()
    });
    let mut limits_hit: Vec<LimitHit> = Vec::new();
    let mut tiles_per_zoom = Vec::new();
    let mut features_total = 0u64;
    for z in 0..=opts.max_zoom {
        let e = opts.extent as f64;
        let px_area = (e / 256.0) * (e / 256.0);
        let unit_to_tile2 = ((1u64 << z) as f64 * e).powi(2);
        // Pieces of every feature visible at z, in parallel over features.
        let mut pieces: Vec<(u64, u32, Geometry)> = srcs
            .par_iter()
            .enumerate()
            .filter(|(_, s)| {
                s.min_zoom <= z
                    && !(s.layer == L_BUILDINGS
                        && z < opts.max_zoom
                        && !s.landmark
                        && s.area * unit_to_tile2 < 2.0 * px_area)
            })
            .flat_map_iter(|(i, s)| {
                feature_pieces(s, z, opts)
                    .into_iter()
                    .map(move |(x, y, g)| (((x as u64) << 32) | y as u64, i as u32, g))
            })
            .collect();
        // Group by tile, layers in order, features in model order.
        pieces.par_sort_unstable_by_key(|p| (p.0, srcs[p.1 as usize].layer, p.1));
        let mut bounds = Vec::new();
        let mut start = 0;
        for i in 1..=pieces.len() {
            if i == pieces.len() || pieces[i].0 != pieces[start].0 {
                bounds.push((start, i));
                start = i;
            }
        }
        let mut ztiles = 0u64;
        // Tiles done, tiles/s and ETA of this zoom (every 2 s), then a final line.
        let mut progress = Progress::new(format!("vector tiles z{z}"), Some(bounds.len() as u64));
        for chunk in bounds.chunks(1024) {
            let encoded: Vec<Result<(u8, u32, u32, Vec<u8>, u64, Option<LimitHit>)>> = chunk
                .par_iter()
                .map(|&(a, b)| {
                    let key = pieces[a].0;
                    let (x, y) = ((key >> 32) as u32, key as u32);
                    let (gz, n, hit) = encode_tile(z, x, y, &pieces[a..b], &srcs, opts)?;
                    Ok((z, x, y, gz, n, hit))
                })
                .collect();
            for r in encoded {
                let (z, x, y, gz, n, hit) = r?;
                if let Some(h) = hit {
                    limits_hit.push(h);
                }
                if n == 0 {
                    continue;
                }
                writer.add_tile(z, x, y, gz).map_err(|e| anyhow::anyhow!("{e}"))?;
                ztiles += 1;
                features_total += n;
            }
            progress.inc(chunk.len() as u64);
        }
        progress.finish();
        tracing::info!(z, tiles = ztiles, "vector tiles: zoom {z} done, {ztiles} tiles written");
        tiles_per_zoom.push(ztiles);
    }
    let tiles_written = writer.len() as u64;
    let metadata = serde_json::json!({
        "name": model.info.name,
        "description": if model.info.label.is_empty() { format!("CityTwin model {}", model.info.name) } else { model.info.label.clone() },
        "attribution": model.info.attribution.join("; "),
        "version": "1.0.0",
        "type": "baselayer",
        "format": "pbf",
        "minzoom": 0,
        "maxzoom": opts.max_zoom,
        "bounds": bbox,
        "center": [center[0], center[1], opts.max_zoom.min(12)],
        "vector_layers": vector_layers(opts.max_zoom),
        "citytwin": {"limits_hit": limits_hit, "max_tile_bytes": opts.max_tile_bytes, "max_tile_features": opts.max_tile_features},
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let stats = writer.finish(&metadata, path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let secs = t0.elapsed().as_secs_f64();
    tracing::info!(
        tiles = tiles_written,
        bytes = stats.bytes,
        limits_hit = limits_hit.len(),
        secs = format!("{secs:.2}"),
        "vector tiles: {} tiles, {} bytes, {:.0} tiles/s",
        tiles_written,
        stats.bytes,
        tiles_written as f64 / secs.max(1e-9)
    );
    Ok(TileSummary {
        file: path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        min_zoom: 0,
        max_zoom: opts.max_zoom,
        tiles: tiles_written,
        tiles_per_zoom,
        features: features_total,
        bytes: stats.bytes,
        limits_hit,
        seconds: secs,
    })
}

/// Unused-import guard for geo traits used only in some cfgs.
#[allow(dead_code)]
fn _traits(mp: &MultiPolygon<f64>) -> Option<geo_types::Rect<f64>> {
    mp.bounding_rect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::{Building, BuildingUse, SourceRef};

    /// `n` square buildings of growing size on a row inside one z16 tile near 市府广场.
    fn model_with_buildings(n: usize) -> CityModel {
        let mut m = CityModel::empty("limits");
        let b = tiles::TileId::containing(123.4300, 41.8050, 16).bounds();
        let (lon0, lat0) = (b[0] + 0.0003, b[1] + 0.0003);
        for i in 0..n {
            let side = 0.00001 * (1.0 + i as f64 * 0.1); // ~0.8 m growing
            let x = lon0 + (i % 10) as f64 * 0.0002;
            let y = lat0 + (i / 10) as f64 * 0.0002;
            let ring = vec![(x, y), (x + side, y), (x + side, y + side), (x, y + side), (x, y)];
            m.buildings.push(Building {
                id: i as u32,
                ..Building::block(
                    SourceRef { source: 0, id: format!("b{i}") },
                    MultiPolygon(vec![Polygon::new(LineString::from(ring), vec![])]),
                    10.0,
                    BuildingUse::Residential,
                )
            });
        }
        m
    }

    #[test]
    fn density_limits_drop_the_smallest_buildings_and_report_every_tile() {
        let m = model_with_buildings(60);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pmtiles");
        let opts = TileOptions { max_zoom: 16, max_tile_features: 25, ..Default::default() };
        let s = write_pmtiles(&m, &path, &opts).unwrap();
        // Every zoom 12..=16 draws its buildings in one tile (the row spans ~0.002°, inside one
        // z16 tile of ~0.0055°); generalisation removes the sub-pixel ones below z16 first.
        assert!(!s.limits_hit.is_empty());
        let r = tiles::pmtiles::Reader::open(&path).unwrap();
        let listed = r.metadata()["citytwin"]["limits_hit"].as_array().unwrap().clone();
        assert_eq!(listed.len(), s.limits_hit.len());
        let z16: Vec<&LimitHit> = s.limits_hit.iter().filter(|h| h.z == 16).collect();
        assert_eq!(z16.len(), 1, "{:?}", s.limits_hit);
        let h = z16[0];
        assert_eq!((h.limit.as_str(), h.features_before), ("features", 60));
        let data = r.get(16, h.x, h.y).unwrap().unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&data[..]), &mut raw).unwrap();
        let t = mvt::decode(&raw).unwrap();
        let ids: Vec<u64> = t.layer("buildings").unwrap().features.iter().map(|f| f.id.unwrap()).collect();
        assert!(ids.len() <= 25);
        assert_eq!(h.features_dropped, 60 - ids.len() as u64);
        // The largest buildings (highest ids here) are the ones kept.
        assert!(ids.iter().all(|&i| i >= 60 - ids.len() as u64), "{ids:?}");
    }

    #[test]
    fn sutherland_hodgman_clips_a_square_to_the_box() {
        let sq = vec![[-10.0, -10.0], [10.0, -10.0], [10.0, 10.0], [-10.0, 10.0]];
        let c = clip_ring(&sq, [0.0, 0.0, 20.0, 20.0]);
        assert!((shoelace(&c).abs() - 100.0).abs() < 1e-9);
        let outside = clip_ring(&sq, [30.0, 30.0, 40.0, 40.0]);
        assert!(outside.len() < 3 || shoelace(&outside).abs() < 1e-9);
    }

    #[test]
    fn liang_barsky_splits_a_line_leaving_and_reentering() {
        // A U-shaped line that leaves the box through the top and comes back.
        let l = vec![[1.0, 5.0], [1.0, -5.0], [8.0, -5.0], [8.0, 5.0]];
        let parts = clip_line(&l, [0.0, 0.0, 10.0, 10.0]);
        assert_eq!(parts, vec![vec![[1.0, 5.0], [1.0, 0.0]], vec![[8.0, 0.0], [8.0, 5.0]]]);
    }

    #[test]
    fn a_polygon_split_over_tiles_keeps_its_area() {
        // A 3×2-tile rectangle offset by half a tile: pieces' areas (without buffer overlap)
        // sum to the whole.
        let e = 4096.0;
        let r = vec![vec![vec![[0.5 * e, 0.5 * e], [3.5 * e, 0.5 * e], [3.5 * e, 2.5 * e], [0.5 * e, 2.5 * e]]]];
        let mut out = Vec::new();
        split(WorldGeom::Polys(r), [0, 0, 4, 3], e, 0.0, &mut out);
        assert_eq!(out.len(), 12);
        let total: i64 = out
            .iter()
            .map(|(_, _, g)| match g {
                Geometry::Polygons(p) => mvt::ring_area2(&p[0][0]).abs(),
                _ => 0,
            })
            .sum();
        assert_eq!(total, (3.0 * e * 2.0 * e * 2.0) as i64);
    }
}
