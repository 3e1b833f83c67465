//! Indicator definitions (what `assets/indicators/*.toml` holds once validated).

use serde::Serialize;
use twin_protocol::{Category, EventSource, EventState, Severity};

/// The cockpit themes (全景沈阳 … and the 好系列 scenes).
pub const THEMES: [(&str, &str); 16] = [
    ("全景沈阳", "Panorama Shenyang"),
    ("经济", "Economy"),
    ("政治", "Politics"),
    ("文化", "Culture"),
    ("社会", "Society"),
    ("生态", "Ecology"),
    ("指挥调度", "Command & dispatch"),
    ("好政策", "Good policy"),
    ("好就医", "Good healthcare"),
    ("好停车", "Good parking"),
    ("好游玩", "Good leisure"),
    ("好城管", "Good city management"),
    ("好就业", "Good employment"),
    ("好养老", "Good elderly care"),
    ("好防疫", "Good epidemic prevention"),
    ("好教育", "Good education"),
];

/// Observed properties a metric over observations may name, with their units. The server maps
/// the sensors module's datastreams onto these names.
pub const OBSERVED_PROPERTIES: [(&str, &str); 13] = [
    ("pm25", "ug/m3"),
    ("pm10", "ug/m3"),
    ("aqi", "{AQI}"),
    ("water_level", "m"),
    ("gas_concentration", "%LEL"),
    ("traffic_flow", "{vehicle}/h"),
    ("traffic_speed", "km/h"),
    ("parking_occupancy", "%"),
    ("elevator_status", "1"),
    ("manhole_tilt", "deg"),
    ("noise", "dB(A)"),
    ("temperature", "Cel"),
    ("humidity", "%"),
];

/// Sensor types (the `sensor_type` filter).
pub const SENSOR_TYPES: [&str; 9] = [
    "air_quality",
    "water_level",
    "gas",
    "traffic",
    "parking",
    "elevator",
    "manhole",
    "noise",
    "weather",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefState {
    Draft,
    Published,
    Retired,
}

impl DefState {
    pub fn parse(s: &str) -> Option<DefState> {
        match s {
            "draft" => Some(DefState::Draft),
            "published" => Some(DefState::Published),
            "retired" => Some(DefState::Retired),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Spatial {
    City,
    District,
    /// City, every district and every street (街道/乡镇): inputs carry a street as they carry a
    /// district.
    Street,
}

impl Spatial {
    /// Whether values are kept per district (district and street grain).
    pub fn per_district(self) -> bool {
        self != Spatial::City
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarUnit {
    Day,
    Week,
    Month,
}

/// The time window a metric aggregates over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Window {
    /// No window (static and derived indicators).
    None,
    /// A gauge over the current state of events (open events by state, overdue now).
    Current,
    /// The last `ms` milliseconds (`PT1H`, `P1D`, `P7D` …), kept in `ms / 240` buckets.
    Rolling { ms: i64 },
    /// Since the start of the current calendar day / ISO week (Monday) / month in Asia/Shanghai.
    Calendar { unit: CalendarUnit },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Events,
    Transitions,
    Observations,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Aggregate {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Percentile {
        p: f64,
    },
    /// numerator count / denominator count (×100 when the unit is `%`).
    Ratio,
    /// count per hour or per day of the window.
    Rate {
        per_ms: i64,
    },
    /// Distinct datastreams that reported in the window (observations only).
    Distinct,
}

/// Filters on inputs; an empty list accepts everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Filter {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<Category>,
    /// events: current state; transitions: the state moved to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<EventState>,
    /// transitions: the state moved from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from_state: Vec<EventState>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<EventSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<Severity>,
    /// transitions: log entry kind (`created`, `transition`, `escalated`, `assigned`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kind: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sensor_type: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observed_property: Vec<String>,
    /// District indices of the model.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub district: Vec<u32>,
    /// events, current window: only events past their stage deadline (`due_at <= now`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overdue: Option<bool>,
    /// observations: value ≥ value_min (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_min: Option<f64>,
    /// observations: value ≤ value_max (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_max: Option<f64>,
    /// `observed_property` as a bit set over [`OBSERVED_PROPERTIES`] (0 = no filter).
    #[serde(skip)]
    pub prop_mask: u32,
    /// `sensor_type` as a bit set over [`SENSOR_TYPES`] (0 = no filter).
    #[serde(skip)]
    pub sensor_mask: u32,
}

/// The bit of an observed property in [`Filter::prop_mask`] (0 when not in the vocabulary).
pub fn prop_bit(p: &str) -> u32 {
    OBSERVED_PROPERTIES
        .iter()
        .position(|x| x.0 == p)
        .map(|i| 1 << i)
        .unwrap_or(0)
}

/// The bit of a sensor type in [`Filter::sensor_mask`] (0 when not in the vocabulary).
pub fn sensor_bit(p: &str) -> u32 {
    SENSOR_TYPES
        .iter()
        .position(|x| *x == p)
        .map(|i| 1 << i)
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDef {
    pub input: InputKind,
    pub aggregate: Aggregate,
    /// The numeric field aggregated (sum/avg/min/max/percentile): events `severity`,
    /// `escalation`; transitions `since_reported_min`, `stage_min`; observations `value`.
    pub field: Option<String>,
    pub filter: Filter,
    pub numerator: Option<Filter>,
    pub denominator: Option<Filter>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaticDef {
    pub value: Option<f64>,
    /// Per district, by district name.
    pub by_district: Vec<(String, f64)>,
    /// The date or period the figure refers to.
    pub as_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DerivedDef {
    pub expr: String,
    #[serde(skip)]
    pub ast: crate::expr::Expr,
    pub inputs: Vec<String>,
    /// Line of `expr` in its file (for errors found across the set).
    #[serde(skip)]
    pub line: usize,
}

/// JSON: `{"static": {...}}`, `{"metric": {...}}` or `{"derived": {"expr": …, "inputs": […]}}`,
/// flattened into the definition (as in the TOML).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Static(StaticDef),
    Metric(Box<MetricDef>),
    Derived(DerivedDef),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Band {
    /// Inclusive upper bound; `None` = no upper bound (the last band).
    pub max: Option<f64>,
    pub label_zh: String,
    pub label_en: String,
    /// `#rrggbb`.
    pub color: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Good when the value is at least the target.
    AtLeast,
    /// Good when the value is at most the target.
    AtMost,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub value: f64,
    pub direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Definition {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    pub theme: String,
    pub unit: String,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(flatten)]
    pub kind: Kind,
    pub window: Window,
    /// Step of the kept history (ms); boundaries aligned in Asia/Shanghai local time.
    pub grain_ms: i64,
    pub spatial: Spatial,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<Band>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Citation of the figure or method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub version: u32,
    pub state: DefState,
    /// Where it was defined (file name, 1-based line of its `[[indicator]]`).
    pub file: String,
    pub line: usize,
}

impl Definition {
    /// The band the value falls in (first band whose inclusive `max` is ≥ value).
    pub fn band(&self, v: f64) -> Option<&Band> {
        self.bands.iter().find(|b| b.max.is_none_or(|m| v <= m))
    }
    pub fn metric(&self) -> Option<&MetricDef> {
        match &self.kind {
            Kind::Metric(m) => Some(m),
            _ => None,
        }
    }
    pub fn derived(&self) -> Option<&DerivedDef> {
        match &self.kind {
            Kind::Derived(d) => Some(d),
            _ => None,
        }
    }
    pub fn is_active(&self) -> bool {
        self.state != DefState::Retired
    }
}
