//! The indicator platform served by twin-server (issue 6), once per store backend (SQLite file
//! and a throw-away PostgreSQL cluster with two replicas): a fixed set of observations, events
//! and transitions posted over HTTP; count, sum, avg, min, max, percentile, ratio, rate and
//! distinct values (library and published test definitions) against hand-computed values, city
//! and per district; a derived indicator following its input; a rolling window emptying; a
//! published new version taking effect live, on the other replica and after a restart; the
//! backfill reproducing every value after a restart; invalid definitions (422 with line and
//! field) and retiring a used input (409); the series API's errors; and the stream topic
//! `indicators` pushing a change.

#[macro_use]
mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const WEST: &str = "西区";
const EAST: &str = "东区";

fn ago(seconds: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(seconds)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Posts observations (seconds ago, value) of one datastream.
fn observe(base: &str, ds: i64, vals: &[(i64, f64)]) {
    let body = Value::Array(vals.iter().map(|(s, v)| json!({"datastream": ds, "phenomenonTime": ago(*s), "result": v})).collect());
    let (st, r) = post_json(&format!("{base}/api/sensors/observations"), &body);
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["accepted"], vals.len(), "{r}");
}

fn new_event(base: &str, lon: f64, lat: f64) -> i64 {
    let (st, e) = post_json(
        &format!("{base}/api/events"),
        &json!({"category": "other", "source": "hotline_12345", "title": "test", "location": {"lon": lon, "lat": lat}, "actor": "operator-1"}),
    );
    assert_eq!(st, 201, "{e}");
    e["id"].as_i64().unwrap()
}

fn transition(base: &str, id: i64, to: &str) {
    let (st, b) = post_json(&format!("{base}/api/events/{id}/transitions"), &json!({"to": to, "actor": "dispatcher-7"}));
    assert_eq!(st, 200, "{id} → {to}: {b}");
}

fn publish(base: &str, toml: &str) -> (u16, Value) {
    post_raw(&format!("{base}/api/admin/indicators"), toml.as_bytes().to_vec())
}

fn metric_def(id: &str, version: u32, unit: &str, window: &str, metric: &str) -> String {
    format!(
        r#"[[indicator]]
id = "{id}"
name_zh = "测试 {id}"
name_en = "Test {id}"
theme = "生态"
unit = "{unit}"
owner = "测试"
kind = "metric"
window = "{window}"
spatial = "district"
grain = "PT1H"
version = {version}
state = "published"
[indicator.metric]
{metric}
"#
    )
}

const SPREAD: &str = r#"[[indicator]]
id = "t_aqi_spread"
name_zh = "测试 AQI 极差"
name_en = "Test AQI range"
theme = "生态"
unit = "{AQI}"
owner = "测试"
kind = "derived"
expr = "t_aqi_max - t_aqi_min"
spatial = "district"
grain = "PT1H"
version = 1
state = "published"
"#;

fn test_defs() -> Vec<String> {
    let aqi = r#"filter = { observed_property = "aqi" }"#;
    vec![
        metric_def("t_aqi_count", 1, "{obs}", "PT1H", &format!("input = \"observations\"\naggregate = \"count\"\n{aqi}")),
        metric_def("t_aqi_sum", 1, "{AQI}", "PT1H", &format!("input = \"observations\"\naggregate = \"sum\"\nfield = \"value\"\n{aqi}")),
        metric_def("t_aqi_min", 1, "{AQI}", "PT1H", &format!("input = \"observations\"\naggregate = \"min\"\nfield = \"value\"\n{aqi}")),
        metric_def("t_aqi_max", 1, "{AQI}", "PT1H", &format!("input = \"observations\"\naggregate = \"max\"\nfield = \"value\"\n{aqi}")),
        metric_def("t_aqi_p50", 1, "{AQI}", "PT1H", &format!("input = \"observations\"\naggregate = \"percentile\"\nfield = \"value\"\np = 50\n{aqi}")),
        metric_def("t_aqi_good", 1, "%", "PT1H", &format!("input = \"observations\"\naggregate = \"ratio\"\n{aqi}\nnumerator = {{ value_max = 100 }}\ndenominator = {{}}")),
        metric_def("t_aqi_rate", 1, "{obs}/h", "PT1H", &format!("input = \"observations\"\naggregate = \"rate\"\nper = \"hour\"\n{aqi}")),
        metric_def("t_noise_1m", 1, "{obs}", "PT1M", "input = \"observations\"\naggregate = \"count\"\nfilter = { observed_property = \"noise\" }"),
        metric_def("t_dispatches", 1, "{transition}", "P1D", "input = \"transitions\"\naggregate = \"count\"\nfilter = { state = \"dispatched\" }"),
        SPREAD.to_string(),
    ]
}

/// Every current value: (id, "city" | district name) → value.
fn all_values(base: &str) -> BTreeMap<(String, String), Option<f64>> {
    let (st, v) = get_json(&format!("{base}/api/indicators/values"));
    assert_eq!(st, 200, "{v}");
    v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let area = if x["area"] == "city" { "city".to_string() } else { x["area"]["name"].as_str().unwrap().to_string() };
            ((x["id"].as_str().unwrap().to_string(), area), x["value"].as_f64())
        })
        .collect()
}

/// The values of one indicator by area.
fn values_of(base: &str, id: &str) -> BTreeMap<String, Value> {
    let (st, v) = get_json(&format!("{base}/api/indicators/{id}/values"));
    assert_eq!(st, 200, "{id}: {v}");
    v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (if x["area"] == "city" { "city".to_string() } else { x["area"]["name"].as_str().unwrap().to_string() }, x.clone()))
        .collect()
}

fn close(a: Option<f64>, b: Option<f64>, rel: f64) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= rel * b.abs().max(1e-9),
        (None, None) => true,
        _ => false,
    }
}

/// Waits (the engine is fed asynchronously from the change log) until `id` has the expected
/// value in each named area, within `rel`; fails with what it has.
fn expect(base: &str, id: &str, want: &[(&str, Option<f64>)], rel: f64) {
    let t0 = Instant::now();
    loop {
        let got = values_of(base, id);
        let ok = want.iter().all(|(a, w)| got.get(*a).is_some_and(|v| close(v["value"].as_f64(), *w, rel)));
        if ok {
            return;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let have: Vec<(String, Value)> = got.iter().map(|(k, v)| (k.clone(), v["value"].clone())).collect();
            panic!("{base} {id}: want {want:?}, have {have:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const EXACT: f64 = 1e-9;

struct Fixture {
    w1: i64,
    e1: i64,
}

/// Posts the fixed inputs and checks every aggregate against hand-computed values.
fn post_fixture_and_check(base: &str) -> Fixture {
    for d in test_defs() {
        let (st, body) = publish(base, &d);
        assert_eq!(st, 200, "{d}\n{body}");
    }
    // AQI stations: two in the west district, one in the east.
    let w1 = sta_datastream(base, "aqi", 123.41, 41.80);
    let w2 = sta_datastream(base, "aqi", 123.42, 41.81);
    let e1 = sta_datastream(base, "aqi", 123.45, 41.80);
    // West: 40 (10 min ago), 60 (20), 150 (30), 300 (90 min ago: outside the 1-hour window), 80 (5).
    observe(base, w1, &[(600, 40.0), (1200, 60.0), (1800, 150.0), (5400, 300.0)]);
    observe(base, w2, &[(300, 80.0)]);
    // East: 120 (15 min ago), 20 (25).
    observe(base, e1, &[(900, 120.0), (1500, 20.0)]);

    // In the window — west {40, 60, 150, 80}, east {120, 20}, city all six.
    expect(base, "t_aqi_count", &[("city", Some(6.0)), (WEST, Some(4.0)), (EAST, Some(2.0))], EXACT);
    // 40+60+150+80 = 330; 120+20 = 140; 470.
    expect(base, "t_aqi_sum", &[("city", Some(470.0)), (WEST, Some(330.0)), (EAST, Some(140.0))], EXACT);
    expect(base, "t_aqi_min", &[("city", Some(20.0)), (WEST, Some(40.0)), (EAST, Some(20.0))], EXACT);
    expect(base, "t_aqi_max", &[("city", Some(150.0)), (WEST, Some(150.0)), (EAST, Some(120.0))], EXACT);
    // Nearest rank ⌈0.5·n⌉: city [20,40,60,80,120,150] rank 3 → 60; west [40,60,80,150] rank 2 → 60;
    // east [20,120] rank 1 → 20 (the sketch's relative error is ≤ 0.5 %).
    expect(base, "t_aqi_p50", &[("city", Some(60.0)), (WEST, Some(60.0)), (EAST, Some(20.0))], 0.005);
    // ≤ 100: city 4/6 = 66.67 %, west 3/4 = 75 %, east 1/2 = 50 %.
    expect(base, "t_aqi_good", &[("city", Some(400.0 / 6.0)), (WEST, Some(75.0)), (EAST, Some(50.0))], 1e-9);
    // Per hour over a 1-hour window: the counts.
    expect(base, "t_aqi_rate", &[("city", Some(6.0)), (WEST, Some(4.0)), (EAST, Some(2.0))], EXACT);
    // Library: aqi_1h is the mean, with the HJ 633-2012 class and the ≤ 100 target:
    // 470/6 = 78.33, west 330/4 = 82.5, east 140/2 = 70 — all "Good" (51–100, #FFFF00), on target.
    expect(base, "aqi_1h", &[("city", Some(470.0 / 6.0)), (WEST, Some(82.5)), (EAST, Some(70.0))], 1e-9);
    let aqi = values_of(base, "aqi_1h");
    for a in ["city", WEST, EAST] {
        assert_eq!(aqi[a]["band"], "Good", "{a}: {}", aqi[a]);
        assert_eq!(aqi[a]["color"], "#FFFF00", "{a}: {}", aqi[a]);
        assert_eq!(aqi[a]["on_target"], true, "{a}: {}", aqi[a]);
        assert_eq!(aqi[a]["unit"], "{AQI}");
    }
    // Derived: max − min = city 150−20 = 130, west 150−40 = 110, east 120−20 = 100.
    expect(base, "t_aqi_spread", &[("city", Some(130.0)), (WEST, Some(110.0)), (EAST, Some(100.0))], EXACT);

    // Events: two in the west, one in the east; e1 closed, e3 dispatched, e2 stays reported.
    let ev1 = new_event(base, 123.41, 41.79);
    let ev2 = new_event(base, 123.42, 41.80);
    let ev3 = new_event(base, 123.44, 41.81);
    for to in ["dispatched", "handling", "feedback", "closed"] {
        transition(base, ev1, to);
    }
    transition(base, ev3, "dispatched");
    // Open now: e2 (reported, west), e3 (dispatched, east).
    expect(base, "events_open", &[("city", Some(2.0)), (WEST, Some(1.0)), (EAST, Some(1.0))], EXACT);
    expect(base, "events_reported_open", &[("city", Some(1.0))], EXACT);
    expect(base, "events_dispatched_open", &[("city", Some(1.0))], EXACT);
    // Closed over not cancelled/rejected: city 1/3 = 33.33 %, west 1/2 = 50 %, east 0/1 = 0 %.
    expect(base, "closure_rate_7d", &[("city", Some(100.0 / 3.0)), (WEST, Some(50.0)), (EAST, Some(0.0))], 1e-9);
    // Three events in 24 h: 3/24 = 0.125 per hour.
    expect(base, "events_per_hour_24h", &[("city", Some(0.125))], EXACT);
    // Transitions into `dispatched` (log entries): e1 west, e3 east.
    expect(base, "t_dispatches", &[("city", Some(2.0)), (WEST, Some(1.0)), (EAST, Some(1.0))], EXACT);
    let _ = ev2;
    Fixture { w1, e1 }
}

fn scenario(b: LiveBackend) {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(b);
    let args = ["--db", db.url.as_str(), "--simulate", "off"];
    let mut a = serve_with(&model, &args);
    // PostgreSQL: a second replica on the same store, fed only through the change log.
    let replica = (b == LiveBackend::Postgres).then(|| serve_with(&model, &args));
    let base = a.base.clone();
    let fx = post_fixture_and_check(&base);

    // A derived indicator follows its input: east gets 200 a minute ago → max 200, spread
    // east 200−20 = 180, city 200−20 = 180; west unchanged 110.
    observe(&base, fx.e1, &[(60, 200.0)]);
    expect(&base, "t_aqi_max", &[("city", Some(200.0)), (EAST, Some(200.0))], EXACT);
    expect(&base, "t_aqi_spread", &[("city", Some(180.0)), (WEST, Some(110.0)), (EAST, Some(180.0))], EXACT);

    // A rolling window empties: a noise reading 40 s ago counts in the 1-minute window, and
    // leaves it about 20 s later.
    let noise = sta_datastream(&base, "noise", 123.415, 41.805);
    observe(&base, noise, &[(40, 55.0)]);
    expect(&base, "t_noise_1m", &[("city", Some(1.0)), (WEST, Some(1.0)), (EAST, Some(0.0))], EXACT);
    let t0 = Instant::now();
    while values_of(&base, "t_noise_1m")["city"]["value"].as_f64() != Some(0.0) {
        assert!(t0.elapsed() < Duration::from_secs(60), "the 1-minute window never emptied");
        std::thread::sleep(Duration::from_millis(250));
    }
    // Distinct datastreams reporting in the last hour (library): w1, w2, noise west; e1 east.
    expect(&base, "sensors_reporting_1h", &[("city", Some(4.0)), (WEST, Some(3.0)), (EAST, Some(1.0))], EXACT);

    // Publish a changed definition: version 2 counts AQI ≥ 100 only — west {150}, east {120, 200}.
    let v2 = metric_def("t_aqi_count", 2, "{obs}", "PT1H", "input = \"observations\"\naggregate = \"count\"\nfilter = { observed_property = \"aqi\", value_min = 100 }");
    let (st, d) = publish(&base, &v2);
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["version"], 2);
    expect(&base, "t_aqi_count", &[("city", Some(3.0)), (WEST, Some(1.0)), (EAST, Some(2.0))], EXACT);
    let (_, def) = get_json(&format!("{base}/api/indicators/t_aqi_count"));
    assert_eq!(def["version"], 2, "{def}");
    assert_eq!(def["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1]);
    // The same version again is refused (422 naming the version field).
    let (st, e) = publish(&base, &v2);
    assert_eq!(st, 422, "{e}");
    assert!(e["errors"][0]["field"].as_str().unwrap().ends_with("version"), "{e}");
    // Inputs posted after the publish reach the new version: w1 gets 110 → west 2, city 4.
    observe(&base, fx.w1, &[(30, 110.0)]);
    expect(&base, "t_aqi_count", &[("city", Some(4.0)), (WEST, Some(2.0)), (EAST, Some(2.0))], EXACT);

    // Invalid definitions: 422 with the posted text's line and the field.
    let bad = metric_def("t_bad", 1, "{obs}", "PT1X", "input = \"observations\"\naggregate = \"count\"");
    let (st, e) = publish(&base, &bad);
    assert_eq!(st, 422, "{e}");
    let err = &e["errors"][0];
    assert_eq!(err["line"], 9, "window is on line 9 of the posted text: {e}");
    assert!(err["field"].as_str().unwrap().starts_with("t_bad") && err["field"].as_str().unwrap().ends_with("window"), "{e}");
    assert_eq!(err["file"], "(request body)");
    let bad = metric_def("t_bad", 1, "{obs}", "PT1H", "input = \"tweets\"\naggregate = \"count\"");
    let (st, e) = publish(&base, &bad);
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["errors"][0]["line"], 15, "{e}");
    assert!(e["errors"][0]["field"].as_str().unwrap().contains("input"), "{e}");
    let (st, e) = publish(&base, "[[indicator]]\nid = \"x\"\nthis is not toml");
    assert_eq!(st, 422, "{e}");
    assert!(e["errors"][0]["line"].as_i64().unwrap() >= 1, "{e}");
    // Retiring an input of a published derived indicator: 409 naming it; unknown: 404.
    let (st, e) = post_raw(&format!("{base}/api/admin/indicators/t_aqi_min/retire"), vec![]);
    assert_eq!(st, 409, "{e}");
    assert!(e["error"].as_str().unwrap().contains("t_aqi_spread"), "{e}");
    let (st, _) = post_raw(&format!("{base}/api/admin/indicators/no_such/retire"), vec![]);
    assert_eq!(st, 404);
    // Retire the derived one, then its input.
    let (st, e) = post_raw(&format!("{base}/api/admin/indicators/t_aqi_spread/retire"), vec![]);
    assert_eq!(st, 200, "{e}");
    assert_eq!(e["state"], "retired");
    let (st, e) = post_raw(&format!("{base}/api/admin/indicators/t_aqi_min/retire"), vec![]);
    assert_eq!(st, 200, "{e}");
    let (_, list) = get_json(&format!("{base}/api/indicators?state=retired"));
    let mut retired: Vec<&str> = list["indicators"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    retired.sort();
    assert_eq!(retired, vec!["t_aqi_min", "t_aqi_spread"], "{list}");
    let (_, v) = get_json(&format!("{base}/api/indicators/t_aqi_min/values"));
    assert_eq!(v["values"].as_array().unwrap().len(), 0, "a retired indicator has no values: {v}");

    // Series: shape, bad range (400), too many points (400), unknown (404).
    let (st, s) = get_json(&format!("{base}/api/indicators/aqi_1h/series?district={WEST}&step=PT1H"));
    assert_eq!(st, 200, "{s}");
    assert_eq!(s["points"].as_array().unwrap().len(), 25, "24 h at PT1H, both ends: {s}");
    assert_eq!(s["area"]["name"], WEST);
    let (st, e) = get_json(&format!("{base}/api/indicators/aqi_1h/series?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"));
    assert_eq!(st, 400, "{e}");
    let (st, e) = get_json(&format!("{base}/api/indicators/aqi_1h/series?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z&step=PT1M"));
    assert_eq!(st, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("10,000"), "{e}");
    let (st, _) = get_json(&format!("{base}/api/indicators/nope/series"));
    assert_eq!(st, 404);
    let (st, _) = get_json(&format!("{base}/api/indicators/values?district=nowhere"));
    assert_eq!(st, 400);

    // Let the replica's feeder catch up, then compare every value.
    let before = settle(&base);
    if let Some(r) = &replica {
        let t0 = Instant::now();
        loop {
            let rv = all_values(&r.base);
            if same(&rv, &before) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "replica differs: {:?}", diff(&rv, &before));
            std::thread::sleep(Duration::from_millis(250));
        }
        let (_, def) = get_json(&format!("{}/api/indicators/t_aqi_count", r.base));
        assert_eq!(def["version"], 2, "the replica applied the published version: {def}");
        let (_, def) = get_json(&format!("{}/api/indicators/t_aqi_spread", r.base));
        assert_eq!(def["state"], "retired", "{def}");
    }

    // Restart on the same store: the backfill reproduces every value, the published version
    // and the retirements.
    drop(a);
    a = serve_with(&model, &args);
    let after = all_values(&a.base);
    assert!(same(&after, &before), "after restart: {:?}", diff(&after, &before));
    let (_, def) = get_json(&format!("{}/api/indicators/t_aqi_count", a.base));
    assert_eq!(def["version"], 2, "{def}");
    let (_, def) = get_json(&format!("{}/api/indicators/t_aqi_min", a.base));
    assert_eq!(def["state"], "retired", "{def}");
    drop(replica);
}

/// Values once two reads a second apart agree (the feeder has caught up).
fn settle(base: &str) -> BTreeMap<(String, String), Option<f64>> {
    let mut prev = all_values(base);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(1100));
        let cur = all_values(base);
        if same(&cur, &prev) {
            return cur;
        }
        prev = cur;
    }
    prev
}

fn same(a: &BTreeMap<(String, String), Option<f64>>, b: &BTreeMap<(String, String), Option<f64>>) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| close(*v, *w, 1e-9)))
}

fn diff(a: &BTreeMap<(String, String), Option<f64>>, b: &BTreeMap<(String, String), Option<f64>>) -> Vec<String> {
    let mut out = vec![];
    for (k, v) in a {
        match b.get(k) {
            Some(w) if close(*v, *w, 1e-9) => {}
            w => out.push(format!("{k:?}: {v:?} vs {w:?}")),
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.push(format!("{k:?}: missing"));
        }
    }
    out
}

#[test]
fn feeding_publish_backfill_sqlite() {
    scenario(LiveBackend::Sqlite)
}

#[test]
fn feeding_publish_backfill_postgres() {
    scenario(LiveBackend::Postgres)
}

#[test]
fn definitions_api_and_stream_topic() {
    use tungstenite::stream::MaybeTlsStream;
    use tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(LiveBackend::Sqlite);
    let s = serve_with(&model, &["--db", db.url.as_str(), "--simulate", "off"]);
    let base = &s.base;
    // The library: 66 definitions; a theme filter; one with its (empty) earlier versions.
    let (st, l) = get_json(&format!("{base}/api/indicators"));
    assert_eq!(st, 200);
    assert_eq!(l["count"], 66);
    let (_, eco) = get_json(&format!("{base}/api/indicators?theme=生态"));
    assert!(eco["indicators"].as_array().unwrap().iter().all(|d| d["theme"] == "生态") && eco["count"].as_u64().unwrap() > 0, "{eco}");
    let (st, _) = get_json(&format!("{base}/api/indicators?theme=weather"));
    assert_eq!(st, 400);
    let (st, d) = get_json(&format!("{base}/api/indicators/aqi_1h"));
    assert_eq!(st, 200);
    assert_eq!(d["metric"]["aggregate"]["type"], "avg", "{d}");
    assert_eq!(d["versions"], json!([]));
    let (st, _) = get_json(&format!("{base}/api/indicators/nope"));
    assert_eq!(st, 404);
    // Static figures with their citation (reported figures of the city plan).
    let v = values_of(base, "online_services_share");
    assert_eq!(v["city"]["value"], 99.4, "{v:?}");

    // Stream: the snapshot carries the current values; an event posted afterwards arrives as
    // an indicator_values push with the changed values only.
    let url = format!("ws://{}/api/stream?topics=indicators", base.trim_start_matches("http://"));
    let (mut ws, _) = tungstenite::connect(url).expect("websocket connect");
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    let mut next = || loop {
        match ws.read().expect("stream message") {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] != "ping" {
                    return v;
                }
            }
            _ => continue,
        }
    };
    assert_eq!(next()["type"], "hello");
    let snap = next();
    assert_eq!(snap["type"], "snapshot");
    let vals = snap["indicators"].as_array().unwrap();
    let open = vals.iter().find(|v| v["id"] == "events_open" && v["area"] == "city").expect("events_open in the snapshot");
    assert_eq!(open["value"], 0.0);
    let n_snapshot = vals.len();
    new_event(base, 123.41, 41.79);
    let t0 = Instant::now();
    loop {
        let m = next();
        if m["type"] == "indicator_values" {
            let vs = m["values"].as_array().unwrap();
            assert!(vs.len() < n_snapshot, "a push holds the changed values only");
            if let Some(v) = vs.iter().find(|v| v["id"] == "events_open" && v["area"] == "city") {
                assert_eq!(v["value"], 1.0, "{m}");
                assert!(m["head"].as_i64().unwrap() >= 1, "{m}");
                break;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no indicator push for the new event");
    }
    drop(next);
    // A resume (`since`) gets no snapshot but one push with every current value right after
    // hello (indicator pushes have no seq and are not replayed).
    let url = format!("ws://{}/api/stream?topics=indicators&since=0", base.trim_start_matches("http://"));
    let (mut ws2, _) = tungstenite::connect(url).expect("websocket connect");
    if let MaybeTlsStream::Plain(s) = ws2.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    let mut texts = vec![];
    while texts.len() < 2 {
        if let Message::Text(t) = ws2.read().expect("stream message") {
            texts.push(serde_json::from_str::<Value>(t.as_str()).unwrap());
        }
    }
    assert_eq!(texts[0]["type"], "hello");
    assert_eq!(texts[1]["type"], "indicator_values", "{}", texts[1]);
    let all = texts[1]["values"].as_array().unwrap();
    assert_eq!(all.len(), n_snapshot, "every current value");
    assert_eq!(all.iter().find(|v| v["id"] == "events_open" && v["area"] == "city").unwrap()["value"], 1.0);
}

/// Escalations and an assignment that dispatches, through the feeding order the engine needs
/// (log entry first, then the snapshot): counted once each, on both backends' feeding path.
fn escalation_and_assignment(b: LiveBackend) {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(b);
    // `fire`: 1-second SLA in `reported` and in `dispatched`; the others one hour.
    let mut cats = String::new();
    for id in ["fire", "traffic_accident", "gas_leak", "flooding", "city_management", "public_security", "medical", "air_quality", "infrastructure", "other"] {
        let sla = if id == "fire" { "sla_seconds = { reported = 1, dispatched = 1 }" } else { "sla_minutes = { reported = 60 }" };
        cats.push_str(&format!("[[category]]\nid = \"{id}\"\nname_zh = \"{id}\"\nname_en = \"{id}\"\nseverity = 2\nunits = [\"fire\", \"police\"]\n{sla}\n\n"));
    }
    let cats_path = dir.path().join("cats.toml");
    std::fs::write(&cats_path, cats).unwrap();
    let s = serve_with(&model, &["--db", db.url.as_str(), "--simulate", "off", "--categories", &cats_path.to_string_lossy(), "--sla-check-ms", "100"]);
    let base = &s.base;
    for d in [
        metric_def("t_escalations", 1, "{escalation}", "P1D", "input = \"transitions\"\naggregate = \"count\"\nfilter = { kind = \"escalated\" }"),
        metric_def("t_escalation_sum", 1, "1", "P1D", "input = \"events\"\naggregate = \"sum\"\nfield = \"escalation\""),
    ] {
        let (st, body) = publish(base, &d);
        assert_eq!(st, 200, "{body}");
    }
    let (st, e) = post_json(
        &format!("{base}/api/events"),
        &json!({"category": "fire", "source": "hotline_12345", "title": "fire", "location": {"lon": 123.41, "lat": 41.79}, "actor": "operator-1"}),
    );
    assert_eq!(st, 201, "{e}");
    let id = e["id"].as_i64().unwrap();
    // One escalation of the `reported` stage (once per stage): 1 log entry, escalation level 1;
    // the event is past its deadline.
    expect(base, "t_escalations", &[("city", Some(1.0)), (WEST, Some(1.0)), (EAST, Some(0.0))], EXACT);
    expect(base, "t_escalation_sum", &[("city", Some(1.0)), (WEST, Some(1.0))], EXACT);
    expect(base, "events_overdue", &[("city", Some(1.0)), (WEST, Some(1.0))], EXACT);
    // Assigning a unit dispatches it (log kind `assigned`, reported → dispatched): a new stage
    // with its own 1-second deadline, escalated once more → 2 escalations, level 2.
    let (_, units) = get_json(&format!("{base}/api/units"));
    let unit = units["units"].as_array().unwrap().iter().find(|u| u["status"] == "available").expect("an available unit")["id"].clone();
    let (st, a) = post_json(&format!("{base}/api/events/{id}/assign"), &json!({"unit_id": unit, "actor": "dispatcher-7"}));
    assert_eq!(st, 200, "{a}");
    expect(base, "events_dispatched_open", &[("city", Some(1.0))], EXACT);
    expect(base, "events_reported_open", &[("city", Some(0.0))], EXACT);
    expect(base, "t_escalations", &[("city", Some(2.0)), (WEST, Some(2.0))], EXACT);
    expect(base, "t_escalation_sum", &[("city", Some(2.0)), (WEST, Some(2.0))], EXACT);
    let (_, ev) = get_json(&format!("{base}/api/events/{id}"));
    assert_eq!(ev["escalation"], 2, "the store agrees: {ev}");
}

#[test]
fn escalation_and_assignment_sqlite() {
    escalation_and_assignment(LiveBackend::Sqlite)
}

#[test]
fn escalation_and_assignment_postgres() {
    escalation_and_assignment(LiveBackend::Postgres)
}

// ---------------------------------------------------------------- street grain (街道/乡镇)

/// Posts an event (category other, 12345 hotline) at a point, reported at `reported` (RFC 3339).
fn event_reported(base: &str, lon: f64, lat: f64, reported: &str) -> i64 {
    let (st, e) = post_json(
        &format!("{base}/api/events"),
        &json!({"category": "other", "source": "hotline_12345", "title": "street test", "location": {"lon": lon, "lat": lat}, "actor": "operator-1", "reported_at": reported}),
    );
    assert_eq!(st, 201, "{e}");
    e["id"].as_i64().unwrap()
}

/// Street-grain values by area key: "city", district name, or "street:<index>".
fn street_values(base: &str, query: &str) -> BTreeMap<(String, String), Value> {
    let (st, v) = get_json(&format!("{base}/api/indicators/values?{query}"));
    assert_eq!(st, 200, "{query}: {v}");
    v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let a = &x["area"];
            let key = if *a == "city" {
                "city".to_string()
            } else if a.get("street").is_some() {
                format!("street:{}", a["street"])
            } else {
                a["name"].as_str().unwrap().to_string()
            };
            ((x["id"].as_str().unwrap().to_string(), key), x.clone())
        })
        .collect()
}

/// Events at known points of the four streets of [`LIVE_CITY`] (0 西南街道, 1 西北街道 in 西区;
/// 2 东南街道, 3 东北镇 in 东区) and AQI readings of two stations: street values (library
/// `events_open`, a published street-grain count and mean) and, after a restart (the backfill
/// replays history in time order), the street series — all against hand-counted values.
fn street_grain(b: LiveBackend) {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(b);
    let args = ["--db", db.url.as_str(), "--simulate", "off"];
    let a = serve_with(&model, &args);
    let base = a.base.clone();

    // The model's streets.
    let (st, s) = get_json(&format!("{base}/api/streets"));
    assert_eq!(st, 200, "{s}");
    let names: Vec<&str> = s["streets"].as_array().unwrap().iter().map(|x| x["name_zh"].as_str().unwrap()).collect();
    assert_eq!(names, ["西南街道", "西北街道", "东南街道", "东北镇"]);
    let codes: Vec<u64> = s["streets"].as_array().unwrap().iter().map(|x| x["code"].as_u64().unwrap()).collect();
    assert_eq!(codes, [910001001, 910001002, 910002001, 0]);
    let parents: Vec<i64> = s["streets"].as_array().unwrap().iter().map(|x| x["district"].as_i64().unwrap()).collect();
    assert_eq!(parents, [0, 0, 1, 1]);
    let (st, east) = get_json(&format!("{base}/api/streets?district=东区"));
    assert_eq!(st, 200);
    assert_eq!(east["count"], 2);
    assert_eq!(east["streets"][1]["district_name"], "东区");
    assert_eq!(east["streets"][1]["bbox"], json!([123.43, 41.8075, 123.46, 41.82]));
    assert_eq!(get_json(&format!("{base}/api/streets?district=北区")).0, 400);

    for d in [
        metric_def("t_street_events", 1, "{event}", "P1D", "input = \"events\"\naggregate = \"count\""),
        metric_def("t_street_aqi", 1, "{AQI}", "PT1H", "input = \"observations\"\naggregate = \"avg\"\nfield = \"value\"\nfilter = { observed_property = \"aqi\" }"),
    ] {
        let (st, body) = publish(&base, &d.replace("spatial = \"district\"", "spatial = \"street\""));
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["spatial"], "street");
    }

    // Events reported 2 h 30 min before the current hour: street 0 ×2, 1 ×1, 2 ×1, 3 ×2; the
    // first one closed since.
    let now = chrono::Utc::now();
    let h0 = now.timestamp() - now.timestamp().rem_euclid(3600);
    let reported = chrono::DateTime::from_timestamp(h0 - 9000, 0).unwrap().to_rfc3339();
    let pts = [(123.41, 41.79), (123.42, 41.80), (123.41, 41.815), (123.45, 41.79), (123.45, 41.81), (123.44, 41.815)];
    let ids: Vec<i64> = pts.iter().map(|(lon, lat)| event_reported(&base, *lon, *lat, &reported)).collect();
    for to in ["dispatched", "handling", "feedback", "closed"] {
        transition(&base, ids[0], to);
    }
    // AQI: street 0 station 40, 60; street 3 station 100.
    let s0 = sta_datastream(&base, "aqi", 123.415, 41.79);
    let s3 = sta_datastream(&base, "aqi", 123.45, 41.815);
    observe(&base, s0, &[(600, 40.0), (300, 60.0)]);
    observe(&base, s3, &[(400, 100.0)]);

    let want: Vec<(&str, &str, Option<f64>)> = vec![
        ("t_street_events", "city", Some(6.0)),
        ("t_street_events", WEST, Some(3.0)),
        ("t_street_events", EAST, Some(3.0)),
        ("t_street_events", "street:0", Some(2.0)),
        ("t_street_events", "street:1", Some(1.0)),
        ("t_street_events", "street:2", Some(1.0)),
        ("t_street_events", "street:3", Some(2.0)),
        ("events_open", "city", Some(5.0)),
        ("events_open", WEST, Some(2.0)),
        ("events_open", "street:0", Some(1.0)),
        ("events_open", "street:1", Some(1.0)),
        ("events_open", "street:3", Some(2.0)),
        ("t_street_aqi", "city", Some(200.0 / 3.0)),
        ("t_street_aqi", WEST, Some(50.0)),
        ("t_street_aqi", EAST, Some(100.0)),
        ("t_street_aqi", "street:0", Some(50.0)),
        ("t_street_aqi", "street:1", None),
        ("t_street_aqi", "street:2", None),
        ("t_street_aqi", "street:3", Some(100.0)),
    ];
    let t0 = Instant::now();
    loop {
        let got = street_values(&base, "");
        let bad: Vec<String> = want
            .iter()
            .filter(|(id, a, w)| !got.get(&(id.to_string(), a.to_string())).is_some_and(|v| close(v["value"].as_f64(), *w, 1e-9)))
            .map(|(id, a, w)| format!("{id} {a}: want {w:?}, have {:?}", got.get(&(id.to_string(), a.to_string())).map(|v| v["value"].clone())))
            .collect();
        if bad.is_empty() {
            // the area of a street value names it
            let v = &got[&("t_street_events".to_string(), "street:3".to_string())];
            assert_eq!(v["area"], json!({"street": 3, "code": 0, "name": "东北镇", "district": 1}));
            let v = &got[&("t_street_events".to_string(), "street:0".to_string())];
            assert_eq!(v["area"], json!({"street": 0, "code": 910001001, "name": "西南街道", "district": 0}));
            // a district-grain indicator has no street values
            assert!(!got.keys().any(|(id, a)| id == "aqi_1h" && a.starts_with("street:")));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", bad.join("\n"));
        std::thread::sleep(Duration::from_millis(200));
    }
    // ?street= by code, index and name: only that street's values.
    for q in ["street=910001001", "street=0", "street=西南街道"] {
        let got = street_values(&base, q);
        assert!(got.keys().all(|(_, a)| a == "street:0"), "{q}: {:?}", got.keys());
        assert_eq!(got[&("t_street_events".to_string(), "street:0".to_string())]["value"], 2.0, "{q}");
    }
    for q in ["street=99", "street=910009999", "street=0&district=0", "street=nowhere"] {
        let (st, e) = get_json(&format!("{base}/api/indicators/values?{q}"));
        assert_eq!(st, 400, "{q}: {e}");
    }
    // /{id}/values lists the streets of a street-grain indicator: city, 2 districts, 4 streets.
    let (_, one) = get_json(&format!("{base}/api/indicators/t_street_events/values"));
    assert_eq!(one["values"].as_array().unwrap().len(), 7, "{one}");

    // Restart: the backfill replays the events from 2 h 30 min before the hour, so the hourly
    // history has the boundaries h0 − 2 h, h0 − 1 h and h0 (and nothing before the first input).
    drop(a);
    let a = serve_with(&model, &args);
    let base = a.base.clone();
    let iso = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
    let series = |q: &str| {
        let (st, s) = get_json(&format!("{base}/api/indicators/t_street_events/series?{q}&from={}&to={}&step=PT1H", urlenc(&iso(h0 - 3 * 3600)), urlenc(&iso(h0))));
        assert_eq!(st, 200, "{q}: {s}");
        (s["area"].clone(), s["points"].as_array().unwrap().iter().map(|p| p[1].as_f64()).collect::<Vec<_>>())
    };
    let (area, pts3) = series("street=3");
    assert_eq!(area, json!({"street": 3, "code": 0, "name": "东北镇", "district": 1}));
    assert_eq!(pts3, [None, Some(2.0), Some(2.0), Some(2.0)]);
    assert_eq!(series("street=910001001").1, [None, Some(2.0), Some(2.0), Some(2.0)]);
    assert_eq!(series("street=1").1, [None, Some(1.0), Some(1.0), Some(1.0)]);
    assert_eq!(series("district=0").1, [None, Some(3.0), Some(3.0), Some(3.0)]);
    assert_eq!(series("district=1").1, [None, Some(3.0), Some(3.0), Some(3.0)]);
    // and the current street values are back
    let got = street_values(&base, "street=3");
    assert_eq!(got[&("events_open".to_string(), "street:3".to_string())]["value"], 2.0);
}

/// A model hot swap (rebuilt at the same `--out`): the street names the API renders and the
/// datastreams' streets follow the new model. The new model renames 东北镇 → 东北新街道 and moves
/// 西区's street line from 41.8075 N to 41.785 N, so a station at 41.79 N moves from 西南街道
/// (street 0) to 西北街道 (street 1): its readings before the swap stay in street 0, after it
/// they count in street 1.
#[test]
fn street_names_and_datastream_streets_follow_a_model_hot_swap() {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(LiveBackend::Sqlite);
    let a = serve_with(&model, &["--db", db.url.as_str(), "--simulate", "off"]);
    let base = a.base.clone();
    let def = metric_def("t_street_aqi", 1, "{AQI}", "PT1H", "input = \"observations\"\naggregate = \"avg\"\nfield = \"value\"\nfilter = { observed_property = \"aqi\" }")
        .replace("spatial = \"district\"", "spatial = \"street\"");
    assert_eq!(publish(&base, &def).0, 200);
    let ds = sta_datastream(&base, "aqi", 123.415, 41.79);
    observe(&base, ds, &[(600, 40.0)]);
    let wait = |want: &[(&str, Option<f64>)]| {
        let t0 = Instant::now();
        loop {
            let got = street_values(&base, "");
            let have = |k: &str| got.get(&("t_street_aqi".to_string(), k.to_string())).map(|v| v["value"].as_f64());
            if want.iter().all(|(k, w)| have(k).is_some_and(|h| close(h, *w, 1e-9))) {
                return got;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "want {want:?}: {:?}", want.iter().map(|(k, _)| (k, have(k))).collect::<Vec<_>>());
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait(&[("street:0", Some(40.0)), ("street:1", None)]);

    let src = dir.path().join("city2.geojson");
    let (sw, nw) = (
        "[[[123.40,41.78],[123.43,41.78],[123.43,41.8075],[123.40,41.8075],[123.40,41.78]]]",
        "[[[123.40,41.8075],[123.43,41.8075],[123.43,41.82],[123.40,41.82],[123.40,41.8075]]]",
    );
    assert!(LIVE_CITY.contains(sw) && LIVE_CITY.contains(nw));
    let city2 = LIVE_CITY
        .replace("东北镇", "东北新街道")
        .replace(sw, "[[[123.40,41.78],[123.43,41.78],[123.43,41.785],[123.40,41.785],[123.40,41.78]]]")
        .replace(nw, "[[[123.40,41.785],[123.43,41.785],[123.43,41.82],[123.40,41.82],[123.40,41.785]]]");
    std::fs::write(&src, city2).unwrap();
    build(&model, &["--name", "city", "--source", src.to_str().unwrap(), "--no-tiles", "--no-3dtiles"]);
    let t0 = Instant::now();
    loop {
        let (st, _) = get_json(&format!("{base}/api/indicators/values?street=东北新街道"));
        if st == 200 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "the new street name never became known");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get_json(&format!("{base}/api/indicators/values?street=东北镇")).0, 400);
    observe(&base, ds, &[(300, 80.0)]);
    let got = wait(&[("street:0", Some(40.0)), ("street:1", Some(80.0))]);
    assert_eq!(got[&("t_street_aqi".to_string(), "street:3".to_string())]["area"]["name"], "东北新街道");
}

fn urlenc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

both!(street_grain);
/// Issue 7: the cockpit's 在办事件数 card showed 2 while its event list showed 84 open events.
/// The simulator (and any client) may post events whose `reported_at` runs ahead of the
/// server's clock; the engine used to refuse such an event as "input from the future", then
/// ignored its transitions (an untracked event), so the open-events gauge lost it for good
/// while the store (and the viewer's list) had it open. Counted live and after a restart.
#[test]
fn events_reported_ahead_of_the_clock_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let model = live_model(dir.path());
    let db = LiveDb::new(LiveBackend::Sqlite);
    let args = ["--db", db.url.as_str(), "--simulate", "off"];
    let s = serve_with(&model, &args);
    let base = s.base.clone();
    let now_id = new_event(&base, 123.41, 41.79);
    let ahead = (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut ids = vec![];
    for _ in 0..3 {
        let (st, e) = post_json(
            &format!("{base}/api/events"),
            &json!({"category": "other", "source": "hotline_12345", "title": "simulated ahead", "location": {"lon": 123.41, "lat": 41.79},
                    "actor": "simulator:hotline_12345", "reported_at": ahead}),
        );
        assert_eq!(st, 201, "{e}");
        ids.push(e["id"].as_i64().unwrap());
    }
    // The store's open events, as the viewer's list counts them.
    let open_in_store = |base: &str| {
        let (st, list) = get_json(&format!("{base}/api/events?state=reported,dispatched,handling,feedback"));
        assert_eq!(st, 200, "{list}");
        list["events"].as_array().unwrap().len()
    };
    assert_eq!(open_in_store(&base), 4);
    expect(&base, "events_open", &[("city", Some(4.0))], EXACT);
    expect(&base, "events_reported_open", &[("city", Some(4.0))], EXACT);
    // Their transitions move them like any other event: one dispatched, one handled to
    // feedback, one rejected (no longer open), the one reported now closed.
    transition(&base, ids[0], "dispatched");
    for to in ["dispatched", "handling", "feedback"] {
        transition(&base, ids[1], to);
    }
    let (st, b) = post_json(&format!("{base}/api/events/{}/transitions", ids[2]), &json!({"to": "rejected", "actor": "dispatcher-7", "reason": "重复上报"}));
    assert_eq!(st, 200, "{b}");
    for to in ["dispatched", "handling", "feedback", "closed"] {
        transition(&base, now_id, to);
    }
    assert_eq!(open_in_store(&base), 2);
    expect(&base, "events_open", &[("city", Some(2.0))], EXACT);
    expect(&base, "events_dispatched_open", &[("city", Some(1.0))], EXACT);
    expect(&base, "events_feedback_open", &[("city", Some(1.0))], EXACT);
    expect(&base, "events_reported_open", &[("city", Some(0.0))], EXACT);
    // The backfill after a restart agrees with the store.
    drop(s);
    let s = serve_with(&model, &args);
    assert_eq!(open_in_store(&s.base), 2);
    expect(&s.base, "events_open", &[("city", Some(2.0))], EXACT);
    expect(&s.base, "events_dispatched_open", &[("city", Some(1.0))], EXACT);
    expect(&s.base, "events_feedback_open", &[("city", Some(1.0))], EXACT);
}
