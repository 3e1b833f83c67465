//! The district choropleth: each district polygon of the ground map (the MVT `districts` layer,
//! fetched with the rest of the ground map) filled with the colour of one district-grain
//! indicator's value there, and a legend panel.
//!
//! * **Indicator**: `--choropleth ID` (`none`: no choropleth); otherwise the main indicator (first KPI card) of the
//!   current leader-tour theme (command: `events_open`, environment: `aqi_1h`, city operations:
//!   `congestion_index`; other modes: the command theme's). Key `C` (windowed) cycles through every
//!   active district-grain indicator of `GET /api/indicators` (the themes' main ones first).
//! * **Colour** of a district: the server's `color` for its value (the band of the indicator's
//!   `bands`, `GET /api/indicators/{id}/values` / the live feed); an indicator without bands is
//!   drawn on a **ramp**: five equal-interval classes over the range of the current district values
//!   (min…max; one class when they are all equal), coloured [`RAMP`] (ColorBrewer YlOrRd 5, light →
//!   dark = low → high). A district without a value (`null`, or not served) is drawn neutral
//!   [`NEUTRAL_SRGB`], never left out.
//! * **Drawing**: one flat unlit mesh per district at [`LIFT_M`] above the model's ground — over
//!   the bare ground (−0.3 m) and the built-up (non-green) landuse (−0.2 m), under green landuse,
//!   water, roads and borders — so the colours are exact in the screenshot and parks, rivers and
//!   roads stay on top. Colours follow the values as they
//!   change (the live model is fed by the indicator poll and the stream's `indicator_values`).
//! * **Legend** (bevy_ui, bottom of the city view, right of the theme panels): the indicator's
//!   name in the UI language and its unit, one swatch per band or ramp class with its range and
//!   label, and "—" (no value) with the neutral swatch.

use crate::cockpit::{tr, Cockpit, THEMES};
use crate::geodesy::WorldFrame;
use crate::groundmap::{self, Part};
use bevy::asset::RenderAssetUsages;
use bevy::mesh::{Indices, PrimitiveTopology};
use bevy::prelude::*;
use bevy::text::{FontSize, FontSource, TextFont};
use bevy::ui::UiTargetCamera;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::Receiver;
use std::sync::Mutex;
use std::time::Instant;
use tiles::mvt::{Geometry, Tile};
use tiles::TileId;

/// Districts without a value.
pub const NEUTRAL_SRGB: [u8; 3] = [128, 128, 140];
/// The ramp of indicators without bands, low → high (ColorBrewer YlOrRd, 5 classes).
pub const RAMP: [[u8; 3]; 5] = [[255, 255, 178], [254, 204, 92], [253, 141, 60], [240, 59, 32], [189, 0, 38]];
/// Height of the fills above the model's ground (m).
pub const LIFT_M: f64 = -0.1;

/// A district's fill triangles (merged over the tiles it spans), with its English name.
#[derive(Debug, Default, Clone)]
pub struct DistrictFill {
    pub name_en: Option<String>,
    pub part: Part,
}

/// The district polygons of one decoded tile, by name (`name` of the `districts` layer),
/// triangulated in world coordinates. Polygons are clipped at the tile's buffer by the tiler; the
/// pieces of neighbouring tiles overlap in the buffer with the same colour.
pub fn tile_districts(tile: &Tile, id: TileId, frame: &WorldFrame, ground: f64, out: &mut BTreeMap<String, DistrictFill>) {
    let Some(layer) = tile.layer("districts") else { return };
    let ext = layer.extent.max(1);
    for f in &layer.features {
        let Geometry::Polygons(polys) = &f.geometry else { continue };
        let Some(name) = f.get("name").and_then(|v| v.as_str()) else { continue };
        let d = out.entry(name.to_string()).or_default();
        if d.name_en.is_none() {
            d.name_en = f.get("name_en").and_then(|v| v.as_str()).map(str::to_string);
        }
        for p in polys {
            let rings: Vec<Vec<[f64; 3]>> = p.iter().map(|r| r.iter().map(|q| groundmap::to_world(frame, id, ext, *q, ground + LIFT_M)).collect()).collect();
            groundmap::add_polygon(&mut d.part, &rings);
        }
    }
}

/// One legend class: values in (min, max] (the first class includes its min; `None`: unbounded).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Class {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub srgb: [u8; 3],
    pub label_zh: String,
    pub label_en: String,
}

pub fn hex_srgb(s: &str) -> Option<[u8; 3]> {
    let s = s.strip_prefix('#')?;
    if s.len() != 6 {
        return None;
    }
    let v = u32::from_str_radix(s, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

/// The classes of an indicator definition's `bands` (`[{max, label_zh, label_en, color}]`).
pub fn band_classes(bands: &Value) -> Vec<Class> {
    let mut out = vec![];
    let mut lo = None;
    for b in bands.as_array().into_iter().flatten() {
        let Some(c) = b.get("color").and_then(|c| c.as_str()).and_then(hex_srgb) else { continue };
        let max = b.get("max").and_then(|m| m.as_f64());
        out.push(Class {
            min: lo,
            max,
            srgb: c,
            label_zh: b.get("label_zh").and_then(|l| l.as_str()).unwrap_or("").to_string(),
            label_en: b.get("label_en").and_then(|l| l.as_str()).unwrap_or("").to_string(),
        });
        lo = max;
    }
    out
}

/// Five equal-interval classes over the values' range on [`RAMP`] (one class when all equal;
/// none without values).
pub fn ramp_classes(values: &[f64]) -> Vec<Class> {
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return vec![];
    }
    if hi - lo < 1e-9 * hi.abs().max(1.0) {
        return vec![Class { min: Some(lo), max: Some(hi), srgb: RAMP[2], label_zh: String::new(), label_en: String::new() }];
    }
    (0..5)
        .map(|i| Class {
            min: Some(lo + (hi - lo) * i as f64 / 5.0),
            max: Some(if i == 4 { hi } else { lo + (hi - lo) * (i + 1) as f64 / 5.0 }),
            srgb: RAMP[i],
            label_zh: String::new(),
            label_en: String::new(),
        })
        .collect()
}

/// The class of a value: the first whose `max` is ≥ it (the last class takes anything above).
pub fn class_of(classes: &[Class], v: f64) -> Option<&Class> {
    classes.iter().find(|c| c.max.is_none_or(|m| v <= m + 1e-9 * m.abs().max(1.0))).or(classes.last())
}

/// A district's fill colour and where it came from: `band` (the server's colour), `ramp`, `none`.
pub fn district_srgb(v: Option<&Value>, classes: &[Class], banded: bool) -> ([u8; 3], &'static str) {
    let Some(x) = v.and_then(|v| v.get("value")).and_then(|x| x.as_f64()) else { return (NEUTRAL_SRGB, "none") };
    if let Some(c) = v.and_then(|v| v.get("color")).and_then(|c| c.as_str()).and_then(hex_srgb) {
        return (c, "band");
    }
    match class_of(classes, x) {
        Some(c) => (c.srgb, if banded { "band" } else { "ramp" }),
        None => (NEUTRAL_SRGB, "none"),
    }
}

/// A number for labels: whole numbers plain, else 2 (under 10), 1 (under 100) or 0 decimals,
/// trailing zeros dropped.
pub fn fmt_num(x: f64) -> String {
    let s = if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if s == "-0" { "0".into() } else { s }
}

/// The legend line of a class: its range and label.
pub fn class_text(c: &Class, zh: bool) -> String {
    let range = match (c.min, c.max) {
        (None, Some(m)) => format!("≤ {}", fmt_num(m)),
        (Some(a), None) => format!("> {}", fmt_num(a)),
        (Some(a), Some(b)) if (b - a).abs() < 1e-12 => fmt_num(a),
        (Some(a), Some(b)) => format!("{} – {}", fmt_num(a), fmt_num(b)),
        (None, None) => String::new(),
    };
    let label = if zh { &c.label_zh } else { &c.label_en };
    if label.is_empty() { range } else { format!("{range}  {label}") }
}

/// Readable unit text, as on the KPI cards ([`crate::units::unit_text`]).
pub fn unit_text(u: &str, zh: bool) -> String {
    crate::units::unit_text(u, zh)
}

/// The current value of every district for `id` in the live model: name → value JSON.
pub fn district_values(cp: &Cockpit, id: &str) -> BTreeMap<String, Value> {
    cp.model
        .indicators
        .iter()
        .filter(|((i, area), _)| i == id && area != "city")
        .filter_map(|(_, v)| Some((v.get("area")?.get("name")?.as_str()?.to_string(), v.clone())))
        .collect()
}

/// One district as drawn (for the summary).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Drawn {
    pub name: String,
    pub name_en: Option<String>,
    pub value: Option<f64>,
    pub srgb: [u8; 3],
    pub source: &'static str,
}

#[derive(Resource)]
pub struct Choropleth {
    /// `--choropleth ID`
    pub fixed: Option<String>,
    /// after `C`: an index into `candidates`
    cycled: Option<usize>,
    pub indicator: Option<String>,
    defs_rx: Option<Mutex<Receiver<Result<Vec<Value>, String>>>>,
    pub defs: HashMap<String, Value>,
    pub defs_loaded: bool,
    pub defs_error: Option<String>,
    pub candidates: Vec<String>,
    /// district fills from the ground map, waiting to be spawned
    pub pending: Option<BTreeMap<String, DistrictFill>>,
    fills: BTreeMap<String, (Option<String>, Handle<StandardMaterial>, [u8; 3])>,
    pub drawn: Vec<Drawn>,
    pub classes: Vec<Class>,
    pub banded: bool,
    legend_root: Option<Entity>,
    legend_key: String,
    pub legend_texts: Vec<String>,
    started: Instant,
}

impl Choropleth {
    pub fn new(fixed: Option<String>) -> Choropleth {
        Choropleth {
            fixed,
            cycled: None,
            indicator: None,
            defs_rx: None,
            defs: HashMap::new(),
            defs_loaded: false,
            defs_error: None,
            candidates: vec![],
            pending: None,
            fills: BTreeMap::new(),
            drawn: vec![],
            classes: vec![],
            banded: false,
            legend_root: None,
            legend_key: String::new(),
            legend_texts: vec![],
            started: Instant::now(),
        }
    }

    /// Ready for a headless screenshot: definitions known (or 20 s of trying) and, once the
    /// ground map has districts, their fills spawned.
    pub fn ready(&self) -> bool {
        (self.defs_loaded || self.started.elapsed().as_secs() >= 20) && self.pending.is_none()
    }

    pub fn summary(&self) -> Value {
        serde_json::json!({
            "indicator": self.indicator,
            "banded": self.banded,
            "classes": self.classes,
            "districts": self.drawn,
            "legend_texts": self.legend_texts,
            "candidates": self.candidates,
            "neutral_srgb": NEUTRAL_SRGB,
            "definitions_error": self.defs_error,
        })
    }
}

/// Startup: fetch the indicator definitions (names, units, bands; the district-grain list) on a
/// thread.
pub fn setup_choropleth(cp: Res<Cockpit>, mut ch: ResMut<Choropleth>) {
    if !cp.opts.live {
        ch.defs_loaded = true;
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let url = format!("{}/api/indicators", cp.opts.server);
    std::thread::Builder::new()
        .name("indicator-defs".into())
        .spawn(move || {
            let agent = crate::fetch::agent();
            let r = crate::fetch::fetch(&agent, &url)
                .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| format!("{url}: {e}")))
                .and_then(|v| v.get("indicators").and_then(|i| i.as_array()).cloned().ok_or_else(|| format!("{url}: no 'indicators' array")));
            let _ = tx.send(r);
        })
        .expect("spawn definitions thread");
    ch.defs_rx = Some(Mutex::new(rx));
}

/// Key `C`: the candidate after `cur` (wrapping; the first when `cur` is not a candidate).
pub fn next_candidate(candidates: &[String], cur: &str) -> usize {
    candidates.iter().position(|c| c == cur).map(|i| (i + 1) % candidates.len().max(1)).unwrap_or(0)
}

/// The choropleth's indicator now: `--choropleth`, the one chosen with `C`, or the theme's main one.
fn current_indicator(ch: &Choropleth, cp: &Cockpit) -> String {
    if let Some(i) = ch.cycled.and_then(|i| ch.candidates.get(i)) {
        return i.clone();
    }
    if let Some(f) = &ch.fixed {
        return f.clone();
    }
    THEMES[cp.tour.theme.unwrap_or(0) % THEMES.len()].1[0].to_string()
}

#[allow(clippy::too_many_arguments)]
pub fn update_choropleth(
    mut commands: Commands,
    mut ch: ResMut<Choropleth>,
    cp: Res<Cockpit>,
    client: Res<crate::app::Client>,
    keys: Option<Res<ButtonInput<KeyCode>>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut mats: ResMut<Assets<StandardMaterial>>,
    cams: Query<Entity, With<crate::app::ViewCamera>>,
) {
    // definitions
    let got = ch.defs_rx.as_ref().and_then(|rx| rx.lock().ok().and_then(|r| r.try_recv().ok()));
    if let Some(r) = got {
        ch.defs_rx = None;
        ch.defs_loaded = true;
        match r {
            Ok(defs) => {
                let mut cands: Vec<String> = THEMES.iter().map(|t| t.1[0].to_string()).collect();
                for d in &defs {
                    let Some(id) = d.get("id").and_then(|i| i.as_str()) else { continue };
                    if d.get("spatial").and_then(|s| s.as_str()) == Some("district") && d.get("state").and_then(|s| s.as_str()) != Some("retired") && !cands.iter().any(|c| c == id) {
                        cands.push(id.to_string());
                    }
                    ch.defs.insert(id.to_string(), d.clone());
                }
                cands.retain(|c| ch.defs.contains_key(c));
                ch.candidates = cands;
            }
            Err(e) => {
                warn!("choropleth: indicator definitions unavailable: {e}");
                ch.defs_error = Some(e);
            }
        }
    }
    if !client.opts.headless && !ch.candidates.is_empty() && keys.is_some_and(|k| k.just_pressed(KeyCode::KeyC)) {
        let cur = current_indicator(&ch, &cp);
        let i = next_candidate(&ch.candidates, &cur);
        ch.cycled = Some(i);
        info!("choropleth: {}", ch.candidates[i]);
    }
    // `--choropleth none`: the plain ground map
    if ch.fixed.as_deref() == Some("none") {
        ch.pending = None;
        return;
    }
    // the district fills, once the ground map has them
    if let Some(fills) = ch.pending.take() {
        for (name, f) in fills {
            if f.part.indices.is_empty() {
                continue;
            }
            let n = f.part.positions.len();
            let mesh = Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::RENDER_WORLD)
                .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, f.part.positions)
                .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, vec![[0.0f32, 1.0, 0.0]; n])
                .with_inserted_indices(Indices::U32(f.part.indices));
            let c = NEUTRAL_SRGB;
            let mat = mats.add(StandardMaterial { base_color: Color::srgb_u8(c[0], c[1], c[2]), unlit: true, cull_mode: None, ..default() });
            commands.spawn((Mesh3d(meshes.add(mesh)), MeshMaterial3d(mat.clone()), Transform::IDENTITY));
            ch.fills.insert(name, (f.name_en, mat, c));
        }
    }
    let id = current_indicator(&ch, &cp);
    let values = district_values(&cp, &id);
    let def = ch.defs.get(&id).cloned();
    let bands = def.as_ref().map(|d| band_classes(&d["bands"])).unwrap_or_default();
    let banded = !bands.is_empty();
    let classes = if banded { bands } else { ramp_classes(&values.values().filter_map(|v| v["value"].as_f64()).collect::<Vec<_>>()) };
    let mut drawn = vec![];
    let names: Vec<String> = ch.fills.keys().cloned().collect();
    for name in names {
        let (name_en, mat, old) = ch.fills[&name].clone();
        let v = values.get(&name).or_else(|| name_en.as_ref().and_then(|e| values.get(e)));
        let (c, source) = district_srgb(v, &classes, banded);
        if c != old {
            if let Some(mut m) = mats.get_mut(&mat) {
                m.base_color = Color::srgb_u8(c[0], c[1], c[2]);
            }
            ch.fills.insert(name.clone(), (name_en.clone(), mat, c));
        }
        drawn.push(Drawn { name, name_en, value: v.and_then(|v| v["value"].as_f64()), srgb: c, source });
    }
    ch.drawn = drawn;
    ch.indicator = Some(id.clone());
    ch.classes = classes;
    ch.banded = banded;
    // the legend
    let (Some(font), true) = (cp.font.clone(), cp.opts.panels) else { return };
    let Ok(cam) = cams.single() else { return };
    let zh = client.opts.zh;
    let name = def.as_ref().and_then(|d| d[if zh { "name_zh" } else { "name_en" }].as_str()).map(str::to_string).unwrap_or_else(|| id.clone());
    let unit = def.as_ref().and_then(|d| d["unit"].as_str()).map(|u| unit_text(u, zh)).unwrap_or_default();
    let mut lines: Vec<(Option<[u8; 3]>, String)> = vec![(None, format!("{} · {}", tr("legend.title", zh), name))];
    let sub = match (unit.is_empty(), banded) {
        (true, true) => String::new(),
        (true, false) => tr("legend.ramp", zh).to_string(),
        (false, true) => format!("{}: {unit}", tr("legend.unit", zh)),
        (false, false) => format!("{}: {unit} · {}", tr("legend.unit", zh), tr("legend.ramp", zh)),
    };
    if !sub.is_empty() {
        lines.push((None, sub));
    }
    for c in &ch.classes {
        lines.push((Some(c.srgb), class_text(c, zh)));
    }
    lines.push((Some(NEUTRAL_SRGB), format!("—  {}", tr("legend.none", zh))));
    let key = format!("{lines:?}");
    if key == ch.legend_key {
        return;
    }
    ch.legend_key = key;
    ch.legend_texts = lines.iter().map(|l| l.1.clone()).collect();
    if let Some(e) = ch.legend_root.take() {
        commands.entity(e).despawn();
    }
    let tf = |size: f32| TextFont { font: FontSource::Handle(font.clone()), font_size: FontSize::Px(size), ..default() };
    let root = commands
        .spawn((
            Node {
                position_type: PositionType::Absolute,
                left: Val::Px(1060.0),
                bottom: Val::Px(190.0),
                width: Val::Px(760.0),
                flex_direction: FlexDirection::Column,
                padding: UiRect::all(Val::Px(18.0)),
                row_gap: Val::Px(6.0),
                ..default()
            },
            BackgroundColor(Color::srgba(0.03, 0.08, 0.16, 0.86)),
            UiTargetCamera(cam),
        ))
        .id();
    for (i, (sw, text)) in lines.into_iter().enumerate() {
        match sw {
            None => {
                let (size, c) = if i == 0 { (34.0, Color::srgb(0.45, 0.8, 1.0)) } else { (26.0, Color::srgb(0.62, 0.72, 0.85)) };
                commands.spawn((Text::new(text), tf(size), TextColor(c), ChildOf(root)));
            }
            Some(c) => {
                let row = commands.spawn((Node { flex_direction: FlexDirection::Row, align_items: AlignItems::Center, column_gap: Val::Px(14.0), ..default() }, ChildOf(root))).id();
                commands.spawn((Node { width: Val::Px(56.0), height: Val::Px(30.0), ..default() }, BackgroundColor(Color::srgb_u8(c[0], c[1], c[2])), ChildOf(row)));
                commands.spawn((Text::new(text), tf(28.0), TextColor(Color::srgb(0.92, 0.95, 1.0)), ChildOf(row)));
            }
        }
    }
    ch.legend_root = Some(root);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiles::mvt::{encode_tile, LayerBuilder, Value as MV};

    #[test]
    fn bands_become_classes_and_values_find_theirs() {
        let bands = serde_json::json!([
            {"max": 50.0, "label_zh": "优", "label_en": "Excellent", "color": "#00E400"},
            {"max": 100.0, "label_zh": "良", "label_en": "Good", "color": "#FFFF00"},
            {"max": null, "label_zh": "差", "label_en": "Poor", "color": "#7E0023"}]);
        let c = band_classes(&bands);
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].min, c[0].max, c[0].srgb), (None, Some(50.0), [0, 0xe4, 0]));
        assert_eq!((c[2].min, c[2].max, c[2].srgb), (Some(100.0), None, [0x7e, 0, 0x23]));
        assert_eq!(class_of(&c, 50.0).unwrap().label_en, "Excellent");
        assert_eq!(class_of(&c, 50.5).unwrap().label_en, "Good");
        assert_eq!(class_of(&c, 1e6).unwrap().label_en, "Poor");
        assert_eq!(class_text(&c[0], true), "≤ 50  优");
        assert_eq!(class_text(&c[1], false), "50 – 100  Good");
        assert_eq!(class_text(&c[2], false), "> 100  Poor");
        // the server's colour wins; no value is neutral, never missing
        let v = serde_json::json!({"value": 70.0, "color": "#123456"});
        assert_eq!(district_srgb(Some(&v), &c, true), ([0x12, 0x34, 0x56], "band"));
        assert_eq!(district_srgb(Some(&serde_json::json!({"value": 70.0})), &c, true), ([255, 255, 0], "band"));
        assert_eq!(district_srgb(Some(&serde_json::json!({"value": null})), &c, true), (NEUTRAL_SRGB, "none"));
        assert_eq!(district_srgb(None, &c, true), (NEUTRAL_SRGB, "none"));
    }

    #[test]
    fn the_ramp_spans_the_values_in_five_equal_classes() {
        let c = ramp_classes(&[1.0, 2.0, 6.0]);
        assert_eq!(c.len(), 5);
        assert_eq!((c[0].min, c[0].max), (Some(1.0), Some(2.0)));
        assert_eq!((c[4].min, c[4].max), (Some(5.0), Some(6.0)));
        // lowest value → lightest, highest → darkest; 2.0 is on the first class's inclusive top
        let col = |x: f64| district_srgb(Some(&serde_json::json!({"value": x})), &c, false);
        assert_eq!(col(1.0), (RAMP[0], "ramp"));
        assert_eq!(col(2.0), (RAMP[0], "ramp"));
        assert_eq!(col(2.01), (RAMP[1], "ramp"));
        assert_eq!(col(6.0), (RAMP[4], "ramp"));
        assert_eq!(class_text(&c[1], true), "2 – 3");
        assert_eq!(class_text(&ramp_classes(&[1.0, 2.0])[1], true), "1.2 – 1.4");
        assert_eq!((fmt_num(0.5), fmt_num(12.34), fmt_num(250.4), fmt_num(-0.001)), ("0.5".into(), "12.3".into(), "250".into(), "0".into()));
        // all equal: one class; nothing: none
        assert_eq!(ramp_classes(&[3.0, 3.0]).len(), 1);
        assert!(ramp_classes(&[]).is_empty());
        assert_eq!((unit_text("{event}", true), unit_text("{event}", false), unit_text("ug/m3", true), unit_text("1", true)), ("件".into(), "events".into(), "µg/m³".into(), String::new()));
        // the ramp and the neutral colour are distinct from the scene's sky and ground
        for a in RAMP.iter().chain([&NEUTRAL_SRGB]) {
            for s in [crate::app::SKY_SRGB, crate::app::GROUND_SRGB] {
                assert!((0..3).map(|k| (a[k] as i32 - s[k] as i32).abs()).max().unwrap() > 20, "{a:?} vs {s:?}");
            }
        }
    }

    #[test]
    fn key_c_cycles_through_the_candidates_and_wraps() {
        let c: Vec<String> = ["events_open", "aqi_1h", "congestion_index"].iter().map(|s| s.to_string()).collect();
        assert_eq!(next_candidate(&c, "events_open"), 1);
        assert_eq!(next_candidate(&c, "congestion_index"), 0);
        assert_eq!(next_candidate(&c, "unknown"), 0);
    }

    #[test]
    fn district_polygons_of_a_tile_are_filled_by_name() {
        let id = TileId::containing(123.43, 41.80, 14);
        let mut l = LayerBuilder::new("districts", 4096);
        l.add_feature(Some(1), &[("name", MV::from("西区")), ("name_en", MV::from("West"))], &Geometry::Polygons(vec![vec![vec![[0, 0], [2048, 0], [2048, 4096], [0, 4096]]]]));
        l.add_feature(Some(2), &[("name", MV::from("东区"))], &Geometry::Polygons(vec![vec![vec![[2048, 0], [4096, 0], [4096, 4096], [2048, 4096]]]]));
        let tile = tiles::mvt::decode(&encode_tile(&[l])).unwrap();
        let frame = WorldFrame::new(123.43, 41.80, 0.0);
        let mut out = BTreeMap::new();
        tile_districts(&tile, id, &frame, 10.0, &mut out);
        assert_eq!(out.keys().cloned().collect::<Vec<_>>(), vec!["东区".to_string(), "西区".to_string()]);
        assert_eq!(out["西区"].name_en.as_deref(), Some("West"));
        for d in out.values() {
            assert_eq!(d.part.indices.len(), 6, "a rectangle is two triangles");
        }
        // the west half lies west of the east half, at the fill height
        let mx = |n: &str| out[n].part.positions.iter().map(|p| p[0]).fold(f32::MIN, f32::max);
        assert!(mx("西区") < mx("东区"));
        let y = out["西区"].part.positions[0][1] as f64;
        assert!((y - (10.0 + LIFT_M)).abs() < 2.0, "{y}");
    }
}
