//! `/api/stream` messages (WebSocket text frames or SSE `data:` lines, one JSON object each).
//!
//! Server → client: [`ServerMessage`]. A client subscribes with query parameters
//! (`topics=events,units&bbox=w,s,e,n&since=SEQ`); see docs/LIVE.md.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    Events,
    Sensors,
    Units,
    Indicators,
}

impl Topic {
    pub const ALL: [Topic; 4] = [Topic::Events, Topic::Sensors, Topic::Units, Topic::Indicators];
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Events => "events",
            Topic::Sensors => "sensors",
            Topic::Units => "units",
            Topic::Indicators => "indicators",
        }
    }
    pub fn parse(s: &str) -> Option<Topic> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One row of the change log: what the stream sends as a delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Gap-free, ascending in commit order, global to the store.
    pub seq: i64,
    pub topic: Topic,
    /// What happened, per topic: `created`, `transition`, `escalated`, `assigned`, `status`, …
    pub kind: String,
    /// Id of the entity changed (event id, unit id, datastream id, …) as a string.
    pub entity: String,
    /// Position for bbox filtering, if the entity has one.
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub at: Timestamp,
    /// The entity after the change (the full `Event`, `Unit`, … JSON).
    pub payload: serde_json::Value,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message: the server's view of the subscription.
    Hello { server: String, topics: Vec<Topic>, bbox: Option<[f64; 4]>, since: Option<i64>, head: i64 },
    /// Current state of the subscribed topics in the bbox, consistent with every change up to
    /// `seq`; deltas that follow have `seq` greater than it.
    Snapshot {
        seq: i64,
        events: Vec<crate::Event>,
        units: Vec<crate::Unit>,
        #[serde(default)]
        sensors: Vec<serde_json::Value>,
        /// Current indicator values (topic `indicators`): derived, as of the indicator engine's
        /// own head seq, which may differ from `seq` (see `IndicatorValues`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        indicators: Vec<serde_json::Value>,
    },
    /// One change.
    Delta(Change),
    /// The client fell behind (queue full, or its `since` is older than what is kept): it must
    /// reconnect with `since` = the last seq it processed (or without `since` for a new snapshot).
    /// The server closes the connection after this message.
    Resync { reason: String, last_sent: Option<i64> },
    /// Indicator values that changed (topic `indicators`), at most once per second. Derived from
    /// the change log, not part of it: no seq, not replayed on resume (a resume gets one
    /// message with every current value instead); `head` is the change-log seq the values
    /// reflect.
    IndicatorValues { at: Timestamp, head: i64, values: Vec<serde_json::Value> },
    /// Keepalive with the current head seq.
    Ping { head: i64 },
    Error { message: String },
}
