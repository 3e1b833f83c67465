//! PBF reading: blobs are read sequentially (so a read error knows its blob number and byte
//! offset), decoded in parallel in batches, and merged in blob order.

use super::{relation_is_interesting, way_is_interesting, RawOsm, RelRec, Tags};
use crate::report::{IngestError, Progress};
use osmpbf::{Blob, BlobDecode, BlobReader, Element, RelMemberType};
use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counts the bytes handed to the PBF parser, so errors can say where in the file they happened.
struct Counting<R> {
    inner: R,
    pos: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Features a reader must implement to understand a file; anything else (e.g. history files,
/// `HistoricalInformation`) is refused.
const SUPPORTED_FEATURES: &[&str] = &["OsmSchema-V0.6", "DenseNodes"];

/// Blobs decoded together.
const BATCH: usize = 32;

pub(super) fn read(path: &str, name: &str) -> Result<RawOsm, IngestError> {
    let file = std::fs::File::open(path).map_err(|e| IngestError::file(name, format!("cannot open: {e}")))?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    read_from(BufReader::with_capacity(1 << 20, file), file_len, name)
}

/// Reads a PBF stream of `file_len` bytes (the length is needed to tell trailing garbage).
pub(super) fn read_from<R: Read + Send>(input: R, file_len: u64, name: &str) -> Result<RawOsm, IngestError> {
    let pos = Arc::new(AtomicU64::new(0));
    let reader = BlobReader::new(Counting { inner: input, pos: pos.clone() });
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 16);
    let mut progress = Progress::new(format!("reading {name}"), Some(file_len));

    let mut raw = RawOsm::default();
    let mut batch: Vec<(usize, u64, Blob)> = Vec::with_capacity(BATCH);
    let mut blob_no = 0usize;
    let mut last_pos = 0u64;
    let mut saw_header = false;
    let mut reader = reader;
    loop {
        let start = pos.load(Ordering::Relaxed);
        match reader.next() {
            None => break,
            Some(Err(e)) => {
                let at = pos.load(Ordering::Relaxed);
                return Err(IngestError::file(
                    name,
                    format!(
                        "PBF blob #{blob_no} starting at byte {start} unreadable (stopped at byte {at} of {file_len}; \
                         file truncated or corrupt): {e}"
                    ),
                ));
            }
            Some(Ok(blob)) => {
                let now = pos.load(Ordering::Relaxed);
                progress.inc(now - last_pos);
                last_pos = now;
                if blob_no == 0 {
                    match blob.decode() {
                        Ok(BlobDecode::OsmHeader(h)) => {
                            if let Some(f) = h.required_features().iter().find(|f| !SUPPORTED_FEATURES.contains(&f.as_str())) {
                                return Err(IngestError::file(name, format!("PBF requires unsupported feature '{f}'")));
                            }
                            saw_header = true;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            return Err(IngestError::file(name, format!("PBF blob #0 at byte {start}: cannot decode header: {e}")))
                        }
                    }
                } else {
                    batch.push((blob_no, start, blob));
                }
                blob_no += 1;
            }
        }
        if batch.len() >= BATCH {
            decode_batch(&mut batch, threads, name, &mut raw)?;
        }
    }
    decode_batch(&mut batch, threads, name, &mut raw)?;
    if !saw_header {
        return Err(IngestError::file(name, "not an OSM PBF file (no OSMHeader blob)"));
    }
    // A file cut exactly at a blob boundary cannot be told from a complete one by the format; a
    // file cut inside a blob can, and is an error above. Leftover bytes that do not make a blob:
    let end = pos.load(Ordering::Relaxed);
    if end < file_len {
        return Err(IngestError::file(
            name,
            format!("PBF blob #{blob_no} at byte {end} of {file_len}: trailing bytes do not form a blob (file truncated or corrupt)"),
        ));
    }
    progress.finish();
    Ok(raw)
}

fn decode_batch(batch: &mut Vec<(usize, u64, Blob)>, threads: usize, name: &str, raw: &mut RawOsm) -> Result<(), IngestError> {
    if batch.is_empty() {
        return Ok(());
    }
    let chunk = batch.len().div_ceil(threads);
    let parts: Vec<Result<Vec<RawOsm>, IngestError>> = std::thread::scope(|s| {
        let handles: Vec<_> = batch
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|(no, off, blob)| {
                            decode_blob(blob).map_err(|e| {
                                IngestError::file(name, format!("PBF blob #{no} at byte {off}: cannot decode: {e}"))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(IngestError::file(name, "PBF decoder thread panicked"))))
            .collect()
    });
    batch.clear();
    for part in parts {
        for r in part? {
            raw.append(r);
        }
    }
    Ok(())
}

fn tags_of<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> Tags {
    it.map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn decode_blob(blob: &Blob) -> Result<RawOsm, osmpbf::Error> {
    let mut raw = RawOsm::default();
    let block = match blob.decode()? {
        BlobDecode::OsmData(b) => b,
        _ => return Ok(raw),
    };
    for el in block.elements() {
        match el {
            Element::DenseNode(n) => raw.add_node(n.id(), n.decimicro_lon(), n.decimicro_lat(), tags_of(n.tags())),
            Element::Node(n) => raw.add_node(n.id(), n.decimicro_lon(), n.decimicro_lat(), tags_of(n.tags())),
            Element::Way(w) => {
                let tags = if way_is_interesting(w.tags().map(|(k, _)| k)) { tags_of(w.tags()) } else { Vec::new() };
                raw.add_way(w.id(), w.refs(), tags);
            }
            Element::Relation(r) => {
                raw.n_rels += 1;
                let tags = tags_of(r.tags());
                if !relation_is_interesting(&tags) {
                    continue;
                }
                let mut members = Vec::new();
                if super::relation_has_rings(&tags) {
                    for m in r.members() {
                        if m.member_type == RelMemberType::Way {
                            members.push((m.member_id, m.role()? == "inner"));
                        }
                    }
                }
                raw.rels.push(RelRec { id: r.id(), tags, members });
            }
        }
    }
    Ok(raw)
}
