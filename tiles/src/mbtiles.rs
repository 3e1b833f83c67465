//! MBTiles 1.3 export of a PMTiles archive (feature `mbtiles`, SQLite bundled through rusqlite).
//!
//! Tiles are copied as stored (gzipped MVT, which is what GDAL's MVT driver expects for
//! `format=pbf`), rows are flipped to the TMS scheme (`tile_row = 2^z − 1 − y`), and the metadata
//! table carries `name`, `format=pbf`, `bounds`, `center`, `minzoom`, `maxzoom` and
//! `json = {"vector_layers": …}` plus the archive's description/attribution/version.

use crate::pmtiles::{Compression, Reader, TileType};
use rusqlite::{params, Connection};
use std::path::Path;

/// Writes `out` (replacing it) from the archive; returns the number of tiles written.
pub fn write_from_pmtiles(reader: &Reader, out: &Path) -> Result<u64, String> {
    let h = reader.header();
    if h.tile_type != TileType::Mvt {
        return Err(format!("the archive holds {:?} tiles; only MVT is exported", h.tile_type));
    }
    if h.tile_compression != Compression::Gzip && h.tile_compression != Compression::None {
        return Err(format!("tile compression {:?} cannot be stored in MBTiles for GDAL", h.tile_compression));
    }
    let tmp = out.with_extension("mbtiles.partial");
    let _ = std::fs::remove_file(&tmp);
    let e = |what: &str| {
        let tmp = tmp.clone();
        let what = what.to_string();
        move |err: rusqlite::Error| format!("{}: {what}: {err}", tmp.display())
    };
    let mut conn = Connection::open(&tmp).map_err(e("cannot create"))?;
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
         CREATE TABLE metadata (name TEXT, value TEXT);
         CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);",
    )
    .map_err(e("schema"))?;
    let meta = reader.metadata();
    let s = |k: &str| meta.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let b = h.bounds;
    let mut rows: Vec<(&str, String)> = vec![
        ("name", s("name").unwrap_or_else(|| "tiles".into())),
        ("format", "pbf".into()),
        ("bounds", format!("{},{},{},{}", b[0], b[1], b[2], b[3])),
        ("center", format!("{},{},{}", h.center[0], h.center[1], h.center_zoom)),
        ("minzoom", h.min_zoom.to_string()),
        ("maxzoom", h.max_zoom.to_string()),
        ("type", s("type").unwrap_or_else(|| "baselayer".into())),
        (
            "json",
            serde_json::json!({"vector_layers": meta.get("vector_layers").cloned().unwrap_or_else(|| serde_json::json!([]))})
                .to_string(),
        ),
    ];
    for k in ["description", "attribution", "version"] {
        if let Some(v) = s(k) {
            rows.push((k, v));
        }
    }
    let tx = conn.transaction().map_err(e("transaction"))?;
    let mut n = 0u64;
    {
        let mut st = tx.prepare("INSERT INTO metadata (name, value) VALUES (?1, ?2)").map_err(e("metadata"))?;
        for (k, v) in &rows {
            st.execute(params![k, v]).map_err(e("metadata"))?;
        }
        let mut st = tx
            .prepare("INSERT INTO tiles (zoom_level, tile_column, tile_row, tile_data) VALUES (?1, ?2, ?3, ?4)")
            .map_err(e("tiles"))?;
        for (z, x, y) in reader.tiles() {
            let data = reader.get(z, x, y).map_err(|err| err.to_string())?.expect("listed tile exists");
            let tms_y = (1u32 << z) - 1 - y;
            st.execute(params![z, x, tms_y, &data[..]]).map_err(e("tiles"))?;
            n += 1;
        }
    }
    tx.execute_batch("CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);")
        .map_err(e("index"))?;
    tx.commit().map_err(e("commit"))?;
    drop(conn);
    std::fs::rename(&tmp, out).map_err(|err| format!("cannot move {} to {}: {err}", tmp.display(), out.display()))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pmtiles::{Writer, WriterOptions};

    #[test]
    fn rows_are_tms_flipped_and_metadata_is_complete() {
        let mut w = Writer::new(WriterOptions { bounds: [1.0, 2.0, 3.0, 4.0], center: [2.0, 3.0], center_zoom: 2, ..Default::default() });
        w.add_tile(2, 1, 0, b"a".to_vec()).unwrap();
        w.add_tile(2, 1, 3, b"b".to_vec()).unwrap();
        let mut buf = Vec::new();
        w.finish_to(&serde_json::json!({"name": "x", "vector_layers": [{"id": "roads"}]}), &mut buf).unwrap();
        let r = Reader::from_bytes(buf.into()).unwrap();
        let dir = std::env::temp_dir().join(format!("mbt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("t.mbtiles");
        assert_eq!(write_from_pmtiles(&r, &out).unwrap(), 2);
        let c = Connection::open(&out).unwrap();
        // XYZ y=0 at z2 is TMS row 3.
        let d: Vec<u8> = c
            .query_row("SELECT tile_data FROM tiles WHERE zoom_level=2 AND tile_column=1 AND tile_row=3", [], |r| r.get(0))
            .unwrap();
        assert_eq!(d, b"a");
        let get = |k: &str| -> String { c.query_row("SELECT value FROM metadata WHERE name=?1", [k], |r| r.get(0)).unwrap() };
        assert_eq!(get("format"), "pbf");
        assert_eq!(get("bounds"), "1,2,3,4");
        assert_eq!(get("center"), "2,3,2");
        assert_eq!(get("minzoom"), "2");
        assert_eq!(get("json"), r#"{"vector_layers":[{"id":"roads"}]}"#);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
