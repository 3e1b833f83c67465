//! `twin-server`: builds the city model and serves it.

mod auth;
mod cli;
mod glyphs;
mod live;
mod server;
mod state;
mod styles;
mod threed_http;
mod tiles_http;

use anyhow::Result;

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_target(false).init();
    }
}

fn main() {
    let cmd = match cli::parse(std::env::args_os().collect()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    init_logging(&cmd.log_format);
    if let Err(e) = run(cmd) {
        tracing::error!("{e:#}");
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cmd: cli::Command) -> Result<()> {
    match cmd.action {
        cli::Action::Build(opts) => {
            let m = scenes::build::build(&opts)?;
            println!(
                "built model '{}' in {}: {} buildings, {} roads, {} water, {} landuse, {} districts, {} POIs, {} CIM models; built-up area {:.1} km²; {} repaired, {} dropped{} ({:.1} s)",
                m.name,
                opts.out.display(),
                m.layers.buildings,
                m.layers.roads,
                m.layers.water,
                m.layers.landuse,
                m.layers.districts,
                m.layers.pois,
                m.layers.cim_models,
                m.built_up_area_km2,
                m.repaired_total,
                m.dropped_total,
                m.tiles3d
                    .as_ref()
                    .map(|t| format!("; 3D Tiles: {} tiles, {} buildings, {:.1} MB", t.tiles, t.buildings, t.bytes as f64 / 1e6))
                    .unwrap_or_default(),
                m.build_duration_s
            );
            Ok(())
        }
        cli::Action::Export(opts) => export(&opts),
        cli::Action::Token(t) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(token(t))
        }
        cli::Action::User(u) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(user(u))
        }
        cli::Action::Serve(opts) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(server::serve(opts))
        }
    }
}

/// `twin-server user create …`: the password from a file (or stdin), argon2id-hashed into the
/// live store; audited (actor `cli:$USER`).
async fn user(u: cli::UserCommand) -> Result<()> {
    use anyhow::Context;
    let cli::UserCommand::Create { db: url, name, role, password_file } = u;
    let text = if password_file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else {
        std::fs::read_to_string(&password_file).with_context(|| format!("--password-file {}", password_file.display()))?
    };
    let password = text.lines().next().unwrap_or("").to_string();
    auth::users::check_password(&password).map_err(|e| anyhow::anyhow!("--password-file {}: {e}", password_file.display()))?;
    let u2 = url.clone();
    let db = tokio::task::spawn_blocking(move || live::db::Db::open(&u2, Default::default())).await?.with_context(|| format!("live store {}", url.display()))?;
    let r = async {
        auth::store::migrate(&db).await.context("live store: auth schema")?;
        let row = auth::users::create(&db, &name, role, &password, "cli").await.map_err(anyhow::Error::msg)?;
        let audit = auth::store::AuditRow {
            actor: std::env::var("USER").map(|u| format!("cli:{u}")).unwrap_or_else(|_| "cli".into()),
            role: "admin".into(),
            ip: "local".into(),
            method: "CLI".into(),
            path: "user create".into(),
            route: "user create".into(),
            target: Some(row.id.to_string()),
            status: 200,
            detail: Some(format!("user '{}' role {}", row.name, row.role)),
            ..Default::default()
        };
        auth::store::append(&db, audit).await?;
        eprintln!("created user {} '{}' (role {})", row.id, row.name, row.role);
        anyhow::Ok(())
    }
    .await;
    tokio::task::spawn_blocking(move || drop(db)).await?;
    r
}

/// `twin-server token …`: the key goes to stdout (alone on its line, for scripts); the rest to
/// stderr. Every change is also written to the audit log (actor `cli`).
async fn token(t: cli::TokenCommand) -> Result<()> {
    use anyhow::Context;
    use cli::TokenCommand as T;
    let url = match &t {
        T::Create { db, .. } | T::List { db } | T::Revoke { db, .. } => db.clone(),
    };
    let u = url.clone();
    let db = tokio::task::spawn_blocking(move || live::db::Db::open(&u, Default::default())).await?.with_context(|| format!("live store {}", url.display()))?;
    let r = token_with(&db, t).await;
    // The PostgreSQL client owns a runtime of its own: drop it off this runtime's threads.
    tokio::task::spawn_blocking(move || drop(db)).await?;
    r
}

async fn token_with(db: &live::db::Db, t: cli::TokenCommand) -> Result<()> {
    use anyhow::Context;
    use cli::TokenCommand as T;
    let db = db.clone();
    auth::store::migrate(&db).await.context("live store: auth schema")?;
    let audit = |what: &str, target: String| auth::store::AuditRow {
        actor: std::env::var("USER").map(|u| format!("cli:{u}")).unwrap_or_else(|_| "cli".into()),
        role: "admin".into(),
        ip: "local".into(),
        method: "CLI".into(),
        path: format!("token {what}"),
        route: format!("token {what}"),
        target: Some(target),
        status: 200,
        ..Default::default()
    };
    let now = live::now_ms();
    match t {
        T::Create { name, role, expires_days, .. } => {
            let expires = expires_days.map(|d| now + (d * 86_400_000.0) as i64);
            let (row, key) = auth::store::create(&db, &name, role, expires, "cli").await.map_err(anyhow::Error::msg)?;
            auth::store::append(&db, audit("create", row.id.to_string())).await?;
            eprintln!("created token {} '{}' (role {}{}); the key is shown only now:", row.id, row.name, row.role, row.expires_ms.map(|e| format!(", expires {}", auth::store::ms_rfc3339(e))).unwrap_or_default());
            println!("{key}");
        }
        T::List { .. } => {
            println!("{:>4}  {:<24} {:<10} {:<8} {:<14} {:<25} {}", "id", "name", "role", "state", "prefix", "created", "expires");
            for r in auth::store::list(&db).await? {
                let j = r.json(now);
                println!(
                    "{:>4}  {:<24} {:<10} {:<8} {:<14} {:<25} {}",
                    r.id,
                    r.name,
                    r.role,
                    j["state"].as_str().unwrap_or(""),
                    r.prefix,
                    auth::store::ms_rfc3339(r.created_ms),
                    r.expires_ms.map(auth::store::ms_rfc3339).unwrap_or_else(|| "never".into())
                );
            }
        }
        T::Revoke { id, name, .. } => {
            let which = id.map(|i| format!("id {i}")).or(name.clone().map(|n| format!("name '{n}'"))).unwrap_or_default();
            match auth::store::revoke(&db, id, name).await? {
                Some(r) => {
                    auth::store::append(&db, audit("revoke", r.id.to_string())).await?;
                    println!("revoked token {} '{}' (role {})", r.id, r.name, r.role);
                }
                None => anyhow::bail!("no token with {which}"),
            }
        }
    }
    Ok(())
}

/// The model's archive: `files.vector_tiles` of its manifest.
fn export(opts: &cli::ExportOptions) -> Result<()> {
    use anyhow::Context;
    if let Some(out) = &opts.geojson {
        export_buildings_geojson(&opts.model, out)?;
        if opts.mbtiles.is_none() && opts.pmtiles.is_none() {
            return Ok(());
        }
    }
    let manifest_path = opts.model.join(scenes::store::MANIFEST_FILE);
    let manifest: scenes::build::Manifest = serde_json::from_slice(
        &std::fs::read(&manifest_path).with_context(|| format!("cannot read {}", manifest_path.display()))?,
    )
    .with_context(|| format!("{} is not a model manifest", manifest_path.display()))?;
    let rel = manifest.files.get("vector_tiles").with_context(|| {
        format!("{} has no vector tiles (built with --no-tiles?); rebuild it without --no-tiles", opts.model.display())
    })?;
    let src = opts.model.join(rel);
    let reader = tiles::pmtiles::Reader::open(&src)?;
    if let Some(out) = &opts.pmtiles {
        std::fs::copy(&src, out).with_context(|| format!("cannot copy {} to {}", src.display(), out.display()))?;
        println!("wrote {} ({} tiles)", out.display(), reader.tile_count());
    }
    if let Some(out) = &opts.mbtiles {
        let n = tiles::mbtiles::write_from_pmtiles(&reader, out).map_err(anyhow::Error::msg)?;
        println!("wrote {} ({n} tiles)", out.display());
    }
    Ok(())
}

/// One GeoJSON Feature per line: footprint and `id, height, min_height, use, name`.
fn export_buildings_geojson(model_dir: &std::path::Path, out: &std::path::Path) -> Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let model = scenes::store::read_model(model_dir)?;
    let f = std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = std::io::BufWriter::new(f);
    for b in &model.buildings {
        let polys: Vec<serde_json::Value> = b
            .footprint
            .0
            .iter()
            .map(|p| {
                std::iter::once(p.exterior())
                    .chain(p.interiors())
                    .map(|r| r.0.iter().map(|c| [c.x, c.y]).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
                    .into()
            })
            .collect();
        let mut props = serde_json::json!({"id": b.id, "height": b.height, "min_height": b.min_height, "use": b.use_.as_str()});
        if let Some(n) = b.names.display() {
            props["name"] = n.into();
        }
        // "type" first: GDAL recognises line-delimited GeoJSON (GeoJSONSeq) by it.
        write!(w, "{{\"type\":\"Feature\",\"id\":{},\"properties\":{},\"geometry\":", b.id, props)?;
        serde_json::to_writer(&mut w, &serde_json::json!({"type": "MultiPolygon", "coordinates": polys}))?;
        w.write_all(b"}")?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    println!("wrote {} ({} buildings)", out.display(), model.buildings.len());
    Ok(())
}
