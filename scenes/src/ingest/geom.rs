//! Geometry clean-up shared by the ingest paths: per-feature repair or rejection with a reason.

use geo::orient::{Direction, Orient};
use geo::{Area, BooleanOps, RemoveRepeatedPoints, Validation};
use geo_types::{Coord, LineString, MultiPolygon, Polygon};

/// Outcome of [`repair_polygons`].
#[derive(Debug)]
pub enum Repaired {
    /// Valid as given (after orientation normalisation, which is not counted as a repair).
    Valid(MultiPolygon<f64>),
    /// Fixed; the reason says what was wrong.
    Fixed(MultiPolygon<f64>, &'static str),
    /// Unusable; the reason says why.
    Rejected(&'static str),
}

fn ring_ok(ls: &LineString<f64>) -> bool {
    // A closed ring needs at least 3 distinct points (4 coordinates with the closing one).
    ls.0.len() >= 4
}

fn finite(c: &Coord<f64>) -> bool {
    c.x.is_finite() && c.y.is_finite()
}

/// Validates and, where possible, repairs a polygonal geometry in lon/lat:
/// non-finite coordinates → rejected; unclosed rings → closed; repeated consecutive vertices →
/// removed; rings with fewer than 3 distinct vertices → dropped (the polygon is rejected if its
/// exterior goes); self-intersections and overlapping parts → resolved by a boolean union
/// (geo/i_overlay, even-odd fill of the rings as drawn); zero area → rejected. Output rings are
/// oriented exterior counter-clockwise, holes clockwise.
pub fn repair_polygons(mp: MultiPolygon<f64>) -> Repaired {
    if mp.0.is_empty() {
        return Repaired::Rejected("empty geometry");
    }
    if mp.0.iter().any(|p| p.exterior().0.iter().chain(p.interiors().iter().flat_map(|r| r.0.iter())).any(|c| !finite(c))) {
        return Repaired::Rejected("non-finite coordinate");
    }
    let mut reason: Option<&'static str> = None;
    let mut polys = Vec::with_capacity(mp.0.len());
    for p in mp.0 {
        let (ext, ints) = p.into_inner();
        let mut fix_ring = |mut r: LineString<f64>| -> Option<LineString<f64>> {
            if r.0.first() != r.0.last() {
                reason.get_or_insert("unclosed ring");
                r.close();
            }
            let before = r.0.len();
            let r2 = r.remove_repeated_points();
            if r2.0.len() != before {
                reason.get_or_insert("repeated vertices");
            }
            ring_ok(&r2).then_some(r2)
        };
        let Some(ext) = fix_ring(ext) else {
            reason.get_or_insert("degenerate ring");
            continue;
        };
        let n_ints = ints.len();
        let ints: Vec<_> = ints.into_iter().filter_map(&mut fix_ring).collect();
        if ints.len() != n_ints {
            reason.get_or_insert("degenerate hole");
        }
        polys.push(Polygon::new(ext, ints));
    }
    if polys.is_empty() {
        return Repaired::Rejected("degenerate polygon (fewer than 3 distinct vertices)");
    }
    let mut out = MultiPolygon::new(polys);
    if !out.is_valid() {
        // Union with nothing re-nodes the rings: self-intersections become vertices, bow-ties
        // split into valid parts, overlapping parts merge.
        let fixed = out.union(&MultiPolygon::new(vec![]));
        if fixed.0.is_empty() || !fixed.is_valid() {
            return Repaired::Rejected("invalid polygon that cannot be repaired");
        }
        reason = Some("self-intersection or overlap resolved");
        out = fixed;
    }
    if out.unsigned_area() <= 0.0 {
        return Repaired::Rejected("zero area");
    }
    let out = out.orient(Direction::Default);
    match reason {
        None => Repaired::Valid(out),
        Some(r) => Repaired::Fixed(out, r),
    }
}

/// Applies a coordinate mapping to every vertex of a multipolygon.
pub fn map_coords_mp(mp: &mut MultiPolygon<f64>, f: &mut dyn FnMut(&mut Coord<f64>)) {
    for p in mp.0.iter_mut() {
        p.exterior_mut(|e| e.0.iter_mut().for_each(&mut *f));
        p.interiors_mut(|ints| {
            for r in ints {
                r.0.iter_mut().for_each(&mut *f);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::polygon;

    #[test]
    fn bowtie_is_repaired_into_valid_parts() {
        let bow = polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 1.0), (x: 1.0, y: 0.0), (x: 0.0, y: 1.0), (x: 0.0, y: 0.0)];
        match repair_polygons(MultiPolygon::new(vec![bow])) {
            Repaired::Fixed(mp, why) => {
                assert!(mp.is_valid());
                assert_eq!(why, "self-intersection or overlap resolved");
                // Two triangles of 0.25 each.
                assert!((mp.unsigned_area() - 0.5).abs() < 1e-12, "{}", mp.unsigned_area());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn degenerate_and_repeated() {
        let line = polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 0.0, y: 0.0)];
        assert!(matches!(repair_polygons(MultiPolygon::new(vec![line])), Repaired::Rejected(_)));
        let rep = polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 1.0, y: 0.0), (x: 1.0, y: 1.0), (x: 0.0, y: 0.0)];
        assert!(matches!(repair_polygons(MultiPolygon::new(vec![rep])), Repaired::Fixed(_, "repeated vertices")));
        let cw = polygon![(x: 0.0, y: 0.0), (x: 0.0, y: 1.0), (x: 1.0, y: 1.0), (x: 1.0, y: 0.0), (x: 0.0, y: 0.0)];
        match repair_polygons(MultiPolygon::new(vec![cw])) {
            Repaired::Valid(mp) => {
                use geo::Winding;
                assert!(mp.0[0].exterior().is_ccw());
            }
            other => panic!("{other:?}"),
        }
    }
}
