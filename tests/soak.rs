//! Short soak (the CI variant of scripts/soak.sh, issue 8 item 6): the soak client of
//! twin-server/examples/soak.rs, included here, runs mixed tile, API read/write and WebSocket
//! stream load for 30 s against a debug server (SQLite store): no request may fail, no
//! subscriber may see a gap, a resync or a disconnect, and the server's RSS must stay flat (last
//! third of the run within 10 % of the second third). Rates are a fraction of the release soak's:
//! a debug server shares 2 CI cores with the client and the other tests.

mod common;
#[allow(dead_code)]
#[path = "../twin-server/examples/soak.rs"]
mod soak;
use common::*;

#[test]
fn thirty_seconds_of_mixed_load_without_errors_or_memory_growth() {
    let tmp = tempfile::tempdir().unwrap();
    // The live test city plus 3,000 buildings in rows, with vector tiles (z12–z16 requested).
    let mut city: serde_json::Value = serde_json::from_str(LIVE_CITY).unwrap();
    let feats = city["features"].as_array_mut().unwrap();
    for i in 0..3000 {
        let (x, y) = (123.40 + 0.0003 * (i % 100) as f64, 41.78 + 0.0002 * (i / 100) as f64);
        feats.push(serde_json::json!({"type": "Feature", "properties": {"building": "yes", "height": 10 + i % 50},
            "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 0.00013, y], [x + 0.00013, y + 0.0001], [x, y + 0.0001], [x, y]]]}}));
    }
    let src = tmp.path().join("city.geojson");
    std::fs::write(&src, serde_json::to_vec(&city).unwrap()).unwrap();
    let out = tmp.path().join("city");
    build(&out, &["--name", "city", "--source", src.to_str().unwrap(), "--no-3dtiles"]);
    let db = format!("sqlite:{}", tmp.path().join("live.sqlite").display());
    // A ring of 300 changes fills in the first 10 s (30 changes/s), so what it holds does not
    // count as growth; the rest of the server's memory must not grow with the load.
    let s = serve_with(&out, &["--db", &db, "--stream-ring", "300"]);
    let args: Vec<String> = [
        s.base.as_str(),
        &s.child.id().to_string(),
        "30",
        "tiles=200",
        "reads=40",
        "events=10",
        "transitions=10",
        "obs=10",
        "subs=20",
        "tile_area=123.40,41.78,123.43,41.786",
        &format!("token={TEST_ADMIN_TOKEN}"),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let (report, ok) = soak::run(&args);
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    // Every kind of load really ran: requests/deltas counted (≥ 80 % of the offered rate).
    for (kind, min) in [("tile", 200.0 * 30.0 * 0.8), ("read", 40.0 * 30.0 * 0.8), ("event", 10.0 * 30.0 * 0.8), ("observation", 10.0 * 30.0 * 0.8)] {
        assert!(report[kind]["ok"].as_f64().unwrap() >= min, "{kind}: {}", report[kind]);
    }
    assert!(report["transition"]["ok"].as_u64().unwrap() > 100, "{}", report["transition"]);
    // Each subscriber gets every change: one per event, transition and observation request.
    let writes: u64 = ["event", "transition", "observation"].iter().map(|k| report[*k]["ok"].as_u64().unwrap()).sum();
    assert_eq!(report["stream"]["deltas"].as_u64().unwrap(), 20 * writes, "{}", report["stream"]);
    assert_eq!(report["errors"], 0, "{report}");
    assert!(ok, "RSS not flat: {}", report["rss"]);
}
