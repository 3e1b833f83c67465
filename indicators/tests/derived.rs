//! Derived indicators update when an input does — and only then.

mod common;
use common::*;
use indicators::*;

fn lib() -> String {
    [
        metric("aqi", "{AQI}", "PT1H", "input = \"observations\"\naggregate = \"avg\"\nfield = \"value\"\nfilter = { observed_property = \"aqi\" }"),
        metric("noise_n", "{reading}", "PT1H", "input = \"observations\"\naggregate = \"count\"\nfilter = { observed_property = \"noise\" }"),
        derived("aqi2", "{AQI}", "aqi * 2"),
        derived("aqi3", "{AQI}", "aqi2 + aqi"),
        derived("noise_plus", "{reading}", "noise_n + 1"),
        derived("capped", "{AQI}", "min(aqi, 100)"),
        derived("flag", "1", "if_less(aqi, 100, 0, 1)"),
    ]
    .join("\n")
}

#[test]
fn derived_follow_their_inputs_only() {
    let mut e = engine(&lib());
    let now = T0 + 30 * MIN;
    e.push(&obs("a", "aqi", 0, 50.0, T0 + MIN));
    e.values_at(now);
    // aqi = 50 → aqi2 = 100, aqi3 = 150, capped = 50, flag = 0
    assert_eq!(val(&mut e, "aqi2", Area::City, now), Some(100.0));
    assert_eq!(val(&mut e, "aqi3", Area::City, now), Some(150.0));
    assert_eq!(val(&mut e, "capped", Area::City, now), Some(50.0));
    assert_eq!(val(&mut e, "flag", Area::City, now), Some(0.0));
    assert_eq!(val(&mut e, "noise_plus", Area::City, now), Some(1.0));
    let evals =
        |e: &Engine| ["aqi", "aqi2", "aqi3", "noise_n", "noise_plus"].map(|i| e.evaluations(i));
    let before = evals(&e);

    // Nothing changed: asking again recomputes nothing.
    e.values_at(now);
    assert_eq!(evals(&e), before);

    // A noise reading: only noise_n and noise_plus are recomputed.
    e.push(&obs("n", "noise", 0, 55.0, T0 + 2 * MIN));
    e.values_at(now);
    let after = evals(&e);
    assert_eq!(
        after[0..3],
        before[0..3],
        "aqi side recomputed on a noise reading"
    );
    assert!(after[3] > before[3] && after[4] > before[4]);
    assert_eq!(val(&mut e, "noise_plus", Area::City, now), Some(2.0));

    // An AQI reading equal to the mean: `aqi` is recomputed, its value (50) does not change,
    // so its dependents are not.
    let before = evals(&e);
    e.push(&obs("a", "aqi", 0, 50.0, T0 + 3 * MIN));
    e.values_at(now);
    let after = evals(&e);
    assert!(after[0] > before[0]);
    assert_eq!(after[1..3], before[1..3]);

    // A different AQI: the chain follows. mean(50, 50, 200) = 100 → aqi2 200, aqi3 300,
    // capped min(100, 100) = 100, flag (100 < 100 false) = 1.
    e.push(&obs("a", "aqi", 0, 200.0, T0 + 4 * MIN));
    assert_eq!(val(&mut e, "aqi3", Area::City, now), Some(300.0));
    assert_eq!(val(&mut e, "aqi2", Area::City, now), Some(200.0));
    assert_eq!(val(&mut e, "capped", Area::City, now), Some(100.0));
    assert_eq!(val(&mut e, "flag", Area::City, now), Some(1.0));
    // Per district: derived follow the district's inputs.
    e.push(&obs("b", "aqi", 1, 20.0, T0 + 5 * MIN));
    assert_eq!(val(&mut e, "aqi2", Area::District(1), now), Some(40.0));
    // When the window empties, the mean has no value and neither do its dependents.
    assert_eq!(val(&mut e, "aqi3", Area::City, T0 + 2 * HOUR), None);
}

#[test]
fn division_by_zero_has_no_value() {
    let text = [
        metric("n", "{reading}", "PT1H", "input = \"observations\"\naggregate = \"count\""),
        metric("m", "{reading}", "PT1H", "input = \"observations\"\naggregate = \"count\"\nfilter = { observed_property = \"noise\" }"),
        derived("q", "%", "m / n * 100"),
    ]
    .join("\n");
    let mut e = engine(&text);
    assert_eq!(val(&mut e, "q", Area::City, T0), None);
    e.push(&obs("a", "aqi", 0, 1.0, T0));
    e.push(&obs("b", "noise", 0, 1.0, T0));
    // 1 / 2 × 100
    assert_eq!(val(&mut e, "q", Area::City, T0), Some(50.0));
}
