//! Native OpenStreetMap ingest: PBF (`.osm.pbf`, `.pbf`) and XML (`.osm`, `.osm.gz`), read
//! order-independently, areas assembled here.
//!
//! # Why not GDAL
//! GDAL's OSM driver needs node → way → relation order and silently ignores multipolygon relations
//! whose member ways come later in the file ("Relation N has missing ways. Ignoring it", visible
//! only with `CPL_DEBUG`). Real extracts are not always in that order (the shared test extracts are
//! node → relation → way), so OSM files are read here: everything is collected first, sorted by
//! id, and only then assembled. The result does not depend on the order of the file nor on the
//! order in which PBF blobs were decoded (blobs are decoded in parallel, results merged in blob
//! order and sorted by id).
//!
//! # Reading
//! - Nodes are kept as a sorted `Vec<(id, lon·10⁷, lat·10⁷)>` (16 bytes a node, OSM's own
//!   precision), looked up by binary search. Tags are kept only for nodes that are POIs.
//! - Ways keep their node refs in one flat arena; tags are kept only for ways that may become a
//!   feature (keys `building`, `highway`, `railway`, `landuse`, `natural`, `water`, `waterway`,
//!   `leisure`, `amenity`, `office`, `public_transport`). Untagged ways are kept because they may be
//!   members of multipolygon relations.
//! - Relations are kept when `type=multipolygon` or `boundary=administrative` with
//!   `type=boundary|multipolygon` (both with their way members), or when they carry a
//!   `building` tag (to account for them).
//! - Any read error (truncated/corrupt PBF blob, malformed XML, truncated gzip) is an
//!   [`IngestError`] naming the file and where (PBF blob number and byte offset, XML line and
//!   byte); nothing from that source is added to the model. (A PBF cut exactly at a blob
//!   boundary is indistinguishable from a complete file: the format has no element count.)
//! - Elements marked deleted/invisible (`visible="false"`, `action="delete"`) are skipped.
//!
//! # Buildings (counting rule)
//! Every way with a `building` tag and every relation with `type=multipolygon` and a `building`
//! tag is one building candidate; `building=no` is not a building. Each candidate is either kept
//! or dropped with a reason starting with `building:` in the
//! [`BuildReport`](crate::report::BuildReport), so
//! `kept + dropped("building: …")` equals the number of OSM objects carrying a `building` tag. To
//! make that hold for *every* object with a `building` key, relations with a `building` tag that
//! are not multipolygons (`type=building`, `site`, `collection`, none) are also tallied as dropped
//! ("not an area"; their member ways are buildings of their own where tagged), as are
//! `building=no` objects.
//! - Closed ways (first ref = last ref, ≥ 4 refs) → polygon; open ways, ways with missing nodes →
//!   dropped with a reason.
//! - Multipolygon relations: member ways (role `inner` → inner, any other role including the empty
//!   one → outer) are joined end to end (reversing ways as needed) into closed rings; rings with
//!   fewer than 4 points are dropped (tallied as repaired); each inner ring goes to the smallest
//!   outer containing it (an inner inside no outer is dropped, tallied as repaired). Missing member
//!   ways or nodes, open rings, or no outer ring left → the relation is dropped with a reason.
//!   Tags come from the relation only (old-style tags on the outer way are not merged); a closed
//!   outer way that itself has a `building` tag is counted as its own building as well.
//! - Footprint cleaning (all areas): repeated consecutive points removed (repaired), invalid
//!   polygons (geo's `Validation`) made valid by a boolean union with the empty polygon (repaired,
//!   reason names the defect, e.g. "self-intersecting ring"); unfixable or zero-area → dropped.
//!   Output is oriented: exteriors counter-clockwise, holes clockwise.
//! - Attributes: height via [`attrs::building_height`] (`height`, `building:levels`, `min_height`,
//!   `roof:levels`, …), use via [`attrs::building_use`], names via [`attrs::names`], `roof:shape`,
//!   source id `w123`/`r45`, level L2, no solid, no CIM model, district assigned later.
//!
//! # Roads
//! Every way with a `highway` tag is a road ([`attrs::road_class`]), area highways (`area=yes`)
//! included, as a line. Ways with `railway=rail|light_rail|subway|tram|narrow_gauge` and no
//! `highway` tag are roads of class Rail. `lanes` (first number), `oneway` (`yes`/`1`/`true`;
//! `-1` reverses the geometry and is one-way; without an `oneway` tag, `highway=motorway`,
//! `motorway_link` and `junction=roundabout|circular` are one-way), `maxspeed` (km/h number, or `N mph`; the first of
//! `a;b`; anything else → none), `layer` (clamped to i8). Unresolvable nodes are skipped
//! (repaired); fewer than 2 distinct points left → dropped.
//!
//! # Administrative boundaries
//! `boundary=administrative` relations (`type=boundary` or `multipolygon`, assembled like
//! multipolygons: roles other than `inner` are outer, node and relation members such as
//! `admin_centre`, `label`, `subarea` ignored) and closed ways (not members of such a relation)
//! become districts at `admin_level` 5–6 (or [`SourceSpec::district_admin_level`](super::SourceSpec))
//! and streets at the levels above that up to 9 (default 7–9); other levels are not read.
//! Names via [`attrs::names`] (`name`, `name:zh`, `name:en`); code ([`admin_code`]): `ref`, the
//! number of `ISO3166-2` (`LI-11` → 11), or a numeric `ref:*`. A street's district is assigned at
//! build time (code prefix, else containment of its interior point). Extracts are clipped: a
//! boundary with missing member ways or nodes, or whose rings do not close, is dropped
//! (`district: …`/`street: …` in the report) with a warning naming it.
//!
//! # Water and landuse
//! Closed ways and multipolygon relations with [`attrs::water_class`] go to `water`, else with
//! [`attrs::landuse_class`] to `landuse` (water wins). Open ways with such tags are dropped with a
//! reason.
//!
//! # POIs
//! Nodes with [`attrs::poi_kind`] → POI; ways/relations with a POI kind that form an area → a POI
//! at the area's interior point, in addition to their building/water/landuse role. Capacity from
//! `capacity`, else `beds` (leading integer).
//!
//! # Coordinates
//! OSM is WGS-84 (`EPSG:4326`); a source declared `datum = gcj02` is converted per vertex with
//! [`crate::geodesy::gcj02_to_wgs84`].

mod multipolygon;
mod pbf;
mod xml;

use super::{attrs, Datum, SourceCtx};
use crate::model::{AreaFeature, Building, Level, Poi, Road, RoadClass};
use crate::report::IngestError;
use geo::orient::{Direction, Orient};
use geo::{Area, BooleanOps, InteriorPoint, RemoveRepeatedPoints, Validation};
use geo_types::{Coord, LineString, MultiPolygon, Point, Polygon};

/// True when `path` names an OSM file this module reads (PBF, XML, gzipped XML).
pub fn is_osm(path: &str) -> bool {
    let l = path.to_ascii_lowercase();
    l.ends_with(".osm.pbf") || l.ends_with(".pbf") || l.ends_with(".osm") || l.ends_with(".osm.gz")
}

pub(crate) type Tags = Vec<(String, String)>;

/// Tag keys that make a way worth keeping its tags for.
const WAY_KEYS: &[&str] = &[
    "building",
    "highway",
    "railway",
    "landuse",
    "natural",
    "water",
    "waterway",
    "leisure",
    "amenity",
    "office",
    "public_transport",
    "boundary",
];

pub(crate) fn tag<'a>(tags: &'a [(String, String)], k: &str) -> Option<&'a str> {
    tags.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str())
}

fn getter(tags: &[(String, String)]) -> impl Fn(&str) -> Option<String> + '_ {
    move |k: &str| tag(tags, k).map(str::to_string)
}

/// Whether a way with these tag keys is kept with its tags.
pub(crate) fn way_is_interesting<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    keys.any(|k| WAY_KEYS.contains(&k))
}

/// Whether a relation is kept: multipolygons, administrative boundaries and anything with a
/// `building` tag.
pub(crate) fn relation_is_interesting(tags: &[(String, String)]) -> bool {
    tag(tags, "type") == Some("multipolygon") || tag(tags, "building").is_some() || is_admin_relation(tags)
}

/// Whether a relation's way members are kept (they are its rings): multipolygons and
/// administrative boundaries.
pub(crate) fn relation_has_rings(tags: &[(String, String)]) -> bool {
    tag(tags, "type") == Some("multipolygon") || is_admin_relation(tags)
}

/// `type=boundary` (or `multipolygon`) relation with `boundary=administrative`.
fn is_admin_relation(tags: &[(String, String)]) -> bool {
    tag(tags, "boundary") == Some("administrative") && matches!(tag(tags, "type"), Some("boundary" | "multipolygon"))
}

/// Which model layer an administrative boundary goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdminKind {
    District,
    Street,
}

/// The layer of a `boundary=administrative` object by its `admin_level`: districts at
/// `district_level` (default 5 and 6), streets at the levels above it up to 9 (default 7–9);
/// other levels (countries, provinces, neighbourhoods) are not read.
pub(crate) fn admin_kind(tags: &[(String, String)], district_level: Option<u8>) -> Option<AdminKind> {
    if tag(tags, "boundary") != Some("administrative") {
        return None;
    }
    let level: u8 = tag(tags, "admin_level")?.trim().parse().ok()?;
    let district = match district_level {
        Some(d) => level == d,
        None => (5..=6).contains(&level),
    };
    let street_from = district_level.map_or(7, |d| (d + 1).max(7));
    if district {
        Some(AdminKind::District)
    } else if (street_from..=9).contains(&level) {
        Some(AdminKind::Street)
    } else {
        None
    }
}

/// The numeric code of an administrative boundary: `ref`, then the number after the last `-`
/// of `ISO3166-2` (`LI-11` → 11), then the first `ref:*` tag (in tag order) whose value is all
/// digits.
pub(crate) fn admin_code(tags: &[(String, String)]) -> Option<u64> {
    let num = |v: &str| {
        let v = v.trim();
        (!v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.parse().ok()).flatten()
    };
    tag(tags, "ref")
        .and_then(num)
        .or_else(|| tag(tags, "ISO3166-2").and_then(|v| v.rsplit('-').next()).and_then(num))
        .or_else(|| tags.iter().filter(|(k, _)| k.starts_with("ref:")).find_map(|(_, v)| num(v)))
}

/// Whether a node is kept with its tags (it is a POI).
pub(crate) fn node_is_poi(tags: &[(String, String)]) -> bool {
    !tags.is_empty() && attrs::poi_kind(&getter(tags)).is_some()
}

#[derive(Debug, Clone)]
pub(crate) struct WayRec {
    pub id: i64,
    pub start: usize,
    pub len: u32,
    pub tags: Tags,
}

#[derive(Debug, Clone)]
pub(crate) struct RelRec {
    pub id: i64,
    pub tags: Tags,
    /// Way members: (way id, is inner).
    pub members: Vec<(i64, bool)>,
}

/// Everything read from one OSM file, in any order until [`RawOsm::finish`] sorts it by id.
#[derive(Debug, Default)]
pub(crate) struct RawOsm {
    pub nodes: Vec<(i64, i32, i32)>,
    pub poi_nodes: Vec<(i64, Tags)>,
    pub ways: Vec<WayRec>,
    pub refs: Vec<i64>,
    pub rels: Vec<RelRec>,
    pub n_nodes: u64,
    pub n_ways: u64,
    pub n_rels: u64,
}

impl RawOsm {
    /// Records a node (position in 1e-7°) and keeps its tags only when it is a POI.
    pub fn add_node(&mut self, id: i64, lon_e7: i32, lat_e7: i32, tags: Tags) {
        self.nodes.push((id, lon_e7, lat_e7));
        self.n_nodes += 1;
        if node_is_poi(&tags) {
            self.poi_nodes.push((id, tags));
        }
    }

    pub fn add_way(&mut self, id: i64, refs: impl Iterator<Item = i64>, tags: Tags) {
        let start = self.refs.len();
        self.refs.extend(refs);
        let len = (self.refs.len() - start) as u32;
        self.ways.push(WayRec { id, start, len, tags });
        self.n_ways += 1;
    }

    /// Appends another part (a decoded PBF block), keeping its ref arena offsets right.
    pub fn append(&mut self, mut other: RawOsm) {
        let base = self.refs.len();
        self.refs.append(&mut other.refs);
        self.ways.extend(other.ways.into_iter().map(|mut w| {
            w.start += base;
            w
        }));
        self.nodes.append(&mut other.nodes);
        self.poi_nodes.append(&mut other.poi_nodes);
        self.rels.append(&mut other.rels);
        self.n_nodes += other.n_nodes;
        self.n_ways += other.n_ways;
        self.n_rels += other.n_rels;
    }

    /// Sorts every table by id (stable: the first of duplicate ids wins) so lookups and output
    /// order do not depend on file or decoding order.
    pub fn finish(&mut self) {
        self.nodes.sort_by_key(|n| n.0);
        self.nodes.dedup_by_key(|n| n.0);
        self.poi_nodes.sort_by_key(|n| n.0);
        self.poi_nodes.dedup_by_key(|n| n.0);
        self.ways.sort_by_key(|w| w.id);
        self.ways.dedup_by_key(|w| w.id);
        self.rels.sort_by_key(|r| r.id);
        self.rels.dedup_by_key(|r| r.id);
    }

    pub fn way(&self, id: i64) -> Option<&WayRec> {
        self.ways.binary_search_by_key(&id, |w| w.id).ok().map(|i| &self.ways[i])
    }

    pub fn way_refs(&self, w: &WayRec) -> &[i64] {
        &self.refs[w.start..w.start + w.len as usize]
    }
}

/// Node coordinates by id, with the source's datum applied.
pub(crate) struct NodeIndex<'a> {
    nodes: &'a [(i64, i32, i32)],
    gcj02: bool,
}

impl NodeIndex<'_> {
    pub fn coord(&self, id: i64) -> Option<Coord<f64>> {
        let i = self.nodes.binary_search_by_key(&id, |n| n.0).ok()?;
        let (_, lon, lat) = self.nodes[i];
        let (x, y) = (lon as f64 / 1e7, lat as f64 / 1e7);
        Some(if self.gcj02 {
            let (x, y) = crate::geodesy::gcj02_to_wgs84(x, y);
            Coord { x, y }
        } else {
            Coord { x, y }
        })
    }
}

/// Reads the OSM file of `ctx.spec` and adds its buildings, roads, water, landuse and POIs to the
/// model. Returns the number of OSM objects (nodes + ways + relations) read.
pub fn ingest(ctx: &mut SourceCtx<'_>) -> Result<u64, IngestError> {
    let path = ctx.spec.path.clone();
    let lower = path.to_ascii_lowercase();
    let is_pbf = lower.ends_with(".pbf");
    let t0 = std::time::Instant::now();
    let raw = if is_pbf { pbf::read(&path, &ctx.name())? } else { xml::read(&path, &ctx.name())? };
    ingest_raw(ctx, raw, is_pbf, t0)
}

/// Which OSM encoding [`ingest_bytes`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsmFormat {
    /// OSM XML, uncompressed.
    Xml,
    /// OSM PBF.
    Pbf,
}

/// [`ingest`] from memory: the same reader and model building, fed `bytes` instead of the file
/// at `ctx.spec.path` (which then only names the source in messages).
pub fn ingest_bytes(ctx: &mut SourceCtx<'_>, bytes: &[u8], format: OsmFormat) -> Result<u64, IngestError> {
    let t0 = std::time::Instant::now();
    let raw = match format {
        OsmFormat::Pbf => pbf::read_from(bytes, bytes.len() as u64, &ctx.name())?,
        OsmFormat::Xml => xml::read_bytes(bytes, &ctx.name())?,
    };
    ingest_raw(ctx, raw, format == OsmFormat::Pbf, t0)
}

fn ingest_raw(ctx: &mut SourceCtx<'_>, mut raw: RawOsm, is_pbf: bool, t0: std::time::Instant) -> Result<u64, IngestError> {
    raw.finish();
    let read_secs = t0.elapsed().as_secs_f64();
    {
        let info = &mut ctx.model.sources[ctx.index as usize];
        info.kind = if is_pbf { "osm-pbf" } else { "osm-xml" }.to_string();
        info.crs = "EPSG:4326".to_string();
    }
    let total = raw.n_nodes + raw.n_ways + raw.n_rels;
    let before = (
        ctx.model.buildings.len(),
        ctx.model.roads.len(),
        ctx.model.water.len(),
        ctx.model.landuse.len(),
        ctx.model.pois.len(),
    );
    build(ctx, &raw);
    if !ctx.model.info.attribution.iter().any(|a| a.contains("OpenStreetMap")) {
        ctx.model.info.attribution.push("© OpenStreetMap contributors".to_string());
    }
    tracing::info!(
        source = %ctx.name(),
        nodes = raw.n_nodes,
        ways = raw.n_ways,
        relations = raw.n_rels,
        buildings = ctx.model.buildings.len() - before.0,
        roads = ctx.model.roads.len() - before.1,
        water = ctx.model.water.len() - before.2,
        landuse = ctx.model.landuse.len() - before.3,
        pois = ctx.model.pois.len() - before.4,
        read_s = format!("{read_secs:.2}"),
        total_s = format!("{:.2}", t0.elapsed().as_secs_f64()),
        "OSM source ingested"
    );
    Ok(total)
}

/// Why an area could not be made.
fn assembly_reason(e: &multipolygon::MpError) -> String {
    match e {
        multipolygon::MpError::MissingWay(w) => format!("multipolygon member way w{w} missing"),
        multipolygon::MpError::MissingNode(n) => format!("node n{n} missing (first one)"),
        multipolygon::MpError::OpenRing => "multipolygon ring not closed".to_string(),
        multipolygon::MpError::NoOuter => "multipolygon has no usable outer ring".to_string(),
    }
}

/// Reason categories must be stable strings (they are tally keys): details go in the feature.
fn reason_key(e: &multipolygon::MpError) -> &'static str {
    match e {
        multipolygon::MpError::MissingWay(_) => "multipolygon member way missing",
        multipolygon::MpError::MissingNode(_) => "missing nodes",
        multipolygon::MpError::OpenRing => "multipolygon ring not closed",
        multipolygon::MpError::NoOuter => "multipolygon has no usable outer ring",
    }
}

/// Polygon of a closed way, or why not.
fn way_polygon(raw: &RawOsm, nodes: &NodeIndex<'_>, w: &WayRec) -> Result<MultiPolygon<f64>, &'static str> {
    let refs = raw.way_refs(w);
    if refs.len() < 4 || refs.first() != refs.last() {
        return Err("way not closed");
    }
    let mut coords = Vec::with_capacity(refs.len());
    for r in refs {
        coords.push(nodes.coord(*r).ok_or("missing nodes")?);
    }
    Ok(MultiPolygon::new(vec![Polygon::new(LineString::new(coords), vec![])]))
}

/// Cleans and validates an area; returns the repairs done, or the reason to drop it.
fn clean_area(mut mp: MultiPolygon<f64>) -> Result<(MultiPolygon<f64>, Vec<String>), String> {
    let mut repairs = Vec::new();
    let n_before: usize = mp.0.iter().map(|p| p.exterior().0.len() + p.interiors().iter().map(|r| r.0.len()).sum::<usize>()).sum();
    mp = mp.remove_repeated_points();
    let n_after: usize = mp.0.iter().map(|p| p.exterior().0.len() + p.interiors().iter().map(|r| r.0.len()).sum::<usize>()).sum();
    if n_after != n_before {
        repairs.push("repeated consecutive points removed".to_string());
    }
    // Rings reduced below 4 points by that: drop holes, and polygons whose exterior is degenerate.
    for p in mp.0.iter_mut() {
        if p.interiors().iter().any(|r| r.0.len() < 4) {
            let ext = p.exterior().clone();
            let holes = p.interiors().iter().filter(|r| r.0.len() >= 4).cloned().collect();
            *p = Polygon::new(ext, holes);
            repairs.push("degenerate hole dropped".to_string());
        }
    }
    mp.0.retain(|p| p.exterior().0.len() >= 4);
    if mp.0.is_empty() {
        return Err("degenerate ring (fewer than 3 distinct points)".to_string());
    }
    if !mp.is_valid() {
        let defect = mp
            .0
            .iter()
            .find_map(|p| p.check_validation().err())
            .map(|pe| match pe {
                geo::algorithm::validation::InvalidPolygon::SelfIntersection(_) => "self-intersecting ring".to_string(),
                geo::algorithm::validation::InvalidPolygon::TooFewPointsInRing(_) => "too few points in ring".to_string(),
                geo::algorithm::validation::InvalidPolygon::NonFiniteCoord(..) => "non-finite coordinate".to_string(),
                geo::algorithm::validation::InvalidPolygon::InteriorRingNotContainedInExteriorRing(_) => {
                    "hole outside its exterior".to_string()
                }
                geo::algorithm::validation::InvalidPolygon::IntersectingRingsOnALine(..)
                | geo::algorithm::validation::InvalidPolygon::IntersectingRingsOnAnArea(..) => {
                    "rings intersecting each other".to_string()
                }
            })
            // Every polygon valid on its own: the multipolygon's parts overlap or share an edge.
            .unwrap_or_else(|| "overlapping polygons".to_string());
        if defect == "non-finite coordinate" {
            return Err(defect);
        }
        let fixed = mp.union(&MultiPolygon::<f64>::new(vec![]));
        if fixed.0.is_empty() || !fixed.is_valid() || fixed.unsigned_area() <= 0.0 {
            return Err(format!("invalid polygon, unfixable: {defect}"));
        }
        mp = fixed;
        repairs.push(defect);
    }
    if mp.unsigned_area() <= 0.0 {
        return Err("zero-area polygon".to_string());
    }
    Ok((mp.orient(Direction::Default), repairs))
}

fn parse_capacity(tags: &[(String, String)]) -> Option<u32> {
    ["capacity", "beds"].iter().find_map(|k| {
        let v = tag(tags, k)?;
        let digits: String = v.trim().chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    })
}

/// `maxspeed` in km/h: a number, or `N mph`; the first of `a;b`. Anything else → `None`.
pub(crate) fn parse_maxspeed(v: &str) -> Option<f32> {
    let first = v.split(';').next()?.trim().to_ascii_lowercase();
    let (num, factor) = match first.strip_suffix("mph") {
        Some(n) => (n.trim(), 1.609_344),
        None => (first.strip_suffix("km/h").or_else(|| first.strip_suffix("kmh")).unwrap_or(&first).trim(), 1.0),
    };
    let v: f32 = num.parse().ok()?;
    (v.is_finite() && v > 0.0).then_some(v * factor)
}

fn parse_lanes(v: &str) -> Option<u8> {
    v.split(';').next()?.trim().parse::<f32>().ok().filter(|l| l.is_finite() && *l >= 0.0 && *l < 256.0).map(|l| l as u8)
}

fn parse_layer(v: &str) -> i8 {
    v.split(';').next().and_then(|s| s.trim().parse::<f32>().ok()).map(|l| l.round().clamp(-128.0, 127.0) as i8).unwrap_or(0)
}

/// What an area (way or relation) is, by its tags.
struct AreaRoles {
    building: bool,
    water: Option<String>,
    landuse: Option<String>,
    poi: Option<crate::model::PoiKind>,
}

fn area_roles(tags: &[(String, String)], building_ok: bool) -> AreaRoles {
    let get = getter(tags);
    let water = attrs::water_class(&get);
    let landuse = if water.is_none() { attrs::landuse_class(&get) } else { None };
    AreaRoles { building: building_ok, water, landuse, poi: attrs::poi_kind(&get) }
}

fn build(ctx: &mut SourceCtx<'_>, raw: &RawOsm) {
    let name = ctx.name();
    let nodes = NodeIndex { nodes: &raw.nodes, gcj02: ctx.spec.datum == Datum::Gcj02 };
    let mut progress = crate::report::Progress::new("osm features", Some(raw.ways.len() as u64 + raw.rels.len() as u64));

    // POI nodes first (sorted by id).
    for (id, tags) in &raw.poi_nodes {
        let get = getter(tags);
        let Some(kind) = attrs::poi_kind(&get) else { continue };
        let Some(c) = nodes.coord(*id) else { continue };
        let source = ctx.source_ref(format!("n{id}"));
        ctx.model.pois.push(Poi {
            id: ctx.model.pois.len() as u32,
            source,
            kind,
            location: Point(c),
            names: attrs::names(&get),
            capacity: parse_capacity(tags),
        });
    }

    // Ways that are members of an administrative boundary relation are that relation's rings,
    // not boundaries of their own (their tags often repeat the relation's).
    let dl = ctx.spec.district_admin_level;
    let admin_members: std::collections::HashSet<i64> = raw
        .rels
        .iter()
        .filter(|r| is_admin_relation(&r.tags) && admin_kind(&r.tags, dl).is_some())
        .flat_map(|r| r.members.iter().map(|m| m.0))
        .collect();

    for w in &raw.ways {
        progress.inc(1);
        if w.tags.is_empty() {
            continue;
        }
        let fid = format!("w{}", w.id);
        let tags = &w.tags;
        let get = getter(tags);

        // Administrative boundaries drawn as one closed way.
        if let Some(kind) = admin_kind(tags, dl).filter(|_| !admin_members.contains(&w.id)) {
            match way_polygon(raw, &nodes, w) {
                Ok(p) => emit_admin(ctx, &fid, tags, p, kind),
                // An open boundary way is a piece of a border, not an area.
                Err("way not closed") => {}
                Err(reason) => admin_drop(ctx, &fid, tags, kind, reason, reason),
            }
        }

        // Roads.
        let is_highway = tag(tags, "highway").is_some();
        let class = attrs::road_class(&get);
        if let Some(class) = class.filter(|c| is_highway || *c == RoadClass::Rail) {
            add_road(ctx, raw, &nodes, w, &fid, class, &get);
        }

        // Areas.
        let bval = tag(tags, "building");
        if bval == Some("no") {
            ctx.report.dropped(&name, &fid, "building: building=no");
        }
        let roles = area_roles(tags, bval.is_some_and(|v| v != "no"));
        if !(roles.building || roles.water.is_some() || roles.landuse.is_some() || roles.poi.is_some()) {
            continue;
        }
        let area_only_poi = !roles.building && roles.water.is_none() && roles.landuse.is_none();
        let poly = match way_polygon(raw, &nodes, w) {
            Ok(p) => p,
            Err(reason) => {
                // A POI tag on a line (e.g. a fence tagged amenity=…) is not an area; only tally
                // what was meant to be an area.
                if !(area_only_poi && reason == "way not closed") {
                    tally_area_drop(ctx, &name, &fid, &roles, reason);
                }
                continue;
            }
        };
        emit_area(ctx, &fid, tags, poly, &roles);
    }

    for r in &raw.rels {
        progress.inc(1);
        let fid = format!("r{}", r.id);
        let tags = &r.tags;
        let bval = tag(tags, "building");
        let is_mp = tag(tags, "type") == Some("multipolygon");
        if bval == Some("no") {
            ctx.report.dropped(&name, &fid, "building: building=no");
        } else if bval.is_some() && !is_mp {
            let t = tag(tags, "type").unwrap_or("none");
            ctx.report.dropped(
                &name,
                &fid,
                &format!("building: relation type={t} is not an area (its tagged member ways count on their own)"),
            );
        }
        if is_admin_relation(tags) {
            if let Some(kind) = admin_kind(tags, dl) {
                match multipolygon::assemble(&r.members, raw, &nodes) {
                    Ok(a) => {
                        for _ in 0..a.degenerate_rings {
                            ctx.report.repaired(&name, &fid, "boundary: ring with fewer than 4 points dropped");
                        }
                        for _ in 0..a.stray_inners {
                            ctx.report.repaired(&name, &fid, "boundary: inner ring outside every outer dropped");
                        }
                        emit_admin(ctx, &fid, tags, a.polygons, kind);
                    }
                    Err(e) => admin_drop(ctx, &fid, tags, kind, reason_key(&e), &assembly_reason(&e)),
                }
            }
        }
        if !is_mp {
            continue;
        }
        let roles = area_roles(tags, bval.is_some_and(|v| v != "no"));
        if !(roles.building || roles.water.is_some() || roles.landuse.is_some() || roles.poi.is_some()) {
            continue;
        }
        let assembled = multipolygon::assemble(&r.members, raw, &nodes);
        let a = match assembled {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(feature = %fid, "{}", assembly_reason(&e));
                tally_area_drop(ctx, &name, &fid, &roles, reason_key(&e));
                continue;
            }
        };
        for _ in 0..a.degenerate_rings {
            ctx.report.repaired(&name, &fid, "multipolygon: ring with fewer than 4 points dropped");
        }
        for _ in 0..a.stray_inners {
            ctx.report.repaired(&name, &fid, "multipolygon: inner ring outside every outer dropped");
        }
        emit_area(ctx, &fid, tags, a.polygons, &roles);
    }
    progress.finish();
}

/// Drops a boundary that could not be made into an area: tallied under `district: …` or
/// `street: …`, and warned about by name (a clipped extract leaves relations with missing
/// member ways; the warning says which division is missing from the model).
fn admin_drop(ctx: &mut SourceCtx<'_>, fid: &str, tags: &[(String, String)], kind: AdminKind, key: &str, detail: &str) {
    let name = ctx.name();
    let layer = match kind {
        AdminKind::District => "district",
        AdminKind::Street => "street",
    };
    ctx.report.dropped(&name, fid, &format!("{layer}: {key}"));
    let names = attrs::names(&getter(tags));
    ctx.report.warn(format!(
        "{name}: {layer} boundary {fid} \"{}\" (admin_level {}) not read: {detail}",
        names.display().unwrap_or("unnamed"),
        tag(tags, "admin_level").unwrap_or("?")
    ));
}

/// Adds an administrative area to `districts` or `streets` (parent district assigned later, by
/// code or containment: [`crate::build::assign_street_districts`]).
fn emit_admin(ctx: &mut SourceCtx<'_>, fid: &str, tags: &[(String, String)], poly: MultiPolygon<f64>, kind: AdminKind) {
    let layer = match kind {
        AdminKind::District => "district",
        AdminKind::Street => "street",
    };
    let (mp, repairs) = match clean_area(poly) {
        Ok(x) => x,
        Err(reason) => return admin_drop(ctx, fid, tags, kind, &reason, &reason),
    };
    let name = ctx.name();
    for r in &repairs {
        ctx.report.repaired(&name, fid, &format!("{layer}: {r}"));
    }
    let names = attrs::names(&getter(tags));
    let area_km2 = crate::geodesy::area_km2(&mp);
    let code = admin_code(tags);
    let source = ctx.source_ref(fid);
    match kind {
        AdminKind::District => ctx.model.districts.push(crate::model::District {
            id: ctx.model.districts.len() as u16,
            source,
            adcode: code.and_then(|c| u32::try_from(c).ok()).unwrap_or(0),
            names,
            geometry: mp,
            area_km2,
        }),
        AdminKind::Street => ctx.model.streets.push(crate::model::Street {
            id: ctx.model.streets.len() as u32,
            source,
            code: code.unwrap_or(0),
            district: None,
            names,
            geometry: mp,
            area_km2,
        }),
    }
}

fn tally_area_drop(ctx: &mut SourceCtx<'_>, name: &str, fid: &str, roles: &AreaRoles, reason: &str) {
    if roles.building {
        ctx.report.dropped(name, fid, &format!("building: {reason}"));
    }
    if roles.water.is_some() {
        ctx.report.dropped(name, fid, &format!("water: {reason}"));
    } else if roles.landuse.is_some() {
        ctx.report.dropped(name, fid, &format!("landuse: {reason}"));
    }
    if roles.poi.is_some() && !roles.building && roles.water.is_none() && roles.landuse.is_none() {
        ctx.report.dropped(name, fid, &format!("poi: {reason}"));
    }
}

fn emit_area(ctx: &mut SourceCtx<'_>, fid: &str, tags: &[(String, String)], poly: MultiPolygon<f64>, roles: &AreaRoles) {
    let name = ctx.name();
    let (mp, repairs) = match clean_area(poly) {
        Ok(x) => x,
        Err(reason) => {
            tally_area_drop(ctx, &name, fid, roles, &reason);
            return;
        }
    };
    let layer = if roles.building {
        "building"
    } else if roles.water.is_some() {
        "water"
    } else if roles.landuse.is_some() {
        "landuse"
    } else {
        "poi"
    };
    for r in &repairs {
        ctx.report.repaired(&name, fid, &format!("{layer}: {r}"));
    }
    let get = getter(tags);
    let names = attrs::names(&get);
    if roles.building {
        let use_ = attrs::building_use(&get);
        let h = attrs::building_height(&get, use_);
        let source = ctx.source_ref(fid);
        ctx.model.buildings.push(Building {
            id: ctx.model.buildings.len() as u32,
            source,
            footprint: mp.clone(),
            height: h.height,
            min_height: h.min_height,
            height_source: h.source,
            levels: h.levels,
            use_,
            names: names.clone(),
            district: None,
            level: Level::L2,
            roof_shape: tag(tags, "roof:shape").map(str::to_string),
            solid: None,
            cim_model: None,
        });
    }
    if let Some(class) = roles.water.clone() {
        let source = ctx.source_ref(fid);
        ctx.model.water.push(AreaFeature { id: ctx.model.water.len() as u32, source, class, geometry: mp.clone(), names: names.clone() });
    } else if let Some(class) = roles.landuse.clone() {
        let source = ctx.source_ref(fid);
        ctx.model.landuse.push(AreaFeature { id: ctx.model.landuse.len() as u32, source, class, geometry: mp.clone(), names: names.clone() });
    }
    if let Some(kind) = roles.poi {
        let location = mp.interior_point().unwrap_or_else(|| Point(mp.0[0].exterior().0[0]));
        let source = ctx.source_ref(fid);
        ctx.model.pois.push(Poi { id: ctx.model.pois.len() as u32, source, kind, location, names, capacity: parse_capacity(tags) });
    }
}

fn add_road(
    ctx: &mut SourceCtx<'_>,
    raw: &RawOsm,
    nodes: &NodeIndex<'_>,
    w: &WayRec,
    fid: &str,
    class: RoadClass,
    get: &dyn Fn(&str) -> Option<String>,
) {
    let name = ctx.name();
    let refs = raw.way_refs(w);
    let mut coords: Vec<Coord<f64>> = Vec::with_capacity(refs.len());
    let mut missing = 0usize;
    for r in refs {
        match nodes.coord(*r) {
            Some(c) => {
                if coords.last() != Some(&c) {
                    coords.push(c);
                }
            }
            None => missing += 1,
        }
    }
    let kind = if class == RoadClass::Rail { "rail" } else { "road" };
    if coords.len() < 2 {
        ctx.report.dropped(&name, fid, &format!("{kind}: fewer than 2 resolvable nodes"));
        return;
    }
    if missing > 0 {
        ctx.report.repaired(&name, fid, &format!("{kind}: unresolvable nodes skipped"));
    }
    let ow = get("oneway").unwrap_or_default().to_ascii_lowercase();
    let reverse = ow == "-1";
    // Implied one-way (OSM wiki "Key:oneway"): motorways, motorway links and roundabouts are one-way
    // along the way's direction unless tagged otherwise.
    let implied = ow.is_empty()
        && (matches!(get("highway").as_deref(), Some("motorway" | "motorway_link"))
            || matches!(get("junction").as_deref(), Some("roundabout" | "circular")));
    let oneway = reverse || implied || matches!(ow.as_str(), "yes" | "1" | "true");
    if reverse {
        coords.reverse();
    }
    let source = ctx.source_ref(fid);
    ctx.model.roads.push(Road {
        id: ctx.model.roads.len() as u32,
        source,
        class,
        geometry: LineString::new(coords),
        names: attrs::names(get),
        lanes: get("lanes").and_then(|v| parse_lanes(&v)),
        oneway,
        max_speed_kmh: get("maxspeed").and_then(|v| parse_maxspeed(&v)),
        layer: get("layer").map(|v| parse_layer(&v)).unwrap_or(0),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxspeed_forms() {
        assert_eq!(parse_maxspeed("50"), Some(50.0));
        assert!((parse_maxspeed("30 mph").unwrap() - 48.28).abs() < 0.01);
        assert_eq!(parse_maxspeed("50;70"), Some(50.0));
        assert_eq!(parse_maxspeed("signals"), None);
        assert_eq!(parse_maxspeed("RU:urban"), None);
    }

    #[test]
    fn bowtie_is_repaired() {
        let ring = LineString::from(vec![(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]);
        let mp = MultiPolygon::new(vec![Polygon::new(ring, vec![])]);
        let (fixed, repairs) = clean_area(mp).expect("repairable");
        assert!(fixed.is_valid());
        assert_eq!(repairs, vec!["self-intersecting ring".to_string()]);
    }

    #[test]
    fn repeated_points_removed() {
        let ring = LineString::from(vec![(0.0, 0.0), (1.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]);
        let (fixed, repairs) = clean_area(MultiPolygon::new(vec![Polygon::new(ring, vec![])])).unwrap();
        assert_eq!(fixed.0[0].exterior().0.len(), 5);
        assert_eq!(repairs, vec!["repeated consecutive points removed".to_string()]);
    }

    fn with_ctx<T>(name: &str, f: impl FnOnce(&mut SourceCtx<'_>) -> T) -> (T, crate::CityModel) {
        let spec = crate::ingest::SourceSpec::new(name);
        let mut model = crate::CityModel::empty("t");
        model.sources.push(crate::model::SourceInfo { path: name.into(), kind: String::new(), crs: String::new(), datum: None });
        let mut report = crate::report::BuildReport::default();
        let r = f(&mut SourceCtx { index: 0, spec: &spec, model: &mut model, report: &mut report });
        (r, model)
    }

    #[test]
    fn ingest_bytes_reads_xml_and_names_pbf_damage() {
        let xml = br#"<osm version="0.6">
 <node id="1" lat="41.800" lon="123.400"/><node id="2" lat="41.800" lon="123.401"/>
 <node id="3" lat="41.801" lon="123.401"/><node id="4" lat="41.801" lon="123.400"/>
 <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><nd ref="1"/><tag k="building" v="yes"/></way>
</osm>"#;
        let (n, model) = with_ctx("mem.osm", |ctx| ingest_bytes(ctx, xml, OsmFormat::Xml));
        assert_eq!(n.unwrap(), 5, "4 nodes + 1 way");
        assert_eq!(model.buildings.len(), 1);
        assert_eq!(model.sources[0].kind, "osm-xml");
        // A PBF cut inside its first blob header: the error names the file, blob and byte.
        let (r, _) = with_ctx("mem.osm.pbf", |ctx| ingest_bytes(ctx, &[0, 0, 0, 14, 10, 9, b'O'], OsmFormat::Pbf));
        let e = r.unwrap_err();
        assert_eq!(e.file, "mem.osm.pbf");
        assert!(e.message.contains("PBF blob #0 starting at byte 0"), "{}", e.message);
    }

    #[test]
    fn admin_levels_and_codes() {
        let t = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let lvl = |l: &str| t(&[("boundary", "administrative"), ("admin_level", l)]);
        assert_eq!(admin_kind(&lvl("6"), None), Some(AdminKind::District));
        assert_eq!(admin_kind(&lvl("5"), None), Some(AdminKind::District));
        assert_eq!(admin_kind(&lvl("8"), None), Some(AdminKind::Street));
        assert_eq!(admin_kind(&lvl("4"), None), None);
        assert_eq!(admin_kind(&lvl("10"), None), None);
        assert_eq!(admin_kind(&t(&[("boundary", "political"), ("admin_level", "8")]), None), None);
        assert_eq!(admin_kind(&lvl("7"), Some(7)), Some(AdminKind::District));
        assert_eq!(admin_kind(&lvl("6"), Some(7)), None);
        assert_eq!(admin_kind(&lvl("8"), Some(7)), Some(AdminKind::Street));
        assert_eq!(admin_kind(&lvl("7"), Some(4)), Some(AdminKind::Street));
        assert_eq!(admin_code(&t(&[("ref", "210102"), ("ISO3166-2", "CN-LN")])), Some(210102));
        assert_eq!(admin_code(&t(&[("ref", "AB"), ("ISO3166-2", "LI-11")])), Some(11));
        assert_eq!(admin_code(&t(&[("ISO3166-2", "CN-LN"), ("ref:nuts", "AT3"), ("ref:gemeinde", "80201")])), Some(80201));
        assert_eq!(admin_code(&t(&[("name", "x")])), None);
    }

    #[test]
    fn osm_paths() {
        assert!(is_osm("a/porto.osm.pbf"));
        assert!(is_osm("x.OSM.GZ"));
        assert!(is_osm("x.osm"));
        assert!(!is_osm("x.geojson"));
    }
}
