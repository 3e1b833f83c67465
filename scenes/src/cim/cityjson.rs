//! cityjson ingest (in progress).

use crate::ingest::SourceCtx;
use crate::report::IngestError;

pub fn ingest(ctx: &mut SourceCtx<'_>) -> Result<u64, IngestError> {
    Err(ctx.err("cityjson ingest is not implemented yet"))
}
