#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = tiles::pmtiles::Reader::from_bytes(bytes::Bytes::copy_from_slice(data)) {
        let _ = r.header();
        let _ = r.tile_count();
        // Every addressed tile, bounded so a huge directory cannot stall the run.
        for (z, x, y) in r.tiles().take(256).collect::<Vec<_>>() {
            let _ = r.get(z, x, y);
        }
        let _ = r.get(0, 0, 0);
    }
});
