//! Builders shared by the indicator tests.
#![allow(dead_code)]

use indicators::*;
use twin_protocol::{
    ts_from_ms, Category, Event, EventSource, EventState, LonLat, Severity, Transition,
};

/// 2026-11-22 00:00 Asia/Shanghai (= 2026-11-21T16:00:00Z), in ms.
pub const T0: i64 = 1_795_276_800_000;
pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;

/// A definition header for test indicators.
pub fn head(id: &str, unit: &str, kind: &str, window: Option<&str>) -> String {
    let w = window
        .map(|w| format!("window = \"{w}\"\n"))
        .unwrap_or_default();
    format!(
        "[[indicator]]\nid = \"{id}\"\nname_zh = \"测试\"\nname_en = \"test\"\ntheme = \"指挥调度\"\nunit = \"{unit}\"\nowner = \"test\"\nkind = \"{kind}\"\n{w}spatial = \"district\"\nversion = 1\nstate = \"published\"\n"
    )
}

pub fn metric(id: &str, unit: &str, window: &str, body: &str) -> String {
    format!(
        "{}[indicator.metric]\n{body}\n",
        head(id, unit, "metric", Some(window))
    )
}

pub fn derived(id: &str, unit: &str, expr: &str) -> String {
    format!("{}expr = \"{expr}\"\n", head(id, unit, "derived", None))
}

pub fn library(text: &str) -> Library {
    match Library::from_sources(&[("test.toml".to_string(), text.to_string())]) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    }
}

pub fn engine(text: &str) -> Engine {
    Engine::new(
        library(text),
        EngineConfig {
            districts: vec!["和平区".into(), "沈河区".into()],
            history_points: 1000,
            max_future_ms: 3_600_000,
            street_districts: vec![],
        },
    )
}

pub fn ev(
    id: i64,
    category: Category,
    source: EventSource,
    sev: Severity,
    district: u32,
    reported: i64,
    due: Option<i64>,
) -> Input {
    Input::Event(Event {
        id,
        category,
        severity: sev,
        source,
        state: EventState::Reported,
        title: format!("event {id}"),
        description: String::new(),
        location: LonLat {
            lon: 123.4,
            lat: 41.8,
        },
        district: Some(district),
        district_name: None,
        street: None,
        reported_at: ts_from_ms(reported),
        updated_at: ts_from_ms(reported),
        due_at: due.map(ts_from_ms),
        escalation: 0,
        units: vec![],
        external_ref: None,
    })
}

pub fn tr(
    id: i64,
    event_id: i64,
    from: Option<EventState>,
    to: EventState,
    at: i64,
    kind: &str,
) -> Input {
    Input::Transition(Transition {
        id,
        event_id,
        from,
        to,
        kind: kind.into(),
        actor: "test".into(),
        at: ts_from_ms(at),
        note: None,
        reason: None,
    })
}

pub fn obs(ds: &str, prop: &str, district: u32, value: f64, t: i64) -> Input {
    Input::Observation(Observation {
        datastream: ds.into(),
        sensor_type: "air_quality".into(),
        observed_property: prop.into(),
        district: Some(district),
        street: None,
        location: None,
        value,
        phenomenon_time: ts_from_ms(t),
    })
}

pub fn val(e: &mut Engine, id: &str, area: Area, now: i64) -> Option<f64> {
    e.value(id, area, now)
        .unwrap_or_else(|| panic!("no indicator {id}"))
        .value
}

pub fn close(a: Option<f64>, b: f64, tol: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= tol)
}
