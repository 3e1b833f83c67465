//! Windows across their boundaries: rolling windows drop an input at exactly t + window;
//! calendar windows restart at midnight / Monday / the 1st in Asia/Shanghai (not UTC); the
//! kept history holds the value at every grain boundary.

mod common;
use common::*;
use indicators::*;

fn count(id: &str, window: &str) -> String {
    metric(
        id,
        "{reading}",
        window,
        "input = \"observations\"\naggregate = \"count\"\nfilter = { observed_property = \"aqi\" }",
    )
}

#[test]
fn rolling_window_drops_input_at_exactly_t_plus_window() {
    let mut e = engine(&[count("h", "PT1H"), count("d", "P1D")].join("\n"));
    // aligned to both bucket sizes (PT1H: 15 s, P1D: 6 min)
    let t = T0 + 12 * MIN;
    e.push(&obs("a", "aqi", 0, 50.0, t));
    assert_eq!(val(&mut e, "h", Area::City, t), Some(1.0));
    assert_eq!(val(&mut e, "h", Area::City, t + HOUR - 1), Some(1.0));
    assert_eq!(val(&mut e, "h", Area::City, t + HOUR), Some(0.0));
    assert_eq!(val(&mut e, "d", Area::City, t + DAY - 1), Some(1.0));
    assert_eq!(val(&mut e, "d", Area::City, t + DAY), Some(0.0));
    // Buckets are window/240 (PT1H: 15 s): an input 7 s into a bucket leaves with its bucket,
    // at bucket start + 1 h.
    let mut e = engine(&count("h", "PT1H"));
    e.push(&obs("a", "aqi", 0, 50.0, t + 7_000));
    assert_eq!(val(&mut e, "h", Area::City, t + HOUR - 1), Some(1.0));
    assert_eq!(val(&mut e, "h", Area::City, t + HOUR), Some(0.0));
    // Feeding inputs after the window moved on: the old one is gone, the new one counts.
    let mut e = engine(&count("h", "PT1H"));
    e.push(&obs("a", "aqi", 0, 50.0, t));
    e.push(&obs("a", "aqi", 0, 50.0, t + HOUR));
    assert_eq!(val(&mut e, "h", Area::City, t + HOUR), Some(1.0));
    // An input older than the window when it arrives is ignored.
    e.push(&obs("a", "aqi", 0, 50.0, t - MIN));
    assert_eq!(val(&mut e, "h", Area::City, t + HOUR), Some(1.0));
}

#[test]
fn calendar_day_restarts_at_shanghai_midnight() {
    let mut e = engine(&count("today", "day"));
    // 07:00 local = 23:00 UTC the day before; 09:00 local = 01:00 UTC: the UTC date changes
    // between them but the local day does not.
    e.push(&obs("a", "aqi", 0, 1.0, T0 + 7 * HOUR));
    e.push(&obs("a", "aqi", 0, 1.0, T0 + 9 * HOUR));
    assert_eq!(val(&mut e, "today", Area::City, T0 + 9 * HOUR), Some(2.0));
    // 23:59 local
    e.push(&obs("a", "aqi", 0, 1.0, T0 + DAY - MIN));
    assert_eq!(val(&mut e, "today", Area::City, T0 + DAY - 1), Some(3.0));
    // 00:00 local the next day: a new day, empty
    assert_eq!(val(&mut e, "today", Area::City, T0 + DAY), Some(0.0));
    e.push(&obs("a", "aqi", 0, 1.0, T0 + DAY));
    assert_eq!(val(&mut e, "today", Area::City, T0 + DAY), Some(1.0));
    assert_eq!(period_start_day(T0 + DAY + 5 * HOUR), T0 + DAY);
}

fn period_start_day(t: i64) -> i64 {
    indicators::engine::period_start(CalendarUnit::Day, t)
}

#[test]
fn calendar_week_and_month() {
    let mut e = engine(&[count("week", "week"), count("month", "month")].join("\n"));
    // T0 is Sunday 2026-11-22 local; Monday 2026-11-23 00:00 starts a week; 2026-12-01 00:00
    // (T0 + 9 days) starts a month.
    e.push(&obs("a", "aqi", 0, 1.0, T0 + DAY - MIN)); // Sunday 23:59
    assert_eq!(val(&mut e, "week", Area::City, T0 + DAY - 1), Some(1.0));
    assert_eq!(val(&mut e, "week", Area::City, T0 + DAY), Some(0.0));
    e.push(&obs("a", "aqi", 0, 1.0, T0 + 3 * DAY)); // Wednesday
    assert_eq!(val(&mut e, "week", Area::City, T0 + 8 * DAY - 1), Some(1.0)); // Sunday 23:59:59.999
    assert_eq!(val(&mut e, "week", Area::City, T0 + 8 * DAY), Some(0.0));
    // November so far: Sunday 22nd and Wednesday 25th
    assert_eq!(
        val(&mut e, "month", Area::City, T0 + 9 * DAY - 1),
        Some(2.0)
    );
    assert_eq!(val(&mut e, "month", Area::City, T0 + 9 * DAY), Some(0.0));
    assert_eq!(
        indicators::engine::period_start(CalendarUnit::Month, T0 + 9 * DAY + HOUR),
        T0 + 9 * DAY
    );
}

#[test]
fn calendar_rate_uses_elapsed_time() {
    let mut e = engine(&metric(
        "r",
        "{reading}/h",
        "day",
        "input = \"observations\"\naggregate = \"rate\"\nper = \"hour\"",
    ));
    for k in 0..6 {
        e.push(&obs("a", "aqi", 0, 1.0, T0 + k * 10 * MIN));
    }
    // 6 readings in the first 2 hours of the day → 3 per hour
    assert!(close(
        val(&mut e, "r", Area::City, T0 + 2 * HOUR),
        3.0,
        1e-9
    ));
}

#[test]
fn history_holds_the_value_at_each_boundary() {
    let mut e = engine(&count("h", "PT1H"));
    for m in [5, 25, 65, 125] {
        e.push(&obs("a", "aqi", 0, 1.0, T0 + m * MIN));
    }
    e.tick(T0 + 3 * HOUR + 1);
    // boundary T0+1h: inputs in (T0, T0+1h] = 5, 25 → 2; T0+2h: 65 → 1; T0+3h: 125 → 1
    let s = e
        .series("h", Area::City, T0 + HOUR, T0 + 3 * HOUR, HOUR)
        .unwrap();
    assert_eq!(
        s,
        vec![
            (T0 + HOUR, Some(2.0)),
            (T0 + 2 * HOUR, Some(1.0)),
            (T0 + 3 * HOUR, Some(1.0))
        ]
    );
    // Resampled every 30 min: as-of the latest boundary.
    let s = e
        .series("h", Area::City, T0 + HOUR, T0 + 2 * HOUR, 30 * MIN)
        .unwrap();
    assert_eq!(
        s.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![Some(2.0), Some(2.0), Some(1.0)]
    );
    // Before the first boundary: no value.
    assert_eq!(
        e.series("h", Area::City, T0, T0, HOUR).unwrap(),
        vec![(T0, None)]
    );
    assert!(matches!(
        e.series("h", Area::City, T0, T0 - 1, HOUR),
        Err(SeriesError::BadRange)
    ));
    assert!(matches!(
        e.series("nope", Area::City, T0, T0, HOUR),
        Err(SeriesError::Unknown(_))
    ));
    // Per district as well.
    assert_eq!(e.history("h", Area::District(0)).len(), 3);
}

#[test]
fn inputs_from_the_future_are_refused() {
    let mut e = engine(&count("h", "PT1H"));
    e.tick(T0);
    assert!(e.push(&obs("a", "aqi", 0, 1.0, T0 + 30 * MIN)));
    // a sensor with a clock two hours ahead (max_future_ms = 1 h): refused, nothing moves
    assert!(!e.push(&obs("a", "aqi", 0, 1.0, T0 + 2 * HOUR)));
    assert_eq!(e.refused(), 1);
    assert_eq!(e.clock(), Some(T0 + 30 * MIN));
    assert_eq!(val(&mut e, "h", Area::City, T0 + 30 * MIN), Some(1.0));
    // once the wall clock gets there, it is accepted
    e.tick(T0 + 90 * MIN);
    assert!(e.push(&obs("a", "aqi", 0, 1.0, T0 + 2 * HOUR)));
}
