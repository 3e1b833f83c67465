//! CityTwin viewer — minimal for now: connects to a twin-server and prints the model summary the
//! cockpit will show (zh-CN by default, `--lang en` for English). The Bevy/wgpu 3D cockpit
//! replaces this with its own issue; it talks to the server only over the public HTTP API.

use std::process::ExitCode;

struct Args {
    server: String,
    lang: String,
}

fn parse_args() -> Result<Args, String> {
    let mut server = "http://127.0.0.1:8080".to_string();
    let mut lang = "zh".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--server" => server = it.next().ok_or("--server needs a URL")?,
            "--lang" => lang = it.next().ok_or("--lang needs zh or en")?,
            "-h" | "--help" => {
                println!("usage: viewer [--server URL] [--lang zh|en]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}' (try --help)")),
        }
    }
    if lang != "zh" && lang != "en" {
        return Err(format!("--lang {lang}: expected zh or en"));
    }
    Ok(Args { server: server.trim_end_matches('/').to_string(), lang })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("viewer: {e}");
            return ExitCode::from(2);
        }
    };
    let url = format!("{}/api/model", args.server);
    let m: serde_json::Value = match ureq::get(&url).call().and_then(|mut r| r.body_mut().read_json()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("viewer: cannot reach the twin-server at {url}: {e}");
            return ExitCode::from(1);
        }
    };
    let zh = args.lang == "zh";
    let l = &m["layers"];
    let label = |zh_s: &str, en_s: &str| if zh { zh_s.to_string() } else { en_s.to_string() };
    println!("{} — {}", label("城市数字孪生", "City digital twin"), m["name"].as_str().unwrap_or("?"));
    println!("  {}: {}", label("说明", "About"), m["label"].as_str().unwrap_or(""));
    println!(
        "  {}: {:.1} km²   {}: {}   {}: {}   {}: {}   {}: {}",
        label("建成区面积", "Built-up area"),
        m["built_up_area_km2"].as_f64().unwrap_or(0.0),
        label("建筑", "Buildings"),
        l["buildings"],
        label("道路", "Roads"),
        l["roads"],
        label("行政区", "Districts"),
        l["districts"],
        label("兴趣点", "POIs"),
        l["pois"]
    );
    if let Some(b) = m["bbox"].as_array() {
        let c = (
            (b[0].as_f64().unwrap_or(0.0) + b[2].as_f64().unwrap_or(0.0)) / 2.0,
            (b[1].as_f64().unwrap_or(0.0) + b[3].as_f64().unwrap_or(0.0)) / 2.0,
        );
        let t = tiles::TileId::containing(c.0, c.1, 14);
        println!("  {}: {:.4}, {:.4} (z14 {}/{}/{})", label("中心", "Centre"), c.0, c.1, t.z, t.x, t.y);
    }
    ExitCode::SUCCESS
}
