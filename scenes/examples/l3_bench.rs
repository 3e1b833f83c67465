//! L3 geometry throughput: roofs + walls + facades per building, and tree placement.
//!   cargo run --release -p scenes --example l3_bench -- [shenyang|GEOJSON]
//! `shenyang`: the built-in city (boundaries from ../shared/data/shenyang/cnmaps or
//! $CITYTWIN_BOUNDARIES), L3 for every building of 和平 and 沈河 (the default focus districts)
//! and trees in all its parks. A file: every building of that source. Single-threaded.

use scenes::l3::{building_mesh, trees, LocalFrame};
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "shenyang".into());
    let mut report = scenes::BuildReport::default();
    let t0 = Instant::now();
    let model = if arg == "shenyang" {
        let dir = scenes::shenyang::find_boundaries(None).expect("boundaries");
        scenes::shenyang::build_default(&dir, 20251122, &mut report).expect("default city")
    } else {
        let mut m = scenes::CityModel::empty("bench");
        scenes::ingest::ingest_source(&scenes::ingest::SourceSpec::new(arg.clone()), &mut m, &mut report).expect("ingest");
        m
    };
    let load = t0.elapsed().as_secs_f64();
    let focus: Vec<u16> = model
        .districts
        .iter()
        .filter(|d| matches!(d.names.zh.as_deref(), Some("和平区") | Some("沈河区")))
        .map(|d| d.id)
        .collect();
    let selected: Vec<&scenes::model::Building> = model
        .buildings
        .iter()
        .filter(|b| arg != "shenyang" || b.district.is_some_and(|d| focus.contains(&d)))
        .collect();
    let t1 = Instant::now();
    let (mut ok, mut err, mut tris, mut verts) = (0usize, 0usize, 0usize, 0usize);
    let mut roofs: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &selected {
        let Some(c) = geo::Centroid::centroid(&b.footprint) else { continue };
        match building_mesh(b, &LocalFrame::new(c.x(), c.y()), 0.0) {
            Ok(l3) => {
                ok += 1;
                tris += l3.mesh.triangle_count();
                verts += l3.mesh.vertex_count();
                *roofs.entry(l3.roof.as_str()).or_default() += 1;
            }
            Err(_) => err += 1,
        }
    }
    let secs = t1.elapsed().as_secs_f64();
    println!(
        "{arg}: load {load:.2} s; L3 for {} buildings in {secs:.2} s = {:.0} buildings/s; {ok} ok, {err} errors; \
         {:.1} triangles and {:.1} vertices per building; roofs {roofs:?}",
        selected.len(),
        selected.len() as f64 / secs,
        tris as f64 / ok.max(1) as f64,
        verts as f64 / ok.max(1) as f64
    );
    let bb = model.bbox().unwrap();
    let frame = LocalFrame::new((bb[0] + bb[2]) / 2.0, (bb[1] + bb[3]) / 2.0);
    let t2 = Instant::now();
    let placed = trees::place_trees(&model, &frame, 1);
    let secs = t2.elapsed().as_secs_f64();
    let mesh = trees::trees_mesh(&placed, |_| 0.0);
    println!(
        "trees: {} placed in {secs:.2} s ({:.0}/s) in {} tree areas; instanced mesh {} triangles",
        placed.len(),
        placed.len() as f64 / secs,
        model.landuse.iter().filter(|a| trees::density_per_100m2(&a.class).is_some()).count(),
        mesh.triangle_count()
    );
}
