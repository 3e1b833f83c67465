//! Street grain (街道/乡镇): count, avg and derived values per street and per district against
//! hand-computed values on a fixed input set — two districts × two streets (streets 0, 1 in
//! district 0; 2, 3 in district 1) — and the street history.

mod common;
use common::*;
use indicators::*;
use twin_protocol::{Category::*, EventSource::*, Severity::*};

fn street(text: String) -> String {
    text.replace("spatial = \"district\"", "spatial = \"street\"")
}

fn library() -> String {
    let mut city_total = metric("ev_total", "{event}", "PT1H", "input = \"events\"\naggregate = \"count\"");
    city_total = city_total.replace("spatial = \"district\"", "spatial = \"city\"");
    [
        street(metric("ev_count", "{event}", "PT1H", "input = \"events\"\naggregate = \"count\"")),
        metric("ev_count_d", "{event}", "PT1H", "input = \"events\"\naggregate = \"count\""),
        city_total,
        street(metric("aqi_avg", "{AQI}", "PT1H", "input = \"observations\"\naggregate = \"avg\"\nfield = \"value\"\nfilter = { observed_property = \"aqi\" }")),
        street(derived("share", "%", "ev_count / ev_total * 100")),
        street(derived("of_district", "%", "ev_count / ev_count_d * 100")),
    ]
    .join("\n")
}

fn engine4() -> Engine {
    Engine::new(
        common::library(&library()),
        EngineConfig {
            districts: vec!["和平区".into(), "沈河区".into()],
            street_districts: vec![Some(0), Some(0), Some(1), Some(1)],
            history_points: 100,
            max_future_ms: HOUR,
        },
    )
}

/// An event in `district` and (optionally) `street`.
fn ev_at(id: i64, district: u32, street: Option<u32>, t: i64) -> Input {
    let mut i = ev(id, Fire, Manual, High, district, t, None);
    if let Input::Event(e) = &mut i {
        e.street = street;
    }
    i
}

fn obs_at(ds: &str, district: u32, street: Option<u32>, v: f64, t: i64) -> Input {
    let mut i = obs(ds, "aqi", district, v, t);
    if let Input::Observation(o) = &mut i {
        o.street = street;
    }
    i
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn street_grain_counts_averages_and_derived_values() {
    let mut e = engine4();
    // Events: street 0 ×2, street 1 ×1 (district 0); street 2 ×1 and one in district 1 outside
    // any street (district 1). Observations (aqi): street 0: 50; street 1: 100; street 2: 80, 120;
    // street 3: none.
    e.backfill([
        ev_at(1, 0, Some(0), T0 + MIN),
        ev_at(2, 0, Some(0), T0 + 2 * MIN),
        ev_at(3, 0, Some(1), T0 + 3 * MIN),
        ev_at(4, 1, Some(2), T0 + 4 * MIN),
        ev_at(5, 1, None, T0 + 5 * MIN),
        obs_at("a", 0, Some(0), 50.0, T0 + 6 * MIN),
        obs_at("b", 0, Some(1), 100.0, T0 + 7 * MIN),
        obs_at("c", 1, Some(2), 80.0, T0 + 8 * MIN),
        obs_at("c", 1, Some(2), 120.0, T0 + 9 * MIN),
    ]);
    let now = T0 + 20 * MIN;
    let (c, d0, d1) = (Area::City, Area::District(0), Area::District(1));
    let s = |i| Area::Street(i);

    // count: city 5; districts 3, 2 (district 1 ≠ sum of its streets: one event has no street)
    let count: Vec<Option<f64>> = [c, d0, d1, s(0), s(1), s(2), s(3)].iter().map(|a| val(&mut e, "ev_count", *a, now)).collect();
    assert_eq!(count, [Some(5.0), Some(3.0), Some(2.0), Some(2.0), Some(1.0), Some(1.0), Some(0.0)]);
    // a district-grain metric has no street values of its own
    let areas: Vec<Area> = e.values_at(now).into_iter().filter(|v| v.id == "ev_count_d").map(|v| v.area).collect();
    assert_eq!(areas, [c, d0, d1]);

    // avg: city (50+100+80+120)/4 = 87.5; d0 (50+100)/2 = 75; d1 100; streets 50, 100, 100, none
    assert!(close(val(&mut e, "aqi_avg", c, now), 87.5));
    assert!(close(val(&mut e, "aqi_avg", d0, now), 75.0));
    assert!(close(val(&mut e, "aqi_avg", d1, now), 100.0));
    assert!(close(val(&mut e, "aqi_avg", s(0), now), 50.0));
    assert!(close(val(&mut e, "aqi_avg", s(1), now), 100.0));
    assert!(close(val(&mut e, "aqi_avg", s(2), now), 100.0));
    assert_eq!(val(&mut e, "aqi_avg", s(3), now), None);

    // derived over a city-grain input: share of the city's events, per street and district
    for (a, want) in [(c, 100.0), (d0, 60.0), (d1, 40.0), (s(0), 40.0), (s(1), 20.0), (s(2), 20.0), (s(3), 0.0)] {
        assert!(close(val(&mut e, "share", a, now), want), "share {a:?}: {:?}", val(&mut e, "share", a, now));
    }
    // derived over a district-grain input: a street's share of its own district's events
    for (a, want) in [(c, 100.0), (d0, 100.0), (d1, 100.0), (s(0), 200.0 / 3.0), (s(1), 100.0 / 3.0), (s(2), 50.0), (s(3), 0.0)] {
        assert!(close(val(&mut e, "of_district", a, now), want), "of_district {a:?}: {:?}", val(&mut e, "of_district", a, now));
    }
    // the values list has the streets with inputs
    let share_areas: Vec<Area> = e.values_at(now).into_iter().filter(|v| v.id == "share").map(|v| v.area).collect();
    assert_eq!(share_areas, [c, d0, d1, s(0), s(1), s(2)]);

    // An event moving to another street (a corrected location) moves its contribution.
    let mut moved = ev_at(3, 0, Some(0), T0 + 3 * MIN);
    if let Input::Event(ev) = &mut moved {
        ev.updated_at = twin_protocol::ts_from_ms(T0 + 15 * MIN);
    }
    e.push(&moved);
    assert_eq!(val(&mut e, "ev_count", s(0), now), Some(3.0));
    assert_eq!(val(&mut e, "ev_count", s(1), now), Some(0.0));
    assert_eq!(val(&mut e, "ev_count", d0, now), Some(3.0));
    assert!(close(val(&mut e, "of_district", s(0), now), 100.0));
}

#[test]
fn street_history_and_series() {
    let mut e = engine4();
    e.backfill([
        ev_at(1, 0, Some(0), T0 + MIN),
        ev_at(2, 0, Some(1), T0 + 2 * MIN),
        ev_at(3, 0, Some(1), T0 + 70 * MIN),
    ]);
    e.tick(T0 + 2 * HOUR + MIN);
    // boundaries T0+1h (window [T0, T0+1h): events 1, 2) and T0+2h ([T0+1h, T0+2h): event 3)
    let s1 = e.series("ev_count", Area::Street(1), T0 + HOUR, T0 + 2 * HOUR, HOUR).unwrap();
    assert_eq!(s1, [(T0 + HOUR, Some(1.0)), (T0 + 2 * HOUR, Some(1.0))]);
    let s0 = e.series("ev_count", Area::Street(0), T0 + HOUR, T0 + 2 * HOUR, HOUR).unwrap();
    assert_eq!(s0, [(T0 + HOUR, Some(1.0)), (T0 + 2 * HOUR, Some(0.0))]);
    let d0 = e.series("ev_count", Area::District(0), T0 + HOUR, T0 + 2 * HOUR, HOUR).unwrap();
    assert_eq!(d0, [(T0 + HOUR, Some(2.0)), (T0 + 2 * HOUR, Some(1.0))]);
    let sh = e.series("share", Area::Street(1), T0 + HOUR, T0 + 2 * HOUR, HOUR).unwrap();
    assert_eq!(sh, [(T0 + HOUR, Some(50.0)), (T0 + 2 * HOUR, Some(100.0))]);
}

#[test]
fn street_grain_is_accepted_and_unknown_grains_are_named() {
    let lib = Library::from_sources(&[("t.toml".into(), library())]).unwrap();
    assert_eq!(lib.defs.iter().find(|d| d.id == "ev_count").unwrap().spatial, Spatial::Street);
    let bad = metric("x", "{event}", "PT1H", "input = \"events\"\naggregate = \"count\"").replace("spatial = \"district\"", "spatial = \"village\"");
    let err = Library::from_sources(&[("t.toml".into(), bad)]).unwrap_err().to_string();
    assert!(err.contains("spatial") && err.contains("village") && err.contains("street"), "{err}");
}
