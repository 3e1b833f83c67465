//! A coarse raster over the local metric frame: fast membership tests (built-up, edge, water,
//! ring-road corridor, district) for hundreds of thousands of generated features.

/// Cell centre inside the built-up polygon.
pub const INSIDE: u8 = 1;
/// A boundary edge of the built-up polygon passes through the cell or a neighbour.
pub const EDGE: u8 = 2;
/// Water or the margin around it.
pub const WATER: u8 = 4;
/// Ring-road corridor.
pub const ROAD: u8 = 8;

pub struct Raster {
    pub x0: f64,
    pub y0: f64,
    pub cs: f64,
    pub nx: usize,
    pub ny: usize,
    pub flags: Vec<u8>,
    /// District index, 255 = none.
    pub district: Vec<u8>,
    /// Distance to the nearest cell outside the built-up area, metres (chamfer approximation).
    pub edge_dist: Vec<f32>,
}

impl Raster {
    pub fn new(minx: f64, miny: f64, maxx: f64, maxy: f64, cs: f64) -> Self {
        let nx = ((maxx - minx) / cs).ceil() as usize + 1;
        let ny = ((maxy - miny) / cs).ceil() as usize + 1;
        Raster {
            x0: minx,
            y0: miny,
            cs,
            nx,
            ny,
            flags: vec![0; nx * ny],
            district: vec![255; nx * ny],
            edge_dist: vec![0.0; nx * ny],
        }
    }

    #[inline]
    pub fn ij(&self, x: f64, y: f64) -> Option<(usize, usize)> {
        let i = ((x - self.x0) / self.cs).floor();
        let j = ((y - self.y0) / self.cs).floor();
        if i < 0.0 || j < 0.0 || i >= self.nx as f64 || j >= self.ny as f64 {
            None
        } else {
            Some((i as usize, j as usize))
        }
    }

    #[inline]
    pub fn idx(&self, x: f64, y: f64) -> Option<usize> {
        self.ij(x, y).map(|(i, j)| j * self.nx + i)
    }

    #[inline]
    pub fn flag(&self, x: f64, y: f64) -> u8 {
        self.idx(x, y).map(|k| self.flags[k]).unwrap_or(0)
    }

    #[inline]
    pub fn centre(&self, i: usize, j: usize) -> (f64, f64) {
        (self.x0 + (i as f64 + 0.5) * self.cs, self.y0 + (j as f64 + 0.5) * self.cs)
    }

    /// Every cell the rectangle touches is inside the built-up area, off its edge, and has none
    /// of `bad`.
    pub fn rect_ok(&self, minx: f64, miny: f64, maxx: f64, maxy: f64, bad: u8) -> bool {
        let (Some((i0, j0)), Some((i1, j1))) = (self.ij(minx, miny), self.ij(maxx, maxy)) else {
            return false;
        };
        for j in j0..=j1 {
            let row = &self.flags[j * self.nx..(j + 1) * self.nx];
            for f in &row[i0..=i1] {
                if f & INSIDE == 0 || f & (EDGE | bad) != 0 {
                    return false;
                }
            }
        }
        true
    }

    /// Any cell the rectangle touches has a flag of `any`.
    pub fn rect_any(&self, minx: f64, miny: f64, maxx: f64, maxy: f64, any: u8) -> bool {
        let (i0, j0) = self.clamp_ij(minx, miny);
        let (i1, j1) = self.clamp_ij(maxx, maxy);
        for j in j0..=j1 {
            for i in i0..=i1 {
                if self.flags[j * self.nx + i] & any != 0 {
                    return true;
                }
            }
        }
        false
    }

    fn clamp_ij(&self, x: f64, y: f64) -> (usize, usize) {
        let i = ((x - self.x0) / self.cs).floor().clamp(0.0, (self.nx - 1) as f64) as usize;
        let j = ((y - self.y0) / self.cs).floor().clamp(0.0, (self.ny - 1) as f64) as usize;
        (i, j)
    }

    /// Calls `set` for every cell whose centre lies inside the rings (even-odd rule; rings
    /// closed, metric coordinates).
    pub fn scan_fill(&self, rings: &[Vec<(f64, f64)>], mut set: impl FnMut(usize)) {
        let mut xs: Vec<f64> = Vec::new();
        for j in 0..self.ny {
            let y = self.y0 + (j as f64 + 0.5) * self.cs;
            xs.clear();
            for r in rings {
                for w in r.windows(2) {
                    let (a, b) = (w[0], w[1]);
                    if (a.1 <= y) != (b.1 <= y) {
                        xs.push(a.0 + (y - a.1) * (b.0 - a.0) / (b.1 - a.1));
                    }
                }
            }
            xs.sort_by(|a, b| a.total_cmp(b));
            for p in xs.chunks_exact(2) {
                let i0 = ((p[0] - self.x0) / self.cs - 0.5).ceil().max(0.0) as usize;
                let i1 = (((p[1] - self.x0) / self.cs - 0.5).ceil().max(0.0) as usize).min(self.nx);
                for i in i0..i1 {
                    set(j * self.nx + i);
                }
            }
        }
    }

    /// Sets `flag` on every cell a ring edge passes through, then on their 8 neighbours.
    pub fn mark_edges(&mut self, rings: &[Vec<(f64, f64)>], flag: u8) {
        let mut hit = vec![false; self.nx * self.ny];
        let step = self.cs / 4.0;
        for r in rings {
            for w in r.windows(2) {
                let (a, b) = (w[0], w[1]);
                let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
                let n = (len / step).ceil().max(1.0) as usize;
                for s in 0..=n {
                    let t = s as f64 / n as f64;
                    if let Some(k) = self.idx(a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)) {
                        hit[k] = true;
                    }
                }
            }
        }
        for j in 0..self.ny {
            for i in 0..self.nx {
                if !hit[j * self.nx + i] {
                    continue;
                }
                for dj in -1i64..=1 {
                    for di in -1i64..=1 {
                        let (ii, jj) = (i as i64 + di, j as i64 + dj);
                        if ii >= 0 && jj >= 0 && (ii as usize) < self.nx && (jj as usize) < self.ny {
                            self.flags[jj as usize * self.nx + ii as usize] |= flag;
                        }
                    }
                }
            }
        }
    }

    /// Sets `flag` on every cell any part of which lies within `r` metres of a polyline.
    pub fn mark_corridor(&mut self, pts: &[(f64, f64)], r: f64, flag: u8) {
        let reach = r + self.cs * std::f64::consts::FRAC_1_SQRT_2;
        for w in pts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let (minx, maxx) = (a.0.min(b.0) - reach, a.0.max(b.0) + reach);
            let (miny, maxy) = (a.1.min(b.1) - reach, a.1.max(b.1) + reach);
            let (i0, j0) = self.clamp_ij(minx, miny);
            let (i1, j1) = self.clamp_ij(maxx, maxy);
            for j in j0..=j1 {
                for i in i0..=i1 {
                    let c = self.centre(i, j);
                    if seg_dist(c, a, b) <= reach {
                        self.flags[j * self.nx + i] |= flag;
                    }
                }
            }
        }
    }

    /// Chamfer distance (metres) from each inside cell to the nearest non-inside cell.
    pub fn compute_edge_dist(&mut self) {
        let (nx, ny, cs) = (self.nx, self.ny, self.cs as f32);
        let diag = cs * std::f32::consts::SQRT_2;
        let d = &mut self.edge_dist;
        for (dk, fl) in d.iter_mut().zip(&self.flags) {
            *dk = if fl & INSIDE != 0 { f32::MAX } else { 0.0 };
        }
        for j in 0..ny {
            for i in 0..nx {
                let k = j * nx + i;
                let mut v = d[k];
                if i == 0 || j == 0 || i == nx - 1 || j == ny - 1 {
                    v = v.min(cs);
                }
                if i > 0 {
                    v = v.min(d[k - 1] + cs);
                }
                if j > 0 {
                    v = v.min(d[k - nx] + cs);
                    if i > 0 {
                        v = v.min(d[k - nx - 1] + diag);
                    }
                    if i + 1 < nx {
                        v = v.min(d[k - nx + 1] + diag);
                    }
                }
                d[k] = v;
            }
        }
        for j in (0..ny).rev() {
            for i in (0..nx).rev() {
                let k = j * nx + i;
                let mut v = d[k];
                if i + 1 < nx {
                    v = v.min(d[k + 1] + cs);
                }
                if j + 1 < ny {
                    v = v.min(d[k + nx] + cs);
                    if i + 1 < nx {
                        v = v.min(d[k + nx + 1] + diag);
                    }
                    if i > 0 {
                        v = v.min(d[k + nx - 1] + diag);
                    }
                }
                d[k] = v;
            }
        }
    }
}

/// Distance from point `p` to segment `a`–`b`.
pub fn seg_dist(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let l2 = dx * dx + dy * dy;
    let t = if l2 > 0.0 { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / l2).clamp(0.0, 1.0) } else { 0.0 };
    let (qx, qy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - qx).powi(2) + (p.1 - qy).powi(2)).sqrt()
}
