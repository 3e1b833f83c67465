//! Command line. Per-source options (`--crs`, `--datum`, `--placement`, `--layer`,
//! `--district-level`) apply to the
//! `--source` they follow; given before any `--source` they apply to every source.

use clap::{Arg, ArgAction, ArgMatches, Command as ClapCommand};
use scenes::build::BuildOptions;
use scenes::ingest::{Datum, LayerHint, SourceSpec};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

pub struct Command {
    pub log_format: String,
    pub action: Action,
}

pub enum Action {
    Build(BuildOptions),
    Serve(ServeOptions),
    Export(ExportOptions),
    Token(TokenCommand),
    User(UserCommand),
}

/// `twin-server user create --db URL --role R --name N --password-file F`: a user who logs in
/// (`POST /api/auth/login`) for short-lived session keys.
#[derive(Debug, Clone)]
pub enum UserCommand {
    Create { db: crate::live::db::DbUrl, name: String, role: crate::auth::Role, password_file: PathBuf },
}

/// `twin-server token create|list|revoke --db URL …`: API keys in the live store.
#[derive(Debug, Clone)]
pub enum TokenCommand {
    Create { db: crate::live::db::DbUrl, name: String, role: crate::auth::Role, expires_days: Option<f64> },
    List { db: crate::live::db::DbUrl },
    Revoke { db: crate::live::db::DbUrl, id: Option<i64>, name: Option<String> },
}

/// `twin-server export`: copies of a model's vector tile archive.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub model: PathBuf,
    pub mbtiles: Option<PathBuf>,
    pub pmtiles: Option<PathBuf>,
    /// Buildings as line-delimited GeoJSON (for tippecanoe and other tools).
    pub geojson: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub model: PathBuf,
    pub addr: SocketAddr,
    /// Extra tile archives `(name, file)` served beside the model's own.
    pub tilesets: Vec<(String, PathBuf)>,
    /// Base of absolute URLs in TileJSON and styles (default: from the request's Host).
    pub public_url: Option<String>,
    /// Extra glyph fonts (*.ttf, *.otf) beside the bundled one.
    pub fonts: Option<PathBuf>,
    /// Live operations options (store, categories, stream).
    pub live: crate::live::LiveOptions,
    /// Access control and limits.
    pub auth: crate::auth::AuthOptions,
}

fn clap_command() -> ClapCommand {
    let per_source = |name: &'static str, value: &'static str, help: &'static str| {
        Arg::new(name).long(name).action(ArgAction::Append).value_name(value).help(help)
    };
    ClapCommand::new("twin-server")
        .version(env!("CARGO_PKG_VERSION"))
        .about("CityTwin: builds the city model from GIS/CIM data and serves it")
        .arg(
            Arg::new("log-format")
                .long("log-format")
                .global(true)
                .value_parser(["text", "json"])
                .default_value("text")
                .help("Log format on stderr (RUST_LOG sets the level)"),
        )
        .subcommand_required(true)
        .subcommand(
            ClapCommand::new("build")
                .about("Build a model directory from sources, or the built-in Shenyang city when no --source is given")
                .arg(per_source("source", "PATH_OR_DSN", "A file path or a GDAL connection string (PG:…); repeatable"))
                .arg(per_source("crs", "CRS", "CRS of the preceding source (EPSG:4490, WKT, PROJ); required where the source has none"))
                .arg(per_source("datum", "DATUM", "Declared datum of the preceding source: gcj02 or native"))
                .arg(per_source("placement", "FILE", "Placement JSON for the preceding glTF/IFC source"))
                .arg(per_source("layer", "LAYER", "Force the preceding GIS source's features into a layer: buildings, roads, water, landuse, pois, districts, streets"))
                .arg(per_source("district-level", "N", "OSM: admin_level of boundary=administrative areas read as districts (default 5 and 6); streets are the levels above it up to 9"))
                .arg(Arg::new("out").long("out").required(true).value_name("DIR").help("Model directory to write (replaced atomically)"))
                .arg(Arg::new("seed").long("seed").value_parser(clap::value_parser!(u64)).help("Seed of the built-in city generator"))
                .arg(Arg::new("boundaries").long("boundaries").value_name("DIR").help("Directory of the Shenyang cnmaps boundary files"))
                .arg(Arg::new("divisions").long("divisions").value_name("FILE").help("NBS street list (streets_2101.csv) for the built-in city's 街道/乡镇 [default: $CITYTWIN_DIVISIONS, else <boundaries>/../divisions/streets_2101.csv; missing: a warning and no streets]"))
                .arg(Arg::new("name").long("name").help("Model name"))
                .arg(
                    Arg::new("max-zoom")
                        .long("max-zoom")
                        .value_name("N")
                        .value_parser(clap::value_parser!(u8).range(0..=18))
                        .default_value("16")
                        .help("Highest zoom of the vector tile pyramid (0..=18)"),
                )
                .arg(Arg::new("no-tiles").long("no-tiles").action(ArgAction::SetTrue).help("Do not build the vector tile pyramid"))
                .arg(Arg::new("no-3dtiles").long("no-3dtiles").action(ArgAction::SetTrue).help("Do not write the 3D Tiles tileset (DIR/3dtiles)"))
                .arg(Arg::new("dem").long("dem").value_name("FILE").help("DEM raster (any GDAL format and CRS; heights EGM96 as SRTM): each building stands on the minimum of the DEM at its footprint's corners"))
                .arg(Arg::new("dem-ellipsoidal").long("dem-ellipsoidal").action(ArgAction::SetTrue).requires("dem").help("The DEM's heights are already above the WGS-84 ellipsoid (no EGM96 conversion)"))
                .arg(
                    Arg::new("ground-height")
                        .long("ground-height")
                        .value_name("M")
                        .value_parser(clap::value_parser!(f64))
                        .conflicts_with("dem")
                        .help("Without --dem: flat ground at M metres above mean sea level (EGM96), e.g. the city's mean elevation (default: 0 m above the ellipsoid)"),
                )
                .arg(
                    Arg::new("l3-area")
                        .long("l3-area")
                        .value_name("NAME=W,S,E,N")
                        .action(clap::ArgAction::Append)
                        .help("A theme area whose buildings and trees get L3 tiles, as a WGS-84 box (repeatable; `none` for no area) [default: 好游玩·北陵公园=123.4111,41.8273,123.4389,41.8527 for the built-in city, none otherwise]"),
                )
                .arg(Arg::new("l3-districts").long("l3-districts").value_name("LIST").help("Districts whose buildings get L3 tiles (roofs, facades): comma-separated names or adcodes, `all` or `none` [default: 和平区,沈河区 for the built-in city, none otherwise]")),
        )
        .subcommand(
            ClapCommand::new("export")
                .about("Export a built model's vector tiles as MBTiles (for GDAL/QGIS) and/or a PMTiles copy")
                .arg(Arg::new("model").long("model").required(true).value_name("DIR"))
                .arg(Arg::new("mbtiles").long("mbtiles").value_name("OUT.mbtiles"))
                .arg(Arg::new("pmtiles").long("pmtiles").value_name("OUT.pmtiles"))
                .arg(Arg::new("geojson").long("geojson").value_name("OUT.geojsonl").help("The model's buildings as line-delimited GeoJSON"))
                .group(clap::ArgGroup::new("what").args(["mbtiles", "pmtiles", "geojson"]).required(true).multiple(true)),
        )
        .subcommand(
            ClapCommand::new("serve")
                .about("Serve a built model directory over HTTP")
                .arg(Arg::new("model").long("model").required(true).value_name("DIR"))
                .arg(Arg::new("addr").long("addr").default_value("127.0.0.1:8080").value_name("HOST:PORT"))
                .arg(Arg::new("tileset").long("tileset").action(ArgAction::Append).value_name("NAME=FILE.pmtiles").help("Also serve this PMTiles archive as tileset NAME; repeatable"))
                .arg(Arg::new("public-url").long("public-url").value_name("URL").help("Base URL for absolute links in TileJSON and styles (default: from the request's Host header)"))
                .arg(Arg::new("fonts").long("fonts").value_name("DIR").help("Directory of extra glyph fonts (*.ttf, *.otf) beside the bundled Noto Sans CJK SC subset"))
                .arg(Arg::new("db").long("db").value_name("sqlite:PATH|postgres://…").help("Live-operations store [default: sqlite:<model>.live.sqlite beside the model directory]"))
                .arg(Arg::new("categories").long("categories").value_name("FILE.toml").help("Event categories and SLAs [default: the bundled assets/events/categories.toml]"))
                .arg(Arg::new("sla-check-ms").long("sla-check-ms").value_parser(clap::value_parser!(u64).range(10..=3_600_000)).default_value("5000").help("How often overdue events are escalated (ms)"))
                .arg(Arg::new("stream-ring").long("stream-ring").value_parser(clap::value_parser!(u64).range(1..=10_000_000)).default_value("10000").help("Recent changes kept in memory for stream resumes"))
                .arg(Arg::new("stream-queue").long("stream-queue").value_parser(clap::value_parser!(u64).range(1..=1_000_000)).default_value("1024").help("Per-subscriber queue of the stream: a subscriber this far behind is told to resync and dropped"))
                .arg(Arg::new("max-body").long("max-body").value_parser(clap::value_parser!(u64).range(1024..=1_073_741_824)).default_value("1048576").help("Largest accepted request body, bytes (413 above)"))
                .arg(Arg::new("mqtt").long("mqtt").value_name("mqtt://HOST:PORT").help("Ingest sensor observations from this MQTT broker (shared subscription $share/citytwin/citytwin/datastreams/+/observations)"))
                .arg(Arg::new("simulate").long("simulate").value_parser(["on", "off"]).num_args(0..=1).default_missing_value("on").help("City simulator: sensors with diurnal cycles and anomalies, incidents per district [default: on with the built-in city]"))
                .arg(Arg::new("speed").long("speed").value_parser(|s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0 && *v <= 100_000.0).ok_or_else(|| format!("'{s}': simulated minutes per real minute, > 0 and ≤ 100000"))).default_value("60").help("Simulator speed: simulated minutes per real minute"))
                .arg(Arg::new("indicators").long("indicators").value_name("DIR").help("Indicator definitions (*.toml) [default: the bundled assets/indicators]"))
                .arg(Arg::new("seed").long("seed").value_parser(clap::value_parser!(u64)).default_value("1").help("Simulator seed (same seed, same day)"))
                .arg(Arg::new("unit-speedup").long("unit-speedup").value_parser(|s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0 && *v <= 100_000.0).ok_or_else(|| format!("'{s}': simulated seconds of unit travel per real second, > 0 and ≤ 100000"))).help("Units drive this many times faster than the roads' speeds [default: the simulator's --speed while it runs, else 1]"))
                .arg(Arg::new("mqtt-credentials").long("mqtt-credentials").value_name("FILE").requires("mqtt").help("File whose first line is USER:PASSWORD for the MQTT broker (instead of mqtt://USER:PASSWORD@… on the command line)"))
                .arg(Arg::new("admin-token-file").long("admin-token-file").value_name("FILE").help("Bootstrap admin API key: read from FILE and registered in the store; FILE is created (mode 0600) with a new key when missing"))
                .arg(Arg::new("anonymous-read").long("anonymous-read").action(ArgAction::SetTrue).help("Let requests without a key read the model, events, units, sensors and indicators (demo mode; writes still need a key)"))
                .arg(Arg::new("rate-ip").long("rate-ip").value_name("RATE[:BURST]").default_value("200:400").help("Requests per second per client address (token bucket; 429 above; 0 = unlimited)"))
                .arg(Arg::new("rate-token").long("rate-token").value_name("RATE[:BURST]").default_value("500:1000").help("Requests per second per API key (token bucket; 429 above; 0 = unlimited)"))
                .arg(Arg::new("rate-login").long("rate-login").value_name("RATE[:BURST]").default_value("0.2:10").help("Login attempts per second per client address (token bucket; 429 above; 0 = unlimited)"))
                .arg(Arg::new("session-ttl").long("session-ttl").value_name("SECONDS").value_parser(clap::value_parser!(u64).range(1..=30 * 86400)).default_value("28800").help("Longest lifetime of a session key issued by POST /api/auth/login"))
                .arg(Arg::new("max-streams").long("max-streams").value_parser(clap::value_parser!(u64).range(0..=100_000)).default_value("16").help("Open /api/stream subscriptions per API key (or per address without a key); 0 = unlimited"))
                .arg(Arg::new("request-timeout").long("request-timeout").value_name("SECONDS").value_parser(clap::value_parser!(u64).range(1..=3600)).default_value("30").help("Answer 503 to a request (other than the stream) not answered within this; also PostgreSQL's statement_timeout"))
                .arg(Arg::new("trusted-proxy").long("trusted-proxy").action(ArgAction::Append).value_name("IP").value_parser(clap::value_parser!(std::net::IpAddr)).help("A reverse proxy whose X-Forwarded-For is believed for the client address (repeatable)")),
        )
        .subcommand(
            ClapCommand::new("user")
                .about("Manage users who log in with a password (POST /api/auth/login → a short-lived session key)")
                .subcommand_required(true)
                .subcommand(
                    ClapCommand::new("create")
                        .about("Create a user; the password (argon2id-hashed in the live store) is read from a file, never from the command line")
                        .arg(Arg::new("db").long("db").required(true).value_name("sqlite:PATH|postgres://…"))
                        .arg(Arg::new("role").long("role").required(true).value_parser(["leader", "dispatcher", "planner", "operator", "admin"]))
                        .arg(Arg::new("name").long("name").required(true).value_name("NAME").help("User name (unique; 1–48 of [A-Za-z0-9._-])"))
                        .arg(Arg::new("password-file").long("password-file").required(true).value_name("FILE").help("A file whose first line is the password (at least 10 characters); - reads standard input")),
                ),
        )
        .subcommand(
            ClapCommand::new("token")
                .about("Manage API keys in the live store (shared by every replica using it)")
                .subcommand_required(true)
                .subcommand(
                    ClapCommand::new("create")
                        .about("Create an API key and print it once (only its SHA-256 is stored)")
                        .arg(Arg::new("db").long("db").required(true).value_name("sqlite:PATH|postgres://…"))
                        .arg(Arg::new("role").long("role").required(true).value_parser(["leader", "dispatcher", "planner", "operator", "admin"]))
                        .arg(Arg::new("name").long("name").required(true).value_name("NAME").help("Who holds it (unique; 1–64 of [A-Za-z0-9._@-])"))
                        .arg(Arg::new("expires-days").long("expires-days").value_name("D").value_parser(clap::value_parser!(f64)).help("Expires D days from now (default: never)")),
                )
                .subcommand(ClapCommand::new("list").about("List the keys (never the keys themselves)").arg(Arg::new("db").long("db").required(true).value_name("sqlite:PATH|postgres://…")))
                .subcommand(
                    ClapCommand::new("revoke")
                        .about("Revoke a key by id or name (effective on every server within 5 s)")
                        .arg(Arg::new("db").long("db").required(true).value_name("sqlite:PATH|postgres://…"))
                        .arg(Arg::new("id").long("id").value_parser(clap::value_parser!(i64)))
                        .arg(Arg::new("name").long("name"))
                        .group(clap::ArgGroup::new("which").args(["id", "name"]).required(true)),
                ),
        )
}

/// Values of a repeatable option with their positions on the command line.
fn indexed(m: &ArgMatches, name: &str) -> Vec<(usize, String)> {
    match (m.get_many::<String>(name), m.indices_of(name)) {
        (Some(v), Some(i)) => i.zip(v.cloned()).collect(),
        _ => vec![],
    }
}

fn build_options(m: &ArgMatches) -> Result<BuildOptions, clap::Error> {
    let err = |msg: String| clap::Error::raw(clap::error::ErrorKind::ValueValidation, msg + "\n");
    let sources = indexed(m, "source");
    let mut specs: Vec<SourceSpec> = sources.iter().map(|(_, p)| SourceSpec::new(p.clone())).collect();
    // Index of the source an option at position `pos` belongs to; None = before all sources.
    let owner = |pos: usize| sources.iter().rposition(|(i, _)| *i < pos);
    let mut apply = |name: &str, f: &mut dyn FnMut(&mut SourceSpec, &str) -> Result<(), String>| -> Result<(), clap::Error> {
        for (pos, val) in indexed(m, name) {
            match owner(pos) {
                Some(s) => f(&mut specs[s], &val).map_err(|e| err(format!("--{name} {val}: {e}")))?,
                None => {
                    for s in specs.iter_mut() {
                        f(s, &val).map_err(|e| err(format!("--{name} {val}: {e}")))?;
                    }
                }
            }
        }
        Ok(())
    };
    apply("crs", &mut |s, v| {
        s.crs = Some(v.to_string());
        Ok(())
    })?;
    apply("datum", &mut |s, v| {
        s.datum = v.parse::<Datum>()?;
        Ok(())
    })?;
    apply("placement", &mut |s, v| {
        s.placement = Some(PathBuf::from(v));
        Ok(())
    })?;
    apply("layer", &mut |s, v| {
        s.layer = Some(v.parse::<LayerHint>()?);
        Ok(())
    })?;
    apply("district-level", &mut |s, v| {
        let l: u8 = v.trim().parse().map_err(|_| "expected an OSM admin_level 1–11".to_string())?;
        if !(1..=11).contains(&l) {
            return Err("expected an OSM admin_level 1–11".to_string());
        }
        s.district_admin_level = Some(l);
        Ok(())
    })?;
    Ok(BuildOptions {
        sources: specs,
        out: PathBuf::from(m.get_one::<String>("out").expect("required")),
        seed: m.get_one::<u64>("seed").copied().unwrap_or(scenes::shenyang::DEFAULT_SEED),
        boundaries: m.get_one::<String>("boundaries").map(PathBuf::from),
        divisions: m.get_one::<String>("divisions").map(PathBuf::from),
        name: m.get_one::<String>("name").cloned(),
        tiles: (!m.get_flag("no-tiles")).then(|| scenes::vector_tiles::TileOptions {
            max_zoom: m.get_one::<u8>("max-zoom").copied().unwrap_or(16),
            ..Default::default()
        }),
        tiles3d: !m.get_flag("no-3dtiles"),
        dem: m.get_one::<String>("dem").map(PathBuf::from),
        dem_ellipsoidal: m.get_flag("dem-ellipsoidal"),
        ground_height: match m.get_one::<f64>("ground-height").copied() {
            Some(h) if !h.is_finite() || !(-500.0..=9000.0).contains(&h) => {
                return Err(err(format!("--ground-height {h}: expected metres above sea level between -500 and 9000")))
            }
            h => h,
        },
        l3_districts: match m.get_one::<String>("l3-districts") {
            Some(v) => Some(
                scenes::threed::L3Districts::parse(v)
                    .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n")))?,
            ),
            None => None,
        },
        l3_areas: match m.get_many::<String>("l3-area") {
            Some(vs) => {
                let mut out = vec![];
                for v in vs {
                    if v.trim().eq_ignore_ascii_case("none") {
                        continue;
                    }
                    out.push(scenes::threed::L3Area::parse(v).map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n")))?);
                }
                Some(out)
            }
            None => None,
        },
    })
}

fn rate(m: &ArgMatches, name: &str) -> Result<crate::auth::limit::Rate, clap::Error> {
    let v = m.get_one::<String>(name).expect("default");
    crate::auth::limit::Rate::parse(v).map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("--{name} {e}\n")))
}

pub fn parse(args: Vec<OsString>) -> Result<Command, clap::Error> {
    let m = clap_command().try_get_matches_from(args)?;
    let log_format = m.get_one::<String>("log-format").cloned().unwrap_or_else(|| "text".into());
    let action = match m.subcommand() {
        Some(("build", sm)) => Action::Build(build_options(sm)?),
        Some(("serve", sm)) => {
            let addr_s = sm.get_one::<String>("addr").expect("default");
            let addr = addr_s.parse().map_err(|e| {
                clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("--addr {addr_s}: {e} (expected HOST:PORT, e.g. 127.0.0.1:8080)\n"))
            })?;
            let mut tilesets = Vec::new();
            for t in sm.get_many::<String>("tileset").into_iter().flatten() {
                tilesets.push(
                    crate::state::parse_tileset_arg(t)
                        .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n")))?,
                );
            }
            Action::Serve(ServeOptions {
                model: PathBuf::from(sm.get_one::<String>("model").expect("required")),
                addr,
                tilesets,
                public_url: sm.get_one::<String>("public-url").cloned(),
                fonts: sm.get_one::<String>("fonts").map(PathBuf::from),
                live: crate::live::LiveOptions {
                    db: match sm.get_one::<String>("db") {
                        None => None,
                        Some(d) => Some(
                            crate::live::db::DbUrl::parse(d).map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n")))?,
                        ),
                    },
                    categories: sm.get_one::<String>("categories").map(PathBuf::from),
                    sla_check_ms: *sm.get_one::<u64>("sla-check-ms").expect("default"),
                    stream_ring: *sm.get_one::<u64>("stream-ring").expect("default") as usize,
                    stream_queue: *sm.get_one::<u64>("stream-queue").expect("default") as usize,
                    max_body: *sm.get_one::<u64>("max-body").expect("default") as usize,
                    mqtt: match sm.get_one::<String>("mqtt") {
                        None => None,
                        Some(u) => {
                            crate::live::sensors::mqtt::parse_url_auth(u).map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n")))?;
                            Some(u.clone())
                        }
                    },
                    simulate: sm.get_one::<String>("simulate").map(|v| v == "on"),
                    sim_speed: *sm.get_one::<f64>("speed").expect("default"),
                    sim_seed: *sm.get_one::<u64>("seed").expect("default"),
                    mqtt_credentials: sm.get_one::<String>("mqtt-credentials").map(PathBuf::from),
                    indicators: sm.get_one::<String>("indicators").map(PathBuf::from),
                    unit_speedup: sm.get_one::<f64>("unit-speedup").copied(),
                },
                auth: crate::auth::AuthOptions {
                    admin_token_file: sm.get_one::<String>("admin-token-file").map(PathBuf::from),
                    anonymous_read: sm.get_flag("anonymous-read"),
                    rate_ip: rate(sm, "rate-ip")?,
                    rate_token: rate(sm, "rate-token")?,
                    max_streams: *sm.get_one::<u64>("max-streams").expect("default") as usize,
                    request_timeout: std::time::Duration::from_secs(*sm.get_one::<u64>("request-timeout").expect("default")),
                    trusted_proxies: sm.get_many::<std::net::IpAddr>("trusted-proxy").into_iter().flatten().copied().collect(),
                    rate_login: rate(sm, "rate-login")?,
                    session_ttl: std::time::Duration::from_secs(*sm.get_one::<u64>("session-ttl").expect("default")),
                },
            })
        }
        Some(("token", tm)) => {
            let (sub, sm) = tm.subcommand().expect("subcommand_required");
            let db = crate::live::db::DbUrl::parse(sm.get_one::<String>("db").expect("required"))
                .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n")))?;
            Action::Token(match sub {
                "create" => {
                    let name = sm.get_one::<String>("name").expect("required").clone();
                    crate::auth::store::check_name(&name).map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("--name: {e}\n")))?;
                    let expires_days = sm.get_one::<f64>("expires-days").copied();
                    if let Some(d) = expires_days.filter(|d| !(d.is_finite() && *d > 0.0 && *d <= 3650.0)) {
                        return Err(clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("--expires-days {d}: expected a number of days in (0, 3650]\n")));
                    }
                    TokenCommand::Create { db, name, role: crate::auth::Role::parse(sm.get_one::<String>("role").expect("required")).expect("value_parser"), expires_days }
                }
                "list" => TokenCommand::List { db },
                _ => TokenCommand::Revoke { db, id: sm.get_one::<i64>("id").copied(), name: sm.get_one::<String>("name").cloned() },
            })
        }
        Some(("user", um)) => {
            let (_, sm) = um.subcommand().expect("subcommand_required");
            let db = crate::live::db::DbUrl::parse(sm.get_one::<String>("db").expect("required"))
                .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n")))?;
            let name = sm.get_one::<String>("name").expect("required").clone();
            crate::auth::users::check_user_name(&name).map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("--name: {e}\n")))?;
            Action::User(UserCommand::Create {
                db,
                name,
                role: crate::auth::Role::parse(sm.get_one::<String>("role").expect("required")).expect("value_parser"),
                password_file: PathBuf::from(sm.get_one::<String>("password-file").expect("required")),
            })
        }
        Some(("export", sm)) => Action::Export(ExportOptions {
            model: PathBuf::from(sm.get_one::<String>("model").expect("required")),
            mbtiles: sm.get_one::<String>("mbtiles").map(PathBuf::from),
            pmtiles: sm.get_one::<String>("pmtiles").map(PathBuf::from),
            geojson: sm.get_one::<String>("geojson").map(PathBuf::from),
        }),
        _ => unreachable!("subcommand_required"),
    };
    Ok(Command { log_format, action })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn per_source_options_follow_their_source() {
        let c = parse(args(
            "twin-server build --datum native --source a.geojson --datum gcj02 --source b.shp --crs EPSG:4490 --source c.glb --placement p.json --out d",
        ))
        .unwrap();
        let Action::Build(o) = c.action else { panic!() };
        assert_eq!(o.sources.len(), 3);
        assert_eq!(o.sources[0].datum, Datum::Gcj02);
        assert_eq!(o.sources[0].crs, None);
        assert_eq!(o.sources[1].crs.as_deref(), Some("EPSG:4490"));
        assert_eq!(o.sources[1].datum, Datum::Native);
        assert_eq!(o.sources[2].placement, Some(PathBuf::from("p.json")));
        assert_eq!(o.out, PathBuf::from("d"));
    }

    #[test]
    fn bad_values_are_named() {
        let e = parse(args("twin-server build --source a --datum mars --out d")).err().unwrap().to_string();
        assert!(e.contains("--datum mars") && e.contains("unknown datum"), "{e}");
        let e = parse(args("twin-server serve --model m --addr nowhere")).err().unwrap().to_string();
        assert!(e.contains("--addr nowhere"), "{e}");
    }

    #[test]
    fn tile_options_and_export() {
        let Action::Build(o) = parse(args("twin-server build --out d")).unwrap().action else { panic!() };
        assert_eq!(o.tiles.unwrap().max_zoom, 16);
        let Action::Build(o) = parse(args("twin-server build --out d --max-zoom 18")).unwrap().action else { panic!() };
        assert_eq!(o.tiles.unwrap().max_zoom, 18);
        let Action::Build(o) = parse(args("twin-server build --out d --no-tiles")).unwrap().action else { panic!() };
        assert!(o.tiles.is_none());
        let e = parse(args("twin-server build --out d --max-zoom 19")).err().unwrap().to_string();
        assert!(e.contains("--max-zoom") && e.contains("19"), "{e}");
        let Action::Export(x) = parse(args("twin-server export --model m --mbtiles a.mbtiles")).unwrap().action else { panic!() };
        assert_eq!((x.mbtiles.as_deref(), x.pmtiles.as_deref()), (Some(std::path::Path::new("a.mbtiles")), None));
        assert!(parse(args("twin-server export --model m")).is_err());
    }

    #[test]
    fn terrain_options() {
        let Action::Build(o) = parse(args("twin-server build --out d")).unwrap().action else { panic!() };
        assert_eq!((o.dem, o.dem_ellipsoidal, o.ground_height), (None, false, None));
        let Action::Build(o) = parse(args("twin-server build --out d --dem t.tif --dem-ellipsoidal")).unwrap().action else { panic!() };
        assert_eq!((o.dem, o.dem_ellipsoidal), (Some(PathBuf::from("t.tif")), true));
        let Action::Build(o) = parse(args("twin-server build --out d --ground-height 48.5")).unwrap().action else { panic!() };
        assert_eq!(o.ground_height, Some(48.5));
        let e = parse(args("twin-server build --out d --ground-height 1e6")).err().unwrap().to_string();
        assert!(e.contains("--ground-height 1000000"), "{e}");
        let e = parse(args("twin-server build --out d --ground-height high")).err().unwrap().to_string();
        assert!(e.contains("--ground-height") && e.contains("high"), "{e}");
        // a DEM and a flat height contradict each other; --dem-ellipsoidal needs --dem
        assert!(parse(args("twin-server build --out d --dem t.tif --ground-height 5")).is_err());
        assert!(parse(args("twin-server build --out d --dem-ellipsoidal")).is_err());
    }
}
