//! The generator proper: frame, built-up polygon, river, road network, blocks, buildings, POIs.
//! See the module documentation of [`super`] for what is real and what is generated.

use super::boundaries::DIVISIONS;
use super::raster::{seg_dist, Raster, EDGE, INSIDE, ROAD, WATER};
use super::Zone;
use crate::geodesy;
use crate::model::*;
use crate::report::{BuildReport, Progress};
use geo::BooleanOps;
use geo_types::{Coord, LineString, MultiPolygon, Point, Polygon};

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64, seeded from the city seed and a feature's coordinates in the generator, so each
/// block's content depends on nothing but (seed, block): no thread or iteration order.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, a: u64, b: u64) -> Self {
        Rng(mix(seed ^ mix(a.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ mix(b ^ 0x5851_F42D_4C95_7F2D))))
    }
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    #[inline]
    pub fn f(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    #[inline]
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f()
    }
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Smooth value noise in [0, 1) with lattice spacing `scale` metres.
fn noise(seed: u64, x: f64, y: f64, scale: f64) -> f64 {
    let (gx, gy) = (x / scale, y / scale);
    let (ix, iy) = (gx.floor(), gy.floor());
    let (fx, fy) = (gx - ix, gy - iy);
    let h = |a: f64, b: f64| (mix(seed ^ mix((a as i64 as u64) ^ mix(b as i64 as u64 ^ 0xABCD))) >> 11) as f64 / (1u64 << 53) as f64;
    let s = |t: f64| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (s(fx), s(fy));
    let top = h(ix, iy) * (1.0 - sx) + h(ix + 1.0, iy) * sx;
    let bot = h(ix, iy + 1.0) * (1.0 - sx) + h(ix + 1.0, iy + 1.0) * sx;
    top * (1.0 - sy) + bot * sy
}

// ---------------------------------------------------------------------------------------------
// Local metric frame

/// 市府广场 (Shifu Square), the origin of the generator's local frame.
pub const ORIGIN: (f64, f64) = (123.4315, 41.8057);

#[derive(Clone, Copy)]
pub struct Frame {
    kx: f64,
    ky: f64,
}

impl Default for Frame {
    fn default() -> Self {
        Self::new()
    }
}

impl Frame {
    pub fn new() -> Self {
        let (kx, ky) = geodesy::metres_per_degree(ORIGIN.1);
        Frame { kx, ky }
    }
    #[inline]
    pub fn ll(&self, p: (f64, f64)) -> Coord<f64> {
        Coord { x: ORIGIN.0 + p.0 / self.kx, y: ORIGIN.1 + p.1 / self.ky }
    }
    #[inline]
    pub fn m(&self, lon: f64, lat: f64) -> (f64, f64) {
        ((lon - ORIGIN.0) * self.kx, (lat - ORIGIN.1) * self.ky)
    }
    fn ring_ll(&self, pts: &[(f64, f64)]) -> LineString<f64> {
        let mut v: Vec<Coord<f64>> = pts.iter().map(|&p| self.ll(p)).collect();
        if v.first() != v.last() {
            v.push(v[0]);
        }
        LineString(v)
    }
    fn rings_m(&self, mp: &MultiPolygon<f64>) -> Vec<Vec<(f64, f64)>> {
        let mut out = Vec::new();
        for p in &mp.0 {
            for r in std::iter::once(p.exterior()).chain(p.interiors()) {
                out.push(r.0.iter().map(|c| self.m(c.x, c.y)).collect());
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Real-world anchors (WGS-84 approximations)

/// Hand-placed outline of Shenyang's contiguous urban area (WGS-84 lon, lat), clockwise from the
/// north: 沈北 道义 in the north, 大东 and 浑南 in the east, 浑南新城 and 苏家屯 in the south,
/// 于洪 and 铁西 (incl. the economic-technological development zone) in the west. It is scaled
/// about 市府广场 by [`OUTLINE_SCALE`] and intersected with the union of the 9 urban districts.
pub const OUTLINE: [(f64, f64); 24] = [
    (123.400, 41.935),
    (123.445, 41.945),
    (123.490, 41.925),
    (123.515, 41.890),
    (123.545, 41.860),
    (123.570, 41.830),
    (123.580, 41.795),
    (123.590, 41.760),
    (123.575, 41.725),
    (123.545, 41.700),
    (123.500, 41.690),
    (123.455, 41.690),
    (123.410, 41.690),
    (123.375, 41.670),
    (123.365, 41.640),
    (123.320, 41.630),
    (123.290, 41.655),
    (123.265, 41.700),
    (123.225, 41.735),
    (123.215, 41.775),
    (123.235, 41.820),
    (123.285, 41.860),
    (123.335, 41.885),
    (123.370, 41.910),
];
/// Tuned so that the clipped built-up area comes out at ~820 km².
pub const OUTLINE_SCALE: f64 = 1.097;

/// 浑河 centreline control points (WGS-84), east to west.
const HUN_RIVER: [(f64, f64); 11] = [
    (123.650, 41.848),
    (123.600, 41.830),
    (123.560, 41.805),
    (123.520, 41.785),
    (123.480, 41.768),
    (123.440, 41.758),
    (123.400, 41.752),
    (123.360, 41.745),
    (123.320, 41.731),
    (123.280, 41.714),
    (123.180, 41.685),
];

/// Named parks: zh, en, centre, semi-axes (m), and an optional lake (zh, en, offset, semi-axes).
type ParkDef = (&'static str, &'static str, (f64, f64), (f64, f64), Option<(&'static str, &'static str, (f64, f64), (f64, f64))>);
const PARKS: [ParkDef; 7] = [
    ("北陵公园", "Beiling Park", (123.4250, 41.8400), (850.0, 1100.0), Some(("北陵公园湖", "Beiling Park Lake", (0.0, -500.0), (260.0, 160.0)))),
    ("青年公园", "Youth Park", (123.4370, 41.7775), (430.0, 330.0), Some(("青年公园湖", "Youth Park Lake", (60.0, 0.0), (180.0, 90.0)))),
    ("南湖公园", "Nanhu Park", (123.4130, 41.7790), (520.0, 300.0), Some(("南湖", "Nanhu Lake", (0.0, 0.0), (260.0, 110.0)))),
    ("中山公园", "Zhongshan Park", (123.3940, 41.7880), (300.0, 260.0), Some(("中山公园池", "Zhongshan Park Pond", (0.0, 0.0), (80.0, 50.0)))),
    ("万泉公园", "Wanquan Park", (123.4700, 41.7890), (420.0, 300.0), Some(("万泉湖", "Wanquan Lake", (0.0, 0.0), (170.0, 90.0)))),
    ("丁香湖公园", "Dingxiang Lake Park", (123.3300, 41.8150), (950.0, 750.0), Some(("丁香湖", "Dingxiang Lake", (0.0, 0.0), (600.0, 380.0)))),
    ("市府广场", "Shifu Square", (123.4315, 41.8057), (190.0, 190.0), None),
];

/// Landmarks and stations (WGS-84 approximations).
const LANDMARKS: [(&str, &str, PoiKind, (f64, f64)); 9] = [
    ("沈阳故宫", "Mukden Palace", PoiKind::Landmark, (123.4556, 41.7962)),
    ("市府广场", "Shifu Square", PoiKind::Landmark, (123.4315, 41.8057)),
    ("北陵公园（清昭陵）", "Beiling Park (Zhaoling Tomb)", PoiKind::Landmark, (123.4250, 41.8400)),
    ("沈阳站", "Shenyang Railway Station", PoiKind::Station, (123.3960, 41.7946)),
    ("沈阳北站", "Shenyang North Railway Station", PoiKind::Station, (123.4380, 41.8220)),
    ("沈阳市人民政府", "Shenyang Municipal People's Government", PoiKind::Government, (123.4300, 41.8080)),
    ("中街", "Zhongjie Pedestrian Street", PoiKind::Landmark, (123.4590, 41.7990)),
    ("太原街", "Taiyuan Street", PoiKind::Landmark, (123.4000, 41.7970)),
    ("沈阳奥林匹克体育中心", "Shenyang Olympic Sports Centre", PoiKind::Landmark, (123.4720, 41.7370)),
];

/// CBD centres: (lon, lat, radius m).
const CBD_DISCS: [(f64, f64, f64); 4] = [
    (123.4315, 41.8057, 900.0), // 市府广场
    (123.4000, 41.7970, 650.0), // 太原街
    (123.4580, 41.7980, 450.0), // 中街
    (123.4450, 41.7300, 1100.0), // 浑南新 CBD
];

/// Industrial poles besides 铁西 west: (lon, lat, radius m).
const INDUSTRIAL_DISCS: [(f64, f64, f64); 3] = [
    (123.5150, 41.8350, 1400.0), // 大东 automotive
    (123.4700, 41.9150, 1600.0), // 沈北 道义 industrial park
    (123.3350, 41.6650, 1200.0), // 苏家屯 logistics
];

const PRIMARY_SPACING: f64 = 1250.0;
const SUBDIV: usize = 6;
/// 青年大街 (x-lines) and 中山路 (y-lines) anchor the arterial grid.
const GRID_ANCHOR: (f64, f64) = (123.4350, 41.7970);

fn x_line_name(k: i64, y_lat: f64) -> Option<(&'static str, &'static str)> {
    match k {
        0 => Some(("青年大街", "Qingnian Street")),
        -1 => Some(("北陵大街", "Beiling Street")),
        -2 => Some(("黄河大街", "Huanghe Street")),
        -3 => Some(("长白街", "Changbai Street")),
        -4 => Some(("重工街", "Zhonggong Street")),
        -6 => Some(("兴华街", "Xinghua Street")),
        -9 => Some(("卫工街", "Weigong Street")),
        1 => Some(("文艺路", "Wenyi Road")),
        2 => Some(("望花街", "Wanghua Street")),
        4 if y_lat < 41.76 => Some(("浑南东路", "Hunnan East Road")),
        _ => None,
    }
}

fn y_line_name(k: i64, x_lon: f64) -> Option<(&'static str, &'static str)> {
    match k {
        0 if x_lon < 123.370 => Some(("建设大路", "Jianshe Avenue")),
        0 => Some(("中山路", "Zhongshan Road")),
        1 if x_lon < 123.370 => Some(("沈辽路", "Shenliao Road")),
        1 => Some(("市府大路", "Shifu Avenue")),
        2 => Some(("北京街", "Beijing Street")),
        3 => Some(("长江街", "Changjiang Street")),
        -1 => Some(("南五马路", "Nanwuma Road")),
        -5 => Some(("浑南中路", "Hunnan Middle Road")),
        -7 => Some(("智慧大街", "Zhihui Street")),
        _ => None,
    }
}

fn half_width(c: RoadClass) -> f64 {
    match c {
        RoadClass::Motorway => 30.0,
        RoadClass::Trunk => 25.0,
        RoadClass::Primary => 20.0,
        RoadClass::Secondary => 12.0,
        _ => 6.0,
    }
}

fn lanes(c: RoadClass) -> u8 {
    match c {
        RoadClass::Motorway => 8,
        RoadClass::Trunk => 6,
        RoadClass::Primary => 6,
        RoadClass::Secondary => 4,
        _ => 2,
    }
}

fn names(zh: impl Into<String>, en: impl Into<String>) -> Names {
    Names { zh: Some(zh.into()), en: Some(en.into()), local: None }
}

// ---------------------------------------------------------------------------------------------
// Geometry helpers

fn catmull_rom(ctrl: &[(f64, f64)], sub: usize) -> Vec<(f64, f64)> {
    let n = ctrl.len();
    let mut out = Vec::with_capacity(n * sub);
    for i in 0..n - 1 {
        let p0 = ctrl[i.saturating_sub(1)];
        let (p1, p2) = (ctrl[i], ctrl[i + 1]);
        let p3 = ctrl[(i + 2).min(n - 1)];
        for s in 0..sub {
            let t = s as f64 / sub as f64;
            let (t2, t3) = (t * t, t * t * t);
            let f = |a: f64, b: f64, c: f64, d: f64| {
                0.5 * (2.0 * b + (-a + c) * t + (2.0 * a - 5.0 * b + 4.0 * c - d) * t2 + (-a + 3.0 * b - 3.0 * c + d) * t3)
            };
            out.push((f(p0.0, p1.0, p2.0, p3.0), f(p0.1, p1.1, p2.1, p3.1)));
        }
    }
    out.push(ctrl[n - 1]);
    out
}

/// Offsets a smooth open polyline by ±half(s) and returns the closed ring (CCW).
fn buffer_polyline(pts: &[(f64, f64)], half: impl Fn(usize) -> f64) -> Vec<(f64, f64)> {
    let n = pts.len();
    let mut left = Vec::with_capacity(n);
    let mut right = Vec::with_capacity(n);
    for i in 0..n {
        let a = pts[i.saturating_sub(1)];
        let b = pts[(i + 1).min(n - 1)];
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let l = (dx * dx + dy * dy).sqrt().max(1e-9);
        let (nx, ny) = (-dy / l, dx / l);
        let h = half(i);
        left.push((pts[i].0 + nx * h, pts[i].1 + ny * h));
        right.push((pts[i].0 - nx * h, pts[i].1 - ny * h));
    }
    let mut ring: Vec<(f64, f64)> = right;
    ring.extend(left.into_iter().rev());
    ring.push(ring[0]);
    if signed_area(&ring) < 0.0 {
        ring.reverse();
    }
    ring
}

fn signed_area(r: &[(f64, f64)]) -> f64 {
    r.windows(2).map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1).sum::<f64>() / 2.0
}

fn ellipse(c: (f64, f64), a: f64, b: f64, n: usize) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = (0..n)
        .map(|k| {
            let t = std::f64::consts::TAU * k as f64 / n as f64;
            (c.0 + a * t.cos(), c.1 + b * t.sin())
        })
        .collect();
    v.push(v[0]);
    v
}

fn in_ellipse(p: (f64, f64), c: (f64, f64), a: f64, b: f64) -> bool {
    let (dx, dy) = ((p.0 - c.0) / a, (p.1 - c.1) / b);
    dx * dx + dy * dy <= 1.0
}

fn dist_polyline(p: (f64, f64), pts: &[(f64, f64)]) -> f64 {
    pts.windows(2).map(|w| seg_dist(p, w[0], w[1])).fold(f64::MAX, f64::min)
}

fn rect_poly(f: &Frame, x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon<f64> {
    Polygon::new(f.ring_ll(&[(x0, y0), (x1, y0), (x1, y1), (x0, y1)]), vec![])
}

// ---------------------------------------------------------------------------------------------
// Built-up polygon

/// The built-up polygon: [`OUTLINE`] scaled by `scale` about 市府广场, intersected with the union
/// of the 9 urban districts; parts under 1 km² and holes under 0.2 km² are dropped.
pub fn built_up_polygon(districts: &[District], scale: f64) -> MultiPolygon<f64> {
    let f = Frame::new();
    let outline: Vec<(f64, f64)> = OUTLINE
        .iter()
        .rev() // the constant runs clockwise; geo wants CCW exteriors
        .map(|&(lon, lat)| {
            let (x, y) = f.m(lon, lat);
            (x * scale, y * scale)
        })
        .collect();
    let outline = Polygon::new(f.ring_ll(&outline), vec![]);
    let urban: Vec<&District> = districts
        .iter()
        .filter(|d| DIVISIONS.iter().any(|v| v.0 == d.adcode && v.4))
        .collect();
    let mut union = MultiPolygon::<f64>(vec![]);
    for d in urban {
        union = union.union(&d.geometry);
    }
    let clipped = outline.intersection(&union);
    let mut polys = Vec::new();
    for p in clipped.0 {
        let mp = MultiPolygon(vec![Polygon::new(p.exterior().clone(), vec![])]);
        if geodesy::area_km2(&mp) < 1.0 {
            continue;
        }
        let holes: Vec<LineString<f64>> = p
            .interiors()
            .iter()
            .filter(|h| geodesy::area_km2(&MultiPolygon(vec![Polygon::new((*h).clone(), vec![])])) >= 0.2)
            .cloned()
            .collect();
        polys.push(Polygon::new(p.exterior().clone(), holes));
    }
    MultiPolygon(polys)
}

// ---------------------------------------------------------------------------------------------
// Road network

struct GLine {
    pos: f64,
    class: RoadClass,
    /// Index of the arterial this line belongs to (for names); only primaries are named.
    k: i64,
}

fn grid_lines(seed: u64, axis: u64, anchor: f64, lo: f64, hi: f64) -> Vec<GLine> {
    let k0 = ((lo - anchor) / PRIMARY_SPACING).floor() as i64 - 1;
    let k1 = ((hi - anchor) / PRIMARY_SPACING).ceil() as i64 + 1;
    let step = PRIMARY_SPACING / SUBDIV as f64;
    let mut v = Vec::new();
    for k in k0..=k1 {
        let base = anchor + k as f64 * PRIMARY_SPACING;
        for s in 0..SUBDIV {
            let mut r = Rng::new(seed, 1000 + axis, (k * 16 + s as i64) as u64);
            let (class, jit) = match s {
                0 => (RoadClass::Primary, 0.0),
                3 => (RoadClass::Secondary, r.range(-20.0, 20.0)),
                _ => (RoadClass::Residential, r.range(-28.0, 28.0)),
            };
            v.push(GLine { pos: base + s as f64 * step + jit, class, k });
        }
    }
    v
}

struct GEdge {
    a: (f64, f64),
    b: (f64, f64),
    class: RoadClass,
    names: Names,
    layer: i8,
    splits: Vec<(f64, f64)>,
    removed: bool,
}

struct Net {
    xs: Vec<GLine>,
    ys: Vec<GLine>,
    edges: Vec<GEdge>,
    /// (i, j) → edge on x-line i between ys[j] and ys[j+1].
    vslot: Vec<u32>,
    /// (i, j) → edge on y-line j between xs[i] and xs[i+1].
    hslot: Vec<u32>,
}

const NONE: u32 = u32::MAX;

fn seg_state(r: &Raster, a: (f64, f64), b: (f64, f64)) -> (bool, bool) {
    let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    let n = (len / 20.0).ceil().max(1.0) as usize;
    let (mut ok, mut wet) = (true, false);
    for s in 0..=n {
        let t = s as f64 / n as f64;
        let fl = r.flag(a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
        if fl & INSIDE == 0 || fl & EDGE != 0 {
            ok = false;
        }
        if fl & WATER != 0 {
            wet = true;
        }
    }
    (ok, wet)
}

fn build_grid(seed: u64, f: &Frame, r: &Raster, bbox: (f64, f64, f64, f64)) -> Net {
    let anchor = f.m(GRID_ANCHOR.0, GRID_ANCHOR.1);
    let xs = grid_lines(seed, 0, anchor.0, bbox.0, bbox.2);
    let ys = grid_lines(seed, 1, anchor.1, bbox.1, bbox.3);
    let (nx, ny) = (xs.len(), ys.len());
    let node_ok = |i: usize, j: usize| {
        let fl = r.flag(xs[i].pos, ys[j].pos);
        fl & INSIDE != 0 && fl & (EDGE | WATER) == 0
    };
    let mut net = Net { xs: Vec::new(), ys: Vec::new(), edges: Vec::new(), vslot: vec![NONE; nx * ny], hslot: vec![NONE; nx * ny] };
    // wet nodes a bridge already passes over: a second bridge may not cross it mid-river
    let mut bridged = vec![false; nx * ny];
    // vertical (x-lines)
    for axis in 0..2 {
        let (along_n, across_n) = if axis == 0 { (ny, nx) } else { (nx, ny) };
        for c in 0..across_n {
            let line = if axis == 0 { &xs[c] } else { &ys[c] };
            let pt = |t: usize| if axis == 0 { (xs[c].pos, ys[t].pos) } else { (xs[t].pos, ys[c].pos) };
            let ok = |t: usize| if axis == 0 { node_ok(c, t) } else { node_ok(t, c) };
            let mut t = 0;
            while t + 1 < along_n {
                let (a, b) = (pt(t), pt(t + 1));
                let mut span = None;
                if ok(t) {
                    let (sok, wet) = seg_state(r, a, b);
                    if sok && !wet && ok(t + 1) {
                        span = Some((t + 1, 0i8));
                    } else if sok && wet && line.class == RoadClass::Primary {
                        // a bridge: to the first dry node on the far side, at most 1.6 km away
                        let mut e = t + 1;
                        while e < along_n && !ok(e) && e - t < 9 {
                            e += 1;
                        }
                        let key = |u: usize| if axis == 0 { u * nx + c } else { c * nx + u };
                        if e < along_n && ok(e) && seg_state(r, a, pt(e)).0 && !(t + 1..e).any(|u| bridged[key(u)]) {
                            for u in t + 1..e {
                                bridged[key(u)] = true;
                            }
                            span = Some((e, 1));
                        }
                    }
                }
                match span {
                    Some((e, layer)) => {
                        let mid = pt(t).0 * 0.5 + pt(e).0 * 0.5;
                        let mid_other = pt(t).1 * 0.5 + pt(e).1 * 0.5;
                        let (lon_or_lat_along, _) = (if axis == 0 { f.ll((0.0, mid_other)).y } else { f.ll((mid, 0.0)).x }, 0);
                        let nm = if line.class == RoadClass::Primary {
                            if axis == 0 { x_line_name(line.k, lon_or_lat_along) } else { y_line_name(line.k, lon_or_lat_along) }
                        } else {
                            None
                        };
                        let idx = net.edges.len() as u32;
                        net.edges.push(GEdge {
                            a: pt(t),
                            b: pt(e),
                            class: line.class,
                            names: nm.map(|(z, e)| names(z, e)).unwrap_or_default(),
                            layer,
                            splits: Vec::new(),
                            removed: false,
                        });
                        for s in t..e {
                            if axis == 0 {
                                net.vslot[c * ny + s] = idx;
                            } else {
                                net.hslot[c * nx + s] = idx;
                            }
                        }
                        t = e;
                    }
                    None => t += 1,
                }
            }
        }
    }
    net.xs = xs;
    net.ys = ys;
    net
}

fn lower_idx(lines: &[GLine], v: f64) -> Option<usize> {
    // largest j with lines[j].pos <= v, if v < lines.last
    let p = lines.partition_point(|l| l.pos <= v);
    if p == 0 || p >= lines.len() {
        None
    } else {
        Some(p - 1)
    }
}

/// Nodes a closed ring into the grid and returns its pieces (each a road geometry in metres) with
/// their bridge flag.
fn node_ring(net: &mut Net, ring: &[(f64, f64)], class: RoadClass, r: &Raster) -> Vec<(Vec<(f64, f64)>, bool)> {
    let n = ring.len();
    let (nx, ny) = (net.xs.len(), net.ys.len());
    let mut junctions: Vec<(usize, f64, (f64, f64))> = Vec::new();
    for s in 0..n {
        let (p, q) = (ring[s], ring[(s + 1) % n]);
        let mut hits: Vec<(f64, u32, (f64, f64))> = Vec::new();
        // x-lines
        for (i, l) in net.xs.iter().enumerate() {
            if (l.pos > p.0.min(q.0)) && (l.pos <= p.0.max(q.0)) && p.0 != q.0 {
                let t = (l.pos - p.0) / (q.0 - p.0);
                let y = p.1 + t * (q.1 - p.1);
                if let Some(j) = lower_idx(&net.ys, y) {
                    let e = net.vslot[i * ny + j];
                    if e != NONE {
                        hits.push((t, e, (l.pos, y)));
                    }
                }
            }
        }
        for (j, l) in net.ys.iter().enumerate() {
            if (l.pos > p.1.min(q.1)) && (l.pos <= p.1.max(q.1)) && p.1 != q.1 {
                let t = (l.pos - p.1) / (q.1 - p.1);
                let x = p.0 + t * (q.0 - p.0);
                if let Some(i) = lower_idx(&net.xs, x) {
                    let e = net.hslot[j * nx + i];
                    if e != NONE {
                        hits.push((t, e, (x, l.pos)));
                    }
                }
            }
        }
        hits.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (t, e, c) in hits {
            let edge = &mut net.edges[e as usize];
            if edge.removed {
                continue;
            }
            if class == RoadClass::Motorway && edge.class == RoadClass::Residential {
                edge.removed = true; // local streets do not join the expressway
                continue;
            }
            let d = |u: (f64, f64)| ((u.0 - c.0).powi(2) + (u.1 - c.1).powi(2)).sqrt();
            let j = if d(edge.a) < 15.0 {
                edge.a
            } else if d(edge.b) < 15.0 {
                edge.b
            } else {
                edge.splits.push(c);
                c
            };
            junctions.push((s, t, j));
        }
    }
    junctions.dedup_by(|b, a| a.2 == b.2);
    while junctions.len() > 1 && junctions.first().map(|x| x.2) == junctions.last().map(|x| x.2) {
        junctions.pop();
    }
    let mut pieces = Vec::new();
    if junctions.is_empty() {
        let mut g = ring.to_vec();
        g.push(ring[0]);
        pieces.push(g);
    } else {
        let m = junctions.len();
        for k in 0..m {
            let (s0, _, j0) = junctions[k];
            let (s1, _, j1) = junctions[(k + 1) % m];
            let s1u = if k + 1 == m || s1 < s0 { s1 + n } else { s1 };
            let mut g = vec![j0];
            for v in s0 + 1..=s1u {
                g.push(ring[v % n]);
            }
            g.push(j1);
            g.dedup();
            if g.len() >= 2 {
                pieces.push(g);
            }
        }
    }
    pieces
        .into_iter()
        .map(|g| {
            let wet = g.windows(2).any(|w| {
                let len = ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt();
                let steps = (len / 20.0).ceil().max(1.0) as usize;
                (0..=steps).any(|s| {
                    let t = s as f64 / steps as f64;
                    r.flag(w[0].0 + t * (w[1].0 - w[0].0), w[0].1 + t * (w[1].1 - w[0].1)) & WATER != 0
                })
            });
            (g, wet)
        })
        .collect()
}

fn second_ring(f: &Frame) -> Vec<(f64, f64)> {
    // superellipse |x/a|^3 + |y/b|^3 = 1 over 123.36–123.50 × 41.78–41.85, slightly rotated
    let (c0, c1) = f.m(123.430, 41.815);
    let (a, b) = ((123.50 - 123.36) / 2.0 * f.kx, (41.85 - 41.78) / 2.0 * f.ky);
    let rot: f64 = 0.06;
    (0..480)
        .map(|k| {
            let t = std::f64::consts::TAU * k as f64 / 480.0;
            let (ct, st) = (t.cos(), t.sin());
            let x = a * ct.signum() * ct.abs().powf(2.0 / 3.0);
            let y = b * st.signum() * st.abs().powf(2.0 / 3.0);
            (c0 + x * rot.cos() - y * rot.sin(), c1 + x * rot.sin() + y * rot.cos())
        })
        .collect()
}

fn third_ring() -> Vec<(f64, f64)> {
    (0..720)
        .map(|k| {
            let t = std::f64::consts::TAU * k as f64 / 720.0;
            let r = 11_800.0 * (1.0 + 0.05 * (2.0 * t + 0.7).sin() + 0.03 * (3.0 * t).cos());
            (r * t.cos(), r * t.sin())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Blocks and buildings

struct Block {
    i: usize,
    j: usize,
    /// Rectangle between road edges (landuse), metres.
    lu: (f64, f64, f64, f64),
    /// Rectangle where buildings may stand, metres.
    inner: (f64, f64, f64, f64),
    zone: Zone,
    district: u8,
    /// All cells inside the built-up area, off its edge.
    interior: bool,
    riverside: bool,
    park: Option<usize>,
    /// Name of the institution (hospital/school) the block holds.
    institution: Option<Names>,
}

fn zone_at(seed: u64, f: &Frame, r: &Raster, p: (f64, f64)) -> (Zone, Option<usize>) {
    for (k, park) in PARKS.iter().enumerate() {
        let c = f.m(park.2 .0, park.2 .1);
        if in_ellipse(p, c, park.3 .0, park.3 .1) {
            return (Zone::Park, Some(k));
        }
    }
    let ll = f.ll(p);
    let (lon, lat) = (ll.x, ll.y);
    let anchor = f.m(GRID_ANCHOR.0, 41.8);
    if (p.0 - anchor.0).abs() < 380.0 && (41.742..41.836).contains(&lat) {
        return (Zone::Cbd, None);
    }
    for &(clon, clat, rad) in &CBD_DISCS {
        let c = f.m(clon, clat);
        if ((p.0 - c.0).powi(2) + (p.1 - c.1).powi(2)).sqrt() < rad {
            return (Zone::Cbd, None);
        }
    }
    let nz = noise(seed ^ 0x1d, p.0, p.1, 1400.0);
    if lon < 123.335 && (41.725..41.845).contains(&lat) && nz > 0.22 {
        return (Zone::Industrial, None);
    }
    for &(clon, clat, rad) in &INDUSTRIAL_DISCS {
        let c = f.m(clon, clat);
        if ((p.0 - c.0).powi(2) + (p.1 - c.1).powi(2)).sqrt() < rad * (0.7 + 0.6 * nz) {
            return (Zone::Industrial, None);
        }
    }
    let ed = r.idx(p.0, p.1).map(|k| r.edge_dist[k]).unwrap_or(0.0) as f64;
    if ed < 800.0 + 600.0 * noise(seed ^ 0x2e, p.0, p.1, 2000.0) {
        return (Zone::Fringe, None);
    }
    if noise(seed ^ 0x3f, p.0, p.1, 900.0) > 0.86 {
        return (Zone::Park, None);
    }
    (Zone::Residential, None)
}

struct Fp {
    c: (f64, f64),
    a: f64,
    b: f64,
    ang: f64,
    /// L-shape cut (fraction of a, fraction of b), or none.
    cut: Option<(f64, f64)>,
}

impl Fp {
    fn ring(&self) -> Vec<(f64, f64)> {
        let (ha, hb) = (self.a / 2.0, self.b / 2.0);
        let local: Vec<(f64, f64)> = match self.cut {
            None => vec![(-ha, -hb), (ha, -hb), (ha, hb), (-ha, hb)],
            Some((ca, cb)) => {
                let (xa, yb) = (ha - ca * self.a, hb - cb * self.b);
                vec![(-ha, -hb), (ha, -hb), (ha, yb), (xa, yb), (xa, hb), (-ha, hb)]
            }
        };
        let (s, c) = self.ang.sin_cos();
        local.into_iter().map(|(x, y)| (self.c.0 + x * c - y * s, self.c.1 + x * s + y * c)).collect()
    }
}

/// Shrinks (a, b) so the rectangle rotated by `ang` fits a `w`×`h` slot.
fn fit(a: f64, b: f64, ang: f64, w: f64, h: f64) -> (f64, f64) {
    let (s, c) = (ang.sin().abs(), ang.cos().abs());
    let (bw, bh) = (a * c + b * s, a * s + b * c);
    let k = (w / bw).min(h / bh).min(1.0);
    (a * k, b * k)
}

struct Gen {
    h: f32,
    use_: BuildingUse,
    roof: &'static str,
    name: Option<Names>,
}

fn residential_height(r: &mut Rng, kind: u8) -> f64 {
    match kind {
        0 => 3.0 * r.below(3) as f64 + 18.0,            // 6–8 storey walk-ups
        1 => 3.0 * (8 + r.below(11)) as f64,            // 8–18 storeys
        _ => (3.0 * (18 + r.below(16)) as f64).min(100.0), // 18–33 storeys
    }
}

fn block_buildings(seed: u64, b: &Block, r: &Raster, out: &mut Vec<(Fp, Gen)>) {
    let mut rng = Rng::new(seed, b.i as u64, b.j as u64);
    let (x0, y0, x1, y1) = b.inner;
    let (w, h) = (x1 - x0, y1 - y0);
    if w < 20.0 || h < 20.0 {
        return;
    }
    let push = |fp: Fp, g: Gen, out: &mut Vec<(Fp, Gen)>| {
        let ring = fp.ring();
        let (mut mnx, mut mny, mut mxx, mut mxy) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for p in &ring {
            mnx = mnx.min(p.0);
            mny = mny.min(p.1);
            mxx = mxx.max(p.0);
            mxy = mxy.max(p.1);
        }
        if mnx < x0 - 1e-6 || mxx > x1 + 1e-6 || mny < y0 - 1e-6 || mxy > y1 + 1e-6 {
            return;
        }
        if r.rect_ok(mnx, mny, mxx, mxy, WATER | ROAD) {
            out.push((fp, g));
        }
    };
    match b.zone {
        Zone::Residential => {
            let kind = if rng.chance(0.33) { 0 } else if rng.chance(0.5) { 1 } else { 2 };
            // street-front shop strip (临街商铺) along the south side of most compounds
            let (y0, h) = if rng.chance(0.8) && h > 80.0 {
                let depth = rng.range(9.0, 12.0);
                let ul = rng.range(14.0, 28.0);
                let g = rng.range(3.0, 5.0);
                let n = (((w + g) / (ul + g)).floor() as usize).max(1);
                let uw = (w - g * (n as f64 - 1.0)) / n as f64;
                for k in 0..n {
                    let c = (x0 + uw / 2.0 + k as f64 * (uw + g), y0 + depth / 2.0);
                    let hh = if rng.chance(0.7) { rng.range(6.0, 8.0) } else { rng.range(3.5, 4.5) };
                    push(Fp { c, a: uw, b: depth, ang: 0.0, cut: None }, Gen { h: hh as f32, use_: BuildingUse::Commercial, roof: "flat", name: None }, out);
                }
                (y0 + depth + 10.0, h - depth - 10.0)
            } else {
                (y0, h)
            };
            if kind == 2 && rng.chance(0.35) {
                // point towers
                let side = rng.range(22.0, 30.0);
                let pitch = side + rng.range(22.0, 34.0);
                let (nc, nr) = (((w - side) / pitch).floor() as usize + 1, ((h - side) / pitch).floor() as usize + 1);
                for cx in 0..nc {
                    for cy in 0..nr {
                        let c = (x0 + side / 2.0 + cx as f64 * pitch, y0 + side / 2.0 + cy as f64 * pitch);
                        let hh = residential_height(&mut rng, 2);
                        push(Fp { c, a: side, b: side * rng.range(0.8, 1.0), ang: 0.0, cut: None }, Gen { h: hh as f32, use_: BuildingUse::Residential, roof: "flat", name: None }, out);
                    }
                }
            } else {
                let depth = rng.range(10.0, 14.0);
                let len = rng.range(30.0, 62.0);
                let gx = rng.range(8.0, 14.0);
                let gap = if kind == 0 { rng.range(14.0, 19.0) } else { rng.range(18.0, 28.0) };
                let nc = (((w + gx) / (len + gx)).floor() as usize).max(1);
                let sw = (w - gx * (nc as f64 - 1.0)) / nc as f64;
                let pitch = depth + gap;
                let nr = ((h - depth) / pitch).floor() as usize + 1;
                let ang = if rng.chance(0.3) { rng.range(-0.08, 0.08) } else { 0.0 };
                for cy in 0..nr {
                    for cx in 0..nc {
                        if rng.chance(0.05) {
                            continue;
                        }
                        let c = (x0 + sw / 2.0 + cx as f64 * (sw + gx), y0 + depth / 2.0 + cy as f64 * pitch);
                        let (a, bb) = fit(sw.min(len), depth, ang, sw, depth + gap * 0.6);
                        let cut = if rng.chance(0.1) { Some((rng.range(0.3, 0.6), rng.range(0.3, 0.5))) } else { None };
                        let hh = residential_height(&mut rng, kind);
                        let use_ = if cy == 0 && rng.chance(0.15) { BuildingUse::Commercial } else { BuildingUse::Residential };
                        push(Fp { c, a, b: bb, ang, cut }, Gen { h: hh as f32, use_, roof: "flat", name: None }, out);
                    }
                }
            }
        }
        Zone::Cbd => {
            let pitch = rng.range(62.0, 88.0);
            let (nc, nr) = (((w / pitch).floor() as usize).max(1), ((h / pitch).floor() as usize).max(1));
            let (sw, sh) = (w / nc as f64, h / nr as f64);
            for cx in 0..nc {
                for cy in 0..nr {
                    if rng.chance(0.12) {
                        continue;
                    }
                    let c = (x0 + (cx as f64 + 0.5) * sw, y0 + (cy as f64 + 0.5) * sh);
                    let ang = if rng.chance(0.4) { rng.range(-0.35, 0.35) } else { 0.0 };
                    let (a, bb) = fit(rng.range(30.0, 55.0), rng.range(28.0, 48.0), ang, sw * 0.85, sh * 0.85);
                    let hh = 80.0 + 220.0 * rng.f().powf(2.2);
                    let use_ = if rng.chance(0.7) { BuildingUse::Office } else { BuildingUse::Commercial };
                    push(Fp { c, a, b: bb, ang, cut: None }, Gen { h: hh as f32, use_, roof: "flat", name: None }, out);
                }
            }
        }
        Zone::Industrial => {
            let mut n3 = || if rng.chance(0.2) { 3 } else { 1 + rng.below(2) };
            let (nc, nr) = (n3(), n3());
            let (sw, sh) = (w / nc as f64, h / nr as f64);
            for cx in 0..nc {
                for cy in 0..nr {
                    let c = (x0 + (cx as f64 + 0.5) * sw, y0 + (cy as f64 + 0.5) * sh);
                    let (a, bb) = (sw * rng.range(0.55, 0.85), sh * rng.range(0.5, 0.8));
                    let hh = rng.range(6.0, 20.0);
                    let cut = if rng.chance(0.12) { Some((rng.range(0.3, 0.5), rng.range(0.3, 0.5))) } else { None };
                    push(Fp { c, a, b: bb, ang: 0.0, cut }, Gen { h: hh as f32, use_: BuildingUse::Industrial, roof: "flat", name: None }, out);
                }
            }
            if rng.chance(0.6) {
                // gatehouse / office
                let c = (x0 + 12.0, y0 + 8.0);
                push(Fp { c, a: 18.0, b: 10.0, ang: 0.0, cut: None }, Gen { h: rng.range(4.0, 12.0) as f32, use_: BuildingUse::Ancillary, roof: "flat", name: None }, out);
            }
        }
        Zone::Fringe => {
            let (px, py) = (rng.range(18.0, 23.0), rng.range(17.0, 22.0));
            let (nc, nr) = ((w / px).floor() as usize, (h / py).floor() as usize);
            let ang0 = rng.range(-0.15, 0.15);
            for cx in 0..nc {
                for cy in 0..nr {
                    if rng.chance(0.15) {
                        continue;
                    }
                    let c = (x0 + (cx as f64 + 0.5) * px, y0 + (cy as f64 + 0.5) * py);
                    let ang = ang0 + rng.range(-0.05, 0.05);
                    let (a, bb) = fit(rng.range(9.0, 14.0), rng.range(7.0, 10.0), ang, px - 3.0, py - 3.0);
                    let u = rng.f();
                    let hh = if u < 0.6 { rng.range(4.0, 7.0) } else if u < 0.9 { rng.range(7.0, 12.0) } else { rng.range(12.0, 15.0) };
                    let (use_, roof) = if rng.chance(0.08) { (BuildingUse::Agricultural, "gabled") } else if hh < 8.0 { (BuildingUse::Residential, "gabled") } else { (BuildingUse::Residential, "flat") };
                    push(Fp { c, a, b: bb, ang, cut: None }, Gen { h: hh as f32, use_, roof, name: None }, out);
                }
            }
        }
        Zone::Education | Zone::Healthcare => {
            let edu = b.zone == Zone::Education;
            let n = 3 + rng.below(3);
            let sh = h / n as f64;
            for k in 0..n {
                // leave the east third for a sports field / garden
                let c = (x0 + w * 0.35, y0 + (k as f64 + 0.5) * sh);
                let (a, bb) = fit(w * rng.range(0.45, 0.62), rng.range(14.0, 22.0), 0.0, w * 0.66, sh * 0.8);
                let hh = if edu { rng.range(12.0, 24.0) } else { rng.range(18.0, 60.0) };
                let name = if k == 0 { b.institution.clone() } else { None };
                let use_ = if edu { BuildingUse::Education } else { BuildingUse::Healthcare };
                push(Fp { c, a, b: bb, ang: 0.0, cut: None }, Gen { h: hh as f32, use_, roof: "flat", name }, out);
            }
        }
        Zone::Park => {
            if !b.riverside && rng.chance(0.3) {
                let c = (x0 + w * rng.range(0.3, 0.7), y0 + h * rng.range(0.3, 0.7));
                push(Fp { c, a: 10.0, b: 8.0, ang: 0.0, cut: None }, Gen { h: rng.range(4.0, 7.0) as f32, use_: BuildingUse::Public, roof: "hipped", name: None }, out);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The whole city

pub const POI_TOTALS: [(PoiKind, usize); 5] = [
    (PoiKind::Hospital, 48),
    (PoiKind::FireStation, 36),
    (PoiKind::PoliceStation, 72),
    (PoiKind::School, 240),
    (PoiKind::Parking, 720),
];

/// Splits `total` over weights by largest remainder (ties by index: deterministic).
fn apportion(total: usize, w: &[usize]) -> Vec<usize> {
    let sum: usize = w.iter().sum();
    if sum == 0 {
        return vec![0; w.len()];
    }
    let mut out: Vec<usize> = w.iter().map(|&x| total * x / sum).collect();
    let mut rem: Vec<(usize, usize)> = w.iter().enumerate().map(|(i, &x)| ((total * x) % sum, i)).collect();
    rem.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut left = total - out.iter().sum::<usize>();
    for (_, i) in rem {
        if left == 0 {
            break;
        }
        if w[i] > 0 {
            out[i] += 1;
            left -= 1;
        }
    }
    out
}

pub fn generate(model: &mut CityModel, seed: u64, report: &mut BuildReport) -> Vec<Zone> {
    let t0 = std::time::Instant::now();
    let f = Frame::new();
    let built = built_up_polygon(&model.districts, OUTLINE_SCALE);
    tracing::info!(area_km2 = geodesy::area_km2(&built), "built-up polygon");
    let built_rings = f.rings_m(&built);
    let (mut minx, mut miny, mut maxx, mut maxy) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for r in &built_rings {
        for p in r {
            minx = minx.min(p.0);
            miny = miny.min(p.1);
            maxx = maxx.max(p.0);
            maxy = maxy.max(p.1);
        }
    }
    let m = 500.0;
    let mut r = Raster::new(minx - m, miny - m, maxx + m, maxy + m, 50.0);
    {
        let mut hits = Vec::new();
        r.scan_fill(&built_rings, |k| hits.push(k));
        for k in hits {
            r.flags[k] |= INSIDE;
        }
    }
    r.mark_edges(&built_rings, EDGE);
    r.compute_edge_dist();
    for (di, d) in model.districts.iter().enumerate() {
        let rings = f.rings_m(&d.geometry);
        let mut hits = Vec::new();
        r.scan_fill(&rings, |k| hits.push(k));
        for k in hits {
            if r.district[k] == 255 {
                r.district[k] = di as u8;
            }
        }
    }

    // --- water: the Hun River and park lakes
    let ctrl: Vec<(f64, f64)> = HUN_RIVER.iter().map(|&(lon, lat)| f.m(lon, lat)).collect();
    let centre = catmull_rom(&ctrl, 14);
    let half = |i: usize| 200.0 + 30.0 * ((i as f64) * 0.11).sin();
    let river_ring = buffer_polyline(&centre, half);
    {
        let reach = 230.0 + 60.0;
        let mut hits = Vec::new();
        for j in 0..r.ny {
            for i in 0..r.nx {
                let c = r.centre(i, j);
                if dist_polyline(c, &centre) < reach + 36.0 {
                    hits.push(j * r.nx + i);
                }
            }
        }
        for k in hits {
            r.flags[k] |= WATER;
        }
    }
    let river_poly = Polygon::new(f.ring_ll(&river_ring), vec![]);
    let src = |id: String| SourceRef { source: 0, id };
    model.water.push(AreaFeature {
        id: 0,
        source: src("river:hun".into()),
        class: "river".into(),
        geometry: MultiPolygon(vec![river_poly.clone()]),
        names: names("浑河", "Hun River"),
    });
    for (k, park) in PARKS.iter().enumerate() {
        if let Some((zh, en, off, (a, b))) = park.4 {
            let c0 = f.m(park.2 .0, park.2 .1);
            let c = (c0.0 + off.0, c0.1 + off.1);
            let ring = ellipse(c, a, b, 48);
            let class = if a * b > 20_000.0 { "lake" } else { "pond" };
            model.water.push(AreaFeature {
                id: 0,
                source: src(format!("lake:{k}")),
                class: class.into(),
                geometry: MultiPolygon(vec![Polygon::new(f.ring_ll(&ring), vec![])]),
                names: names(zh, en),
            });
            for j in 0..r.ny {
                for i in 0..r.nx {
                    if in_ellipse(r.centre(i, j), c, a + 60.0, b + 60.0) {
                        r.flags[j * r.nx + i] |= WATER;
                    }
                }
            }
        }
    }

    // --- roads
    let ring2 = second_ring(&f);
    let ring3 = third_ring();
    r.mark_corridor(&{ let mut v = ring2.clone(); v.push(ring2[0]); v }, half_width(RoadClass::Trunk) + 15.0, ROAD);
    r.mark_corridor(&{ let mut v = ring3.clone(); v.push(ring3[0]); v }, half_width(RoadClass::Motorway) + 15.0, ROAD);
    let mut net = build_grid(seed, &f, &r, (minx, miny, maxx, maxy));
    let pieces2 = node_ring(&mut net, &ring2, RoadClass::Trunk, &r);
    let pieces3 = node_ring(&mut net, &ring3, RoadClass::Motorway, &r);
    let mut rid = 0u64;
    let mut push_road = |model: &mut CityModel, g: &[(f64, f64)], class: RoadClass, nm: Names, layer: i8| {
        model.roads.push(Road {
            id: 0,
            source: SourceRef { source: 0, id: format!("r{rid}") },
            class,
            geometry: LineString(g.iter().map(|&p| f.ll(p)).collect()),
            names: nm,
            lanes: Some(lanes(class)),
            oneway: false,
            max_speed_kmh: None,
            layer,
        });
        rid += 1;
    };
    // a ring piece that is a straight chord between two junctions may coincide with a grid
    // sub-segment (the ring tangent to a grid line): keep only the ring's
    let key = |a: (f64, f64), b: (f64, f64)| {
        let (ka, kb) = ((a.0.to_bits(), a.1.to_bits()), (b.0.to_bits(), b.1.to_bits()));
        if ka <= kb { (ka, kb) } else { (kb, ka) }
    };
    let mut chords: Vec<_> = pieces2.iter().chain(&pieces3).filter(|(g, _)| g.len() == 2).map(|(g, _)| key(g[0], g[1])).collect();
    chords.sort();
    for (g, wet) in &pieces2 {
        push_road(model, g, RoadClass::Trunk, names("二环路", "Second Ring Road"), *wet as i8);
    }
    for (g, wet) in &pieces3 {
        push_road(model, g, RoadClass::Motorway, names("三环", "Third Ring Road"), *wet as i8);
    }
    for e in &mut net.edges {
        if e.removed {
            continue;
        }
        let a = e.a;
        e.splits.sort_by(|p, q| {
            let dp = (p.0 - a.0).powi(2) + (p.1 - a.1).powi(2);
            let dq = (q.0 - a.0).powi(2) + (q.1 - a.1).powi(2);
            dp.total_cmp(&dq)
        });
        let mut pts = vec![e.a];
        pts.extend(e.splits.iter().copied());
        pts.push(e.b);
        pts.dedup();
        for w in pts.windows(2) {
            if chords.binary_search(&key(w[0], w[1])).is_ok() {
                continue;
            }
            push_road(model, w, e.class, e.names.clone(), e.layer);
        }
    }

    // --- blocks
    let (nxl, nyl) = (net.xs.len(), net.ys.len());
    let mut blocks: Vec<Block> = Vec::new();
    for j in 0..nyl - 1 {
        for i in 0..nxl - 1 {
            let (lx, rx, by, ty) = (&net.xs[i], &net.xs[i + 1], &net.ys[j], &net.ys[j + 1]);
            let c = ((lx.pos + rx.pos) / 2.0, (by.pos + ty.pos) / 2.0);
            let fl = r.flag(c.0, c.1);
            if fl & INSIDE == 0 {
                continue;
            }
            let lu = (lx.pos + half_width(lx.class), by.pos + half_width(by.class), rx.pos - half_width(rx.class), ty.pos - half_width(ty.class));
            let sb = |c: RoadClass| half_width(c) + if c == RoadClass::Primary { 12.0 } else { 6.0 };
            let inner = (lx.pos + sb(lx.class), by.pos + sb(by.class), rx.pos - sb(rx.class), ty.pos - sb(ty.class));
            let (mut zone, park) = zone_at(seed, &f, &r, c);
            let wet = r.rect_any(lu.0, lu.1, lu.2, lu.3, WATER);
            if fl & WATER != 0 && park.is_none() {
                // mostly river: leave it to the water
                let riverside_green = !r.rect_any(c.0 - 20.0, c.1 - 20.0, c.0 + 20.0, c.1 + 20.0, WATER);
                if !riverside_green {
                    continue;
                }
            }
            let riverside = wet && park.is_none();
            if riverside {
                zone = Zone::Park;
            }
            let interior = r.rect_ok(lu.0, lu.1, lu.2, lu.3, 0);
            let district = r.idx(c.0, c.1).map(|k| r.district[k]).unwrap_or(255);
            blocks.push(Block { i, j, lu, inner, zone, district, interior, riverside, park, institution: None });
        }
    }
    tracing::info!(blocks = blocks.len(), roads = model.roads.len(), "blocks and roads laid out");

    // --- POIs: allocate per district by buildable block count
    let nd = model.districts.len();
    let short = |d: u8| -> (&'static str, &'static str) {
        let adc = model.districts.get(d as usize).map(|x| x.adcode).unwrap_or(0);
        DIVISIONS.iter().find(|v| v.0 == adc).map(|v| (v.1, v.3)).unwrap_or(("沈阳市", "Shenyang"))
    };
    let mut per_district: Vec<Vec<usize>> = vec![Vec::new(); nd];
    for (bi, b) in blocks.iter().enumerate() {
        if b.zone != Zone::Park && b.interior && (b.district as usize) < nd {
            per_district[b.district as usize].push(bi);
        }
    }
    let weights: Vec<usize> = per_district.iter().map(|v| v.len()).collect();
    let mut taken = vec![false; blocks.len()];
    let mut pois: Vec<Poi> = Vec::new();
    for (kind_i, &(kind, total)) in POI_TOTALS.iter().enumerate() {
        let counts = apportion(total, &weights);
        for (d, &cnt) in counts.iter().enumerate() {
            let mut cand = per_district[d].clone();
            let mut rng = Rng::new(seed, 5000 + kind_i as u64, d as u64);
            for k in (1..cand.len()).rev() {
                let s = rng.below(k + 1);
                cand.swap(k, s);
            }
            let (dzh, den) = short(d as u8);
            let mut made = 0;
            for &bi in &cand {
                if made == cnt {
                    break;
                }
                let b = &blocks[bi];
                let institution = matches!(kind, PoiKind::Hospital | PoiKind::School);
                if institution && (taken[bi] || !matches!(b.zone, Zone::Residential | Zone::Fringe | Zone::Cbd)) {
                    continue;
                }
                if kind == PoiKind::Parking && b.zone == Zone::Industrial && rng.chance(0.7) {
                    continue;
                }
                // POI point: near a corner of the building area, inside the block
                let (x0, y0, x1, y1) = b.inner;
                let corner = rng.below(4);
                let p = match corner {
                    0 => (x0 + 4.0, y0 + 4.0),
                    1 => (x1 - 4.0, y0 + 4.0),
                    2 => (x1 - 4.0, y1 - 4.0),
                    _ => (x0 + 4.0, y1 - 4.0),
                };
                let p = if institution { ((x0 + x1) / 2.0, (y0 + y1) / 2.0) } else { p };
                if !r.rect_ok(p.0 - 1.0, p.1 - 1.0, p.0 + 1.0, p.1 + 1.0, WATER | ROAD) {
                    continue;
                }
                made += 1;
                let n = made;
                let (nm, capacity) = match kind {
                    PoiKind::Hospital => (names(format!("{dzh}第{n}人民医院"), format!("{den} People's Hospital No. {n}")), Some(200 + rng.below(1800) as u32)),
                    PoiKind::FireStation => (names(format!("{dzh}第{n}消防站"), format!("{den} Fire Station {n}")), Some(3 + rng.below(6) as u32)),
                    PoiKind::PoliceStation => (names(format!("{dzh}第{n}派出所"), format!("{den} Police Station {n}")), None),
                    PoiKind::School => {
                        if n % 3 == 0 {
                            (names(format!("{dzh}第{n}中学"), format!("{den} Middle School No. {n}")), Some(800 + rng.below(2200) as u32))
                        } else {
                            (names(format!("{dzh}第{n}小学"), format!("{den} Primary School No. {n}")), Some(400 + rng.below(1400) as u32))
                        }
                    }
                    _ => (names(format!("{dzh}第{n}停车场"), format!("{den} Car Park {n}")), Some(40 + rng.below(560) as u32)),
                };
                if institution {
                    taken[bi] = true;
                    let b = &mut blocks[bi];
                    b.zone = if kind == PoiKind::Hospital { Zone::Healthcare } else { Zone::Education };
                    b.institution = Some(nm.clone());
                }
                pois.push(Poi { id: 0, source: SourceRef { source: 0, id: format!("p{}:{}:{}", kind.as_str(), d, n) }, kind, location: Point(f.ll(p)), names: nm, capacity });
            }
            if made < cnt {
                report.warn(format!("only {made} of {cnt} {} placed in district {dzh}", kind.as_str()));
            }
        }
    }
    for (k, &(zh, en, kind, (lon, lat))) in LANDMARKS.iter().enumerate() {
        let p = f.m(lon, lat);
        if r.flag(p.0, p.1) & INSIDE == 0 {
            report.warn(format!("landmark {zh} outside the built-up area"));
            continue;
        }
        pois.push(Poi { id: 0, source: SourceRef { source: 0, id: format!("l{k}") }, kind, location: Point(Coord { x: lon, y: lat }), names: names(zh, en), capacity: None });
    }
    for (k, park) in PARKS.iter().enumerate() {
        let p = f.m(park.2 .0, park.2 .1);
        if r.flag(p.0, p.1) & INSIDE != 0 && park.0 != "市府广场" {
            pois.push(Poi { id: 0, source: SourceRef { source: 0, id: format!("park{k}") }, kind: PoiKind::Park, location: Point(Coord { x: park.2 .0, y: park.2 .1 }), names: names(park.0, park.1), capacity: None });
        }
    }

    // --- landuse
    let river_mp = MultiPolygon(vec![river_poly]);
    let mut park_rects: Vec<Vec<Polygon<f64>>> = vec![Vec::new(); PARKS.len()];
    for b in &blocks {
        let rect = rect_poly(&f, b.lu.0, b.lu.1, b.lu.2, b.lu.3);
        if let Some(k) = b.park {
            park_rects[k].push(rect);
            continue;
        }
        if !b.interior {
            continue;
        }
        let class = match b.zone {
            Zone::Cbd => "commercial",
            Zone::Residential | Zone::Fringe => "residential",
            Zone::Industrial => "industrial",
            Zone::Park => "park",
            Zone::Education => "education",
            Zone::Healthcare => "healthcare",
        };
        let geometry = if b.riverside { MultiPolygon(vec![rect]).difference(&river_mp) } else { MultiPolygon(vec![rect]) };
        if geometry.0.is_empty() {
            continue;
        }
        model.landuse.push(AreaFeature {
            id: 0,
            source: SourceRef { source: 0, id: format!("b{}_{}", b.i, b.j) },
            class: class.into(),
            geometry,
            names: b.institution.clone().unwrap_or_default(),
        });
    }
    for (k, rects) in park_rects.into_iter().enumerate() {
        if rects.is_empty() {
            continue;
        }
        let mut u = MultiPolygon::<f64>(vec![]);
        for p in rects {
            u = u.union(&MultiPolygon(vec![p]));
        }
        model.landuse.push(AreaFeature { id: 0, source: SourceRef { source: 0, id: format!("park{k}") }, class: "park".into(), geometry: u, names: names(PARKS[k].0, PARKS[k].1) });
    }

    // --- buildings
    let mut progress = Progress::new("shenyang buildings", Some(blocks.len() as u64));
    let mut zones = Vec::with_capacity(360_000);
    let mut buf = Vec::new();
    let mut tower_n = 0;
    model.buildings.reserve(360_000);
    for b in &blocks {
        buf.clear();
        block_buildings(seed, b, &r, &mut buf);
        for (fp, g) in buf.drain(..) {
            let ring = fp.ring();
            let district = r.idx(fp.c.0, fp.c.1).map(|k| r.district[k]).filter(|&d| d != 255).map(|d| d as u16);
            let mut nm = g.name.unwrap_or_default();
            if b.zone == Zone::Cbd && g.h >= 250.0 {
                tower_n += 1;
                nm = names(format!("沈阳中心大厦{tower_n}号"), format!("Shenyang Centre Tower {tower_n}"));
            }
            let n = model.buildings.len();
            model.buildings.push(Building {
                id: n as u32,
                source: SourceRef { source: 0, id: format!("g{n}") },
                footprint: MultiPolygon(vec![Polygon::new(f.ring_ll(&ring), vec![])]),
                height: (g.h * 10.0).round() / 10.0,
                min_height: 0.0,
                height_source: HeightSource::Generated,
                levels: Some(((g.h / 3.0).round() as u16).max(1)),
                use_: g.use_,
                names: nm,
                district,
                level: Level::L2,
                roof_shape: Some(g.roof.to_string()),
                solid: None,
                cim_model: None,
            });
            zones.push(b.zone);
        }
        progress.inc(1);
    }
    progress.finish();
    model.pois = pois;
    model.built_up = Some(built);
    tracing::info!(
        buildings = model.buildings.len(),
        roads = model.roads.len(),
        landuse = model.landuse.len(),
        pois = model.pois.len(),
        secs = t0.elapsed().as_secs_f64(),
        "generated Shenyang"
    );
    zones
}
