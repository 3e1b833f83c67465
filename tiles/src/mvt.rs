//! Mapbox Vector Tile 2.1: an encoder ([`LayerBuilder`], [`encode_tile`]) and a strict decoder
//! ([`decode`]) that refuses what the specification calls invalid.
//!
//! Coordinates are integer tile coordinates (x east, y **down**, `0..extent`, a buffer outside is
//! allowed). Polygons follow the 2.1 winding rule: an exterior ring has a positive area by the
//! surveyor's formula `Σ (x_i·y_{i+1} − x_{i+1}·y_i) / 2` in these y-down coordinates (clockwise on
//! screen); interior rings have a negative area. The encoder fixes orientation itself, removes
//! repeated points and drops rings that are degenerate after quantization (fewer than three
//! distinct points or zero area), together with the holes of a dropped exterior.

use std::collections::HashMap;
use std::fmt;

/// Default and contract extent.
pub const EXTENT: u32 = 4096;

/// A property value. Integers are written as `sint` when negative, else `uint`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Float(f32),
    Double(f64),
    Int(i64),
    UInt(u64),
    SInt(i64),
    Bool(bool),
}

impl Value {
    /// Numeric view (for tests and the viewer).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(v) => Some(v as f64),
            Value::Double(v) => Some(v),
            Value::Int(v) | Value::SInt(v) => Some(v as f64),
            Value::UInt(v) => Some(v as f64),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        if v < 0 {
            Value::SInt(v)
        } else {
            Value::UInt(v as u64)
        }
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::UInt(v as u64)
    }
}
impl From<f64> for Value {
    /// Whole numbers become integers (smaller on the wire), others doubles.
    fn from(v: f64) -> Self {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            Value::from(v as i64)
        } else {
            Value::Double(v)
        }
    }
}

/// Dedup key: float values by their bits.
#[derive(Hash, PartialEq, Eq)]
enum ValueKey {
    S(String),
    F(u32),
    D(u64),
    I(i64),
    U(u64),
    Z(i64),
    B(bool),
}

fn value_key(v: &Value) -> ValueKey {
    match v {
        Value::String(s) => ValueKey::S(s.clone()),
        Value::Float(f) => ValueKey::F(f.to_bits()),
        Value::Double(f) => ValueKey::D(f.to_bits()),
        Value::Int(i) => ValueKey::I(*i),
        Value::UInt(u) => ValueKey::U(*u),
        Value::SInt(i) => ValueKey::Z(*i),
        Value::Bool(b) => ValueKey::B(*b),
    }
}

/// Geometry in integer tile coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum Geometry {
    /// One or more points.
    Points(Vec<[i64; 2]>),
    /// One or more line strings.
    Lines(Vec<Vec<[i64; 2]>>),
    /// One or more polygons, each `rings[0]` exterior then holes; rings are open (no repeated
    /// closing point).
    Polygons(Vec<Vec<Vec<[i64; 2]>>>),
    /// A feature of type UNKNOWN: its raw command integers.
    Unknown(Vec<u32>),
}

/// Twice the signed area by the surveyor's formula (positive = exterior in MVT 2.1).
pub fn ring_area2(ring: &[[i64; 2]]) -> i64 {
    let n = ring.len();
    let mut s: i128 = 0;
    for i in 0..n {
        let (a, b) = (ring[i], ring[(i + 1) % n]);
        s += a[0] as i128 * b[1] as i128 - b[0] as i128 * a[1] as i128;
    }
    s.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

// ---------------------------------------------------------------------------------------------
// Protobuf writing

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, ((field as u64) << 3) | wire as u64);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn command(id: u32, count: u32) -> u32 {
    (id & 7) | (count << 3)
}

const MOVE_TO: u32 = 1;
const LINE_TO: u32 = 2;
const CLOSE_PATH: u32 = 7;

/// Removes consecutive duplicates (and a closing point equal to the first, for rings).
fn dedup(points: &[[i64; 2]], ring: bool) -> Vec<[i64; 2]> {
    let mut v: Vec<[i64; 2]> = Vec::with_capacity(points.len());
    for p in points {
        if v.last() != Some(p) {
            v.push(*p);
        }
    }
    if ring {
        while v.len() > 1 && v.first() == v.last() {
            v.pop();
        }
    }
    v
}

/// Builds one layer; keys and values are deduplicated across its features.
pub struct LayerBuilder {
    name: String,
    extent: u32,
    keys: Vec<String>,
    key_index: HashMap<String, u32>,
    values: Vec<Value>,
    value_index: HashMap<ValueKey, u32>,
    features: Vec<Vec<u8>>,
}

impl LayerBuilder {
    pub fn new(name: &str, extent: u32) -> Self {
        LayerBuilder {
            name: name.to_string(),
            extent,
            keys: Vec::new(),
            key_index: HashMap::new(),
            values: Vec::new(),
            value_index: HashMap::new(),
            features: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn len(&self) -> usize {
        self.features.len()
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Encodes the geometry's commands; `None` when nothing valid remains (e.g. every ring
    /// collapsed). Polygons are re-oriented to the 2.1 winding rule.
    pub fn encode_geometry(geom: &Geometry) -> Option<(u32, Vec<u32>)> {
        let mut cmds: Vec<u32> = Vec::new();
        let mut cursor = [0i64; 2];
        let mut push_pt = |cmds: &mut Vec<u32>, p: [i64; 2]| {
            cmds.push(zigzag(p[0] - cursor[0]) as u32);
            cmds.push(zigzag(p[1] - cursor[1]) as u32);
            cursor = p;
        };
        match geom {
            Geometry::Points(pts) => {
                if pts.is_empty() {
                    return None;
                }
                cmds.push(command(MOVE_TO, pts.len() as u32));
                for p in pts {
                    push_pt(&mut cmds, *p);
                }
                Some((1, cmds))
            }
            Geometry::Lines(lines) => {
                for l in lines {
                    let l = dedup(l, false);
                    if l.len() < 2 {
                        continue;
                    }
                    cmds.push(command(MOVE_TO, 1));
                    push_pt(&mut cmds, l[0]);
                    cmds.push(command(LINE_TO, (l.len() - 1) as u32));
                    for p in &l[1..] {
                        push_pt(&mut cmds, *p);
                    }
                }
                (!cmds.is_empty()).then_some((2, cmds))
            }
            Geometry::Polygons(polys) => {
                for poly in polys {
                    for (i, ring) in poly.iter().enumerate() {
                        let mut r = dedup(ring, true);
                        let a = if r.len() >= 3 { ring_area2(&r) } else { 0 };
                        if a == 0 {
                            if i == 0 {
                                break; // exterior collapsed: drop the polygon with its holes
                            }
                            continue;
                        }
                        let exterior = i == 0;
                        if (a > 0) != exterior {
                            r.reverse();
                        }
                        cmds.push(command(MOVE_TO, 1));
                        push_pt(&mut cmds, r[0]);
                        cmds.push(command(LINE_TO, (r.len() - 1) as u32));
                        for p in &r[1..] {
                            push_pt(&mut cmds, *p);
                        }
                        cmds.push(command(CLOSE_PATH, 1));
                    }
                }
                (!cmds.is_empty()).then_some((3, cmds))
            }
            Geometry::Unknown(raw) => Some((0, raw.clone())),
        }
    }

    fn key(&mut self, k: &str) -> u32 {
        if let Some(&i) = self.key_index.get(k) {
            return i;
        }
        let i = self.keys.len() as u32;
        self.keys.push(k.to_string());
        self.key_index.insert(k.to_string(), i);
        i
    }

    fn value(&mut self, v: &Value) -> u32 {
        let k = value_key(v);
        if let Some(&i) = self.value_index.get(&k) {
            return i;
        }
        let i = self.values.len() as u32;
        self.values.push(v.clone());
        self.value_index.insert(k, i);
        i
    }

    /// Adds a feature. Returns false (and adds nothing) when the geometry is empty or
    /// degenerate after cleaning.
    pub fn add_feature(&mut self, id: Option<u64>, properties: &[(&str, Value)], geom: &Geometry) -> bool {
        let Some((gtype, cmds)) = Self::encode_geometry(geom) else { return false };
        let mut tags: Vec<u32> = Vec::with_capacity(properties.len() * 2);
        for (k, v) in properties {
            let ki = self.key(k);
            let vi = self.value(v);
            tags.push(ki);
            tags.push(vi);
        }
        let mut f = Vec::with_capacity(cmds.len() * 2 + tags.len() + 12);
        if let Some(id) = id {
            put_key(&mut f, 1, 0);
            put_varint(&mut f, id);
        }
        if !tags.is_empty() {
            let mut packed = Vec::with_capacity(tags.len() * 2);
            for t in &tags {
                put_varint(&mut packed, *t as u64);
            }
            put_bytes(&mut f, 2, &packed);
        }
        put_key(&mut f, 3, 0);
        put_varint(&mut f, gtype as u64);
        let mut packed = Vec::with_capacity(cmds.len() * 2);
        for c in &cmds {
            put_varint(&mut packed, *c as u64);
        }
        put_bytes(&mut f, 4, &packed);
        self.features.push(f);
        true
    }

    /// The encoded `Layer` message body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_key(&mut out, 15, 0);
        put_varint(&mut out, 2);
        put_bytes(&mut out, 1, self.name.as_bytes());
        for f in &self.features {
            put_bytes(&mut out, 2, f);
        }
        for k in &self.keys {
            put_bytes(&mut out, 3, k.as_bytes());
        }
        for v in &self.values {
            let mut b = Vec::new();
            match v {
                Value::String(s) => put_bytes(&mut b, 1, s.as_bytes()),
                Value::Float(f) => {
                    put_key(&mut b, 2, 5);
                    b.extend_from_slice(&f.to_le_bytes());
                }
                Value::Double(d) => {
                    put_key(&mut b, 3, 1);
                    b.extend_from_slice(&d.to_le_bytes());
                }
                Value::Int(i) => {
                    put_key(&mut b, 4, 0);
                    put_varint(&mut b, *i as u64);
                }
                Value::UInt(u) => {
                    put_key(&mut b, 5, 0);
                    put_varint(&mut b, *u);
                }
                Value::SInt(i) => {
                    put_key(&mut b, 6, 0);
                    put_varint(&mut b, zigzag(*i));
                }
                Value::Bool(x) => {
                    put_key(&mut b, 7, 0);
                    put_varint(&mut b, *x as u64);
                }
            }
            put_bytes(&mut out, 4, &b);
        }
        put_key(&mut out, 5, 0);
        put_varint(&mut out, self.extent as u64);
        out
    }
}

/// Encodes a tile from its non-empty layers (empty ones are skipped).
pub fn encode_tile(layers: &[LayerBuilder]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in layers.iter().filter(|l| !l.is_empty()) {
        put_bytes(&mut out, 3, &l.encode());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Strict decoding

/// Why a tile was refused: where (layer, feature) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    pub layer: Option<String>,
    pub feature: Option<usize>,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid vector tile")?;
        if let Some(l) = &self.layer {
            write!(f, ": layer {l:?}")?;
        }
        if let Some(i) = self.feature {
            write!(f, ": feature #{i}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for DecodeError {}

fn err(message: impl Into<String>) -> DecodeError {
    DecodeError { layer: None, feature: None, message: message.into() }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub id: Option<u64>,
    pub properties: Vec<(String, Value)>,
    pub geometry: Geometry,
}

impl Feature {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.properties.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub version: u32,
    pub name: String,
    pub extent: u32,
    pub features: Vec<Feature>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tile {
    pub layers: Vec<Layer>,
}

impl Tile {
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self.b.get(self.pos).ok_or_else(|| err("message ends inside a varint"))?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(err("varint overflows 64 bits"));
            }
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(err("varint longer than 10 bytes"))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.b.len() - self.pos < n {
            return Err(err(format!("field of {n} bytes runs past the end of its message")));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn next(&mut self) -> Result<Option<(u32, Field<'a>)>, DecodeError> {
        if self.pos >= self.b.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = (key >> 3) as u32;
        if field == 0 {
            return Err(err("protobuf field number 0"));
        }
        let f = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(self.take(8)?.try_into().unwrap()),
            2 => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| err("length too large"))?;
                Field::Bytes(self.take(n)?)
            }
            5 => Field::Fixed32(self.take(4)?.try_into().unwrap()),
            w => return Err(err(format!("unsupported protobuf wire type {w} (field {field})"))),
        };
        Ok(Some((field, f)))
    }
}

fn wire_name(f: &Field) -> &'static str {
    match f {
        Field::Varint(_) => "varint",
        Field::Fixed64(_) => "64-bit",
        Field::Bytes(_) => "length-delimited",
        Field::Fixed32(_) => "32-bit",
    }
}

fn wrong(what: &str, f: &Field) -> DecodeError {
    err(format!("{what} has the wrong protobuf wire type ({})", wire_name(f)))
}

fn packed_u32(b: &[u8], what: &str) -> Result<Vec<u32>, DecodeError> {
    let mut r = Reader::new(b);
    let mut out = Vec::with_capacity(b.len());
    while r.pos < b.len() {
        let v = r.varint()?;
        out.push(u32::try_from(v).map_err(|_| err(format!("{what}: value {v} exceeds 32 bits")))?);
    }
    Ok(out)
}

fn decode_value(b: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader::new(b);
    let mut v: Option<Value> = None;
    while let Some((field, f)) = r.next()? {
        let nv = match (field, &f) {
            (1, Field::Bytes(s)) => Value::String(
                std::str::from_utf8(s).map_err(|_| err("string value is not UTF-8"))?.to_string(),
            ),
            (2, Field::Fixed32(x)) => Value::Float(f32::from_le_bytes(*x)),
            (3, Field::Fixed64(x)) => Value::Double(f64::from_le_bytes(*x)),
            (4, Field::Varint(x)) => Value::Int(*x as i64),
            (5, Field::Varint(x)) => Value::UInt(*x),
            (6, Field::Varint(x)) => Value::SInt(unzigzag(*x)),
            (7, Field::Varint(x)) => Value::Bool(*x != 0),
            (1..=7, _) => return Err(wrong(&format!("value field {field}"), &f)),
            _ => return Err(err(format!("value has a field ({field}) that is not one of the 7 value types"))),
        };
        if v.is_some() {
            return Err(err("value has more than one value field"));
        }
        v = Some(nv);
    }
    v.ok_or_else(|| err("value has no value field"))
}

/// Decodes command integers into geometry of the given type, strictly.
fn decode_geometry(gtype: u64, cmds: &[u32]) -> Result<Geometry, DecodeError> {
    if gtype == 0 {
        return Ok(Geometry::Unknown(cmds.to_vec()));
    }
    let mut i = 0;
    let mut cur = [0i64; 2];
    let mut paths: Vec<(Vec<[i64; 2]>, bool)> = Vec::new(); // (points, closed)
    let param = |i: &mut usize, cur: &mut [i64; 2]| -> Result<[i64; 2], DecodeError> {
        if *i + 2 > cmds.len() {
            return Err(err("geometry ends before the parameters its command count announces"));
        }
        cur[0] += unzigzag(cmds[*i] as u64);
        cur[1] += unzigzag(cmds[*i + 1] as u64);
        *i += 2;
        Ok(*cur)
    };
    while i < cmds.len() {
        let c = cmds[i];
        i += 1;
        let (id, count) = (c & 7, (c >> 3) as usize);
        match id {
            MOVE_TO => {
                if count == 0 {
                    return Err(err("MoveTo with count 0"));
                }
                if 2 * count > cmds.len() - i {
                    return Err(err(format!(
                        "MoveTo count {count} needs {} parameters, only {} remain",
                        2 * count,
                        cmds.len() - i
                    )));
                }
                if gtype != 1 && count != 1 {
                    return Err(err(format!("MoveTo count {count} in a line/polygon (must be 1)")));
                }
                for _ in 0..count {
                    let p = param(&mut i, &mut cur)?;
                    paths.push((vec![p], false));
                }
            }
            LINE_TO => {
                if gtype == 1 {
                    return Err(err("LineTo in a POINT geometry"));
                }
                if count == 0 {
                    return Err(err("LineTo with count 0"));
                }
                if 2 * count > cmds.len() - i {
                    return Err(err(format!(
                        "LineTo count {count} needs {} parameters, only {} remain",
                        2 * count,
                        cmds.len() - i
                    )));
                }
                let Some(path) = paths.last_mut().filter(|p| !p.1) else {
                    return Err(err("LineTo without a preceding MoveTo"));
                };
                for _ in 0..count {
                    let before = cur;
                    let p = param(&mut i, &mut cur)?;
                    if p == before {
                        return Err(err("LineTo with a zero-length segment (dX = dY = 0)"));
                    }
                    path.0.push(p);
                }
            }
            CLOSE_PATH => {
                if gtype != 3 {
                    return Err(err("ClosePath outside a POLYGON geometry"));
                }
                if count != 1 {
                    return Err(err(format!("ClosePath with count {count} (must be 1)")));
                }
                let Some(path) = paths.last_mut().filter(|p| !p.1) else {
                    return Err(err("ClosePath without an open ring"));
                };
                path.1 = true;
            }
            other => return Err(err(format!("unknown command id {other}"))),
        }
    }
    match gtype {
        1 => {
            if paths.is_empty() {
                return Err(err("POINT geometry without points"));
            }
            Ok(Geometry::Points(paths.into_iter().map(|p| p.0[0]).collect()))
        }
        2 => {
            if paths.is_empty() {
                return Err(err("LINESTRING geometry without lines"));
            }
            let mut lines = Vec::new();
            for (p, _) in paths {
                if p.len() < 2 {
                    return Err(err("line string with fewer than 2 points"));
                }
                lines.push(p);
            }
            Ok(Geometry::Lines(lines))
        }
        3 => {
            if paths.is_empty() {
                return Err(err("POLYGON geometry without rings"));
            }
            let mut polys: Vec<Vec<Vec<[i64; 2]>>> = Vec::new();
            for (p, closed) in paths {
                if !closed {
                    return Err(err("polygon ring not closed by ClosePath"));
                }
                if p.len() < 3 {
                    return Err(err(format!("polygon ring with {} points (at least 3 needed)", p.len())));
                }
                let a = ring_area2(&p);
                if a == 0 {
                    return Err(err("polygon ring with zero area"));
                }
                if a > 0 {
                    polys.push(vec![p]);
                } else {
                    match polys.last_mut() {
                        Some(poly) => poly.push(p),
                        None => return Err(err("polygon starts with an interior (negative-area) ring")),
                    }
                }
            }
            Ok(Geometry::Polygons(polys))
        }
        t => Err(err(format!("unknown geometry type {t}"))),
    }
}

fn decode_layer(b: &[u8]) -> Result<Layer, DecodeError> {
    let mut r = Reader::new(b);
    let mut version = None;
    let mut name: Option<String> = None;
    let mut raw_features: Vec<&[u8]> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut extent = None;
    while let Some((field, f)) = r.next()? {
        match (field, &f) {
            (15, Field::Varint(v)) => version = Some(*v),
            (1, Field::Bytes(s)) => {
                name = Some(std::str::from_utf8(s).map_err(|_| err("layer name is not UTF-8"))?.to_string())
            }
            (2, Field::Bytes(s)) => raw_features.push(s),
            (3, Field::Bytes(s)) => keys.push(std::str::from_utf8(s).map_err(|_| err("key is not UTF-8"))?.to_string()),
            (4, Field::Bytes(s)) => values.push(decode_value(s)?),
            (5, Field::Varint(v)) => extent = Some(*v),
            (15, _) => return Err(wrong("layer version", &f)),
            (1, _) => return Err(wrong("layer name", &f)),
            (2, _) => return Err(wrong("layer feature", &f)),
            (3, _) => return Err(wrong("layer key", &f)),
            (4, _) => return Err(wrong("layer value", &f)),
            (5, _) => return Err(wrong("layer extent", &f)),
            _ => {} // extensions 16+ and unknown fields are skipped
        }
    }
    let name = name.ok_or_else(|| err("layer has no name"))?;
    let with_layer = |mut e: DecodeError| {
        e.layer = Some(name.clone());
        e
    };
    let version = version.ok_or_else(|| with_layer(err("layer has no version field")))?;
    if version != 1 && version != 2 {
        return Err(with_layer(err(format!("layer version {version} (only 1 and 2 exist)"))));
    }
    let extent = extent.unwrap_or(4096);
    if extent == 0 || extent > u32::MAX as u64 {
        return Err(with_layer(err(format!("layer extent {extent}"))));
    }
    let mut features = Vec::with_capacity(raw_features.len());
    for (fi, fb) in raw_features.iter().enumerate() {
        let at = |mut e: DecodeError| {
            e.layer = Some(name.clone());
            e.feature = Some(fi);
            e
        };
        let mut r = Reader::new(fb);
        let (mut id, mut tags, mut gtype, mut geom) = (None, None::<Vec<u32>>, None, None::<Vec<u32>>);
        while let Some((field, f)) = r.next().map_err(at)? {
            match (field, &f) {
                (1, Field::Varint(v)) => id = Some(*v),
                (2, Field::Bytes(s)) => {
                    if tags.is_some() {
                        return Err(at(err("feature has two tags fields")));
                    }
                    tags = Some(packed_u32(s, "tags").map_err(at)?)
                }
                (3, Field::Varint(v)) => gtype = Some(*v),
                (4, Field::Bytes(s)) => {
                    if geom.is_some() {
                        return Err(at(err("feature has two geometry fields")));
                    }
                    geom = Some(packed_u32(s, "geometry").map_err(at)?)
                }
                (1..=4, _) => return Err(at(wrong(&format!("feature field {field}"), &f))),
                _ => {}
            }
        }
        // proto2 default: a feature without a type field is UNKNOWN (fixture 016 is valid).
        let gtype = gtype.unwrap_or(0);
        if gtype > 3 {
            return Err(at(err(format!("geometry type {gtype} is not UNKNOWN/POINT/LINESTRING/POLYGON"))));
        }
        let geom = geom.ok_or_else(|| at(err("feature has no geometry")))?;
        let tags = tags.unwrap_or_default();
        if tags.len() % 2 != 0 {
            return Err(at(err(format!("odd number of tags ({})", tags.len()))));
        }
        let mut properties = Vec::with_capacity(tags.len() / 2);
        for kv in tags.chunks(2) {
            let k = keys.get(kv[0] as usize).ok_or_else(|| {
                at(err(format!("tag key index {} out of range ({} keys)", kv[0], keys.len())))
            })?;
            let v = values.get(kv[1] as usize).ok_or_else(|| {
                at(err(format!("tag value index {} out of range ({} values)", kv[1], values.len())))
            })?;
            properties.push((k.clone(), v.clone()));
        }
        let geometry = decode_geometry(gtype, &geom).map_err(at)?;
        features.push(Feature { id, properties, geometry });
    }
    Ok(Layer { version: version as u32, name, extent: extent as u32, features })
}

/// Decodes an (uncompressed) tile, refusing anything the 2.1 specification calls invalid:
/// wrong wire types, missing layer name/version, unknown versions, value messages without
/// exactly one known type, out-of-range tag indices, odd tag counts, missing geometry or type,
/// command counts beyond the geometry, ClosePath outside polygons or with count ≠ 1, zero-length
/// LineTo segments, unclosed or zero-area rings, a polygon starting with an interior ring,
/// and duplicate layer names.
pub fn decode(data: &[u8]) -> Result<Tile, DecodeError> {
    let mut r = Reader::new(data);
    let mut tile = Tile::default();
    while let Some((field, f)) = r.next()? {
        match (field, &f) {
            (3, Field::Bytes(b)) => {
                let l = decode_layer(b)?;
                if tile.layers.iter().any(|x| x.name == l.name) {
                    return Err(err(format!("two layers named {:?}", l.name)));
                }
                tile.layers.push(l);
            }
            (3, _) => return Err(wrong("tile layer", &f)),
            _ => {}
        }
    }
    Ok(tile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_geometries_encode_to_the_documented_commands() {
        // MVT 2.1 spec §4.3.5 examples.
        let (t, c) = LayerBuilder::encode_geometry(&Geometry::Points(vec![[25, 17]])).unwrap();
        assert_eq!((t, c), (1, vec![9, 50, 34]));
        let (t, c) = LayerBuilder::encode_geometry(&Geometry::Points(vec![[5, 7], [3, 2]])).unwrap();
        assert_eq!((t, c), (1, vec![17, 10, 14, 3, 9]));
        let (_, c) = LayerBuilder::encode_geometry(&Geometry::Lines(vec![vec![[2, 2], [2, 10], [10, 10]]])).unwrap();
        assert_eq!(c, vec![9, 4, 4, 18, 0, 16, 16, 0]);
        // Polygon example: (3,6) (8,12) (20,34) — already positive area.
        let poly = Geometry::Polygons(vec![vec![vec![[3, 6], [8, 12], [20, 34]]]]);
        let (t, c) = LayerBuilder::encode_geometry(&poly).unwrap();
        assert_eq!((t, c), (3, vec![9, 6, 12, 18, 10, 12, 24, 44, 15]));
        // The same ring given the other way round (and closed) is re-oriented.
        let rev = Geometry::Polygons(vec![vec![vec![[20, 34], [8, 12], [3, 6], [20, 34]]]]);
        let (_, c2) = LayerBuilder::encode_geometry(&rev).unwrap();
        let g = decode_geometry(3, &c2).unwrap();
        let Geometry::Polygons(p) = g else { panic!() };
        assert!(ring_area2(&p[0][0]) > 0);
    }

    #[test]
    fn winding_holes_and_degenerate_rings() {
        // Exterior given counter-clockwise on screen (negative), hole given positive: both flipped.
        let ext = vec![[0, 0], [0, 10], [10, 10], [10, 0]];
        assert!(ring_area2(&ext) < 0);
        let hole = vec![[2, 2], [4, 2], [4, 4], [2, 4]];
        assert!(ring_area2(&hole) > 0);
        let sliver = vec![[5, 5], [6, 6], [7, 7]]; // collinear: zero area after quantization
        let g = Geometry::Polygons(vec![
            vec![ext.clone(), hole.clone(), sliver.clone()],
            vec![sliver.clone(), hole.clone()], // collapsed exterior: dropped with its hole
        ]);
        let (_, c) = LayerBuilder::encode_geometry(&g).unwrap();
        let Geometry::Polygons(p) = decode_geometry(3, &c).unwrap() else { panic!() };
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].len(), 2);
        assert_eq!(ring_area2(&p[0][0]), 200);
        assert_eq!(ring_area2(&p[0][1]), -8);
        assert!(LayerBuilder::encode_geometry(&Geometry::Polygons(vec![vec![sliver]])).is_none());
    }

    #[test]
    fn layer_round_trip_with_value_dedup_and_ids() {
        let mut l = LayerBuilder::new("buildings", EXTENT);
        for i in 0..3u64 {
            let props: Vec<(&str, Value)> = vec![
                ("height", Value::from(24.0)),
                ("use", Value::from("office")),
                ("oneway", Value::from(i == 1)),
                ("neg", Value::from(-3i64)),
                ("ratio", Value::from(0.5)),
            ];
            assert!(l.add_feature(Some(i + 100), &props, &Geometry::Points(vec![[i as i64, 1]])));
        }
        assert_eq!(l.values.len(), 6); // 24, "office", false, true, -3, 0.5
        let bytes = encode_tile(&[l, LayerBuilder::new("empty", EXTENT)]);
        let t = decode(&bytes).unwrap();
        assert_eq!(t.layers.len(), 1);
        let f = &t.layers[0].features[1];
        assert_eq!(f.id, Some(101));
        assert_eq!(f.get("height").unwrap().as_f64(), Some(24.0));
        assert_eq!(f.get("use").unwrap().as_str(), Some("office"));
        assert_eq!(f.get("oneway"), Some(&Value::Bool(true)));
        assert_eq!(f.get("neg"), Some(&Value::SInt(-3)));
        assert_eq!(f.get("ratio"), Some(&Value::Double(0.5)));
        assert_eq!(t.layers[0].extent, 4096);
        assert_eq!(t.layers[0].version, 2);
    }

    #[test]
    fn decoder_refuses_bad_commands() {
        assert!(decode_geometry(1, &[15, 50, 34]).unwrap_err().message.contains("ClosePath"));
        assert!(decode_geometry(2, &[9, 4, 4, 18, 0, 16, 16, 0, 7]).is_err());
        assert!(decode_geometry(3, &[9, 6, 12, 18, 10, 12, 24, 44, 23]).unwrap_err().message.contains("count 2"));
        assert!(decode_geometry(1, &[17, 10]).unwrap_err().message.contains("remain"));
        assert!(decode_geometry(2, &[9, 0, 0, 10, 0, 0]).unwrap_err().message.contains("zero-length"));
        // Interior ring first.
        assert!(decode_geometry(3, &[9, 0, 0, 26, 0, 20, 20, 0, 0, 19, 15]).is_err());
    }
}
