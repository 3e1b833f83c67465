//! The cockpit on top of the 3D city: live overlays (event markers, sensors, units) from the
//! [`live`](crate::live) feed, the ground map ([`groundmap`](crate::groundmap)), and the bevy_ui
//! panels — title bar with clock and stream state, theme panels with KPI cards, the event list, an
//! alarm ticker. Layout is designed for 3840×2160 and scaled by the view height (`UiScale` =
//! height / 2160), anchored to the edges, so 1920×1080 is the same layout at half size and
//! 7680×2160 keeps the panels at the sides with a wider city in the middle.
//!
//! Marker palette (sRGB, unlit; [`severity_srgb`], [`sensor_srgb`], [`unit_srgb`]): severity 1 low
//! 40,150,255 · 2 medium 255,210,0 · 3 high 255,96,16 · 4 critical 220,0,40. Shape by category
//! ([`category_shape`]): fire cone, traffic accident cube, gas leak diamond, flooding cylinder,
//! public security capsule, medical flat cylinder ("disc"), others sphere. Markers are sized to a
//! constant screen radius (max(8 px, 1.2 % of the view height)), centred on the ground at the
//! event, and pulse (grow up to 35 %) while new (first 60 s) or past their SLA deadline.
//! Sensors: cubes, 0 normal 0,190,120 · 1 warning 230,170,0 · 2 alarm 255,0,200 (larger, pulsing).
//! Units: cylinders by kind.

use crate::app::{Client, Headless, ViewCamera, FOV_Y_DEG};
use crate::groundmap::{self, Style};
use crate::live::{Feed, LiveModel, StreamState};
use bevy::asset::RenderAssetUsages;
use bevy::mesh::{Indices, PrimitiveTopology};
use bevy::prelude::*;
use bevy::text::{Font, FontSize, FontSource, TextFont};
use bevy::ui::{UiScale, UiTargetCamera};
use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use twin_protocol::Category;

// ---------------------------------------------------------------- strings (zh / en)

/// Every UI string of the cockpit: (key, zh, en).
pub const STRINGS: &[(&str, &str, &str)] = &[
    ("title", "沈阳城市运行指挥舱", "Shenyang City Operations Cockpit"),
    ("mode.leader", "领导模式", "Leader"),
    ("mode.dispatcher", "调度模式", "Dispatcher"),
    ("mode.planner", "规划模式", "Planner"),
    ("stream.connecting", "正在连接…", "connecting…"),
    ("stream.connected", "实时连接", "live"),
    ("stream.reconnecting", "连接中断，正在重连", "connection lost, reconnecting"),
    ("stream.seq", "序号", "seq"),
    ("stream.events", "事件", "events"),
    ("stream.sensors", "传感器", "sensors"),
    ("stream.units", "力量", "units"),
    ("theme.command", "指挥调度", "Command & dispatch"),
    ("theme.ecology", "生态环境", "Environment"),
    ("theme.city", "城市运行", "City operations"),
    ("kpi.events_open", "在办事件数", "Open events"),
    ("kpi.events_overdue", "超时未办结", "Past SLA deadline"),
    ("kpi.events_critical_open", "特别重大事件", "Open critical events"),
    ("kpi.events_today", "今日上报", "Reported today"),
    ("kpi.aqi_1h", "空气质量指数", "Air quality index"),
    ("kpi.pm25_24h", "PM2.5（24小时）", "PM2.5 (24 h)"),
    ("kpi.noise_avg_1h", "环境噪声", "Ambient noise"),
    ("kpi.congestion_index", "拥堵延时指数", "Congestion index"),
    ("kpi.traffic_speed_avg_1h", "路段平均车速", "Mean road speed"),
    ("kpi.parking_occupancy_1h", "停车场占用率", "Car park occupancy"),
    ("kpi.sensors_reporting_1h", "在线传感器", "Sensors reporting"),
    ("kpi.unavailable", "指标服务暂不可用", "indicator service unavailable"),
    ("events.title", "事件列表", "Events"),
    ("events.none", "暂无在办事件", "no open events"),
    ("events.overdue", "已超时", "overdue"),
    ("events.due", "剩余", "due in"),
    ("ticker.title", "告警", "Alarms"),
    ("ticker.none", "暂无告警", "no alarms"),
    ("chart.by_district", "各区排名", "By district"),
    ("legend.title", "分区专题图", "District map"),
    ("legend.unit", "单位", "unit"),
    ("legend.ramp", "按当前数值等距分级", "equal classes of the current values"),
    ("legend.none", "无数据", "no value"),
    ("sev.1", "一般", "low"),
    ("sev.2", "较大", "medium"),
    ("sev.3", "重大", "high"),
    ("sev.4", "特别重大", "critical"),
    ("dispatch.title", "事件详情", "Incident"),
    ("dispatch.recommend", "推荐力量", "Recommended units"),
    ("dispatch.assigned", "已派遣", "assigned"),
    ("dispatch.failed", "派遣失败", "assignment failed"),
    ("tour.theme", "巡览专题", "Tour"),
];

/// The string of `key` in the language chosen (the key itself when missing: visible, not a crash).
pub fn tr(key: &str, zh: bool) -> &str {
    STRINGS.iter().find(|s| s.0 == key).map(|s| if zh { s.1 } else { s.2 }).unwrap_or(key)
}

/// The themes and KPI cards shown (indicator ids of assets/indicators).
pub const THEMES: &[(&str, &[&str])] = &[
    ("theme.command", &["events_open", "events_overdue", "events_critical_open", "events_today"]),
    ("theme.ecology", &["aqi_1h", "pm25_24h", "noise_avg_1h"]),
    ("theme.city", &["congestion_index", "traffic_speed_avg_1h", "parking_occupancy_1h", "sensors_reporting_1h"]),
];

// ---------------------------------------------------------------- palette

pub fn severity_srgb(sev: u8) -> [u8; 3] {
    match sev {
        1 => [40, 150, 255],
        2 => [255, 210, 0],
        3 => [255, 96, 16],
        _ => [220, 0, 40],
    }
}

pub fn sensor_srgb(level: u8) -> [u8; 3] {
    match level {
        0 => [0, 190, 120],
        1 => [230, 170, 0],
        _ => [255, 0, 200],
    }
}

pub fn unit_srgb(kind: &str) -> [u8; 3] {
    match kind {
        "police" => [40, 70, 210],
        "fire" => [170, 30, 110],
        "ambulance" => [250, 250, 250],
        "city_management" => [0, 160, 160],
        _ => [150, 90, 200],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    Sphere,
    Cone,
    Cube,
    Diamond,
    Cylinder,
    Capsule,
    Disc,
}

pub fn category_shape(c: Category) -> Shape {
    match c {
        Category::Fire => Shape::Cone,
        Category::TrafficAccident => Shape::Cube,
        Category::GasLeak => Shape::Diamond,
        Category::Flooding => Shape::Cylinder,
        Category::PublicSecurity => Shape::Capsule,
        Category::Medical => Shape::Disc,
        _ => Shape::Sphere,
    }
}

fn srgb(c: [u8; 3]) -> Color {
    Color::srgb_u8(c[0], c[1], c[2])
}

fn hex_color(s: &str) -> Option<Color> {
    let s = s.strip_prefix('#')?;
    if s.len() != 6 {
        return None;
    }
    let v = u32::from_str_radix(s, 16).ok()?;
    Some(Color::srgb_u8((v >> 16) as u8, (v >> 8) as u8, v as u8))
}

// ---------------------------------------------------------------- resources

#[derive(Debug, Clone)]
pub struct CockpitOptions {
    pub live: bool,
    pub panels: bool,
    pub ground_map: bool,
    pub server: String,
    pub tiles_name: String,
    pub hold: Duration,
    pub wait_events: usize,
    pub select_event: Option<i64>,
    pub assign_unit: Option<i64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MarkerInfo {
    pub id: i64,
    pub kind: &'static str,
    pub severity: Option<u8>,
    pub category: Option<String>,
    pub shape: Shape,
    pub lon: f64,
    pub lat: f64,
    pub screen: Option<[f32; 2]>,
    pub srgb: [u8; 3],
    pub radius_m: f32,
    pub pulsing: bool,
}

#[derive(Resource)]
pub struct Cockpit {
    pub opts: CockpitOptions,
    pub model: LiveModel,
    rx: Option<Mutex<Receiver<Feed>>>,
    ground_rx: Option<Mutex<Receiver<groundmap::Loaded>>>,
    pub ground: Option<groundmap::Counts>,
    pub ground_zoom: Option<u8>,
    pub ground_errors: Vec<String>,
    pub frames: u64,
    /// frames rendered while the stream was down after having been up
    pub outage_frames: u64,
    pub markers: Vec<MarkerInfo>,
    pub panel_texts: Vec<String>,
    /// laid-out heights of the non-empty event rows (physical px), and the UI scale
    pub event_row_heights: Vec<f32>,
    pub ui_scale: f32,
    entities: HashMap<(u8, i64), (Entity, [u8; 3], Shape)>,
    materials: HashMap<[u8; 3], Handle<StandardMaterial>>,
    shapes: HashMap<Shape, Handle<Mesh>>,
    started: Instant,
    pub dispatch: Dispatch,
    dispatch_rx: Option<Mutex<Receiver<DispatchMsg>>>,
    dispatch_tx: Option<Mutex<std::sync::mpsc::Sender<DispatchMsg>>>,
    pub tour: Tour,
    pub labels: Vec<(groundmap::Label, Option<[f32; 2]>)>,
    pub font: Option<Handle<Font>>,
    /// the charts and the choropleth are ready for a headless screenshot (`charts::gate_charts`)
    pub charts_ready: bool,
}

#[derive(Component)]
pub(crate) struct MapLabel(usize);

/// Leader mode: an automatic tour through the themes — each stop a camera flight
/// ([`crate::flight`]: 1.5–3 s, eased, arcing up for long hops) to
/// the theme's focus (command: the most severe open event; environment: the worst
/// air/noise/water sensor; city operations: the worst traffic/parking sensor; none: the
/// overview), then 9 s there. Read-only.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Tour {
    pub theme: Option<usize>,
    pub stops: u32,
    pub focus: Option<[f64; 2]>,
    #[serde(skip)]
    since: Option<Instant>,
    #[serde(skip)]
    home: Option<Transform>,
}

pub const TOUR_STOP_S: f32 = 12.0;

/// The focus of a theme in the live model (lon, lat), if any.
pub fn tour_focus(m: &LiveModel, theme: usize) -> Option<(f64, f64)> {
    match theme {
        0 => m.sorted_events().first().map(|e| (e.location.lon, e.location.lat)),
        t => {
            let types: &[&str] = if t == 1 { &["aqi", "pm25", "noise", "water_level", "gas_lel", "gas_ppm"] } else { &["traffic_flow", "traffic_speed", "parking_occupancy", "elevator_status", "manhole_tilt"] };
            m.sensors.values().filter(|s| types.contains(&s.sensor_type.as_str())).max_by_key(|s| (s.level, -s.datastream)).map(|s| (s.lon, s.lat))
        }
    }
}

/// The dispatcher flow (`--select-event ID [--assign-unit ID]`).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Dispatch {
    pub selected: Option<i64>,
    /// an assignment posted, its answer not in yet
    pub pending_assign: Option<i64>,
    pub flown_to: Option<[f64; 2]>,
    pub recommended: Vec<serde_json::Value>,
    pub assigned: Option<i64>,
    pub assign_status: Option<u16>,
    pub assign_error: Option<String>,
    pub done: bool,
}

pub(crate) enum DispatchMsg {
    /// the recommendations; whether an assignment follows
    Recommend(Result<Vec<serde_json::Value>, String>, bool),
    Assign(u16, serde_json::Value),
    AssignError(String),
}

impl Cockpit {
    pub fn new(opts: CockpitOptions, rx: Option<Receiver<Feed>>) -> Cockpit {
        Cockpit {
            opts,
            model: LiveModel::default(),
            rx: rx.map(Mutex::new),
            ground_rx: None,
            ground: None,
            ground_zoom: None,
            ground_errors: vec![],
            frames: 0,
            outage_frames: 0,
            markers: vec![],
            panel_texts: vec![],
            event_row_heights: vec![],
            ui_scale: 1.0,
            entities: HashMap::new(),
            materials: HashMap::new(),
            shapes: HashMap::new(),
            started: Instant::now(),
            dispatch: Dispatch::default(),
            dispatch_rx: None,
            dispatch_tx: None,
            tour: Tour::default(),
            labels: vec![],
            font: None,
            charts_ready: false,
        }
    }

    fn material(&mut self, c: [u8; 3], mats: &mut Assets<StandardMaterial>) -> Handle<StandardMaterial> {
        self.materials.entry(c).or_insert_with(|| mats.add(StandardMaterial { base_color: srgb(c), unlit: true, ..default() })).clone()
    }

    /// The summary's live part.
    pub fn summary(&self) -> serde_json::Value {
        let m = &self.model;
        let count = |k: &str| self.markers.iter().filter(|x| x.kind == k).count();
        serde_json::json!({
            "stream": {
                "state": m.state,
                "connected": m.state == StreamState::Connected,
                "last_seq": m.last_seq,
                "head": m.head,
                "connects": m.connects,
                "reconnects": m.reconnects,
                "snapshots": m.snapshots,
                "deltas": m.deltas,
                "stale_deltas": m.stale_deltas,
                "resyncs": m.resyncs,
                "last_error": m.last_error,
                "frames": self.frames,
                "outage_frames": self.outage_frames,
            },
            "overlays": {"events": count("event"), "sensors": count("sensor"), "units": count("unit")},
            "event_markers": self.markers.iter().filter(|x| x.kind == "event").collect::<Vec<_>>(),
            "sensor_markers": self.markers.iter().filter(|x| x.kind == "sensor").collect::<Vec<_>>(),
            "unit_markers": self.markers.iter().filter(|x| x.kind == "unit").collect::<Vec<_>>(),
            "indicators": {"polled": m.indicators_polled, "error": m.indicators_error, "values": m.indicators.len()},
            "panel_texts": self.panel_texts,
            "event_rows": {"heights_px": self.event_row_heights, "font_px": EVENT_ROW_PX * self.ui_scale},
            "ground_map": {"counts": self.ground, "zoom": self.ground_zoom, "errors": self.ground_errors,
                "palette": Style::ALL.iter().map(|s| (format!("{s:?}"), s.srgb())).collect::<Vec<_>>()},
            "dispatch": self.dispatch,
            "tour": self.tour,
            "map_labels": self.labels.iter().map(|(l, s)| serde_json::json!({"kind": l.kind, "name": l.name, "lon": l.lon, "lat": l.lat, "screen": s})).collect::<Vec<_>>(),
        })
    }
}

#[derive(Component, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PanelText {
    Title,
    Clock,
    Status,
    ThemeHeader(usize),
    KpiName(usize, usize),
    KpiValue(usize, usize),
    EventsHeader,
    EventRow(usize),
    Ticker,
    Detail(usize),
}

const EVENT_ROWS: usize = 16;
/// Font size of an event row (design px at 3840×2160).
pub const EVENT_ROW_PX: f32 = 34.0;
/// Text width of an event row in ems: the list panel (1050 design px less 2 × 24 of padding)
/// at [`EVENT_ROW_PX`], less a margin for the width estimate of [`fit_line`].
pub const EVENT_ROW_EM: f32 = (1050.0 - 48.0) / EVENT_ROW_PX - 1.0;

/// Estimated advance of a character in ems: CJK, full-width forms and symbols 1, Latin letters,
/// digits and punctuation 0.6 (the bundled font's widest ASCII is ≈ 0.6 em), a space 0.3.
pub fn char_em(c: char) -> f32 {
    match c {
        ' ' => 0.3,
        c if c.is_ascii() => 0.6,
        '·' => 0.6,
        _ => 1.0,
    }
}

/// `s` cut to at most `max_em` (estimated with [`char_em`]) with "…" at the end when it is longer;
/// unchanged when it fits. The layout scales with the view height, so one budget holds at every
/// supported size (the rows are also laid out without wrapping and clipped by their panel).
pub fn fit_line(s: &str, max_em: f32) -> String {
    let total: f32 = s.chars().map(char_em).sum();
    if total <= max_em {
        return s.to_string();
    }
    let budget = max_em - char_em('…');
    let mut w = 0.0;
    let mut out = String::new();
    for c in s.chars() {
        w += char_em(c);
        if w > budget {
            break;
        }
        out.push(c);
    }
    format!("{}…", out.trim_end())
}
pub(crate) const DETAIL_ROWS: usize = 14;

pub struct CockpitPlugin;

impl Plugin for CockpitPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, setup_cockpit.after(crate::app::setup_scene))
            .add_systems(Update, (drain_feed, update_ground, leader_tour, update_overlays, dispatcher, update_panels, gate_headless).chain());
    }
}

pub(crate) fn setup_cockpit(
    mut commands: Commands,
    mut cp: ResMut<Cockpit>,
    client: Res<Client>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut fonts: ResMut<Assets<Font>>,
    mut mats: ResMut<Assets<StandardMaterial>>,
    cams: Query<(Entity, &Transform), With<ViewCamera>>,
) {
    for (s, m) in [
        (Shape::Sphere, meshes.add(Sphere::new(1.0).mesh().ico(3).unwrap())),
        (Shape::Cone, meshes.add(Cone { radius: 1.0, height: 2.0 })),
        (Shape::Cube, meshes.add(Cuboid::new(1.6, 1.6, 1.6))),
        (Shape::Diamond, meshes.add(diamond())),
        (Shape::Cylinder, meshes.add(Cylinder::new(1.0, 2.0))),
        (Shape::Capsule, meshes.add(Capsule3d::new(0.7, 1.2))),
        (Shape::Disc, meshes.add(Cylinder::new(1.2, 1.0))),
    ] {
        cp.shapes.insert(s, m);
    }
    if let (true, Ok((_, tf))) = (cp.opts.live, cams.single()) {
        // bare ground under the whole area around the camera (the tileset's own ground covers
        // only its extent), at the same height and colour
        let b = ground_bbox(&client, tf);
        let g = 32;
        let mut pos = Vec::with_capacity((g + 1) * (g + 1));
        for j in 0..=g {
            for i in 0..=g {
                let lon = b[0] + (b[2] - b[0]) * i as f64 / g as f64;
                let lat = b[1] + (b[3] - b[1]) * j as f64 / g as f64;
                pos.push(client.tree.frame.world_of_geodetic(lon, lat, client.tree.ground_height - 0.3).as_vec3().to_array());
            }
        }
        let mut idx = Vec::new();
        for j in 0..g as u32 {
            for i in 0..g as u32 {
                let a = j * (g as u32 + 1) + i;
                idx.extend_from_slice(&[a, a + 1, a + g as u32 + 2, a, a + g as u32 + 2, a + g as u32 + 1]);
            }
        }
        let n = pos.len();
        let mesh = Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::RENDER_WORLD)
            .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, pos)
            .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, vec![[0.0f32, 1.0, 0.0]; n])
            .with_inserted_indices(Indices::U32(idx));
        let mat = mats.add(StandardMaterial { base_color: srgb(crate::app::GROUND_SRGB), unlit: true, cull_mode: None, ..default() });
        commands.spawn((Mesh3d(meshes.add(mesh)), MeshMaterial3d(mat), Transform::IDENTITY));
    }
    if let (true, true, Ok((_, tf))) = (cp.opts.ground_map, cp.opts.live, cams.single()) {
        let bbox = ground_bbox(&client, tf);
        cp.ground_rx = Some(Mutex::new(groundmap::spawn(
            cp.opts.server.clone(),
            cp.opts.tiles_name.clone(),
            crate::fetch::token(),
            bbox,
            client.tree.frame,
            client.tree.ground_height,
        )));
    }
    if let Some(ev) = cp.opts.select_event {
        let unit = cp.opts.assign_unit;
        select_event(&mut cp, ev, unit, client.opts.mode);
    }
    if !cp.opts.panels {
        return;
    }
    let Ok((cam, _)) = cams.single() else { return };
    let (_, h) = client.opts.size;
    commands.insert_resource(UiScale(h as f32 / 2160.0));
    let font = fonts.add(Font::from_bytes(include_bytes!("../../assets/fonts/NotoSansCJKsc-Regular-subset.otf").to_vec()));
    cp.font = Some(font.clone());
    let text = |size: f32, c: Color| (TextFont { font: FontSource::Handle(font.clone()), font_size: FontSize::Px(size), ..default() }, TextColor(c));
    let panel_bg = BackgroundColor(Color::srgba(0.03, 0.08, 0.16, 0.86));
    let card_bg = BackgroundColor(Color::srgba(0.08, 0.16, 0.28, 0.9));
    let white = Color::srgb(0.92, 0.95, 1.0);
    let dim = Color::srgb(0.62, 0.72, 0.85);
    // title bar
    let bar = commands
        .spawn((
            Node {
                position_type: PositionType::Absolute,
                left: Val::Px(0.0),
                top: Val::Px(0.0),
                width: Val::Percent(100.0),
                height: Val::Px(120.0),
                padding: UiRect::axes(Val::Px(40.0), Val::Px(16.0)),
                justify_content: JustifyContent::SpaceBetween,
                align_items: AlignItems::Center,
                ..default()
            },
            panel_bg,
            UiTargetCamera(cam),
        ))
        .id();
    commands.spawn((Text::new(""), text(60.0, white), PanelText::Title, ChildOf(bar)));
    commands.spawn((Text::new(""), text(40.0, dim), PanelText::Status, ChildOf(bar)));
    commands.spawn((Text::new(""), text(48.0, white), PanelText::Clock, ChildOf(bar)));
    // left: theme panels with KPI cards
    let left = commands
        .spawn((
            Node {
                position_type: PositionType::Absolute,
                left: Val::Px(30.0),
                top: Val::Px(150.0),
                width: Val::Px(1000.0),
                bottom: Val::Px(170.0),
                flex_direction: FlexDirection::Column,
                padding: UiRect::all(Val::Px(24.0)),
                row_gap: Val::Px(18.0),
                ..default()
            },
            panel_bg,
            UiTargetCamera(cam),
        ))
        .id();
    for (t, (_, ids)) in THEMES.iter().enumerate() {
        commands.spawn((Text::new(""), text(44.0, Color::srgb(0.45, 0.8, 1.0)), PanelText::ThemeHeader(t), ChildOf(left)));
        let grid = commands.spawn((Node { flex_direction: FlexDirection::Row, flex_wrap: FlexWrap::Wrap, column_gap: Val::Px(16.0), row_gap: Val::Px(16.0), ..default() }, ChildOf(left))).id();
        for k in 0..ids.len() {
            let card = commands
                .spawn((Node { width: Val::Px(460.0), height: Val::Px(130.0), flex_direction: FlexDirection::Column, padding: UiRect::all(Val::Px(12.0)), ..default() }, card_bg, ChildOf(grid)))
                .id();
            commands.spawn((Text::new(""), text(30.0, dim), PanelText::KpiName(t, k), ChildOf(card)));
            commands.spawn((Text::new(""), text(56.0, white), PanelText::KpiValue(t, k), ChildOf(card)));
            // the last 24 h (charts.rs draws it)
            let spark = Node { position_type: PositionType::Absolute, right: Val::Px(12.0), bottom: Val::Px(10.0), width: Val::Px(150.0), height: Val::Px(52.0), ..default() };
            commands.spawn((spark, ImageNode::default(), crate::charts::SparkSlot(t, k), ChildOf(card)));
        }
        // the districts' values of the theme's main indicator (charts.rs fills it)
        commands.spawn((Node { flex_direction: FlexDirection::Column, row_gap: Val::Px(4.0), ..default() }, crate::charts::BarSlot(t), ChildOf(left)));
    }
    // right: event list (and the dispatcher's details)
    let right = commands
        .spawn((
            Node {
                position_type: PositionType::Absolute,
                right: Val::Px(30.0),
                top: Val::Px(150.0),
                width: Val::Px(1050.0),
                bottom: Val::Px(170.0),
                flex_direction: FlexDirection::Column,
                padding: UiRect::all(Val::Px(24.0)),
                row_gap: Val::Px(10.0),
                overflow: Overflow::clip_x(),
                ..default()
            },
            panel_bg,
            UiTargetCamera(cam),
        ))
        .id();
    commands.spawn((Text::new(""), text(44.0, Color::srgb(0.45, 0.8, 1.0)), PanelText::EventsHeader, ChildOf(right)));
    for i in 0..EVENT_ROWS {
        commands.spawn((Text::new(""), text(EVENT_ROW_PX, white), bevy::text::TextLayout::no_wrap(), PanelText::EventRow(i), ChildOf(right)));
    }
    for i in 0..DETAIL_ROWS {
        commands.spawn((Text::new(""), text(34.0, Color::srgb(1.0, 0.85, 0.4)), PanelText::Detail(i), ChildOf(right)));
    }
    // bottom: alarm ticker
    let ticker = commands
        .spawn((
            Node {
                position_type: PositionType::Absolute,
                left: Val::Px(0.0),
                bottom: Val::Px(0.0),
                width: Val::Percent(100.0),
                height: Val::Px(130.0),
                padding: UiRect::axes(Val::Px(40.0), Val::Px(30.0)),
                overflow: Overflow::clip(),
                ..default()
            },
            BackgroundColor(Color::srgba(0.2, 0.02, 0.05, 0.85)),
            UiTargetCamera(cam),
        ))
        .id();
    // scrolled by charts.rs (its left edge moves; the strip clips it)
    let scroll = Node { position_type: PositionType::Absolute, left: Val::Px(0.0), top: Val::Px(30.0), ..default() };
    commands.spawn((scroll, Text::new(""), text(48.0, Color::srgb(1.0, 0.88, 0.88)), bevy::text::TextLayout::no_wrap(), crate::charts::TickerText, ChildOf(ticker)));
}

/// The ground map's area: around where the camera looks at the ground (or below it), twice the
/// camera's height above the ground in each direction, 0.5…10 km.
fn ground_bbox(client: &Client, tf: &Transform) -> [f64; 4] {
    let frame = &client.tree.frame;
    let (lon0, lat0, _) = frame.origin;
    let y0 = frame.world_of_geodetic(lon0, lat0, client.tree.ground_height).y;
    let p = tf.translation.as_dvec3();
    let f = (tf.rotation * Vec3::NEG_Z).as_dvec3();
    let height = (p.y - y0).max(1.0);
    let hit = if f.y < -0.05 { p + f * ((y0 - p.y) / f.y).min(20_000.0) } else { bevy::math::DVec3::new(p.x, y0, p.z) };
    let (lon, lat, _) = frame.geodetic_of_world(hit);
    let r = (height * 2.0).clamp(500.0, 10_000.0);
    let dlon = r / (111_320.0 * lat.to_radians().cos());
    let dlat = r / 110_950.0;
    [lon - dlon, lat - dlat, lon + dlon, lat + dlat]
}

/// A regular octahedron of radius 1 (the gas-leak "diamond").
fn diamond() -> Mesh {
    let v = [[1.0f32, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.3, 0.0], [0.0, -1.3, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]];
    let faces = [[0, 2, 4], [4, 2, 1], [1, 2, 5], [5, 2, 0], [4, 3, 0], [1, 3, 4], [5, 3, 1], [0, 3, 5]];
    let mut pos = vec![];
    for f in faces {
        for i in f {
            pos.push(v[i]);
        }
    }
    Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::RENDER_WORLD).with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, pos).with_computed_flat_normals()
}

fn drain_feed(mut cp: ResMut<Cockpit>) {
    cp.frames += 1;
    let feeds: Vec<Feed> = match &cp.rx {
        Some(rx) => match rx.lock() {
            Ok(rx) => rx.try_iter().take(10_000).collect(),
            Err(_) => vec![],
        },
        None => vec![],
    };
    for f in feeds {
        cp.model.apply(f);
    }
    if cp.model.connects > 0 && cp.model.state != StreamState::Connected {
        cp.outage_frames += 1;
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn update_ground(
    mut commands: Commands,
    mut cp: ResMut<Cockpit>,
    client: Res<Client>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut mats: ResMut<Assets<StandardMaterial>>,
    cams: Query<(Entity, &Camera, &GlobalTransform), With<ViewCamera>>,
    mut labels: Query<(&MapLabel, &mut Node)>,
    scale: Res<UiScale>,
    mut chor: Option<ResMut<crate::choropleth::Choropleth>>,
) {
    // map names: UI texts at the projected positions (districts, water, parks, landmarks)
    if let Ok((_, camera, gt)) = cams.single() {
        let ground = client.tree.ground_height;
        let k = scale.0.max(1e-3);
        let shown: Vec<Option<[f32; 2]>> = cp
            .labels
            .iter()
            .map(|(l, _)| {
                let w = client.tree.frame.world_of_geodetic(l.lon, l.lat, ground).as_vec3();
                camera.world_to_viewport(gt, w).ok().map(|v| [v.x, v.y])
            })
            .collect();
        for (i, s) in shown.into_iter().enumerate() {
            cp.labels[i].1 = s;
        }
        for (ml, mut node) in labels.iter_mut() {
            match cp.labels.get(ml.0).and_then(|l| l.1) {
                Some([x, y]) => {
                    node.display = Display::Flex;
                    node.left = Val::Px(x / k);
                    node.top = Val::Px(y / k);
                }
                None => node.display = Display::None,
            }
        }
    }
    let got = match &cp.ground_rx {
        Some(rx) => rx.lock().ok().and_then(|r| r.try_recv().ok()),
        None => return,
    };
    let Some(mut l) = got else { return };
    cp.ground_rx = None;
    if let Some(ch) = chor.as_mut() {
        ch.pending = Some(std::mem::take(&mut l.districts));
    }
    for e in &l.errors {
        warn!("{e}");
    }
    info!("ground map: {:?} at z{:?}", l.counts, l.zoom);
    cp.ground_errors = l.errors;
    if let (Some(font), true, Ok((cam, _, _))) = (cp.font.clone(), cp.opts.panels, cams.single()) {
        for (i, lb) in l.labels.iter().enumerate() {
            let text = if client.opts.zh { lb.name.clone() } else { lb.name_en.clone().unwrap_or_else(|| lb.name.clone()) };
            let size = if lb.kind == "district" { 56.0 } else { 40.0 };
            commands.spawn((
                Node { position_type: PositionType::Absolute, display: Display::None, ..default() },
                Text::new(text),
                TextFont { font: FontSource::Handle(font.clone()), font_size: FontSize::Px(size), ..default() },
                TextColor(Color::srgb(0.1, 0.1, 0.15)),
                MapLabel(i),
                UiTargetCamera(cam),
            ));
        }
    }
    cp.labels = l.labels.into_iter().map(|x| (x, None)).collect();
    cp.ground = Some(l.counts);
    cp.ground_zoom = l.zoom;
    for (style, part) in l.parts {
        if part.indices.is_empty() {
            continue;
        }
        let n = part.positions.len();
        let mesh = Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::RENDER_WORLD)
            .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, part.positions)
            .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, vec![[0.0f32, 1.0, 0.0]; n])
            .with_inserted_indices(Indices::U32(part.indices));
        let mat = mats.add(StandardMaterial { base_color: srgb(style.srgb()), unlit: true, cull_mode: None, ..default() });
        commands.spawn((Mesh3d(meshes.add(mesh)), MeshMaterial3d(mat), Transform::IDENTITY));
    }
}

fn pulse(t: f32) -> f32 {
    1.0 + 0.35 * (0.5 + 0.5 * (t * std::f32::consts::TAU / 1.2).sin())
}

#[allow(clippy::too_many_arguments)]
fn update_overlays(
    mut commands: Commands,
    mut cp: ResMut<Cockpit>,
    client: Res<Client>,
    time: Res<Time>,
    cams: Query<(&Camera, &GlobalTransform), With<ViewCamera>>,
    mut mats: ResMut<Assets<StandardMaterial>>,
) {
    if !cp.opts.live {
        return;
    }
    let Ok((camera, cam_gt)) = cams.single() else { return };
    let cam_pos = cam_gt.translation();
    let h = client.opts.size.1 as f32;
    let px = (0.012 * h).max(8.0);
    let k = (FOV_Y_DEG as f32 / 2.0).to_radians().tan() * px / (h / 2.0);
    let t = time.elapsed_secs();
    let now = chrono::Utc::now();
    let now_ms = now.timestamp_millis();
    let ground = client.tree.ground_height;
    // (kind, id, lon, lat, colour, shape, size factor, pulsing, severity, category)
    let mut want: Vec<(u8, i64, f64, f64, [u8; 3], Shape, f32, bool, Option<u8>, Option<String>)> = vec![];
    for e in cp.model.events.values() {
        let new = cp.model.first_seen.get(&e.id).is_some_and(|t| t.elapsed() < Duration::from_secs(60));
        let overdue = e.due_at.is_some_and(|d| d < now);
        let sev = e.severity as u8;
        want.push((0, e.id, e.location.lon, e.location.lat, severity_srgb(sev), category_shape(e.category), 1.0, new || overdue, Some(sev), Some(e.category.as_str().to_string())));
    }
    for s in cp.model.sensors.values() {
        want.push((1, s.datastream, s.lon, s.lat, sensor_srgb(s.level), Shape::Cube, if s.level >= 2 { 0.8 } else { 0.5 }, s.level >= 2, None, Some(s.sensor_type.clone())));
    }
    for u in cp.model.units.values() {
        let (lon, lat) = u.position_at(now_ms);
        want.push((2, u.id, lon, lat, unit_srgb(&u.kind), Shape::Cylinder, 0.6, false, None, Some(u.kind.clone())));
    }
    let mut markers = Vec::with_capacity(want.len());
    let mut keep = std::collections::HashSet::new();
    for (kind, id, lon, lat, colour, shape, size, pulsing, sev, cat) in want {
        let world = client.tree.frame.world_of_geodetic(lon, lat, ground).as_vec3();
        let r = (world - cam_pos).length() * k * size;
        let s = r * if pulsing { pulse(t) } else { 1.0 };
        let mut tf = Transform::from_translation(world).with_scale(Vec3::splat(s));
        if shape == Shape::Diamond {
            tf.rotate_y(std::f32::consts::FRAC_PI_4);
        }
        let key = (kind, id);
        keep.insert(key);
        let mat = cp.material(colour, &mut mats);
        match cp.entities.get(&key).copied() {
            Some((e, c, sh)) if sh == shape => {
                if c != colour {
                    commands.entity(e).insert(MeshMaterial3d(mat));
                    cp.entities.insert(key, (e, colour, shape));
                }
                commands.entity(e).insert(tf);
            }
            other => {
                if let Some((e, _, _)) = other {
                    commands.entity(e).despawn();
                }
                let mesh = cp.shapes[&shape].clone();
                let e = commands.spawn((Mesh3d(mesh), MeshMaterial3d(mat), tf)).id();
                cp.entities.insert(key, (e, colour, shape));
            }
        }
        let screen = camera.world_to_viewport(cam_gt, world).ok().map(|v| [v.x, v.y]);
        markers.push(MarkerInfo {
            id,
            kind: ["event", "sensor", "unit"][kind as usize],
            severity: sev,
            category: cat,
            shape,
            lon,
            lat,
            screen,
            srgb: colour,
            radius_m: r,
            pulsing,
        });
    }
    let gone: Vec<(u8, i64)> = cp.entities.keys().filter(|k| !keep.contains(k)).copied().collect();
    for k in gone {
        if let Some((e, _, _)) = cp.entities.remove(&k) {
            commands.entity(e).despawn();
        }
    }
    cp.markers = markers;
}

/// Selects event `ev` (the `--select-event` flow and a click on its marker): a fresh detail
/// state, the camera flies to it, recommendations are fetched and, outside leader mode, `unit`
/// is assigned. Leader mode is read-only: it never posts.
pub fn select_event(cp: &mut Cockpit, ev: i64, unit: Option<i64>, mode: crate::app::Mode) {
    if !cp.opts.live {
        return;
    }
    cp.dispatch = Dispatch { selected: Some(ev), ..Dispatch::default() };
    let unit = match (unit, mode) {
        (Some(_), crate::app::Mode::Leader) => {
            cp.dispatch.assign_error = Some("leader mode is read-only: no assignment posted".into());
            None
        }
        (u, _) => u,
    };
    cp.dispatch.pending_assign = unit;
    let (tx, rx) = std::sync::mpsc::channel();
    cp.dispatch_rx = Some(Mutex::new(rx));
    cp.dispatch_tx = Some(Mutex::new(tx.clone()));
    let server = cp.opts.server.clone();
    std::thread::spawn(move || dispatch_thread(server, ev, unit, tx));
}

/// Assigns `unit` to the selected event (key A or a click on a recommended unit's row).
pub fn assign_unit(cp: &mut Cockpit, unit: i64) {
    let (Some(ev), Some(tx)) = (cp.dispatch.selected, cp.dispatch_tx.as_ref().and_then(|t| t.lock().ok().map(|t| t.clone()))) else { return };
    cp.dispatch.done = false;
    cp.dispatch.assign_error = None;
    cp.dispatch.assign_status = None;
    cp.dispatch.pending_assign = Some(unit);
    let server = cp.opts.server.clone();
    std::thread::spawn(move || post_assign(&crate::fetch::agent(), &server, ev, unit, &tx));
}

fn dispatch_thread(server: String, ev: i64, unit: Option<i64>, tx: std::sync::mpsc::Sender<DispatchMsg>) {
    let agent = crate::fetch::agent();
    let url = format!("{server}/api/events/{ev}/recommend?k=3");
    let r = crate::fetch::fetch(&agent, &url).and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| format!("{url}: {e}"))).map(|v| {
        v["recommendations"].as_array().cloned().unwrap_or_default()
    });
    let _ = tx.send(DispatchMsg::Recommend(r, unit.is_some()));
    let Some(unit) = unit else { return };
    post_assign(&agent, &server, ev, unit, &tx);
}

fn post_assign(agent: &ureq::Agent, server: &str, ev: i64, unit: i64, tx: &std::sync::mpsc::Sender<DispatchMsg>) {
    let url = format!("{server}/api/events/{ev}/assign");
    let body = serde_json::json!({"unit_id": unit, "actor": "viewer:dispatcher"});
    let mut rq = agent.post(&url).header("content-type", "application/json");
    if let Some(t) = crate::fetch::token() {
        rq = rq.header("Authorization", &format!("Bearer {t}"));
    }
    match rq.send(body.to_string().as_bytes()) {
        Ok(mut r) => {
            let st = r.status().as_u16();
            let v = r.body_mut().read_json::<serde_json::Value>().unwrap_or(serde_json::Value::Null);
            let _ = tx.send(DispatchMsg::Assign(st, v));
        }
        Err(e) => {
            let _ = tx.send(DispatchMsg::AssignError(format!("POST {url}: {e}")));
        }
    }
}

/// Dispatcher: the selected event's details, recommendations and the assignment's answer; the
/// camera flies to the event (a view from the south, 45° down) once the event is known.
fn dispatcher(mut cp: ResMut<Cockpit>, client: Res<Client>, cams: Query<&Transform, With<ViewCamera>>, mut flights: ResMut<crate::flight::Flights>) {
    let Some(sel) = cp.dispatch.selected else { return };
    let msgs: Vec<DispatchMsg> = match &cp.dispatch_rx {
        Some(rx) => rx.lock().map(|r| r.try_iter().collect()).unwrap_or_default(),
        None => vec![],
    };
    for m in msgs {
        match m {
            DispatchMsg::Recommend(r, assign_follows) => {
                match r {
                    Ok(v) => cp.dispatch.recommended = v,
                    Err(e) => cp.dispatch.assign_error = Some(e),
                }
                if !assign_follows {
                    cp.dispatch.done = true;
                }
            }
            DispatchMsg::Assign(st, v) => {
                cp.dispatch.pending_assign = None;
                cp.dispatch.assign_status = Some(st);
                if st == 200 {
                    cp.dispatch.assigned = v["unit"]["id"].as_i64();
                } else {
                    cp.dispatch.assign_error = Some(v["error"].as_str().unwrap_or("").to_string());
                }
                cp.dispatch.done = true;
            }
            DispatchMsg::AssignError(e) => {
                cp.dispatch.pending_assign = None;
                cp.dispatch.assign_error = Some(e);
                cp.dispatch.done = true;
            }
        }
    }
    if cp.dispatch.flown_to.is_none() {
        if let Some(e) = cp.model.events.get(&sel) {
            let (lon, lat) = (e.location.lon, e.location.lat);
            let pose = crate::geodesy::GeoPose { lon, lat: lat - 600.0 / 110_950.0, alt: client.tree.ground_height + 600.0, heading_deg: 0.0, pitch_deg: -45.0 };
            let (pos, fwd, up) = pose.to_world(&client.tree.frame);
            if let Ok(t) = cams.single() {
                let to = Transform::from_translation(pos.as_vec3()).looking_to(fwd.as_vec3(), up.as_vec3());
                let now = flights.now_s();
                flights.start(*t, to, "select", &client.tree.frame, now);
            }
            cp.dispatch.flown_to = Some([lon, lat]);
        }
    }
}

fn leader_tour(mut cp: ResMut<Cockpit>, client: Res<Client>, cams: Query<&Transform, With<ViewCamera>>, mut flights: ResMut<crate::flight::Flights>) {
    if client.opts.mode != crate::app::Mode::Leader {
        return;
    }
    let Ok(cam) = cams.single() else { return };
    if cp.tour.home.is_none() {
        cp.tour.home = Some(*cam);
    }
    // the first stop waits for the live state (the first snapshot, or 20 s of trying): its
    // focus is the model's most severe event or worst sensor, unknown before
    if cp.tour.since.is_none() && cp.opts.live && cp.model.snapshots == 0 && cp.started.elapsed() < Duration::from_secs(20) {
        return;
    }
    let due = cp.tour.since.is_none_or(|t| t.elapsed().as_secs_f32() >= TOUR_STOP_S);
    if due {
        let theme = cp.tour.theme.map(|t| (t + 1) % THEMES.len()).unwrap_or(0);
        let focus = tour_focus(&cp.model, theme);
        let to = match focus {
            Some((lon, lat)) => {
                let pose = crate::geodesy::GeoPose { lon, lat: lat - 700.0 / 110_950.0, alt: client.tree.ground_height + 700.0, heading_deg: 0.0, pitch_deg: -45.0 };
                let (pos, fwd, up) = pose.to_world(&client.tree.frame);
                Transform::from_translation(pos.as_vec3()).looking_to(fwd.as_vec3(), up.as_vec3())
            }
            None => cp.tour.home.unwrap_or(*cam),
        };
        let now = flights.now_s();
        flights.start(*cam, to, "tour", &client.tree.frame, now);
        let t = &mut cp.tour;
        t.theme = Some(theme);
        t.stops += 1;
        t.focus = focus.map(|(a, b)| [a, b]);
        t.since = Some(Instant::now());
    }
}

fn fmt_value(v: &serde_json::Value, zh: bool) -> (String, Option<Color>) {
    let Some(x) = v.get("value").and_then(|x| x.as_f64()) else { return ("—".into(), None) };
    let unit = v.get("unit").and_then(|u| u.as_str()).unwrap_or("");
    let unit = crate::units::unit_text(unit, zh);
    let num = if x.fract() == 0.0 && x.abs() < 1e9 { format!("{x:.0}") } else if x.abs() >= 100.0 { format!("{x:.0}") } else { format!("{x:.1}") };
    let c = v.get("color").and_then(|c| c.as_str()).and_then(hex_color);
    (if unit.is_empty() { num } else { format!("{num} {unit}") }, c)
}

pub(crate) fn update_panels(
    mut cp: ResMut<Cockpit>,
    client: Res<Client>,
    mut q: Query<(&PanelText, &mut Text, &mut TextColor, Option<&bevy::ui::ComputedNode>)>,
    mut scale: ResMut<UiScale>,
    cams: Query<&Camera, With<ViewCamera>>,
) {
    if !cp.opts.panels {
        return;
    }
    // the layout is designed for a height of 2160: follow the window's size
    if let Some(s) = cams.single().ok().and_then(|c| c.physical_viewport_size()).filter(|s| s.y > 0) {
        let k = s.y as f32 / 2160.0;
        if (scale.0 - k).abs() > 1e-4 {
            scale.0 = k;
        }
    }
    let zh = client.opts.zh;
    let m = &cp.model;
    let local = chrono::Utc::now() + chrono::Duration::hours(8);
    let mode = match client.opts.mode {
        crate::app::Mode::Leader => "mode.leader",
        crate::app::Mode::Dispatcher => "mode.dispatcher",
        crate::app::Mode::Planner => "mode.planner",
    };
    let status = match m.state {
        StreamState::Connecting => tr("stream.connecting", zh).to_string(),
        StreamState::Connected => format!("{} · {} {} · {} {} · {} {} · {} {}", tr("stream.connected", zh), tr("stream.seq", zh), m.last_seq.unwrap_or(0),
            tr("stream.events", zh), m.events.len(), tr("stream.sensors", zh), m.sensors.len(), tr("stream.units", zh), m.units.len()),
        StreamState::Reconnecting => format!("{} · {} {}", tr("stream.reconnecting", zh), tr("stream.seq", zh), m.last_seq.unwrap_or(0)),
    };
    let sorted = m.sorted_events();
    let now = chrono::Utc::now();
    let mut texts: Vec<(PanelText, String, Option<Color>)> = vec![
        (PanelText::Title, match cp.tour.theme {
            Some(t) => format!("{} · {} · {}: {}", tr("title", zh), tr(mode, zh), tr("tour.theme", zh), tr(THEMES[t].0, zh)),
            None => format!("{} · {}", tr("title", zh), tr(mode, zh)),
        }, None),
        (PanelText::Status, status, None),
        (PanelText::Clock, local.format("%Y-%m-%d %H:%M:%S").to_string(), None),
        (PanelText::EventsHeader, format!("{} ({})", tr("events.title", zh), sorted.len()), None),
    ];
    for (t, (key, ids)) in THEMES.iter().enumerate() {
        texts.push((PanelText::ThemeHeader(t), tr(key, zh).to_string(), None));
        for (k, id) in ids.iter().enumerate() {
            texts.push((PanelText::KpiName(t, k), tr(&format!("kpi.{id}"), zh).to_string(), None));
            let (v, c) = match m.indicator(id) {
                Some(v) => fmt_value(v, zh),
                None => ("—".to_string(), None),
            };
            texts.push((PanelText::KpiValue(t, k), v, Some(c.unwrap_or(Color::srgb(0.92, 0.95, 1.0)))));
        }
    }
    for i in 0..EVENT_ROWS {
        let (s, c) = match sorted.get(i) {
            Some(e) => {
                let sev = e.severity as u8;
                let cat = if zh { e.category.name_zh() } else { e.category.name_en() };
                let due = match e.due_at {
                    Some(d) if d < now => format!(" · {}", tr("events.overdue", zh)),
                    Some(d) => {
                        let s = (d - now).num_seconds().max(0);
                        format!(" · {} {:02}:{:02}", tr("events.due", zh), s / 60, s % 60)
                    }
                    None => String::new(),
                };
                // the deadline stays visible: the title is what gets cut
                let head = format!("● {} {} #{} ", tr(&format!("sev.{sev}"), zh), cat, e.id);
                let fixed: f32 = head.chars().chain(due.chars()).map(char_em).sum();
                let title = fit_line(&e.title, (EVENT_ROW_EM - fixed).max(4.0));
                (fit_line(&format!("{head}{title}{due}"), EVENT_ROW_EM), Some(srgb(severity_srgb(sev))))
            }
            None if i == 0 => (tr("events.none", zh).to_string(), None),
            None => (String::new(), None),
        };
        texts.push((PanelText::EventRow(i), s, c));
    }
    let ticker = crate::charts::ticker_line(m, zh);
    texts.push((PanelText::Ticker, ticker, None));
    // the selected incident's detail panel (crate::interact)
    let detail = crate::interact::detail_lines(m, &cp.dispatch, zh, now).0;
    for i in 0..DETAIL_ROWS {
        texts.push((PanelText::Detail(i), detail.get(i).cloned().unwrap_or_default(), None));
    }
    let mut shown = vec![];
    let mut rows = vec![];
    for (key, s, c) in texts {
        for (p, mut t, mut tc, node) in q.iter_mut() {
            if let (PanelText::EventRow(_), Some(n)) = (p, node) {
                // the row as laid out for the text it showed last frame (physical px; the
                // countdown may change the text every frame)
                if *p == key && !t.0.is_empty() && !s.is_empty() {
                    rows.push(n.size().y);
                }
            }
            if *p == key {
                if t.0 != s {
                    t.0 = s.clone();
                }
                if let Some(c) = c {
                    if tc.0 != c {
                        tc.0 = c;
                    }
                }
            }
        }
        if !s.is_empty() {
            shown.push(s);
        }
    }
    cp.panel_texts = shown;
    cp.event_row_heights = rows;
    cp.ui_scale = scale.0;
}

/// Headless: the screenshot waits for the live state (first snapshot or 20 s of trying), the
/// first indicator poll, `--wait-events`, the dispatcher flow and `--hold`.
pub(crate) fn gate_headless(cp: Res<Cockpit>, mut hl: ResMut<Headless>) {
    if !cp.opts.live {
        hl.live_ready = true;
        return;
    }
    let m = &cp.model;
    let waited = cp.started.elapsed();
    let stream = m.snapshots > 0 || m.last_seq.is_some() || waited > Duration::from_secs(20);
    let ind = m.indicators_polled || waited > Duration::from_secs(20) || !cp.opts.panels;
    let events = m.events.len() >= cp.opts.wait_events;
    let ground = cp.ground_rx.is_none();
    let charts = cp.charts_ready || !cp.opts.panels && waited > Duration::from_secs(20);
    let dispatch = cp.dispatch.selected.is_none() || cp.dispatch.done && cp.dispatch.flown_to.is_some() && cp.dispatch.assigned.is_none_or(|u| {
        m.units.get(&u).is_some_and(|x| x.status == "en_route")
    });
    hl.live_ready = stream && ind && events && ground && charts && dispatch && waited >= cp.opts.hold;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{Feed, LiveModel, SensorView};

    #[test]
    fn long_event_rows_are_cut_with_an_ellipsis_within_the_row() {
        let em = |s: &str| s.chars().map(char_em).sum::<f32>();
        // (the list panel holds 29.5 ems of 34 px text)
        assert!((EVENT_ROW_EM - 28.47).abs() < 0.01, "{EVENT_ROW_EM}");
        let short = "● 重大 交通事故 #12 两车相撞 · 剩余 03:20";
        assert_eq!(fit_line(short, EVENT_ROW_EM), short);
        let long = "● 一般 城市管理 #123456 城市管理 (hotline_12345) 沿街商铺占道经营并堆放杂物影响通行 · 剩余 59:59";
        assert!(em(long) > EVENT_ROW_EM);
        let cut = fit_line(long, EVENT_ROW_EM);
        assert!(cut.ends_with('…') && em(&cut) <= EVENT_ROW_EM && long.starts_with(cut.trim_end_matches('…')), "{cut}");
        // the longest cut: one more character would not fit
        let kept = cut.trim_end_matches('…').chars().count();
        let next: String = long.chars().take(kept + 1).collect();
        assert!(em(&next) + char_em('…') > EVENT_ROW_EM - 0.6 || next.ends_with(' '), "{cut}");
        // English: 0.6 em a letter
        let en = "● high Traffic accident #7 ".to_string() + &"x".repeat(80);
        let cut = fit_line(&en, EVENT_ROW_EM);
        assert!(cut.ends_with('…') && em(&cut) <= EVENT_ROW_EM, "{cut}");
    }

    #[test]
    fn every_string_used_is_in_the_table_in_both_languages() {
        // the cockpit's own strings and those of the charts and the choropleth legend
        let src = [include_str!("cockpit.rs"), include_str!("charts.rs"), include_str!("choropleth.rs")].concat();
        let mut keys: Vec<String> = src.split("tr(\"").skip(1).filter_map(|r| r.split('"').next()).filter(|k| *k != "no.such.key").map(str::to_string).collect();
        for (theme, ids) in THEMES {
            keys.push(theme.to_string());
            keys.extend(ids.iter().map(|id| format!("kpi.{id}")));
        }
        keys.extend((1..=4).map(|s| format!("sev.{s}")));
        assert!(keys.len() > 30);
        for k in &keys {
            let e = STRINGS.iter().find(|s| s.0 == k).unwrap_or_else(|| panic!("string '{k}' missing from STRINGS"));
            assert!(!e.1.is_empty() && !e.2.is_empty() && e.1 != e.2, "{k}: zh and en must both exist and differ");
        }
        let mut seen = std::collections::HashSet::new();
        assert!(STRINGS.iter().all(|s| seen.insert(s.0)), "duplicate keys");
        assert_eq!(tr("title", true), "沈阳城市运行指挥舱");
        assert_eq!(tr("no.such.key", false), "no.such.key");
    }

    #[test]
    fn marker_colours_differ_from_the_scene_and_each_other() {
        let scene = [crate::app::SKY_SRGB, crate::app::GROUND_SRGB, crate::app::PLACEHOLDER_SRGB];
        let mut all: Vec<[u8; 3]> = (1..=4).map(severity_srgb).collect();
        all.extend((0..=2).map(sensor_srgb));
        all.extend(Style::ALL.iter().map(|s| s.srgb()));
        let dist = |a: [u8; 3], b: [u8; 3]| (0..3).map(|k| (a[k] as i32 - b[k] as i32).abs()).max().unwrap();
        for (i, a) in all.iter().enumerate() {
            for s in scene {
                assert!(dist(*a, s) > 20, "{a:?} too close to a scene colour {s:?}");
            }
            for b in &all[i + 1..] {
                assert!(dist(*a, *b) > 12, "{a:?} vs {b:?}");
            }
        }
        assert_eq!(hex_color("#00E400"), Some(Color::srgb_u8(0, 0xe4, 0)));
        assert_eq!(hex_color("00E400"), None);
    }

    #[test]
    fn the_tour_focuses_the_most_severe_event_and_the_worst_sensor() {
        let mut m = LiveModel::default();
        let ev = |id: i64, sev: u8, lon: f64| serde_json::json!({"id": id, "category": "fire", "severity": sev, "source": "manual", "state": "reported", "title": "t",
            "location": {"lon": lon, "lat": 41.8}, "district": null, "reported_at": "2026-11-22T10:00:00Z", "updated_at": "2026-11-22T10:00:00Z", "due_at": null});
        m.apply(Feed::Msg(serde_json::from_value(serde_json::json!({"type": "snapshot", "seq": 1, "events": [ev(1, 2, 123.1), ev(2, 4, 123.2)], "units": []})).unwrap()));
        assert_eq!(tour_focus(&m, 0), Some((123.2, 41.8)));
        let s = |id: i64, t: &str, level: u8, lon: f64| SensorView { datastream: id, name: String::new(), sensor_type: t.into(), lon, lat: 41.0, level, result: serde_json::Value::Null };
        m.sensors.insert(1, s(1, "pm25", 0, 1.0));
        m.sensors.insert(2, s(2, "noise", 2, 2.0));
        m.sensors.insert(3, s(3, "traffic_speed", 1, 3.0));
        assert_eq!(tour_focus(&m, 1), Some((2.0, 41.0)));
        assert_eq!(tour_focus(&m, 2), Some((3.0, 41.0)));
        assert_eq!(tour_focus(&LiveModel::default(), 2), None);
    }
}
