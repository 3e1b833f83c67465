//! Every aggregate kind against hand-computed values on a fixed set of inputs.

mod common;
use common::*;
use indicators::*;
use twin_protocol::{Category::*, EventSource::*, EventState, EventState::*, Severity::*};

fn observation_library() -> String {
    [
        metric("n", "{reading}", "PT1H", "input = \"observations\"\naggregate = \"count\"\nfilter = { observed_property = \"aqi\" }"),
        metric("s", "{AQI}", "PT1H", "input = \"observations\"\naggregate = \"sum\"\nfield = \"value\"\nfilter = { observed_property = \"aqi\" }"),
        metric("a", "{AQI}", "PT1H", "input = \"observations\"\naggregate = \"avg\"\nfield = \"value\"\nfilter = { observed_property = \"aqi\" }"),
        metric("lo", "{AQI}", "PT1H", "input = \"observations\"\naggregate = \"min\"\nfield = \"value\"\nfilter = { observed_property = \"aqi\" }"),
        metric("hi", "{AQI}", "PT1H", "input = \"observations\"\naggregate = \"max\"\nfield = \"value\"\nfilter = { observed_property = \"aqi\" }"),
        metric("p50", "{AQI}", "PT1H", "input = \"observations\"\naggregate = \"percentile\"\np = 50\nfield = \"value\"\nfilter = { observed_property = \"aqi\" }"),
        metric("p90", "{AQI}", "PT1H", "input = \"observations\"\naggregate = \"percentile\"\np = 90\nfield = \"value\"\nfilter = { observed_property = \"aqi\" }"),
        metric("good", "%", "PT1H", "input = \"observations\"\naggregate = \"ratio\"\nfilter = { observed_property = \"aqi\" }\nnumerator = { value_max = 100 }\ndenominator = {}"),
        metric("rate", "{reading}/h", "PT2H", "input = \"observations\"\naggregate = \"rate\"\nper = \"hour\"\nfilter = { observed_property = \"aqi\" }"),
        metric("ds", "{datastream}", "PT1H", "input = \"observations\"\naggregate = \"distinct\""),
    ]
    .join("\n")
}

#[test]
fn observation_aggregates() {
    let mut e = engine(&observation_library());
    // district 0 (datastream a): 40, 60, 80; district 1 (datastream b): 120, 200;
    // one pm25 reading (other property: must not count, but counts for `distinct`).
    let inputs = [
        obs("a", "aqi", 0, 40.0, T0 + MIN),
        obs("a", "aqi", 0, 60.0, T0 + 2 * MIN),
        obs("b", "aqi", 1, 120.0, T0 + 3 * MIN),
        obs("a", "aqi", 0, 80.0, T0 + 4 * MIN),
        obs("b", "aqi", 1, 200.0, T0 + 5 * MIN),
        obs("c", "pm25", 1, 999.0, T0 + 6 * MIN),
    ];
    e.backfill(inputs);
    let now = T0 + 10 * MIN;
    let city = Area::City;
    let (d0, d1) = (Area::District(0), Area::District(1));
    assert_eq!(val(&mut e, "n", city, now), Some(5.0));
    assert_eq!(val(&mut e, "n", d0, now), Some(3.0));
    // 40 + 60 + 80 + 120 + 200 = 500
    assert_eq!(val(&mut e, "s", city, now), Some(500.0));
    // 500 / 5 = 100; district 0: 180 / 3 = 60; district 1: 320 / 2 = 160
    assert_eq!(val(&mut e, "a", city, now), Some(100.0));
    assert_eq!(val(&mut e, "a", d0, now), Some(60.0));
    assert_eq!(val(&mut e, "a", d1, now), Some(160.0));
    assert_eq!(val(&mut e, "lo", city, now), Some(40.0));
    assert_eq!(val(&mut e, "hi", city, now), Some(200.0));
    assert_eq!(val(&mut e, "lo", d1, now), Some(120.0));
    // nearest rank over [40, 60, 80, 120, 200]: p50 → rank ⌈2.5⌉ = 3 → 80; p90 → rank ⌈4.5⌉ = 5 → 200
    // (the sketch is within 0.5 % relative error)
    assert!(
        close(val(&mut e, "p50", city, now), 80.0, 80.0 * 0.005),
        "{:?}",
        val(&mut e, "p50", city, now)
    );
    assert!(close(val(&mut e, "p90", city, now), 200.0, 200.0 * 0.005));
    // district 0 [40, 60, 80]: p50 → rank 2 → 60
    assert!(close(val(&mut e, "p50", d0, now), 60.0, 60.0 * 0.005));
    // ≤ 100: 40, 60, 80 → 3 / 5 = 60 %
    assert!(close(val(&mut e, "good", city, now), 60.0, 1e-9));
    // district 1: 0 / 2 = 0 %
    assert!(close(val(&mut e, "good", d1, now), 0.0, 1e-9));
    // 5 readings over a 2-hour window = 2.5 per hour
    assert!(close(val(&mut e, "rate", city, now), 2.5, 1e-9));
    // datastreams a, b, c
    assert_eq!(val(&mut e, "ds", city, now), Some(3.0));
    assert_eq!(val(&mut e, "ds", d1, now), Some(2.0));
    // A district without inputs: counts are 0, averages have no value.
    assert_eq!(val(&mut e, "n", Area::District(7), now), Some(0.0));
    assert_eq!(val(&mut e, "a", Area::District(7), now), None);
}

fn event_library() -> String {
    [
        metric("cm", "{event}", "P1D", "input = \"events\"\naggregate = \"count\"\nfilter = { category = \"city_management\" }"),
        metric("sev", "1", "P1D", "input = \"events\"\naggregate = \"sum\"\nfield = \"severity\""),
        metric("esc", "1", "P1D", "input = \"events\"\naggregate = \"sum\"\nfield = \"escalation\""),
        metric("open", "{event}", "current", "input = \"events\"\naggregate = \"count\"\nfilter = { state = [\"reported\", \"dispatched\", \"handling\", \"feedback\"] }"),
        metric("waiting", "{event}", "current", "input = \"events\"\naggregate = \"count\"\nfilter = { state = \"reported\" }"),
        metric("handling", "{event}", "current", "input = \"events\"\naggregate = \"count\"\nfilter = { state = \"handling\" }"),
        metric("overdue", "{event}", "current", "input = \"events\"\naggregate = \"count\"\nfilter = { overdue = true }"),
        metric("closure", "%", "P1D", "input = \"events\"\naggregate = \"ratio\"\nnumerator = { state = \"closed\" }\ndenominator = { state = [\"reported\", \"dispatched\", \"handling\", \"feedback\", \"closed\"] }"),
        metric("dispatch", "min", "P1D", "input = \"transitions\"\naggregate = \"avg\"\nfield = \"since_reported_min\"\nfilter = { state = \"dispatched\" }"),
        metric("arrival", "min", "P1D", "input = \"transitions\"\naggregate = \"avg\"\nfield = \"stage_min\"\nfilter = { state = \"handling\", from_state = \"dispatched\" }"),
        metric("longest", "min", "P1D", "input = \"transitions\"\naggregate = \"max\"\nfield = \"stage_min\"\nfilter = { state = \"feedback\" }"),
        metric("escalations", "{escalation}", "P1D", "input = \"transitions\"\naggregate = \"count\"\nfilter = { kind = \"escalated\" }"),
        metric("hotline", "{report}/d", "P1D", "input = \"events\"\naggregate = \"rate\"\nper = \"day\"\nfilter = { source = \"hotline_12345\" }"),
    ]
    .join("\n")
}

fn event_inputs() -> Vec<Input> {
    vec![
        // e1 fire, severity 4, district 0, reported T0: dispatched +4, handling +10, feedback +30, closed +40
        ev(1, Fire, Hotline12345, Critical, 0, T0, None),
        tr(1, 1, None, Reported, T0, "created"),
        // e2 city management, severity 2, district 1, reported +1: dispatched +2, handling +12
        ev(2, CityManagement, Hotline12345, Medium, 1, T0 + MIN, None),
        tr(2, 2, None, Reported, T0 + MIN, "created"),
        // e3 city management, severity 2, district 1, reported +3: cancelled +5
        ev(3, CityManagement, Patrol, Medium, 1, T0 + 3 * MIN, None),
        tr(3, 3, None, Reported, T0 + 3 * MIN, "created"),
        tr(4, 1, Some(Reported), Dispatched, T0 + 4 * MIN, "transition"),
        tr(5, 2, Some(Reported), Dispatched, T0 + 2 * MIN, "transition"),
        tr(6, 3, Some(Reported), Cancelled, T0 + 5 * MIN, "transition"),
        // e4 medical, severity 3, district 0, reported +6, due +15, stays reported, escalated +16
        ev(
            4,
            Medical,
            Patrol,
            High,
            0,
            T0 + 6 * MIN,
            Some(T0 + 15 * MIN),
        ),
        tr(7, 4, None, Reported, T0 + 6 * MIN, "created"),
        tr(
            8,
            1,
            Some(Dispatched),
            Handling,
            T0 + 10 * MIN,
            "transition",
        ),
        tr(
            9,
            2,
            Some(Dispatched),
            Handling,
            T0 + 12 * MIN,
            "transition",
        ),
        tr(10, 4, Some(Reported), Reported, T0 + 16 * MIN, "escalated"),
        tr(11, 1, Some(Handling), Feedback, T0 + 30 * MIN, "transition"),
        tr(12, 1, Some(Feedback), Closed, T0 + 40 * MIN, "transition"),
    ]
}

#[test]
fn event_and_transition_aggregates() {
    let mut e = engine(&event_library());
    // Transition 5 (at +2) arrives after transition 4 (at +4): late inputs land in their bucket.
    e.backfill(event_inputs());
    let now = T0 + 45 * MIN;
    let c = Area::City;
    assert_eq!(val(&mut e, "cm", c, now), Some(2.0));
    // severities 4 + 2 + 2 + 3 = 11
    assert_eq!(val(&mut e, "sev", c, now), Some(11.0));
    // one escalation (e4)
    assert_eq!(val(&mut e, "esc", c, now), Some(1.0));
    assert_eq!(val(&mut e, "escalations", c, now), Some(1.0));
    // open: e2 (handling) + e4 (reported) = 2; e1 closed, e3 cancelled
    assert_eq!(val(&mut e, "open", c, now), Some(2.0));
    assert_eq!(val(&mut e, "waiting", c, now), Some(1.0));
    assert_eq!(val(&mut e, "handling", c, now), Some(1.0));
    assert_eq!(val(&mut e, "handling", Area::District(1), now), Some(1.0));
    assert_eq!(val(&mut e, "handling", Area::District(0), now), Some(0.0));
    // e4 is due at +15: overdue at +20, not at +10
    assert_eq!(val(&mut e, "overdue", c, T0 + 20 * MIN), Some(1.0));
    assert_eq!(val(&mut e, "overdue", c, T0 + 10 * MIN), Some(0.0));
    // closed / not cancelled = e1 / {e1, e2, e4} = 1/3
    assert!(close(val(&mut e, "closure", c, now), 100.0 / 3.0, 1e-9));
    // dispatch: e1 4 − 0 = 4 min, e2 2 − 1 = 1 min → 2.5
    assert!(close(val(&mut e, "dispatch", c, now), 2.5, 1e-9));
    // arrival: e1 10 − 4 = 6, e2 12 − 2 = 10 → 8
    assert!(close(val(&mut e, "arrival", c, now), 8.0, 1e-9));
    assert!(close(
        val(&mut e, "arrival", Area::District(1), now),
        10.0,
        1e-9
    ));
    // feedback after handling 30 − 10 = 20
    assert!(close(val(&mut e, "longest", c, now), 20.0, 1e-9));
    // hotline: e1, e2 in a 1-day window → 2 per day
    assert!(close(val(&mut e, "hotline", c, now), 2.0, 1e-9));
    // Before the closing transition applies, the ratio was 0/3: replay up to +35.
    let mut e2 = engine(&event_library());
    e2.backfill(
        event_inputs()
            .into_iter()
            .filter(|i| i.time() <= T0 + 35 * MIN),
    );
    assert!(close(val(&mut e2, "closure", c, T0 + 35 * MIN), 0.0, 1e-9));
    assert_eq!(val(&mut e2, "open", c, now), Some(3.0));
    // Replaying a transition twice changes nothing (log ids are applied once).
    e.push(&tr(
        9,
        2,
        Some(Dispatched),
        Handling,
        T0 + 12 * MIN,
        "transition",
    ));
    assert!(close(val(&mut e, "arrival", c, now), 8.0, 1e-9));
}

/// The server may feed an event's updated snapshot before or after the log entry that changed
/// it; the values are the same either way, and `event_as_created` rewinds a current snapshot
/// for backfill.
#[test]
fn snapshot_order_does_not_matter() {
    let text = event_library();
    let snapshot = |state: EventState, updated: i64| match ev(1, Fire, Patrol, High, 0, T0, None) {
        Input::Event(mut e) => {
            e.state = state;
            e.updated_at = twin_protocol::ts_from_ms(updated);
            Input::Event(e)
        }
        _ => unreachable!(),
    };
    let dispatched = tr(2, 1, Some(Reported), Dispatched, T0 + 3 * MIN, "transition");
    let on_site = tr(3, 1, Some(Dispatched), Handling, T0 + 8 * MIN, "transition");
    // snapshot after each log entry
    let mut a = engine(&text);
    a.backfill([
        ev(1, Fire, Patrol, High, 0, T0, None),
        dispatched.clone(),
        snapshot(Dispatched, T0 + 3 * MIN),
        on_site.clone(),
        snapshot(Handling, T0 + 8 * MIN),
    ]);
    // snapshot before each log entry
    let mut b = engine(&text);
    b.backfill([
        ev(1, Fire, Patrol, High, 0, T0, None),
        snapshot(Dispatched, T0 + 3 * MIN),
        dispatched,
        snapshot(Handling, T0 + 8 * MIN),
        on_site,
    ]);
    let now = T0 + 10 * MIN;
    for e in [&mut a, &mut b] {
        // dispatch 3 − 0 = 3 min; arrival 8 − 3 = 5 min; one event handling, none waiting
        assert!(close(val(e, "dispatch", Area::City, now), 3.0, 1e-9));
        assert!(close(val(e, "arrival", Area::City, now), 5.0, 1e-9));
        assert_eq!(val(e, "handling", Area::City, now), Some(1.0));
        assert_eq!(val(e, "waiting", Area::City, now), Some(0.0));
    }
    // A closed event's current snapshot, rewound: counted as reported until its log closes it.
    let Input::Event(closed) = snapshot(Closed, T0 + 50 * MIN) else {
        unreachable!()
    };
    let mut c = engine(&text);
    c.push(&Input::event_as_created(&closed));
    assert_eq!(val(&mut c, "waiting", Area::City, T0 + MIN), Some(1.0));
    assert_eq!(c.clock(), Some(T0));
}

/// An assignment that dispatches the event (the server logs `reported → dispatched` with kind
/// `assigned`) moves the state and starts the next stage like a transition does: time in
/// `dispatched` is measured from the assignment.
#[test]
fn assignment_that_dispatches_starts_the_dispatched_stage() {
    let mut e = engine(&event_library());
    for i in [
        ev(1, Fire, Hotline12345, Critical, 0, T0, None),
        tr(1, 1, None, Reported, T0, "created"),
        // assigned (and so dispatched) at +5, on site (handling) at +12: 7 min in `dispatched`.
        tr(2, 1, Some(Reported), Dispatched, T0 + 5 * MIN, "assigned"),
        tr(3, 1, Some(Dispatched), Handling, T0 + 12 * MIN, "transition"),
    ] {
        e.push(&i);
    }
    let now = T0 + 20 * MIN;
    assert_eq!(val(&mut e, "arrival", Area::City, now), Some(7.0));
    assert_eq!(val(&mut e, "dispatch", Area::City, now), Some(5.0));
    assert_eq!(val(&mut e, "handling", Area::City, now), Some(1.0));
    assert_eq!(val(&mut e, "waiting", Area::City, now), Some(0.0));
}
