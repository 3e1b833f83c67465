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
    /// The route it is driving (`en_route` to its event, `returning` to its base), `None`
    /// otherwise. `position` is derived from it and the clock: [`UnitRoute::position_at_ms`].
    #[serde(default)]
    pub route: Option<UnitRoute>,
}

/// Where a moving unit drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutePurpose {
    /// To its event (status `en_route`).
    ToEvent,
    /// Back to its base (status `returning`).
    ToBase,
}

/// A unit's route: persisted with the unit at assignment (or when it turns back), so every
/// replica and every stream client derives the same position from it and the clock without
/// further writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitRoute {
    /// Unique per trip (the mover commits the arrival of exactly this trip).
    pub id: i64,
    pub purpose: RoutePurpose,
    /// `road_network` or `straight_line`.
    pub method: String,
    /// `[[lon, lat], …]` from the start to the destination.
    pub geometry: Vec<[f64; 2]>,
    /// Wall-clock seconds after `depart_at` at which the unit passes each vertex of `geometry`
    /// (non-decreasing, first 0, last `(eta_at - depart_at)`): travel time ÷ `speedup`.
    pub vertex_time_s: Vec<f64>,
    /// Length along the route, metres.
    pub length_m: f64,
    /// Travel time at the roads' speeds, seconds (before `speedup`).
    pub travel_time_s: f64,
    /// Simulated seconds per wall-clock second (`serve --unit-speedup`, the simulator's speed
    /// while it runs; 1 otherwise).
    pub speedup: f64,
    pub depart_at: Timestamp,
    pub eta_at: Timestamp,
    /// Why the road network was not used, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl UnitRoute {
    /// Position `elapsed_s` wall-clock seconds after departure: linear between the vertices by
    /// `vertex_time_s`; the start before departure, the destination after arrival.
    pub fn position_at(&self, elapsed_s: f64) -> LonLat {
        let g = &self.geometry;
        let t = &self.vertex_time_s;
        if g.is_empty() {
            return LonLat { lon: 0.0, lat: 0.0 };
        }
        if g.len() == 1 || t.len() != g.len() || !elapsed_s.is_finite() || elapsed_s <= 0.0 {
            let p = if elapsed_s.is_finite() && elapsed_s > 0.0 && t.len() == g.len() { g[g.len() - 1] } else { g[0] };
            return LonLat { lon: p[0], lat: p[1] };
        }
        let n = g.len();
        if elapsed_s >= t[n - 1] {
            return LonLat { lon: g[n - 1][0], lat: g[n - 1][1] };
        }
        // segment i with t[i] < elapsed ≤ t[i+1]
        let i = t.partition_point(|&v| v < elapsed_s).saturating_sub(1).min(n - 2);
        let (t0, t1) = (t[i], t[i + 1]);
        let f = if t1 > t0 { ((elapsed_s - t0) / (t1 - t0)).clamp(0.0, 1.0) } else { 1.0 };
        let (a, b) = (g[i], g[i + 1]);
        LonLat { lon: a[0] + f * (b[0] - a[0]), lat: a[1] + f * (b[1] - a[1]) }
    }
    /// Position at `now_ms` (milliseconds since the epoch).
    pub fn position_at_ms(&self, now_ms: i64) -> LonLat {
        self.position_at((now_ms - self.depart_at.timestamp_millis()) as f64 / 1000.0)
    }
    pub fn eta_ms(&self) -> i64 {
        self.eta_at.timestamp_millis()
    }
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
