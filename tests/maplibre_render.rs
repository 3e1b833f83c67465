//! MapLibre GL JS 6.17.0 in headless Chromium renders the default city through the running
//! server's `command` style: buildings and roads are drawn (queryRenderedFeatures) at z12, z14 and
//! z16 over 市府广场, and the screenshots are not blank.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn maplibre_renders_buildings_and_roads_at_three_zooms() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("shenyang");
    let m = build(&out, &[]);
    assert!(m["files"]["vector_tiles"].is_string(), "the default build writes a tile archive: {}", m["files"]);
    let s = serve(&out);
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js");
    assert!(js.join("node_modules/maplibre-gl").exists() && js.join("node_modules/playwright-core").exists(), "run scripts/js-deps.sh");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("maplibre");
    let _ = std::fs::remove_dir_all(&shots);
    let o = Command::new("node")
        .current_dir(&js)
        .arg("maplibre-render.mjs")
        .arg(format!("{}/styles/command.json", s.base))
        .arg(&shots)
        .args(["123.4315", "41.8057", "12", "14", "16"])
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "maplibre-render.mjs failed:\n{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["errors"].as_array().unwrap().len(), 0, "MapLibre errors: {}", v["errors"]);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in results {
        let z = r["zoom"].as_u64().unwrap();
        let (b, rd) = (r["counts"]["buildings"].as_u64().unwrap(), r["counts"]["roads"].as_u64().unwrap());
        eprintln!("z{z}: {b} buildings, {rd} road features rendered, {} colours, {:.0} % non-background", r["distinct_colours"], r["non_background"].as_f64().unwrap() * 100.0);
        assert!(b > 0 && rd > 0, "z{z}: buildings {b}, roads {rd}");
        // Not blank: many colours and a real share of pixels off the background colour.
        assert!(r["distinct_colours"].as_u64().unwrap() > 100, "z{z}: {}", r);
        assert!(r["non_background"].as_f64().unwrap() > 0.1, "z{z}: {}", r);
        let png = std::fs::read(shots.join(format!("z{z}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "z{z}: screenshot of {} bytes", png.len());
    }
    // The three zooms show different things (not one cached frame).
    let b: Vec<u64> = results.iter().map(|r| r["counts"]["buildings"].as_u64().unwrap()).collect();
    assert!(b[0] != b[1] && b[1] != b[2], "{b:?}");
}
