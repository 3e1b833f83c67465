//! Runtime publish/retire of definition versions, and backfill ≡ live feeding.

mod common;
use common::*;
use indicators::*;
use twin_protocol::{Category, EventSource, EventState, Severity};

fn v(id: &str, version: u32, window: &str, prop: &str) -> String {
    metric(id, "{reading}", window, &format!("input = \"observations\"\naggregate = \"count\"\nfilter = {{ observed_property = \"{prop}\" }}"))
        .replace("version = 1", &format!("version = {version}"))
}

fn history() -> Vec<Input> {
    vec![
        obs("a", "aqi", 0, 10.0, T0 + MIN),
        obs("p", "pm25", 0, 10.0, T0 + 2 * MIN),
        obs("p", "pm25", 1, 10.0, T0 + 3 * MIN),
        obs("a", "aqi", 0, 10.0, T0 + 4 * MIN),
        obs("p", "pm25", 1, 10.0, T0 + 5 * MIN),
    ]
}

#[test]
fn published_change_takes_effect_without_restart() {
    let text = [
        v("readings", 1, "PT1H", "aqi"),
        derived("double", "{reading}", "readings * 2"),
    ]
    .join("\n");
    let mut e = engine(&text);
    e.backfill(history());
    let now = T0 + 10 * MIN;
    assert_eq!(val(&mut e, "readings", Area::City, now), Some(2.0));
    assert_eq!(val(&mut e, "double", Area::City, now), Some(4.0));

    // v2 counts pm25 instead: rebuilt from the history (3 readings), dependents follow.
    e.publish(
        "readings.toml",
        &v("readings", 2, "PT1H", "pm25"),
        history(),
    )
    .unwrap();
    assert_eq!(e.definition("readings").unwrap().version, 2);
    assert_eq!(
        e.versions("readings")
            .iter()
            .map(|d| d.version)
            .collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(val(&mut e, "readings", Area::City, now), Some(3.0));
    assert_eq!(val(&mut e, "readings", Area::District(1), now), Some(2.0));
    assert_eq!(val(&mut e, "double", Area::City, now), Some(6.0));
    // and live inputs keep flowing into the new version
    e.push(&obs("p", "pm25", 0, 10.0, T0 + 11 * MIN));
    e.push(&obs("a", "aqi", 0, 10.0, T0 + 12 * MIN));
    assert_eq!(
        val(&mut e, "readings", Area::City, T0 + 12 * MIN),
        Some(4.0)
    );

    // Same or lower version: refused, naming the field.
    let err = e
        .publish("readings.toml", &v("readings", 2, "PT1H", "aqi"), history())
        .unwrap_err();
    assert_eq!(err.0[0].field, "readings: version");
    assert!(err.0[0].message.contains("must be higher"));
    // A version that breaks the set (a unit mismatch with its dependent): refused, old one stays.
    let bad = metric("readings", "%", "PT1H", "input = \"observations\"\naggregate = \"ratio\"\nnumerator = { value_min = 5 }\ndenominator = {}")
        .replace("version = 1", "version = 3");
    let err = e.publish("readings.toml", &bad, history()).unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|x| x.field == "double: unit" && x.message.contains("unit mismatch")),
        "{err}"
    );
    assert_eq!(e.definition("readings").unwrap().version, 2);
    assert_eq!(
        val(&mut e, "readings", Area::City, T0 + 12 * MIN),
        Some(4.0)
    );

    // A new indicator, backfilled.
    e.publish("new.toml", &v("aqi_readings", 1, "PT1H", "aqi"), history())
        .unwrap();
    assert_eq!(
        val(&mut e, "aqi_readings", Area::City, T0 + 10 * MIN),
        Some(2.0)
    );

    // Retire: refused while a derived indicator uses it; then fine bottom-up.
    let err = e.retire("readings").unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|x| x.field == "double: expr" && x.message.contains("`readings` is retired")),
        "{err}"
    );
    e.retire("double").unwrap();
    e.retire("readings").unwrap();
    assert!(e.value("readings", Area::City, now).is_none());
    assert!(e
        .values_at(now)
        .iter()
        .all(|v| v.id != "readings" && v.id != "double"));
    assert_eq!(e.definition("readings").unwrap().state, DefState::Retired);
}

/// A deterministic day and a half of the city: observations every 5 minutes from 12
/// datastreams in 3 districts, an event every 20 minutes moving through its loop.
fn city_inputs() -> Vec<Input> {
    let props = [
        ("aqi", 60.0),
        ("pm25", 35.0),
        ("traffic_speed", 40.0),
        ("parking_occupancy", 70.0),
        ("noise", 55.0),
        ("elevator_status", 0.0),
    ];
    let mut out = vec![];
    let mut log = 1;
    let cats = [
        Category::CityManagement,
        Category::Medical,
        Category::TrafficAccident,
        Category::PublicSecurity,
    ];
    for step in 0..(36 * 12) {
        let t = T0 + step * 5 * MIN;
        for ds in 0..12i64 {
            let (p, base) = props[(ds % 6) as usize];
            let wobble = ((step * 7 + ds * 13) % 23) as f64 - 11.0;
            let value = if p == "elevator_status" {
                ((step + ds) % 17 == 0) as i32 as f64
            } else {
                (base + wobble).max(0.0)
            };
            out.push(obs(
                &format!("ds{ds}"),
                p,
                (ds % 3) as u32,
                value,
                t + ds * 1000,
            ));
        }
        if step % 4 == 0 {
            let id = step / 4 + 1;
            let cat = cats[(id % 4) as usize];
            let src = if id % 3 == 0 {
                EventSource::Hotline12345
            } else {
                EventSource::Patrol
            };
            out.push(ev(
                id,
                cat,
                src,
                Severity::Medium,
                (id % 3) as u32,
                t,
                Some(t + 30 * MIN),
            ));
            out.push(tr(log, id, None, EventState::Reported, t, "created"));
            log += 1;
            // dispatched after 1 + id%5 min, on site 7 min later, feedback 30, closed 10 later;
            // every 7th event is cancelled instead.
            let d = t + (1 + id % 5) * MIN;
            if id % 7 == 0 {
                out.push(tr(
                    log,
                    id,
                    Some(EventState::Reported),
                    EventState::Cancelled,
                    d,
                    "transition",
                ));
                log += 1;
            } else {
                for (from, to, at) in [
                    (EventState::Reported, EventState::Dispatched, d),
                    (EventState::Dispatched, EventState::Handling, d + 7 * MIN),
                    (EventState::Handling, EventState::Feedback, d + 37 * MIN),
                    (EventState::Feedback, EventState::Closed, d + 47 * MIN),
                ] {
                    out.push(tr(log, id, Some(from), to, at, "transition"));
                    log += 1;
                }
            }
        }
    }
    out.sort_by_key(|i| i.time());
    out
}

#[test]
fn backfill_equals_live_feeding() {
    let lib = Library::load_dir(&default_library_dir()).unwrap();
    let cfg = EngineConfig {
        districts: vec!["a".into(), "b".into(), "c".into()],
        history_points: 500,
        max_future_ms: 3_600_000,
        street_districts: vec![],
    };
    let inputs = city_inputs();
    let end = inputs.last().unwrap().time() + 1;

    let mut a = Engine::new(lib.clone(), cfg.clone());
    a.backfill(inputs.clone());
    a.tick(end);

    // Live: one at a time, with the cockpit asking for values and the clock ticking between.
    let mut b = Engine::new(lib, cfg);
    for (k, i) in inputs.iter().enumerate() {
        b.push(i);
        if k % 50 == 0 {
            b.values_at(i.time());
            b.tick(i.time());
        }
    }
    b.tick(end);
    let (va, vb) = (a.values_at(end), b.values_at(end));
    assert_eq!(va, vb);
    // Non-trivial: the live indicators have values.
    let get = |id: &str| {
        va.iter()
            .find(|v| v.id == id && v.area == Area::City)
            .unwrap()
            .value
    };
    assert!(get("aqi_1h").is_some_and(|x| x > 0.0));
    assert!(
        get("dispatch_time_avg").is_some_and(|x| (1.0..=5.0).contains(&x)),
        "{:?}",
        get("dispatch_time_avg")
    );
    // arrival is exactly 7 min for every event
    assert!(close(get("arrival_time_avg"), 7.0, 1e-9));
    assert!(get("congestion_index").is_some_and(|x| x >= 1.0));
    assert!(close(get("sensor_online_rate"), 100.0, 1e-9));
    // Histories are equal too, for every indicator and area.
    let mut points = 0;
    for d in lib_ids(&a) {
        for area in [
            Area::City,
            Area::District(0),
            Area::District(1),
            Area::District(2),
        ] {
            let (ha, hb) = (a.history(&d, area), b.history(&d, area));
            assert_eq!(ha, hb, "{d} {area:?}");
            points += ha.len();
        }
    }
    assert!(points > 1000, "{points}");
}

fn lib_ids(e: &Engine) -> Vec<String> {
    e.definitions().map(|d| d.id.clone()).collect()
}
