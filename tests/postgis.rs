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
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const INSTALL_HINT: &str = "PostgreSQL 15 server + PostGIS 3 are needed for this test: run scripts/install-deps.sh \
     (Debian/Ubuntu: apt-get install -y postgresql-15 postgresql-15-postgis-3), or set PG_BINDIR to the directory with initdb/pg_ctl";

/// Directory holding initdb/pg_ctl/createdb/psql: $PG_BINDIR, else /usr/lib/postgresql/15/bin.
fn pg_bindir() -> PathBuf {
    let dir = std::env::var_os("PG_BINDIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    for tool in ["initdb", "pg_ctl", "createdb", "psql"] {
        assert!(dir.join(tool).is_file(), "{} not found. {INSTALL_HINT}", dir.join(tool).display());
    }
    dir
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A throw-away PostgreSQL cluster listening only on a unix socket in its own temp dir; stopped
/// (`pg_ctl -m immediate stop`) and deleted on drop, whatever happens.
struct PgServer {
    bindir: PathBuf,
    as_postgres: bool,
    /// Socket directory (the temp dir itself); the cluster is in `data/` below it.
    sock: PathBuf,
    port: u16,
    started: bool,
    // Dropped after `drop()` has stopped the server.
    _tmp: tempfile::TempDir,
}

impl PgServer {
    /// A PostgreSQL tool, run as `postgres` when we are root.
    fn cmd(&self, tool: &str) -> Command {
        let exe = self.bindir.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let o = self.cmd(tool).args(args).output().unwrap_or_else(|e| panic!("cannot run {tool}: {e}. {INSTALL_HINT}"));
        assert!(o.status.success(), "{tool} {args:?} failed: {}", text(&o));
        o
    }

    fn start() -> PgServer {
        let bindir = pg_bindir();
        let as_postgres = is_root();
        let tmp = tempfile::Builder::new().prefix("citytwin-pg").tempdir().unwrap();
        if as_postgres {
            let o = Command::new("chown").args(["postgres:"]).arg(tmp.path()).output().expect("chown");
            assert!(o.status.success(), "chown postgres {}: {} (no `postgres` system user? {INSTALL_HINT})", tmp.path().display(), text(&o));
        }
        let mut s = PgServer { bindir, as_postgres, sock: tmp.path().to_path_buf(), port: free_port(), started: false, _tmp: tmp };
        let data = s.sock.join("data");
        let (data_s, sock_s, log_s) = (data.to_string_lossy().into_owned(), s.sock.to_string_lossy().into_owned(), s.sock.join("log").to_string_lossy().into_owned());
        s.run("initdb", &["-D", &data_s, "-U", "postgres", "--auth=trust", "--no-sync"]);
        // -l: the server must not inherit our stdout/stderr pipes (output() would wait for it).
        let opts = format!("-p {} -k {} -c listen_addresses='' -c fsync=off", s.port, sock_s);
        s.started = true; // from here on, drop() stops it (a failed start is harmless to stop)
        let o = s.cmd("pg_ctl").args(["-D", &data_s, "-l", &log_s, "-o", &opts, "-w", "-t", "60", "start"]).output().expect("pg_ctl");
        assert!(o.status.success(), "pg_ctl start failed: {}\nserver log:\n{}", text(&o), std::fs::read_to_string(&log_s).unwrap_or_default());
        let port = s.port.to_string();
        s.run("createdb", &["-h", &sock_s, "-p", &port, "-U", "postgres", "citytwin"]);
        let o = s.cmd("psql").args(["-h", &sock_s, "-p", &port, "-U", "postgres", "-d", "citytwin", "-v", "ON_ERROR_STOP=1", "-c", "CREATE EXTENSION postgis"]).output().unwrap();
        assert!(o.status.success(), "CREATE EXTENSION postgis failed (PostGIS not installed?): {}. {INSTALL_HINT}", text(&o));
        s
    }

    /// GDAL DSN (without the `PG:` prefix) with a password, which trust auth ignores.
    fn dsn(&self) -> String {
        format!("host={} port={} user=postgres password=secret dbname=citytwin", self.sock.display(), self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.started {
            let data = self.sock.join("data");
            let _ = self.cmd("pg_ctl").arg("-D").arg(&data).args(["-m", "immediate", "-w", "stop"]).output();
        }
    }
}

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
