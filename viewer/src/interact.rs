//! Interaction: picking, the incident detail panel, planner tools.
//!
//! **Picking.** A ray from the cursor (windowed, left click) or from a scripted pixel
//! (`--click X,Y`, headless, applied once the view is complete and the live state is in) hits,
//! in priority order, an overlay marker (event, unit, sensor: within its drawn radius on screen,
//! the nearest centre first) or the nearest triangle of the drawn tiles (CPU copies of positions
//! and feature ids kept at decode time, [`crate::features`]); the hit triangle's feature id gives
//! the property-table row (a CityTwin building: id, name, height, floors, use, district, source,
//! level). Where no tile is hit, the ray meets the ground (the ellipsoid at the tileset's ground
//! height).
//!
//! **Dispatcher.** A click on an incident selects it through the same path as `--select-event`
//! ([`crate::cockpit::select_event`]): the camera flies to it, the detail panel
//! ([`detail_lines`]) shows category, severity, state, SLA due, place and description, the
//! sensors within [`NEARBY_M`] from the live model and the recommended units in the order
//! `/api/events/{id}/recommend` returns them (name, ETA, distance). `A` (dispatcher mode) assigns
//! the first recommendation, a click on a recommended unit's row assigns that one; the stream
//! brings the change to every viewer. Leader mode never posts.
//!
//! **Planner** (`--mode planner`): building picks show a metadata panel; keys 2/3/4 (headless:
//! `--levels L2,L3,L4`, the levels shown) hide or show the content of a level of detail
//! ([`apply_levels`]: a hidden finer level shows its coarser parent, a hidden coarsest level its
//! finer children where the tileset has them); `M` toggles measuring: two clicks (headless:
//! `--measure X1,Y1:X2,Y2`) give a line and a label with the ground distance, the height
//! difference and the straight 3D distance ([`measure`]).

use crate::app::{Client, Headless, Mode, ViewCamera};
use crate::cockpit::{Cockpit, Dispatch, MarkerInfo, PanelText};
use crate::features::tile_level;
use crate::geodesy::{enu_axes, geodetic_to_ecef, WorldFrame};
use crate::live::LiveModel;
use crate::select::{Camera as SelCamera, Selection, State};
use crate::tileset::{ContentKind, Tree};
use bevy::asset::RenderAssetUsages;
use bevy::math::DVec3;
use bevy::mesh::PrimitiveTopology;
use bevy::prelude::*;
use bevy::text::{FontSize, FontSource, TextFont};
use bevy::ui::{ComputedNode, UiGlobalTransform, UiScale, UiTargetCamera};
use bevy::window::PrimaryWindow;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};

/// Sensors within this distance of an incident are listed in its detail panel.
pub const NEARBY_M: f64 = 1000.0;
/// The measurement line's colour (sRGB).
pub const MEASURE_SRGB: [u8; 3] = [255, 255, 255];

/// The interaction's strings: (key, zh, en).
pub const STRINGS: &[(&str, &str, &str)] = &[
    ("detail.title", "事件详情", "Incident"),
    ("detail.due", "时限", "SLA due"),
    ("detail.overdue", "已超时", "overdue"),
    ("detail.no_due", "无时限", "no deadline"),
    ("detail.place", "位置", "Place"),
    ("detail.description", "描述", "Description"),
    ("detail.sensors", "附近传感器", "Sensors nearby"),
    ("detail.recommend", "推荐力量", "Recommended units"),
    ("detail.assigned", "已派遣", "assigned"),
    ("detail.failed", "派遣失败", "assignment failed"),
    ("detail.assigning", "正在派遣", "assigning"),
    ("detail.hint", "按 A 派遣首选力量，或点击力量行", "press A for the first unit, or click a unit's row"),
    ("meta.title", "建筑", "Building"),
    ("meta.name", "名称", "Name"),
    ("meta.height", "高度", "Height"),
    ("meta.floors", "层数", "Floors"),
    ("meta.use", "用途", "Use"),
    ("meta.district", "区", "District"),
    ("meta.level", "细节层次", "Level of detail"),
    ("meta.source", "来源", "Source"),
    ("measure.ground", "水平距离", "ground"),
    ("measure.height", "高差", "height difference"),
    ("measure.straight", "直线距离", "straight"),
    ("measure.on", "测量：点击两点", "measuring: click two points"),
];

/// The string of `key` (the key itself when missing).
pub fn tr(key: &str, zh: bool) -> &str {
    STRINGS.iter().find(|s| s.0 == key).map(|s| if zh { s.1 } else { s.2 }).unwrap_or(key)
}

#[derive(Debug, Clone, Default)]
pub struct InteractOptions {
    /// scripted clicks (headless), pixels from the top left
    pub clicks: Vec<[f32; 2]>,
    /// a scripted measurement between two pixels
    pub measure: Option<[[f32; 2]; 2]>,
    /// the tileset is a CityTwin one (levels by content name)
    pub citytwin: bool,
}

/// What a ray hit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pick {
    pub pixel: [f32; 2],
    /// event, unit, sensor (markers); building (a feature with a `building` row), feature (a
    /// row of another class), surface (tile content without a feature table), ground
    pub kind: String,
    pub id: Option<i64>,
    pub properties: Value,
    pub lon: f64,
    pub lat: f64,
    /// metres above the ellipsoid
    pub height: f64,
    /// distance from the camera, m
    pub range_m: f64,
    pub tile: Option<String>,
    pub tile_level: Option<u8>,
    /// the feature id (property-table row) in the tile
    pub feature: Option<u32>,
    /// time the pick took (ray casts over the drawn tiles), ms
    pub pick_ms: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Measurement {
    pub from: Pick,
    pub to: Pick,
    /// horizontal distance (in the local east/north plane at the midpoint), m
    pub ground_m: f64,
    /// `to.height − from.height`, m
    pub height_diff_m: f64,
    /// straight 3D (ECEF) distance, m
    pub straight_m: f64,
}

#[derive(Resource, Default)]
pub struct Interact {
    pub opts: InteractOptions,
    pub picks: Vec<Pick>,
    pub building: Option<Pick>,
    pub measuring: bool,
    pub measure_points: Vec<Pick>,
    pub measurement: Option<Measurement>,
    pub scripted_done: bool,
    pub metadata_lines: Vec<String>,
    drawn: Option<Entity>,
    panel: Option<(Entity, Entity)>,
    label: Option<Entity>,
    measure_drawn: bool,
}

impl Interact {
    pub fn new(opts: InteractOptions) -> Interact {
        Interact { opts, ..Default::default() }
    }
}

#[derive(Component)]
struct MeasureLine;

pub struct InteractPlugin;

impl Plugin for InteractPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(PostUpdate, (scripted_input, windowed_input, show_results, gate_headless).chain());
    }
}

// ---------------------------------------------------------------- levels

/// The level filter on a selection: the content of a hidden level is not drawn; in its place
/// the nearest ancestor with content of a shown level (a hidden L3 shows its L2 tile), else its
/// descendants of a shown level inside the view (a hidden L2 shows the L3 tiles under it, where
/// there are any). Substitutes not loaded yet are requested and keep the view incomplete.
pub fn apply_levels(tree: &Tree, cam: &SelCamera, mut sel: Selection, hidden: &[u8], state: &dyn Fn(usize) -> State) -> Selection {
    if hidden.is_empty() {
        return sel;
    }
    let level = |i: usize| tree.nodes[i].content.as_ref().and_then(|c| tile_level(&c.url));
    let is_hidden = |i: usize| level(i).is_some_and(|l| hidden.contains(&l));
    let drawable = |i: usize| matches!(tree.nodes[i].content.as_ref().map(|c| c.kind), Some(ContentKind::Glb | ContentKind::B3dm));
    let planes = cam.frustum();
    let mut render = vec![];
    let mut seen = HashSet::new();
    let mut wanted = vec![];
    let mut complete = sel.complete;
    let mut take = |n: usize, render: &mut Vec<usize>| match state(n) {
        State::Ready => {
            if seen.insert(n) {
                render.push(n);
            }
        }
        State::Failed => {}
        _ => {
            complete = false;
            if seen.insert(n) {
                wanted.push((n, tree.nodes[n].volume.distance(cam.pos)));
            }
        }
    };
    for &i in &sel.render {
        if !is_hidden(i) {
            take(i, &mut render);
            continue;
        }
        let mut up = tree.nodes[i].parent;
        while let Some(p) = up {
            if drawable(p) && !is_hidden(p) {
                break;
            }
            up = tree.nodes[p].parent;
        }
        if let Some(p) = up {
            take(p, &mut render);
            continue;
        }
        let mut stack = tree.nodes[i].children.clone();
        while let Some(c) = stack.pop() {
            if !cam.visible(&planes, &tree.nodes[c].volume) {
                continue;
            }
            if drawable(c) && !is_hidden(c) {
                take(c, &mut render);
            } else {
                stack.extend(tree.nodes[c].children.iter().copied());
            }
        }
    }
    sel.render = render;
    sel.complete = complete;
    sel.wanted.extend(wanted);
    sel.wanted.sort_by(|a, b| a.1.total_cmp(&b.1));
    sel
}

/// Drawn tiles by level: L2, L3, L4 and other (content of no level: trees, third-party tiles).
pub fn drawn_by_level(tree: &Tree, shown: &HashSet<usize>, citytwin: bool) -> BTreeMap<String, usize> {
    let mut m: BTreeMap<String, usize> = ["L2", "L3", "L4", "other"].iter().map(|k| (k.to_string(), 0)).collect();
    for &i in shown {
        let l = if citytwin { tree.nodes.get(i).and_then(|n| n.content.as_ref()).and_then(|c| tile_level(&c.url)) } else { None };
        *m.entry(l.map_or("other".to_string(), |l| format!("L{l}"))).or_default() += 1;
    }
    m
}

// ---------------------------------------------------------------- geometry

/// Where a world-space ray meets the ellipsoid raised by `h` metres (None: it does not).
pub fn ray_ground(frame: &WorldFrame, origin: DVec3, dir: DVec3, h: f64) -> Option<f64> {
    let a = 6378137.0 + h;
    let b = 6378137.0 * (1.0 - 1.0 / 298.257223563) + h;
    let o = frame.to_ecef.transform_point3(origin);
    let d = frame.to_ecef.transform_vector3(dir);
    let s = DVec3::new(1.0 / a, 1.0 / a, 1.0 / b);
    let (o, d) = (o * s, d * s);
    let (qa, qb, qc) = (d.dot(d), 2.0 * o.dot(d), o.dot(o) - 1.0);
    let disc = qb * qb - 4.0 * qa * qc;
    if disc < 0.0 {
        return None;
    }
    let r = disc.sqrt();
    let (t0, t1) = ((-qb - r) / (2.0 * qa), (-qb + r) / (2.0 * qa));
    [t0, t1].into_iter().filter(|t| *t > 0.0).reduce(f64::min)
}

/// The distances between two picked points (geodetic positions of the hits).
pub fn measure(from: &Pick, to: &Pick) -> Measurement {
    let pa = geodetic_to_ecef(from.lon, from.lat, from.height);
    let pb = geodetic_to_ecef(to.lon, to.lat, to.height);
    let d = pb - pa;
    let enu = enu_axes((from.lon + to.lon) / 2.0, (from.lat + to.lat) / 2.0);
    let (e, n) = (d.dot(enu.x_axis), d.dot(enu.y_axis));
    Measurement { from: from.clone(), to: to.clone(), ground_m: e.hypot(n), height_diff_m: to.height - from.height, straight_m: d.length() }
}

/// Picks at a viewport position (logical pixels from the top left): markers first (when
/// given), then the nearest triangle of the drawn tiles, then the ground.
pub fn pick(px: Vec2, camera: &Camera, gt: &GlobalTransform, client: &Client, cp: Option<&Cockpit>) -> Option<Pick> {
    let t0 = std::time::Instant::now();
    let mut p = pick_inner(px, camera, gt, client, cp)?;
    p.pick_ms = t0.elapsed().as_secs_f64() * 1e3;
    Some(p)
}

fn pick_inner(px: Vec2, camera: &Camera, gt: &GlobalTransform, client: &Client, cp: Option<&Cockpit>) -> Option<Pick> {
    let frame = &client.tree.frame;
    let ground = client.tree.ground_height;
    let ray = camera.viewport_to_world(gt, px).ok()?;
    let (o, d) = (ray.origin, *ray.direction);
    let cam_pos = gt.translation();
    let base = |kind: &str, id: Option<i64>, props: Value, w: DVec3| {
        let (lon, lat, height) = frame.geodetic_of_world(w);
        Pick { pixel: [px.x, px.y], kind: kind.to_string(), id, properties: props, lon, lat, height, range_m: (w - cam_pos.as_dvec3()).length(), tile: None, tile_level: None, feature: None, pick_ms: 0.0 }
    };
    if let Some(cp) = cp {
        let right = gt.right().as_vec3();
        let order = |k: &str| ["event", "unit", "sensor"].iter().position(|x| *x == k).unwrap_or(3);
        let mut best: Option<(f32, usize, &MarkerInfo)> = None;
        for m in &cp.markers {
            let Some(s) = m.screen else { continue };
            let c = frame.world_of_geodetic(m.lon, m.lat, ground).as_vec3();
            let Ok(edge) = camera.world_to_viewport(gt, c + right * m.radius_m) else { continue };
            let r = (edge - Vec2::from(s)).length().max(3.0) * 1.3;
            let dist = (px - Vec2::from(s)).length();
            if dist > r {
                continue;
            }
            let key = (dist / r, order(m.kind));
            if best.is_none_or(|b| (key.0, key.1) < (b.0, b.1)) {
                best = Some((key.0, key.1, m));
            }
        }
        if let Some((_, _, m)) = best {
            let props = marker_properties(&cp.model, m);
            let w = frame.world_of_geodetic(m.lon, m.lat, ground);
            return Some(base(m.kind, Some(m.id), props, w));
        }
    }
    let mut hit: Option<(f32, usize, crate::features::Hit)> = None;
    for &i in client.shown.iter() {
        let Some(tp) = client.picks.get(&i) else { continue };
        if let Some(h) = tp.raycast(o, d, 0.5) {
            if hit.as_ref().is_none_or(|b| h.t < b.0) {
                hit = Some((h.t, i, h));
            }
        }
    }
    let ground_t = ray_ground(frame, o.as_dvec3(), d.as_dvec3(), ground);
    match hit {
        Some((t, i, h)) if ground_t.is_none_or(|g| (t as f64) <= g + 0.5) => {
            let tp = &client.picks[&i];
            let url = client.tree.nodes[i].content.as_ref().map(|c| c.url.clone());
            let level = url.as_deref().and_then(tile_level);
            let class = h.table.and_then(|t| tp.tables.get(t)).map(|t| t.class.clone());
            let (kind, id, props) = match tp.row(&h) {
                Some(row) => {
                    let kind = if class.as_deref() == Some("building") { "building" } else { "feature" };
                    (kind, row.get("id").and_then(|v| v.as_i64()), Value::Object(row))
                }
                None => ("surface", h.feature.map(|f| f as i64), json!({})),
            };
            let mut p = base(kind, id, props, h.point.as_dvec3());
            p.tile = url;
            p.tile_level = level.filter(|_| client.levels_by_name);
            p.feature = h.feature;
            Some(p)
        }
        _ => ground_t.map(|t| base("ground", None, json!({}), o.as_dvec3() + d.as_dvec3() * t)),
    }
}

fn marker_properties(m: &LiveModel, mk: &MarkerInfo) -> Value {
    match mk.kind {
        "event" => m.events.get(&mk.id).and_then(|e| serde_json::to_value(e).ok()).unwrap_or(Value::Null),
        "unit" => m.units.get(&mk.id).map(|u| json!({"kind": u.kind, "name": u.name, "status": u.status})).unwrap_or(Value::Null),
        _ => m.sensors.get(&mk.id).map(|s| json!({"name": s.name, "sensor_type": s.sensor_type, "level": s.level, "result": s.result})).unwrap_or(Value::Null),
    }
}

// ---------------------------------------------------------------- detail panel

/// Great-circle distance, m (mean Earth radius).
pub fn haversine_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.1.to_radians(), b.1.to_radians());
    let (dla, dlo) = (la2 - la1, (b.0 - a.0).to_radians());
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * h.sqrt().asin()
}

/// The sensors within [`NEARBY_M`] of a point, nearest first: (datastream, distance m).
pub fn nearby_sensors(m: &LiveModel, lon: f64, lat: f64) -> Vec<(i64, f64)> {
    let mut v: Vec<(i64, f64)> = m.sensors.values().map(|s| (s.datastream, haversine_m((lon, lat), (s.lon, s.lat)))).filter(|x| x.1 <= NEARBY_M).collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    v
}

/// The selected incident's detail panel: its lines and, per line, the unit a click on it
/// assigns (the recommended units' rows).
pub fn detail_lines(m: &LiveModel, d: &Dispatch, zh: bool, now: chrono::DateTime<chrono::Utc>) -> (Vec<String>, Vec<Option<i64>>) {
    let mut lines: Vec<(String, Option<i64>)> = vec![];
    let Some(sel) = d.selected else { return (vec![], vec![]) };
    match m.events.get(&sel) {
        Some(e) => {
            let sev = e.severity as u8;
            lines.push((format!("{} #{}: {} · {}", tr("detail.title", zh), e.id, e.title, if zh { e.state.name_zh() } else { e.state.name_en() }), None));
            let due = match e.due_at {
                Some(t) if t < now => format!("{} ({} {})", tr("detail.overdue", zh), tr("detail.due", zh), (t + chrono::Duration::hours(8)).format("%H:%M")),
                Some(t) => {
                    let s = (t - now).num_seconds().max(0);
                    format!("{} {} ({:02}:{:02})", tr("detail.due", zh), (t + chrono::Duration::hours(8)).format("%H:%M"), s / 60, s % 60)
                }
                None => tr("detail.no_due", zh).to_string(),
            };
            let cat = if zh { e.category.name_zh() } else { e.category.name_en() };
            lines.push((format!("{cat} · {} · {due}", crate::cockpit::tr(&format!("sev.{sev}"), zh)), None));
            let district = e.district_name.clone().unwrap_or_default();
            lines.push((format!("{}: {district} ({:.5}, {:.5})", tr("detail.place", zh), e.location.lon, e.location.lat).replace(":  (", ": ("), None));
            if !e.description.is_empty() {
                lines.push((format!("{}: {}", tr("detail.description", zh), e.description), None));
            }
            let near = nearby_sensors(m, e.location.lon, e.location.lat);
            lines.push((format!("{} (≤ {:.0} km): {}", tr("detail.sensors", zh), NEARBY_M / 1e3, near.len()), None));
            for (ds, dist) in near.iter().take(3) {
                if let Some(s) = m.sensors.get(ds) {
                    lines.push((format!("  {} · {} · {:.0} m · {}", s.name, s.sensor_type, dist, ["●", "▲", "‼"][s.level.min(2) as usize]), None));
                }
            }
        }
        None => lines.push((format!("{} #{sel}", tr("detail.title", zh)), None)),
    }
    if !d.recommended.is_empty() {
        lines.push((format!("{}:", tr("detail.recommend", zh)), None));
        for (k, r) in d.recommended.iter().take(3).enumerate() {
            let id = r["unit"]["id"].as_i64();
            let eta = r["eta_s"].as_f64().unwrap_or(0.0);
            lines.push((
                format!("  {}. #{} {} · ETA {:.0} s · {:.1} km", k + 1, id.unwrap_or(0), r["unit"]["name"].as_str().unwrap_or("?"), eta, r["distance_m"].as_f64().unwrap_or(0.0) / 1e3),
                id,
            ));
        }
    }
    if let Some(u) = d.assigned {
        lines.push((format!("{}: #{u}", tr("detail.assigned", zh)), None));
    } else if let Some(u) = d.pending_assign {
        lines.push((format!("{}: #{u} …", tr("detail.assigning", zh)), None));
    } else if let Some(e) = &d.assign_error {
        lines.push((format!("{}: {e}", tr("detail.failed", zh)), None));
    }
    lines.into_iter().unzip()
}

/// The planner's metadata panel for a building pick.
pub fn metadata_lines(p: &Pick, zh: bool) -> Vec<String> {
    let pr = &p.properties;
    let s = |k: &str| match &pr[k] {
        Value::Null => None,
        Value::String(x) if x.is_empty() => None,
        Value::String(x) => Some(x.clone()),
        v => Some(v.to_string()),
    };
    let mut v = vec![format!("{} #{}", tr("meta.title", zh), p.id.map_or("?".into(), |i| i.to_string()))];
    for (k, key, unit) in [("name", "meta.name", ""), ("height", "meta.height", " m"), ("floors", "meta.floors", ""), ("use", "meta.use", ""), ("district", "meta.district", ""), ("level", "meta.level", ""), ("source", "meta.source", "")] {
        if let Some(x) = s(k) {
            v.push(format!("{}: {x}{unit}", tr(key, zh)));
        }
    }
    if p.kind != "building" {
        v[0] = format!("{} ({})", p.kind, p.tile.as_deref().unwrap_or(""));
    }
    v
}

// ---------------------------------------------------------------- systems

fn apply_pick(it: &mut Interact, cp: Option<&mut Cockpit>, p: Pick, mode: Mode, scripted_unit: Option<i64>) {
    if p.kind == "event" {
        if let (Some(cp), Some(id)) = (cp, p.id) {
            crate::cockpit::select_event(cp, id, scripted_unit, mode);
        }
    } else if matches!(p.kind.as_str(), "building" | "feature" | "surface") {
        it.building = Some(p.clone());
    }
    it.picks.push(p);
}

fn add_measure_point(it: &mut Interact, p: Pick) {
    if it.measure_points.len() >= 2 {
        it.measure_points.clear();
        it.measurement = None;
    }
    it.measure_points.push(p);
    if let [a, b] = &it.measure_points[..] {
        it.measurement = Some(measure(a, b));
    }
    it.measure_drawn = false;
}

/// Headless: `--click` and `--measure`, once the view is complete and the live state ready.
fn scripted_input(mut it: ResMut<Interact>, client: Res<Client>, mut cp: Option<ResMut<Cockpit>>, hl: Res<Headless>, cams: Query<(&Camera, &Transform), With<ViewCamera>>) {
    if !client.opts.headless || it.scripted_done {
        return;
    }
    if it.opts.clicks.is_empty() && it.opts.measure.is_none() {
        it.scripted_done = true;
        return;
    }
    if !(client.complete && hl.live_ready) {
        return;
    }
    let Ok((camera, tf)) = cams.single() else { return };
    let gt = GlobalTransform::from(*tf);
    let unit = cp.as_ref().and_then(|c| c.opts.assign_unit).filter(|_| cp.as_ref().is_some_and(|c| c.opts.select_event.is_none()));
    // the measurement first: a click may fly the camera elsewhere
    if let Some([a, b]) = it.opts.measure {
        let pa = pick(Vec2::from(a), camera, &gt, &client, None);
        let pb = pick(Vec2::from(b), camera, &gt, &client, None);
        match (pa, pb) {
            (Some(pa), Some(pb)) => {
                it.measure_points.clear();
                add_measure_point(&mut it, pa);
                add_measure_point(&mut it, pb);
            }
            _ => warn!("--measure: a point hits nothing (sky)"),
        }
    }
    for c in it.opts.clicks.clone() {
        match pick(Vec2::from(c), camera, &gt, &client, cp.as_deref()) {
            Some(p) => {
                info!("click at ({:.0}, {:.0}): {} {:?}", c[0], c[1], p.kind, p.id);
                apply_pick(&mut it, cp.as_deref_mut(), p, client.opts.mode, unit);
            }
            None => warn!("click at ({:.0}, {:.0}) hits nothing (sky)", c[0], c[1]),
        }
    }
    it.scripted_done = true;
}

#[allow(clippy::too_many_arguments)]
fn windowed_input(
    mut it: ResMut<Interact>,
    mut client: ResMut<Client>,
    mut cp: Option<ResMut<Cockpit>>,
    keys: Option<Res<ButtonInput<KeyCode>>>,
    mouse: Option<Res<ButtonInput<MouseButton>>>,
    windows: Query<&Window, With<PrimaryWindow>>,
    cams: Query<(&Camera, &Transform), With<ViewCamera>>,
    rows: Query<(&PanelText, &ComputedNode, &UiGlobalTransform)>,
    panels: Query<(&ComputedNode, &UiGlobalTransform), With<BackgroundColor>>,
    (script, cursor_pos): (Option<Res<crate::script::InputScript>>, Res<crate::script::CursorPos>),
) {
    // headless: only with --input-script (its events arrive as Bevy input messages)
    if client.opts.headless && script.is_none() {
        return;
    }
    let mode = client.opts.mode;
    if let Some(keys) = keys.as_deref() {
        if mode == Mode::Planner && client.levels_by_name {
            for (k, l) in [(KeyCode::Digit2, 2u8), (KeyCode::Digit3, 3), (KeyCode::Digit4, 4)] {
                if keys.just_pressed(k) {
                    if let Some(i) = client.hidden_levels.iter().position(|&x| x == l) {
                        client.hidden_levels.remove(i);
                    } else {
                        client.hidden_levels.push(l);
                    }
                    info!("levels hidden: {:?}", client.hidden_levels);
                }
            }
            if keys.just_pressed(KeyCode::KeyM) {
                it.measuring = !it.measuring;
                it.measure_points.clear();
                it.measurement = None;
                it.measure_drawn = false;
            }
        }
        if keys.just_pressed(KeyCode::Escape) {
            it.building = None;
            it.measure_points.clear();
            it.measurement = None;
            it.measure_drawn = false;
        }
        if mode == Mode::Dispatcher && keys.just_pressed(KeyCode::KeyA) {
            if let Some(cp) = cp.as_deref_mut() {
                let first = cp.dispatch.recommended.first().and_then(|r| r["unit"]["id"].as_i64());
                if let (Some(u), None) = (first, cp.dispatch.pending_assign) {
                    crate::cockpit::assign_unit(cp, u);
                }
            }
        }
    }
    let Some(mouse) = mouse else { return };
    if !mouse.just_pressed(MouseButton::Left) {
        return;
    }
    // the window's cursor, or (headless, scripted) the last CursorMoved, 1:1 with the image
    let (cursor, scale) = match windows.single() {
        Ok(win) => (win.cursor_position(), win.scale_factor()),
        Err(_) => (cursor_pos.0, 1.0),
    };
    let Some(cursor) = cursor else { return };
    // a recommended unit's row in the detail panel (physical pixels)
    if let Some(cp) = cp.as_deref_mut() {
        let phys = cursor * scale;
        let units = detail_lines(&cp.model, &cp.dispatch, client.opts.zh, chrono::Utc::now()).1;
        for (pt, node, gt) in rows.iter() {
            let PanelText::Detail(i) = *pt else { continue };
            let (_, _, centre) = gt.to_scale_angle_translation();
            if Rect::from_center_size(centre, node.size()).contains(phys) {
                if let (Some(Some(u)), Mode::Dispatcher) = (units.get(i), mode) {
                    crate::cockpit::assign_unit(cp, *u);
                }
                return;
            }
        }
    }
    // a click on a panel (title bar, side panels, ticker, labels) is not a click into the city
    let phys = cursor * scale;
    if panels.iter().any(|(node, gt)| Rect::from_center_size(gt.to_scale_angle_translation().2, node.size()).contains(phys) && node.size().min_element() > 0.0) {
        return;
    }
    let Ok((camera, tf)) = cams.single() else { return };
    let gt = GlobalTransform::from(*tf);
    if it.measuring {
        if let Some(p) = pick(cursor, camera, &gt, &client, None) {
            add_measure_point(&mut it, p);
        }
        return;
    }
    if let Some(p) = pick(cursor, camera, &gt, &client, cp.as_deref()) {
        info!("picked {} {:?} at ({:.5}, {:.5}, {:.1} m)", p.kind, p.id, p.lon, p.lat, p.height);
        apply_pick(&mut it, cp.as_deref_mut(), p, mode, None);
    }
}

/// The measurement line and label, the planner's metadata panel.
#[allow(clippy::too_many_arguments)]
fn show_results(
    mut commands: Commands,
    mut it: ResMut<Interact>,
    client: Res<Client>,
    cp: Option<Res<Cockpit>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut mats: ResMut<Assets<StandardMaterial>>,
    cams: Query<(Entity, &Camera, &Transform), With<ViewCamera>>,
    mut texts: Query<&mut Text>,
    mut nodes: Query<&mut Node>,
    scale: Option<Res<UiScale>>,
) {
    let zh = client.opts.zh;
    it.metadata_lines = it.building.as_ref().map(|p| metadata_lines(p, zh)).unwrap_or_default();
    let Ok((cam, camera, tf)) = cams.single() else { return };
    let gt = GlobalTransform::from(*tf);
    let frame = client.tree.frame;
    if !it.measure_drawn {
        it.measure_drawn = true;
        if let Some(e) = it.drawn.take() {
            commands.entity(e).despawn();
        }
        if it.measure_points.len() == 2 {
            let w: Vec<[f32; 3]> = it.measure_points.iter().map(|p| frame.world_of_geodetic(p.lon, p.lat, p.height).as_vec3().to_array()).collect();
            let mesh = Mesh::new(PrimitiveTopology::LineList, RenderAssetUsages::RENDER_WORLD).with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, w);
            let c = MEASURE_SRGB;
            let mat = mats.add(StandardMaterial { base_color: Color::srgb_u8(c[0], c[1], c[2]), unlit: true, ..default() });
            it.drawn = Some(commands.spawn((Mesh3d(meshes.add(mesh)), MeshMaterial3d(mat), Transform::IDENTITY, MeasureLine)).id());
        }
    }
    let Some(font) = cp.as_ref().filter(|c| c.opts.panels).and_then(|c| c.font.clone()) else { return };
    let k = scale.map_or(1.0, |s| s.0).max(1e-3);
    let text = |size: f32| (TextFont { font: FontSource::Handle(font.clone()), font_size: FontSize::Px(size), ..default() }, TextColor(Color::srgb(1.0, 0.95, 0.7)));
    // measurement label at the line's projected middle
    let label = it.measurement.as_ref().and_then(|m| {
        let mid = (frame.world_of_geodetic(m.from.lon, m.from.lat, m.from.height) + frame.world_of_geodetic(m.to.lon, m.to.lat, m.to.height)) / 2.0;
        let s = camera.world_to_viewport(&gt, mid.as_vec3()).ok()?;
        Some((s, format!("{} {:.1} m · {} {:+.1} m · {} {:.1} m", tr("measure.ground", zh), m.ground_m, tr("measure.height", zh), m.height_diff_m, tr("measure.straight", zh), m.straight_m)))
    });
    let label = label.or_else(|| it.measuring.then(|| (Vec2::new(40.0, 140.0) * k, tr("measure.on", zh).to_string())));
    match (label, it.label) {
        (Some((s, t)), Some(e)) => {
            if let Ok(mut n) = nodes.get_mut(e) {
                n.display = Display::Flex;
                n.left = Val::Px(s.x / k);
                n.top = Val::Px(s.y / k);
            }
            if let Ok(mut tx) = texts.get_mut(e) {
                if tx.0 != t {
                    tx.0 = t;
                }
            }
        }
        (Some((s, t)), None) => {
            let e = commands
                .spawn((
                    Node { position_type: PositionType::Absolute, left: Val::Px(s.x / k), top: Val::Px(s.y / k), padding: UiRect::all(Val::Px(8.0)), ..default() },
                    BackgroundColor(Color::srgba(0.05, 0.05, 0.1, 0.8)),
                    Text::new(t),
                    text(40.0),
                    UiTargetCamera(cam),
                ))
                .id();
            it.label = Some(e);
        }
        (None, Some(e)) => {
            if let Ok(mut n) = nodes.get_mut(e) {
                n.display = Display::None;
            }
        }
        (None, None) => {}
    }
    // the planner's metadata panel (bottom middle, above the ticker)
    let lines = it.metadata_lines.join("\n");
    match (lines.is_empty(), it.panel) {
        (false, None) => {
            let panel = commands
                .spawn((
                    Node {
                        position_type: PositionType::Absolute,
                        left: Val::Px(1060.0),
                        bottom: Val::Px(170.0),
                        width: Val::Px(1000.0),
                        padding: UiRect::all(Val::Px(24.0)),
                        ..default()
                    },
                    BackgroundColor(Color::srgba(0.03, 0.08, 0.16, 0.86)),
                    UiTargetCamera(cam),
                ))
                .id();
            let t = commands.spawn((Text::new(lines), text(36.0), ChildOf(panel))).id();
            it.panel = Some((panel, t));
        }
        (empty, Some((panel, t))) => {
            if let Ok(mut n) = nodes.get_mut(panel) {
                n.display = if empty { Display::None } else { Display::Flex };
            }
            if let Ok(mut tx) = texts.get_mut(t) {
                if tx.0 != lines {
                    tx.0 = lines;
                }
            }
        }
        (true, None) => {}
    }
}

/// Headless: the screenshot also waits for the scripted clicks and measurement.
fn gate_headless(it: Res<Interact>, mut hl: ResMut<Headless>) {
    if !it.scripted_done {
        hl.live_ready = false;
    }
}

/// The summary's interaction part.
pub fn summary(it: &Interact, client: &Client, cp: Option<&Cockpit>) -> Value {
    let hidden = &client.hidden_levels;
    let visible: Vec<String> = [2u8, 3, 4].iter().filter(|l| !hidden.contains(l)).map(|l| format!("L{l}")).collect();
    let (detail, incident) = match cp {
        Some(cp) => {
            let lines = detail_lines(&cp.model, &cp.dispatch, client.opts.zh, chrono::Utc::now()).0;
            let inc = cp.dispatch.selected.map(|id| {
                let e = cp.model.events.get(&id);
                json!({
                    "id": id,
                    "category": e.map(|e| e.category.as_str()),
                    "severity": e.map(|e| e.severity as u8),
                    "state": e.map(|e| e.state.as_str()),
                    "title": e.map(|e| e.title.clone()),
                    "description": e.map(|e| e.description.clone()),
                    "district": e.and_then(|e| e.district_name.clone()),
                    "due_at": e.and_then(|e| e.due_at).map(|t| t.to_rfc3339()),
                    "location": e.map(|e| [e.location.lon, e.location.lat]),
                    "nearby_sensors": e.map(|e| nearby_sensors(&cp.model, e.location.lon, e.location.lat).into_iter().map(|(id, d)| json!({"datastream": id, "distance_m": d})).collect::<Vec<_>>()),
                    "recommended": cp.dispatch.recommended.iter().map(|r| json!({"unit": r["unit"]["id"], "name": r["unit"]["name"], "kind": r["unit"]["kind"], "eta_s": r["eta_s"], "distance_m": r["distance_m"]})).collect::<Vec<_>>(),
                    "assigned": cp.dispatch.assigned,
                })
            });
            (lines, inc)
        }
        None => (vec![], None),
    };
    json!({
        "picks": it.picks,
        "selected_building": it.building,
        "metadata_panel": it.metadata_lines,
        "detail_panel": detail,
        "incident": incident,
        "measurement": it.measurement,
        "levels": {"visible": visible, "drawn": drawn_by_level(&client.tree, &client.shown, it.opts.citytwin)},
    })
}

/// `--levels L2,L3` → the hidden levels (those not named).
pub fn parse_levels(s: &str) -> Result<Vec<u8>, String> {
    let mut shown = vec![];
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match p.to_ascii_uppercase().as_str() {
            "L2" | "2" => shown.push(2),
            "L3" | "3" => shown.push(3),
            "L4" | "4" => shown.push(4),
            _ => return Err(format!("--levels {s}: '{p}' is not L2, L3 or L4")),
        }
    }
    Ok([2u8, 3, 4].into_iter().filter(|l| !shown.contains(l)).collect())
}

/// `X,Y` pixels.
pub fn parse_pixel(s: &str, what: &str) -> Result<[f32; 2], String> {
    let v: Vec<f32> = s.split(',').map(|x| x.trim().parse::<f32>()).collect::<Result<_, _>>().map_err(|_| format!("{what} {s}: expected X,Y pixels"))?;
    match v[..] {
        [x, y] if x.is_finite() && y.is_finite() && x >= 0.0 && y >= 0.0 => Ok([x, y]),
        _ => Err(format!("{what} {s}: expected X,Y pixels (two numbers ≥ 0)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::select;

    #[test]
    fn every_interaction_string_exists_in_both_languages() {
        let src = include_str!("interact.rs");
        let keys: Vec<&str> = src.split("tr(\"").skip(1).filter_map(|r| r.split('"').next()).filter(|k| !k.starts_with("sev.")).collect();
        assert!(keys.len() > 15);
        for k in keys {
            let e = STRINGS.iter().find(|s| s.0 == k).unwrap_or_else(|| panic!("string '{k}' missing"));
            assert!(!e.1.is_empty() && !e.2.is_empty() && e.1 != e.2, "{k}");
        }
    }

    #[test]
    fn levels_and_pixels_parse() {
        assert_eq!(parse_levels("L2,L3,L4").unwrap(), Vec::<u8>::new());
        assert_eq!(parse_levels("L3,l4").unwrap(), vec![2]);
        assert_eq!(parse_levels("").unwrap(), vec![2, 3, 4]);
        assert!(parse_levels("L5").unwrap_err().contains("L5"));
        assert_eq!(parse_pixel("12.5,40", "--click").unwrap(), [12.5, 40.0]);
        assert!(parse_pixel("12", "--click").is_err());
        assert!(parse_pixel("-1,3", "--click").is_err());
    }

    #[test]
    fn measurement_of_a_known_offset() {
        // 100 m north (on the meridian, 1° of latitude ≈ 111.0 km at 41.8°) and 30 m up
        let p = |lat: f64, h: f64| Pick { pixel: [0.0, 0.0], kind: "ground".into(), id: None, properties: Value::Null, lon: 123.43, lat, height: h, range_m: 0.0, tile: None, tile_level: None, feature: None, pick_ms: 0.0 };
        let dlat = 100.0 / 111_052.0; // meridional metres per degree at 41.8° (WGS-84 M·π/180)
        let m = measure(&p(41.8, 0.0), &p(41.8 + dlat, 30.0));
        assert!((m.ground_m - 100.0).abs() < 0.1, "{}", m.ground_m);
        assert!((m.height_diff_m - 30.0).abs() < 1e-9);
        assert!((m.straight_m - (100f64.powi(2) + 900.0).sqrt()).abs() < 0.1, "{}", m.straight_m);
    }

    #[test]
    fn ground_ray_meets_the_ellipsoid_below() {
        let frame = WorldFrame::new(123.43, 41.8, 0.0);
        // straight down from 500 m above the origin: 500 m to the ellipsoid, 480 to h = 20
        let t = ray_ground(&frame, DVec3::new(0.0, 500.0, 0.0), DVec3::NEG_Y, 0.0).unwrap();
        assert!((t - 500.0).abs() < 0.01, "{t}");
        let t = ray_ground(&frame, DVec3::new(0.0, 500.0, 0.0), DVec3::NEG_Y, 20.0).unwrap();
        assert!((t - 480.0).abs() < 0.01, "{t}");
        assert!(ray_ground(&frame, DVec3::new(0.0, 500.0, 0.0), DVec3::Y, 0.0).is_none(), "looking up");
    }

    /// An L2 tile with an L3 child (the CityTwin layout) in a tiny tileset.
    fn tree() -> Tree {
        let region = |h: f64| json!({"region": [2.1542, 0.72956, 2.15430, 0.72958, 0.0, h]});
        let ts = json!({"asset": {"version": "1.1"}, "geometricError": 2000, "root": {
            "boundingVolume": region(40.0), "geometricError": 1000, "refine": "REPLACE", "children": [{
                "boundingVolume": region(40.0), "geometricError": 8, "refine": "REPLACE", "content": {"uri": "content/r.glb"}, "children": [{
                    "boundingVolume": region(40.0), "geometricError": 2, "refine": "REPLACE", "content": {"uri": "content/r-l3-0.glb"}}]}]}});
        Tree::load(ts.to_string().as_bytes(), "http://s/3dtiles/x/tileset.json", "x").unwrap()
    }

    #[test]
    fn hidden_levels_swap_l2_and_l3_tiles() {
        let t = tree();
        let l2 = t.nodes.iter().position(|n| n.content.as_ref().is_some_and(|c| c.url.ends_with("/r.glb"))).unwrap();
        let l3 = t.nodes.iter().position(|n| n.content.as_ref().is_some_and(|c| c.url.ends_with("r-l3-0.glb"))).unwrap();
        let (lon, lat) = ((2.1542f64 + 2.1543) / 2.0, (0.72956f64 + 0.72958) / 2.0);
        let (lon, lat) = (lon.to_degrees(), lat.to_degrees());
        let cam_at = |alt: f64| {
            let pose = crate::geodesy::GeoPose { lon, lat, alt, heading_deg: 0.0, pitch_deg: -90.0 };
            let (pos, fwd, up) = pose.to_world(&t.frame);
            SelCamera { pos, forward: fwd, up, fov_y: 60f64.to_radians(), width_px: 640.0, height_px: 360.0, near: 1.0, far: 1e7 }
        };
        let ready = |_: usize| State::Ready;
        // far: L2 drawn; L2 hidden → its L3 child; L2 and L3 hidden → nothing
        let far = cam_at(2000.0);
        let sel = select(&t, &far, 16.0, &ready);
        assert_eq!(sel.render, vec![l2]);
        assert_eq!(apply_levels(&t, &far, sel.clone(), &[], &ready).render, vec![l2]);
        assert_eq!(apply_levels(&t, &far, sel.clone(), &[2], &ready).render, vec![l3]);
        assert!(apply_levels(&t, &far, sel.clone(), &[2, 3], &ready).render.is_empty());
        // the substitute not loaded yet: requested, the view incomplete
        let unloaded = |i: usize| if i == l3 { State::Unloaded } else { State::Ready };
        let s = apply_levels(&t, &far, sel, &[2], &unloaded);
        assert!(s.render.is_empty() && !s.complete && s.wanted.iter().any(|w| w.0 == l3));
        // near: L3 drawn; L3 hidden → its L2 parent
        let near = cam_at(60.0);
        let sel = select(&t, &near, 16.0, &ready);
        assert_eq!(sel.render, vec![l3]);
        assert_eq!(apply_levels(&t, &near, sel, &[3], &ready).render, vec![l2]);
        let shown: HashSet<usize> = [l2, l3].into_iter().collect();
        let d = drawn_by_level(&t, &shown, true);
        assert_eq!((d["L2"], d["L3"], d["L4"], d["other"]), (1, 1, 0, 0));
        assert_eq!(drawn_by_level(&t, &shown, false)["other"], 2);
    }

    #[test]
    fn detail_lines_list_the_recommendations_in_order_with_their_units() {
        let mut m = LiveModel::default();
        let ev = json!({"id": 5, "category": "fire", "severity": 4, "source": "manual", "state": "reported", "title": "仓库起火", "description": "三楼冒烟",
            "location": {"lon": 123.43, "lat": 41.8}, "district": null, "district_name": "东区", "reported_at": "2026-11-22T10:00:00Z", "updated_at": "2026-11-22T10:00:00Z", "due_at": "2026-11-22T10:30:00Z"});
        m.apply(crate::live::Feed::Msg(serde_json::from_value(json!({"type": "snapshot", "seq": 1, "events": [ev], "units": []})).unwrap()));
        let s = |id: i64, lon: f64| crate::live::SensorView { datastream: id, name: format!("s{id}"), sensor_type: "smoke".into(), lon, lat: 41.8, level: 0, result: Value::Null };
        m.sensors.insert(1, s(1, 123.435)); // ~415 m east
        m.sensors.insert(2, s(2, 123.44)); // ~830 m
        m.sensors.insert(3, s(3, 123.46)); // ~2.5 km: not nearby
        let d = Dispatch {
            selected: Some(5),
            recommended: vec![json!({"unit": {"id": 9, "name": "消防一队"}, "eta_s": 120.0, "distance_m": 900.0}), json!({"unit": {"id": 4, "name": "消防二队"}, "eta_s": 300.0, "distance_m": 2500.0})],
            ..Default::default()
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:20:00Z").unwrap().with_timezone(&chrono::Utc);
        let (lines, units) = detail_lines(&m, &d, true, now);
        let all = lines.join("\n");
        assert!(lines[0].starts_with("事件详情 #5: 仓库起火"), "{all}");
        assert!(all.contains("特别重大") && all.contains("10:00") && all.contains("东区") && all.contains("三楼冒烟"), "{all}");
        assert!(all.contains("附近传感器 (≤ 1 km): 2"), "{all}");
        let i1 = lines.iter().position(|l| l.contains("s1 ")).unwrap();
        let i2 = lines.iter().position(|l| l.contains("s2 ")).unwrap();
        assert!(i1 < i2 && !all.contains("s3 "), "nearest first: {all}");
        let r9 = lines.iter().position(|l| l.contains("#9 消防一队")).unwrap();
        let r4 = lines.iter().position(|l| l.contains("#4 消防二队")).unwrap();
        assert!(r9 < r4, "{all}");
        assert_eq!((units[r9], units[r4], units[0]), (Some(9), Some(4), None));
        assert_eq!(nearby_sensors(&m, 123.43, 41.8).iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        // English
        assert!(detail_lines(&m, &d, false, now).0[0].starts_with("Incident #5"));
    }
}
