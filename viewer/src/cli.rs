//! `viewer --server URL [--tileset NAME|URL|PATH] [--headless --screenshot out.png --size WxH]
//! [--at lon,lat,alt,heading,pitch] [--sse 16] [--mode leader|dispatcher|planner] [--lang zh|en]`

use crate::app::{self, Client, Headless, Mode, Options, TilesPlugin};
use crate::cockpit::{Cockpit, CockpitOptions, CockpitPlugin};
use crate::geodesy::GeoPose;
use crate::tileset::Tree;
use bevy::prelude::*;
use bevy::render::pipelined_rendering::PipelinedRenderingPlugin;
use bevy::render::renderer::RenderDevice;
use bevy::render::RenderPlugin;
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: viewer [--server URL] [--tileset NAME|URL|PATH] [--headless --screenshot OUT.png] [--size WxH]
              [--at lon,lat,alt,heading,pitch] [--sse 16] [--mode leader|dispatcher|planner] [--lang zh|en]
              [--timeout SECS] [--max-requests N] [--memory-mb MB] [--bench-frames N] [--token TOKEN | --user NAME --password-file F]
              [--no-live] [--no-panels] [--no-ground-map] [--hold SECS] [--wait-events N]
              [--select-event ID [--assign-unit ID]] [--click X,Y]… [--measure X1,Y1:X2,Y2]
              [--levels L2,L3,L4] [--input-script FILE] [--choropleth INDICATOR]
  --tileset  a tileset name on the server (default shenyang: SERVER/3dtiles/NAME/tileset.json), an
             http(s):// or file:// URL of a tileset.json, or a local tileset.json / directory
  --at       camera: degrees lon, lat, metres above the ellipsoid, heading (° clockwise from north),
             pitch (° above the horizon, −90 = straight down); default: the whole tileset from above
  --size     the window or image, default 3840x2160 (the cockpit's design size; panels scale
             with the height: 1920x1080 is the same layout at half size, 7680x2160 wider)
  --headless render off-screen, wait until the view's tiles are loaded (or --timeout, default 120 s),
             write the PNG, print a JSON summary line on stdout, exit
  --token    bearer token sent with every request and the stream (default: env CITYTWIN_TOKEN)
  --user / --password-file
             log in as a user (POST /api/auth/login; the file's first line is the password, - reads
             standard input; defaults: env CITYTWIN_USER, CITYTWIN_PASSWORD_FILE): the session key
             is the bearer token, renewed before it expires
  --no-live / --no-panels / --no-ground-map
             leave out the live overlays (stream, markers; implies no panels' live data), the
             bevy_ui panels, the vector-tile ground map (live is on for tilesets the server serves)
  --hold     headless: render at least SECS seconds before the screenshot (e.g. across a
             server restart); --wait-events N: until N open events are known
  --select-event / --assign-unit
             dispatcher flow: select event ID (fly to it, details, recommended units) and assign
             unit ID to it through POST /api/events/ID/assign (not in leader mode: read-only)
  --click    headless: pick at pixel X,Y once the view is complete (repeatable): an event
             marker selects the event (with --assign-unit: assigns that unit), a building
             shows its properties; the summary lists the picks
  --measure  headless: pick two pixels, report ground distance, height difference and the
             straight distance between the points
  --levels   the levels of detail shown (default L2,L3,L4; keys 2/3/4 toggle them in planner mode)
  --input-script
             headless: timed mouse/keyboard events (move X,Y | press/release left | down/up/key K |
             click X,Y; see viewer::script) delivered as Bevy input messages once the view is
             ready, so the windowed mouse and keyboard handling runs; the screenshot waits for it
  --choropleth  fill the districts with this district-grain indicator's band colours (default:
             the main indicator of the leader tour's current theme; key C cycles, windowed;
             none: no choropleth)";

#[derive(Debug, Clone)]
pub struct Args {
    pub server: String,
    pub tileset: String,
    pub headless: bool,
    pub screenshot: Option<PathBuf>,
    pub size: (u32, u32),
    pub at: Option<GeoPose>,
    pub sse: f64,
    pub mode: Mode,
    pub zh: bool,
    pub timeout_s: f64,
    pub max_requests: usize,
    pub memory_mb: usize,
    pub bench_frames: u32,
    pub token: Option<String>,
    /// `--user` and `--password-file`: log in instead of a fixed token
    pub user: Option<String>,
    pub password_file: Option<String>,
    pub live: bool,
    pub panels: bool,
    pub ground_map: bool,
    pub hold_s: f64,
    pub wait_events: usize,
    pub select_event: Option<i64>,
    pub assign_unit: Option<i64>,
    pub clicks: Vec<[f32; 2]>,
    pub measure: Option<[[f32; 2]; 2]>,
    /// levels of detail hidden (`--levels` names those shown)
    pub hidden_levels: Vec<u8>,
    pub input_script: Option<Vec<crate::script::Step>>,
    pub choropleth: Option<String>,
}

pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        server: "http://127.0.0.1:8080".into(),
        tileset: "shenyang".into(),
        headless: false,
        screenshot: None,
        // the cockpit's design size (the big screen); panels scale with the height
        size: (3840, 2160),
        at: None,
        sse: 16.0,
        mode: Mode::Planner,
        zh: true,
        timeout_s: 120.0,
        max_requests: 8,
        memory_mb: 1024,
        bench_frames: 0,
        token: std::env::var("CITYTWIN_TOKEN").ok().filter(|t| !t.is_empty()),
        user: std::env::var("CITYTWIN_USER").ok().filter(|t| !t.is_empty()),
        password_file: std::env::var("CITYTWIN_PASSWORD_FILE").ok().filter(|t| !t.is_empty()),
        live: true,
        panels: true,
        ground_map: true,
        hold_s: 0.0,
        wait_events: 0,
        select_event: None,
        assign_unit: None,
        clicks: vec![],
        measure: None,
        hidden_levels: vec![],
        input_script: None,
        choropleth: None,
    };
    let mut it = args.into_iter();
    let num = |s: Option<String>, what: &str| -> Result<f64, String> {
        let s = s.ok_or(format!("{what} needs a value"))?;
        s.trim().parse::<f64>().map_err(|_| format!("{what} {s}: not a number"))
    };
    while let Some(x) = it.next() {
        match x.as_str() {
            "--server" => a.server = it.next().ok_or("--server needs a URL")?.trim_end_matches('/').to_string(),
            "--tileset" => a.tileset = it.next().ok_or("--tileset needs a name, URL or path")?,
            "--headless" => a.headless = true,
            "--screenshot" => a.screenshot = Some(PathBuf::from(it.next().ok_or("--screenshot needs a file")?)),
            "--size" => {
                let s = it.next().ok_or("--size needs WxH")?;
                let (w, h) = s.split_once(['x', 'X']).ok_or(format!("--size {s}: expected WxH, e.g. 1920x1080"))?;
                let w: u32 = w.parse().map_err(|_| format!("--size {s}: bad width"))?;
                let h: u32 = h.parse().map_err(|_| format!("--size {s}: bad height"))?;
                if !(16..=16384).contains(&w) || !(16..=16384).contains(&h) {
                    return Err(format!("--size {s}: width and height must be 16…16384"));
                }
                a.size = (w, h);
            }
            "--at" => {
                let s = it.next().ok_or("--at needs lon,lat,alt,heading,pitch")?;
                let v: Vec<f64> = s.split(',').map(|p| p.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|_| format!("--at {s}: expected 5 numbers lon,lat,alt,heading,pitch"))?;
                if v.len() != 5 {
                    return Err(format!("--at {s}: expected 5 numbers lon,lat,alt,heading,pitch, got {}", v.len()));
                }
                if v[0].abs() > 180.0 || v[1].abs() > 90.0 || v[4].abs() > 90.0 {
                    return Err(format!("--at {s}: lon must be within ±180, lat and pitch within ±90"));
                }
                a.at = Some(GeoPose { lon: v[0], lat: v[1], alt: v[2], heading_deg: v[3], pitch_deg: v[4] });
            }
            "--sse" => {
                a.sse = num(it.next(), "--sse")?;
                if a.sse <= 0.0 {
                    return Err("--sse must be > 0".into());
                }
            }
            "--mode" => {
                a.mode = match it.next().as_deref() {
                    Some("leader") => Mode::Leader,
                    Some("dispatcher") => Mode::Dispatcher,
                    Some("planner") => Mode::Planner,
                    o => return Err(format!("--mode {}: expected leader, dispatcher or planner", o.unwrap_or(""))),
                }
            }
            "--lang" => {
                a.zh = match it.next().as_deref() {
                    Some("zh") => true,
                    Some("en") => false,
                    o => return Err(format!("--lang {}: expected zh or en", o.unwrap_or(""))),
                }
            }
            "--timeout" => a.timeout_s = num(it.next(), "--timeout")?,
            "--max-requests" => a.max_requests = num(it.next(), "--max-requests")?.max(1.0) as usize,
            "--memory-mb" => a.memory_mb = num(it.next(), "--memory-mb")?.max(1.0) as usize,
            "--bench-frames" => a.bench_frames = num(it.next(), "--bench-frames")?.max(0.0) as u32,
            "--token" => a.token = Some(it.next().ok_or("--token needs a value")?),
            "--user" => a.user = Some(it.next().ok_or("--user needs a name")?),
            "--password-file" => a.password_file = Some(it.next().ok_or("--password-file needs a file (- for standard input)")?),
            "--no-live" => a.live = false,
            "--no-panels" => a.panels = false,
            "--no-ground-map" => a.ground_map = false,
            "--hold" => a.hold_s = num(it.next(), "--hold")?.max(0.0),
            "--wait-events" => a.wait_events = num(it.next(), "--wait-events")?.max(0.0) as usize,
            "--select-event" => a.select_event = Some(num(it.next(), "--select-event")? as i64),
            "--assign-unit" => a.assign_unit = Some(num(it.next(), "--assign-unit")? as i64),
            "--click" => a.clicks.push(crate::interact::parse_pixel(&it.next().ok_or("--click needs X,Y")?, "--click")?),
            "--measure" => {
                let s = it.next().ok_or("--measure needs X1,Y1:X2,Y2")?;
                let (p, q) = s.split_once(':').ok_or(format!("--measure {s}: expected X1,Y1:X2,Y2"))?;
                a.measure = Some([crate::interact::parse_pixel(p, "--measure")?, crate::interact::parse_pixel(q, "--measure")?]);
            }
            "--levels" => a.hidden_levels = crate::interact::parse_levels(&it.next().ok_or("--levels needs e.g. L2,L3,L4")?)?,
            "--input-script" => {
                let p = it.next().ok_or("--input-script needs a file")?;
                let text = std::fs::read_to_string(&p).map_err(|e| format!("--input-script {p}: {e}"))?;
                a.input_script = Some(crate::script::parse(&text, &p)?);
            }
            "--choropleth" => a.choropleth = Some(it.next().ok_or("--choropleth needs an indicator id")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}' (try --help)")),
        }
    }
    if a.assign_unit.is_some() && a.select_event.is_none() && a.clicks.is_empty() {
        return Err("--assign-unit needs --select-event (or a --click on the event)".into());
    }
    if (!a.clicks.is_empty() || a.measure.is_some()) && !a.headless {
        return Err("--click and --measure are for --headless runs (click with the mouse otherwise)".into());
    }
    if a.input_script.is_some() && !a.headless {
        return Err("--input-script is for --headless runs (use the mouse and keyboard otherwise)".into());
    }
    if a.user.is_some() != a.password_file.is_some() {
        return Err("--user and --password-file go together (or CITYTWIN_USER and CITYTWIN_PASSWORD_FILE)".into());
    }
    if a.user.is_some() && a.token.is_some() {
        // an explicit login wins over a token from the environment, never over --token itself
        if std::env::var("CITYTWIN_TOKEN").ok().as_deref() == a.token.as_deref() {
            a.token = None;
        } else {
            return Err("--token and --user: give one of them".into());
        }
    }
    if a.screenshot.is_some() && !a.headless {
        return Err("--screenshot needs --headless".into());
    }
    Ok(a)
}

/// The tileset.json URL (or path) and a display name for `--tileset`.
pub fn tileset_location(server: &str, t: &str) -> (String, String) {
    let name_of = |p: &str| {
        let p = p.trim_end_matches('/');
        let p = p.strip_suffix("/tileset.json").unwrap_or(p);
        p.rsplit('/').next().unwrap_or(p).to_string()
    };
    if t.contains("://") {
        let url = if t.ends_with(".json") { t.to_string() } else { format!("{}/tileset.json", t.trim_end_matches('/')) };
        return (url, name_of(t));
    }
    let p = std::path::Path::new(t);
    if p.is_dir() {
        return (p.join("tileset.json").to_string_lossy().into_owned(), name_of(t));
    }
    if p.is_file() || t.ends_with(".json") {
        return (t.to_string(), name_of(t));
    }
    (format!("{server}/3dtiles/{t}/tileset.json"), t.to_string())
}

fn error_line(name: &str, url: &str, e: &str) {
    println!("{}", serde_json::json!({"tileset": name, "url": url, "error": e, "complete": false}));
}

pub fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("viewer: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(t) = &args.token {
        crate::fetch::set_token(t.clone());
    }
    let mut auth = serde_json::json!({"method": if args.token.is_some() { "token" } else { "anonymous" }});
    if let (Some(user), Some(pw)) = (&args.user, &args.password_file) {
        match crate::login::start(&args.server, user, pw) {
            Ok(s) => auth = serde_json::json!({"method": "login", "user": s.user, "role": s.role, "expires": s.expires}),
            Err(e) => {
                eprintln!("viewer: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let (url, name) = tileset_location(&args.server, &args.tileset);
    let t0 = Instant::now();
    let bytes = match crate::fetch::fetch(&crate::fetch::agent(), &url) {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("cannot load tileset '{name}': {e}");
            eprintln!("viewer: {msg}");
            error_line(&name, &url, &msg);
            return ExitCode::from(1);
        }
    };
    let tree = match Tree::load(&bytes, &url, &name) {
        Ok(t) => t,
        Err(e) => {
            // a bad tileset is reported, never a crash
            eprintln!("viewer: {e}");
            error_line(&name, &url, &e.0);
            return ExitCode::from(3);
        }
    };
    let opts = Options {
        tileset_url: url.clone(),
        tileset_name: name.clone(),
        headless: args.headless,
        screenshot: args.screenshot.clone(),
        size: args.size,
        at: args.at,
        max_sse: args.sse,
        mode: args.mode,
        zh: args.zh,
        timeout: Duration::from_secs_f64(args.timeout_s.max(1.0)),
        max_requests: args.max_requests,
        memory_budget_mb: args.memory_mb,
        loader_threads: args.max_requests.clamp(1, 16),
        bench_frames: args.bench_frames,
    };
    let log = bevy::log::LogPlugin {
        filter: "wgpu=error,naga=warn,bevy_render=warn,bevy_app=warn,offset_allocator=warn".into(),
        level: bevy::log::Level::INFO,
        ..default()
    };
    let mut app = App::new();
    if args.headless {
        app.add_plugins(
            DefaultPlugins
                .set(WindowPlugin { primary_window: None, exit_condition: ExitCondition::DontExit, ..default() })
                .set(RenderPlugin { synchronous_pipeline_compilation: true, ..default() })
                .set(log)
                .disable::<WinitPlugin>()
                .disable::<PipelinedRenderingPlugin>(),
        );
    } else {
        let title = if args.zh { "城市数字孪生 — 沈阳" } else { "City digital twin — Shenyang" };
        app.add_plugins(
            DefaultPlugins
                .set(WindowPlugin {
                    primary_window: Some(Window { title: title.into(), resolution: args.size.into(), ..default() }),
                    ..default()
                })
                .set(log),
        );
    }
    // live overlays, panels and the ground map need the server: on for its own tilesets
    let live = args.live && url.starts_with(&args.server) && args.server.starts_with("http");
    let cockpit_opts = CockpitOptions {
        live,
        panels: args.panels && live,
        ground_map: args.ground_map,
        server: args.server.clone(),
        tiles_name: name.clone(),
        hold: Duration::from_secs_f64(args.hold_s),
        wait_events: args.wait_events,
        select_event: args.select_event,
        assign_unit: args.assign_unit,
    };
    let rx = live.then(|| {
        crate::live::spawn(crate::live::LiveConfig {
            server: args.server.clone(),
            token: args.token.clone(),
            bbox: None,
            indicators_every: Duration::from_secs(5),
        })
    });
    // CityTwin tilesets name their contents by level (docs/MODEL.md): only those toggle
    let citytwin = serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|v| v["asset"]["generator"].as_str().map(|g| g.starts_with("CityTwin"))).unwrap_or(false);
    let mut client = Client::new(tree, opts);
    client.levels_by_name = citytwin;
    if citytwin {
        client.hidden_levels = args.hidden_levels.clone();
    } else if !args.hidden_levels.is_empty() {
        eprintln!("viewer: --levels ignored: '{name}' is not a CityTwin tileset (no levels of detail by content name)");
    }
    let interact = crate::interact::Interact::new(crate::interact::InteractOptions { clicks: args.clicks.clone(), measure: args.measure, citytwin });
    if let Some(steps) = args.input_script.clone() {
        app.insert_resource(crate::script::InputScript::new(steps));
    }
    app.insert_resource(client)
        .insert_resource(interact)
        .add_plugins(crate::interact::InteractPlugin)
        .add_plugins(crate::flight::FlightPlugin)
        .add_plugins(crate::script::ScriptPlugin)
        .insert_resource(Cockpit::new(cockpit_opts, rx))
        .add_plugins(TilesPlugin)
        .insert_resource(crate::choropleth::Choropleth::new(args.choropleth.clone()))
        .add_plugins(CockpitPlugin)
        .add_plugins(crate::charts::ChartsPlugin);
    if !args.headless {
        app.run();
        return ExitCode::SUCCESS;
    }
    app.finish();
    app.cleanup();
    loop {
        app.update();
        // wait for the GPU so each iteration is one complete frame (and readbacks land)
        if let Some(dev) = app.world().get_resource::<RenderDevice>() {
            let _ = dev.wgpu_device().poll(bevy::render::render_resource::PollType::Wait { submission_index: None, timeout: None });
        }
        if app.should_exit().is_some() {
            break;
        }
    }
    let client = app.world().resource::<Client>();
    let hl = app.world().resource::<Headless>();
    let mut s = app::summary(client, hl, t0.elapsed());
    if let (Some(cp), Some(o)) = (app.world().get_resource::<Cockpit>(), s.as_object_mut()) {
        if let serde_json::Value::Object(extra) = cp.summary() {
            o.extend(extra);
        }
        if let serde_json::Value::Object(extra) = crate::charts::summary(app.world()) {
            o.extend(extra);
        }
    }
    if let (Some(it), Some(o)) = (app.world().get_resource::<crate::interact::Interact>(), s.as_object_mut()) {
        if let serde_json::Value::Object(extra) = crate::interact::summary(it, client, app.world().get_resource::<Cockpit>()) {
            o.extend(extra);
        }
    }
    if let (Some(sc), Some(o)) = (app.world().get_resource::<crate::script::InputScript>(), s.as_object_mut()) {
        o.insert("input_script".into(), sc.summary());
    }
    if let (Some(fl), Some(o)) = (app.world().get_resource::<crate::flight::Flights>(), s.as_object_mut()) {
        if let serde_json::Value::Object(extra) = fl.summary() {
            o.extend(extra);
        }
    }
    if let Some(o) = s.as_object_mut() {
        o.insert("auth".into(), auth);
    }
    println!("{s}");
    if let Some(e) = &hl.shot_error {
        eprintln!("viewer: screenshot failed: {e}");
        return ExitCode::from(1);
    }
    if hl.timed_out {
        eprintln!(
            "viewer: view incomplete after {:.0} s: rendered what was loaded ({} of the tiles in view; {} failed)",
            args.timeout_s, client.stats.tiles_loaded, client.stats.tiles_failed
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Args, String> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn parses_the_documented_flags() {
        let a = p("--server http://x:1/ --headless --screenshot o.png --size 800x600 --at 123.43,41.80,600,30,-45 --sse 8 --mode leader --lang en").unwrap();
        assert_eq!(a.server, "http://x:1");
        assert_eq!(a.size, (800, 600));
        assert_eq!(a.at.unwrap().heading_deg, 30.0);
        assert_eq!(a.at.unwrap().pitch_deg, -45.0);
        assert_eq!((a.sse, a.mode, a.zh), (8.0, Mode::Leader, false));
        assert!(p("--size 800").unwrap_err().contains("WxH"));
        assert!(p("--at 1,2,3").unwrap_err().contains("5 numbers"));
        assert!(p("--at 1,95,3,0,0").unwrap_err().contains("±90"));
        assert!(p("--mode boss").unwrap_err().contains("leader"));
        assert!(p("--screenshot a.png").unwrap_err().contains("--headless"));
        assert!(p("--frobnicate").unwrap_err().contains("frobnicate"));
        let a = p("--token abc --no-live --no-panels --hold 2.5 --wait-events 3 --select-event 7 --assign-unit 2").unwrap();
        assert_eq!((a.token.as_deref(), a.live, a.panels, a.hold_s, a.wait_events, a.select_event, a.assign_unit), (Some("abc"), false, false, 2.5, 3, Some(7), Some(2)));
        assert!(p("--assign-unit 2").unwrap_err().contains("--select-event"));
        let a = p("--headless --click 10,20 --click 30.5,40 --assign-unit 3 --measure 1,2:3,4 --levels L3,L4").unwrap();
        assert_eq!((a.clicks, a.measure, a.hidden_levels, a.assign_unit), (vec![[10.0, 20.0], [30.5, 40.0]], Some([[1.0, 2.0], [3.0, 4.0]]), vec![2], Some(3)));
        assert!(p("--click 10,20").unwrap_err().contains("--headless"));
        assert!(p("--headless --measure 1,2").unwrap_err().contains("X1,Y1:X2,Y2"));
        assert!(p("--levels L9").unwrap_err().contains("L9"));
        assert_eq!(p("--choropleth aqi_1h").unwrap().choropleth.as_deref(), Some("aqi_1h"));
        assert_eq!(p("").unwrap().choropleth, None);
        assert!(p("--choropleth").unwrap_err().contains("indicator"));
    }

    #[test]
    fn tileset_names_urls_and_paths() {
        assert_eq!(tileset_location("http://s:8", "shenyang"), ("http://s:8/3dtiles/shenyang/tileset.json".into(), "shenyang".into()));
        assert_eq!(tileset_location("http://s:8", "http://o/t/3dbag/"), ("http://o/t/3dbag/tileset.json".into(), "3dbag".into()));
        assert_eq!(tileset_location("http://s:8", "file:///d/lyon/tileset.json").1, "lyon");
        let dir = std::env::temp_dir();
        let (u, _) = tileset_location("http://s:8", dir.to_str().unwrap());
        assert!(u.ends_with("tileset.json") && !u.contains("3dtiles"));
    }
}
