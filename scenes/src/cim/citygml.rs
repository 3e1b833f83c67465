//! CityGML ingest (CityGML 2.0 and 3.0), streaming with quick-xml.
//!
//! Supported subset:
//! - Buildings: every `Building` (any namespace prefix; `bldg:` in 2.0 and 3.0) that is not inside
//!   another building becomes one canonical [`crate::model::Building`]; nested `BuildingPart`s
//!   (and nested `Building`s) are merged into it as parts, `BuildingInstallation`s too.
//! - Geometry: every `gml:Polygon` (also `Triangle`, `Rectangle`, `PolygonPatch`) below a LoD
//!   property (`lod1Solid`, `lod2Solid`, `lod2MultiSurface`, `lod3MultiSurface`, `lod3Geometry`,
//!   `lod0FootPrint`, …) counts for that LoD; its semantic class is the nearest enclosing
//!   boundary surface (`WallSurface`, `RoofSurface`, `GroundSurface`, `ClosureSurface`,
//!   `OuterCeilingSurface`, `OuterFloorSurface`, `Window`/`Door` of 2.0, `WindowSurface`/
//!   `DoorSurface` of 3.0 `con:`), whether reached through 2.0 `bldg:boundedBy` or 3.0
//!   `core:boundary`. The highest LoD present in the building is kept. Rings come from
//!   `gml:posList` (honouring `srsDimension`, default 3), `gml:pos` or GML 2 `gml:coordinates`.
//! - `xlink:href` references (`surfaceMember`, `geometryMember`, `member`, `baseSurface`) are
//!   resolved within the file, to a polygon or to an aggregate (`CompositeSurface`,
//!   `MultiSurface`, `Shell`, `Solid`) by `gml:id`; unresolved ones are reported in a warning.
//!   Polygons already present (the usual `lod2Solid` → boundary surface references) and
//!   geometrically identical duplicates are kept once, preferring the semantic copy.
//! - CRS: the nearest ancestor `srsName` of each polygon, else the first `srsName` of the document
//!   (usually the `gml:Envelope` of `boundedBy`), honouring the CRS's authority axis order
//!   (EPSG:6697 is lat, lon, h). AdV URNs (`urn:adv:crs:ETRS89_UTM32*DE_DHHN92_NH`) are mapped to
//!   their horizontal EPSG code, easting first. `SourceSpec::crs` overrides everything; a document
//!   with no `srsName` and no override is refused (pass `--crs`).
//! - Attributes: `measuredHeight` (2.0), `height/Height/value` (3.0), `storeysAboveGround`,
//!   `function`, `usage`, `class`, `gml:name` and generic attributes (2.0 `gen:*Attribute`, 3.0
//!   `genericAttribute`) feed the attribute rules (height only when the geometry has no 3D
//!   extent).
//! - Any `gml:id` text is accepted (ids starting with digits included); unknown namespaces and
//!   ADEs (`uro:`) are ignored, as are appearances and interior rooms/furniture.
//!
//! Non-building city objects are counted per type in a warning. The building assembly (Solid3d,
//! footprint, height, level) is shared with the CityJSON reader ([`super::cityjson::assemble`]).

use super::cityjson::{assemble, make_transform, surface_kind, RawSurface};
use crate::ingest::crs::{AxisOrder, ToWgs84};
use crate::ingest::SourceCtx;
use crate::model::SurfaceKind;
use crate::report::IngestError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Where a parsed polygon lives: `(building index or LOOSE, polygon index)`.
type PolyRef = (usize, usize);
const LOOSE: usize = usize::MAX;

struct Poly {
    lod: Option<u8>,
    kind: Option<SurfaceKind>,
    part: u32,
    srs: Option<usize>,
    rings: Vec<Vec<[f64; 3]>>,
    bad: bool,
    /// `gml:id` of the polygon and of each ring (appearance targets).
    id: Option<String>,
    ring_ids: Vec<Option<String>>,
}

/// UV lists of one texture target: (ring gml:id, one (u, v) per ring vertex).
type TargetUvs = Vec<(Option<String>, Vec<[f32; 2]>)>;

/// Appearance data collected while parsing (resolved against polygons afterwards).
#[derive(Default)]
struct Appearances {
    /// Distinct `imageURI`s, in first-seen order.
    images: Vec<String>,
    /// polygon gml:id → (image index, its rings' UVs); the first texture targeting a polygon wins.
    poly_tex: HashMap<String, (u32, TargetUvs)>,
    /// polygon gml:id → X3DMaterial diffuse colour (RGB, 1 − transparency).
    poly_colour: HashMap<String, [f32; 4]>,
    cur_image: Option<String>,
    cur_targets: Vec<(String, TargetUvs)>,
    cur_target: Option<(String, TargetUvs)>,
    cur_ring: Option<String>,
    in_texture: bool,
    in_material: bool,
    mat_colour: Option<[f32; 3]>,
    mat_transparency: f32,
    mat_targets: Vec<String>,
}

struct Href {
    target: String,
    lod: Option<u8>,
    kind: Option<SurfaceKind>,
    part: u32,
}

#[derive(Default)]
struct GmlBuilding {
    id: String,
    polys: Vec<Poly>,
    hrefs: Vec<Href>,
    attrs: HashMap<String, String>,
    parts: u32,
    bad_coords: u64,
    no_lod: u64,
}

#[derive(Default)]
struct Frame {
    local: String,
    srs: Option<usize>,
    dim: Option<usize>,
    lod: Option<u8>,
    kind: Option<SurfaceKind>,
    /// Part index when this element is the building or one of its parts.
    part: Option<u32>,
    /// `gml:id` of an aggregate geometry (CompositeSurface, MultiSurface, Shell, Solid).
    agg_id: Option<String>,
    /// `name` attribute (CityGML 2.0 generic attributes).
    name_attr: Option<String>,
}

/// `lod2Solid` → 2, `lod3MultiSurface` → 3, `lod0FootPrint` → 0; other names → None.
fn lod_of(local: &str) -> Option<u8> {
    let rest = local.strip_prefix("lod")?;
    let mut chars = rest.chars();
    let d = chars.next()?.to_digit(10)?;
    let next = chars.next()?;
    (d <= 4 && next.is_ascii_uppercase()).then_some(d as u8)
}

fn is_poly(local: &str) -> bool {
    matches!(local, "Polygon" | "Triangle" | "Rectangle" | "PolygonPatch")
}

fn is_aggregate(local: &str) -> bool {
    matches!(local, "CompositeSurface" | "MultiSurface" | "Shell" | "Solid" | "CompositeSolid" | "MultiSolid" | "Surface" | "TriangulatedSurface" | "MultiGeometry")
}

fn is_skipped_subtree(local: &str) -> bool {
    matches!(
        local,
        "interiorRoom" | "BuildingRoom" | "buildingRoom" | "interiorFurniture"
            | "BuildingFurniture" | "buildingFurniture"
    )
}

/// `urn:ogc:def:crs,crs:EPSG::6668,crs:EPSG::6697` (compound URN) → its first component.
fn normalize_srs(s: &str) -> String {
    let t = s.trim();
    if let Some(rest) = t.strip_prefix("urn:ogc:def:crs,") {
        if let Some(first) = rest.split(',').next() {
            if let Some(code) = first.rsplit(':').next() {
                if code.parse::<u32>().is_ok() {
                    return format!("EPSG:{code}");
                }
            }
        }
    }
    t.to_string()
}

fn parse_coords(text: &str, dim: usize, out: &mut Vec<[f64; 3]>) -> bool {
    let mut vals = Vec::new();
    for tok in text.split_ascii_whitespace() {
        match tok.parse::<f64>() {
            Ok(v) if v.is_finite() => vals.push(v),
            _ => return false,
        }
    }
    if !(2..=3).contains(&dim) || vals.len() % dim != 0 {
        return false;
    }
    for c in vals.chunks(dim) {
        out.push([c[0], c[1], if dim == 3 { c[2] } else { 0.0 }]);
    }
    true
}

/// GML 2 `gml:coordinates`: `x,y[,z] x,y[,z] …`.
fn parse_gml2_coordinates(text: &str, out: &mut Vec<[f64; 3]>) -> bool {
    for tuple in text.split_ascii_whitespace() {
        let v: Result<Vec<f64>, _> = tuple.split(',').map(|t| t.parse::<f64>()).collect();
        match v {
            Ok(v) if (2..=3).contains(&v.len()) && v.iter().all(|x| x.is_finite()) => {
                out.push([v[0], v[1], v.get(2).copied().unwrap_or(0.0)])
            }
            _ => return false,
        }
    }
    true
}

struct Parser {
    stack: Vec<Frame>,
    srs_names: Vec<String>,
    buildings: Vec<GmlBuilding>,
    /// Index into `buildings` of the building being read.
    cur: Option<usize>,
    poly: Option<Poly>,
    poly_id: Option<String>,
    loose: Vec<Poly>,
    ids: HashMap<String, Vec<PolyRef>>,
    text: String,
    skip_depth: Option<usize>,
    others: BTreeMap<String, u64>,
    top_objects: u64,
    /// Pending 3.0 generic attribute name (genericAttribute/XAttribute/name).
    gen_name: Option<String>,
    app: Appearances,
}

impl Parser {
    /// Appearance elements ending (see [`Appearances`]).
    fn end_appearance(&mut self, local: &str, text: &str) {
        let a = &mut self.app;
        match local {
            "imageURI" if a.in_texture => a.cur_image = Some(text.trim().to_string()),
            "textureCoordinates" => {
                if let Some((_, rings)) = a.cur_target.as_mut() {
                    let v: Vec<f32> = text.split_ascii_whitespace().filter_map(|t| t.parse::<f32>().ok()).filter(|x| x.is_finite()).collect();
                    rings.push((a.cur_ring.take(), v.chunks_exact(2).map(|c| [c[0], c[1]]).collect()));
                }
            }
            "target" if a.in_texture => {
                if let Some(t) = a.cur_target.take() {
                    a.cur_targets.push(t);
                }
            }
            "target" if a.in_material => {
                let t = text.trim().trim_start_matches('#');
                if !t.is_empty() {
                    a.mat_targets.push(t.to_string());
                }
            }
            "diffuseColor" if a.in_material => {
                let v: Vec<f32> = text.split_ascii_whitespace().filter_map(|t| t.parse().ok()).collect();
                if v.len() == 3 && v.iter().all(|x| x.is_finite()) {
                    a.mat_colour = Some([v[0].clamp(0.0, 1.0), v[1].clamp(0.0, 1.0), v[2].clamp(0.0, 1.0)]);
                }
            }
            "transparency" if a.in_material => a.mat_transparency = text.trim().parse::<f32>().ok().filter(|x| x.is_finite()).unwrap_or(0.0).clamp(0.0, 1.0),
            "ParameterizedTexture" => {
                a.in_texture = false;
                let targets = std::mem::take(&mut a.cur_targets);
                if let Some(img) = a.cur_image.take().filter(|i| !i.is_empty()) {
                    let ti = match a.images.iter().position(|x| *x == img) {
                        Some(i) => i,
                        None => {
                            a.images.push(img);
                            a.images.len() - 1
                        }
                    } as u32;
                    for (poly, rings) in targets {
                        a.poly_tex.entry(poly).or_insert((ti, rings));
                    }
                }
            }
            "X3DMaterial" => {
                a.in_material = false;
                let c = a.mat_colour.unwrap_or([0.8, 0.8, 0.8]);
                for t in std::mem::take(&mut a.mat_targets) {
                    a.poly_colour.entry(t).or_insert([c[0], c[1], c[2], 1.0 - a.mat_transparency]);
                }
            }
            _ => {}
        }
    }

    fn nearest<T: Copy>(&self, f: impl Fn(&Frame) -> Option<T>) -> Option<T> {
        self.stack.iter().rev().find_map(f)
    }

    fn start(&mut self, e: &BytesStart<'_>) {
        let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        self.text.clear();
        let mut frame = Frame { local: local.clone(), ..Default::default() };
        if self.skip_depth.is_some() {
            self.stack.push(frame);
            return;
        }
        let mut id = None;
        let mut href = None;
        let mut uri = None;
        let mut ring_attr = None;
        for a in e.attributes().with_checks(false).flatten() {
            let key = a.key.local_name();
            let value = || a.unescape_value().map(|v| v.into_owned()).unwrap_or_else(|_| String::from_utf8_lossy(&a.value).into_owned());
            match key.as_ref() {
                b"id" => id = Some(value()),
                b"href" => href = Some(value()),
                b"srsName" => {
                    let v = normalize_srs(&value());
                    let idx = match self.srs_names.iter().position(|s| *s == v) {
                        Some(i) => i,
                        None => {
                            self.srs_names.push(v);
                            self.srs_names.len() - 1
                        }
                    };
                    frame.srs = Some(idx);
                }
                b"srsDimension" => frame.dim = value().trim().parse().ok(),
                b"name" => frame.name_attr = Some(value()),
                b"uri" => uri = Some(value()),
                b"ring" => ring_attr = Some(value()),
                _ => {}
            }
        }
        // Appearances (CityGML 2.0 app:, also 3.0 where the same element names are used).
        match local.as_str() {
            "ParameterizedTexture" => {
                self.app.in_texture = true;
                self.app.cur_image = None;
                self.app.cur_targets.clear();
            }
            "X3DMaterial" => {
                self.app.in_material = true;
                self.app.mat_colour = None;
                self.app.mat_transparency = 0.0;
                self.app.mat_targets.clear();
            }
            "target" if self.app.in_texture => {
                self.app.cur_target = uri.as_deref().map(|u| (u.trim().trim_start_matches('#').to_string(), Vec::new()));
            }
            "textureCoordinates" => self.app.cur_ring = ring_attr.map(|r| r.trim().trim_start_matches('#').to_string()),
            _ => {}
        }
        let parent = self.stack.last().map(|f| f.local.as_str()).unwrap_or("");
        let top_level = matches!(parent, "cityObjectMember" | "featureMember" | "member") && self.cur.is_none();
        if top_level {
            self.top_objects += 1;
        }
        if is_skipped_subtree(&local) {
            self.skip_depth = Some(self.stack.len());
            self.stack.push(frame);
            return;
        }
        frame.lod = lod_of(&local);
        frame.kind = surface_kind(&local);
        if (local == "Building" || local == "BuildingPart") && href.is_none() {
            match self.cur {
                None => {
                    self.buildings.push(GmlBuilding { id: id.clone().unwrap_or_else(|| format!("building#{}", self.buildings.len() + 1)), ..Default::default() });
                    self.cur = Some(self.buildings.len() - 1);
                    frame.part = Some(0);
                }
                Some(b) => {
                    let bl = &mut self.buildings[b];
                    bl.parts += 1;
                    frame.part = Some(bl.parts);
                }
            }
        } else if top_level {
            *self.others.entry(local.clone()).or_default() += 1;
        }
        if local == "BuildingInstallation" {
            frame.kind = Some(SurfaceKind::Other);
        }
        if is_aggregate(&local) {
            frame.agg_id = id.clone();
        }
        self.stack.push(frame);

        if let Some(b) = self.cur {
            if let Some(h) = href {
                if matches!(local.as_str(), "surfaceMember" | "geometryMember" | "member" | "baseSurface" | "surfaceMembers")
                    || lod_of(&local).is_some()
                {
                    let h = Href {
                        target: h.trim().trim_start_matches('#').to_string(),
                        lod: self.nearest(|f| f.lod),
                        kind: self.nearest(|f| f.kind),
                        part: self.nearest(|f| f.part).unwrap_or(0),
                    };
                    self.buildings[b].hrefs.push(h);
                }
            }
        }
        if is_poly(&local) && self.poly.is_none() {
            let in_bldg = self.cur.is_some();
            self.poly = Some(Poly {
                lod: if in_bldg { self.nearest(|f| f.lod) } else { None },
                kind: self.nearest(|f| f.kind),
                part: self.nearest(|f| f.part).unwrap_or(0),
                srs: self.nearest(|f| f.srs),
                rings: Vec::new(),
                bad: false,
                id: None,
                ring_ids: Vec::new(),
            });
            self.poly_id = id.or_else(|| self.stack.iter().rev().skip(1).take(2).find_map(|f| (f.local == "patches" || f.local == "Surface").then(|| f.agg_id.clone()).flatten()));
        } else if self.poly.is_some() && local == "LinearRing" {
            if let Some(p) = self.poly.as_mut() {
                p.rings.push(Vec::new());
                p.ring_ids.push(id.clone());
            }
        }
    }

    fn end(&mut self) {
        let Some(frame) = self.stack.pop() else { return };
        let text = std::mem::take(&mut self.text);
        if let Some(d) = self.skip_depth {
            if self.stack.len() == d {
                self.skip_depth = None;
            }
            return;
        }
        let local = frame.local.as_str();
        self.end_appearance(local, &text);
        // Coordinates.
        if let Some(p) = self.poly.as_mut() {
            if matches!(local, "posList" | "pos" | "coordinates") {
                if p.rings.is_empty() {
                    p.rings.push(Vec::new());
                }
                let dim_default = if local == "pos" { text.split_ascii_whitespace().count() } else { 3 };
                let dim = frame.dim.or_else(|| self.stack.iter().rev().find_map(|f| f.dim)).unwrap_or(dim_default);
                let dim = if local == "pos" { dim_default } else { dim };
                let ring = p.rings.last_mut().expect("ring pushed above");
                let ok = if local == "coordinates" { parse_gml2_coordinates(&text, ring) } else { parse_coords(&text, dim, ring) };
                if !ok {
                    p.bad = true;
                }
            }
        }
        if is_poly(local) && self.poly.is_some() && !self.stack.iter().any(|f| is_poly(&f.local)) {
            if let Some(mut p) = self.poly.take() {
                let id = self.poly_id.take();
                p.id = id.clone();
                let r: Option<PolyRef> = match self.cur {
                    Some(b) => {
                        let bl = &mut self.buildings[b];
                        if p.bad {
                            bl.bad_coords += 1;
                            None
                        } else if p.lod.is_none() {
                            bl.no_lod += 1;
                            // Still addressable by reference.
                            bl.polys.push(p);
                            Some((b, bl.polys.len() - 1))
                        } else {
                            bl.polys.push(p);
                            Some((b, bl.polys.len() - 1))
                        }
                    }
                    None if id.is_some() && !p.bad => {
                        self.loose.push(p);
                        Some((LOOSE, self.loose.len() - 1))
                    }
                    None => None,
                };
                if let Some(r) = r {
                    if let Some(id) = id {
                        self.ids.entry(id).or_default().push(r);
                    }
                    for f in &self.stack {
                        if let Some(a) = &f.agg_id {
                            self.ids.entry(a.clone()).or_default().push(r);
                        }
                    }
                }
            }
        }
        // Attributes of the building or its parts.
        if let Some(b) = self.cur {
            let parent = self.stack.last();
            let grand = self.stack.len().checked_sub(2).and_then(|i| self.stack.get(i));
            let value = text.trim();
            let put = |k: &str, v: &str, attrs: &mut HashMap<String, String>| {
                if !v.is_empty() {
                    attrs.entry(k.to_string()).or_insert_with(|| v.to_string());
                }
            };
            let attrs = &mut self.buildings[b].attrs;
            if parent.is_some_and(|p| p.part.is_some()) {
                match local {
                    "measuredHeight" | "storeysAboveGround" | "function" | "usage" | "class" | "roofType" => put(local, value, attrs),
                    "name" => put("name", value, attrs),
                    _ => {}
                }
            }
            if local == "value" {
                if let (Some(p), Some(g)) = (parent, grand) {
                    if p.local == "Height" {
                        put("measuredHeight", value, attrs);
                    } else if p.local.ends_with("Attribute") && g.part.is_some() {
                        if let Some(n) = &p.name_attr {
                            put(n, value, attrs);
                        }
                    } else if p.local.ends_with("Attribute") && g.local == "genericAttribute" {
                        if let Some(n) = self.gen_name.take() {
                            put(&n, value, attrs);
                        }
                    }
                }
            } else if local == "name" && parent.is_some_and(|p| p.local.ends_with("Attribute")) {
                self.gen_name = Some(value.to_string());
            }
            if frame.part == Some(0) {
                self.cur = None;
            }
        }
    }
}

/// Reads a CityGML file into `ctx.model`. Returns the number of top-level city objects.
pub fn ingest(ctx: &mut SourceCtx<'_>) -> Result<u64, IngestError> {
    ctx.model.sources[ctx.index as usize].kind = "citygml".into();
    let reader = Reader::from_file(&ctx.spec.path).map_err(|e| ctx.err(format!("cannot read: {e}")))?;
    ingest_reader(ctx, reader.into_inner())
}

/// [`ingest`] from any buffered reader (`ctx.spec.path` only names the source in messages).
pub fn ingest_reader<R: std::io::BufRead>(ctx: &mut SourceCtx<'_>, input: R) -> Result<u64, IngestError> {
    ctx.model.sources[ctx.index as usize].kind = "citygml".into();
    let mut reader = Reader::from_reader(input);
    reader.config_mut().expand_empty_elements = true;
    let mut p = Parser {
        stack: Vec::new(),
        srs_names: Vec::new(),
        buildings: Vec::new(),
        cur: None,
        poly: None,
        poly_id: None,
        loose: Vec::new(),
        ids: HashMap::new(),
        text: String::new(),
        skip_depth: None,
        others: BTreeMap::new(),
        top_objects: 0,
        gen_name: None,
        app: Appearances::default(),
    };
    let mut buf = Vec::new();
    let mut saw_root = false;
    loop {
        let ev = reader.read_event_into(&mut buf);
        match ev {
            Ok(Event::Start(e)) => {
                if !saw_root {
                    saw_root = true;
                    let root = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    if root != "CityModel" {
                        return Err(ctx.err(format!("not a CityGML document (root element '{root}')")));
                    }
                }
                p.start(&e);
            }
            Ok(Event::End(_)) => p.end(),
            Ok(Event::Text(t)) => {
                if p.skip_depth.is_none() {
                    if let Ok(s) = t.decode() {
                        p.text.push_str(&s);
                    }
                }
            }
            Ok(Event::CData(t)) => {
                if let Ok(s) = t.decode() {
                    p.text.push_str(&s);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    p.text.push(c);
                } else {
                    match r.as_ref() {
                        b"amp" => p.text.push('&'),
                        b"lt" => p.text.push('<'),
                        b"gt" => p.text.push('>'),
                        b"quot" => p.text.push('"'),
                        b"apos" => p.text.push('\''),
                        _ => {}
                    }
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(ctx.err(format!("malformed XML at byte {}: {e}", reader.error_position())));
            }
        }
        buf.clear();
    }
    if !saw_root {
        return Err(ctx.err("empty document (no CityModel element)"));
    }
    if ctx.spec.crs.is_none() && p.srs_names.is_empty() {
        return Err(ctx.err("the CityGML document declares no srsName; pass its CRS with --crs (e.g. --crs EPSG:3946)"));
    }

    // One transform per srsName (or the single override).
    let mut transforms: HashMap<usize, ToWgs84> = HashMap::new();
    let override_t = match &ctx.spec.crs {
        Some(_) => Some(make_transform(ctx, None, AxisOrder::Authority, "")?),
        None => None,
    };
    let default_srs = 0usize;
    let name = ctx.name();
    let mut unresolved = 0u64;
    let buildings = std::mem::take(&mut p.buildings);
    // Texture images: resolved against the document's directory; a missing file leaves its
    // surfaces untextured (reported per building below).
    let doc_dir = std::path::Path::new(&ctx.spec.path).parent().map(|d| d.to_path_buf()).unwrap_or_default();
    let images: Vec<Option<String>> = p
        .app
        .images
        .iter()
        .map(|uri| {
            let rel = uri.strip_prefix("file://").unwrap_or(uri).replace('\\', "/");
            let path = doc_dir.join(&rel);
            path.is_file().then(|| std::fs::canonicalize(&path).unwrap_or(path).display().to_string())
        })
        .collect();
    for (bi, b) in buildings.iter().enumerate() {
        if b.bad_coords > 0 {
            ctx.report.repaired(&name, &b.id, "polygon with unparsable coordinates removed");
        }
        let lod = b.polys.iter().filter_map(|q| q.lod).chain(b.hrefs.iter().filter_map(|h| h.lod)).max();
        let Some(lod) = lod else {
            ctx.report.dropped(&name, &b.id, "building without LoD geometry");
            continue;
        };
        // The polygons at that LoD, own ones first, then references.
        let mut chosen: Vec<(PolyRef, Option<SurfaceKind>, u32)> = Vec::new();
        let mut included: HashSet<PolyRef> = HashSet::new();
        for (pi, q) in b.polys.iter().enumerate() {
            if q.lod == Some(lod) {
                chosen.push(((bi, pi), q.kind, q.part));
                included.insert((bi, pi));
            }
        }
        for h in b.hrefs.iter().filter(|h| h.lod == Some(lod)) {
            let Some(targets) = p.ids.get(&h.target) else {
                unresolved += 1;
                continue;
            };
            for &r in targets {
                if included.insert(r) {
                    let tk = if r.0 == LOOSE { p.loose[r.1].kind } else if r.0 == bi { b.polys[r.1].kind } else { buildings[r.0].polys[r.1].kind };
                    chosen.push((r, h.kind.or(tk), h.part));
                }
            }
        }
        // Geometric duplicates: keep the semantic copy.
        chosen.sort_by_key(|c| c.1.is_none_or(|k| k == SurfaceKind::Other));
        let mut keys: HashSet<Vec<[i64; 3]>> = HashSet::new();
        let mut surfaces: Vec<RawSurface> = Vec::new();
        // This building's textures (global image index → local) and the missing ones.
        let mut textures: Vec<String> = Vec::new();
        let mut tex_local: HashMap<u32, u32> = HashMap::new();
        let mut missing: Vec<String> = Vec::new();
        for (r, kind, part) in chosen {
            let q = if r.0 == LOOSE { &p.loose[r.1] } else { &buildings[r.0].polys[r.1] };
            if let Some(ext) = q.rings.first() {
                let mut key: Vec<[i64; 3]> = ext.iter().map(|c| [(c[0] * 1e7).round() as i64, (c[1] * 1e7).round() as i64, (c[2] * 1e3).round() as i64]).collect();
                key.sort_unstable();
                key.dedup();
                if !keys.insert(key) {
                    continue;
                }
            }
            // Reproject.
            let t = match &override_t {
                Some(t) => t,
                None => {
                    let srs = q.srs.unwrap_or(default_srs);
                    match transforms.entry(srs) {
                        std::collections::hash_map::Entry::Occupied(o) => &*o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            let def = p.srs_names.get(srs).cloned();
                            let hint = "the CityGML document declares no srsName; pass its CRS with --crs";
                            &*v.insert(make_transform(ctx, def.as_deref(), AxisOrder::Authority, hint)?)
                        }
                    }
                }
            };
            let mut rings = Vec::with_capacity(q.rings.len());
            for ring in &q.rings {
                let mut xs: Vec<f64> = ring.iter().map(|c| c[0]).collect();
                let mut ys: Vec<f64> = ring.iter().map(|c| c[1]).collect();
                let mut zs: Vec<f64> = ring.iter().map(|c| c[2]).collect();
                t.transform(&mut xs, &mut ys, &mut zs).map_err(|e| ctx.err_at(&b.id, e))?;
                rings.push((0..xs.len()).map(|i| [xs[i], ys[i], zs[i]]).collect());
            }
            // Appearance: a texture whose target rings all carry one UV per vertex, else none.
            let mut app = None;
            if let Some(id) = &q.id {
                let colour = p.app.poly_colour.get(id).copied();
                let mut texture = None;
                let mut uvs: Vec<Vec<[f32; 2]>> = Vec::new();
                if let Some((ti, tr)) = p.app.poly_tex.get(id) {
                    match &images[*ti as usize] {
                        None => {
                            let uri = &p.app.images[*ti as usize];
                            if !missing.contains(uri) {
                                missing.push(uri.clone());
                            }
                        }
                        Some(path) => {
                            for (ri, ring) in q.rings.iter().enumerate() {
                                let rid = q.ring_ids.get(ri).cloned().flatten();
                                let found = tr.iter().find(|(r, _)| r.is_some() && *r == rid).or(if q.rings.len() == 1 && tr.len() == 1 { tr.first() } else { None });
                                match found {
                                    Some((_, uv)) if uv.len() == ring.len() => uvs.push(uv.clone()),
                                    _ => break,
                                }
                            }
                            if uvs.len() == q.rings.len() {
                                let n = textures.len() as u32;
                                let local = *tex_local.entry(*ti).or_insert_with(|| {
                                    textures.push(path.clone());
                                    n
                                });
                                texture = Some(local);
                            } else {
                                uvs.clear();
                            }
                        }
                    }
                }
                if texture.is_some() || colour.is_some() {
                    app = Some(crate::model::SurfaceAppearance { texture, uvs, colour });
                }
            }
            surfaces.push(RawSurface { kind: kind.unwrap_or(SurfaceKind::Other), part, rings, app });
        }
        let get = |k: &str| b.attrs.get(k).cloned();
        if !missing.is_empty() {
            ctx.report.repaired(&name, &b.id, "texture image missing: its surfaces are left untextured");
            ctx.report.warn(format!("{name}: building {}: texture image(s) not found, surfaces left untextured: {}", b.id, missing.join(", ")));
        }
        if let Some(building) = assemble(ctx, &b.id, lod as f32, surfaces, textures, &get) {
            ctx.model.buildings.push(building);
        }
    }
    let no_lod: u64 = buildings.iter().map(|b| b.no_lod).sum();
    if no_lod > 0 {
        ctx.report.warn(format!("{name}: {no_lod} building polygons outside any lodN geometry property ignored"));
    }
    if unresolved > 0 {
        ctx.report.warn(format!("{name}: {unresolved} xlink:href geometry references could not be resolved within the file"));
    }
    if !p.others.is_empty() {
        let total: u64 = p.others.values().sum();
        let list: Vec<String> = p.others.iter().map(|(t, c)| format!("{t} {c}")).collect();
        ctx.report.warn(format!("{name}: {total} non-building city objects not ingested: {}", list.join(", ")));
    }
    Ok(p.top_objects)
}
