//! Multipolygon relation assembly: member ways joined end to end into closed rings, inners
//! assigned to the smallest outer that contains them.

use super::{NodeIndex, RawOsm};
use geo::coordinate_position::{CoordPos, CoordinatePosition};
use geo::orient::{Direction, Orient};
use geo::Area;
use geo_types::{Coord, LineString, MultiPolygon, Polygon};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MpError {
    MissingWay(i64),
    MissingNode(i64),
    OpenRing,
    NoOuter,
}

#[derive(Debug)]
pub(crate) struct Assembled {
    pub polygons: MultiPolygon<f64>,
    /// Rings with fewer than 4 points, dropped.
    pub degenerate_rings: usize,
    /// Inner rings inside no outer ring, dropped.
    pub stray_inners: usize,
}

/// Joins node-id sequences end to end into closed rings (reversing pieces as needed).
pub(crate) fn join_rings(pieces: Vec<&[i64]>) -> Result<Vec<Vec<i64>>, MpError> {
    let mut used = vec![false; pieces.len()];
    let mut by_end: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, p) in pieces.iter().enumerate() {
        if p.is_empty() {
            used[i] = true;
            continue;
        }
        by_end.entry(p[0]).or_default().push(i);
        by_end.entry(*p.last().unwrap()).or_default().push(i);
    }
    let mut rings = Vec::new();
    for start in 0..pieces.len() {
        if used[start] {
            continue;
        }
        used[start] = true;
        let mut ring: Vec<i64> = pieces[start].to_vec();
        while ring.len() < 2 || ring.first() != ring.last() {
            let end = *ring.last().unwrap();
            let next = by_end.get(&end).and_then(|c| c.iter().copied().find(|&j| !used[j]));
            let Some(j) = next else { return Err(MpError::OpenRing) };
            used[j] = true;
            let p = pieces[j];
            if p[0] == end {
                ring.extend_from_slice(&p[1..]);
            } else {
                ring.extend(p[..p.len() - 1].iter().rev());
            }
        }
        rings.push(ring);
    }
    Ok(rings)
}

fn ring_coords(ids: &[i64], nodes: &NodeIndex<'_>) -> Result<Vec<Coord<f64>>, MpError> {
    let mut out: Vec<Coord<f64>> = Vec::with_capacity(ids.len());
    for id in ids {
        let c = nodes.coord(*id).ok_or(MpError::MissingNode(*id))?;
        if out.last() != Some(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Whether `inner` lies inside `outer`: decided by the first inner vertex not on the outer's
/// boundary (all on the boundary counts as inside).
fn inside(outer: &Polygon<f64>, inner: &LineString<f64>) -> bool {
    for c in &inner.0 {
        match outer.coordinate_position(c) {
            CoordPos::Inside => return true,
            CoordPos::Outside => return false,
            CoordPos::OnBoundary => {}
        }
    }
    true
}

pub(crate) fn assemble(members: &[(i64, bool)], raw: &RawOsm, nodes: &NodeIndex<'_>) -> Result<Assembled, MpError> {
    let mut outer_pieces = Vec::new();
    let mut inner_pieces = Vec::new();
    for (wid, is_inner) in members {
        let w = raw.way(*wid).ok_or(MpError::MissingWay(*wid))?;
        let refs = raw.way_refs(w);
        if *is_inner {
            inner_pieces.push(refs);
        } else {
            outer_pieces.push(refs);
        }
    }
    let mut degenerate_rings = 0;
    let mut to_rings = |pieces: Vec<&[i64]>| -> Result<Vec<LineString<f64>>, MpError> {
        let mut out = Vec::new();
        for ids in join_rings(pieces)? {
            let coords = ring_coords(&ids, nodes)?;
            if coords.len() < 4 {
                degenerate_rings += 1;
            } else {
                out.push(LineString::new(coords));
            }
        }
        Ok(out)
    };
    let outers = to_rings(outer_pieces)?;
    let inners = to_rings(inner_pieces)?;
    if outers.is_empty() {
        return Err(MpError::NoOuter);
    }
    let mut polys: Vec<(f64, LineString<f64>, Vec<LineString<f64>>)> = outers
        .into_iter()
        .map(|r| {
            let a = Polygon::new(r.clone(), vec![]).unsigned_area();
            (a, r, Vec::new())
        })
        .collect();
    // Smallest outer first, so an inner goes to the tightest outer containing it. Stable sort:
    // equal areas keep member order.
    polys.sort_by(|a, b| a.0.total_cmp(&b.0));
    let tests: Vec<Polygon<f64>> = polys.iter().map(|(_, r, _)| Polygon::new(r.clone(), vec![])).collect();
    let mut stray_inners = 0;
    for inner in inners {
        match tests.iter().position(|o| inside(o, &inner)) {
            Some(i) => polys[i].2.push(inner),
            None => stray_inners += 1,
        }
    }
    let polygons = MultiPolygon::new(polys.into_iter().map(|(_, ext, holes)| Polygon::new(ext, holes)).collect())
        .orient(Direction::Default);
    Ok(Assembled { polygons, degenerate_rings, stray_inners })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_reversed_pieces() {
        let a = [1, 2, 3];
        let b = [5, 4, 3]; // reversed
        let c = [5, 6, 1];
        let rings = join_rings(vec![&a, &b, &c]).unwrap();
        assert_eq!(rings, vec![vec![1, 2, 3, 4, 5, 6, 1]]);
        let open = join_rings(vec![&a, &b]);
        assert_eq!(open, Err(MpError::OpenRing));
        let closed = [7, 8, 9, 7];
        assert_eq!(join_rings(vec![&closed, &a, &b, &c]).unwrap().len(), 2);
    }
}
