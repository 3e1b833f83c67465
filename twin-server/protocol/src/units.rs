//! Dispatch units.

use crate::{LonLat, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    Police,
    Fire,
    Ambulance,
    CityManagement,
    GasEmergency,
}

impl UnitKind {
    pub const ALL: [UnitKind; 5] = [UnitKind::Police, UnitKind::Fire, UnitKind::Ambulance, UnitKind::CityManagement, UnitKind::GasEmergency];
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Police => "police",
            UnitKind::Fire => "fire",
            UnitKind::Ambulance => "ambulance",
            UnitKind::CityManagement => "city_management",
            UnitKind::GasEmergency => "gas_emergency",
        }
    }
    pub fn parse(s: &str) -> Option<UnitKind> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn name_zh(self) -> &'static str {
        match self {
            UnitKind::Police => "警务",
            UnitKind::Fire => "消防",
            UnitKind::Ambulance => "急救",
            UnitKind::CityManagement => "城管",
            UnitKind::GasEmergency => "燃气抢修",
        }
    }
    pub fn name_en(self) -> &'static str {
        match self {
            UnitKind::Police => "police",
            UnitKind::Fire => "fire",
            UnitKind::Ambulance => "ambulance",
            UnitKind::CityManagement => "city management",
            UnitKind::GasEmergency => "gas emergency",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    Available,
    EnRoute,
    OnScene,
    Returning,
    OutOfService,
}

impl UnitStatus {
    pub const ALL: [UnitStatus; 5] =
        [UnitStatus::Available, UnitStatus::EnRoute, UnitStatus::OnScene, UnitStatus::Returning, UnitStatus::OutOfService];
    pub fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Available => "available",
            UnitStatus::EnRoute => "en_route",
            UnitStatus::OnScene => "on_scene",
            UnitStatus::Returning => "returning",
            UnitStatus::OutOfService => "out_of_service",
        }
    }
    pub fn parse(s: &str) -> Option<UnitStatus> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn name_zh(self) -> &'static str {
        match self {
            UnitStatus::Available => "待命",
            UnitStatus::EnRoute => "出动中",
            UnitStatus::OnScene => "到场",
            UnitStatus::Returning => "返回",
            UnitStatus::OutOfService => "停用",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    pub id: i64,
    pub kind: UnitKind,
    /// Call sign, e.g. `消防-3`.
    pub name: String,
    pub status: UnitStatus,
    /// Where it is now.
    pub position: LonLat,
    /// Its station.
    pub base: LonLat,
    /// Model POI id of the station, if seeded from the model.
    pub station_poi: Option<u32>,
    /// The event it is assigned to, if any.
    pub event_id: Option<i64>,
    pub updated_at: Timestamp,
}

/// `POST /api/events/{id}/assign`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    pub unit_id: i64,
    pub actor: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// One entry of `GET /api/events/{id}/recommend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub unit: Unit,
    /// Estimated travel time, seconds.
    pub eta_s: f64,
    /// Travel distance, metres.
    pub distance_m: f64,
    /// How the ETA was computed: `road_network` or `straight_line`.
    pub method: String,
    /// Route geometry `[[lon, lat], …]` when known.
    #[serde(default)]
    pub route: Option<Vec<[f64; 2]>>,
}
