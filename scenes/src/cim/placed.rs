//! Placed glTF/GLB and IFC models (in progress).

use crate::ingest::{SourceCtx, SourceKind};
use crate::report::IngestError;

pub fn ingest(ctx: &mut SourceCtx<'_>, _kind: SourceKind) -> Result<u64, IngestError> {
    Err(ctx.err("glTF/IFC ingest is not implemented yet"))
}
