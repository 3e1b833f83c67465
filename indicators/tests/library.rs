//! The shipped library (assets/indicators) loads, validates and covers every theme.

use indicators::*;
use std::collections::BTreeSet;

fn lib() -> Library {
    match Library::load_dir(&default_library_dir()) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn loads_and_validates() {
    let l = lib();
    assert!(l.defs.len() >= 40, "only {} indicators", l.defs.len());
    let themes: BTreeSet<&str> = l.defs.iter().map(|d| d.theme.as_str()).collect();
    for (t, _) in THEMES {
        assert!(themes.contains(t), "no indicator for theme {t}");
    }
    // Every static figure cites its source.
    for d in &l.defs {
        if let Kind::Static(_) = d.kind {
            let s = d.source.as_deref().unwrap_or("");
            assert!(s.contains('《'), "{}: static figure without a named source: {s:?}", d.id);
        }
    }
    // The live indicators the cockpit needs are there.
    for id in [
        "events_reported_open",
        "events_dispatched_open",
        "events_handling_open",
        "events_feedback_open",
        "closure_rate_7d",
        "dispatch_time_avg",
        "arrival_time_avg",
        "events_overdue",
        "aqi_1h",
        "congestion_index",
        "parking_occupancy_1h",
        "sensor_online_rate",
        "hotline_12345_today",
    ] {
        let d = l.get(id).unwrap_or_else(|| panic!("missing {id}"));
        assert_eq!(d.state, DefState::Published);
    }
    // The plan figures, as reported.
    let plan = [
        ("online_services_share", 99.4),
        ("instant_services_share", 70.3),
        ("egov_network_sites", 4000.0),
        ("video_cameras_integrated", 9.1),
        ("parking_lots_connected", 608.0),
        ("data_records_collected", 65.0),
    ];
    for (id, v) in plan {
        let d = l.get(id).unwrap();
        let Kind::Static(s) = &d.kind else { panic!("{id} not static") };
        assert_eq!(s.value, Some(v), "{id}");
        assert!(d.source.as_deref().unwrap().contains("《沈阳市数字政府建设总体规划（2022-2025年）》"), "{id}");
    }
    // AQI bands follow HJ 633-2012: 50/100/150/200/300 and an open last class.
    let aqi = l.get("aqi_1h").unwrap();
    let maxes: Vec<Option<f64>> = aqi.bands.iter().map(|b| b.max).collect();
    assert_eq!(maxes, vec![Some(50.0), Some(100.0), Some(150.0), Some(200.0), Some(300.0), None]);
    assert_eq!(aqi.band(100.0).unwrap().label_zh, "良");
    assert_eq!(aqi.band(100.5).unwrap().label_zh, "轻度污染");
    assert_eq!(aqi.band(301.0).unwrap().color, "#7E0023");
}

#[test]
fn derived_statics_evaluate() {
    let mut e = Engine::new(lib(), EngineConfig::default());
    let now = 1_700_000_000_000;
    // 224.257 / 763.9824 × 100 = 29.35370…
    let v = e.value("registered_aged_60_plus_share", Area::City, now).unwrap().value.unwrap();
    assert!((v - 29.3537).abs() < 1e-3, "{v}");
    // 120.0328 + 315.1915 = 435.2243
    let v = e.value("registered_working_age_2023", Area::City, now).unwrap().value.unwrap();
    assert!((v - 435.2243).abs() < 1e-9, "{v}");
    // Every active indicator yields a row for the city.
    let vals = e.values_at(now);
    let ids: BTreeSet<&str> = vals.iter().filter(|v| v.area == Area::City).map(|v| v.id.as_str()).collect();
    assert_eq!(ids.len(), e.definitions().count());
}
