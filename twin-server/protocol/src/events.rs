//! Events and their closed loop 发现 → 推送 → 处置 → 反馈 → 评估.

use crate::{LonLat, Timestamp};
use serde::{Deserialize, Serialize};

/// Lifecycle state. `Closed` is the evaluated end of the loop (评估); `Cancelled` and `Rejected`
/// are the other terminal states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// 发现: reported, waiting for dispatch.
    Reported,
    /// 推送: pushed to a unit / department.
    Dispatched,
    /// 处置: being handled on site.
    Handling,
    /// 反馈: the handler reported back, waiting for evaluation.
    Feedback,
    /// 评估: evaluated and closed.
    Closed,
    /// 取消: withdrawn (needs a reason).
    Cancelled,
    /// 驳回: refused as invalid / not in scope (needs a reason).
    Rejected,
}

impl EventState {
    pub const ALL: [EventState; 7] = [
        EventState::Reported,
        EventState::Dispatched,
        EventState::Handling,
        EventState::Feedback,
        EventState::Closed,
        EventState::Cancelled,
        EventState::Rejected,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Reported => "reported",
            EventState::Dispatched => "dispatched",
            EventState::Handling => "handling",
            EventState::Feedback => "feedback",
            EventState::Closed => "closed",
            EventState::Cancelled => "cancelled",
            EventState::Rejected => "rejected",
        }
    }
    pub fn parse(s: &str) -> Option<EventState> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn name_zh(self) -> &'static str {
        match self {
            EventState::Reported => "发现",
            EventState::Dispatched => "推送",
            EventState::Handling => "处置",
            EventState::Feedback => "反馈",
            EventState::Closed => "评估",
            EventState::Cancelled => "取消",
            EventState::Rejected => "驳回",
        }
    }
    pub fn name_en(self) -> &'static str {
        match self {
            EventState::Reported => "reported",
            EventState::Dispatched => "dispatched",
            EventState::Handling => "handling",
            EventState::Feedback => "feedback",
            EventState::Closed => "evaluated/closed",
            EventState::Cancelled => "cancelled",
            EventState::Rejected => "rejected",
        }
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, EventState::Closed | EventState::Cancelled | EventState::Rejected)
    }
    /// The states this one may move to. The only state machine of the project.
    pub fn successors(self) -> &'static [EventState] {
        use EventState::*;
        match self {
            Reported => &[Dispatched, Cancelled, Rejected],
            Dispatched => &[Handling, Reported, Cancelled],
            Handling => &[Feedback, Cancelled],
            Feedback => &[Closed, Handling],
            Closed | Cancelled | Rejected => &[],
        }
    }
    pub fn can_move_to(self, to: EventState) -> bool {
        self.successors().contains(&to)
    }
    /// Moving here needs a non-empty reason.
    pub fn needs_reason(self) -> bool {
        matches!(self, EventState::Cancelled | EventState::Rejected)
    }
}

/// Category ids; the taxonomy (names, default severity, SLA) is data: `assets/events/categories.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Fire,
    TrafficAccident,
    GasLeak,
    Flooding,
    CityManagement,
    PublicSecurity,
    Medical,
    AirQuality,
    Infrastructure,
    Other,
}

impl Category {
    pub const ALL: [Category; 10] = [
        Category::Fire,
        Category::TrafficAccident,
        Category::GasLeak,
        Category::Flooding,
        Category::CityManagement,
        Category::PublicSecurity,
        Category::Medical,
        Category::AirQuality,
        Category::Infrastructure,
        Category::Other,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Fire => "fire",
            Category::TrafficAccident => "traffic_accident",
            Category::GasLeak => "gas_leak",
            Category::Flooding => "flooding",
            Category::CityManagement => "city_management",
            Category::PublicSecurity => "public_security",
            Category::Medical => "medical",
            Category::AirQuality => "air_quality",
            Category::Infrastructure => "infrastructure",
            Category::Other => "other",
        }
    }
    pub fn parse(s: &str) -> Option<Category> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn name_zh(self) -> &'static str {
        match self {
            Category::Fire => "火灾",
            Category::TrafficAccident => "交通事故",
            Category::GasLeak => "燃气泄漏",
            Category::Flooding => "内涝",
            Category::CityManagement => "城市管理",
            Category::PublicSecurity => "治安",
            Category::Medical => "医疗急救",
            Category::AirQuality => "空气质量",
            Category::Infrastructure => "设施故障",
            Category::Other => "其他",
        }
    }
    pub fn name_en(self) -> &'static str {
        match self {
            Category::Fire => "fire",
            Category::TrafficAccident => "traffic accident",
            Category::GasLeak => "gas leak",
            Category::Flooding => "flooding",
            Category::CityManagement => "city management",
            Category::PublicSecurity => "public security",
            Category::Medical => "medical emergency",
            Category::AirQuality => "air quality",
            Category::Infrastructure => "infrastructure failure",
            Category::Other => "other",
        }
    }
}

/// Severity 1 (low) … 4 (critical). JSON: the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Severity {
    Low = 1,
    Medium = 2,
    High = 3,
    Critical = 4,
}

impl TryFrom<u8> for Severity {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        Ok(match v {
            1 => Severity::Low,
            2 => Severity::Medium,
            3 => Severity::High,
            4 => Severity::Critical,
            _ => return Err(format!("severity must be 1 (low) … 4 (critical), got {v}")),
        })
    }
}

impl From<Severity> for u8 {
    fn from(s: Severity) -> u8 {
        s as u8
    }
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    SensorAlarm,
    #[serde(rename = "hotline_12345")]
    Hotline12345,
    Patrol,
    VideoAnalytics,
    Manual,
}

impl EventSource {
    pub const ALL: [EventSource; 5] =
        [EventSource::SensorAlarm, EventSource::Hotline12345, EventSource::Patrol, EventSource::VideoAnalytics, EventSource::Manual];
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::SensorAlarm => "sensor_alarm",
            EventSource::Hotline12345 => "hotline_12345",
            EventSource::Patrol => "patrol",
            EventSource::VideoAnalytics => "video_analytics",
            EventSource::Manual => "manual",
        }
    }
    pub fn parse(s: &str) -> Option<EventSource> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn name_zh(self) -> &'static str {
        match self {
            EventSource::SensorAlarm => "传感器告警",
            EventSource::Hotline12345 => "12345热线",
            EventSource::Patrol => "巡查上报",
            EventSource::VideoAnalytics => "视频智能分析",
            EventSource::Manual => "人工录入",
        }
    }
}

/// An event as stored and served (current state derived from its log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub category: Category,
    pub severity: Severity,
    pub source: EventSource,
    pub state: EventState,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub location: LonLat,
    /// Index of the model district containing the location, if any.
    pub district: Option<u32>,
    /// The district's name (zh), if any.
    #[serde(default)]
    pub district_name: Option<String>,
    /// Index of the model street (街道/乡镇) containing the location: set by the indicator feeder
    /// from the served model (not stored; absent in the events API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<u32>,
    pub reported_at: Timestamp,
    pub updated_at: Timestamp,
    /// Deadline of the current stage (SLA), if the stage has one.
    pub due_at: Option<Timestamp>,
    /// Escalation level (0 = never escalated); bumped once per overdue stage.
    #[serde(default)]
    pub escalation: u32,
    /// Units assigned (ids).
    #[serde(default)]
    pub units: Vec<i64>,
    /// Free-form source reference (sensor datastream id, hotline ticket, …).
    #[serde(default)]
    pub external_ref: Option<String>,
}

/// What a client posts to create an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    pub category: Category,
    /// Defaults to the category's default severity.
    pub severity: Option<Severity>,
    pub source: EventSource,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub location: LonLat,
    pub actor: String,
    /// Report time (defaults to now); lets sources back-date an observation-raised event.
    pub reported_at: Option<Timestamp>,
    #[serde(default)]
    pub external_ref: Option<String>,
}

/// One entry of an event's append-only log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Log entry id (global, ascending in commit order).
    pub id: i64,
    pub event_id: i64,
    /// `None` for the creating entry.
    pub from: Option<EventState>,
    pub to: EventState,
    /// `transition`, `created`, `escalated`, `assigned`.
    pub kind: String,
    pub actor: String,
    pub at: Timestamp,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/events/{id}/transitions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    pub to: EventState,
    pub actor: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}
