//! Screen-space-error selection with frustum culling — pure, no GPU: given the tree, a camera
//! and which contents are ready, decides what to draw, what to request (with a priority) and
//! where placeholders go.
//!
//! A tile refines when `sse = geometricError · H / (d · 2·tan(fovy/2)) > max_sse` (d: camera
//! distance to its volume, H: view height in pixels) and it has children. REPLACE: the children
//! are drawn instead of it once every visible child needed is ready; until then the tile itself
//! stays drawn (and is requested) so the view never goes blank. ADD: its content is drawn and its
//! children on top.

use crate::tileset::{ContentKind, Obb, Plane, Tree};
use bevy::math::DVec3;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    pub pos: DVec3,
    pub forward: DVec3,
    pub up: DVec3,
    /// vertical field of view, radians
    pub fov_y: f64,
    pub width_px: f64,
    pub height_px: f64,
    pub near: f64,
    pub far: f64,
}

impl Camera {
    pub fn sse(&self, geometric_error: f64, distance: f64) -> f64 {
        geometric_error * self.height_px / (distance.max(1e-6) * 2.0 * (self.fov_y / 2.0).tan())
    }

    /// The six planes of the view frustum, normals pointing inwards.
    pub fn frustum(&self) -> [Plane; 6] {
        let f = self.forward.normalize();
        let r = f.cross(self.up).normalize();
        let u = r.cross(f);
        let ty = (self.fov_y / 2.0).tan();
        let tx = ty * self.width_px / self.height_px;
        let p = self.pos;
        let plane = |n: DVec3| {
            let n = n.normalize();
            Plane { n, d: -n.dot(p) }
        };
        // side planes through the eye: inward normals
        let left = plane(f * tx + r);
        let right = plane(f * tx - r);
        let bottom = plane(f * ty + u);
        let top = plane(f * ty - u);
        let near = Plane { n: f, d: -f.dot(p + f * self.near) };
        let far = Plane { n: -f, d: f.dot(p + f * self.far) };
        [left, right, bottom, top, near, far]
    }

    pub fn visible(&self, planes: &[Plane; 6], b: &Obb) -> bool {
        !planes.iter().any(|pl| pl.box_outside(b))
    }
}

/// The loading state of a node's content, as the selection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// not loaded (or evicted), not in flight
    Unloaded,
    /// requested / decoding / waiting for a retry
    Pending,
    /// ready to draw (or an external tileset grafted)
    Ready,
    /// failed for good (after its retries); drawn as a placeholder
    Failed,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Selection {
    /// nodes whose content is drawn
    pub render: Vec<usize>,
    /// nodes whose content should be loaded: (node, priority — lower first)
    pub wanted: Vec<(usize, f64)>,
    /// nodes needed but not ready: their bounding box outline is drawn
    pub placeholders: Vec<usize>,
    /// every node needed for this view is ready (or failed for good)
    pub complete: bool,
    /// nodes visited (inside the frustum)
    pub visited: usize,
}

struct Ctx<'a> {
    tree: &'a Tree,
    cam: &'a Camera,
    planes: [Plane; 6],
    max_sse: f64,
    state: &'a dyn Fn(usize) -> State,
    out: Selection,
}

/// Result of visiting a subtree: what it draws and whether all of it is ready.
struct Sub {
    render: Vec<usize>,
    placeholders: Vec<usize>,
    ready: bool,
    /// some needed content failed for good
    failed: bool,
}

impl Sub {
    fn empty(ready: bool) -> Sub {
        Sub { render: vec![], placeholders: vec![], ready, failed: false }
    }
}

pub fn select(tree: &Tree, cam: &Camera, max_sse: f64, state: &dyn Fn(usize) -> State) -> Selection {
    let mut cx = Ctx { tree, cam, planes: cam.frustum(), max_sse, state, out: Selection::default() };
    let s = if tree.nodes.is_empty() { Sub::empty(true) } else { visit(&mut cx, 0) };
    let mut out = cx.out;
    out.render = s.render;
    out.placeholders = s.placeholders;
    out.complete = s.ready;
    out.wanted.sort_by(|a, b| a.1.total_cmp(&b.1));
    out
}

fn visit(cx: &mut Ctx, id: usize) -> Sub {
    let n = &cx.tree.nodes[id];
    if !cx.cam.visible(&cx.planes, &n.volume) {
        return Sub::empty(true);
    }
    cx.out.visited += 1;
    let d = n.volume.distance(cx.cam.pos);
    let sse = cx.cam.sse(n.geometric_error, d);
    // priority: nearer first, coarser (larger error) first at equal distance
    let priority = d / (1.0 + sse.min(1e6)) + n.depth as f64 * 1e-3;
    let drawable = matches!(n.content.as_ref().map(|c| c.kind), Some(ContentKind::Glb | ContentKind::B3dm));
    let external = matches!(n.content.as_ref().map(|c| c.kind), Some(ContentKind::Tileset));
    let st = if n.content.is_some() { (cx.state)(id) } else { State::Ready };

    if external {
        // its children exist only once it is loaded; it draws nothing itself
        if !n.grafted {
            if st != State::Failed {
                cx.out.wanted.push((id, priority));
            }
            return Sub { render: vec![], placeholders: vec![id], ready: st == State::Failed, failed: st == State::Failed };
        }
        let children = n.children.clone();
        return visit_children(cx, &children);
    }

    let refine = sse > cx.max_sse && !n.children.is_empty();
    if !refine {
        if !drawable {
            return Sub::empty(true);
        }
        return match st {
            State::Ready => Sub { render: vec![id], placeholders: vec![], ready: true, failed: false },
            State::Failed => Sub { render: vec![], placeholders: vec![id], ready: true, failed: true },
            _ => {
                cx.out.wanted.push((id, priority));
                Sub { render: vec![], placeholders: vec![id], ready: false, failed: false }
            }
        };
    }
    let children = n.children.clone();
    let replace = n.replace;
    let kids = visit_children(cx, &children);
    if !drawable {
        return kids;
    }
    if !replace {
        // ADD: own content plus the children's
        let mut s = kids;
        match st {
            State::Ready => s.render.push(id),
            State::Failed => {
                s.placeholders.push(id);
                s.failed = true;
            }
            _ => {
                cx.out.wanted.push((id, priority));
                s.placeholders.push(id);
                s.ready = false;
            }
        }
        return s;
    }
    // REPLACE
    if kids.ready && !kids.failed {
        return kids;
    }
    match st {
        // keep the parent drawn until its children are ready; for good where a child failed
        // (its outline still marks what is missing)
        State::Ready => Sub {
            render: vec![id],
            placeholders: if kids.failed { kids.placeholders } else { vec![] },
            ready: kids.ready,
            failed: kids.failed,
        },
        State::Failed => Sub { failed: true, ..kids },
        _ => {
            // load the parent too (at a lower priority than the children) so something shows soon
            cx.out.wanted.push((id, priority * 2.0 + 1.0));
            kids
        }
    }
}

fn visit_children(cx: &mut Ctx, children: &[usize]) -> Sub {
    let mut s = Sub::empty(true);
    for &c in children {
        let k = visit(cx, c);
        s.render.extend(k.render);
        s.placeholders.extend(k.placeholders);
        s.ready &= k.ready;
        s.failed |= k.failed;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geodesy::GeoPose;

    /// A Shenyang-like tree built from regions: a root over 4 × 4 cells of `cell` metres with one
    /// content-less gate (ge 34.21 m) per cell holding an L2 tile (ge 8.55 m, REPLACE) with one L3
    /// child (ge 2.57 m); heights 0–30 m. Geometric errors as docs/ARCHITECTURE.md: L2 appears
    /// within 2 km, L3 within 500 m (1080 px high view, 60°).
    fn city(cell: f64) -> (Tree, Vec<usize>, Vec<usize>) {
        let (lon0, lat0) = (123.40f64, 41.78f64);
        let dlon = cell / (111_319.49 * lat0.to_radians().cos());
        let dlat = cell / 110_950.0;
        let mut gates = vec![];
        for i in 0..4 {
            for j in 0..4 {
                let (w, s) = (lon0 + i as f64 * dlon, lat0 + j as f64 * dlat);
                let r = [w.to_radians(), s.to_radians(), (w + dlon).to_radians(), (s + dlat).to_radians(), 0.0, 30.0];
                gates.push(serde_json::json!({"boundingVolume": {"region": r}, "geometricError": 34.21, "children": [
                    {"boundingVolume": {"region": r}, "geometricError": 8.55, "refine": "REPLACE", "content": {"uri": format!("content/{i}{j}.glb")},
                     "children": [{"boundingVolume": {"region": r}, "geometricError": 2.57, "content": {"uri": format!("content/{i}{j}-l3.glb")}}]}
                ]}));
            }
        }
        let all = [lon0.to_radians(), lat0.to_radians(), (lon0 + 4.0 * dlon).to_radians(), (lat0 + 4.0 * dlat).to_radians(), 0.0, 30.0];
        let doc = serde_json::json!({"asset": {"version": "1.1"}, "geometricError": 200.0,
            "root": {"boundingVolume": {"region": all}, "geometricError": 100.0, "refine": "REPLACE", "children": gates}});
        let tree = Tree::load(&serde_json::to_vec(&doc).unwrap(), "http://h/3dtiles/sy/tileset.json", "sy").unwrap();
        let l2: Vec<usize> = (0..tree.nodes.len()).filter(|&i| tree.nodes[i].geometric_error == 8.55).collect();
        let l3: Vec<usize> = (0..tree.nodes.len()).filter(|&i| tree.nodes[i].geometric_error == 2.57).collect();
        (tree, l2, l3)
    }

    fn cam_at(tree: &Tree, lon: f64, lat: f64, alt: f64, pitch: f64, w: f64) -> Camera {
        let (pos, forward, up) = GeoPose { lon, lat, alt, heading_deg: 0.0, pitch_deg: pitch }.to_world(&tree.frame);
        Camera { pos, forward, up, fov_y: 60f64.to_radians(), width_px: w, height_px: 1080.0, near: 1.0, far: 1e6 }
    }

    /// The centre of the 4 × 4 cells of `city(cell)`.
    fn centre(cell: f64) -> (f64, f64) {
        (123.40 + 2.0 * cell / (111_319.49 * 41.78f64.to_radians().cos()), 41.78 + 2.0 * cell / 110_950.0)
    }

    #[test]
    fn sse_matches_the_documented_switch_distances() {
        let c = Camera { pos: DVec3::ZERO, forward: DVec3::NEG_Z, up: DVec3::Y, fov_y: 60f64.to_radians(), width_px: 1920.0, height_px: 1080.0, near: 1.0, far: 1e5 };
        // 34.21 · 1080 / (2000 · 2 tan 30°) = 15.998…; 8.55 at 500 m = 15.99…; 2.57 at 150 m = 16.02…
        assert!((c.sse(34.21, 2000.0) - 15.998).abs() < 1e-3, "{}", c.sse(34.21, 2000.0));
        assert!((c.sse(8.55, 500.0) - 15.9938).abs() < 1e-3);
        assert!((c.sse(2.57, 150.0) - 16.0244).abs() < 1e-3);
    }

    #[test]
    fn l2_within_two_km_l3_within_500_m_straight_down() {
        // 250 m cells (1 × 1 km in all), a square 1080 × 1080 view looking straight down: the
        // view's footprint on the tiles' tops is ±(alt − 30) · tan 30°
        let (tree, l2, l3) = city(250.0);
        let all_ready = |_: usize| State::Ready;
        let (lon, lat) = centre(250.0);
        // from 3,000 m every tile is ≥ 2,970 m away: sse(34.21) < 16, nothing refines to L2
        let s = select(&tree, &cam_at(&tree, lon, lat, 3000.0, -90.0, 1080.0), 16.0, &all_ready);
        assert!(s.render.is_empty() && s.complete, "{s:?}");
        // from 1,200 m: all cells in view (±675 m), the corner cells' nearest points
        // sqrt(1170² + 354²) = 1,222 m < 2 km away; no L2 tile within 500 m (≥ 1,170 m)
        let s = select(&tree, &cam_at(&tree, lon, lat, 1200.0, -90.0, 1080.0), 16.0, &all_ready);
        let mut r = s.render.clone();
        r.sort();
        assert_eq!(r, l2, "all 16 L2 tiles, no L3");
        // from 520 m: the four inner cells are 490 m away (< 500: L3); the 8 edge cells
        // sqrt(490² + 250²) = 550 m and the 4 corner cells 604 m (L2); all in view (±283 m)
        let s = select(&tree, &cam_at(&tree, lon, lat, 520.0, -90.0, 1080.0), 16.0, &all_ready);
        let n3 = s.render.iter().filter(|i| l3.contains(i)).count();
        let n2 = s.render.iter().filter(|i| l2.contains(i)).count();
        assert_eq!((n3, n2), (4, 12), "{s:?}");
        // max SSE 32 halves the switch distances: 8.55 at 490 m gives sse 16.3 < 32: no L3
        let s = select(&tree, &cam_at(&tree, lon, lat, 520.0, -90.0, 1080.0), 32.0, &all_ready);
        assert_eq!(s.render.iter().filter(|i| l3.contains(i)).count(), 0);
        assert_eq!(s.render.len(), 16);
        // from 300 m only the four inner cells are in view (±156 m on their tops < 250 m): all L3
        let s = select(&tree, &cam_at(&tree, lon, lat, 300.0, -90.0, 1080.0), 16.0, &all_ready);
        let mut r = s.render.clone();
        r.sort();
        assert_eq!(r.len(), 4);
        assert!(r.iter().all(|i| l3.contains(i)), "{r:?}");
    }

    #[test]
    fn frustum_culls_tiles_behind_and_beside_the_camera() {
        let (tree, l2, _) = city(1000.0);
        let all_ready = |_: usize| State::Ready;
        // at the west edge, 1,500 m up, looking north horizontally-ish (pitch −30°): the cells
        // behind (south of) the camera are culled
        let lon = 123.40;
        let lat = 41.78 + 2000.0 / 110_950.0;
        let c = cam_at(&tree, lon, lat, 1500.0, -30.0, 1920.0);
        let s = select(&tree, &c, 16.0, &all_ready);
        let planes = c.frustum();
        // hand check: a cell's visibility = its box not outside any plane; those drawn are the
        // L2 tiles in view and within 2 km; the two southern rows are behind the camera
        assert!(!s.render.is_empty());
        for &i in &s.render {
            assert!(c.visible(&planes, &tree.nodes[i].volume));
            let centre = tree.frame.geodetic_of_world(tree.nodes[i].volume.center);
            assert!(centre.1 > 41.78 + 1000.0 / 110_950.0, "cell south of the camera drawn: {centre:?}");
        }
        assert!(s.render.len() < l2.len());
        // a point straight behind the camera is outside, one ahead inside
        let behind = Obb::from_aabb(c.pos - c.forward * 100.0 - DVec3::ONE, c.pos - c.forward * 100.0 + DVec3::ONE);
        let ahead = Obb::from_aabb(c.pos + c.forward * 100.0 - DVec3::ONE, c.pos + c.forward * 100.0 + DVec3::ONE);
        assert!(!c.visible(&planes, &behind) && c.visible(&planes, &ahead));
        // 10° outside the horizontal half-angle (fov_x/2 = atan(tan 30° · 16/9) = 45.8°) is culled
        let r = c.forward.cross(c.up).normalize();
        let side = |deg: f64| {
            let a = deg.to_radians();
            let p = c.pos + (c.forward * a.cos() + r * a.sin()) * 500.0;
            Obb::from_aabb(p - DVec3::splat(0.5), p + DVec3::splat(0.5))
        };
        assert!(c.visible(&planes, &side(40.0)) && !c.visible(&planes, &side(52.0)));
    }

    #[test]
    fn replace_keeps_the_parent_until_children_are_ready_and_requests_nearest_first() {
        let (tree, l2, l3) = city(250.0);
        let (lon, lat) = centre(250.0);
        let c = cam_at(&tree, lon, lat, 520.0, -90.0, 1080.0);
        // nothing loaded: 12 L2, the 4 refining L2 parents and their 4 L3 children wanted,
        // nothing drawn, placeholders, incomplete
        let s = select(&tree, &c, 16.0, &|_| State::Unloaded);
        assert!(!s.complete && s.render.is_empty());
        assert!(!s.placeholders.is_empty());
        let wanted: Vec<usize> = s.wanted.iter().map(|w| w.0).collect();
        assert_eq!(wanted.len(), 20, "{wanted:?}");
        assert!(l3.iter().filter(|i| wanted.contains(i)).count() == 4 && l2.iter().all(|i| wanted.contains(i)), "{wanted:?} {l2:?} {l3:?}");
        assert!(s.wanted.windows(2).all(|w| w[0].1 <= w[1].1), "sorted by priority");
        // priority d / (1 + sse): edge cells 550 / 15.5 = 35.5 first, corners 604 / 14.2 = 42.5,
        // then the refining parents (2 · 490 / 17.3 + 1 = 57.6), then the L3 tiles 490 / 5.9 = 83
        let d = |i: usize| tree.nodes[i].volume.distance(c.pos);
        let ds: Vec<f64> = wanted.iter().map(|&i| d(i)).collect();
        assert!(ds[..8].iter().all(|&x| (x - 550.0).abs() < 3.0), "{ds:?}");
        assert!(ds[8..12].iter().all(|&x| (x - 604.0).abs() < 3.0), "{ds:?}");
        assert!(wanted[12..16].iter().all(|i| l2.contains(i)) && wanted[16..].iter().all(|i| l3.contains(i)), "{wanted:?}");
        // L2 ready, L3 pending: the four refining L2 parents stay drawn
        let s = select(&tree, &c, 16.0, &|i| if l2.contains(&i) { State::Ready } else { State::Pending });
        assert_eq!(s.render.len(), 16);
        assert!(s.render.iter().all(|i| l2.contains(i)) && !s.complete);
        // failed L3 children: their L2 parents stay drawn; the view is settled (complete)
        let s = select(&tree, &c, 16.0, &|i| if l3.contains(&i) { State::Failed } else { State::Ready });
        assert!(s.complete);
        assert_eq!(s.render.len(), 16, "the L2 parents of failed L3 tiles stay drawn");
        assert_eq!(s.placeholders.len(), 4, "the four failed L3 tiles are outlined");
        // all ready: 4 L3 + 12 L2, complete, nothing wanted
        let s = select(&tree, &c, 16.0, &|_| State::Ready);
        assert!(s.complete && s.wanted.is_empty() && s.placeholders.is_empty());
        assert_eq!(s.render.iter().filter(|i| l3.contains(i)).count(), 4);
    }

    #[test]
    fn add_refinement_draws_parent_and_children() {
        let p = crate::geodesy::geodetic_to_ecef(4.9, 52.37, 0.0);
        let tf = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, p.x, p.y, p.z, 1.0];
        let bx = |c: f64| serde_json::json!({"box": [c, 0, 0, 100, 0, 0, 0, 100, 0, 0, 0, 100]});
        let doc = serde_json::json!({"asset": {"version": "1.1"}, "geometricError": 500,
            "root": {"transform": tf, "boundingVolume": bx(0.0), "geometricError": 100, "refine": "ADD", "content": {"uri": "root.glb"},
              "children": [{"boundingVolume": bx(-50.0), "geometricError": 0, "content": {"uri": "a.glb"}},
                           {"boundingVolume": bx(50.0), "geometricError": 0, "content": {"uri": "b.glb"}}]}});
        let tree = Tree::load(&serde_json::to_vec(&doc).unwrap(), "file:///d/tileset.json", "add").unwrap();
        assert!(!tree.nodes[1].replace, "ADD inherited");
        // ECEF x up at (4.9°E, 52.37°N): look at the tile from 1 km away
        let (pos, fwd, up) = GeoPose { lon: 4.9, lat: 52.37, alt: 1500.0, heading_deg: 0.0, pitch_deg: -90.0 }.to_world(&tree.frame);
        let c = Camera { pos, forward: fwd, up, fov_y: 1.0, width_px: 800.0, height_px: 600.0, near: 1.0, far: 1e6 };
        let s = select(&tree, &c, 16.0, &|_| State::Ready);
        let mut r = s.render.clone();
        r.sort();
        assert_eq!(r, vec![0, 1, 2]);
    }
}
