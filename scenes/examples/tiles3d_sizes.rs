//! Size/speed matrix of the 3D Tiles writer on the default city (docs/BENCHMARKS.md):
//! features per tile × position encoding × normals.
//!   cargo run --release -p scenes --example tiles3d_sizes [-- --quick]
use scenes::threed::{self, Options};
use tiles::gltf::PositionEncoding;

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = scenes::shenyang::find_boundaries(None)?;
    let mut report = scenes::BuildReport::default();
    let mut model = scenes::shenyang::build_default(&dir, scenes::shenyang::DEFAULT_SEED, &mut report)?;
    model.renumber();
    let n = model.buildings.len() as f64;
    let tmp = tempfile::tempdir()?;
    let mut cases = vec![];
    for per_tile in [250usize, 500, 1000, 2000, 4000, 8000] {
        cases.push((per_tile, PositionEncoding::Int16, false));
    }
    if !quick {
        cases.push((2000, PositionEncoding::Float, false));
        cases.push((2000, PositionEncoding::Float, true));
        cases.push((2000, PositionEncoding::Int16, true));
    }
    println!("| features/tile | positions | normals | tiles | mean GLB KB | raw B/building | gzip B/building | s |");
    println!("|---|---|---|---|---|---|---|---|");
    for (i, (per_tile, enc, normals)) in cases.into_iter().enumerate() {
        let opts = Options { max_features_per_tile: per_tile, positions: enc, normals, ..Default::default() };
        let out = tmp.path().join(format!("t{i}"));
        let s = threed::write(&model, &out, &opts)?;
        println!(
            "| {per_tile} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.2} |",
            if enc == PositionEncoding::Int16 { "int16" } else { "float32" },
            if normals { "flat, per face" } else { "none (shared)" },
            s.tiles,
            s.bytes_raw as f64 / s.tiles as f64 / 1024.0,
            s.bytes_raw as f64 / n,
            s.bytes as f64 / n,
            s.seconds
        );
        std::fs::remove_dir_all(&out)?;
    }
    Ok(())
}
