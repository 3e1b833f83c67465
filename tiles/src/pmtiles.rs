//! PMTiles v3 archives: a [`Writer`] (tiles in any order; clustered, deduplicated, run-length
//! encoded, leaf directories when the root would not fit the first 16,384 bytes) and a
//! [`Reader`] that validates the whole directory tree when it opens an archive.
//!
//! Layout written: header (127 bytes) · root directory · JSON metadata · leaf directories ·
//! tile data. Directories and metadata use the archive's internal compression (gzip);
//! tile blobs are stored exactly as given (the caller compresses them and declares the
//! compression in [`WriterOptions`]).

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use flate2::{read::GzDecoder, write::GzEncoder, Compression as GzLevel};

/// Size of the fixed header.
pub const HEADER_LEN: usize = 127;
/// The header and the root directory must fit in the first 16,384 bytes.
pub const ROOT_LIMIT: usize = 16_384;
/// Highest zoom whose tile ids fit in 64 bits comfortably (the spec's reference limit).
pub const MAX_ZOOM: u8 = 26;
const MAGIC: &[u8; 7] = b"PMTiles";
/// One past the last tile id of zoom [`MAX_ZOOM`].
const END_TILE_ID: u64 = ((1u64 << (2 * (MAX_ZOOM as u32 + 1))) - 1) / 3;

/// An error reading or writing a PMTiles archive; names the file (when known) and what is wrong.
#[derive(Debug)]
pub struct Error {
    pub path: Option<PathBuf>,
    pub message: String,
}

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Error { path: None, message: message.into() }
    }
    fn at(mut self, path: &Path) -> Self {
        self.path = Some(path.to_path_buf());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}: PMTiles: {}", p.display(), self.message),
            None => write!(f, "PMTiles: {}", self.message),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Compression of directories/metadata (internal) or of tile blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Unknown,
    None,
    Gzip,
    Brotli,
    Zstd,
}

impl Compression {
    fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            0 => Compression::Unknown,
            1 => Compression::None,
            2 => Compression::Gzip,
            3 => Compression::Brotli,
            4 => Compression::Zstd,
            _ => return Err(Error::new(format!("unknown compression code {v} in header"))),
        })
    }
    fn to_u8(self) -> u8 {
        match self {
            Compression::Unknown => 0,
            Compression::None => 1,
            Compression::Gzip => 2,
            Compression::Brotli => 3,
            Compression::Zstd => 4,
        }
    }
    /// The HTTP `Content-Encoding` value, if any.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::Gzip => Some("gzip"),
            Compression::Brotli => Some("br"),
            Compression::Zstd => Some("zstd"),
            _ => None,
        }
    }
}

/// What the tiles are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileType {
    Unknown,
    Mvt,
    Png,
    Jpeg,
    Webp,
    Avif,
}

impl TileType {
    fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            0 => TileType::Unknown,
            1 => TileType::Mvt,
            2 => TileType::Png,
            3 => TileType::Jpeg,
            4 => TileType::Webp,
            5 => TileType::Avif,
            _ => return Err(Error::new(format!("unknown tile type code {v} in header"))),
        })
    }
    fn to_u8(self) -> u8 {
        match self {
            TileType::Unknown => 0,
            TileType::Mvt => 1,
            TileType::Png => 2,
            TileType::Jpeg => 3,
            TileType::Webp => 4,
            TileType::Avif => 5,
        }
    }
    /// Conventional MIME type.
    pub fn content_type(self) -> &'static str {
        match self {
            TileType::Mvt => "application/vnd.mapbox-vector-tile",
            TileType::Png => "image/png",
            TileType::Jpeg => "image/jpeg",
            TileType::Webp => "image/webp",
            TileType::Avif => "image/avif",
            TileType::Unknown => "application/octet-stream",
        }
    }
}

/// The decoded 127-byte header. Offsets are absolute byte offsets in the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub root_offset: u64,
    pub root_length: u64,
    pub metadata_offset: u64,
    pub metadata_length: u64,
    pub leaf_offset: u64,
    pub leaf_length: u64,
    pub data_offset: u64,
    pub data_length: u64,
    pub addressed_tiles: u64,
    pub tile_entries: u64,
    pub tile_contents: u64,
    pub clustered: bool,
    pub internal_compression: Compression,
    pub tile_compression: Compression,
    pub tile_type: TileType,
    pub min_zoom: u8,
    pub max_zoom: u8,
    /// `[west, south, east, north]` in degrees (stored as degrees × 10⁷).
    pub bounds: [f64; 4],
    pub center_zoom: u8,
    /// `[lon, lat]` in degrees.
    pub center: [f64; 2],
}

fn e7(v: f64) -> i32 {
    (v * 1e7).round().clamp(i32::MIN as f64, i32::MAX as f64) as i32
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..7].copy_from_slice(MAGIC);
        b[7] = 3;
        let u64s = [
            self.root_offset,
            self.root_length,
            self.metadata_offset,
            self.metadata_length,
            self.leaf_offset,
            self.leaf_length,
            self.data_offset,
            self.data_length,
            self.addressed_tiles,
            self.tile_entries,
            self.tile_contents,
        ];
        for (i, v) in u64s.iter().enumerate() {
            b[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b[96] = self.clustered as u8;
        b[97] = self.internal_compression.to_u8();
        b[98] = self.tile_compression.to_u8();
        b[99] = self.tile_type.to_u8();
        b[100] = self.min_zoom;
        b[101] = self.max_zoom;
        for (i, v) in self.bounds.iter().enumerate() {
            b[102 + i * 4..106 + i * 4].copy_from_slice(&e7(*v).to_le_bytes());
        }
        b[118] = self.center_zoom;
        b[119..123].copy_from_slice(&e7(self.center[0]).to_le_bytes());
        b[123..127].copy_from_slice(&e7(self.center[1]).to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Result<Self> {
        if b.len() < HEADER_LEN {
            return Err(Error::new(format!(
                "file is {} bytes, shorter than the 127-byte header (truncated or not a PMTiles archive)",
                b.len()
            )));
        }
        if &b[..7] != MAGIC {
            return Err(Error::new("bad magic: the file does not start with \"PMTiles\""));
        }
        if b[7] != 3 {
            return Err(Error::new(format!("spec version {} is not supported (only v3)", b[7])));
        }
        let u = |i: usize| u64::from_le_bytes(b[8 + i * 8..16 + i * 8].try_into().unwrap());
        let i32at = |o: usize| i32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as f64 / 1e7;
        Ok(Header {
            root_offset: u(0),
            root_length: u(1),
            metadata_offset: u(2),
            metadata_length: u(3),
            leaf_offset: u(4),
            leaf_length: u(5),
            data_offset: u(6),
            data_length: u(7),
            addressed_tiles: u(8),
            tile_entries: u(9),
            tile_contents: u(10),
            clustered: b[96] == 1,
            internal_compression: Compression::from_u8(b[97])?,
            tile_compression: Compression::from_u8(b[98])?,
            tile_type: TileType::from_u8(b[99])?,
            min_zoom: b[100],
            max_zoom: b[101],
            bounds: [i32at(102), i32at(106), i32at(110), i32at(114)],
            center_zoom: b[118],
            center: [i32at(119), i32at(123)],
        })
    }
}

/// Hilbert tile id of `z/x/y` (tiles of lower zooms come first; within a zoom, Hilbert order).
pub fn zxy_to_tile_id(z: u8, x: u32, y: u32) -> u64 {
    assert!(z <= MAX_ZOOM, "zoom {z} > {MAX_ZOOM}");
    let acc: u64 = ((1u64 << (2 * z as u32)) - 1) / 3;
    let n: u64 = 1u64 << z;
    let (mut x, mut y) = (x as u64, y as u64);
    let mut d: u64 = 0;
    let mut s = n / 2;
    while s > 0 {
        let rx = ((x & s) > 0) as u64;
        let ry = ((y & s) > 0) as u64;
        d += s * s * ((3 * rx) ^ ry);
        if ry == 0 {
            if rx == 1 {
                x = n - 1 - x;
                y = n - 1 - y;
            }
            std::mem::swap(&mut x, &mut y);
        }
        s /= 2;
    }
    acc + d
}

/// Inverse of [`zxy_to_tile_id`].
pub fn tile_id_to_zxy(id: u64) -> (u8, u32, u32) {
    let mut acc = 0u64;
    for z in 0..=MAX_ZOOM {
        let count = 1u64 << (2 * z as u32);
        if id < acc + count {
            let mut t = id - acc;
            let n = 1u64 << z;
            let (mut x, mut y) = (0u64, 0u64);
            let mut s = 1u64;
            while s < n {
                let rx = 1 & (t / 2);
                let ry = 1 & (t ^ rx);
                if ry == 0 {
                    if rx == 1 {
                        x = s - 1 - x;
                        y = s - 1 - y;
                    }
                    std::mem::swap(&mut x, &mut y);
                }
                x += s * rx;
                y += s * ry;
                t /= 4;
                s *= 2;
            }
            return (z, x as u32, y as u32);
        }
        acc += count;
    }
    panic!("tile id {id} beyond zoom {MAX_ZOOM}")
}

/// One directory entry: `run_length == 0` points at a leaf directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tile_id: u64,
    pub offset: u64,
    pub length: u32,
    pub run_length: u32,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b.get(*pos).ok_or_else(|| Error::new("directory ends inside a varint"))?;
        *pos += 1;
        if shift >= 64 || (shift == 63 && byte > 1) {
            return Err(Error::new("varint longer than 64 bits in a directory"));
        }
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
    }
}

fn serialize_directory(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 6 + 4);
    put_varint(&mut out, entries.len() as u64);
    let mut last = 0u64;
    for e in entries {
        put_varint(&mut out, e.tile_id - last);
        last = e.tile_id;
    }
    for e in entries {
        put_varint(&mut out, e.run_length as u64);
    }
    for e in entries {
        put_varint(&mut out, e.length as u64);
    }
    for (i, e) in entries.iter().enumerate() {
        if i > 0 && e.offset == entries[i - 1].offset + entries[i - 1].length as u64 {
            put_varint(&mut out, 0);
        } else {
            put_varint(&mut out, e.offset + 1);
        }
    }
    out
}

fn deserialize_directory(b: &[u8]) -> Result<Vec<Entry>> {
    let mut pos = 0;
    let n = get_varint(b, &mut pos)? as usize;
    // Every entry takes at least 4 bytes; refuse counts the buffer cannot hold.
    if n > b.len() {
        return Err(Error::new(format!("directory claims {n} entries in {} bytes", b.len())));
    }
    let mut entries = vec![Entry { tile_id: 0, offset: 0, length: 0, run_length: 0 }; n];
    let mut last = 0u64;
    for e in entries.iter_mut() {
        let d = get_varint(b, &mut pos)?;
        last = last.checked_add(d).ok_or_else(|| Error::new("tile id overflow in a directory"))?;
        e.tile_id = last;
    }
    for e in entries.iter_mut() {
        e.run_length = u32::try_from(get_varint(b, &mut pos)?)
            .map_err(|_| Error::new("run length exceeds 32 bits"))?;
    }
    for e in entries.iter_mut() {
        e.length = u32::try_from(get_varint(b, &mut pos)?)
            .map_err(|_| Error::new("entry length exceeds 32 bits"))?;
    }
    for i in 0..n {
        let v = get_varint(b, &mut pos)?;
        entries[i].offset = if v == 0 {
            if i == 0 {
                return Err(Error::new("first directory entry has a relative (0) offset"));
            }
            entries[i - 1]
                .offset
                .checked_add(entries[i - 1].length as u64)
                .ok_or_else(|| Error::new(format!("directory entry {i}: offset overflow")))?
        } else {
            v - 1
        };
    }
    if pos != b.len() {
        return Err(Error::new(format!(
            "directory has {} trailing bytes after {n} entries",
            b.len() - pos
        )));
    }
    Ok(entries)
}

fn compress(data: &[u8], c: Compression) -> Result<Vec<u8>> {
    match c {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut enc = GzEncoder::new(Vec::new(), GzLevel::default());
            enc.write_all(data).and_then(|_| enc.finish()).map_err(|e| Error::new(e.to_string()))
        }
        other => Err(Error::new(format!("internal compression {other:?} is not supported"))),
    }
}

fn decompress(data: &[u8], c: Compression, what: &str) -> Result<Vec<u8>> {
    match c {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut out = Vec::new();
            GzDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| Error::new(format!("{what}: gzip data is corrupt: {e}")))?;
            Ok(out)
        }
        other => Err(Error::new(format!(
            "{what}: internal compression {other:?} is not supported by this reader"
        ))),
    }
}

/// Options for [`Writer`].
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub tile_type: TileType,
    /// How the blobs passed to [`Writer::add_tile`] are compressed.
    pub tile_compression: Compression,
    /// `[west, south, east, north]`, degrees.
    pub bounds: [f64; 4],
    /// `[lon, lat]`, degrees.
    pub center: [f64; 2],
    pub center_zoom: u8,
    /// Root directory budget (header included); the spec's 16,384 unless a test lowers it.
    pub root_limit: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            tile_type: TileType::Mvt,
            tile_compression: Compression::Gzip,
            bounds: [-180.0, -85.051_128_779_806_59, 180.0, 85.051_128_779_806_59],
            center: [0.0, 0.0],
            center_zoom: 0,
            root_limit: ROOT_LIMIT,
        }
    }
}

/// Builds an archive in memory. Tiles may be added in any order; identical blobs are stored
/// once, and consecutive tile ids with the same blob become one run.
pub struct Writer {
    options: WriterOptions,
    tiles: Vec<(u64, Bytes)>,
}

/// Counts of what [`Writer::finish`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    pub addressed_tiles: u64,
    pub tile_entries: u64,
    pub tile_contents: u64,
    pub leaf_directories: usize,
    pub bytes: u64,
}

impl Writer {
    pub fn new(options: WriterOptions) -> Self {
        Writer { options, tiles: Vec::new() }
    }

    /// Adds a tile blob, stored as given. Adding the same z/x/y twice is an error at finish.
    pub fn add_tile(&mut self, z: u8, x: u32, y: u32, data: impl Into<Bytes>) -> Result<()> {
        if z > MAX_ZOOM || (x as u64) >= (1u64 << z) || (y as u64) >= (1u64 << z) {
            return Err(Error::new(format!("tile {z}/{x}/{y} is outside the tile grid")));
        }
        self.tiles.push((zxy_to_tile_id(z, x, y), data.into()));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// Serialises the archive with `metadata` (a JSON object) into `out`.
    pub fn finish_to(mut self, metadata: &serde_json::Value, out: &mut impl Write) -> Result<WriteStats> {
        self.tiles.sort_by_key(|t| t.0);
        for w in self.tiles.windows(2) {
            if w[0].0 == w[1].0 {
                let (z, x, y) = tile_id_to_zxy(w[0].0);
                return Err(Error::new(format!("tile {z}/{x}/{y} was added twice")));
            }
        }
        let (min_zoom, max_zoom) = match (self.tiles.first(), self.tiles.last()) {
            (Some(a), Some(b)) => (tile_id_to_zxy(a.0).0, tile_id_to_zxy(b.0).0),
            _ => (0, 0),
        };

        // Tile data section: clustered (Hilbert order), deduplicated by content.
        let mut data: Vec<u8> = Vec::new();
        let mut seen: HashMap<Bytes, (u64, u32)> = HashMap::new();
        let mut entries: Vec<Entry> = Vec::new();
        for (id, blob) in &self.tiles {
            let len = u32::try_from(blob.len())
                .map_err(|_| Error::new("a tile is larger than 4 GiB"))?;
            let (offset, length) = match seen.get(blob) {
                Some(&v) => v,
                None => {
                    let off = data.len() as u64;
                    data.extend_from_slice(blob);
                    seen.insert(blob.clone(), (off, len));
                    (off, len)
                }
            };
            if let Some(last) = entries.last_mut() {
                if last.offset == offset
                    && last.length == length
                    && last.tile_id + last.run_length as u64 == *id
                {
                    last.run_length += 1;
                    continue;
                }
            }
            entries.push(Entry { tile_id: *id, offset, length, run_length: 1 });
        }
        let tile_contents = seen.len() as u64;
        drop(seen);

        // Directories: everything in the root if it fits, else leaves of growing size.
        let ic = Compression::Gzip;
        let root_budget = self.options.root_limit.saturating_sub(HEADER_LEN);
        let mut root = compress(&serialize_directory(&entries), ic)?;
        let mut leaves: Vec<u8> = Vec::new();
        let mut leaf_count = 0;
        if root.len() > root_budget {
            let mut leaf_size = 4096usize;
            loop {
                leaves.clear();
                let mut root_entries = Vec::new();
                for chunk in entries.chunks(leaf_size) {
                    let leaf = compress(&serialize_directory(chunk), ic)?;
                    root_entries.push(Entry {
                        tile_id: chunk[0].tile_id,
                        offset: leaves.len() as u64,
                        length: leaf.len() as u32,
                        run_length: 0,
                    });
                    leaves.extend_from_slice(&leaf);
                }
                root = compress(&serialize_directory(&root_entries), ic)?;
                leaf_count = root_entries.len();
                if root.len() <= root_budget {
                    break;
                }
                if leaf_size >= entries.len() {
                    return Err(Error::new("root directory cannot fit in the root budget"));
                }
                leaf_size *= 2;
            }
        }
        let meta = compress(serde_json::to_string(metadata).unwrap().as_bytes(), ic)?;

        let root_offset = HEADER_LEN as u64;
        let metadata_offset = root_offset + root.len() as u64;
        let leaf_offset = metadata_offset + meta.len() as u64;
        let data_offset = leaf_offset + leaves.len() as u64;
        let header = Header {
            root_offset,
            root_length: root.len() as u64,
            metadata_offset,
            metadata_length: meta.len() as u64,
            leaf_offset,
            leaf_length: leaves.len() as u64,
            data_offset,
            data_length: data.len() as u64,
            addressed_tiles: self.tiles.len() as u64,
            tile_entries: entries.len() as u64,
            tile_contents,
            clustered: true,
            internal_compression: ic,
            tile_compression: self.options.tile_compression,
            tile_type: self.options.tile_type,
            min_zoom,
            max_zoom,
            bounds: self.options.bounds,
            center_zoom: self.options.center_zoom,
            center: self.options.center,
        };
        let io = |e: std::io::Error| Error::new(format!("write failed: {e}"));
        out.write_all(&header.encode()).map_err(io)?;
        out.write_all(&root).map_err(io)?;
        out.write_all(&meta).map_err(io)?;
        out.write_all(&leaves).map_err(io)?;
        out.write_all(&data).map_err(io)?;
        Ok(WriteStats {
            addressed_tiles: self.tiles.len() as u64,
            tile_entries: entries.len() as u64,
            tile_contents,
            leaf_directories: leaf_count,
            bytes: data_offset + data.len() as u64,
        })
    }

    /// Writes the archive to `path` (fsynced).
    pub fn finish(self, metadata: &serde_json::Value, path: &Path) -> Result<WriteStats> {
        let file = std::fs::File::create(path)
            .map_err(|e| Error::new(format!("cannot create: {e}")).at(path))?;
        let mut w = std::io::BufWriter::new(file);
        let stats = self.finish_to(metadata, &mut w).map_err(|e| e.at(path))?;
        let file = w.into_inner().map_err(|e| Error::new(format!("write failed: {e}")).at(path))?;
        file.sync_all().map_err(|e| Error::new(format!("fsync failed: {e}")).at(path))?;
        Ok(stats)
    }
}

/// A PMTiles archive held in memory. Opening parses and checks the header, the metadata and
/// every directory (root and leaves), so a truncated or corrupt file is refused up front and
/// [`Reader::get`] is a binary search over a flat entry list.
pub struct Reader {
    data: Bytes,
    header: Header,
    metadata: serde_json::Value,
    /// All tile entries (leaves expanded), sorted by tile id; offsets absolute in `data`.
    entries: Vec<Entry>,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("bytes", &self.data.len())
            .field("header", &self.header)
            .field("entries", &self.entries.len())
            .finish()
    }
}

fn section<'a>(data: &'a [u8], offset: u64, length: u64, what: &str) -> Result<&'a [u8]> {
    let end = offset.checked_add(length);
    match end {
        Some(end) if end <= data.len() as u64 => Ok(&data[offset as usize..end as usize]),
        _ => Err(Error::new(format!(
            "{what} (bytes {offset}..{}) lies beyond the end of the {}-byte file (truncated?)",
            offset.saturating_add(length),
            data.len()
        ))),
    }
}

impl Reader {
    /// Reads the whole file and opens it.
    pub fn open(path: impl AsRef<Path>) -> Result<Reader> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|e| Error::new(format!("cannot read: {e}")).at(path))?;
        Reader::from_bytes(Bytes::from(data)).map_err(|e| e.at(path))
    }

    pub fn from_bytes(data: Bytes) -> Result<Reader> {
        let header = Header::decode(&data)?;
        let ic = header.internal_compression;
        section(&data, header.data_offset, header.data_length, "tile data section")?;
        let meta_raw = section(&data, header.metadata_offset, header.metadata_length, "metadata")?;
        let metadata: serde_json::Value = if meta_raw.is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            let m = decompress(meta_raw, ic, "metadata")?;
            serde_json::from_slice(&m)
                .map_err(|e| Error::new(format!("metadata is not valid JSON: {e}")))?
        };
        let root_raw = section(&data, header.root_offset, header.root_length, "root directory")?;
        let root = deserialize_directory(&decompress(root_raw, ic, "root directory")?)
            .map_err(|e| Error::new(format!("root directory: {}", e.message)))?;
        let mut entries = Vec::with_capacity(header.tile_entries.min(1 << 24) as usize);
        Self::expand(&data, &header, root, 0, &mut entries)?;
        for w in entries.windows(2) {
            if w[1].tile_id < w[0].tile_id + w[0].run_length as u64 {
                return Err(Error::new(format!(
                    "directory entries overlap or are out of order at tile id {}",
                    w[1].tile_id
                )));
            }
        }
        Ok(Reader { data, header, metadata, entries })
    }

    fn expand(data: &Bytes, h: &Header, dir: Vec<Entry>, depth: u32, out: &mut Vec<Entry>) -> Result<()> {
        if depth > 3 {
            return Err(Error::new("leaf directories nested deeper than 3 levels"));
        }
        for e in dir {
            if e.run_length == 0 {
                if e.offset.saturating_add(e.length as u64) > h.leaf_length {
                    return Err(Error::new(format!(
                        "leaf directory at {}+{} lies outside the leaf section ({} bytes)",
                        e.offset, e.length, h.leaf_length
                    )));
                }
                let at = h.leaf_offset.checked_add(e.offset).ok_or_else(|| {
                    Error::new(format!("leaf directory at {} + leaf section offset {} overflows", e.offset, h.leaf_offset))
                })?;
                let raw = section(data, at, e.length as u64, "leaf directory")?;
                let leaf = deserialize_directory(&decompress(raw, h.internal_compression, "leaf directory")?)
                    .map_err(|err| Error::new(format!("leaf directory at {}: {}", e.offset, err.message)))?;
                Self::expand(data, h, leaf, depth + 1, out)?;
            } else {
                if e.tile_id.saturating_add(e.run_length as u64) > END_TILE_ID {
                    return Err(Error::new(format!(
                        "tile id {} (+{} run) is beyond zoom {MAX_ZOOM}",
                        e.tile_id, e.run_length
                    )));
                }
                if e.offset.saturating_add(e.length as u64) > h.data_length {
                    let (z, x, y) = tile_id_to_zxy(e.tile_id);
                    return Err(Error::new(format!(
                        "tile {z}/{x}/{y} at {}+{} lies outside the tile data section ({} bytes)",
                        e.offset, e.length, h.data_length
                    )));
                }
                let offset = e.offset.checked_add(h.data_offset).ok_or_else(|| {
                    Error::new(format!("tile data at {} + data section offset {} overflows", e.offset, h.data_offset))
                })?;
                out.push(Entry { offset, ..e });
            }
        }
        Ok(())
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn metadata(&self) -> &serde_json::Value {
        &self.metadata
    }

    /// Number of addressed tiles (runs expanded).
    pub fn tile_count(&self) -> u64 {
        self.entries.iter().map(|e| e.run_length as u64).sum()
    }

    /// The tile as stored (compressed per `header().tile_compression`), `None` if absent.
    /// Errors only for an address outside the tile grid.
    pub fn get(&self, z: u8, x: u32, y: u32) -> Result<Option<Bytes>> {
        if z > MAX_ZOOM || (x as u64) >= (1u64 << z) || (y as u64) >= (1u64 << z) {
            return Err(Error::new(format!("tile {z}/{x}/{y} is outside the tile grid")));
        }
        let id = zxy_to_tile_id(z, x, y);
        let i = self.entries.partition_point(|e| e.tile_id <= id);
        if i == 0 {
            return Ok(None);
        }
        let e = &self.entries[i - 1];
        if id < e.tile_id + e.run_length as u64 {
            let start = e.offset as usize;
            Ok(Some(self.data.slice(start..start + e.length as usize)))
        } else {
            Ok(None)
        }
    }

    /// Every addressed tile `(z, x, y)` in tile-id order.
    pub fn tiles(&self) -> impl Iterator<Item = (u8, u32, u32)> + '_ {
        self.entries
            .iter()
            .flat_map(|e| (0..e.run_length as u64).map(move |k| tile_id_to_zxy(e.tile_id + k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hilbert_tile_ids_match_the_spec_reference_values() {
        // Values from the PMTiles reference implementations' test suites.
        let cases: [((u8, u32, u32), u64); 10] = [
            ((0, 0, 0), 0),
            ((1, 0, 0), 1),
            ((1, 0, 1), 2),
            ((1, 1, 1), 3),
            ((1, 1, 0), 4),
            ((2, 0, 0), 5),
            ((12, 3423, 1763), 19_078_479),
            ((20, 1234, 5678), 366_563_052_717),
            ((25, 1234, 5678), 375_299_988_763_469),
            ((26, 67_108_863, 0), 6_004_799_503_160_660),
        ];
        for ((z, x, y), id) in cases {
            assert_eq!(zxy_to_tile_id(z, x, y), id, "{z}/{x}/{y}");
            assert_eq!(tile_id_to_zxy(id), (z, x, y), "{id}");
        }
        assert_eq!(END_TILE_ID - 1, 6_004_799_503_160_660); // the last id of z26 (above)
        // Round trip over all of z0..=5.
        let mut next = 0;
        for z in 0..=5u8 {
            let mut ids: Vec<u64> = (0..1u32 << z)
                .flat_map(|x| (0..1u32 << z).map(move |y| (x, y)))
                .map(|(x, y)| zxy_to_tile_id(z, x, y))
                .collect();
            ids.sort();
            for id in ids {
                assert_eq!(id, next);
                next += 1;
            }
        }
    }

    #[test]
    fn varints_and_directories_round_trip() {
        let mut b = Vec::new();
        for v in [0u64, 1, 127, 128, 624_485, u64::MAX] {
            put_varint(&mut b, v);
        }
        // 624485 = 0xE5 0x8E 0x26 (protobuf documentation's example).
        assert_eq!(&b[3..6], &[0x80, 0x01, 0xe5][..]);
        let mut pos = 0;
        for v in [0u64, 1, 127, 128, 624_485, u64::MAX] {
            assert_eq!(get_varint(&b, &mut pos).unwrap(), v);
        }
        let entries = vec![
            Entry { tile_id: 0, offset: 0, length: 10, run_length: 1 },
            Entry { tile_id: 1, offset: 10, length: 5, run_length: 3 },
            Entry { tile_id: 9, offset: 0, length: 10, run_length: 1 },
        ];
        let s = serialize_directory(&entries);
        // count, deltas 0 1 8, runs 1 3 1, lengths 10 5 10, offsets 1(0+1) 0(contiguous) 1(0+1)
        assert_eq!(s, vec![3, 0, 1, 8, 1, 3, 1, 10, 5, 10, 1, 0, 1]);
        assert_eq!(deserialize_directory(&s).unwrap(), entries);
    }

    fn archive(tiles: &[(u8, u32, u32, Vec<u8>)], root_limit: usize) -> (Vec<u8>, WriteStats) {
        let mut w = Writer::new(WriterOptions { root_limit, ..Default::default() });
        for (z, x, y, d) in tiles {
            w.add_tile(*z, *x, *y, d.clone()).unwrap();
        }
        let mut out = Vec::new();
        let stats = w.finish_to(&serde_json::json!({"name": "t"}), &mut out).unwrap();
        (out, stats)
    }

    #[test]
    fn writer_dedups_and_run_length_encodes_identical_tiles() {
        // All 16 tiles of z2 carry the same blob, added in reverse order; plus one distinct z0.
        let mut tiles = vec![(0u8, 0u32, 0u32, b"root".to_vec())];
        for x in (0..4).rev() {
            for y in (0..4).rev() {
                tiles.push((2, x, y, b"same".to_vec()));
            }
        }
        let (bytes, stats) = archive(&tiles, ROOT_LIMIT);
        assert_eq!(stats.addressed_tiles, 17);
        assert_eq!(stats.tile_contents, 2);
        // z2 ids 5..=20 are contiguous: one run of 16.
        assert_eq!(stats.tile_entries, 2);
        let r = Reader::from_bytes(Bytes::from(bytes)).unwrap();
        assert_eq!(r.header().data_length, 8);
        assert_eq!(r.header().min_zoom, 0);
        assert_eq!(r.header().max_zoom, 2);
        assert_eq!(r.get(2, 3, 1).unwrap().unwrap(), &b"same"[..]);
        assert_eq!(r.get(0, 0, 0).unwrap().unwrap(), &b"root"[..]);
        assert_eq!(r.get(1, 0, 0).unwrap(), None);
        assert_eq!(r.get(3, 0, 0).unwrap(), None);
        assert!(r.get(2, 4, 0).is_err());
        assert_eq!(r.metadata()["name"], "t");
        assert_eq!(r.tile_count(), 17);
    }

    #[test]
    fn leaf_directories_when_the_root_would_exceed_16k() {
        // 70,000 distinct tiles of z9 (262,144 tiles): the root alone would be far above 16 KiB.
        // Irregular gaps and blob lengths (an LCG) so the directory does not gzip away.
        let mut state = 12345u64;
        let mut rnd = move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32
        };
        let mut k = 0u32;
        let tiles: Vec<(u8, u32, u32, Vec<u8>)> = (0..70_000u32)
            .map(|i| {
                k += 1 + rnd() % 3;
                let len = 4 + (rnd() % 60) as usize;
                let mut d = i.to_le_bytes().to_vec();
                d.resize(len, (i % 251) as u8);
                (9u8, k % 512, k / 512, d)
            })
            .collect();
        let (bytes, stats) = archive(&tiles, ROOT_LIMIT);
        assert!(stats.leaf_directories > 1, "{stats:?}");
        let r = Reader::from_bytes(Bytes::from(bytes)).unwrap();
        let h = r.header();
        assert!(h.root_offset as usize + h.root_length as usize <= ROOT_LIMIT);
        assert!(h.leaf_length > 0);
        for (z, x, y, d) in tiles.iter().step_by(997) {
            assert_eq!(r.get(*z, *x, *y).unwrap().unwrap(), &d[..], "{z}/{x}/{y}");
        }
        assert_eq!(r.get(9, 0, 0).unwrap(), None); // k starts at 1
        assert_eq!(r.tiles().count(), 70_000);
    }

    /// Found by `scripts/fuzz.sh` (target pmtiles): a header whose leaf section offset is near
    /// u64::MAX made `leaf_offset + entry offset` overflow (a panic with overflow checks on).
    #[test]
    fn a_leaf_section_offset_near_u64_max_is_refused_not_overflowed() {
        let b = include_bytes!("../../tests/fuzz/regressions/pmtiles/leaf-offset-overflow.bin");
        let m = Reader::from_bytes(Bytes::from_static(b)).unwrap_err().to_string();
        assert!(m.contains("overflows"), "{m}");
    }

    #[test]
    fn corrupt_and_truncated_archives_are_refused_with_a_reason() {
        let tiles: Vec<(u8, u32, u32, Vec<u8>)> =
            (0..64u32).map(|i| (3u8, i % 8, i / 8, vec![i as u8; 40])).collect();
        let (bytes, _) = archive(&tiles, ROOT_LIMIT);
        let err = |b: Vec<u8>| Reader::from_bytes(Bytes::from(b)).unwrap_err().to_string();
        assert!(err(bytes[..100].to_vec()).contains("shorter than the 127-byte header"));
        assert!(err(bytes[..bytes.len() - 10].to_vec()).contains("beyond the end"));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(err(bad).contains("bad magic"));
        let mut bad = bytes.clone();
        bad[7] = 2;
        assert!(err(bad).contains("version 2"));
        let mut bad = bytes.clone();
        // Scramble the root directory's gzip body.
        for b in &mut bad[HEADER_LEN + 12..HEADER_LEN + 20] {
            *b ^= 0x5a;
        }
        let m = err(bad);
        assert!(m.contains("root directory"), "{m}");
    }
}
