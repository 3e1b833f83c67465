pub fn ingest(ctx: &mut super::SourceCtx<'_>) -> Result<u64, crate::report::IngestError> { Err(ctx.err("todo")) }
