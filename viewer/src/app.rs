//! The Bevy side of the 3D Tiles client: one plugin shared by the windowed and the headless
//! (off-screen) runs. Each frame it polls finished loads (turning decoded meshes into GPU
//! assets), runs the pure selection (`select`) from the camera, shows/hides tile entities,
//! draws placeholders (box outlines) for tiles that are missing or failed, submits the next
//! requests (bounded, highest priority first, failed ones after a backoff) and evicts
//! least-recently-used tiles over the memory budget.

use crate::decode::{Decoded, MaterialDesc};
use crate::fetch::{backoff, Done, Job, Loader, Payload};
use crate::geodesy::GeoPose;
use crate::lru::Lru;
use crate::select::{self, State};
use crate::tileset::{ContentKind, Tree};
use bevy::asset::RenderAssetUsages;
use bevy::camera::RenderTarget;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::light::GlobalAmbientLight;
use bevy::math::{DVec3, Vec3};
use bevy::mesh::{Indices, PrimitiveTopology};
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat, TextureUsages};
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Sky (clear colour) and ground, sRGB 8-bit: what the tests compare pixels with.
pub const SKY_SRGB: [u8; 3] = [150, 190, 230];
pub const GROUND_SRGB: [u8; 3] = [96, 104, 88];
pub const PLACEHOLDER_SRGB: [u8; 3] = [255, 140, 0];
pub const FOV_Y_DEG: f64 = 60.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Leader,
    Dispatcher,
    Planner,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub tileset_url: String,
    pub tileset_name: String,
    pub headless: bool,
    pub screenshot: Option<PathBuf>,
    pub size: (u32, u32),
    pub at: Option<GeoPose>,
    pub max_sse: f64,
    pub mode: Mode,
    pub zh: bool,
    pub timeout: Duration,
    pub max_requests: usize,
    pub memory_budget_mb: usize,
    pub loader_threads: usize,
    pub bench_frames: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    Unloaded,
    InFlight,
    Ready,
    Retry { failures: u32, at: Instant },
    Failed,
}

#[derive(Default, Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub tiles_requested: u64,
    pub tiles_loaded: u64,
    pub tiles_failed: u64,
    pub retries: u64,
    pub evicted: u64,
    pub triangles_in_view: u64,
    pub tiles_in_view: usize,
    pub placeholders: usize,
    pub fetch_ms_total: f64,
    pub decode_ms_total: f64,
}

#[derive(Resource)]
pub struct Client {
    pub tree: Tree,
    pub opts: Options,
    status: Vec<Status>,
    entities: HashMap<usize, Entity>,
    triangles: HashMap<usize, u64>,
    placeholders: HashMap<usize, Entity>,
    /// the tiles drawn this frame
    pub shown: HashSet<usize>,
    /// CPU copies for picking, per loaded tile ([`crate::features`])
    pub picks: HashMap<usize, crate::features::TilePick>,
    /// levels of detail whose content is hidden (planner; [`crate::interact::apply_levels`])
    pub hidden_levels: Vec<u8>,
    /// the tileset names its contents by level (a CityTwin one): levels can be told and toggled
    pub levels_by_name: bool,
    loader: Loader,
    lru: Lru,
    in_flight: usize,
    frame: u64,
    pub stats: Stats,
    pub errors: Vec<String>,
    first_request: Option<Instant>,
    pub complete_after: Option<Duration>,
    pub complete: bool,
    materials: HashMap<[u32; 6], Handle<StandardMaterial>>,
    placeholder_material: Option<Handle<StandardMaterial>>,
    started: Instant,
}

impl Client {
    pub fn new(tree: Tree, opts: Options) -> Client {
        let n = tree.nodes.len();
        Client {
            status: vec![Status::Unloaded; n],
            loader: Loader::new(opts.loader_threads),
            lru: Lru::new(opts.memory_budget_mb << 20),
            tree,
            opts,
            entities: HashMap::new(),
            triangles: HashMap::new(),
            placeholders: HashMap::new(),
            shown: HashSet::new(),
            picks: HashMap::new(),
            hidden_levels: vec![],
            levels_by_name: false,
            in_flight: 0,
            frame: 0,
            stats: Stats::default(),
            errors: vec![],
            first_request: None,
            complete_after: None,
            complete: false,
            materials: HashMap::new(),
            placeholder_material: None,
            started: Instant::now(),
        }
    }

    fn state(&self, i: usize) -> State {
        match self.status.get(i).copied().unwrap_or(Status::Unloaded) {
            Status::Unloaded => State::Unloaded,
            Status::InFlight | Status::Retry { .. } => State::Pending,
            Status::Ready => State::Ready,
            Status::Failed => State::Failed,
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.lru.used_bytes()
    }
}

/// The tiles' camera marker.
#[derive(Component)]
pub struct ViewCamera;

#[derive(Component)]
struct TileRoot;

/// Headless progress: frames after the view completed, screenshot state, frame times.
#[derive(Resource, Default)]
pub struct Headless {
    settled_frames: u32,
    pub shot_requested: bool,
    pub shot_done: bool,
    pub shot_error: Option<String>,
    pub timed_out: bool,
    pub bench: Vec<f64>,
    last_frame: Option<Instant>,
    target: Option<RenderTarget>,
    /// the cockpit's live state is ready for the screenshot (see `cockpit::gate_headless`)
    pub live_ready: bool,
}

pub struct TilesPlugin;

impl Plugin for TilesPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Headless>()
            .add_systems(Startup, setup_scene)
            .add_systems(Update, (poll_loads, update_view, fly_controls).chain());
    }
}

fn srgb(c: [u8; 3]) -> Color {
    Color::srgb_u8(c[0], c[1], c[2])
}

/// The camera pose of `--at`, or a view of the whole tileset from the south.
pub fn initial_pose(tree: &Tree, at: Option<GeoPose>) -> GeoPose {
    if let Some(p) = at {
        return p;
    }
    let (w, s, e, n) = tree.extent;
    let half_m = ((n - s) * 111_000.0).max((e - w) * 111_000.0 * ((s + n) / 2.0).to_radians().cos()) / 2.0;
    let alt = tree.ground_height + half_m.max(50.0) / (FOV_Y_DEG / 2.0).to_radians().tan() * 1.2;
    GeoPose { lon: (w + e) / 2.0, lat: (s + n) / 2.0, alt, heading_deg: 0.0, pitch_deg: -90.0 }
}

pub fn setup_scene(
    mut commands: Commands,
    mut client: ResMut<Client>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut images: ResMut<Assets<Image>>,
    mut hl: ResMut<Headless>,
) {
    let pose = initial_pose(&client.tree, client.opts.at);
    let (pos, fwd, up) = pose.to_world(&client.tree.frame);
    let tf = Transform::from_translation(pos.as_vec3()).looking_to(fwd.as_vec3(), up.as_vec3());
    let (w, h) = client.opts.size;
    let mut cam = commands.spawn((
        Camera3d::default(),
        Camera { clear_color: ClearColorConfig::Custom(srgb(SKY_SRGB)), ..default() },
        Projection::Perspective(PerspectiveProjection {
            fov: (FOV_Y_DEG as f32).to_radians(),
            near: 1.0,
            // culling only (Bevy projects with an infinite reverse-z): beyond any tileset
            far: 2.0e7,
            aspect_ratio: w as f32 / h as f32,
            ..default()
        }),
        Tonemapping::None,
        tf,
        ViewCamera,
    ));
    if client.opts.headless {
        let mut target = Image::new_uninit(
            Extent3d { width: w, height: h, depth_or_array_layers: 1 },
            TextureDimension::D2,
            TextureFormat::Rgba8UnormSrgb,
            RenderAssetUsages::RENDER_WORLD,
        );
        target.texture_descriptor.usage |= TextureUsages::RENDER_ATTACHMENT | TextureUsages::COPY_SRC;
        let handle = images.add(target);
        hl.target = Some(RenderTarget::Image(handle.clone().into()));
        cam.insert((RenderTarget::Image(handle.into()), Msaa::Off));
    }
    // the sun from the south-east, 50° up; soft ambient so shaded walls stay readable
    let (e, n, u) = client.tree.frame.enu_at(pose.lon, pose.lat);
    let sun_dir = -(e * 0.45 - n * 0.55 + u * 0.77).normalize();
    commands.spawn((
        DirectionalLight { illuminance: 9_000.0, shadow_maps_enabled: false, ..default() },
        Transform::default().looking_to(sun_dir.as_vec3(), up.as_vec3()),
    ));
    commands.insert_resource(GlobalAmbientLight { color: Color::WHITE, brightness: 900.0, affects_lightmapped_meshes: true });
    // the ground: the ellipsoid at the tileset's lowest height, a curved grid over its extent
    // (+ 20 % margin), unlit so its colour is exact
    let (west, south, east, north) = client.tree.extent;
    let (mx, my) = ((east - west) * 0.2 + 0.01, (north - south) * 0.2 + 0.01);
    let g = 48;
    let mut pos = Vec::with_capacity((g + 1) * (g + 1));
    for j in 0..=g {
        for i in 0..=g {
            let lon = west - mx + (east - west + 2.0 * mx) * i as f64 / g as f64;
            let lat = south - my + (north - south + 2.0 * my) * j as f64 / g as f64;
            pos.push(client.tree.frame.world_of_geodetic(lon, lat, client.tree.ground_height - 0.3).as_vec3().to_array());
        }
    }
    let mut idx = Vec::new();
    for j in 0..g as u32 {
        for i in 0..g as u32 {
            let a = j * (g as u32 + 1) + i;
            let (b, c, d) = (a + 1, a + g as u32 + 1, a + g as u32 + 2);
            // counter-clockwise seen from above (x east, −z north)
            idx.extend_from_slice(&[a, b, d, a, d, c]);
        }
    }
    let nrm = vec![[0.0f32, 1.0, 0.0]; pos.len()];
    let ground = Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::RENDER_WORLD)
        .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, pos)
        .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, nrm)
        .with_inserted_indices(Indices::U32(idx));
    commands.spawn((
        Mesh3d(meshes.add(ground)),
        MeshMaterial3d(materials.add(StandardMaterial { base_color: srgb(GROUND_SRGB), unlit: true, cull_mode: None, ..default() })),
        Transform::IDENTITY,
    ));
    client.placeholder_material = Some(materials.add(StandardMaterial { base_color: srgb(PLACEHOLDER_SRGB), unlit: true, ..default() }));
    info!(
        "tileset '{}' ({} tiles known) in a frame at ({:.5}, {:.5}, {:.1} m); camera at {:.5}, {:.5}, {:.0} m, heading {:.0}°, pitch {:.0}°; max SSE {}",
        client.tree.name,
        client.tree.nodes.len(),
        client.tree.frame.origin.0,
        client.tree.frame.origin.1,
        client.tree.frame.origin.2,
        pose.lon,
        pose.lat,
        pose.alt,
        pose.heading_deg,
        pose.pitch_deg,
        client.opts.max_sse
    );
}

fn material_for(
    client: &mut Client,
    d: &MaterialDesc,
    textures: &[Handle<Image>],
    materials: &mut Assets<StandardMaterial>,
) -> Handle<StandardMaterial> {
    let make = |tex: Option<Handle<Image>>| StandardMaterial {
        base_color: Color::linear_rgba(d.base_color[0], d.base_color[1], d.base_color[2], d.base_color[3]),
        base_color_texture: tex,
        perceptual_roughness: d.roughness.clamp(0.05, 1.0),
        metallic: 0.0,
        double_sided: d.double_sided,
        cull_mode: if d.double_sided { None } else { Some(bevy::render::render_resource::Face::Back) },
        alpha_mode: if d.blend { AlphaMode::Blend } else { AlphaMode::Opaque },
        unlit: d.unlit,
        ..default()
    };
    if let Some(t) = d.texture.and_then(|t| textures.get(t)) {
        return materials.add(make(Some(t.clone())));
    }
    let key = [
        d.base_color[0].to_bits(),
        d.base_color[1].to_bits(),
        d.base_color[2].to_bits(),
        d.base_color[3].to_bits(),
        d.roughness.to_bits(),
        (d.double_sided as u32) | (d.blend as u32) << 1 | (d.unlit as u32) << 2,
    ];
    if let Some(h) = client.materials.get(&key) {
        return h.clone();
    }
    let h = materials.add(make(None));
    client.materials.insert(key, h.clone());
    h
}

fn spawn_tile(
    commands: &mut Commands,
    client: &mut Client,
    node: usize,
    d: Decoded,
    meshes: &mut Assets<Mesh>,
    materials: &mut Assets<StandardMaterial>,
    images: &mut Assets<Image>,
) -> Entity {
    let root = commands.spawn((Transform::IDENTITY, Visibility::Hidden, TileRoot)).id();
    let textures: Vec<Handle<Image>> = d.textures.into_iter().map(|i| images.add(i)).collect();
    for p in d.primitives {
        let mat = material_for(client, &p.material, &textures, materials);
        let mesh = meshes.add(p.mesh);
        if p.instances.is_empty() {
            commands.spawn((Mesh3d(mesh), MeshMaterial3d(mat), Transform::IDENTITY, ChildOf(root)));
        } else {
            for m in p.instances {
                commands.spawn((Mesh3d(mesh.clone()), MeshMaterial3d(mat.clone()), Transform::from_matrix(m), ChildOf(root)));
            }
        }
    }
    client.picks.insert(node, d.pick);
    client.triangles.insert(node, d.triangles as u64);
    client.lru.insert(node, d.bytes.max(1), client.frame);
    root
}

/// The 12 edges of a node's bounding box as a line mesh.
fn outline_mesh(client: &Client, node: usize) -> Mesh {
    let c = client.tree.nodes[node].volume.corners();
    let mut pos = Vec::with_capacity(24);
    for (a, b) in [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)] {
        pos.push(c[a].as_vec3().to_array());
        pos.push(c[b].as_vec3().to_array());
    }
    Mesh::new(PrimitiveTopology::LineList, RenderAssetUsages::RENDER_WORLD).with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, pos)
}

fn poll_loads(
    mut commands: Commands,
    mut client: ResMut<Client>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut images: ResMut<Assets<Image>>,
) {
    // a bounded number per frame keeps GPU uploads from stalling a frame
    let done: Vec<Done> = client.loader.poll(if client.opts.headless { 64 } else { 8 });
    for d in done {
        client.in_flight = client.in_flight.saturating_sub(1);
        client.stats.fetch_ms_total += d.fetch_ms;
        client.stats.decode_ms_total += d.decode_ms;
        let node = d.node;
        match d.result {
            Ok(Payload::Content(dec)) => {
                let e = spawn_tile(&mut commands, &mut client, node, dec, &mut meshes, &mut materials, &mut images);
                client.entities.insert(node, e);
                client.status[node] = Status::Ready;
                client.stats.tiles_loaded += 1;
            }
            Ok(Payload::Tileset(bytes)) => match client.tree.graft(node, &bytes, &d.url) {
                Ok(()) => {
                    let n = client.tree.nodes.len();
                    client.status.resize(n, Status::Unloaded);
                    client.status[node] = Status::Ready;
                    client.stats.tiles_loaded += 1;
                }
                Err(e) => fail(&mut client, node, e),
            },
            Err(e) => fail(&mut client, node, e),
        }
    }
}

fn fail(client: &mut Client, node: usize, e: String) {
    let failures = match client.status[node] {
        Status::Retry { failures, .. } => failures + 1,
        _ => 1,
    };
    // a content error (bad GLB) will not fix itself; network/HTTP errors are retried
    let permanent = !(e.contains("GET ") || e.contains("No such file")) || failures >= 4;
    if permanent {
        warn!("tile {node} failed for good after {failures} attempt(s): {e}");
        client.status[node] = Status::Failed;
        client.stats.tiles_failed += 1;
        if client.errors.len() < 20 {
            client.errors.push(e);
        }
    } else {
        let wait = backoff(failures);
        warn!("tile {node} failed ({e}); retry {failures} in {:.1} s", wait.as_secs_f64());
        client.status[node] = Status::Retry { failures, at: Instant::now() + wait };
        client.stats.retries += 1;
    }
}

#[allow(clippy::too_many_arguments)]
fn update_view(
    mut commands: Commands,
    mut client: ResMut<Client>,
    cams: Query<(&GlobalTransform, &Projection, &Camera), With<ViewCamera>>,
    mut vis: Query<&mut Visibility, With<TileRoot>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut headless: ResMut<Headless>,
    mut exit: MessageWriter<AppExit>,
) {
    let Ok((gt, proj, camera)) = cams.single() else { return };
    client.frame += 1;
    let frame = client.frame;
    let (w, h) = match camera.physical_viewport_size() {
        Some(s) if s.x > 0 && s.y > 0 => (s.x as f64, s.y as f64),
        _ => (client.opts.size.0 as f64, client.opts.size.1 as f64),
    };
    let (fov, near, far) = match proj {
        Projection::Perspective(p) => (p.fov as f64, p.near as f64, p.far as f64),
        _ => ((FOV_Y_DEG).to_radians(), 1.0, 2e7),
    };
    let t = gt.compute_transform();
    let cam = select::Camera {
        pos: t.translation.as_dvec3(),
        forward: (t.rotation * Vec3::NEG_Z).as_dvec3(),
        up: (t.rotation * Vec3::Y).as_dvec3(),
        fov_y: fov,
        width_px: w,
        height_px: h,
        near,
        far,
    };
    let sel = {
        let c = &*client;
        let sel = select::select(&c.tree, &cam, c.opts.max_sse, &|i| c.state(i));
        crate::interact::apply_levels(&c.tree, &cam, sel, &c.hidden_levels, &|i| c.state(i))
    };
    // show / hide
    let render: HashSet<usize> = sel.render.iter().copied().collect();
    for &i in client.shown.difference(&render) {
        if let Some(e) = client.entities.get(&i) {
            if let Ok(mut v) = vis.get_mut(*e) {
                *v = Visibility::Hidden;
            }
        }
    }
    let mut tris = 0;
    for &i in &render {
        if let Some(e) = client.entities.get(&i) {
            if let Ok(mut v) = vis.get_mut(*e) {
                *v = Visibility::Inherited;
            }
        }
        tris += client.triangles.get(&i).copied().unwrap_or(0);
    }
    for &i in &render {
        client.lru.touch(i, frame);
    }
    client.stats.triangles_in_view = tris;
    client.stats.tiles_in_view = render.len();
    client.shown = render;
    // placeholders: box outlines for needed tiles not drawn
    let want_ph: HashSet<usize> = sel.placeholders.iter().copied().collect();
    let stale: Vec<usize> = client.placeholders.keys().filter(|k| !want_ph.contains(k)).copied().collect();
    for k in stale {
        if let Some(e) = client.placeholders.remove(&k) {
            commands.entity(e).despawn();
        }
    }
    for &k in &want_ph {
        if !client.placeholders.contains_key(&k) {
            let m = meshes.add(outline_mesh(&client, k));
            let mat = client.placeholder_material.clone().unwrap_or_default();
            let e = commands.spawn((Mesh3d(m), MeshMaterial3d(mat), Transform::IDENTITY)).id();
            client.placeholders.insert(k, e);
        }
    }
    client.stats.placeholders = want_ph.len();
    // requests, nearest / coarsest first, at most max_requests in flight
    let now = Instant::now();
    // at most max_requests fetches run at once (one per loader thread); up to 4 × that many are
    // queued so a slow frame (software rendering) does not starve the loaders
    let queue_bound = client.opts.max_requests * 4;
    for &(i, _) in &sel.wanted {
        if client.in_flight >= queue_bound {
            break;
        }
        let go = match client.status[i] {
            Status::Unloaded => true,
            Status::Retry { at, .. } => now >= at,
            _ => false,
        };
        if !go {
            continue;
        }
        let n = &client.tree.nodes[i];
        let Some(c) = n.content.clone() else { continue };
        if c.kind == ContentKind::Other {
            client.status[i] = Status::Failed;
            client.stats.tiles_failed += 1;
            client.errors.push(format!("{}: unsupported content type", c.url));
            continue;
        }
        let job = Job { node: i, url: c.url, kind: c.kind, world: n.world, gltf_up_z: n.gltf_up_z };
        if !matches!(client.status[i], Status::Retry { .. }) {
            client.stats.tiles_requested += 1;
        }
        client.status[i] = match client.status[i] {
            Status::Retry { failures, at } => Status::Retry { failures, at: at + Duration::from_secs(3600) },
            _ => Status::InFlight,
        };
        client.first_request.get_or_insert(now);
        client.in_flight += 1;
        client.loader.submit(job);
    }
    // memory budget: LRU eviction of tiles not drawn this frame
    for i in client.lru.evict(frame) {
        if let Some(e) = client.entities.remove(&i) {
            commands.entity(e).despawn();
        }
        client.triangles.remove(&i);
        client.picks.remove(&i);
        client.status[i] = Status::Unloaded;
        client.stats.evicted += 1;
    }
    // completion
    let complete = sel.complete && client.in_flight == 0 || sel.complete && sel.wanted.is_empty();
    if complete && !client.complete {
        client.complete_after = client.first_request.map(|t| t.elapsed());
        info!(
            "view complete: {} tiles drawn, {} triangles, {} loaded, {} failed, {:.2} s after the first request",
            client.stats.tiles_in_view,
            tris,
            client.stats.tiles_loaded,
            client.stats.tiles_failed,
            client.complete_after.map(|d| d.as_secs_f64()).unwrap_or(0.0)
        );
    }
    client.complete = complete;
    if frame % 120 == 0 && !client.opts.headless {
        info!("{} tiles drawn, {} triangles, {} in flight, {:.0} MB", client.stats.tiles_in_view, tris, client.in_flight, client.lru.used_bytes() as f64 / 1048576.0);
    }
    if client.opts.headless {
        headless_step(&mut commands, &mut client, &mut headless, &mut exit);
    }
}

fn headless_step(commands: &mut Commands, client: &mut Client, hl: &mut Headless, exit: &mut MessageWriter<AppExit>) {
    let now = Instant::now();
    if let Some(t) = hl.last_frame {
        if hl.shot_done && (hl.bench.len() as u32) < client.opts.bench_frames {
            hl.bench.push(now.duration_since(t).as_secs_f64() * 1e3);
        }
    }
    hl.last_frame = Some(now);
    if hl.shot_done {
        if hl.bench.len() as u32 >= client.opts.bench_frames {
            exit.write(AppExit::Success);
        }
        return;
    }
    if hl.shot_requested {
        return;
    }
    if client.complete && hl.live_ready {
        hl.settled_frames += 1;
    } else {
        hl.settled_frames = 0;
    }
    let timed_out = client.started.elapsed() > client.opts.timeout;
    // a few frames after completion so uploads and pipelines are in place
    if hl.settled_frames >= 4 || timed_out {
        if timed_out && !(client.complete && hl.live_ready) {
            hl.timed_out = true;
            warn!("timeout after {:.0} s: rendering what is loaded (view incomplete)", client.opts.timeout.as_secs_f64());
        }
        hl.shot_requested = true;
        match client.opts.screenshot.clone() {
            Some(path) => {
                let Some(target) = hl.target.clone() else { return };
                commands.spawn(Screenshot(target)).observe(move |ev: On<ScreenshotCaptured>, mut hl: ResMut<Headless>| {
                    let img = ev.image.clone();
                    match img.try_into_dynamic() {
                        Ok(d) => {
                            if let Err(e) = d.to_rgb8().save(&path) {
                                hl.shot_error = Some(format!("{}: {e}", path.display()));
                            }
                        }
                        Err(e) => hl.shot_error = Some(format!("screenshot not convertible: {e:?}")),
                    }
                    hl.shot_done = true;
                });
            }
            None => hl.shot_done = true,
        }
    }
}

/// Windowed mode: WASD/arrows move, Q/E down/up, Z/X turn (C cycles the choropleth); speed grows with height.
fn fly_controls(keys: Option<Res<ButtonInput<KeyCode>>>, time: Res<Time>, client: Res<Client>, mut q: Query<&mut Transform, With<ViewCamera>>) {
    if client.opts.headless {
        return;
    }
    let Some(keys) = keys else { return };
    let Ok(mut t) = q.single_mut() else { return };
    let height = (client.tree.frame.geodetic_of_world(t.translation.as_dvec3()).2 - client.tree.ground_height).max(10.0);
    let speed = (height * 0.8) as f32 * time.delta_secs();
    let fwd = t.forward().as_vec3();
    let flat = Vec3::new(fwd.x, 0.0, fwd.z).normalize_or_zero();
    let right = t.right().as_vec3();
    let mut mv = Vec3::ZERO;
    if keys.pressed(KeyCode::KeyW) || keys.pressed(KeyCode::ArrowUp) {
        mv += flat;
    }
    if keys.pressed(KeyCode::KeyS) || keys.pressed(KeyCode::ArrowDown) {
        mv -= flat;
    }
    // dispatcher mode: A assigns a unit (crate::interact), strafing is on the arrow keys
    let wasd = client.opts.mode != Mode::Dispatcher;
    if keys.pressed(KeyCode::KeyD) && wasd || keys.pressed(KeyCode::ArrowRight) {
        mv += right;
    }
    if keys.pressed(KeyCode::KeyA) && wasd || keys.pressed(KeyCode::ArrowLeft) {
        mv -= right;
    }
    if keys.pressed(KeyCode::KeyE) {
        mv += Vec3::Y;
    }
    if keys.pressed(KeyCode::KeyQ) {
        mv -= Vec3::Y;
    }
    t.translation += mv * speed;
    let turn = if keys.pressed(KeyCode::KeyZ) { 1.0 } else if keys.pressed(KeyCode::KeyX) { -1.0 } else { 0.0 };
    if turn != 0.0 {
        t.rotate_y(turn * 0.8 * time.delta_secs());
    }
}

/// A JSON summary of a run (printed as one line on stdout).
pub fn summary(client: &Client, hl: &Headless, wall: Duration) -> serde_json::Value {
    let mut bench = hl.bench.clone();
    bench.sort_by(|a, b| a.total_cmp(b));
    let mean = if bench.is_empty() { None } else { Some(bench.iter().sum::<f64>() / bench.len() as f64) };
    let p95 = if bench.is_empty() { None } else { Some(bench[((bench.len() as f64 * 0.95) as usize).min(bench.len() - 1)]) };
    serde_json::json!({
        "tileset": client.tree.name,
        "url": client.opts.tileset_url,
        "complete": client.complete && !hl.timed_out,
        "timed_out": hl.timed_out,
        "tiles_requested": client.stats.tiles_requested,
        "tiles_loaded": client.stats.tiles_loaded,
        "tiles_failed": client.stats.tiles_failed,
        "retries": client.stats.retries,
        "evicted": client.stats.evicted,
        "tiles_in_view": client.stats.tiles_in_view,
        "placeholders": client.stats.placeholders,
        "triangles": client.stats.triangles_in_view,
        "time_to_complete_s": client.complete_after.map(|d| d.as_secs_f64()),
        "fetch_ms_total": client.stats.fetch_ms_total,
        "decode_ms_total": client.stats.decode_ms_total,
        "tile_memory_mb": client.memory_bytes() as f64 / 1048576.0,
        "rss_mb": rss_mb(),
        "frame_ms_mean": mean,
        "frame_ms_p95": p95,
        "bench_frames": bench.len(),
        "wall_s": wall.as_secs_f64(),
        "size": [client.opts.size.0, client.opts.size.1],
        "max_sse": client.opts.max_sse,
        "mode": format!("{:?}", client.opts.mode).to_lowercase(),
        "screenshot": client.opts.screenshot.as_ref().map(|p| p.display().to_string()),
        "screenshot_error": hl.shot_error,
        "sky_srgb": SKY_SRGB,
        "ground_srgb": GROUND_SRGB,
        "placeholder_srgb": PLACEHOLDER_SRGB,
        "fov_y_deg": FOV_Y_DEG,
        "frame_origin": [client.tree.frame.origin.0, client.tree.frame.origin.1, client.tree.frame.origin.2],
        "errors": client.errors,
    })
}

/// Resident set size of this process, MB (Linux /proc).
pub fn rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The world position of (lon, lat, h) as f32 (for tests and tools).
pub fn world_f32(tree: &Tree, lon: f64, lat: f64, h: f64) -> Vec3 {
    let p: DVec3 = tree.frame.world_of_geodetic(lon, lat, h);
    p.as_vec3()
}
