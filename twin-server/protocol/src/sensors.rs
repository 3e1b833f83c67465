//! City sensor types of the sensors module (SensorThings API 1.1 data model in the server):
//! each type's UCUM unit, valid range and default event category, and the wire shape of the
//! latest-value overview (`GET /api/sensors/latest`).

use serde::{Deserialize, Serialize};

/// What a sensor type's results are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResultKind {
    /// A number in `[min, max]` (inclusive).
    Number { min: f64, max: f64 },
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
}

/// A city sensor type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SensorType {
    /// Key used in `Datastream.properties.sensorType`.
    pub key: &'static str,
    pub name_zh: &'static str,
    pub name_en: &'static str,
    /// `unitOfMeasurement`: name, symbol, definition (UCUM code URL).
    pub unit_name: &'static str,
    pub unit_symbol: &'static str,
    pub unit_ucum: &'static str,
    pub result: ResultKind,
    /// Event category (snake_case, as `twin_protocol::Category`) raised by its thresholds.
    pub category: &'static str,
    /// STA observationType.
    pub observation_type: &'static str,
}

const MEASUREMENT: &str = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement";
const CATEGORY_OBS: &str = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation";

pub const ELEVATOR_STATES: &[&str] = &["normal", "maintenance", "stopped", "fault", "trapped"];

/// All city sensor types.
pub const SENSOR_TYPES: &[SensorType] = &[
    SensorType { key: "pm25", name_zh: "PM2.5", name_en: "PM2.5", unit_name: "microgram per cubic metre", unit_symbol: "µg/m³", unit_ucum: "ug/m3", result: ResultKind::Number { min: 0.0, max: 1000.0 }, category: "air_quality", observation_type: MEASUREMENT },
    SensorType { key: "aqi", name_zh: "空气质量指数", name_en: "air quality index", unit_name: "AQI", unit_symbol: "AQI", unit_ucum: "{AQI}", result: ResultKind::Number { min: 0.0, max: 500.0 }, category: "air_quality", observation_type: MEASUREMENT },
    SensorType { key: "water_level", name_zh: "水位", name_en: "water level", unit_name: "metre", unit_symbol: "m", unit_ucum: "m", result: ResultKind::Number { min: -10.0, max: 60.0 }, category: "flooding", observation_type: MEASUREMENT },
    SensorType { key: "gas_lel", name_zh: "可燃气体浓度", name_en: "combustible gas", unit_name: "percent of lower explosive limit", unit_symbol: "%LEL", unit_ucum: "%{LEL}", result: ResultKind::Number { min: 0.0, max: 100.0 }, category: "gas_leak", observation_type: MEASUREMENT },
    SensorType { key: "gas_ppm", name_zh: "气体浓度", name_en: "gas concentration", unit_name: "parts per million", unit_symbol: "ppm", unit_ucum: "[ppm]", result: ResultKind::Number { min: 0.0, max: 1_000_000.0 }, category: "gas_leak", observation_type: MEASUREMENT },
    SensorType { key: "traffic_flow", name_zh: "交通流量", name_en: "traffic flow", unit_name: "vehicles per hour", unit_symbol: "veh/h", unit_ucum: "{veh}/h", result: ResultKind::Number { min: 0.0, max: 20_000.0 }, category: "traffic_accident", observation_type: MEASUREMENT },
    SensorType { key: "traffic_speed", name_zh: "车速", name_en: "traffic speed", unit_name: "kilometre per hour", unit_symbol: "km/h", unit_ucum: "km/h", result: ResultKind::Number { min: 0.0, max: 250.0 }, category: "traffic_accident", observation_type: MEASUREMENT },
    SensorType { key: "parking_occupancy", name_zh: "停车占用率", name_en: "parking occupancy", unit_name: "percent", unit_symbol: "%", unit_ucum: "%", result: ResultKind::Number { min: 0.0, max: 100.0 }, category: "city_management", observation_type: MEASUREMENT },
    SensorType { key: "elevator_status", name_zh: "电梯状态", name_en: "elevator status", unit_name: "status", unit_symbol: "", unit_ucum: "{status}", result: ResultKind::Enum(ELEVATOR_STATES), category: "infrastructure", observation_type: CATEGORY_OBS },
    SensorType { key: "manhole_tilt", name_zh: "井盖倾角", name_en: "manhole-cover tilt", unit_name: "degree", unit_symbol: "°", unit_ucum: "deg", result: ResultKind::Number { min: 0.0, max: 90.0 }, category: "infrastructure", observation_type: MEASUREMENT },
    SensorType { key: "noise", name_zh: "噪声", name_en: "noise", unit_name: "A-weighted decibel", unit_symbol: "dB(A)", unit_ucum: "dB", result: ResultKind::Number { min: 0.0, max: 140.0 }, category: "city_management", observation_type: MEASUREMENT },
];

pub fn sensor_type(key: &str) -> Option<&'static SensorType> {
    SENSOR_TYPES.iter().find(|t| t.key == key)
}

/// Thresholds of one datastream (`Datastream.properties.thresholds`).
///
/// Numeric types: `warning`/`alarm` levels crossed in `direction` (`above`: value ≥ level;
/// `below`: value ≤ level). A raised level is left only when the value is back beyond the level
/// by more than `hysteresis` (above: value < level − hysteresis). A rise is taken only after the
/// values stayed at or past it for `pending_s` seconds of phenomenon time (0: at once).
/// Enum types: `warning_values` / `alarm_values`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    #[serde(default)]
    pub direction: Direction,
    pub warning: Option<f64>,
    pub alarm: Option<f64>,
    #[serde(default)]
    pub hysteresis: f64,
    #[serde(default)]
    pub pending_s: f64,
    #[serde(default)]
    pub warning_values: Vec<String>,
    #[serde(default)]
    pub alarm_values: Vec<String>,
}

impl Thresholds {
    /// Checks a thresholds definition (`numeric`: the sensor type has a numeric result); the
    /// message names the field.
    pub fn validate(&self, numeric: bool) -> Result<(), String> {
        for (n, v) in [("warning", self.warning), ("alarm", self.alarm)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(format!("thresholds.{n} must be a finite number"));
            }
        }
        if !self.hysteresis.is_finite() || self.hysteresis < 0.0 {
            return Err("thresholds.hysteresis must be ≥ 0".into());
        }
        if !self.pending_s.is_finite() || self.pending_s < 0.0 {
            return Err("thresholds.pending_s must be ≥ 0".into());
        }
        if numeric {
            if self.warning.is_none() && self.alarm.is_none() {
                return Err("thresholds need warning and/or alarm".into());
            }
            if let (Some(w), Some(a)) = (self.warning, self.alarm) {
                let ok = match self.direction {
                    Direction::Above => a >= w,
                    Direction::Below => a <= w,
                };
                if !ok {
                    return Err(format!("thresholds.alarm {a} must be beyond thresholds.warning {w} in direction {:?}", self.direction));
                }
            }
        } else if self.warning_values.is_empty() && self.alarm_values.is_empty() {
            return Err("thresholds of an enum sensor need warning_values and/or alarm_values".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Above,
    Below,
}

/// Alarm level of a datastream.
pub const LEVEL_NORMAL: u8 = 0;
pub const LEVEL_WARNING: u8 = 1;
pub const LEVEL_ALARM: u8 = 2;

/// One entry of `GET /api/sensors/latest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestValue {
    pub datastream: i64,
    pub name: String,
    pub sensor_type: String,
    pub unit: String,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub result: serde_json::Value,
    pub phenomenon_time: crate::Timestamp,
    /// 0 normal, 1 warning, 2 alarm.
    pub level: u8,
}
