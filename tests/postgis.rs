//! PostGIS ingest through the real CLI: a throw-away PostgreSQL 15 + PostGIS 3 server started by
//! the test (unix socket only, trust auth), loaded with GDAL's own `ogr2ogr`, then
//! `twin-server build --source "PG:…"` — checked against `ogrinfo` on the same DSN and against the
//! GeoJSON-file builds of the same data.
//!
//! Needs the PostgreSQL server binaries and PostGIS (Debian: `postgresql-15`,
//! `postgresql-15-postgis-3`; scripts/install-deps.sh installs them). Without them the test fails
//! rather than skipping. As root the server runs as the `postgres` system user (initdb refuses
//! root).

mod common;
use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn ogr2ogr(args: &[&str]) {
    let o = Command::new("ogr2ogr").args(args).output().expect("ogr2ogr (gdal-bin)");
    assert!(o.status.success(), "ogr2ogr {args:?}: {}", text(&o));
}

/// Source id → (height, use) of every building of a built model.
fn heights(dir: &Path) -> HashMap<String, (f32, scenes::model::BuildingUse)> {
    let model = scenes::store::read_model(dir).expect("model.bin");
    let n = model.buildings.len();
    let m: HashMap<_, _> = model.buildings.into_iter().map(|b| (b.source.id, (b.height, b.use_))).collect();
    assert_eq!(m.len(), n, "source ids are unique");
    m
}

#[test]
fn postgis_tables_give_the_same_buildings_as_the_files() {
    let t0 = Instant::now();
    let pg = PgServer::start();
    eprintln!("PostgreSQL up in {:.1} s", t0.elapsed().as_secs_f64());
    let dsn = format!("PG:{}", pg.dsn());
    let lyon_src = data("buildings/lyon1_bdtopo.geojson");
    let astana_src = data("buildings/astana_osm_buildings.geojson");
    // Plain ogr2ogr, as a user would load them: column names laundered (HAUTEUR → hauteur, …),
    // the Lyon table keeps EPSG:3946, Astana is EPSG:4326.
    ogr2ogr(&["-f", "PostgreSQL", &dsn, &lyon_src, "-nln", "lyon_buildings"]);
    ogr2ogr(&["-f", "PostgreSQL", &dsn, &astana_src, "-nln", "astana_buildings"]);
    eprintln!("loaded in {:.1} s", t0.elapsed().as_secs_f64());

    // Independent counts: GDAL's ogrinfo on the same DSN.
    assert_eq!(ogr_count(&dsn, Some("lyon_buildings")), 2576);
    assert_eq!(ogr_count(&dsn, Some("astana_buildings")), 32_056);

    let tmp = tempfile::tempdir().unwrap();

    // Lyon: one table of the database.
    let lyon_dsn = format!("{dsn} tables=lyon_buildings");
    let out = tmp.path().join("pg-lyon");
    let m = build(&out, &["--source", &lyon_dsn]);
    assert_eq!(m["sources"][0]["kind"], "gdal:PostgreSQL");
    assert_eq!(m["sources"][0]["crs"], "EPSG:3946");
    let path = m["sources"][0]["path"].as_str().unwrap();
    assert!(path.starts_with("PG:") && path.contains("password=***") && path.contains("tables=lyon_buildings"), "{path}");
    let raw = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(!raw.contains("secret"), "the password leaks into manifest.json");
    assert_eq!(m["layers"]["buildings"], 2576, "{}", m["report"]);
    assert_eq!(m["dropped_total"], 0, "{}", m["report"]);
    // The column is laundered to `hauteur` by ogr2ogr; it is still the BD TOPO HAUTEUR rule.
    assert_eq!(m["heights"]["attribute"]["HAUTEUR"], 2576, "{}", m["heights"]);

    // The same data from the GeoJSON file, and HAUTEUR read independently from it.
    let file_out = tmp.path().join("file-lyon");
    let fm = build(&file_out, &["--source", &lyon_src]);
    assert_eq!(fm["layers"]["buildings"], m["layers"]["buildings"]);
    assert_eq!(fm["heights"], m["heights"], "height sources: file vs PostGIS");
    let hauteur = lyon_hauteur(std::path::Path::new(&lyon_src));
    let (pg_b, file_b) = (heights(&out), heights(&file_out));
    assert_eq!(pg_b.len(), 2576);
    for (id, (h, use_)) in &pg_b {
        let (fh, fuse) = file_b.get(id).unwrap_or_else(|| panic!("{id} from PostGIS is not in the file build"));
        assert!((*h as f64 - hauteur[id]).abs() < 1e-4, "{id}: {h} vs HAUTEUR {}", hauteur[id]);
        assert_eq!(h, fh, "{id}: height from PostGIS vs from the file");
        assert_eq!(use_, fuse, "{id}: use from PostGIS vs from the file");
    }
    let (pb, fb) = (&m["bbox"], &fm["bbox"]);
    for i in 0..4 {
        assert!((pb[i].as_f64().unwrap() - fb[i].as_f64().unwrap()).abs() < 1e-9, "bbox {pb} vs {fb}");
    }

    // Both tables through one DSN (every spatial table), next to the Astana file build.
    let both_out = tmp.path().join("pg-both");
    let bm = build(&both_out, &["--source", &dsn]);
    let crs = bm["sources"][0]["crs"].as_str().unwrap();
    assert!(crs.split(',').any(|c| c == "EPSG:3946") && crs.split(',').any(|c| c == "EPSG:4326"), "{crs}");
    assert!(!std::fs::read_to_string(both_out.join("manifest.json")).unwrap().contains("secret"));
    let n_both = ogr_count(&dsn, None);
    assert_eq!(n_both, 2576 + 32_056, "ogrinfo: the database holds exactly the two tables");
    let kept = bm["layers"]["buildings"].as_u64().unwrap();
    assert_eq!(kept + bm["dropped_total"].as_u64().unwrap(), n_both, "kept + dropped = ogrinfo count; {}", bm["report"]);

    let astana_out = tmp.path().join("file-astana");
    let am = build(&astana_out, &["--source", &astana_src]);
    assert_eq!(am["layers"]["buildings"].as_u64().unwrap() + am["dropped_total"].as_u64().unwrap(), 32_056);
    assert_eq!(kept - 2576, am["layers"]["buildings"].as_u64().unwrap(), "Astana buildings kept: PostGIS vs file");
    assert_eq!(bm["dropped_total"], am["dropped_total"], "dropped: PostGIS {} vs file {}", bm["report"], am["report"]);
    let both_b = heights(&both_out);
    for (id, (h, use_)) in heights(&astana_out) {
        let (ph, puse) = both_b.get(&id).unwrap_or_else(|| panic!("Astana {id} missing from the PostGIS build"));
        assert_eq!((*ph, *puse), (h, use_), "Astana {id}: PostGIS vs file");
    }
    eprintln!("done in {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn unreachable_postgis_fails_naming_the_source_with_the_password_masked() {
    let pg = PgServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model");
    // The right socket directory, a port nothing listens on; the password first, right after `PG:`.
    let mut wrong = free_port();
    while wrong == pg.port {
        wrong = free_port();
    }
    let dsn = format!("PG:password=secret host={} port={wrong} user=postgres dbname=citytwin", pg.sock.display());
    let o = twin(&["build", "--source", &dsn, "--out", &out.to_string_lossy()]);
    let err = stderr(&o);
    assert!(!o.status.success(), "build against a wrong port succeeded: {err}");
    assert!(err.contains(&format!("port={wrong}")) && err.contains("PG:"), "the error names the source: {err}");
    assert!(err.contains("password=***"), "{err}");
    assert!(!err.contains("secret"), "the password leaks into the error: {err}");
    assert!(!out.exists(), "a failed build leaves no model at {}", out.display());
    // Nothing staged next to it either.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // Sanity: the right port works with the same DSN shape.
    let good = format!("PG:password=secret host={} port={} user=postgres dbname=citytwin", pg.sock.display(), pg.port);
    let o = Command::new("ogrinfo").args(["-ro", "-so"]).arg(&good).output().unwrap();
    assert!(o.status.success(), "ogrinfo on the right port: {}", text(&o));
}
