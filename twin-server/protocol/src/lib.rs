//! CityTwin wire types: what the live-operations API and stream send and accept.
//!
//! Shared by `twin-server`, the viewer and `indicators` — none of them depends on another for
//! these types. Everything serialises as JSON with snake_case names; the zh/en display names of
//! states, categories, sources and unit kinds are available through `name_zh()` / `name_en()`.
//!
//! Modules: [`events`] (events, lifecycle, transitions), [`units`] (dispatch units),
//! [`stream`] (the `/api/stream` messages and topics), [`sensors`] (slot for the SensorThings
//! types of the sensors module), [`filter`] (the SensorThings `$filter` parser), [`payload`]
//! (parsing and validation of request bodies, query values and MQTT messages).

pub mod events;
pub mod filter;
pub mod payload;
pub mod sensors;
pub mod sta_entity;
pub mod stream;
pub mod units;

pub use events::*;
pub use stream::*;
pub use units::*;

/// Timestamps on the wire: RFC 3339 UTC (`2026-11-22T13:05:00.123Z`).
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Milliseconds since the Unix epoch → [`Timestamp`] (what the stores keep).
pub fn ts_from_ms(ms: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A WGS-84 position, degrees.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LonLat {
    pub lon: f64,
    pub lat: f64,
}

/// A bbox `[west, south, east, north]` in degrees.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bbox(pub [f64; 4]);

impl Bbox {
    /// Parses `w,s,e,n`; `None` when malformed, non-finite or inverted.
    pub fn parse(s: &str) -> Option<Bbox> {
        let v: Vec<f64> = s.split(',').map(|p| p.trim().parse::<f64>()).collect::<Result<_, _>>().ok()?;
        if v.len() != 4 || v.iter().any(|x| !x.is_finite()) || v[0] > v[2] || v[1] > v[3] {
            return None;
        }
        Some(Bbox([v[0], v[1], v[2], v[3]]))
    }
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        lon >= self.0[0] && lon <= self.0[2] && lat >= self.0[1] && lat <= self.0[3]
    }
}
