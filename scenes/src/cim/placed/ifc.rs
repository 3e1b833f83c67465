//! A small, lenient IFC reader: an ISO 10303-21 (STEP physical file) tokenizer plus the few IFC
//! entities the placed-model ingest needs (see the parent module for the supported subset).

use super::LocalModel;
use crate::model::{BuildingUse, Names, Placement};
use crate::report::{BuildReport, IngestError};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One STEP parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `$`
    Null,
    /// `*`
    Derived,
    Int(i64),
    Real(f64),
    Str(String),
    /// `.NAME.` (without the dots)
    Enum(String),
    /// `#123`
    Ref(u64),
    List(Vec<Value>),
    /// `IFCLENGTHMEASURE(1.)`
    Typed(String, Vec<Value>),
    /// `"0ABC…"`
    Binary(String),
}

impl Value {
    pub fn as_ref_id(&self) -> Option<u64> {
        match self {
            Value::Ref(r) => Some(*r),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Real(r) => Some(*r),
            Value::Typed(_, a) if a.len() == 1 => a[0].as_f64(),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Typed(_, a) if a.len() == 1 => a[0].as_str(),
            _ => None,
        }
    }
    pub fn as_enum(&self) -> Option<&str> {
        match self {
            Value::Enum(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

/// A simple entity instance `#id=TYPE(args);`; `ty` is upper case.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub ty: String,
    pub args: Vec<Value>,
}

impl Entity {
    pub fn arg(&self, i: usize) -> &Value {
        self.args.get(i).unwrap_or(&Value::Null)
    }
}

/// The DATA section of a STEP file.
#[derive(Debug, Default)]
pub struct StepFile {
    pub entities: BTreeMap<u64, Entity>,
    /// Complex (multi-type) instances `#id=(A(…)B(…));`, skipped.
    pub complex_skipped: u64,
}

const MAX_NESTING: usize = 64;

struct Lexer<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn line(&self) -> usize {
        1 + self.b[..self.pos.min(self.b.len())]
            .iter()
            .filter(|&&c| c == b'\n')
            .count()
    }
    fn fail<T>(&self, msg: impl Into<String>) -> Result<T, String> {
        Err(format!("line {}: {}", self.line(), msg.into()))
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }
    fn skip_ws(&mut self) -> Result<(), String> {
        loop {
            match self.peek() {
                Some(c) if c.is_ascii_whitespace() => self.pos += 1,
                Some(b'/') if self.b.get(self.pos + 1) == Some(&b'*') => {
                    match self.b[self.pos + 2..].windows(2).position(|w| w == b"*/") {
                        Some(i) => self.pos += 2 + i + 2,
                        None => return self.fail("unterminated comment"),
                    }
                }
                _ => return Ok(()),
            }
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_ws()?;
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            let got = self
                .peek()
                .map(|g| format!("'{}'", g as char))
                .unwrap_or_else(|| "end of file".into());
            self.fail(format!("expected '{}', found {got}", c as char))
        }
    }
    /// Skips one statement up to and including its ';' (string- and comment-aware); returns its text.
    fn statement(&mut self) -> Result<&'a [u8], String> {
        let start = self.pos;
        loop {
            match self.peek() {
                None => return self.fail("unexpected end of file (missing ';')"),
                Some(b';') => {
                    self.pos += 1;
                    return Ok(&self.b[start..self.pos - 1]);
                }
                Some(b'\'') => {
                    self.string()?;
                }
                Some(b'/') if self.b.get(self.pos + 1) == Some(&b'*') => self.skip_ws()?,
                Some(_) => self.pos += 1,
            }
        }
    }
    fn keyword(&mut self) -> Result<String, String> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            self.pos += 1;
        }
        if start == self.pos {
            return self.fail("expected a keyword");
        }
        Ok(String::from_utf8_lossy(&self.b[start..self.pos]).to_ascii_uppercase())
    }
    fn digits(&mut self) -> Result<u64, String> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.pos += 1;
        }
        std::str::from_utf8(&self.b[start..self.pos])
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or_else(|| self.fail("expected an instance number"), Ok)
    }
    fn string(&mut self) -> Result<String, String> {
        // at the opening quote
        self.pos += 1;
        let mut raw = Vec::new();
        loop {
            match self.peek() {
                None => return self.fail("unterminated string"),
                Some(b'\'') if self.b.get(self.pos + 1) == Some(&b'\'') => {
                    raw.push(b'\'');
                    self.pos += 2;
                }
                Some(b'\'') => {
                    self.pos += 1;
                    break;
                }
                Some(c) => {
                    raw.push(c);
                    self.pos += 1;
                }
            }
        }
        Ok(decode_step_string(&raw))
    }
    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_NESTING {
            return self.fail("lists nested too deeply");
        }
        self.skip_ws()?;
        let Some(c) = self.peek() else {
            return self.fail("unexpected end of file in a parameter list");
        };
        match c {
            b'$' => {
                self.pos += 1;
                Ok(Value::Null)
            }
            b'*' => {
                self.pos += 1;
                Ok(Value::Derived)
            }
            b'#' => {
                self.pos += 1;
                Ok(Value::Ref(self.digits()?))
            }
            b'\'' => Ok(Value::Str(self.string()?)),
            b'"' => {
                self.pos += 1;
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c != b'"') {
                    self.pos += 1;
                }
                let s = String::from_utf8_lossy(&self.b[start..self.pos]).into_owned();
                self.expect(b'"')?;
                Ok(Value::Binary(s))
            }
            b'.' if matches!(self.b.get(self.pos + 1), Some(c) if c.is_ascii_alphabetic() || *c == b'_') =>
            {
                self.pos += 1;
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c != b'.' && c != b',' && c != b')') {
                    self.pos += 1;
                }
                let s = String::from_utf8_lossy(&self.b[start..self.pos]).to_ascii_uppercase();
                self.expect(b'.')?;
                Ok(Value::Enum(s))
            }
            b'(' => Ok(Value::List(self.list(depth + 1)?)),
            b'+' | b'-' | b'.' | b'0'..=b'9' => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'E' | b'e'))
                {
                    self.pos += 1;
                }
                let s = std::str::from_utf8(&self.b[start..self.pos]).unwrap_or("");
                if !s.contains(['.', 'E', 'e']) {
                    if let Ok(i) = s.parse::<i64>() {
                        return Ok(Value::Int(i));
                    }
                }
                // STEP allows "1." and "1.E-5"; Rust parses both.
                match s.parse::<f64>() {
                    Ok(f) => Ok(Value::Real(f)),
                    Err(_) => self.fail(format!("bad number {s:?}")),
                }
            }
            c if c.is_ascii_alphabetic() => {
                let name = self.keyword()?;
                self.skip_ws()?;
                if self.peek() != Some(b'(') {
                    return self.fail(format!("expected '(' after typed value {name}"));
                }
                Ok(Value::Typed(name, self.list(depth + 1)?))
            }
            c => self.fail(format!("unexpected character '{}'", c as char)),
        }
    }
    /// Parses `( v, v, … )` starting at '('.
    fn list(&mut self, depth: usize) -> Result<Vec<Value>, String> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        self.skip_ws()?;
        if self.peek() == Some(b')') {
            self.pos += 1;
            return Ok(out);
        }
        loop {
            out.push(self.value(depth)?);
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(c) => return self.fail(format!("expected ',' or ')', found '{}'", c as char)),
                None => return self.fail("unexpected end of file in a parameter list"),
            }
        }
    }
}

/// Decodes STEP string escapes: `\X2\hhhh…\X0\` (UTF-16), `\X4\…\X0\` (UTF-32), `\X\hh`
/// (ISO 8859-1), `\S\c` (c + 128), `\\`. Raw bytes are UTF-8 or, failing that, ISO 8859-1.
fn decode_step_string(raw: &[u8]) -> String {
    let s = match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => raw.iter().map(|&b| b as char).collect(),
    };
    if !s.contains('\\') {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let hex_run = |body: &str, width: usize| -> Option<String> {
            let mut o = String::new();
            let units: Vec<u32> = (0..body.len() / width)
                .map(|k| {
                    body.get(k * width..(k + 1) * width)
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                })
                .collect::<Option<_>>()?;
            if width == 4 {
                let u16s: Vec<u16> = units.iter().map(|&u| u as u16).collect();
                o.push_str(&String::from_utf16_lossy(&u16s));
            } else {
                for u in units {
                    o.push(char::from_u32(u).unwrap_or('\u{fffd}'));
                }
            }
            Some(o)
        };
        if let Some(r) = rest
            .strip_prefix("\\X2\\")
            .or_else(|| rest.strip_prefix("\\X4\\"))
        {
            let width = if rest.starts_with("\\X2\\") { 4 } else { 8 };
            if let Some(end) = r.find("\\X0\\") {
                if let Some(t) = hex_run(&r[..end], width) {
                    out.push_str(&t);
                    rest = &r[end + 4..];
                    continue;
                }
            }
        } else if let Some(r) = rest.strip_prefix("\\X\\") {
            if let Some(b) = r.get(..2).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b as char);
                rest = &r[2..];
                continue;
            }
        } else if let Some(r) = rest.strip_prefix("\\S\\") {
            if let Some(c) = r.chars().next() {
                out.push(char::from_u32(c as u32 + 128).unwrap_or(c));
                rest = &r[c.len_utf8()..];
                continue;
            }
        } else if let Some(r) = rest.strip_prefix("\\\\") {
            out.push('\\');
            rest = r;
            continue;
        }
        out.push('\\');
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

/// Parses the DATA section(s) of a STEP physical file.
pub fn parse_step(bytes: &[u8]) -> Result<StepFile, String> {
    let mut lx = Lexer { b: bytes, pos: 0 };
    // Header: statements up to `DATA;`.
    loop {
        lx.skip_ws()?;
        if lx.peek().is_none() {
            return Err("no DATA section (is this an ISO 10303-21 file?)".into());
        }
        let st = lx.statement()?;
        if st.trim_ascii().eq_ignore_ascii_case(b"DATA") || st.trim_ascii().starts_with(b"DATA(") {
            break;
        }
    }
    let mut out = StepFile::default();
    loop {
        lx.skip_ws()?;
        match lx.peek() {
            None => return lx.fail("unexpected end of file: DATA section has no ENDSEC"),
            Some(b'#') => {}
            Some(_) => {
                let kw = lx.keyword()?;
                if kw == "ENDSEC" {
                    lx.expect(b';')?;
                    // Further DATA sections (rare) are read too.
                    lx.skip_ws()?;
                    if lx.keyword().ok().as_deref() == Some("DATA") {
                        lx.statement()?;
                        continue;
                    }
                    return Ok(out);
                }
                return lx.fail(format!("expected an instance '#n=…' or ENDSEC, found {kw}"));
            }
        }
        lx.pos += 1;
        let id = lx.digits()?;
        lx.expect(b'=')?;
        lx.skip_ws()?;
        if lx.peek() == Some(b'(') {
            lx.statement()?;
            out.complex_skipped += 1;
            continue;
        }
        let ty = lx.keyword()?;
        let args = lx.list(1)?;
        lx.expect(b';')?;
        out.entities.insert(id, Entity { ty, args });
    }
}

/// Affine transform: columns x, y, z and translation t.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Affine {
    m: [[f64; 3]; 3],
    t: [f64; 3],
}

const ID: Affine = Affine {
    m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    t: [0.0; 3],
};

impl Affine {
    fn vec(&self, v: [f64; 3]) -> [f64; 3] {
        let m = &self.m;
        [
            m[0][0] * v[0] + m[1][0] * v[1] + m[2][0] * v[2],
            m[0][1] * v[0] + m[1][1] * v[1] + m[2][1] * v[2],
            m[0][2] * v[0] + m[1][2] * v[1] + m[2][2] * v[2],
        ]
    }
    fn apply(&self, p: [f64; 3]) -> [f64; 3] {
        let v = self.vec(p);
        [v[0] + self.t[0], v[1] + self.t[1], v[2] + self.t[2]]
    }
    fn then(&self, inner: &Affine) -> Affine {
        // self ∘ inner
        Affine {
            m: [
                self.vec(inner.m[0]),
                self.vec(inner.m[1]),
                self.vec(inner.m[2]),
            ],
            t: self.apply(inner.t),
        }
    }
}

fn norm(v: [f64; 3]) -> Option<[f64; 3]> {
    let l = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    (l > 1e-12 && l.is_finite()).then(|| [v[0] / l, v[1] / l, v[2] / l])
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Entity types whose Body geometry makes the footprint and extent.
const GEOMETRY_TYPES: &[&str] = &[
    "IFCWALL",
    "IFCWALLSTANDARDCASE",
    "IFCWALLELEMENTEDCASE",
    "IFCSLAB",
    "IFCSLABSTANDARDCASE",
    "IFCSLABELEMENTEDCASE",
    "IFCROOF",
];

const STAT_TYPES: &[(&str, &[&str])] = &[
    ("storeys", &["IFCBUILDINGSTOREY"]),
    ("spaces", &["IFCSPACE"]),
    (
        "walls",
        &["IFCWALL", "IFCWALLSTANDARDCASE", "IFCWALLELEMENTEDCASE"],
    ),
    ("windows", &["IFCWINDOW", "IFCWINDOWSTANDARDCASE"]),
    ("doors", &["IFCDOOR", "IFCDOORSTANDARDCASE"]),
    (
        "slabs",
        &["IFCSLAB", "IFCSLABSTANDARDCASE", "IFCSLABELEMENTEDCASE"],
    ),
    ("roofs", &["IFCROOF"]),
];

struct Geom<'a> {
    f: &'a StepFile,
    unit: f64,
    wcs: Affine,
    placements: HashMap<u64, Affine>,
    counters: BTreeMap<&'static str, u64>,
    unsupported: BTreeMap<String, u64>,
    /// Triangles of the element being evaluated, in its representation's frame (L4 meshes).
    tris: Vec<[[f64; 3]; 3]>,
}

/// Triangulates a closed planar outline (in its own frame, z = 0) extruded along `dir · d`,
/// both placed by `pos`: bottom and top caps (earcut) and one quad per edge.
fn prism(prof: &[[f64; 3]], pos: &Affine, dir: [f64; 3], d: f64, out: &mut Vec<[[f64; 3]; 3]>) {
    let mut ring: Vec<[f64; 3]> = prof.to_vec();
    if ring.len() > 1 && ring.first() == ring.last() {
        ring.pop();
    }
    if ring.len() < 3 {
        return;
    }
    let top = |p: [f64; 3]| [p[0] + dir[0] * d, p[1] + dir[1] * d, p[2] + dir[2] * d];
    let mut tri: Vec<u32> = Vec::new();
    earcut::Earcut::<f64>::default().earcut(ring.iter().map(|p| [p[0], p[1]]), &[], &mut tri);
    // orientation of the outline (counter-clockwise → positive area)
    let area: f64 = (0..ring.len()).map(|i| {
        let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
        a[0] * b[1] - b[0] * a[1]
    }).sum();
    let up = (area >= 0.0) == (dir[2] * d >= 0.0);
    for t in tri.chunks_exact(3) {
        let (a, b, c) = (ring[t[0] as usize], ring[t[1] as usize], ring[t[2] as usize]);
        if up {
            out.push([pos.apply(a), pos.apply(c), pos.apply(b)]);
            out.push([pos.apply(top(a)), pos.apply(top(b)), pos.apply(top(c))]);
        } else {
            out.push([pos.apply(a), pos.apply(b), pos.apply(c)]);
            out.push([pos.apply(top(a)), pos.apply(top(c)), pos.apply(top(b))]);
        }
    }
    for i in 0..ring.len() {
        let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
        let (a, b) = if up { (a, b) } else { (b, a) };
        let (pa, pb, ta, tb) = (pos.apply(a), pos.apply(b), pos.apply(top(a)), pos.apply(top(b)));
        out.push([pa, pb, tb]);
        out.push([pa, tb, ta]);
    }
}

impl Geom<'_> {
    fn ent(&self, v: &Value) -> Option<&Entity> {
        v.as_ref_id().and_then(|r| self.f.entities.get(&r))
    }
    fn coords(&self, v: &Value) -> Option<Vec<f64>> {
        let e = self.ent(v)?;
        let l = e.arg(0).as_list()?;
        l.iter().map(|x| x.as_f64()).collect()
    }
    fn point3(&self, v: &Value) -> Option<[f64; 3]> {
        let c = self.coords(v)?;
        let u = self.unit;
        Some([
            c.first()? * u,
            c.get(1)? * u,
            c.get(2).copied().unwrap_or(0.0) * u,
        ])
    }
    fn dir3(&self, v: &Value) -> Option<[f64; 3]> {
        let c = self.coords(v)?;
        norm([*c.first()?, *c.get(1)?, c.get(2).copied().unwrap_or(0.0)])
    }
    /// IfcAxis2Placement3D / IfcAxis2Placement2D (Location, [Axis,] RefDirection).
    fn axis(&self, v: &Value) -> Option<Affine> {
        let e = self.ent(v)?;
        let loc = self.point3(e.arg(0))?;
        let (z, xref) = match e.ty.as_str() {
            "IFCAXIS2PLACEMENT3D" => (
                self.dir3(e.arg(1)).unwrap_or([0.0, 0.0, 1.0]),
                self.dir3(e.arg(2)),
            ),
            "IFCAXIS2PLACEMENT2D" => ([0.0, 0.0, 1.0], self.dir3(e.arg(1))),
            _ => return None,
        };
        let xref = xref.unwrap_or(if z[0].abs() < 0.9 {
            [1.0, 0.0, 0.0]
        } else {
            [0.0, 1.0, 0.0]
        });
        let d = dot(xref, z);
        let x = norm([xref[0] - d * z[0], xref[1] - d * z[1], xref[2] - d * z[2]])
            .or_else(|| norm(cross([0.0, 1.0, 0.0], z)))?;
        let y = cross(z, x);
        Some(Affine {
            m: [x, y, z],
            t: loc,
        })
    }
    /// World transform of an IfcLocalPlacement chain.
    fn placement(&mut self, v: &Value, depth: usize) -> Affine {
        let Some(id) = v.as_ref_id() else {
            return self.wcs;
        };
        if let Some(a) = self.placements.get(&id) {
            return *a;
        }
        let f = self.f;
        let Some(e) = f.entities.get(&id) else {
            return self.wcs;
        };
        let a = if e.ty != "IFCLOCALPLACEMENT" {
            *self.unsupported.entry(e.ty.clone()).or_default() += 1;
            self.wcs
        } else if depth > MAX_NESTING {
            *self
                .unsupported
                .entry("IFCLOCALPLACEMENT (cyclic or too deep)".into())
                .or_default() += 1;
            self.wcs
        } else {
            let parent = match e.arg(0) {
                Value::Ref(_) => self.placement(e.arg(0), depth + 1),
                _ => self.wcs,
            };
            match self.axis(e.arg(1)) {
                Some(rel) => parent.then(&rel),
                None => {
                    *self
                        .unsupported
                        .entry("IFCLOCALPLACEMENT RelativePlacement".into())
                        .or_default() += 1;
                    parent
                }
            }
        };
        self.placements.insert(id, a);
        a
    }
    fn curve_points(&mut self, v: &Value) -> Option<Vec<[f64; 3]>> {
        let e = self.ent(v)?;
        match e.ty.as_str() {
            "IFCPOLYLINE" => e.arg(0).as_list()?.iter().map(|p| self.point3(p)).collect(),
            "IFCINDEXEDPOLYCURVE" => {
                let pl = self.ent(e.arg(0))?;
                let u = self.unit;
                pl.arg(0)
                    .as_list()?
                    .iter()
                    .map(|c| {
                        let c = c.as_list()?;
                        Some([
                            c.first()?.as_f64()? * u,
                            c.get(1)?.as_f64()? * u,
                            c.get(2).and_then(|z| z.as_f64()).unwrap_or(0.0) * u,
                        ])
                    })
                    .collect()
            }
            t => {
                *self
                    .unsupported
                    .entry(format!("{t} (profile curve)"))
                    .or_default() += 1;
                None
            }
        }
    }
    /// Outline of a profile definition in its own 2D frame (z = 0).
    fn profile(&mut self, v: &Value) -> Option<Vec<[f64; 3]>> {
        let e = self.ent(v)?;
        let pos = |g: &Self| {
            if matches!(e.arg(2), Value::Ref(_)) {
                g.axis(e.arg(2))
            } else {
                Some(ID)
            }
        };
        match e.ty.as_str() {
            "IFCRECTANGLEPROFILEDEF"
            | "IFCROUNDEDRECTANGLEPROFILEDEF"
            | "IFCRECTANGLEHOLLOWPROFILEDEF" => {
                let p = pos(self)?;
                let (x, y) = (
                    e.arg(3).as_f64()? * self.unit / 2.0,
                    e.arg(4).as_f64()? * self.unit / 2.0,
                );
                Some(
                    [[-x, -y, 0.0], [x, -y, 0.0], [x, y, 0.0], [-x, y, 0.0]]
                        .iter()
                        .map(|&q| p.apply(q))
                        .collect(),
                )
            }
            "IFCCIRCLEPROFILEDEF" | "IFCCIRCLEHOLLOWPROFILEDEF" => {
                let p = pos(self)?;
                let r = e.arg(3).as_f64()? * self.unit;
                Some(
                    (0..16)
                        .map(|k| {
                            let a = k as f64 * std::f64::consts::TAU / 16.0;
                            p.apply([r * a.cos(), r * a.sin(), 0.0])
                        })
                        .collect(),
                )
            }
            "IFCARBITRARYCLOSEDPROFILEDEF" | "IFCARBITRARYPROFILEDEFWITHVOIDS" => {
                let c = e.arg(2).clone();
                self.curve_points(&c)
            }
            t => {
                *self
                    .unsupported
                    .entry(format!("{t} (profile)"))
                    .or_default() += 1;
                None
            }
        }
    }
    /// Points of a representation item in its representation's frame.
    fn item(&mut self, v: &Value, out: &mut Vec<[f64; 3]>, depth: usize) {
        let f = self.f;
        let Some(e) = v.as_ref_id().and_then(|r| f.entities.get(&r)) else {
            return;
        };
        if depth > MAX_NESTING {
            *self
                .unsupported
                .entry(format!("{} (nested too deeply)", e.ty))
                .or_default() += 1;
            return;
        }
        match e.ty.as_str() {
            "IFCEXTRUDEDAREASOLID" => {
                let prof = self.profile(e.arg(0));
                let pos = if matches!(e.arg(1), Value::Ref(_)) {
                    self.axis(e.arg(1))
                } else {
                    Some(ID)
                };
                let dir = self.dir3(e.arg(2));
                let d = e.arg(3).as_f64().map(|d| d * self.unit);
                match (prof, pos, dir, d) {
                    (Some(prof), Some(pos), Some(dir), Some(d)) if d.is_finite() => {
                        prism(&prof, &pos, dir, d, &mut self.tris);
                        for p in prof {
                            out.push(pos.apply(p));
                            out.push(pos.apply([
                                p[0] + dir[0] * d,
                                p[1] + dir[1] * d,
                                p[2] + dir[2] * d,
                            ]));
                        }
                        *self.counters.entry("extruded_solids").or_default() += 1;
                    }
                    _ => {
                        *self
                            .unsupported
                            .entry("IFCEXTRUDEDAREASOLID (unreadable parameters)".into())
                            .or_default() += 1
                    }
                }
            }
            "IFCBOOLEANCLIPPINGRESULT" | "IFCBOOLEANRESULT" => {
                *self
                    .counters
                    .entry("boolean_results_as_first_operand")
                    .or_default() += 1;
                self.item(e.arg(1), out, depth + 1)
            }
            "IFCFACETEDBREP" => {
                let n0 = out.len();
                let mut fan: Vec<[[f64; 3]; 3]> = Vec::new();
                if let Some(shell) = self.ent(e.arg(0)) {
                    for face in shell.arg(0).as_list().unwrap_or_default() {
                        for bound in self
                            .ent(face)
                            .and_then(|f| f.arg(0).as_list())
                            .unwrap_or_default()
                        {
                            let Some(loop_) = self.ent(bound).and_then(|b| self.ent(b.arg(0)))
                            else {
                                continue;
                            };
                            if loop_.ty == "IFCPOLYLOOP" {
                                let mut face: Vec<[f64; 3]> = Vec::new();
                                for p in loop_.arg(0).as_list().unwrap_or_default() {
                                    if let Some(q) = self.point3(p) {
                                        out.push(q);
                                        face.push(q);
                                    }
                                }
                                // fan (faceted breps have planar, mostly convex faces)
                                for k in 1..face.len().saturating_sub(1) {
                                    fan.push([face[0], face[k], face[k + 1]]);
                                }
                            }
                        }
                    }
                }
                self.tris.extend(fan);
                if out.len() > n0 {
                    *self.counters.entry("faceted_breps").or_default() += 1;
                } else {
                    *self
                        .unsupported
                        .entry("IFCFACETEDBREP (no polyloop vertices)".into())
                        .or_default() += 1;
                }
            }
            "IFCMAPPEDITEM" => *self.counters.entry("mapped_items_skipped").or_default() += 1,
            t => *self.unsupported.entry(t.to_string()).or_default() += 1,
        }
    }
}

fn compound_angle(v: &Value) -> Option<f64> {
    let l = v.as_list()?;
    if !(3..=4).contains(&l.len()) {
        return None;
    }
    let parts: Vec<f64> = l.iter().map(|x| x.as_f64()).collect::<Option<_>>()?;
    let deg = parts[0]
        + parts[1] / 60.0
        + parts[2] / 3600.0
        + parts.get(3).copied().unwrap_or(0.0) / 3.6e9;
    deg.is_finite().then_some(deg)
}

fn si_prefix(p: Option<&str>) -> f64 {
    match p {
        Some("EXA") => 1e18,
        Some("PETA") => 1e15,
        Some("TERA") => 1e12,
        Some("GIGA") => 1e9,
        Some("MEGA") => 1e6,
        Some("KILO") => 1e3,
        Some("HECTO") => 1e2,
        Some("DECA") => 1e1,
        Some("DECI") => 1e-1,
        Some("CENTI") => 1e-2,
        Some("MILLI") => 1e-3,
        Some("MICRO") => 1e-6,
        Some("NANO") => 1e-9,
        _ => 1.0,
    }
}

/// Metres per model length unit; `None` when no length unit is declared.
fn length_unit(f: &StepFile) -> Option<f64> {
    let unit_scale = |e: &Entity, depth: usize| -> Option<f64> {
        fn inner(f: &StepFile, e: &Entity, depth: usize) -> Option<f64> {
            if e.arg(1).as_enum() != Some("LENGTHUNIT") || depth > 4 {
                return None;
            }
            match e.ty.as_str() {
                "IFCSIUNIT" => Some(si_prefix(e.arg(2).as_enum())),
                "IFCCONVERSIONBASEDUNIT" | "IFCCONVERSIONBASEDUNITWITHOFFSET" => {
                    let m = f.entities.get(&e.arg(3).as_ref_id()?)?;
                    let factor = m.arg(0).as_f64()?;
                    let base = f.entities.get(&m.arg(1).as_ref_id()?)?;
                    let base = if base.ty == "IFCSIUNIT" {
                        si_prefix(base.arg(2).as_enum())
                    } else {
                        inner(f, base, depth + 1)?
                    };
                    Some(factor * base)
                }
                _ => None,
            }
        }
        inner(f, e, depth)
    };
    let project = f.entities.values().find(|e| e.ty == "IFCPROJECT");
    if let Some(ua) = project
        .and_then(|p| p.arg(8).as_ref_id())
        .and_then(|r| f.entities.get(&r))
    {
        for u in ua.arg(0).as_list().unwrap_or_default() {
            if let Some(s) = u
                .as_ref_id()
                .and_then(|r| f.entities.get(&r))
                .and_then(|e| unit_scale(e, 0))
            {
                return Some(s);
            }
        }
    }
    f.entities.values().find_map(|e| unit_scale(e, 0))
}

fn is_residential(texts: &[&str]) -> bool {
    texts.iter().any(|t| {
        let t = t.to_lowercase();
        [
            "residential",
            "wohn",
            "house",
            "haus",
            "apartment",
            "dwelling",
            "住宅",
            "居民",
        ]
        .iter()
        .any(|k| t.contains(k))
    })
}

/// Reads an IFC file into a [`LocalModel`] (solid corners in the project's local frame, metres).
pub fn read(path: &Path, file: &str, report: &mut BuildReport) -> Result<LocalModel, IngestError> {
    let bytes =
        std::fs::read(path).map_err(|e| IngestError::file(file, format!("cannot read: {e}")))?;
    read_bytes(&bytes, file, report)
}

pub fn read_bytes(
    bytes: &[u8],
    file: &str,
    report: &mut BuildReport,
) -> Result<LocalModel, IngestError> {
    let f = parse_step(bytes)
        .map_err(|m| IngestError::file(file, format!("malformed STEP/IFC: {m}")))?;
    let mut out = LocalModel::default();
    let mut types: HashMap<&str, u64> = HashMap::new();
    for e in f.entities.values() {
        *types.entry(e.ty.as_str()).or_default() += 1;
    }
    if !types.keys().any(|t| t.starts_with("IFC")) {
        return Err(IngestError::file(
            file,
            "no IFC entities in the DATA section",
        ));
    }
    for (key, tys) in STAT_TYPES {
        out.stats.insert(
            (*key).into(),
            tys.iter().map(|t| types.get(t).copied().unwrap_or(0)).sum(),
        );
    }
    out.stats.insert("entities".into(), f.entities.len() as u64);
    if f.complex_skipped > 0 {
        out.stats
            .insert("complex_instances_skipped".into(), f.complex_skipped);
    }
    let unit = match length_unit(&f) {
        Some(u) => u,
        None => {
            report.warn(format!(
                "{file}: no IFC length unit declared: assuming metres"
            ));
            1.0
        }
    };

    // Names and use.
    let first = |ty: &str| f.entities.iter().find(|(_, e)| e.ty == ty);
    let project = first("IFCPROJECT").map(|(_, e)| e);
    let building = first("IFCBUILDING");
    let pname = project
        .and_then(|p| p.arg(2).as_str().or(p.arg(5).as_str()))
        .filter(|s| !s.is_empty());
    let bname = building
        .and_then(|(_, b)| b.arg(2).as_str().or(b.arg(7).as_str()))
        .filter(|s| !s.is_empty());
    out.names = Names {
        zh: None,
        en: None,
        local: bname.or(pname).map(str::to_string),
    };
    if let Some((_, b)) = building {
        let texts: Vec<&str> = [2, 3, 4, 7]
            .iter()
            .filter_map(|&i| b.arg(i).as_str())
            .collect();
        out.use_ = Some(if is_residential(&texts) {
            BuildingUse::Residential
        } else {
            BuildingUse::Unknown
        });
        out.id = b.arg(0).as_str().map(str::to_string);
    }
    out.levels = out
        .stats
        .get("storeys")
        .and_then(|&n| u16::try_from(n).ok())
        .filter(|&n| n > 0);

    // Model context: world coordinate system and true north.
    let ctx = f
        .entities
        .values()
        .filter(|e| e.ty == "IFCGEOMETRICREPRESENTATIONCONTEXT")
        .find(|e| {
            e.arg(1)
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("model"))
        })
        .or_else(|| {
            f.entities
                .values()
                .find(|e| e.ty == "IFCGEOMETRICREPRESENTATIONCONTEXT")
        });
    let mut g = Geom {
        f: &f,
        unit,
        wcs: ID,
        placements: HashMap::new(),
        counters: BTreeMap::new(),
        tris: Vec::new(),
        unsupported: BTreeMap::new(),
    };
    if let Some(c) = ctx {
        if let Some(w) = g.axis(c.arg(4)) {
            g.wcs = w;
        }
    }
    let heading = ctx
        .and_then(|c| g.coords(c.arg(5)))
        .and_then(|tn| {
            let (x, y) = (*tn.first()?, *tn.get(1)?);
            (x.hypot(y) > 1e-12).then(|| -x.atan2(y).to_degrees())
        })
        .unwrap_or(0.0);

    // Georeference from IfcSite.
    let sites: Vec<&Entity> = f.entities.values().filter(|e| e.ty == "IFCSITE").collect();
    if sites.len() > 1 {
        report.warn(format!(
            "{file}: {} IfcSite entities: the first with RefLatitude/RefLongitude is used",
            sites.len()
        ));
    }
    out.georef = sites.iter().find_map(|s| {
        let lat = compound_angle(s.arg(9))?;
        let lon = compound_angle(s.arg(10))?;
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return None;
        }
        let h = s
            .arg(11)
            .as_f64()
            .map(|h| h * unit)
            .filter(|h| h.is_finite())
            .unwrap_or(0.0);
        Some(Placement {
            lon,
            lat,
            height: h,
            heading_deg: heading,
            scale: 1.0,
        })
    });

    // Geometry of walls, slabs and roofs.
    let mut without_body = 0u64;
    let mut with_geometry = 0u64;
    for e in f
        .entities
        .values()
        .filter(|e| GEOMETRY_TYPES.contains(&e.ty.as_str()))
    {
        let world = g.placement(e.arg(5), 0);
        let reps: Vec<Value> = g
            .ent(e.arg(6))
            .and_then(|s| s.arg(2).as_list())
            .map(|l| l.to_vec())
            .unwrap_or_default();
        let mut pts = Vec::new();
        let mut had_body = false;
        for r in &reps {
            let Some(rep) = g.ent(r) else { continue };
            if !rep
                .arg(1)
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("body"))
            {
                continue;
            }
            had_body = true;
            for item in rep.arg(3).as_list().unwrap_or_default().to_vec() {
                g.item(&item, &mut pts, 0);
            }
        }
        if !had_body {
            without_body += 1;
        }
        if !pts.is_empty() {
            with_geometry += 1;
        }
        let tris = std::mem::take(&mut g.tris);
        if !tris.is_empty() {
            let class = match e.ty.as_str() {
                "IFCROOF" => crate::model::SurfaceKind::Roof,
                t if t.starts_with("IFCSLAB") => {
                    if e.arg(8).as_enum().is_some_and(|x| x.eq_ignore_ascii_case("ROOF")) {
                        crate::model::SurfaceKind::Roof
                    } else {
                        crate::model::SurfaceKind::OuterFloor
                    }
                }
                _ => crate::model::SurfaceKind::Wall,
            };
            let placed: Vec<[[f64; 3]; 3]> = tris
                .into_iter()
                .map(|t| t.map(|p| world.apply(p)))
                .filter(|t| t.iter().flatten().all(|x| x.is_finite()))
                .collect();
            out.mesh.push((class, placed));
        }
        out.points.extend(
            pts.into_iter()
                .map(|p| world.apply(p))
                .filter(|p| p.iter().all(|x| x.is_finite())),
        );
    }
    out.stats
        .insert("elements_with_geometry".into(), with_geometry);
    if without_body > 0 {
        out.stats
            .insert("elements_without_body".into(), without_body);
    }
    for (k, v) in &g.counters {
        out.stats.insert((*k).into(), *v);
    }
    let unsupported: u64 = g.unsupported.values().sum();
    if unsupported > 0 {
        out.stats.insert("unsupported_items".into(), unsupported);
        let list: Vec<String> = g
            .unsupported
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect();
        report.warn(format!(
            "{file}: IFC geometry not evaluated (unsupported, skipped): {}",
            list.join(", ")
        ));
    }
    if let Some(m) = g.counters.get("mapped_items_skipped") {
        report.warn(format!(
            "{file}: {m} IfcMappedItem body items skipped (not evaluated)"
        ));
    }
    if out.points.is_empty() {
        let h = out
            .levels
            .map(|l| l as f64 * crate::model::METRES_PER_LEVEL as f64)
            .unwrap_or(3.0);
        report.warn(format!(
            "{file}: no evaluable wall/slab/roof geometry: footprint ESTIMATED as a 10 m × 10 m square at \
             the site origin, height {h} m from the storey count"
        ));
        for (x, y) in [(-5.0, -5.0), (5.0, -5.0), (5.0, 5.0), (-5.0, 5.0)] {
            out.points.push([x, y, 0.0]);
            out.points.push([x, y, h]);
        }
        out.estimated = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str =
        "ISO-10303-21;\nHEADER;FILE_NAME('a;b','',(''),(''),'','','');\nENDSEC;\nDATA;\n\
        #1= IFCPROPERTYSINGLEVALUE('It''s',$,IFCLENGTHMEASURE(1.E-3),.T.); /* c */\n\
        #2=(IFCA() IFCB());\n\
        #3= IFCX((1,-2.5,(#1,$,*)),'\\X2\\6C889633\\X0\\',\"0AB\");\nENDSEC;\nEND-ISO-10303-21;\n";

    #[test]
    fn tokenizer_handles_step_syntax() {
        let f = parse_step(MINI.as_bytes()).expect("parses");
        assert_eq!(f.complex_skipped, 1);
        let e1 = &f.entities[&1];
        assert_eq!(e1.ty, "IFCPROPERTYSINGLEVALUE");
        assert_eq!(e1.args[0], Value::Str("It's".into()));
        assert_eq!(e1.args[1], Value::Null);
        assert_eq!(
            e1.args[2],
            Value::Typed("IFCLENGTHMEASURE".into(), vec![Value::Real(1e-3)])
        );
        assert_eq!(e1.args[3], Value::Enum("T".into()));
        let e3 = &f.entities[&3];
        assert_eq!(
            e3.args[0],
            Value::List(vec![
                Value::Int(1),
                Value::Real(-2.5),
                Value::List(vec![Value::Ref(1), Value::Null, Value::Derived])
            ])
        );
        assert_eq!(e3.args[1], Value::Str("沈阳".into()));
    }

    #[test]
    fn malformed_step_is_an_error_not_a_panic() {
        for s in [
            "",
            "ISO-10303-21;",
            "DATA;\n#1=IFCX((1,2);\nENDSEC;",
            "DATA;\n#1=IFCX('abc",
            "DATA;\n#1=IFCX(1.2.3.e);ENDSEC;",
        ] {
            assert!(parse_step(s.as_bytes()).is_err(), "{s}");
        }
        let deep = format!(
            "DATA;\n#1=IFCX({}{});\nENDSEC;",
            "(".repeat(200),
            ")".repeat(200)
        );
        assert!(parse_step(deep.as_bytes()).is_err());
    }

    #[test]
    fn compound_angles_carry_sign_and_millionths() {
        let v = Value::List(vec![
            Value::Int(-49),
            Value::Int(-6),
            Value::Int(-1),
            Value::Int(-500000),
        ]);
        let a = compound_angle(&v).expect("angle");
        assert!(
            (a + (49.0 + 6.0 / 60.0 + 1.5 / 3600.0)).abs() < 1e-12,
            "{a}"
        );
    }
}
