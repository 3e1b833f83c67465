//! OSM XML reading (`.osm`, `.osm.gz`), streaming with quick-xml. Errors name the line and byte
//! (of the decompressed XML).

use super::{node_is_poi, relation_is_interesting, way_is_interesting, RawOsm, RelRec, Tags};
use crate::report::{IngestError, Progress};
use quick_xml::events::{BytesStart, Event};
use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

/// A `BufRead` that counts the newlines consumed, for line numbers in errors.
struct LineCounting<R> {
    inner: R,
    lines: Rc<Cell<u64>>,
}

impl<R: BufRead> Read for LineCounting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let avail = self.inner.fill_buf()?;
            let n = avail.len().min(buf.len());
            buf[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LineCounting<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        if let Ok(b) = self.inner.fill_buf() {
            let nl = b[..amt.min(b.len())].iter().filter(|&&c| c == b'\n').count() as u64;
            self.lines.set(self.lines.get() + nl);
        }
        self.inner.consume(amt);
    }
}

#[derive(Default)]
enum Current {
    #[default]
    None,
    Node { id: i64, tags: Tags },
    Way { id: i64, refs: Vec<i64>, tags: Tags },
    Relation { id: i64, members: Vec<(i64, bool)>, tags: Tags },
    /// A deleted/invisible element: its children are skipped.
    Skipped,
}

pub(super) fn read(path: &str, name: &str) -> Result<RawOsm, IngestError> {
    let file = std::fs::File::open(path).map_err(|e| IngestError::file(name, format!("cannot open: {e}")))?;
    let gz = path.to_ascii_lowercase().ends_with(".gz");
    let inner: Box<dyn BufRead> = if gz {
        Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(BufReader::new(file))))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let lines = Rc::new(Cell::new(0u64));
    read_from(LineCounting { inner, lines: lines.clone() }, name, &lines)
}

/// Reads OSM XML from memory (uncompressed).
pub(super) fn read_bytes(bytes: &[u8], name: &str) -> Result<RawOsm, IngestError> {
    let lines = Rc::new(Cell::new(0u64));
    read_from(LineCounting { inner: bytes, lines: lines.clone() }, name, &lines)
}

fn read_from<R: BufRead>(input: R, name: &str, lines: &Rc<Cell<u64>>) -> Result<RawOsm, IngestError> {
    let mut reader = quick_xml::Reader::from_reader(input);
    reader.config_mut().check_end_names = true;
    let mut buf = Vec::new();
    let mut raw = RawOsm::default();
    let mut cur = Current::None;
    let mut depth = 0usize;
    let mut saw_root = false;
    let mut progress = Progress::new(format!("reading {name} (elements)"), None);
    let err = |reader: &quick_xml::Reader<R>, msg: String| {
        IngestError::file(
            name,
            format!("malformed OSM XML at line {} (byte {}): {msg}", lines.get() + 1, reader.buffer_position()),
        )
    };
    loop {
        let ev = match reader.read_event_into(&mut buf) {
            Ok(ev) => ev,
            Err(e) => return Err(err(&reader, e.to_string())),
        };
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) if depth == 0 => {
                if e.name().as_ref() != b"osm" || saw_root {
                    return Err(err(&reader, format!("root element <{}> is not <osm>", String::from_utf8_lossy(e.name().as_ref()))));
                }
                saw_root = true;
                // `<osm/>` (empty) has no children and leaves depth at 0.
                if matches!(ev, Event::Start(_)) {
                    depth = 1;
                }
            }
            Event::Start(e) => {
                depth += 1;
                start_element(&e, &mut cur, &mut raw, &reader, &err)?;
            }
            Event::Empty(e) => {
                start_element(&e, &mut cur, &mut raw, &reader, &err)?;
                if matches!(e.name().as_ref(), b"node" | b"way" | b"relation") {
                    end_element(&mut cur, &mut raw);
                    progress.inc(1);
                }
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                if matches!(e.name().as_ref(), b"node" | b"way" | b"relation") {
                    end_element(&mut cur, &mut raw);
                    progress.inc(1);
                }
            }
            Event::Eof => {
                if !saw_root {
                    return Err(err(&reader, "no <osm> root element (empty or not OSM XML)".into()));
                }
                if depth > 0 {
                    return Err(err(&reader, format!("unexpected end of file with {depth} element(s) still open (truncated?)")));
                }
                break;
            }
            _ => {}
        }
        buf.clear();
    }
    progress.finish();
    Ok(raw)
}

fn attr(e: &BytesStart<'_>, key: &[u8]) -> Result<Option<String>, String> {
    for a in e.attributes() {
        let a = a.map_err(|er| er.to_string())?;
        if a.key.as_ref() == key {
            return a.unescape_value().map(|v| Some(v.into_owned())).map_err(|er| er.to_string());
        }
    }
    Ok(None)
}

fn start_element<R>(
    e: &BytesStart<'_>,
    cur: &mut Current,
    raw: &mut RawOsm,
    reader: &quick_xml::Reader<R>,
    err: &dyn Fn(&quick_xml::Reader<R>, String) -> IngestError,
) -> Result<(), IngestError> {
    let el = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let get = |k: &[u8]| attr(e, k).map_err(|m| err(reader, format!("<{el}>: {m}")));
    let need_i64 = |k: &str| -> Result<i64, IngestError> {
        let v = get(k.as_bytes())?.ok_or_else(|| err(reader, format!("<{el}> without '{k}'")))?;
        v.trim().parse().map_err(|_| err(reader, format!("<{el}> has a non-integer {k}='{v}'")))
    };
    let deleted = || -> Result<bool, IngestError> {
        Ok(get(b"visible")?.as_deref() == Some("false") || get(b"action")?.as_deref() == Some("delete"))
    };
    match e.name().as_ref() {
        b"node" => {
            let id = need_i64("id")?;
            if deleted()? {
                *cur = Current::Skipped;
                return Ok(());
            }
            let coord = |k: &str, lim: f64| -> Result<i32, IngestError> {
                let v = get(k.as_bytes())?.ok_or_else(|| err(reader, format!("node {id} without '{k}'")))?;
                let f: f64 = v.trim().parse().map_err(|_| err(reader, format!("node {id} has a non-numeric {k}='{v}'")))?;
                if !f.is_finite() || f.abs() > lim {
                    return Err(err(reader, format!("node {id} has {k}={v} out of range")));
                }
                Ok((f * 1e7).round() as i32)
            };
            let lat = coord("lat", 90.0)?;
            let lon = coord("lon", 180.0)?;
            raw.nodes.push((id, lon, lat));
            raw.n_nodes += 1;
            *cur = Current::Node { id, tags: Vec::new() };
        }
        b"way" => {
            let id = need_i64("id")?;
            *cur = if deleted()? { Current::Skipped } else { Current::Way { id, refs: Vec::new(), tags: Vec::new() } };
        }
        b"relation" => {
            let id = need_i64("id")?;
            *cur = if deleted()? { Current::Skipped } else { Current::Relation { id, members: Vec::new(), tags: Vec::new() } };
        }
        b"tag" => {
            let k = get(b"k")?.ok_or_else(|| err(reader, "<tag> without 'k'".into()))?;
            let v = get(b"v")?.unwrap_or_default();
            match cur {
                Current::Node { tags, .. } | Current::Way { tags, .. } | Current::Relation { tags, .. } => tags.push((k, v)),
                _ => {}
            }
        }
        b"nd" => {
            if let Current::Way { refs, .. } = cur {
                refs.push(need_i64("ref")?);
            }
        }
        b"member" => {
            if let Current::Relation { members, .. } = cur {
                if get(b"type")?.as_deref() == Some("way") {
                    let r = need_i64("ref")?;
                    let role = get(b"role")?.unwrap_or_default();
                    members.push((r, role == "inner"));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn end_element(cur: &mut Current, raw: &mut RawOsm) {
    match std::mem::take(cur) {
        Current::Node { id, tags } => {
            if node_is_poi(&tags) {
                raw.poi_nodes.push((id, tags));
            }
        }
        Current::Way { id, refs, tags } => {
            let tags = if way_is_interesting(tags.iter().map(|(k, _)| k.as_str())) { tags } else { Vec::new() };
            raw.add_way(id, refs.into_iter(), tags);
        }
        Current::Relation { id, mut members, tags } => {
            raw.n_rels += 1;
            if relation_is_interesting(&tags) {
                if !super::relation_has_rings(&tags) {
                    members.clear();
                }
                raw.rels.push(RelRec { id, tags, members });
            }
        }
        Current::Skipped | Current::None => {}
    }
}
