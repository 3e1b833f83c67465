//! Straight skeleton of a simple polygon (optionally with holes), by wavefront simulation.
//!
//! The algorithm is the event-driven one of Felkel & Obdržálek (1998): every polygon vertex
//! moves along its angle bisector at the speed that keeps both incident edges moving inwards at
//! unit speed; the wavefront changes topology at *edge events* (an edge shrinks to zero and its
//! two vertices merge) and *split events* (a reflex vertex reaches a non-adjacent edge and splits
//! the wavefront in two, or joins a hole's wavefront to the outer one). Instead of the original's
//! priority queue with lazily invalidated events, every step recomputes all candidate events of
//! the current wavefront and processes the earliest (O(n²) per event, O(n³) overall): footprints
//! have tens of vertices, and recomputation makes simultaneous and degenerate events (several
//! vertices meeting in one point, vertex events, parallel edges) robust without special cases —
//! they become a sequence of zero-time events that snap to one skeleton node.
//!
//! Output: skeleton nodes with their time (= distance to the polygon = roof height / pitch) and,
//! for every input edge, its face as a closed chain of node ids; faces tile the polygon.

/// Result of [`straight_skeleton`].
#[derive(Debug, Clone, PartialEq)]
pub struct Skeleton {
    /// Node positions; the first `n` are the input vertices in ring order (exterior, then holes).
    pub nodes: Vec<[f64; 2]>,
    /// Offset time (distance to the nearest polygon edge) of each node; 0 for input vertices.
    pub time: Vec<f64>,
    /// Skeleton arcs between distinct nodes (each once).
    pub arcs: Vec<(usize, usize)>,
    /// One face per input edge (same order as the edges: ring by ring, edge k = vertex k → k+1),
    /// a counter-clockwise cycle of node ids starting with the edge's two vertices.
    pub faces: Vec<Vec<usize>>,
    /// Wavefront slivers that rounding turned inside out and that were closed in one node.
    pub inverted_collapses: usize,
}

#[derive(Debug, Clone, Copy)]
struct Vert {
    p0: [f64; 2],
    t0: f64,
    v: [f64; 2],
    ein: usize,
    eout: usize,
    node: usize,
}

#[derive(Debug, Clone, Copy)]
struct Track {
    from: usize,
    to: usize,
    ein: usize,
    eout: usize,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// The edge between lav[i] and lav[i+1] collapses.
    Edge { lav: usize, i: usize },
    /// Reflex vertex lavs[lav][r] hits the edge starting at lavs[olav][a].
    Split { lav: usize, r: usize, olav: usize, a: usize },
}

struct Sim {
    a: Vec<[f64; 2]>,
    d: Vec<[f64; 2]>,
    n: Vec<[f64; 2]>,
    verts: Vec<Vert>,
    lavs: Vec<Vec<usize>>,
    nodes: Vec<[f64; 2]>,
    time: Vec<f64>,
    tracks: Vec<Track>,
    /// Face segments from collapsed wavefronts: (edge, from node, to node).
    tops: Vec<(usize, usize, usize)>,
    t: f64,
    eps: f64,
    /// Distance (and time) within which event points become one node: 10⁻⁵ of the extent.
    snap: f64,
    n_input: usize,
    collapsed_inverted: usize,
}

fn sub(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] - b[0], a[1] - b[1]]
}
fn add_s(a: [f64; 2], b: [f64; 2], s: f64) -> [f64; 2] {
    [a[0] + b[0] * s, a[1] + b[1] * s]
}
fn dot(a: [f64; 2], b: [f64; 2]) -> f64 {
    a[0] * b[0] + a[1] * b[1]
}
fn cross(a: [f64; 2], b: [f64; 2]) -> f64 {
    a[0] * b[1] - a[1] * b[0]
}
fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    let d = sub(a, b);
    dot(d, d).sqrt()
}

impl Sim {
    fn pos(&self, v: usize, t: f64) -> [f64; 2] {
        let w = &self.verts[v];
        add_s(w.p0, w.v, t - w.t0)
    }

    fn velocity(&self, ein: usize, eout: usize) -> [f64; 2] {
        let (n1, n2) = (self.n[ein], self.n[eout]);
        let c = 1.0 + dot(n1, n2);
        if c < 1e-6 {
            // (Nearly) antiparallel edges: a zero-width sliver that the next zero-time events remove.
            [0.0, 0.0]
        } else {
            [(n1[0] + n2[0]) / c, (n1[1] + n2[1]) / c]
        }
    }

    fn new_vert(&mut self, p: [f64; 2], ein: usize, eout: usize, node: usize) -> usize {
        let v = self.velocity(ein, eout);
        self.verts.push(Vert { p0: p, t0: self.t, v, ein, eout, node });
        self.verts.len() - 1
    }

    /// The node at `p` at the current time: an existing one created at (almost) the same time
    /// and place, else a new one.
    fn node_at(&mut self, p: [f64; 2]) -> usize {
        // Input vertices are never snapped to: an event at (almost) t = 0 near a corner still
        // gets its own node, so an edge's face never reuses a neighbouring edge's corner.
        for i in (self.n_input..self.nodes.len()).rev() {
            if self.time[i] < self.t - self.snap {
                break;
            }
            if dist(self.nodes[i], p) <= self.snap {
                return i;
            }
        }
        self.nodes.push(p);
        self.time.push(self.t);
        self.nodes.len() - 1
    }

    /// Ends a vertex's track at `node`.
    fn kill_to(&mut self, v: usize, node: usize) {
        let w = self.verts[v];
        if w.node != node {
            self.tracks.push(Track { from: w.node, to: node, ein: w.ein, eout: w.eout });
        }
    }

    fn kill(&mut self, v: usize) -> usize {
        let p = self.pos(v, self.t);
        // A vertex that has not moved since its birth (a stalled sliver vertex) ends where it
        // began: a second node at the same place with another time would be a zero-length arc.
        let born = self.verts[v].node;
        if dist(p, self.nodes[born]) <= self.snap {
            return born;
        }
        let node = self.node_at(p);
        self.kill_to(v, node);
        node
    }

    /// Signed area of a wavefront at the current time.
    fn lav_area(&self, lav: &[usize]) -> (f64, f64) {
        let p: Vec<[f64; 2]> = lav.iter().map(|&v| self.pos(v, self.t)).collect();
        let m = p.len();
        let area = (0..m).map(|i| cross(p[i], p[(i + 1) % m])).sum::<f64>() / 2.0;
        let perim = (0..m).map(|i| dist(p[i], p[(i + 1) % m])).sum::<f64>();
        (area, perim)
    }

    /// A wavefront of zero area (two vertices, or a polyline traversed back and forth) is final:
    /// its vertices stop where they are and each of its edges is the top of its edge's face.
    fn collapse(&mut self, lav: Vec<usize>) {
        let nodes: Vec<usize> = lav.iter().map(|&v| self.kill(v)).collect();
        let m = lav.len();
        for i in 0..m {
            let (nu, nw) = (nodes[i], nodes[(i + 1) % m]);
            if nu != nw {
                self.tops.push((self.verts[lav[i]].eout, nw, nu));
            }
        }
    }

    fn finish_lav(&mut self, lav: Vec<usize>) {
        if lav.len() <= 2 {
            self.collapse(lav);
            return;
        }
        let (area, perim) = self.lav_area(&lav);
        if area.abs() <= self.eps * 10.0 * perim {
            self.collapse(lav);
        } else if area < 0.0 {
            self.collapse_to_point(lav);
        } else {
            self.lavs.push(lav);
        }
    }

    /// A sliver turned inside out by rounding (it would grow without bound): all its vertices
    /// end in one node at their centroid, at the current time (a flat ridge patch the size of
    /// the sliver). Topologically exact, so the faces stay closed.
    fn collapse_to_point(&mut self, lav: Vec<usize>) {
        let p: Vec<[f64; 2]> = lav.iter().map(|&v| self.pos(v, self.t)).collect();
        let c = [p.iter().map(|q| q[0]).sum::<f64>() / p.len() as f64, p.iter().map(|q| q[1]).sum::<f64>() / p.len() as f64];
        let node = self.node_at(c);
        for &v in &lav {
            self.kill_to(v, node);
        }
        self.collapsed_inverted += 1;
    }

    fn next_event(&self) -> Option<(f64, Event)> {
        let eps = self.eps;
        let t = self.t;
        let mut best: Option<(f64, Event, bool)> = None;
        let mut offer = |dt: f64, ev: Event, is_edge: bool| {
            let better = match best {
                None => true,
                Some((bdt, _, bedge)) => dt < bdt - 1e-12 * (1.0 + bdt) || (dt <= bdt + 1e-12 * (1.0 + bdt) && is_edge && !bedge),
            };
            if better {
                best = Some((dt, ev, is_edge));
            }
        };
        for (li, lav) in self.lavs.iter().enumerate() {
            let m = lav.len();
            for i in 0..m {
                let (u, w) = (lav[i], lav[(i + 1) % m]);
                let e = self.verts[u].eout;
                let d = self.d[e];
                let (pu, pw) = (self.pos(u, t), self.pos(w, t));
                let len = dot(sub(pw, pu), d);
                let rate = dot(sub(self.verts[w].v, self.verts[u].v), d);
                if dist(pu, pw) <= eps {
                    offer(0.0, Event::Edge { lav: li, i }, true);
                } else if rate < -1e-12 {
                    offer((len / -rate).max(0.0), Event::Edge { lav: li, i }, true);
                }
            }
        }
        for (li, lav) in self.lavs.iter().enumerate() {
            let m = lav.len();
            for ri in 0..m {
                let r = lav[ri];
                let vr = self.verts[r];
                if cross(self.d[vr.ein], self.d[vr.eout]) >= -1e-12 {
                    continue; // convex or straight: no split event
                }
                let pr = self.pos(r, t);
                for (oi, olav) in self.lavs.iter().enumerate() {
                    // Within one wavefront, or onto another one only while holes are unmerged
                    // (disjoint wavefronts of a simple polygon never interact).
                    let om = olav.len();
                    for ai in 0..om {
                        let (a, b) = (olav[ai], olav[(ai + 1) % om]);
                        if a == r || b == r {
                            continue;
                        }
                        let e = self.verts[a].eout;
                        if e == vr.ein || e == vr.eout {
                            continue;
                        }
                        let ne = self.n[e];
                        let dd = dot(sub(pr, self.a[e]), ne) - t;
                        let rate = 1.0 - dot(vr.v, ne);
                        if rate <= 1e-9 || dd < -eps {
                            continue;
                        }
                        let dt = dd.max(0.0) / rate;
                        let x = add_s(pr, vr.v, dt);
                        let pa = add_s(self.pos(a, t), self.verts[a].v, dt);
                        let pb = add_s(self.pos(b, t), self.verts[b].v, dt);
                        let de = self.d[e];
                        if dot(sub(x, pa), de) < -eps || dot(sub(x, pb), de) > eps {
                            continue;
                        }
                        offer(dt, Event::Split { lav: li, r: ri, olav: oi, a: ai }, false);
                    }
                }
            }
        }
        best.map(|(dt, ev, _)| (dt, ev))
    }

    fn apply(&mut self, ev: Event) {
        match ev {
            Event::Edge { lav, i } => {
                let mut l = self.lavs.swap_remove(lav);
                let m = l.len();
                let (u, w) = (l[i], l[(i + 1) % m]);
                let p = {
                    let (a, b) = (self.pos(u, self.t), self.pos(w, self.t));
                    [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0]
                };
                let node = self.node_at(p);
                self.kill_to(u, node);
                self.kill_to(w, node);
                let (ein, eout) = (self.verts[u].ein, self.verts[w].eout);
                let z = self.new_vert(self.nodes[node], ein, eout, node);
                l[i] = z;
                l.remove((i + 1) % m);
                self.finish_lav(l);
            }
            Event::Split { lav, r, olav, a } => {
                let rv = self.lavs[lav][r];
                let node = self.kill(rv);
                let p = self.nodes[node];
                let av = self.lavs[olav][a];
                let e = self.verts[av].eout;
                let (rin, rout) = (self.verts[rv].ein, self.verts[rv].eout);
                let r1 = self.new_vert(p, e, rout, node);
                let r2 = self.new_vert(p, rin, e, node);
                let l = self.lavs[lav].clone();
                let m = l.len();
                // Sequence after r: rn … rp (r excluded).
                let seq: Vec<usize> = (1..m).map(|k| l[(r + k) % m]).collect();
                if olav == lav {
                    let ka = seq.iter().position(|&x| x == av).expect("edge start in wavefront");
                    let mut first = vec![r1];
                    first.extend_from_slice(&seq[..=ka]);
                    let mut second = vec![r2];
                    second.extend_from_slice(&seq[ka + 1..]);
                    self.lavs.swap_remove(lav);
                    self.finish_lav(first);
                    self.finish_lav(second);
                } else {
                    // Joining a hole's wavefront: r1 → rn … rp → r2 → b … a → r1.
                    let o = self.lavs[olav].clone();
                    let om = o.len();
                    let mut joined = vec![r1];
                    joined.extend_from_slice(&seq);
                    joined.push(r2);
                    joined.extend((1..=om).map(|k| o[(a + k) % om]));
                    let (hi, lo) = if lav > olav { (lav, olav) } else { (olav, lav) };
                    self.lavs.swap_remove(hi);
                    self.lavs.swap_remove(lo);
                    self.finish_lav(joined);
                }
            }
        }
    }
}

/// Straight skeleton of a polygon given as an exterior ring (counter-clockwise) and holes
/// (clockwise), without closing duplicates. Errors on degenerate input (fewer than 3 vertices,
/// repeated points, zero-length edges, non-finite coordinates) and when the simulation does not
/// converge (it never panics).
pub fn straight_skeleton(exterior: &[[f64; 2]], holes: &[Vec<[f64; 2]>]) -> Result<Skeleton, String> {
    let rings: Vec<&[[f64; 2]]> = std::iter::once(exterior).chain(holes.iter().map(|h| h.as_slice())).collect();
    let mut pts: Vec<[f64; 2]> = Vec::new();
    let mut ring_of: Vec<(usize, usize)> = Vec::new(); // (start, len) per ring
    for r in &rings {
        if r.len() < 3 {
            return Err(format!("ring with {} vertices (need ≥ 3)", r.len()));
        }
        ring_of.push((pts.len(), r.len()));
        pts.extend_from_slice(r);
    }
    if pts.iter().flatten().any(|v| !v.is_finite()) {
        return Err("non-finite coordinate".into());
    }
    let scale = pts.iter().flatten().fold(1.0f64, |m, v| m.max(v.abs()));
    let eps = scale * 1e-9;
    let ext = |k: usize| pts.iter().map(|p| p[k]).fold(f64::MIN, f64::max) - pts.iter().map(|p| p[k]).fold(f64::MAX, f64::min);
    let snap = (ext(0).max(ext(1)) * 1e-5).max(eps * 10.0);
    let n = pts.len();
    let (mut a, mut d, mut nrm) = (vec![[0.0; 2]; n], vec![[0.0; 2]; n], vec![[0.0; 2]; n]);
    let mut next = vec![0usize; n];
    for &(s, len) in &ring_of {
        for k in 0..len {
            let (i, j) = (s + k, s + (k + 1) % len);
            next[i] = j;
            let v = sub(pts[j], pts[i]);
            let l = dot(v, v).sqrt();
            if l <= eps * 100.0 {
                return Err(format!("zero-length edge at vertex {k} of ring {}", ring_of.iter().position(|r| r.0 == s).unwrap_or(0)));
            }
            a[i] = pts[i];
            d[i] = [v[0] / l, v[1] / l];
            nrm[i] = [-v[1] / l, v[0] / l];
        }
    }
    let mut sim = Sim { a, d, n: nrm, verts: vec![], lavs: vec![], nodes: pts.clone(), time: vec![0.0; n], tracks: vec![], tops: vec![], t: 0.0, eps, snap, n_input: n, collapsed_inverted: 0 };
    for &(s, len) in &ring_of {
        let mut lav = Vec::with_capacity(len);
        for k in 0..len {
            let i = s + k;
            let prev = s + (k + len - 1) % len;
            if dot(sim.d[prev], sim.d[i]) < -1.0 + 1e-12 {
                return Err(format!("spike (180° turn) at vertex {k}"));
            }
            lav.push(sim.new_vert(pts[i], prev, i, i));
        }
        sim.lavs.push(lav);
    }
    let max_iter = 50 * (n + 4) * (n + 4);
    let mut iter = 0;
    while !sim.lavs.is_empty() {
        iter += 1;
        if iter > max_iter {
            return Err(format!("straight skeleton did not converge after {max_iter} events"));
        }
        let Some((dt, ev)) = sim.next_event() else {
            // No event left: only zero-area wavefronts may remain.
            let lavs = std::mem::take(&mut sim.lavs);
            for lav in lavs {
                let (area, perim) = sim.lav_area(&lav);
                if area.abs() > eps * 1e3 * perim.max(1.0) {
                    return Err(format!("wavefront of {} vertices (area {area:.3e}) has no further event", lav.len()));
                }
                sim.collapse(lav);
            }
            break;
        };
        if !dt.is_finite() || sim.t + dt > scale * 1e3 {
            return Err("wavefront escaped (polygon orientation or self-intersection?)".into());
        }
        sim.t += dt;
        sim.apply(ev);
        // Wavefronts inverted by rounding between events (a missed simultaneous event).
        let mut k = 0;
        while k < sim.lavs.len() {
            let (area, perim) = sim.lav_area(&sim.lavs[k]);
            if area < -sim.eps * 10.0 * perim {
                let lav = sim.lavs.swap_remove(k);
                sim.collapse_to_point(lav);
            } else {
                k += 1;
            }
        }
    }

    // Faces: edge e, forward tracks of vertices whose incoming edge is e, backward tracks of
    // vertices whose outgoing edge is e; chained by node id.
    let mut seg_by_face: Vec<Vec<(usize, usize)>> = (0..n).map(|e| vec![(e, next[e])]).collect();
    let mut arcs = Vec::new();
    for tr in &sim.tracks {
        if tr.ein == tr.eout {
            continue;
        }
        seg_by_face[tr.ein].push((tr.from, tr.to));
        seg_by_face[tr.eout].push((tr.to, tr.from));
        let key = (tr.from.min(tr.to), tr.from.max(tr.to));
        arcs.push(key);
    }
    for &(e, from, to) in &sim.tops {
        seg_by_face[e].push((from, to));
        arcs.push((from.min(to), from.max(to)));
    }
    arcs.sort_unstable();
    arcs.dedup();
    let mut faces = Vec::with_capacity(n);
    for (e, segs) in seg_by_face.iter().enumerate() {
        let mut face = vec![e];
        let mut used = vec![false; segs.len()];
        let mut cur = e;
        loop {
            let cand: Vec<usize> = (0..segs.len()).filter(|&k| !used[k] && segs[k].0 == cur).collect();
            if cand.len() != 1 {
                return Err(format!("face of edge {e} is not a simple cycle at node {cur} ({} continuations)", cand.len()));
            }
            used[cand[0]] = true;
            cur = segs[cand[0]].1;
            if cur == e {
                break;
            }
            if face.len() > segs.len() {
                return Err(format!("face of edge {e} does not close"));
            }
            face.push(cur);
        }
        if used.iter().any(|u| !u) {
            return Err(format!("face of edge {e} has {} stray arcs", used.iter().filter(|u| !**u).count()));
        }
        faces.push(face);
    }
    // Collapsed wavefronts can leave a node in the middle of another face's top segment (three
    // ridges meeting on a straight line): insert such nodes so neighbouring faces share edges.
    let nodes = &sim.nodes;
    for face in &mut faces {
        let mut out = Vec::with_capacity(face.len());
        for k in 0..face.len() {
            let (a, b) = (face[k], face[(k + 1) % face.len()]);
            out.push(a);
            if k == 0 {
                continue; // the input edge itself
            }
            let (pa, pb) = (nodes[a], nodes[b]);
            let ab = sub(pb, pa);
            let len2 = dot(ab, ab);
            if len2 <= 0.0 {
                continue;
            }
            let mut mid: Vec<(f64, usize)> = (n..nodes.len())
                .filter(|&j| j != a && j != b)
                .filter_map(|j| {
                    let ap = sub(nodes[j], pa);
                    let s = dot(ap, ab) / len2;
                    let off = cross(ab, ap).abs() / len2.sqrt();
                    let tj = sim.time[a] + s * (sim.time[b] - sim.time[a]);
                    (s > 1e-9
                        && s < 1.0 - 1e-9
                        && off <= eps * 100.0
                        && (sim.time[j] - tj).abs() <= eps * 100.0
                        && dist(nodes[j], pa) > eps * 10.0
                        && dist(nodes[j], pb) > eps * 10.0)
                        .then_some((s, j))
                })
                .collect();
            mid.sort_by(|x, y| x.0.total_cmp(&y.0));
            out.extend(mid.into_iter().map(|(_, j)| j));
        }
        *face = out;
    }
    Ok(Skeleton { nodes: sim.nodes, time: sim.time, arcs, faces, inverted_collapses: sim.collapsed_inverted })
}

/// Triangulates a simple polygon given as points (any orientation is accepted; the output has
/// the polygon's own orientation) by ear clipping, O(n²). Collinear vertices are kept (they
/// become zero-area triangles only when no proper ear remains), so edges shared with neighbouring
/// faces stay watertight.
pub fn ear_clip(pts: &[[f64; 2]]) -> Vec<[usize; 3]> {
    let n = pts.len();
    if n < 3 {
        return vec![];
    }
    let area2: f64 = (0..n).map(|i| cross(pts[i], pts[(i + 1) % n])).sum();
    let sgn = if area2 >= 0.0 { 1.0 } else { -1.0 };
    let mut idx: Vec<usize> = (0..n).collect();
    let mut out = Vec::with_capacity(n - 2);
    let inside = |p: [f64; 2], a: [f64; 2], b: [f64; 2], c: [f64; 2]| {
        let s1 = cross(sub(b, a), sub(p, a)) * sgn;
        let s2 = cross(sub(c, b), sub(p, b)) * sgn;
        let s3 = cross(sub(a, c), sub(p, c)) * sgn;
        s1 >= 0.0 && s2 >= 0.0 && s3 >= 0.0
    };
    while idx.len() > 3 {
        let m = idx.len();
        let mut chosen = None;
        let mut fallback = None;
        for k in 0..m {
            let (i0, i1, i2) = (idx[(k + m - 1) % m], idx[k], idx[(k + 1) % m]);
            let (a, b, c) = (pts[i0], pts[i1], pts[i2]);
            let cr = cross(sub(b, a), sub(c, b)) * sgn;
            if cr <= 0.0 {
                if cr == 0.0 || cr.abs() < 1e-12 * (dot(sub(b, a), sub(b, a)) + dot(sub(c, b), sub(c, b))) {
                    fallback.get_or_insert(k);
                }
                continue;
            }
            let blocked = idx.iter().any(|&j| {
                j != i0 && j != i1 && j != i2 && pts[j] != a && pts[j] != b && pts[j] != c && inside(pts[j], a, b, c)
            });
            if !blocked {
                chosen = Some(k);
                break;
            }
        }
        let k = chosen.or(fallback).unwrap_or(0);
        let m = idx.len();
        out.push([idx[(k + m - 1) % m], idx[k], idx[(k + 1) % m]]);
        idx.remove(k);
    }
    out.push([idx[0], idx[1], idx[2]]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_node(s: &Skeleton, p: [f64; 2], t: f64) -> bool {
        s.nodes.iter().zip(&s.time).any(|(q, &tq)| dist(*q, p) < 1e-6 && (tq - t).abs() < 1e-6)
    }

    fn interior_nodes(s: &Skeleton, n_input: usize) -> Vec<[f64; 2]> {
        let mut v: Vec<[f64; 2]> = s.nodes[n_input..].to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    }

    /// Faces must tile the polygon: their areas add up to the polygon's.
    fn check_tiling(s: &Skeleton, area: f64) {
        let mut sum = 0.0;
        for f in &s.faces {
            let p: Vec<[f64; 2]> = f.iter().map(|&i| s.nodes[i]).collect();
            let a: f64 = (0..p.len()).map(|i| cross(p[i], p[(i + 1) % p.len()])).sum::<f64>() / 2.0;
            assert!(a > -1e-9, "face {f:?} is clockwise ({a})");
            sum += a;
        }
        assert!((sum - area).abs() < 1e-6 * area, "faces cover {sum}, polygon {area}");
    }

    #[test]
    fn rectangle_ridge() {
        let r = [[0.0, 0.0], [20.0, 0.0], [20.0, 10.0], [0.0, 10.0]];
        let s = straight_skeleton(&r, &[]).unwrap();
        assert_eq!(interior_nodes(&s, 4), vec![[5.0, 5.0], [15.0, 5.0]]);
        assert!(has_node(&s, [5.0, 5.0], 5.0) && has_node(&s, [15.0, 5.0], 5.0));
        // 4 corner arcs + the ridge.
        assert_eq!(s.arcs.len(), 5);
        // Long edges get trapezoids, short edges triangles.
        assert_eq!(s.faces.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 3, 4, 3]);
        check_tiling(&s, 200.0);
    }

    #[test]
    fn square_is_a_pyramid() {
        let r = [[0.0, 0.0], [8.0, 0.0], [8.0, 8.0], [0.0, 8.0]];
        let s = straight_skeleton(&r, &[]).unwrap();
        assert_eq!(interior_nodes(&s, 4), vec![[4.0, 4.0]]);
        assert!(s.faces.iter().all(|f| f.len() == 3));
        check_tiling(&s, 64.0);
    }

    #[test]
    fn l_shape_ridges() {
        // Arms 10 m wide: ridges (15,5)–(5,5)–(5,15), reflex corner (10,10) runs to (5,5).
        let r = [[0.0, 0.0], [20.0, 0.0], [20.0, 10.0], [10.0, 10.0], [10.0, 20.0], [0.0, 20.0]];
        let s = straight_skeleton(&r, &[]).unwrap();
        assert_eq!(interior_nodes(&s, 6), vec![[5.0, 5.0], [5.0, 15.0], [15.0, 5.0]]);
        for p in [[5.0, 5.0], [5.0, 15.0], [15.0, 5.0]] {
            assert!(has_node(&s, p, 5.0));
        }
        let arcs: Vec<([f64; 2], [f64; 2])> = s.arcs.iter().map(|&(a, b)| (s.nodes[a], s.nodes[b])).collect();
        let has_arc = |p: [f64; 2], q: [f64; 2]| arcs.iter().any(|&(a, b)| (a == p && b == q) || (a == q && b == p));
        assert!(has_arc([10.0, 10.0], [5.0, 5.0]));
        assert!(has_arc([5.0, 5.0], [15.0, 5.0]));
        assert!(has_arc([5.0, 5.0], [5.0, 15.0]));
        check_tiling(&s, 300.0);
    }

    #[test]
    fn t_shape_ridges() {
        // Bar 30×10 on top of a 10×10 stem: bar ridge y=15 from x=5 to 25, stem ridge x=15 from
        // y=5 up to the junction (15,15); everything at t = 5.
        let r = [[10.0, 0.0], [20.0, 0.0], [20.0, 10.0], [30.0, 10.0], [30.0, 20.0], [0.0, 20.0], [0.0, 10.0], [10.0, 10.0]];
        let s = straight_skeleton(&r, &[]).unwrap();
        assert_eq!(interior_nodes(&s, 8), vec![[5.0, 15.0], [15.0, 5.0], [15.0, 15.0], [25.0, 15.0]]);
        assert!(s.time[8..].iter().all(|t| (t - 5.0).abs() < 1e-9));
        check_tiling(&s, 400.0);
    }

    #[test]
    fn unequal_t_shape_has_split_event() {
        // A wide bar (height 20) with a narrow long stem (width 6, length 30): the stem ridge
        // runs from (13, 3) (t = 3) to the junction; the reflex corners (10,30) and (16,30) move
        // along 45° bisectors, so they meet at (13, 33) at t = 3.
        let r = [[10.0, 0.0], [16.0, 0.0], [16.0, 30.0], [40.0, 30.0], [40.0, 50.0], [-14.0, 50.0], [-14.0, 30.0], [10.0, 30.0]];
        let s = straight_skeleton(&r, &[]).unwrap();
        assert!(has_node(&s, [13.0, 3.0], 3.0));
        assert!(has_node(&s, [13.0, 33.0], 3.0));
        // Bar ridge at y = 40 (t = 10) from x = -4 to 30.
        assert!(has_node(&s, [-4.0, 40.0], 10.0));
        assert!(has_node(&s, [30.0, 40.0], 10.0));
        check_tiling(&s, 6.0 * 30.0 + 54.0 * 20.0);
    }

    #[test]
    fn square_with_hole() {
        let outer = [[0.0, 0.0], [30.0, 0.0], [30.0, 30.0], [0.0, 30.0]];
        let hole = vec![[10.0, 10.0], [10.0, 20.0], [20.0, 20.0], [20.0, 10.0]];
        let s = straight_skeleton(&outer, &[hole]).unwrap();
        // A 10 m wide ring: every node at t = 5, on the square of side 20 centred.
        assert!(s.time[8..].iter().all(|t| (t - 5.0).abs() < 1e-9), "{:?}", &s.time[8..]);
        assert!(has_node(&s, [5.0, 5.0], 5.0) && has_node(&s, [25.0, 25.0], 5.0));
        check_tiling(&s, 800.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(straight_skeleton(&[[0.0, 0.0], [1.0, 0.0]], &[]).is_err());
        assert!(straight_skeleton(&[[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &[]).is_err());
        assert!(straight_skeleton(&[[0.0, 0.0], [f64::NAN, 0.0], [0.0, 1.0]], &[]).is_err());
    }

    #[test]
    fn ear_clip_concave() {
        let p = [[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [2.0, 1.0], [0.0, 4.0]];
        let t = ear_clip(&p);
        assert_eq!(t.len(), 3);
        let area: f64 = t.iter().map(|t| cross(sub(p[t[1]], p[t[0]]), sub(p[t[2]], p[t[0]])) / 2.0).sum();
        assert!((area - 10.0).abs() < 1e-12);
        assert!(t.iter().all(|t| cross(sub(p[t[1]], p[t[0]]), sub(p[t[2]], p[t[0]])) > 0.0));
    }
}
