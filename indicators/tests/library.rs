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
            assert!(
                s.contains('《'),
                "{}: static figure without a named source: {s:?}",
                d.id
            );
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
        let Kind::Static(s) = &d.kind else {
            panic!("{id} not static")
        };
        assert_eq!(s.value, Some(v), "{id}");
        assert!(
            d.source
                .as_deref()
                .unwrap()
                .contains("《沈阳市数字政府建设总体规划（2022-2025年）》"),
            "{id}"
        );
    }
    // AQI bands follow HJ 633-2012: 50/100/150/200/300 and an open last class.
    let aqi = l.get("aqi_1h").unwrap();
    let maxes: Vec<Option<f64>> = aqi.bands.iter().map(|b| b.max).collect();
    assert_eq!(
        maxes,
        vec![
            Some(50.0),
            Some(100.0),
            Some(150.0),
            Some(200.0),
            Some(300.0),
            None
        ]
    );
    assert_eq!(aqi.band(100.0).unwrap().label_zh, "良");
    assert_eq!(aqi.band(100.5).unwrap().label_zh, "轻度污染");
    assert_eq!(aqi.band(301.0).unwrap().color, "#7E0023");
}

#[test]
fn derived_statics_evaluate() {
    let mut e = Engine::new(lib(), EngineConfig::default());
    let now = 1_700_000_000_000;
    // 224.257 / 763.9824 × 100 = 29.35370…
    let v = e
        .value("registered_aged_60_plus_share", Area::City, now)
        .unwrap()
        .value
        .unwrap();
    assert!((v - 29.3537).abs() < 1e-3, "{v}");
    // 120.0328 + 315.1915 = 435.2243
    let v = e
        .value("registered_working_age_2023", Area::City, now)
        .unwrap()
        .value
        .unwrap();
    assert!((v - 435.2243).abs() < 1e-9, "{v}");
    // Every active indicator yields a row for the city.
    let vals = e.values_at(now);
    let ids: BTreeSet<&str> = vals
        .iter()
        .filter(|v| v.area == Area::City)
        .map(|v| v.id.as_str())
        .collect();
    assert_eq!(ids.len(), e.definitions().count());
}

#[test]
fn definitions_serialise_for_the_api() {
    let l = lib();
    let j = serde_json::to_value(l.get("aqi_1h").unwrap()).unwrap();
    assert_eq!(j["id"], "aqi_1h");
    assert_eq!(j["metric"]["input"], "observations");
    assert_eq!(j["metric"]["aggregate"]["type"], "avg");
    assert_eq!(j["metric"]["filter"]["observed_property"][0], "aqi");
    assert_eq!(j["window"]["type"], "rolling");
    assert_eq!(j["window"]["ms"], 3_600_000);
    assert_eq!(j["bands"][1]["label_zh"], "良");
    assert_eq!(j["target"]["direction"], "at_most");
    assert_eq!(j["state"], "published");
    let j = serde_json::to_value(l.get("sensor_online_rate").unwrap()).unwrap();
    assert_eq!(
        j["derived"]["expr"],
        "sensors_reporting_1h / sensors_known_24h * 100"
    );
    assert_eq!(j["derived"]["inputs"][1], "sensors_known_24h");
    let j = serde_json::to_value(l.get("parking_lots_connected").unwrap()).unwrap();
    assert_eq!(j["static"]["value"], 608.0);
    // Values carry the band, its colour and the target check; areas serialise as
    // "city" / {"district": n}.
    let mut e = Engine::new(l, EngineConfig::default());
    let t = 1_795_276_800_000;
    let o = |v: f64, d: u32, k: i64| {
        Input::Observation(Observation {
            datastream: format!("s{d}"),
            sensor_type: "air_quality".into(),
            observed_property: "aqi".into(),
            district: Some(d),
            street: None,
            location: None,
            value: v,
            phenomenon_time: twin_protocol::ts_from_ms(t + k * 60_000),
        })
    };
    e.push(&o(40.0, 0, 1));
    e.push(&o(160.0, 1, 2));
    let v = e.value("aqi_1h", Area::City, t + 5 * 60_000).unwrap();
    // (40 + 160) / 2 = 100 → 良 (≤ 100), on target (at most 100)
    assert_eq!(
        (v.value, v.band.as_deref(), v.color.as_deref(), v.on_target),
        (Some(100.0), Some("Good"), Some("#FFFF00"), Some(true))
    );
    let v = e
        .value("aqi_1h", Area::District(1), t + 5 * 60_000)
        .unwrap();
    // 160 → 中度污染 (151–200), not on target
    assert_eq!(
        (v.band.as_deref(), v.color.as_deref(), v.on_target),
        (Some("Moderately polluted"), Some("#FF0000"), Some(false))
    );
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j["area"]["district"], 1);
    assert_eq!(serde_json::to_value(Area::City).unwrap(), "city");
}

#[test]
fn static_tables_per_district() {
    let text = "[[indicator]]\nid = \"beds\"\nname_zh = \"床位\"\nname_en = \"beds\"\ntheme = \"好就医\"\nunit = \"{bed}\"\nowner = \"o\"\nkind = \"static\"\nsource = \"《测试表》\"\nversion = 1\nstate = \"published\"\n[indicator.static]\nby_district = { \"和平区\" = 10, \"沈河区\" = 32 }\n\n[[indicator]]\nid = \"beds2\"\nname_zh = \"床位×2\"\nname_en = \"beds×2\"\ntheme = \"好就医\"\nunit = \"{bed}\"\nowner = \"o\"\nkind = \"derived\"\nspatial = \"district\"\nexpr = \"beds * 2\"\nversion = 1\nstate = \"published\"\n";
    let l = Library::from_sources(&[("t.toml".into(), text.into())]).unwrap();
    let mut e = Engine::new(
        l,
        EngineConfig {
            districts: vec!["和平区".into(), "沈河区".into()],
            history_points: 10,
            max_future_ms: 3_600_000,
            street_districts: vec![],
        },
    );
    let now = 1_795_276_800_000;
    let get = |e: &mut Engine, id: &str, a: Area| e.value(id, a, now).unwrap().value;
    // city = 10 + 32 = 42 (no city value given)
    assert_eq!(get(&mut e, "beds", Area::City), Some(42.0));
    assert_eq!(get(&mut e, "beds", Area::District(1)), Some(32.0));
    assert_eq!(get(&mut e, "beds2", Area::District(0)), Some(20.0));
    let areas: Vec<Area> = e
        .values_at(now)
        .into_iter()
        .filter(|v| v.id == "beds2")
        .map(|v| v.area)
        .collect();
    assert_eq!(
        areas,
        vec![Area::City, Area::District(0), Area::District(1)]
    );
}
