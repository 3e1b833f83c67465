//! Road-graph routing throughput (`scenes::routing`).
//!   cargo run --release -p scenes --example routing_bench -- [shenyang|FILE ...]
//! `shenyang` (default): the built-in city (boundaries from ../shared/data/shenyang/cnmaps or
//! $CITYTWIN_BOUNDARIES). FILE: any source the ingest reads (e.g. an OSM extract); several files
//! are measured one after another. Prints the graph report, the graph build time, k-nearest
//! queries per second (k = 5 among the model's police/fire/hospital POIs, or 200 random road
//! points when it has none, for incidents at seeded random road points) and route queries per
//! second (seeded random pairs), single-threaded.

use scenes::model::PoiKind;
use scenes::routing::RoadGraph;
use std::time::Instant;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = if args.is_empty() { vec!["shenyang".to_string()] } else { args };
    for arg in args {
        run(&arg);
    }
}

fn run(arg: &str) {
    let mut report = scenes::BuildReport::default();
    let t0 = Instant::now();
    let model = if arg == "shenyang" {
        let dir = scenes::shenyang::find_boundaries(None).expect("boundaries");
        scenes::shenyang::build_default(&dir, scenes::shenyang::DEFAULT_SEED, &mut report).expect("default city")
    } else {
        let mut m = scenes::CityModel::empty("bench");
        scenes::ingest::ingest_source(&scenes::ingest::SourceSpec::new(arg.to_string()), &mut m, &mut report).expect("ingest");
        m
    };
    println!("== {arg}: model loaded in {:.1} s, {} roads", t0.elapsed().as_secs_f64(), model.roads.len());
    let t1 = Instant::now();
    let (g, r) = RoadGraph::from_model(&model).expect("graph");
    let build_s = t1.elapsed().as_secs_f64();
    println!("graph build: {:.3} s", build_s);
    println!("{}", serde_json::to_string_pretty(&r).unwrap());

    // random points on drivable roads of the main component
    let mut rng = Lcg(42);
    let roads: Vec<&scenes::model::Road> = model.roads.iter().filter(|rd| g.road_in_main_component(rd.id)).collect();
    let point = |rng: &mut Lcg| {
        let rd = roads[(rng.next() * roads.len() as f64) as usize % roads.len()];
        let pts = &rd.geometry.0;
        let i = ((rng.next() * (pts.len() - 1) as f64) as usize).min(pts.len() - 2);
        let t = rng.next();
        (pts[i].x + t * (pts[i + 1].x - pts[i].x), pts[i].y + t * (pts[i + 1].y - pts[i].y))
    };
    let mut units: Vec<(u32, f64, f64)> = model
        .pois
        .iter()
        .filter(|p| matches!(p.kind, PoiKind::PoliceStation | PoiKind::FireStation | PoiKind::Hospital))
        .map(|p| (p.id, p.location.x(), p.location.y()))
        .filter(|&(_, x, y)| g.snap("unit", x, y).is_ok())
        .collect();
    if units.is_empty() {
        units = (0..200).map(|i| {
            let (x, y) = point(&mut rng);
            (i, x, y)
        }).collect();
    }
    let incidents: Vec<(f64, f64)> = (0..200).map(|_| point(&mut rng)).collect();

    let t2 = Instant::now();
    let mut n = 0usize;
    let mut eta_sum = 0.0;
    while n < incidents.len() {
        let res = g.nearest_units(incidents[n], &units, 5, 3600.0).expect("nearest");
        eta_sum += res.first().map(|r| r.eta_s).unwrap_or(0.0);
        n += 1;
    }
    let knn_s = t2.elapsed().as_secs_f64();
    println!(
        "k-nearest (k=5 of {} units, bound 1 h): {} queries in {:.3} s = {:.0} queries/s (mean best ETA {:.0} s)",
        units.len(),
        n,
        knn_s,
        n as f64 / knn_s,
        eta_sum / n as f64
    );

    let t3 = Instant::now();
    let mut full = 0usize;
    for inc in incidents.iter().take(50) {
        let tt = g.travel_times_to(inc.0, inc.1, f64::INFINITY).expect("tt");
        full += tt.settled;
    }
    let tt_s = t3.elapsed().as_secs_f64();
    println!("unbounded travel_times_to: 50 in {:.3} s = {:.1}/s ({} nodes settled each)", tt_s, 50.0 / tt_s, full / 50);

    let pairs: Vec<((f64, f64), (f64, f64))> = (0..200).map(|_| (point(&mut rng), point(&mut rng))).collect();
    let t4 = Instant::now();
    let (mut len, mut dur) = (0.0, 0.0);
    for (a, b) in &pairs {
        let rt = g.route(*a, *b).expect("route");
        len += rt.length_m;
        dur += rt.duration_s;
    }
    let route_s = t4.elapsed().as_secs_f64();
    println!(
        "routes: {} in {:.3} s = {:.0} routes/s (mean {:.2} km, {:.0} s)",
        pairs.len(),
        route_s,
        pairs.len() as f64 / route_s,
        len / pairs.len() as f64 / 1e3,
        dur / pairs.len() as f64
    );
}
