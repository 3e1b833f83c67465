#![no_main]
use libfuzzer_sys::fuzz_target;
use scenes::ingest::osm::{ingest_bytes, OsmFormat};

fuzz_target!(|data: &[u8]| {
    citytwin_fuzz::with_ctx("fuzz.osm", |ctx| {
        let _ = ingest_bytes(ctx, data, OsmFormat::Xml);
    });
});
