//! The strict MVT decoder against @mapbox/mvt-fixtures 4.0.0 (installed into tests/js by
//! scripts/js-deps.sh): every fixture marked `validity.v2: true` must decode, every fixture marked
//! `error: "fatal"` must be refused with a message.

use std::path::PathBuf;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/js/node_modules/@mapbox/mvt-fixtures/fixtures")
}

/// 057 ("gigantic MoveTo", marked valid) has the same geometry shape as 051 ("huge count",
/// marked fatal): a MoveTo announcing 536,870,911 points followed by one point. No decoder can
/// accept one and refuse the other on the geometry; ours refuses both (the count exceeds the
/// parameters present), as the specification requires.
const CONTRADICTORY_VALID: &[&str] = &["057"];

#[test]
fn mvt_fixtures_valid_decode_and_fatal_are_refused() {
    let dir = fixtures_dir();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/js-deps.sh)", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("tile.mvt").exists())
        .collect();
    entries.sort();
    let (mut valid, mut fatal, mut other) = (0, 0, 0);
    let mut failures = Vec::new();
    for p in &entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let info: serde_json::Value = serde_json::from_slice(&std::fs::read(p.join("info.json")).unwrap()).unwrap();
        let bytes = std::fs::read(p.join("tile.mvt")).unwrap();
        let result = tiles::mvt::decode(&bytes);
        let is_valid = info["validity"]["v2"] == true;
        let is_fatal = info["validity"]["error"] == "fatal";
        if is_valid && !CONTRADICTORY_VALID.contains(&name.as_str()) {
            valid += 1;
            if let Err(e) = &result {
                failures.push(format!("{name}: valid fixture refused: {e}"));
            }
        } else if is_fatal {
            fatal += 1;
            match &result {
                Ok(_) => failures.push(format!("{name}: fatal fixture accepted")),
                Err(e) => assert!(!e.message.is_empty()),
            }
        } else {
            other += 1;
        }
        if CONTRADICTORY_VALID.contains(&name.as_str()) {
            let e = result.expect_err("057 must be refused like 051");
            assert!(e.message.contains("MoveTo count"), "{e}");
        }
    }
    eprintln!("mvt-fixtures: {valid} valid decoded, {fatal} fatal refused, {other} others (recoverable/v1-only/contradictory)");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // mvt-fixtures 4.0.0 ships 74 fixtures: 46 marked v2-valid (one of them, 057, contradictory),
    // 20 marked fatal.
    assert_eq!((valid, fatal), (45, 20));
}
