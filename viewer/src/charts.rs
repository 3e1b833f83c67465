//! Cockpit charts on the bevy_ui panels: sparklines on the KPI cards, per-district bar charts in
//! the theme panels, the scrolling alarm ticker — and the plugin that also runs the district
//! choropleth ([`choropleth`](crate::choropleth)).
//!
//! * **Sparklines**: each KPI card's indicator over the last 24 h (`GET /api/indicators/{id}/series`
//!   for the city, the indicator's grain), fetched by a thread at start and then every minute — never
//!   on the render thread — and drawn into a small generated texture ([`sparkline_rgba`]: a line
//!   with a translucent area under it, gaps where the series has no value, scaled to its own
//!   min…max) shown with an `ImageNode` at the card's lower right.
//! * **Bar charts**: per theme panel, the districts' values of the panel's main indicator (its
//!   first KPI card), sorted high → low (no value last), the top [`BAR_ROWS`] drawn as rows of
//!   name, bar (a `Node` sized in percent of the largest value, in the value's band colour or the
//!   accent colour) and value; from the live model (indicator poll and stream).
//! * **Ticker**: the alarm line ([`ticker_line`]: newest first; "暂无告警 / no alarms" when
//!   there are none) scrolls right → left at [`TICKER_PX_S`] design px per second of wall-clock
//!   time (independent of the frame rate), repeated so the strip is always full, wrapping by one
//!   copy's width.
//!
//! Sizes are in design px of the 3840×2160 layout (`UiScale` scales them to the view).

use crate::app::{Client, ViewCamera};
use crate::choropleth::{self, Choropleth};
use crate::cockpit::{tr, Cockpit, THEMES};
use crate::live::LiveModel;
use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy::text::{FontSize, FontSource, TextFont, TextLayout};
use bevy::ui::{ComputedNode, UiGlobalTransform, UiScale};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const BAR_ROWS: usize = 6;
pub const TICKER_PX_S: f32 = 160.0;
pub const SPARK_REFRESH: Duration = Duration::from_secs(60);
/// Sparkline texture size (px; shown at 150 × 52 design px).
pub const SPARK_W: usize = 300;
pub const SPARK_H: usize = 104;
pub const ACCENT_SRGB: [u8; 3] = [90, 200, 255];
const TICKER_GAP: &str = "          ";

/// The sparkline image of a KPI card (theme, card).
#[derive(Component, Clone, Copy, PartialEq, Eq)]
pub struct SparkSlot(pub usize, pub usize);

/// The bar chart container of a theme panel.
#[derive(Component, Clone, Copy, PartialEq, Eq)]
pub struct BarSlot(pub usize);

/// The ticker's scrolling text.
#[derive(Component)]
pub struct TickerText;

#[derive(Component)]
struct BarFill;

enum SeriesMsg {
    Series(String, Result<Vec<Option<f64>>, String>),
    RoundDone,
}

/// One bar chart row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BarRow {
    pub district: String,
    pub value: Option<f64>,
    pub srgb: [u8; 3],
    /// the drawn bar in screen px (x0, y0, x1, y1), rows shown only
    pub rect: Option<[f32; 4]>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BarChart {
    pub theme: &'static str,
    pub indicator: &'static str,
    pub rows: Vec<BarRow>,
    pub shown: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Ticker {
    /// one copy of the line (what scrolls, repeated)
    pub text: String,
    pub newest: Option<String>,
    /// the text's left edge relative to its strip, design px (≤ 0)
    pub offset_px: f32,
    pub speed_px_s: f32,
    /// the width of one copy (the wrap period), design px
    pub period_px: f32,
    pub copies: usize,
    /// (seconds since start, offset) when scrolling began and at the latest frame
    pub first: Option<[f32; 2]>,
    pub last: Option<[f32; 2]>,
}

#[derive(Resource)]
pub struct Charts {
    rx: Option<Mutex<Receiver<SeriesMsg>>>,
    /// the last 24 h of each KPI card's indicator (city), by id
    pub series: HashMap<String, Result<Vec<Option<f64>>, String>>,
    pub rounds: u32,
    images: HashMap<String, Handle<Image>>,
    drawn_series: HashMap<String, usize>,
    pub bars: Vec<BarChart>,
    bar_keys: Vec<String>,
    bar_fills: Vec<Vec<Entity>>,
    pub ticker: Ticker,
    ticker_shown: String,
    started: Instant,
}

impl Default for Charts {
    fn default() -> Self {
        Charts {
            rx: None,
            series: HashMap::new(),
            rounds: 0,
            images: HashMap::new(),
            drawn_series: HashMap::new(),
            bars: vec![],
            bar_keys: vec![String::new(); THEMES.len()],
            bar_fills: vec![vec![]; THEMES.len()],
            ticker: Ticker { copies: 2, speed_px_s: TICKER_PX_S, ..default() },
            ticker_shown: String::new(),
            started: Instant::now(),
        }
    }
}

pub struct ChartsPlugin;

impl Plugin for ChartsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Charts>();
        if !app.world().contains_resource::<Choropleth>() {
            app.insert_resource(Choropleth::new(None));
        }
        app.add_systems(Startup, (start_series, choropleth::setup_choropleth).after(crate::cockpit::setup_cockpit)).add_systems(
            Update,
            (
                choropleth::update_choropleth.after(crate::cockpit::update_ground),
                (update_sparklines, update_bars, scroll_ticker, gate_charts).chain().after(crate::cockpit::update_panels).before(crate::cockpit::gate_headless),
            ),
        );
    }
}

/// The KPI ids of all cards.
fn kpi_ids() -> Vec<String> {
    let mut v: Vec<String> = THEMES.iter().flat_map(|t| t.1.iter().map(|s| s.to_string())).collect();
    v.dedup();
    v
}

fn start_series(cp: Res<Cockpit>, mut ch: ResMut<Charts>) {
    if !cp.opts.panels {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let server = cp.opts.server.clone();
    std::thread::Builder::new().name("sparklines".into()).spawn(move || series_loop(server, kpi_ids(), tx)).expect("spawn sparkline thread");
    ch.rx = Some(Mutex::new(rx));
    ch.started = Instant::now();
}

/// The points of a `/series` answer (`{points: [[t, value | null], …]}`).
pub fn series_points(v: &Value) -> Result<Vec<Option<f64>>, String> {
    let pts = v.get("points").and_then(|p| p.as_array()).ok_or("series: no 'points' array")?;
    Ok(pts.iter().map(|p| p.get(1).and_then(|x| x.as_f64())).collect())
}

fn series_loop(server: String, ids: Vec<String>, tx: Sender<SeriesMsg>) {
    let agent = crate::fetch::agent();
    loop {
        for id in &ids {
            let url = format!("{server}/api/indicators/{id}/series");
            let r = crate::fetch::fetch(&agent, &url).and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| format!("{url}: {e}"))).and_then(|v| series_points(&v));
            if tx.send(SeriesMsg::Series(id.clone(), r)).is_err() {
                return;
            }
        }
        if tx.send(SeriesMsg::RoundDone).is_err() {
            return;
        }
        std::thread::sleep(SPARK_REFRESH);
    }
}

/// A sparkline as RGBA8 (sRGB) pixels, `w × h`, transparent background: the series scaled to
/// its min…max (a flat series in the middle), a 3 px line in `line` and the area under it at
/// 30 % opacity; columns between two points with a value are interpolated, other columns (gaps)
/// stay empty; a lone point is a 5 × 5 dot.
pub fn sparkline_rgba(points: &[Option<f64>], w: usize, h: usize, line: [u8; 3]) -> Vec<u8> {
    let mut img = vec![0u8; w * h * 4];
    let vals: Vec<f64> = points.iter().flatten().copied().collect();
    if vals.is_empty() || w < 2 || h < 8 {
        return img;
    }
    let (mut lo, mut hi) = (vals.iter().cloned().fold(f64::INFINITY, f64::min), vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
    if hi - lo < 1e-12 {
        lo -= 1.0;
        hi += 1.0;
    }
    let pad = 3.0;
    let y_of = |v: f64| pad + (1.0 - (v - lo) / (hi - lo)) * (h as f64 - 1.0 - 2.0 * pad);
    let n = points.len();
    let x_of = |i: usize| if n <= 1 { (w - 1) as f64 / 2.0 } else { i as f64 * (w - 1) as f64 / (n - 1) as f64 };
    let put = |img: &mut Vec<u8>, x: usize, y: usize, a: u8| {
        if x < w && y < h {
            let k = (y * w + x) * 4;
            if img[k + 3] < a {
                img[k..k + 4].copy_from_slice(&[line[0], line[1], line[2], a]);
            }
        }
    };
    // the y of column px (None in gaps)
    let col_y = |px: usize| -> Option<f64> {
        if n == 1 {
            return None;
        }
        let f = px as f64 * (n - 1) as f64 / (w - 1) as f64;
        let i = (f.floor() as usize).min(n - 2);
        let (a, b) = (points[i]?, points[i + 1]?);
        let t = f - i as f64;
        Some(y_of(a + (b - a) * t))
    };
    let mut prev: Option<f64> = None;
    for px in 0..w {
        let Some(y) = col_y(px) else {
            prev = None;
            continue;
        };
        for yy in (y.round() as usize)..h {
            put(&mut img, px, yy, 77);
        }
        let (a, b) = match prev {
            Some(p) => (p.min(y), p.max(y)),
            None => (y, y),
        };
        for yy in (a.round() as i64 - 1)..=(b.round() as i64 + 1) {
            if yy >= 0 {
                put(&mut img, px, yy as usize, 255);
            }
        }
        prev = Some(y);
    }
    // lone points (no neighbour with a value): dots
    for (i, p) in points.iter().enumerate() {
        let Some(v) = p else { continue };
        let lone = (i == 0 || points[i - 1].is_none()) && (i + 1 >= n || points[i + 1].is_none());
        if lone {
            let (cx, cy) = (x_of(i).round() as i64, y_of(*v).round() as i64);
            for dy in -2..=2 {
                for dx in -2..=2 {
                    if cx + dx >= 0 && cy + dy >= 0 {
                        put(&mut img, (cx + dx) as usize, (cy + dy) as usize, 255);
                    }
                }
            }
        }
    }
    img
}

fn update_sparklines(mut ch: ResMut<Charts>, mut images: ResMut<Assets<Image>>, mut q: Query<(&SparkSlot, &mut ImageNode)>) {
    let msgs: Vec<SeriesMsg> = match &ch.rx {
        Some(rx) => rx.lock().map(|r| r.try_iter().collect()).unwrap_or_default(),
        None => return,
    };
    let mut changed = false;
    for m in msgs {
        match m {
            SeriesMsg::Series(id, r) => {
                if let Err(e) = &r {
                    warn!("sparkline {id}: {e}");
                }
                ch.series.insert(id, r);
                changed = true;
            }
            SeriesMsg::RoundDone => ch.rounds += 1,
        }
    }
    if !changed {
        return;
    }
    let ids: Vec<String> = ch.series.keys().cloned().collect();
    for id in ids {
        let Ok(pts) = ch.series[&id].clone() else { continue };
        let px = sparkline_rgba(&pts, SPARK_W, SPARK_H, ACCENT_SRGB);
        let img = Image::new(
            Extent3d { width: SPARK_W as u32, height: SPARK_H as u32, depth_or_array_layers: 1 },
            TextureDimension::D2,
            px,
            TextureFormat::Rgba8UnormSrgb,
            RenderAssetUsages::RENDER_WORLD | RenderAssetUsages::MAIN_WORLD,
        );
        let h = images.add(img);
        ch.images.insert(id.clone(), h);
        ch.drawn_series.insert(id, pts.iter().flatten().count());
    }
    for (slot, mut node) in q.iter_mut() {
        if let Some(h) = THEMES.get(slot.0).and_then(|t| t.1.get(slot.1)).and_then(|id| ch.images.get(*id)) {
            node.image = h.clone();
        }
    }
}

/// The rows of a district bar chart from the live model: sorted by value high → low, no value
/// last, then by name.
pub fn bar_rows(m: &LiveModel, id: &str) -> Vec<BarRow> {
    let mut rows: Vec<BarRow> = m
        .indicators
        .iter()
        .filter(|((i, area), _)| i == id && area != "city")
        .filter_map(|(_, v)| {
            let name = v.get("area")?.get("name")?.as_str()?.to_string();
            let c = v.get("color").and_then(|c| c.as_str()).and_then(choropleth::hex_srgb).unwrap_or(ACCENT_SRGB);
            Some(BarRow { district: name, value: v.get("value").and_then(|x| x.as_f64()), srgb: c, rect: None })
        })
        .collect();
    rows.sort_by(|a, b| match (a.value, b.value) {
        (Some(x), Some(y)) => y.total_cmp(&x).then_with(|| a.district.cmp(&b.district)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.district.cmp(&b.district),
    });
    rows
}

#[allow(clippy::too_many_arguments)]
fn update_bars(
    mut commands: Commands,
    mut ch: ResMut<Charts>,
    cp: Res<Cockpit>,
    client: Res<Client>,
    slots: Query<(Entity, &BarSlot)>,
    fills: Query<(&ComputedNode, &UiGlobalTransform), With<BarFill>>,
) {
    if !cp.opts.panels {
        return;
    }
    let zh = client.opts.zh;
    let mut charts = vec![];
    for (t, (theme, ids)) in THEMES.iter().enumerate() {
        let id = ids[0];
        let mut rows = bar_rows(&cp.model, id);
        let shown = rows.len().min(BAR_ROWS);
        // where the bars were drawn (last layout)
        for (k, e) in ch.bar_fills[t].iter().enumerate() {
            if let (Some(r), Ok((n, gt))) = (rows.get_mut(k), fills.get(*e)) {
                let c = gt.affine().translation;
                let s = n.size();
                r.rect = Some([c.x - s.x / 2.0, c.y - s.y / 2.0, c.x + s.x / 2.0, c.y + s.y / 2.0]);
            }
        }
        charts.push(BarChart { theme, indicator: id, rows, shown });
    }
    let font = cp.font.clone();
    for (slot_e, slot) in slots.iter() {
        let t = slot.0;
        let Some(chart) = charts.get(t) else { continue };
        let max = chart.rows.iter().take(BAR_ROWS).filter_map(|r| r.value).fold(0.0f64, f64::max);
        let key = format!("{zh}{:?}", chart.rows.iter().take(BAR_ROWS).map(|r| (&r.district, r.value, r.srgb)).collect::<Vec<_>>());
        if key == ch.bar_keys[t] {
            continue;
        }
        ch.bar_keys[t] = key;
        commands.entity(slot_e).despawn_related::<Children>();
        let Some(font) = font.clone() else { continue };
        let tf = |size: f32| TextFont { font: FontSource::Handle(font.clone()), font_size: FontSize::Px(size), ..default() };
        let dim = Color::srgb(0.62, 0.72, 0.85);
        let white = Color::srgb(0.92, 0.95, 1.0);
        commands.spawn((Text::new(format!("{} · {}", tr("chart.by_district", zh), tr(&format!("kpi.{}", chart.indicator), zh))), tf(26.0), TextColor(dim), ChildOf(slot_e)));
        let mut fills_t = vec![];
        if chart.rows.is_empty() {
            commands.spawn((Text::new("—"), tf(26.0), TextColor(dim), ChildOf(slot_e)));
        }
        for r in chart.rows.iter().take(BAR_ROWS) {
            let row = commands.spawn((Node { flex_direction: FlexDirection::Row, align_items: AlignItems::Center, column_gap: Val::Px(12.0), height: Val::Px(30.0), ..default() }, ChildOf(slot_e))).id();
            commands.spawn((Node { width: Val::Px(190.0), ..default() }, Text::new(r.district.clone()), tf(24.0), TextColor(white), TextLayout::no_wrap(), ChildOf(row)));
            let track = commands.spawn((Node { flex_grow: 1.0, height: Val::Px(22.0), ..default() }, BackgroundColor(Color::srgba(1.0, 1.0, 1.0, 0.07)), ChildOf(row))).id();
            let pct = match r.value {
                Some(v) if max > 0.0 => (v / max * 100.0).clamp(0.0, 100.0) as f32,
                _ => 0.0,
            };
            let fill = commands
                .spawn((Node { width: Val::Percent(pct), height: Val::Percent(100.0), ..default() }, BackgroundColor(Color::srgb_u8(r.srgb[0], r.srgb[1], r.srgb[2])), BarFill, ChildOf(track)))
                .id();
            fills_t.push(fill);
            let v = r.value.map(choropleth::fmt_num).unwrap_or_else(|| "—".into());
            commands.spawn((Node { width: Val::Px(130.0), ..default() }, Text::new(v), tf(24.0), TextColor(white), TextLayout::no_wrap(), ChildOf(row)));
        }
        ch.bar_fills[t] = fills_t;
    }
    ch.bars = charts;
}

/// The ticker's line: the alarms, newest first, or "no alarms".
pub fn ticker_line(m: &LiveModel, zh: bool) -> String {
    if m.alarms.is_empty() {
        format!("{}: {}", tr("ticker.title", zh), tr("ticker.none", zh))
    } else {
        format!("{}: {}", tr("ticker.title", zh), m.alarms.iter().take(8).map(|a| a.1.as_str()).collect::<Vec<_>>().join("   ▲ "))
    }
}

/// The ticker's offset (design px, ≤ 0) after `secs` of scrolling at `speed` with a period of
/// one copy's width.
pub fn ticker_offset(secs: f64, speed: f32, period: f32) -> f32 {
    if period <= 0.0 {
        return 0.0;
    }
    -((secs * speed as f64).rem_euclid(period as f64) as f32)
}

fn scroll_ticker(
    mut ch: ResMut<Charts>,
    cp: Res<Cockpit>,
    client: Res<Client>,
    scale: Res<UiScale>,
    cams: Query<&Camera, With<ViewCamera>>,
    mut q: Query<(&mut Text, &mut Node, &ComputedNode), With<TickerText>>,
) {
    let Ok((mut text, mut node, computed)) = q.single_mut() else { return };
    let unit = ticker_line(&cp.model, client.opts.zh);
    let view_w = cams.single().ok().and_then(|c| c.physical_viewport_size()).map(|s| s.x as f32).unwrap_or(client.opts.size.0 as f32) / scale.0.max(1e-3);
    let copies = ch.ticker.copies.max(2);
    let full: String = std::iter::repeat_n(format!("{unit}{TICKER_GAP}"), copies).collect();
    let secs = ch.started.elapsed().as_secs_f64();
    if text.0 != full {
        text.0 = full.clone();
    }
    // the laid-out width is that of the text shown in the previous frame
    let laid_out = ch.ticker_shown == full;
    ch.ticker_shown = full;
    if unit != ch.ticker.text {
        ch.ticker.text = unit;
        ch.ticker.period_px = 0.0;
    }
    ch.ticker.newest = cp.model.alarms.first().map(|a| a.1.clone());
    let w = computed.size().x * computed.inverse_scale_factor();
    if laid_out && w > 0.0 {
        let period = w / copies as f32;
        ch.ticker.period_px = period;
        // enough copies that the strip stays full while one copy scrolls out
        if period * ((copies - 1) as f32) < view_w {
            ch.ticker.copies = copies + 1;
        }
    }
    let off = ticker_offset(secs, TICKER_PX_S, ch.ticker.period_px);
    node.left = Val::Px(off);
    ch.ticker.offset_px = off;
    ch.ticker.speed_px_s = TICKER_PX_S;
    if ch.ticker.period_px > 0.0 {
        let s = [secs as f32, off];
        if ch.ticker.first.is_none() {
            ch.ticker.first = Some(s);
        }
        ch.ticker.last = Some(s);
    }
}

/// Headless: the screenshot waits for the first round of sparklines and the choropleth's
/// definitions and fills (or 20 s).
fn gate_charts(ch: Res<Charts>, chor: Res<Choropleth>, mut cp: ResMut<Cockpit>) {
    let waited = ch.started.elapsed() > Duration::from_secs(20);
    let spark = !cp.opts.panels || ch.rounds > 0 || waited;
    let ticker = !cp.opts.panels || ch.ticker.period_px > 0.0 || waited;
    let ready = spark && ticker && chor.ready();
    if cp.charts_ready != ready {
        cp.charts_ready = ready;
    }
}

/// The charts' and the choropleth's part of the summary.
pub fn summary(world: &World) -> Value {
    let Some(ch) = world.get_resource::<Charts>() else { return Value::Null };
    let mut spark: Vec<Value> = vec![];
    for (t, (_, ids)) in THEMES.iter().enumerate() {
        for (k, id) in ids.iter().enumerate() {
            let (points, total, error) = match ch.series.get(*id) {
                Some(Ok(p)) => (Some(p.iter().flatten().count()), Some(p.len()), None),
                Some(Err(e)) => (None, None, Some(e.clone())),
                None => (None, None, None),
            };
            spark.push(serde_json::json!({"theme": t, "card": k, "indicator": id, "points": points, "total": total, "drawn": ch.drawn_series.get(*id), "error": error}));
        }
    }
    serde_json::json!({
        "sparklines": spark,
        "sparkline_rounds": ch.rounds,
        "bar_charts": ch.bars,
        "ticker": ch.ticker,
        "choropleth": world.get_resource::<Choropleth>().map(|c| c.summary()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alpha_rows(img: &[u8], w: usize, h: usize, x: usize) -> Vec<usize> {
        (0..h).filter(|&y| img[(y * w + x) * 4 + 3] == 255).collect()
    }

    #[test]
    fn a_rising_series_draws_a_line_from_low_left_to_high_right_with_gaps() {
        let (w, h) = (100, 40);
        let pts = [Some(0.0), Some(1.0), Some(2.0), None, None, Some(5.0), Some(6.0)];
        let img = sparkline_rgba(&pts, w, h, [1, 2, 3]);
        assert_eq!(img.len(), w * h * 4);
        let left = alpha_rows(&img, w, h, 0);
        let mid = alpha_rows(&img, w, h, 25);
        let right = alpha_rows(&img, w, h, w - 1);
        assert!(!left.is_empty() && !right.is_empty() && !mid.is_empty());
        // image rows grow downwards: the low start is near the bottom, the high end near the top
        assert!(left[0] > h - 8, "{left:?}");
        assert!(right[right.len() - 1] < 8, "{right:?}");
        assert!(mid[0] < left[0] && mid[0] > right[0]);
        // between points 2 and 5 (columns 34…82) the series has no value: nothing drawn there
        let gap = (w - 1) * 7 / 12;
        assert!((0..h).all(|y| img[(y * w + gap) * 4 + 3] == 0), "gap column {gap} drawn");
        // the area under the line is translucent, in the line's colour
        let below = (left[left.len() - 1] + 1..h).map(|y| img[(y * w) * 4 + 3]).collect::<Vec<_>>();
        assert!(below.iter().all(|a| *a == 77) || below.is_empty());
        assert_eq!(&img[(left[0] * w) * 4..(left[0] * w) * 4 + 3], &[1, 2, 3]);
        // empty series: transparent; a flat series: one line in the middle
        assert!(sparkline_rgba(&[None, None], w, h, [1, 2, 3]).iter().all(|b| *b == 0));
        let flat = sparkline_rgba(&[Some(4.0); 5], w, h, [1, 2, 3]);
        let r = alpha_rows(&flat, w, h, 50);
        assert!(r.iter().all(|y| (*y as i64 - h as i64 / 2).abs() <= 2), "{r:?}");
        // one lone value is a dot
        let dot = sparkline_rgba(&[None, Some(1.0), None], w, h, [1, 2, 3]);
        assert_eq!(dot.chunks(4).filter(|p| p[3] == 255).count(), 25);
    }

    #[test]
    fn bar_rows_sort_high_to_low_with_no_value_last() {
        let mut m = LiveModel::default();
        let v = |d: u32, name: &str, x: Value| serde_json::json!({"id": "events_open", "area": {"district": d, "name": name}, "value": x});
        m.apply(crate::live::Feed::Indicators(Ok(vec![
            v(0, "和平区", 2.0.into()),
            v(1, "沈河区", 5.0.into()),
            v(2, "大东区", Value::Null),
            v(3, "皇姑区", 2.0.into()),
            serde_json::json!({"id": "events_open", "area": "city", "value": 9.0}),
            serde_json::json!({"id": "aqi_1h", "area": {"district": 0, "name": "和平区"}, "value": 50.0, "color": "#00E400"}),
        ])));
        let r = bar_rows(&m, "events_open");
        let got: Vec<(&str, Option<f64>)> = r.iter().map(|r| (r.district.as_str(), r.value)).collect();
        assert_eq!(got, vec![("沈河区", Some(5.0)), ("和平区", Some(2.0)), ("皇姑区", Some(2.0)), ("大东区", None)]);
        assert_eq!(r[0].srgb, ACCENT_SRGB);
        assert_eq!(bar_rows(&m, "aqi_1h")[0].srgb, [0, 0xe4, 0], "the band colour");
    }

    #[test]
    fn the_ticker_scrolls_at_constant_speed_and_wraps() {
        assert_eq!(ticker_offset(0.0, 160.0, 1000.0), 0.0);
        assert_eq!(ticker_offset(1.0, 160.0, 1000.0), -160.0);
        assert_eq!(ticker_offset(7.0, 160.0, 1000.0), -120.0);
        assert_eq!(ticker_offset(3.0, 160.0, 0.0), 0.0);
        let mut m = LiveModel::default();
        assert_eq!(ticker_line(&m, true), "告警: 暂无告警");
        assert_eq!(ticker_line(&m, false), "Alarms: no alarms");
        m.alarms.push((Instant::now(), "new".into()));
        m.alarms.push((Instant::now(), "old".into()));
        assert_eq!(ticker_line(&m, false), "Alarms: new   ▲ old");
    }
}
