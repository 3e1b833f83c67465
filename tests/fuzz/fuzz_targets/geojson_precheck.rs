#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    citytwin_fuzz::with_ctx("fuzz.geojson", |ctx| {
        let _ = scenes::ingest::gdal_vector::geojson_precheck_bytes(ctx, data);
    });
});
