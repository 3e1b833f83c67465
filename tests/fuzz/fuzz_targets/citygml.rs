#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    citytwin_fuzz::with_ctx("fuzz.gml", |ctx| {
        let _ = scenes::cim::citygml::ingest_reader(ctx, data);
    });
});
