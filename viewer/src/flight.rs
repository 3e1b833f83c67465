//! Camera flights: a selected incident (a click or `--select-event`) and each stop of the leader
//! tour move the view camera along an eased path instead of jumping. The path is pure
//! ([`pose_at`]): smoothstep progress, the position interpolated in the world frame and lifted
//! by a parabolic arc for long hops (the apex above both ends), the orientation slerped; the
//! endpoints are exact. Progress is wall-clock time over the flight's duration (1.5 s plus
//! 0.5 s a km, at most 3 s), so a flight takes as long at 5 fps as at 60 fps. A new flight
//! (a new selection, the next tour stop) interrupts the current one and starts from wherever
//! the camera is; a fly-control key stops it. Headless runs wait for the flight to land before the screenshot; the summary
//! lists the flights (`flights`) and the camera pose at the screenshot (`camera`).

use crate::app::{Client, Headless, ViewCamera};
use crate::geodesy::WorldFrame;
use bevy::prelude::*;
use bevy::transform::TransformSystems;
use std::time::Instant;

/// The shortest flight, s.
pub const MIN_FLIGHT_S: f32 = 1.5;
/// The longest flight, s.
pub const MAX_FLIGHT_S: f32 = 3.0;
/// Hops at least this long (horizontal metres) arc up.
pub const LONG_HOP_M: f32 = 1000.0;
/// The flights kept in the log (the summary's `flights`).
const LOG_LEN: usize = 64;

/// The flight's duration for a hop of `dist` metres.
pub fn duration_s(dist: f32) -> f32 {
    (MIN_FLIGHT_S + dist.max(0.0) / 2000.0).min(MAX_FLIGHT_S)
}

/// The arc's lift at mid-flight above the straight line from `from` to `to` (world frame,
/// y up): none for short hops; for long hops 30 % of the horizontal distance plus half the
/// height difference, so the apex is above both ends.
pub fn arc_m(from: Vec3, to: Vec3) -> f32 {
    let d = to - from;
    let horiz = Vec2::new(d.x, d.z).length();
    if horiz < LONG_HOP_M {
        0.0
    } else {
        0.3 * horiz + d.y.abs() / 2.0
    }
}

/// Smoothstep: 0 → 0, 1 → 1, monotone, zero speed at both ends.
pub fn ease(x: f32) -> f32 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

/// The camera at progress `x` ∈ [0, 1] of the flight (exactly `from` at 0 and `to` at 1).
pub fn pose_at(from: &Transform, to: &Transform, arc: f32, x: f32) -> Transform {
    if x <= 0.0 {
        return *from;
    }
    if x >= 1.0 {
        return *to;
    }
    let k = ease(x);
    Transform {
        translation: from.translation.lerp(to.translation, k) + Vec3::Y * (arc * 4.0 * k * (1.0 - k)),
        rotation: from.rotation.slerp(to.rotation, k),
        scale: to.scale,
    }
}

/// One flight in the log (geodetic endpoints: lon°, lat°, metres above the ellipsoid).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FlightRecord {
    /// "select" (an incident) or "tour" (a leader-tour stop)
    pub reason: String,
    pub from: [f64; 3],
    pub to: [f64; 3],
    /// the target's heading and pitch, degrees
    pub to_heading_pitch: [f64; 2],
    pub distance_m: f32,
    pub duration_s: f32,
    pub arc_m: f32,
    /// seconds since the viewer started
    pub started_s: f64,
    /// "flying", "arrived" or "interrupted"
    pub state: &'static str,
    /// seconds flown when it arrived or was interrupted
    pub flown_s: Option<f64>,
}

struct Current {
    from: Transform,
    to: Transform,
    arc: f32,
    duration: f32,
    started_s: f64,
    log_index: Option<usize>,
}

/// The camera's flight, if any, and the log of flights.
#[derive(Resource)]
pub struct Flights {
    origin: Instant,
    current: Option<Current>,
    frame: Option<WorldFrame>,
    pub log: Vec<FlightRecord>,
    /// the camera pose (lon, lat, alt, heading, pitch) when the headless screenshot was taken
    pub camera_at_shot: Option<[f64; 5]>,
    /// the camera's world position and orientation (x, y, z, qx, qy, qz, qw) then
    pub camera_world_at_shot: Option<[f32; 7]>,
}

impl Default for Flights {
    fn default() -> Self {
        Flights { origin: Instant::now(), current: None, frame: None, log: vec![], camera_at_shot: None, camera_world_at_shot: None }
    }
}

/// (lon°, lat°, alt m, heading°, pitch°) of a camera transform in `frame`.
pub fn geo_pose(frame: &WorldFrame, t: &Transform) -> [f64; 5] {
    let (lon, lat, alt) = frame.geodetic_of_world(t.translation.as_dvec3());
    let (e, n, u) = frame.enu_at(lon, lat);
    let f = t.forward().as_vec3().as_dvec3();
    let heading = f.dot(e).atan2(f.dot(n)).to_degrees().rem_euclid(360.0);
    let pitch = f.dot(u).clamp(-1.0, 1.0).asin().to_degrees();
    [lon, lat, alt, heading, pitch]
}

impl Flights {
    /// Seconds since the viewer started (the flights' clock).
    pub fn now_s(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    /// Starts a flight from `from` (the camera now) to `to` at `now_s`; a flight under way is
    /// interrupted (logged as such).
    pub fn start(&mut self, from: Transform, to: Transform, reason: &str, frame: &WorldFrame, now_s: f64) {
        self.frame = Some(*frame);
        if let Some(c) = self.current.take() {
            if let Some(r) = c.log_index.and_then(|i| self.log.get_mut(i)) {
                r.state = "interrupted";
                r.flown_s = Some(now_s - c.started_s);
            }
        }
        let d = to.translation - from.translation;
        let dist = Vec2::new(d.x, d.z).length().hypot(d.y);
        let (duration, arc) = (duration_s(dist), arc_m(from.translation, to.translation));
        let geo = |t: &Transform| {
            let p = geo_pose(frame, t);
            ([p[0], p[1], p[2]], [p[3], p[4]])
        };
        let ((f, _), (t, hp)) = (geo(&from), geo(&to));
        if self.log.len() >= LOG_LEN {
            self.log.remove(0);
        }
        self.log.push(FlightRecord { reason: reason.into(), from: f, to: t, to_heading_pitch: hp, distance_m: dist, duration_s: duration, arc_m: arc, started_s: now_s, state: "flying", flown_s: None });
        let log_index = Some(self.log.len() - 1);
        self.current = Some(Current { from, to, arc, duration, started_s: now_s, log_index });
    }

    /// Stops the flight where it is (the user took the controls); logged as interrupted.
    pub fn cancel(&mut self, now_s: f64) {
        if let Some(c) = self.current.take() {
            if let Some(r) = c.log_index.and_then(|i| self.log.get_mut(i)) {
                r.state = "interrupted";
                r.flown_s = Some(now_s - c.started_s);
            }
        }
    }

    /// Whether a flight is under way.
    pub fn busy(&self) -> bool {
        self.current.is_some()
    }

    /// The camera at `now_s`, or None with no flight; a flight that has arrived ends here
    /// (the camera exactly at its target).
    pub fn step(&mut self, now_s: f64) -> Option<Transform> {
        let c = self.current.as_ref()?;
        let x = ((now_s - c.started_s) / c.duration as f64) as f32;
        let t = pose_at(&c.from, &c.to, c.arc, x);
        if x >= 1.0 {
            if let Some(r) = c.log_index.and_then(|i| self.log.get_mut(i)) {
                r.state = "arrived";
                r.flown_s = Some(now_s - c.started_s);
            }
            self.current = None;
        }
        Some(t)
    }

    /// The summary's part.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "flights": self.log,
            "camera": self.camera_at_shot.map(|p| serde_json::json!({"lon": p[0], "lat": p[1], "alt": p[2], "heading": p[3], "pitch": p[4]})),
            "camera_world": self.camera_world_at_shot,
        })
    }
}

/// The fly controls' keys that end a flight (`app::fly_controls`).
const MOVE_KEYS: [KeyCode; 10] = [
    KeyCode::KeyW, KeyCode::KeyS, KeyCode::KeyD, KeyCode::KeyQ, KeyCode::KeyE,
    KeyCode::ArrowUp, KeyCode::ArrowDown, KeyCode::ArrowLeft, KeyCode::ArrowRight, KeyCode::KeyZ,
];

pub struct FlightPlugin;

impl Plugin for FlightPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Flights>().add_systems(PostUpdate, fly.before(TransformSystems::Propagate));
    }
}

/// Moves the camera along the flight; headless: holds the screenshot until it lands and keeps
/// the camera pose of the frame the screenshot was requested in.
fn fly(mut fl: ResMut<Flights>, client: Res<Client>, mut hl: ResMut<Headless>, keys: Option<Res<ButtonInput<KeyCode>>>, mut cams: Query<&mut Transform, With<ViewCamera>>) {
    let Ok(mut cam) = cams.single_mut() else { return };
    let now = fl.now_s();
    // a movement key (the windowed fly controls) takes the camera back from a flight
    if fl.busy() && keys.is_some_and(|k| k.any_just_pressed(MOVE_KEYS)) {
        fl.cancel(now);
    }
    if let Some(t) = fl.step(now) {
        *cam = t;
    }
    if fl.busy() {
        hl.live_ready = false;
    }
    if client.opts.headless && !hl.shot_requested {
        fl.camera_at_shot = Some(geo_pose(&client.tree.frame, &cam));
        let (p, q) = (cam.translation, cam.rotation);
        fl.camera_world_at_shot = Some([p.x, p.y, p.z, q.x, q.y, q.z, q.w]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn looking(pos: Vec3, dir: Vec3) -> Transform {
        Transform::from_translation(pos).looking_to(dir, Vec3::Y)
    }

    #[test]
    fn durations_grow_with_distance_within_bounds() {
        assert_eq!(duration_s(0.0), 1.5);
        assert_eq!(duration_s(1000.0), 2.0);
        assert_eq!(duration_s(3000.0), 3.0);
        assert_eq!(duration_s(50_000.0), 3.0);
    }

    #[test]
    fn the_path_has_exact_endpoints_monotone_progress_and_a_high_apex_for_long_hops() {
        // a 4 km hop from 600 m up to 200 m up
        let a = looking(Vec3::new(0.0, 600.0, 0.0), Vec3::new(0.0, -1.0, -1.0));
        let b = looking(Vec3::new(4000.0, 200.0, -1000.0), Vec3::new(1.0, -1.0, 0.0));
        let arc = arc_m(a.translation, b.translation);
        let horiz = 4000f32.hypot(1000.0);
        assert!((arc - (0.3 * horiz + 200.0)).abs() < 1e-2, "arc {arc}");
        assert_eq!(pose_at(&a, &b, arc, 0.0), a);
        assert_eq!(pose_at(&a, &b, arc, 1.0), b);
        assert_eq!(pose_at(&a, &b, arc, 1.7), b);
        let flat = |t: &Transform| Vec2::new(t.translation.x - b.translation.x, t.translation.z - b.translation.z).length();
        let mut last_d = flat(&a);
        let mut last_angle = a.rotation.angle_between(b.rotation);
        let mut apex = f32::MIN;
        for i in 1..=200 {
            let t = pose_at(&a, &b, arc, i as f32 / 200.0);
            let (d, ang) = (flat(&t), t.rotation.angle_between(b.rotation));
            assert!(d <= last_d + 1e-3, "step {i}: horizontal distance to the target grew {last_d} → {d}");
            assert!(ang <= last_angle + 1e-4, "step {i}: the turn went back {last_angle} → {ang}");
            (last_d, last_angle) = (d, ang);
            apex = apex.max(t.translation.y);
        }
        assert!(apex > 600.0 + 0.25 * horiz && apex > 200.0, "apex {apex} m not above both ends");
        // halfway in time is halfway along (smoothstep is symmetric), lifted by the whole arc
        let mid = pose_at(&a, &b, arc, 0.5);
        assert!((mid.translation.x - 2000.0).abs() < 1e-2 && (mid.translation.y - (400.0 + arc)).abs() < 1e-2, "{mid:?}");
    }

    #[test]
    fn short_hops_do_not_arc() {
        let a = looking(Vec3::new(0.0, 400.0, 0.0), Vec3::NEG_Y + Vec3::Z * 0.01);
        let b = looking(Vec3::new(300.0, 600.0, 400.0), Vec3::NEG_Z - Vec3::Y);
        assert_eq!(arc_m(a.translation, b.translation), 0.0);
        for i in 0..=20 {
            let y = pose_at(&a, &b, 0.0, i as f32 / 20.0).translation.y;
            assert!((400.0 - 1e-3..=600.0 + 1e-3).contains(&y), "{y}");
        }
    }

    #[test]
    fn progress_is_time_based_and_a_new_flight_interrupts_the_current_one() {
        let frame = WorldFrame::new(123.43, 41.8, 0.0);
        let a = looking(Vec3::new(0.0, 600.0, 0.0), Vec3::new(0.0, -1.0, -1.0));
        let b = looking(Vec3::new(3000.0, 600.0, 0.0), Vec3::new(0.0, -1.0, -1.0));
        let c = looking(Vec3::new(-500.0, 700.0, 200.0), Vec3::new(0.0, -1.0, -1.0));
        let mut f = Flights::default();
        assert!(f.step(0.0).is_none());
        f.start(a, b, "select", &frame, 10.0);
        let dur = f.log[0].duration_s as f64;
        assert_eq!(dur, 3.0);
        // the same instants give the same camera however many frames came between
        let mut coarse = Flights::default();
        coarse.start(a, b, "select", &frame, 10.0);
        for i in 0..30 {
            f.step(10.0 + i as f64 * 0.02);
        }
        assert_eq!(f.step(11.0), coarse.step(11.0));
        // interrupted at 11.2 s by a new selection: it starts where the camera is
        let here = f.step(11.2).unwrap();
        f.start(here, c, "select", &frame, 11.2);
        assert_eq!((f.log[0].state, f.log[1].state), ("interrupted", "flying"));
        assert!((f.log[0].flown_s.unwrap() - 1.2).abs() < 1e-9);
        assert_eq!(f.step(11.2).unwrap(), here);
        assert!(f.busy());
        let end = 11.2 + f.log[1].duration_s as f64;
        assert_eq!(f.step(end).unwrap(), c);
        assert!(!f.busy() && f.step(end + 1.0).is_none());
        assert_eq!(f.log[1].state, "arrived");
        // the user's controls stop a flight where it is
        f.start(c, a, "tour", &frame, 20.0);
        let mid = f.step(21.0).unwrap();
        f.cancel(21.0);
        assert!(!f.busy() && f.step(22.0).is_none() && mid != a && mid != c);
        assert_eq!((f.log[2].state, f.log[2].flown_s), ("interrupted", Some(1.0)));
        // the log's endpoints are the geodetic poses
        let p = geo_pose(&frame, &c);
        assert_eq!(f.log[1].to, [p[0], p[1], p[2]]);
        assert!((f.log[0].from[0] - 123.43).abs() < 1e-9 && (f.log[0].from[2] - 600.0).abs() < 0.1, "{:?}", f.log[0].from);
    }

    #[test]
    fn geo_pose_inverts_the_at_pose() {
        let frame = WorldFrame::new(123.43, 41.8, 0.0);
        let g = crate::geodesy::GeoPose { lon: 123.44, lat: 41.79, alt: 650.0, heading_deg: 30.0, pitch_deg: -45.0 };
        let (pos, fwd, up) = g.to_world(&frame);
        let t = Transform::from_translation(pos.as_vec3()).looking_to(fwd.as_vec3(), up.as_vec3());
        let p = geo_pose(&frame, &t);
        assert!((p[0] - 123.44).abs() < 1e-6 && (p[1] - 41.79).abs() < 1e-6 && (p[2] - 650.0).abs() < 0.05, "{p:?}");
        assert!((p[3] - 30.0).abs() < 0.01 && (p[4] + 45.0).abs() < 0.01, "{p:?}");
    }
}
