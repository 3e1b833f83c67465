//! Road-network routing for dispatch: a directed graph over the model's roads, snapping of points
//! onto it, travel times to an incident, the k nearest units by travel time, and routes that units
//! can move along. Pure library: no I/O, no HTTP; the live-operations layer calls it.
//!
//! # Graph rules
//!
//! * **Drivable roads**: every class except `path` and `rail` (and `other` unless
//!   [`RoutingOptions::include_other`] is false). Roads with a non-finite coordinate or fewer than
//!   two distinct points are skipped and counted in the [`GraphReport`].
//! * **Nodes** are vertices shared by roads: a vertex is a junction when it ends a road or is used
//!   by two or more road vertices. Coordinates are merged on a [`SNAP_GRID_M`] (0.5 m) grid in a
//!   local metric frame, so float noise between sources does not split a junction: two vertices
//!   merge when their coordinates are bit-identical, or when they lie within 0.5 m **and** on the
//!   same `layer`. Roads on different layers (a bridge over a street) therefore only connect at a
//!   vertex they really share (OSM: the same node), and crossing lines without a shared vertex
//!   never connect — no crossings are guessed.
//! * **Edges** are the runs of a road between consecutive junctions (interior vertices are kept as
//!   geometry). Length: the sum of haversine segment lengths (mean Earth radius 6,371,008.8 m).
//!   Travel time: length / speed with speed = (`max_speed_kmh` if the source gives one, else
//!   [`RoadClass::default_speed_kmh`], the CJJ 37 design speed of the class) ×
//!   [`RoutingOptions::speed_factor`] (default [`DEFAULT_SPEED_FACTOR`] = 0.67, the HCM 2010 urban
//!   street LOS B/C boundary: travel speed 67 % of the free-flow speed). Sources: see
//!   docs/ARCHITECTURE.md, "Routing".
//! * **Direction**: a `oneway` road has one arc along its geometry (OSM `oneway=-1` is already
//!   reversed at ingest), any other road an arc each way. No turn restrictions or turn costs;
//!   U-turns are possible at nodes, not in the middle of an edge.
//! * **Components**: strongly connected components (Kosaraju). Routing works on the largest one by
//!   road length (the "main component"): points snap only to its edges, so every snapped pair
//!   has a route. The report gives its share of the drivable length and the weak components.
//!
//! # Snapping
//!
//! A lon/lat snaps to the nearest segment of a main-component edge (an rstar R*-tree over the
//! segments in a local equirectangular frame around the network's centre) at most
//! [`RoutingOptions::max_snap_m`] away; a point farther away is an error naming it. A snapped
//! point enters/leaves its edge mid-way: leaving towards either end allowed by the edge's
//! direction costs the matching fraction of the edge's time.

use crate::geodesy;
use crate::model::{CityModel, RoadClass};
use geo_types::{Coord, LineString};
use rstar::primitives::{GeomWithData, Line};
use rstar::RTree;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// Vertices of different roads closer than this (metres, same layer) are one node.
pub const SNAP_GRID_M: f64 = 0.5;
/// Travel speed as a fraction of the free-flow speed (HCM 2010 urban streets, LOS B/C boundary).
pub const DEFAULT_SPEED_FACTOR: f64 = 0.67;
/// How far (metres) a point may lie from the routable network and still snap onto it.
pub const DEFAULT_MAX_SNAP_M: f64 = 1_000.0;
/// A snapped point this close (metres) to an edge's end is at that node: it can leave or be
/// reached through it whatever the edge's direction.
const AT_NODE_M: f64 = 1e-3;

/// How the graph is built and queried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingOptions {
    /// Multiplies every free-flow speed (explicit limit or class default).
    pub speed_factor: f64,
    /// The largest distance, metres, between a point and the network for it to snap.
    pub max_snap_m: f64,
    /// Whether roads of class `other` (unknown `highway` values, untyped GIS road layers) are
    /// driven on (at 20 km/h free flow).
    pub include_other: bool,
}

impl Default for RoutingOptions {
    fn default() -> Self {
        RoutingOptions { speed_factor: DEFAULT_SPEED_FACTOR, max_snap_m: DEFAULT_MAX_SNAP_M, include_other: true }
    }
}

/// Free-flow speed in km/h of a road class for vehicles, `None` when vehicles do not use it.
pub fn vehicle_speed_kmh(class: RoadClass, opts: &RoutingOptions) -> Option<f64> {
    match class {
        RoadClass::Path | RoadClass::Rail => None,
        RoadClass::Other if !opts.include_other => None,
        c => Some(c.default_speed_kmh() as f64),
    }
}

/// Why routing could not answer. Every variant names what was asked and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoutingError {
    #[error("model '{model}' has no roads: there is no road network to route on")]
    NoRoads { model: String },
    #[error("model '{model}' has {roads} roads but none a vehicle can drive ({detail})")]
    NoDrivableRoads { model: String, roads: usize, detail: String },
    #[error(
        "model '{model}': no road can be driven both to and from another ({edges} edges, all one-way without a way \
         back): nothing to route on"
    )]
    NoRoutableNetwork { model: String, edges: usize },
    #[error("{what} ({lon}, {lat}) is not a WGS-84 longitude/latitude")]
    InvalidCoordinate { what: String, lon: f64, lat: f64 },
    #[error(
        "{what} ({lon:.6}, {lat:.6}) is {distance_m:.0} m from the nearest road of the routable network \
         (limit {limit_m:.0} m): outside the road network"
    )]
    OutsideNetwork { what: String, lon: f64, lat: f64, distance_m: f64, limit_m: f64 },
    #[error("no route from ({from_lon:.6}, {from_lat:.6}) to ({to_lon:.6}, {to_lat:.6}) on the road network")]
    NoRoute { from_lon: f64, from_lat: f64, to_lon: f64, to_lat: f64 },
}

/// What [`RoadGraph::from_model`] did with the roads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphReport {
    pub roads_total: usize,
    pub roads_used: usize,
    /// reason → roads left out (`path`, `rail`, `other`, `non-finite coordinate`, `degenerate`).
    pub roads_skipped: BTreeMap<String, usize>,
    pub nodes: usize,
    /// Junction-to-junction runs (each drawn once).
    pub edges: usize,
    /// Directed arcs (one per oneway edge, two per two-way edge).
    pub arcs: usize,
    pub oneway_edges: usize,
    /// Sum of the used roads' lengths, metres.
    pub drivable_length_m: f64,
    pub strong_components: usize,
    pub main_component_nodes: usize,
    pub main_component_edges: usize,
    pub main_component_length_m: f64,
    /// `main_component_length_m / drivable_length_m`.
    pub main_component_fraction: f64,
    pub weak_components: usize,
    /// Largest weakly connected component's share of the drivable length.
    pub largest_weak_fraction: f64,
    pub build_ms: f64,
}

#[derive(Debug, Clone)]
struct Edge {
    from: u32,
    to: u32,
    road: u32,
    class: RoadClass,
    oneway: bool,
    length_m: f64,
    time_s: f64,
    /// Range into `RoadGraph::geom` / `cum`.
    g0: u32,
    g1: u32,
}

#[derive(Debug, Clone, Copy)]
struct Arc {
    /// The other end: head for out-arcs, tail for in-arcs.
    node: u32,
    edge: u32,
    /// True when the arc runs along the edge's geometry (from → to).
    forward: bool,
    time_s: f64,
    length_m: f64,
}

/// A point snapped onto the routable network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Snap {
    /// Edge index in the graph.
    pub edge: u32,
    /// Model road id ([`crate::model::Road::id`]) of the edge.
    pub road: u32,
    /// Metres from the edge's start (along its geometry).
    pub offset_m: f64,
    /// The snapped point.
    pub lon: f64,
    pub lat: f64,
    /// Distance from the query point to the snapped point, metres.
    pub distance_m: f64,
}

/// One candidate ranked by travel time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked<I> {
    pub id: I,
    /// Travel time over the network from the candidate's snapped position to the target's.
    pub eta_s: f64,
    /// Length of that fastest route, metres.
    pub distance_m: f64,
    /// How far the candidate stood from the road it was snapped to, metres.
    pub snap_m: f64,
}

/// A stretch of a route on one road (consecutive edges of one road, or of one named road of one
/// class, are merged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leg {
    /// Model road id of the first edge of the leg.
    pub road: u32,
    pub name: Option<String>,
    pub class: RoadClass,
    pub length_m: f64,
    pub duration_s: f64,
    /// Seconds from the route's start at which the leg begins.
    pub start_s: f64,
}

/// A route between two snapped points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// From the snapped start to the snapped end, lon/lat.
    pub geometry: LineString<f64>,
    pub length_m: f64,
    pub duration_s: f64,
    pub legs: Vec<Leg>,
    /// Seconds from the start at each vertex of `geometry` (non-decreasing, first 0, last
    /// `duration_s`).
    pub vertex_time_s: Vec<f64>,
    /// Metres from the start at each vertex of `geometry`.
    pub vertex_dist_m: Vec<f64>,
    pub from: Snap,
    pub to: Snap,
}

impl Route {
    /// Where a unit that left `elapsed_s` seconds ago is: `(lon, lat, heading)`, heading in degrees
    /// clockwise from north along the current segment. Before the start: the start; after the end:
    /// the destination (with the last segment's heading).
    pub fn position_at(&self, elapsed_s: f64) -> (f64, f64, f64) {
        let pts = &self.geometry.0;
        let n = pts.len();
        if n == 0 {
            return (self.to.lon, self.to.lat, 0.0);
        }
        if n == 1 {
            return (pts[0].x, pts[0].y, 0.0);
        }
        let t = if elapsed_s.is_finite() { elapsed_s.clamp(0.0, self.duration_s) } else { self.duration_s };
        // segment i (pts[i] → pts[i+1]) with time[i] < t ≤ time[i+1] (or the first one at t = 0)
        let i = self.vertex_time_s.partition_point(|&v| v < t).saturating_sub(1).min(n - 2);
        let (t0, t1) = (self.vertex_time_s[i], self.vertex_time_s[i + 1]);
        let f = if t1 > t0 { ((t - t0) / (t1 - t0)).clamp(0.0, 1.0) } else { 1.0 };
        let (a, b) = (pts[i], pts[i + 1]);
        // heading of the segment, or of the nearest segment with a length
        let mut h = None;
        for j in (i..n - 1).chain((0..i).rev()) {
            if let Some(v) = bearing_deg(pts[j], pts[j + 1]) {
                h = Some(v);
                break;
            }
        }
        (a.x + f * (b.x - a.x), a.y + f * (b.y - a.y), h.unwrap_or(0.0))
    }
}

/// Bearing from a to b, degrees clockwise from north in [0, 360), `None` for coincident points.
fn bearing_deg(a: Coord<f64>, b: Coord<f64>) -> Option<f64> {
    let lat = (0.5 * (a.y + b.y)).to_radians();
    let dx = (b.x - a.x) * lat.cos();
    let dy = b.y - a.y;
    if dx == 0.0 && dy == 0.0 {
        return None;
    }
    Some(dx.atan2(dy).to_degrees().rem_euclid(360.0))
}

/// Great-circle distance, metres.
fn hav(a: Coord<f64>, b: Coord<f64>) -> f64 {
    geodesy::haversine_m((a.x, a.y), (b.x, b.y))
}

/// Local equirectangular frame (metres) around the network's centre, for snapping.
#[derive(Debug, Clone, Copy)]
struct Frame {
    lon0: f64,
    lat0: f64,
    kx: f64,
    ky: f64,
}

impl Frame {
    fn xy(&self, c: Coord<f64>) -> [f64; 2] {
        [(c.x - self.lon0) * self.kx, (c.y - self.lat0) * self.ky]
    }
}

#[derive(Clone, Copy, PartialEq)]
struct HeapItem {
    key: f64,
    node: u32,
}
impl Eq for HeapItem {}
impl Ord for HeapItem {
    fn cmp(&self, o: &Self) -> Ordering {
        // min-heap on key, then node for determinism
        o.key.total_cmp(&self.key).then_with(|| o.node.cmp(&self.node))
    }
}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// A bounded reverse Dijkstra towards one snapped target over the in-arcs: per node the
/// travel time to the target and the length of that route. Shared by
/// [`RoadGraph::travel_times_to`] and [`RoadGraph::nearest_units`].
struct ReverseSearch {
    time: Vec<f64>,
    len: Vec<f64>,
    heap: BinaryHeap<HeapItem>,
}

impl ReverseSearch {
    fn new(g: &RoadGraph, target: &Snap) -> ReverseSearch {
        let n = g.nodes.len();
        let mut r = ReverseSearch { time: vec![f64::INFINITY; n], len: vec![f64::INFINITY; n], heap: BinaryHeap::new() };
        for (v, t, l, _) in g.arrivals(target) {
            if t < r.time[v as usize] {
                r.time[v as usize] = t;
                r.len[v as usize] = l;
                r.heap.push(HeapItem { key: t, node: v });
            }
        }
        r
    }

    /// Settles the next node within `max_time_s` (relaxing its in-arcs) and returns it with its
    /// time; `None` when no node within the bound is left.
    fn settle(&mut self, g: &RoadGraph, max_time_s: f64) -> Option<(u32, f64)> {
        while let Some(HeapItem { key, node }) = self.heap.pop() {
            if key > self.time[node as usize] {
                continue;
            }
            if key > max_time_s {
                return None;
            }
            for a in g.inc(node) {
                let nt = key + a.time_s;
                if nt < self.time[a.node as usize] && nt <= max_time_s {
                    self.time[a.node as usize] = nt;
                    self.len[a.node as usize] = self.len[node as usize] + a.length_m;
                    self.heap.push(HeapItem { key: nt, node: a.node });
                }
            }
            return Some((node, key));
        }
        None
    }
}

type SegIndex = RTree<GeomWithData<Line<[f64; 2]>, (u32, u32)>>;

/// The directed road graph of a model. Build once per model ([`RoadGraph::from_model`]); all
/// queries take `&self` and may run in parallel.
pub struct RoadGraph {
    opts: RoutingOptions,
    nodes: Vec<Coord<f64>>,
    edges: Vec<Edge>,
    geom: Vec<Coord<f64>>,
    /// Metres from the edge's start at each vertex of `geom`.
    cum: Vec<f64>,
    out_start: Vec<u32>,
    out_arcs: Vec<Arc>,
    in_start: Vec<u32>,
    in_arcs: Vec<Arc>,
    /// Strong component of each node.
    comp: Vec<u32>,
    main: u32,
    frame: Frame,
    tree: SegIndex,
    /// Fastest speed on the graph, m/s (A* heuristic).
    vmax: f64,
    road_names: HashMap<u32, (Option<String>, RoadClass)>,
    report: GraphReport,
}

impl std::fmt::Debug for RoadGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoadGraph").field("report", &self.report).finish_non_exhaustive()
    }
}

/// Assigns node ids to vertices: bit-identical coordinates, else same layer within 0.5 m.
struct NodeMerger {
    frame: Frame,
    exact: HashMap<(u64, u64), u32>,
    cells: HashMap<(i64, i64, i8), Vec<u32>>,
    coords: Vec<Coord<f64>>,
}

impl NodeMerger {
    fn id(&mut self, c: Coord<f64>, layer: i8) -> u32 {
        let key = (c.x.to_bits(), c.y.to_bits());
        if let Some(&id) = self.exact.get(&key) {
            return id;
        }
        let [x, y] = self.frame.xy(c);
        let (cx, cy) = ((x / SNAP_GRID_M).floor() as i64, (y / SNAP_GRID_M).floor() as i64);
        let mut best: Option<(f64, u32)> = None;
        for dx in -1..=1 {
            for dy in -1..=1 {
                if let Some(list) = self.cells.get(&(cx + dx, cy + dy, layer)) {
                    for &id in list {
                        let [px, py] = self.frame.xy(self.coords[id as usize]);
                        let d = ((px - x).powi(2) + (py - y).powi(2)).sqrt();
                        if d <= SNAP_GRID_M && best.is_none_or(|(bd, bid)| (d, id) < (bd, bid)) {
                            best = Some((d, id));
                        }
                    }
                }
            }
        }
        let id = match best {
            Some((_, id)) => id,
            None => {
                let id = self.coords.len() as u32;
                self.coords.push(c);
                self.cells.entry((cx, cy, layer)).or_default().push(id);
                id
            }
        };
        self.exact.insert(key, id);
        id
    }
}

impl RoadGraph {
    /// Builds the graph with the default options.
    pub fn from_model(model: &CityModel) -> Result<(RoadGraph, GraphReport), RoutingError> {
        Self::from_model_with(model, RoutingOptions::default())
    }

    /// Builds the graph (see the module documentation for the rules). Errors when the model has no
    /// road a vehicle can drive.
    pub fn from_model_with(model: &CityModel, opts: RoutingOptions) -> Result<(RoadGraph, GraphReport), RoutingError> {
        let t0 = std::time::Instant::now();
        let mut report = GraphReport { roads_total: model.roads.len(), ..Default::default() };
        if model.roads.is_empty() {
            return Err(RoutingError::NoRoads { model: model.info.name.clone() });
        }
        let mut progress = crate::report::Progress::new("road graph: roads", Some(model.roads.len() as u64));
        // 1. drivable roads and their cleaned coordinates
        let mut used: Vec<(usize, f64)> = Vec::new(); // (road index, speed m/s)
        let (mut w, mut s, mut e, mut n) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for (ri, r) in model.roads.iter().enumerate() {
            let skip = |report: &mut GraphReport, why: &str| *report.roads_skipped.entry(why.to_string()).or_default() += 1;
            let Some(class_kmh) = vehicle_speed_kmh(r.class, &opts) else {
                skip(&mut report, r.class.as_str());
                continue;
            };
            if r.geometry.0.iter().any(|c| !c.x.is_finite() || !c.y.is_finite() || c.x.abs() > 180.0 || c.y.abs() > 90.0) {
                skip(&mut report, "non-finite or out-of-range coordinate");
                continue;
            }
            let kmh = match r.max_speed_kmh {
                Some(v) if v.is_finite() && v > 0.0 => v as f64,
                _ => class_kmh,
            };
            let mps = kmh / 3.6 * opts.speed_factor;
            if !(mps > 0.0 && mps.is_finite()) {
                skip(&mut report, "no positive speed");
                continue;
            }
            for c in &r.geometry.0 {
                w = w.min(c.x);
                e = e.max(c.x);
                s = s.min(c.y);
                n = n.max(c.y);
            }
            used.push((ri, mps));
        }
        if used.is_empty() {
            let detail = report.roads_skipped.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ");
            return Err(RoutingError::NoDrivableRoads { model: model.info.name.clone(), roads: model.roads.len(), detail });
        }
        let (lon0, lat0) = (0.5 * (w + e), 0.5 * (s + n));
        let (kx, ky) = geodesy::metres_per_degree(lat0);
        let frame = Frame { lon0, lat0, kx, ky };

        // 2. vertex → node (merged), usage counts
        let mut merger = NodeMerger { frame, exact: HashMap::new(), cells: HashMap::new(), coords: Vec::new() };
        let mut road_nodes: Vec<(usize, f64, Vec<(u32, Coord<f64>)>)> = Vec::with_capacity(used.len());
        let mut uses: Vec<u32> = Vec::new();
        for &(ri, mps) in &used {
            let r = &model.roads[ri];
            let mut v: Vec<(u32, Coord<f64>)> = Vec::with_capacity(r.geometry.0.len());
            for &c in &r.geometry.0 {
                let id = merger.id(c, r.layer);
                if v.last().map(|l| l.0) != Some(id) {
                    v.push((id, c));
                }
            }
            progress.inc(1);
            if v.len() < 2 {
                *report.roads_skipped.entry("degenerate (fewer than 2 distinct points)".into()).or_default() += 1;
                continue;
            }
            uses.resize(merger.coords.len(), 0);
            let last = v.len() - 1;
            for (k, &(id, _)) in v.iter().enumerate() {
                uses[id as usize] += if k == 0 || k == last { 2 } else { 1 };
            }
            road_nodes.push((ri, mps, v));
        }
        progress.finish();
        if road_nodes.is_empty() {
            let detail = report.roads_skipped.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ");
            return Err(RoutingError::NoDrivableRoads { model: model.info.name.clone(), roads: model.roads.len(), detail });
        }
        report.roads_used = road_nodes.len();

        // 3. junctions → graph nodes; runs → edges
        let mut node_of: Vec<u32> = vec![u32::MAX; merger.coords.len()];
        let mut nodes: Vec<Coord<f64>> = Vec::new();
        let mut edges: Vec<Edge> = Vec::new();
        let mut geom: Vec<Coord<f64>> = Vec::new();
        let mut cum: Vec<f64> = Vec::new();
        let mut road_names: HashMap<u32, (Option<String>, RoadClass)> = HashMap::new();
        let mut vmax: f64 = 0.0;
        for (ri, mps, v) in &road_nodes {
            let r = &model.roads[*ri];
            vmax = vmax.max(*mps);
            road_names.insert(r.id, (r.names.display().map(str::to_string), r.class));
            fn node(id: u32, node_of: &mut [u32], nodes: &mut Vec<Coord<f64>>, coords: &[Coord<f64>]) -> u32 {
                let k = id as usize;
                if node_of[k] == u32::MAX {
                    node_of[k] = nodes.len() as u32;
                    nodes.push(coords[k]);
                }
                node_of[k]
            }
            let mut start = 0usize;
            for k in 1..v.len() {
                if uses[v[k].0 as usize] < 2 && k + 1 < v.len() {
                    continue;
                }
                // run v[start..=k]; ends at the merged node coordinates so runs join exactly
                let a = node(v[start].0, &mut node_of, &mut nodes, &merger.coords);
                let b = node(v[k].0, &mut node_of, &mut nodes, &merger.coords);
                let g0 = geom.len() as u32;
                let mut len = 0.0;
                for j in start..=k {
                    let c = if j == start { nodes[a as usize] } else if j == k { nodes[b as usize] } else { v[j].1 };
                    if let Some(&p) = geom.last().filter(|_| j > start) {
                        len += hav(p, c);
                    }
                    geom.push(c);
                    cum.push(len);
                }
                edges.push(Edge {
                    from: a,
                    to: b,
                    road: r.id,
                    class: r.class,
                    oneway: r.oneway,
                    length_m: len,
                    time_s: len / mps,
                    g0,
                    g1: geom.len() as u32,
                });
                report.drivable_length_m += len;
                start = k;
            }
        }
        let nn = nodes.len();

        // 4. arcs (CSR both ways)
        let mut out_cnt = vec![0u32; nn + 1];
        let mut in_cnt = vec![0u32; nn + 1];
        let arcs_of = |e: &Edge| {
            let mut v = vec![(e.from, e.to, true)];
            if !e.oneway {
                v.push((e.to, e.from, false));
            }
            v
        };
        for e in &edges {
            for (u, w, _) in arcs_of(e) {
                out_cnt[u as usize + 1] += 1;
                in_cnt[w as usize + 1] += 1;
            }
        }
        for i in 0..nn {
            out_cnt[i + 1] += out_cnt[i];
            in_cnt[i + 1] += in_cnt[i];
        }
        let na = out_cnt[nn] as usize;
        let blank = Arc { node: 0, edge: 0, forward: true, time_s: 0.0, length_m: 0.0 };
        let mut out_arcs = vec![blank; na];
        let mut in_arcs = vec![blank; na];
        let (mut oc, mut ic) = (out_cnt.clone(), in_cnt.clone());
        for (ei, e) in edges.iter().enumerate() {
            for (u, w, fwd) in arcs_of(e) {
                out_arcs[oc[u as usize] as usize] = Arc { node: w, edge: ei as u32, forward: fwd, time_s: e.time_s, length_m: e.length_m };
                oc[u as usize] += 1;
                in_arcs[ic[w as usize] as usize] = Arc { node: u, edge: ei as u32, forward: fwd, time_s: e.time_s, length_m: e.length_m };
                ic[w as usize] += 1;
            }
        }

        // 5. components
        let comp = strong_components(nn, &out_cnt, &out_arcs, &in_cnt, &in_arcs);
        let ncomp = comp.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
        let mut comp_len = vec![0.0f64; ncomp];
        let mut comp_edges = vec![0usize; ncomp];
        for e in &edges {
            let c = comp[e.from as usize];
            if comp[e.to as usize] == c {
                comp_len[c as usize] += e.length_m;
                comp_edges[c as usize] += 1;
            }
        }
        let main = (0..ncomp).max_by(|&a, &b| comp_len[a].total_cmp(&comp_len[b]).then(b.cmp(&a))).unwrap_or(0) as u32;
        let weak_len = weak_component_lengths(nn, &edges);

        report.nodes = nn;
        report.edges = edges.len();
        report.arcs = na;
        report.oneway_edges = edges.iter().filter(|e| e.oneway).count();
        report.strong_components = ncomp;
        report.main_component_nodes = comp.iter().filter(|&&c| c == main).count();
        report.main_component_edges = comp_edges.get(main as usize).copied().unwrap_or(0);
        report.main_component_length_m = comp_len.get(main as usize).copied().unwrap_or(0.0);
        let total = report.drivable_length_m.max(f64::MIN_POSITIVE);
        report.main_component_fraction = report.main_component_length_m / total;
        report.weak_components = weak_len.len();
        report.largest_weak_fraction = weak_len.iter().cloned().fold(0.0, f64::max) / total;

        if report.main_component_edges == 0 {
            return Err(RoutingError::NoRoutableNetwork { model: model.info.name.clone(), edges: edges.len() });
        }

        // 6. segment index over the main component
        let mut segs = Vec::new();
        for (ei, e) in edges.iter().enumerate() {
            if comp[e.from as usize] != main || comp[e.to as usize] != main {
                continue;
            }
            for j in e.g0..e.g1 - 1 {
                let (a, b) = (frame.xy(geom[j as usize]), frame.xy(geom[j as usize + 1]));
                segs.push(GeomWithData::new(Line::new(a, b), (ei as u32, j - e.g0)));
            }
        }
        let tree = RTree::bulk_load(segs);
        report.build_ms = t0.elapsed().as_secs_f64() * 1e3;
        tracing::info!(
            roads = report.roads_used,
            nodes = report.nodes,
            edges = report.edges,
            arcs = report.arcs,
            strong_components = report.strong_components,
            main_fraction = format!("{:.4}", report.main_component_fraction),
            ms = format!("{:.0}", report.build_ms),
            "road graph: {} nodes, {} edges, {} strong components, main component {:.1} % of {:.1} km",
            report.nodes,
            report.edges,
            report.strong_components,
            100.0 * report.main_component_fraction,
            report.drivable_length_m / 1e3
        );
        let g = RoadGraph {
            opts,
            nodes,
            edges,
            geom,
            cum,
            out_start: out_cnt,
            out_arcs,
            in_start: in_cnt,
            in_arcs,
            comp,
            main,
            frame,
            tree,
            vmax,
            road_names,
            report: report.clone(),
        };
        Ok((g, report))
    }

    pub fn report(&self) -> &GraphReport {
        &self.report
    }
    pub fn options(&self) -> &RoutingOptions {
        &self.opts
    }
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }
    /// Model road id of an edge.
    pub fn edge_road(&self, edge: u32) -> u32 {
        self.edges[edge as usize].road
    }
    /// Length and travel time of an edge.
    pub fn edge_length_time(&self, edge: u32) -> (f64, f64) {
        let e = &self.edges[edge as usize];
        (e.length_m, e.time_s)
    }
    /// Whether a model road has at least one edge in the main (routable) component.
    pub fn road_in_main_component(&self, road: u32) -> bool {
        self.edges.iter().any(|e| e.road == road && self.comp[e.from as usize] == self.main && self.comp[e.to as usize] == self.main)
    }

    fn out(&self, v: u32) -> &[Arc] {
        &self.out_arcs[self.out_start[v as usize] as usize..self.out_start[v as usize + 1] as usize]
    }
    fn inc(&self, v: u32) -> &[Arc] {
        &self.in_arcs[self.in_start[v as usize] as usize..self.in_start[v as usize + 1] as usize]
    }

    /// Snaps a point onto the nearest main-component edge. `what` names the point in errors
    /// ("incident", "unit 7").
    pub fn snap(&self, what: &str, lon: f64, lat: f64) -> Result<Snap, RoutingError> {
        if !(lon.is_finite() && lat.is_finite() && lon.abs() <= 180.0 && lat.abs() <= 90.0) {
            return Err(RoutingError::InvalidCoordinate { what: what.to_string(), lon, lat });
        }
        let q = self.frame.xy(Coord { x: lon, y: lat });
        let Some(hit) = self.tree.nearest_neighbor(&q) else {
            return Err(RoutingError::OutsideNetwork { what: what.to_string(), lon, lat, distance_m: f64::INFINITY, limit_m: self.opts.max_snap_m });
        };
        let (ei, j) = hit.data;
        let e = &self.edges[ei as usize];
        let (a, b) = (hit.geom().from, hit.geom().to);
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let l2 = dx * dx + dy * dy;
        let t = if l2 > 0.0 { (((q[0] - a[0]) * dx + (q[1] - a[1]) * dy) / l2).clamp(0.0, 1.0) } else { 0.0 };
        let gi = (e.g0 + j) as usize;
        let (ca, cb) = (self.geom[gi], self.geom[gi + 1]);
        let p = Coord { x: ca.x + t * (cb.x - ca.x), y: ca.y + t * (cb.y - ca.y) };
        let offset = (self.cum[gi] + t * (self.cum[gi + 1] - self.cum[gi])).clamp(0.0, e.length_m);
        let distance_m = hav(Coord { x: lon, y: lat }, p);
        if distance_m > self.opts.max_snap_m {
            return Err(RoutingError::OutsideNetwork { what: what.to_string(), lon, lat, distance_m, limit_m: self.opts.max_snap_m });
        }
        Ok(Snap { edge: ei, road: e.road, offset_m: offset, lon: p.x, lat: p.y, distance_m })
    }

    /// Ways out of a snapped point onto the graph: (node reached, time, length, forward).
    fn departures(&self, s: &Snap) -> Vec<(u32, f64, f64, bool)> {
        let e = &self.edges[s.edge as usize];
        let f = self.frac(s);
        let mut v = vec![(e.to, (1.0 - f) * e.time_s, e.length_m - s.offset_m, true)];
        // a point at the start node of a oneway edge may leave through that node
        if !e.oneway || s.offset_m <= AT_NODE_M {
            v.push((e.from, f * e.time_s, s.offset_m, false));
        }
        v
    }

    /// Ways into a snapped point from the graph: (node left, time, length, forward).
    fn arrivals(&self, s: &Snap) -> Vec<(u32, f64, f64, bool)> {
        let e = &self.edges[s.edge as usize];
        let f = self.frac(s);
        let mut v = vec![(e.from, f * e.time_s, s.offset_m, true)];
        // a point at the end node of a oneway edge may be reached through that node
        if !e.oneway || e.length_m - s.offset_m <= AT_NODE_M {
            v.push((e.to, (1.0 - f) * e.time_s, e.length_m - s.offset_m, false));
        }
        v
    }

    fn frac(&self, s: &Snap) -> f64 {
        let e = &self.edges[s.edge as usize];
        if e.length_m > 0.0 { (s.offset_m / e.length_m).clamp(0.0, 1.0) } else { 0.0 }
    }

    /// Time and length from `a` to `b` staying on their common edge, if they share one and its
    /// direction allows it.
    fn same_edge(&self, a: &Snap, b: &Snap) -> Option<(f64, f64)> {
        if a.edge != b.edge {
            return None;
        }
        let e = &self.edges[a.edge as usize];
        let d = b.offset_m - a.offset_m;
        if d < 0.0 && e.oneway {
            return None;
        }
        let t = if e.length_m > 0.0 { d.abs() / e.length_m * e.time_s } else { 0.0 };
        Some((t, d.abs()))
    }

    /// Travel times from every node to a target (one reverse Dijkstra), up to `max_time_s`.
    pub fn travel_times_to(&self, lon: f64, lat: f64, max_time_s: f64) -> Result<TravelTimes<'_>, RoutingError> {
        let target = self.snap("target", lon, lat)?;
        let mut search = ReverseSearch::new(self, &target);
        let mut settled = 0usize;
        while search.settle(self, max_time_s).is_some() {
            settled += 1;
        }
        let ReverseSearch { mut time, mut len, .. } = search;
        // nodes beyond the bound are unreachable
        for (t, l) in time.iter_mut().zip(len.iter_mut()) {
            if *t > max_time_s {
                *t = f64::INFINITY;
                *l = f64::INFINITY;
            }
        }
        Ok(TravelTimes { graph: self, target, time, len, max_time_s, settled })
    }

    /// The `k` candidates with the shortest travel time to the target, fastest first (ties in
    /// input order). Candidates that cannot be snapped (invalid or too far from the network) or
    /// that cannot reach the target within `max_time_s` are left out. One bounded reverse
    /// Dijkstra that stops as soon as no further candidate can enter the top k.
    pub fn nearest_units<I: Clone>(
        &self,
        target: (f64, f64),
        candidates: &[(I, f64, f64)],
        k: usize,
        max_time_s: f64,
    ) -> Result<Vec<Ranked<I>>, RoutingError> {
        let dst = self.snap("target", target.0, target.1)?;
        if k == 0 || candidates.is_empty() {
            return Ok(Vec::new());
        }
        let m = candidates.len();
        let mut best = vec![(f64::INFINITY, f64::INFINITY); m];
        let mut snaps: Vec<Option<Snap>> = Vec::with_capacity(m);
        // node → (candidate, extra time, extra length)
        let mut hooks: HashMap<u32, Vec<(usize, f64, f64)>> = HashMap::new();
        for (ci, (_, lon, lat)) in candidates.iter().enumerate() {
            match self.snap("candidate", *lon, *lat) {
                Ok(s) => {
                    if let Some(d) = self.same_edge(&s, &dst) {
                        best[ci] = d;
                    }
                    for (v, t, l, _) in self.departures(&s) {
                        hooks.entry(v).or_default().push((ci, t, l));
                    }
                    snaps.push(Some(s));
                }
                Err(err) => {
                    tracing::debug!(candidate = ci, %err, "candidate left out");
                    snaps.push(None);
                }
            }
        }
        let kth = |best: &[(f64, f64)]| -> f64 {
            let mut v: Vec<f64> = best.iter().map(|b| b.0).filter(|t| t.is_finite()).collect();
            if v.len() < k {
                return f64::INFINITY;
            }
            v.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
            v[k - 1]
        };
        let mut bound = kth(&best);
        let mut search = ReverseSearch::new(self, &dst);
        while let Some((node, key)) = search.settle(self, max_time_s) {
            if key >= bound {
                break;
            }
            if let Some(hs) = hooks.get(&node) {
                let mut changed = false;
                for &(ci, t, l) in hs {
                    let cand = (key + t, search.len[node as usize] + l);
                    if cand.0 < best[ci].0 {
                        best[ci] = cand;
                        changed = true;
                    }
                }
                if changed {
                    bound = kth(&best);
                }
            }
        }
        let mut order: Vec<usize> = (0..m).filter(|&i| best[i].0.is_finite() && best[i].0 <= max_time_s).collect();
        order.sort_by(|&a, &b| best[a].0.total_cmp(&best[b].0).then(a.cmp(&b)));
        order.truncate(k);
        Ok(order
            .into_iter()
            .map(|i| Ranked {
                id: candidates[i].0.clone(),
                eta_s: best[i].0,
                distance_m: best[i].1,
                snap_m: snaps[i].map(|s| s.distance_m).unwrap_or(0.0),
            })
            .collect())
    }

    /// The fastest route between two points (A* on travel time with the straight-line distance
    /// at the graph's top speed as heuristic).
    pub fn route(&self, from: (f64, f64), to: (f64, f64)) -> Result<Route, RoutingError> {
        let src = self.snap("route start", from.0, from.1)?;
        let dst = self.snap("route end", to.0, to.1)?;
        self.route_snapped(&src, &dst).ok_or(RoutingError::NoRoute { from_lon: from.0, from_lat: from.1, to_lon: to.0, to_lat: to.1 })
    }

    /// A* between two snapped points; `None` when no route exists (cannot happen between two
    /// points of the main component).
    pub fn route_snapped(&self, src: &Snap, dst: &Snap) -> Option<Route> {
        const NONE: u32 = u32::MAX;
        const START_FWD: u32 = u32::MAX - 1;
        const START_BWD: u32 = u32::MAX - 2;
        let n = self.nodes.len();
        let goal = Coord { x: dst.lon, y: dst.lat };
        let inv_v = if self.vmax > 0.0 { 0.999 / self.vmax } else { 0.0 };
        let h = |v: u32| hav(self.nodes[v as usize], goal) * inv_v;
        let mut g = vec![f64::INFINITY; n];
        let mut pred = vec![NONE; n];
        let mut done = vec![false; n];
        let mut heap = BinaryHeap::new();
        for (v, t, _, fwd) in self.departures(src) {
            if t < g[v as usize] {
                g[v as usize] = t;
                pred[v as usize] = if fwd { START_FWD } else { START_BWD };
                heap.push(HeapItem { key: t + h(v), node: v });
            }
        }
        let arr: Vec<(u32, f64, f64, bool)> = self.arrivals(dst);
        // best complete: (time, Some((node, forward)) | None for the direct same-edge way)
        let mut best: Option<(f64, Option<(u32, bool)>)> = self.same_edge(src, dst).map(|(t, _)| (t, None));
        while let Some(HeapItem { key, node }) = heap.pop() {
            if done[node as usize] {
                continue;
            }
            if let Some((bt, _)) = best {
                if key >= bt {
                    break;
                }
            }
            done[node as usize] = true;
            let gv = g[node as usize];
            for &(v, t, _, fwd) in &arr {
                if v == node && best.is_none_or(|(bt, _)| gv + t < bt) {
                    best = Some((gv + t, Some((node, fwd))));
                }
            }
            let base = self.out_start[node as usize];
            for (k, a) in self.out(node).iter().enumerate() {
                let nt = gv + a.time_s;
                if nt < g[a.node as usize] {
                    g[a.node as usize] = nt;
                    pred[a.node as usize] = base + k as u32;
                    heap.push(HeapItem { key: nt + h(a.node), node: a.node });
                }
            }
        }
        let (_, last) = best?;
        // pieces: (edge, offset from, offset to)
        let mut pieces: Vec<(u32, f64, f64)> = Vec::new();
        match last {
            None => pieces.push((src.edge, src.offset_m, dst.offset_m)),
            Some((end_node, fwd_in)) => {
                let de = &self.edges[dst.edge as usize];
                pieces.push((dst.edge, if fwd_in { 0.0 } else { de.length_m }, dst.offset_m));
                let mut v = end_node;
                loop {
                    let p = pred[v as usize];
                    if p == START_FWD || p == START_BWD {
                        let se = &self.edges[src.edge as usize];
                        pieces.push((src.edge, src.offset_m, if p == START_FWD { se.length_m } else { 0.0 }));
                        break;
                    }
                    let a = self.out_arcs[p as usize];
                    let e = &self.edges[a.edge as usize];
                    let (o0, o1) = if a.forward { (0.0, e.length_m) } else { (e.length_m, 0.0) };
                    pieces.push((a.edge, o0, o1));
                    v = if a.forward { e.from } else { e.to };
                }
                pieces.reverse();
            }
        }
        Some(self.assemble(src, dst, &pieces))
    }

    /// The polyline of an edge between two offsets (either order), with the offset of each point.
    fn edge_sub(&self, ei: u32, o0: f64, o1: f64) -> Vec<(Coord<f64>, f64)> {
        let e = &self.edges[ei as usize];
        let (g0, g1) = (e.g0 as usize, e.g1 as usize);
        let at = |o: f64| -> Coord<f64> {
            if o <= self.cum[g0] {
                return self.geom[g0];
            }
            if o >= self.cum[g1 - 1] {
                return self.geom[g1 - 1];
            }
            let j = (self.cum[g0..g1].partition_point(|&c| c <= o) + g0).clamp(g0 + 1, g1 - 1);
            let (ca, cb) = (self.cum[j - 1], self.cum[j]);
            let t = if cb > ca { ((o - ca) / (cb - ca)).clamp(0.0, 1.0) } else { 0.0 };
            let (a, b) = (self.geom[j - 1], self.geom[j]);
            Coord { x: a.x + t * (b.x - a.x), y: a.y + t * (b.y - a.y) }
        };
        let mut v = vec![(at(o0), o0)];
        if o1 >= o0 {
            for j in g0..g1 {
                if self.cum[j] > o0 && self.cum[j] < o1 {
                    v.push((self.geom[j], self.cum[j]));
                }
            }
        } else {
            for j in (g0..g1).rev() {
                if self.cum[j] < o0 && self.cum[j] > o1 {
                    v.push((self.geom[j], self.cum[j]));
                }
            }
        }
        v.push((at(o1), o1));
        v
    }

    fn assemble(&self, src: &Snap, dst: &Snap, pieces: &[(u32, f64, f64)]) -> Route {
        let mut pts: Vec<Coord<f64>> = Vec::new();
        let mut times: Vec<f64> = Vec::new();
        let mut dists: Vec<f64> = Vec::new();
        let mut legs: Vec<Leg> = Vec::new();
        let (mut t, mut d) = (0.0f64, 0.0f64);
        for &(ei, o0, o1) in pieces {
            let e = &self.edges[ei as usize];
            let sec_per_m = if e.length_m > 0.0 { e.time_s / e.length_m } else { 0.0 };
            let sub = self.edge_sub(ei, o0, o1);
            let (t_start, d_start) = (t, d);
            for &(c, o) in &sub {
                let along = (o - o0).abs();
                let (tc, dc) = (t_start + along * sec_per_m, d_start + along);
                if pts.last() == Some(&c) {
                    // the join with the previous piece (or a repeated vertex): no new point
                    if let (Some(lt), Some(ld)) = (times.last_mut(), dists.last_mut()) {
                        *lt = lt.max(tc);
                        *ld = ld.max(dc);
                    }
                    continue;
                }
                pts.push(c);
                times.push(tc);
                dists.push(dc);
            }
            let plen = (o1 - o0).abs();
            let ptime = plen * sec_per_m;
            t = t_start + ptime;
            d = d_start + plen;
            if plen <= 0.0 {
                continue;
            }
            let (name, class) = self.road_names.get(&e.road).cloned().unwrap_or((None, e.class));
            match legs.last_mut() {
                Some(l) if l.road == e.road || (l.name.is_some() && l.name == name && l.class == class) => {
                    l.length_m += plen;
                    l.duration_s += ptime;
                }
                _ => legs.push(Leg { road: e.road, name, class, length_m: plen, duration_s: ptime, start_s: t_start }),
            }
        }
        if pts.is_empty() {
            pts.push(Coord { x: src.lon, y: src.lat });
            times.push(0.0);
            dists.push(0.0);
        }
        if pts.len() == 1 {
            // a route of zero length: keep a two-point line so it is a valid LineString
            pts.push(pts[0]);
            times.push(t);
            dists.push(d);
        }
        if let Some(lt) = times.last_mut() {
            *lt = t;
        }
        if let Some(ld) = dists.last_mut() {
            *ld = d;
        }
        Route { geometry: LineString(pts), length_m: d, duration_s: t, legs, vertex_time_s: times, vertex_dist_m: dists, from: *src, to: *dst }
    }
}

/// Travel times to one target from everywhere on the network (see
/// [`RoadGraph::travel_times_to`]).
pub struct TravelTimes<'g> {
    graph: &'g RoadGraph,
    pub target: Snap,
    time: Vec<f64>,
    len: Vec<f64>,
    pub max_time_s: f64,
    /// Nodes settled by the search.
    pub settled: usize,
}

impl TravelTimes<'_> {
    /// Travel time and route length from a point to the target, `None` when it is beyond the
    /// bound; an error when the point cannot be snapped.
    pub fn eta_from(&self, what: &str, lon: f64, lat: f64) -> Result<Option<(f64, f64)>, RoutingError> {
        let s = self.graph.snap(what, lon, lat)?;
        Ok(self.eta_from_snap(&s))
    }

    pub fn eta_from_snap(&self, s: &Snap) -> Option<(f64, f64)> {
        let mut best = self.graph.same_edge(s, &self.target).unwrap_or((f64::INFINITY, f64::INFINITY));
        for (v, t, l, _) in self.graph.departures(s) {
            let c = (self.time[v as usize] + t, self.len[v as usize] + l);
            if c.0 < best.0 {
                best = c;
            }
        }
        (best.0.is_finite() && best.0 <= self.max_time_s).then_some(best)
    }
}

/// Strong component id per node (Kosaraju, iterative).
fn strong_components(n: usize, out_start: &[u32], out_arcs: &[Arc], in_start: &[u32], in_arcs: &[Arc]) -> Vec<u32> {
    let mut order: Vec<u32> = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    let mut stack: Vec<(u32, u32)> = Vec::new();
    for s in 0..n {
        if seen[s] {
            continue;
        }
        seen[s] = true;
        stack.push((s as u32, out_start[s]));
        while let Some(top) = stack.last_mut() {
            let (v, ref mut next) = *top;
            if *next < out_start[v as usize + 1] {
                let w = out_arcs[*next as usize].node;
                *next += 1;
                if !seen[w as usize] {
                    seen[w as usize] = true;
                    stack.push((w, out_start[w as usize]));
                }
            } else {
                order.push(v);
                stack.pop();
            }
        }
    }
    let mut comp = vec![u32::MAX; n];
    let mut c = 0u32;
    let mut st: Vec<u32> = Vec::new();
    for &s in order.iter().rev() {
        if comp[s as usize] != u32::MAX {
            continue;
        }
        comp[s as usize] = c;
        st.push(s);
        while let Some(v) = st.pop() {
            for a in &in_arcs[in_start[v as usize] as usize..in_start[v as usize + 1] as usize] {
                if comp[a.node as usize] == u32::MAX {
                    comp[a.node as usize] = c;
                    st.push(a.node);
                }
            }
        }
        c += 1;
    }
    comp
}

/// Road length per weakly connected component (union-find).
fn weak_component_lengths(n: usize, edges: &[Edge]) -> Vec<f64> {
    let mut parent: Vec<u32> = (0..n as u32).collect();
    fn find(p: &mut [u32], mut x: u32) -> u32 {
        while p[x as usize] != x {
            p[x as usize] = p[p[x as usize] as usize];
            x = p[x as usize];
        }
        x
    }
    for e in edges {
        let (a, b) = (find(&mut parent, e.from), find(&mut parent, e.to));
        if a != b {
            parent[a.max(b) as usize] = a.min(b);
        }
    }
    let mut len: HashMap<u32, f64> = HashMap::new();
    for v in 0..n as u32 {
        let r = find(&mut parent, v);
        len.entry(r).or_insert(0.0);
    }
    for e in edges {
        let r = find(&mut parent, e.from);
        *len.entry(r).or_insert(0.0) += e.length_m;
    }
    let mut v: Vec<f64> = len.into_values().collect();
    v.sort_by(|a, b| b.total_cmp(a));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Names, Road, SourceRef};

    fn road(coords: &[(f64, f64)], class: RoadClass, oneway: bool, layer: i8) -> Road {
        Road {
            id: 0,
            source: SourceRef { source: 0, id: String::new() },
            class,
            geometry: LineString(coords.iter().map(|&(x, y)| Coord { x, y }).collect()),
            names: Names::default(),
            lanes: None,
            oneway,
            max_speed_kmh: None,
            layer,
        }
    }

    fn model(roads: Vec<Road>) -> CityModel {
        let mut m = CityModel::empty("t");
        m.roads = roads;
        m.renumber();
        m
    }

    #[test]
    fn crossing_without_shared_vertex_does_not_connect_and_layers_merge_only_exactly() {
        // two crossing lines, no shared vertex: 2 weak components
        let m = model(vec![
            road(&[(123.0, 41.0), (123.002, 41.0)], RoadClass::Primary, false, 0),
            road(&[(123.001, 40.999), (123.001, 41.001)], RoadClass::Primary, false, 1),
        ]);
        let (_, r) = RoadGraph::from_model(&m).unwrap();
        assert_eq!(r.weak_components, 2);
        assert_eq!(r.nodes, 4);
        // a vertex 0.2 m away on the same layer merges, on another layer it does not
        let d = 0.2 / 111_195.0;
        for (layer, comps) in [(0i8, 1usize), (1, 2)] {
            let m = model(vec![
                road(&[(123.0, 41.0), (123.001, 41.0)], RoadClass::Primary, false, 0),
                road(&[(123.001, 41.0 + d), (123.002, 41.0)], RoadClass::Primary, false, layer),
            ]);
            let (_, r) = RoadGraph::from_model(&m).unwrap();
            assert_eq!(r.weak_components, comps, "layer {layer}");
        }
        // bit-identical vertices merge across layers (a bridge's end node)
        let m = model(vec![
            road(&[(123.0, 41.0), (123.001, 41.0)], RoadClass::Primary, false, 0),
            road(&[(123.001, 41.0), (123.002, 41.0)], RoadClass::Primary, false, 1),
        ]);
        assert_eq!(RoadGraph::from_model(&m).unwrap().1.weak_components, 1);
    }

    #[test]
    fn interior_vertices_are_geometry_and_shared_ones_are_nodes() {
        // an L-shaped road with 3 interior vertices, crossed at its middle vertex by a second road
        let a = road(&[(123.0, 41.0), (123.001, 41.0), (123.002, 41.0), (123.002, 41.001), (123.002, 41.002)], RoadClass::Secondary, false, 0);
        let b = road(&[(123.002, 40.999), (123.002, 41.0), (123.003, 41.0)], RoadClass::Residential, false, 0);
        let (g, r) = RoadGraph::from_model(&model(vec![a, b])).unwrap();
        // nodes: a's two ends, b's two ends, the shared (123.002, 41.0)
        assert_eq!(r.nodes, 5);
        assert_eq!(r.edges, 4);
        assert_eq!(r.arcs, 8);
        assert_eq!(r.strong_components, 1);
        let total: f64 = (0..g.edge_count() as u32).map(|e| g.edge_length_time(e).0).sum();
        assert!((total - r.drivable_length_m).abs() < 1e-6);
    }

    #[test]
    fn path_and_rail_are_excluded_and_empty_models_are_errors() {
        let m = model(vec![]);
        let err = RoadGraph::from_model(&m).unwrap_err();
        assert!(err.to_string().contains("has no roads"), "{err}");
        let m = model(vec![
            road(&[(123.0, 41.0), (123.001, 41.0)], RoadClass::Path, false, 0),
            road(&[(123.0, 41.0), (123.001, 41.001)], RoadClass::Rail, false, 0),
        ]);
        let err = RoadGraph::from_model(&m).unwrap_err();
        let s = err.to_string();
        assert!(s.contains("none a vehicle can drive") && s.contains("1 path") && s.contains("1 rail"), "{s}");
        let m = model(vec![road(&[(123.0, 41.0), (f64::NAN, 41.0)], RoadClass::Primary, false, 0)]);
        assert!(matches!(RoadGraph::from_model(&m), Err(RoutingError::NoDrivableRoads { .. })));
        // one one-way road: no strong component with an edge
        let m = model(vec![road(&[(123.0, 41.0), (123.001, 41.0)], RoadClass::Primary, true, 0)]);
        let err = RoadGraph::from_model(&m).unwrap_err();
        assert_eq!(err, RoutingError::NoRoutableNetwork { model: "t".into(), edges: 1 });
        assert!(err.to_string().contains("all one-way without a way back"), "{err}");
    }

    #[test]
    fn oneway_loop_is_one_strong_component_and_a_dangling_oneway_is_not_main() {
        // a triangle of oneways + a oneway spur leaving it
        let p = [(123.0, 41.0), (123.01, 41.0), (123.005, 41.008), (123.02, 41.0)];
        let m = model(vec![
            road(&[p[0], p[1]], RoadClass::Primary, true, 0),
            road(&[p[1], p[2]], RoadClass::Primary, true, 0),
            road(&[p[2], p[0]], RoadClass::Primary, true, 0),
            road(&[p[1], p[3]], RoadClass::Primary, true, 0),
        ]);
        let (g, r) = RoadGraph::from_model(&m).unwrap();
        assert_eq!(r.strong_components, 2);
        assert_eq!(r.weak_components, 1);
        assert_eq!(r.main_component_nodes, 3);
        assert!(!g.road_in_main_component(3));
        // a point on the spur snaps onto the triangle instead
        let s = g.snap("p", 123.018, 41.0).unwrap();
        assert_ne!(s.road, 3);
        // around the triangle: going backwards along road 0 means the long way round
        let fwd = g.route((123.002, 41.0), (123.008, 41.0)).unwrap();
        let bwd = g.route((123.008, 41.0), (123.002, 41.0)).unwrap();
        assert!((fwd.length_m - 0.006 * 111_195.0 * 41f64.to_radians().cos()).abs() < 1.0, "{}", fwd.length_m);
        assert!(bwd.length_m > 2.0 * fwd.length_m, "{} vs {}", bwd.length_m, fwd.length_m);
    }

    #[test]
    fn graph_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RoadGraph>();
        assert_send_sync::<Route>();
    }

    #[test]
    fn position_at_walks_the_route() {
        let m = model(vec![
            road(&[(123.0, 41.0), (123.0, 41.01)], RoadClass::Primary, false, 0),
            road(&[(123.0, 41.01), (123.01, 41.01)], RoadClass::Residential, false, 0),
        ]);
        let (g, _) = RoadGraph::from_model(&m).unwrap();
        let r = g.route((123.0, 41.002), (123.005, 41.01)).unwrap();
        assert_eq!(r.legs.len(), 2);
        let (lon, lat, h) = r.position_at(0.0);
        assert!((lon - 123.0).abs() < 1e-9 && (lat - 41.002).abs() < 1e-9 && h.abs() < 1e-6);
        let (lon, lat, h) = r.position_at(r.legs[1].start_s + 1.0);
        assert!(lat > 41.0099 && lon > 123.0 && (h - 90.0).abs() < 1e-6);
        let (lon, lat, _) = r.position_at(1e9);
        assert!((lon - 123.005).abs() < 1e-9 && (lat - 41.01).abs() < 1e-9);
        assert!((r.duration_s - r.legs.iter().map(|l| l.duration_s).sum::<f64>()).abs() < 1e-9);
    }
}
