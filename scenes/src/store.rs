//! The model directory's binary files: `model.bin` (the canonical model) and `index.bin` (the
//! spatial index), each an 8-byte magic, a little-endian u32 format version and a bincode body.

use crate::index::SpatialIndex;
use crate::model::{CityModel, MODEL_FORMAT_VERSION};
use anyhow::{bail, Context, Result};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

pub const MODEL_FILE: &str = "model.bin";
pub const INDEX_FILE: &str = "index.bin";
pub const MANIFEST_FILE: &str = "manifest.json";

const MODEL_MAGIC: &[u8; 8] = b"CTWINMDL";
const INDEX_MAGIC: &[u8; 8] = b"CTWINIDX";

fn write_bin<T: serde::Serialize>(path: &Path, magic: &[u8; 8], value: &T) -> Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    w.write_all(magic)?;
    w.write_all(&MODEL_FORMAT_VERSION.to_le_bytes())?;
    bincode::serialize_into(&mut w, value).with_context(|| format!("cannot write {}", path.display()))?;
    let f = w.into_inner().map_err(|e| e.into_error()).with_context(|| format!("cannot write {}", path.display()))?;
    f.sync_all().with_context(|| format!("cannot sync {}", path.display()))?;
    Ok(())
}

fn read_bin<T: serde::de::DeserializeOwned>(path: &Path, magic: &[u8; 8]) -> Result<T> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut head = [0u8; 12];
    r.read_exact(&mut head).with_context(|| format!("{}: truncated header", path.display()))?;
    if &head[..8] != magic {
        bail!("{}: not a CityTwin file (bad magic)", path.display());
    }
    let v = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if v != MODEL_FORMAT_VERSION {
        bail!("{}: format version {v}, this build reads {MODEL_FORMAT_VERSION}: rebuild the model", path.display());
    }
    bincode::deserialize_from(r).with_context(|| format!("{}: corrupt or truncated", path.display()))
}

pub fn write_model(dir: &Path, model: &CityModel) -> Result<()> {
    write_bin(&dir.join(MODEL_FILE), MODEL_MAGIC, model)
}

pub fn read_model(dir: &Path) -> Result<CityModel> {
    read_bin(&dir.join(MODEL_FILE), MODEL_MAGIC)
}

pub fn write_index(dir: &Path, index: &SpatialIndex) -> Result<()> {
    write_bin(&dir.join(INDEX_FILE), INDEX_MAGIC, index)
}

pub fn read_index(dir: &Path) -> Result<SpatialIndex> {
    read_bin(&dir.join(INDEX_FILE), INDEX_MAGIC)
}

/// A model directory loaded for serving.
pub struct LoadedModel {
    pub model: CityModel,
    pub index: SpatialIndex,
    pub manifest: serde_json::Value,
}

/// Loads manifest, model and index from a built directory.
pub fn load(dir: &Path) -> Result<LoadedModel> {
    let mpath = dir.join(MANIFEST_FILE);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&mpath).with_context(|| format!("{} is not a model directory (no manifest.json)", dir.display()))?,
    )
    .with_context(|| format!("{}: invalid JSON", mpath.display()))?;
    let model = read_model(dir)?;
    let index = read_index(dir)?;
    Ok(LoadedModel { model, index, manifest })
}
