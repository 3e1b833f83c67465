#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    citytwin_fuzz::with_ctx("fuzz.city.json", |ctx| {
        let _ = scenes::cim::cityjson::ingest_bytes(ctx, data);
    });
});
