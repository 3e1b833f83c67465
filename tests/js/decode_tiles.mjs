// Decodes every tile of a z/x/y dump with @mapbox/vector-tile (the reference JS decoder) and
// prints a JSON summary on stdout for tests/vector_tiles.rs:
//   node decode_tiles.mjs DUMP_DIR MAX_ZOOM
// DUMP_DIR holds Z/X/Y.mvt files exactly as stored in the archive (gzipped).
// Summary: tiles decoded, decode errors, features per zoom and layer, features per tile and
// layer, polygon winding errors (an exterior ring that is not positive by the surveyor's
// formula in y-down tile coordinates), and for every building at MAX_ZOOM its area in m²
// (each piece clipped to its tile's own square first so buffers are not counted twice), the
// number of pieces and its properties (with a count of pieces whose properties disagree).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { VectorTile, classifyRings } from '@mapbox/vector-tile';
import { PbfReader } from 'pbf';

const [dir, maxZoomArg] = process.argv.slice(2);
const maxZoom = Number(maxZoomArg);
const C = 2 * Math.PI * 6378137;

function ringArea(r) {
  let s = 0;
  for (let i = 0; i < r.length; i++) {
    const a = r[i], b = r[(i + 1) % r.length];
    s += a.x * b.y - b.x * a.y;
  }
  return s / 2;
}

// Sutherland–Hodgman against [0, extent]².
function clip(ring, e) {
  let pts = ring.slice();
  if (pts.length > 1 && pts[0].x === pts[pts.length - 1].x && pts[0].y === pts[pts.length - 1].y) pts.pop();
  const edges = [
    [p => p.x >= 0, (p, q) => ({ x: 0, y: p.y + (0 - p.x) * (q.y - p.y) / (q.x - p.x) })],
    [p => p.x <= e, (p, q) => ({ x: e, y: p.y + (e - p.x) * (q.y - p.y) / (q.x - p.x) })],
    [p => p.y >= 0, (p, q) => ({ x: p.x + (0 - p.y) * (q.x - p.x) / (q.y - p.y), y: 0 })],
    [p => p.y <= e, (p, q) => ({ x: p.x + (e - p.y) * (q.x - p.x) / (q.y - p.y), y: e })],
  ];
  for (const [inside, cross] of edges) {
    if (pts.length === 0) break;
    const out = [];
    let prev = pts[pts.length - 1];
    for (const cur of pts) {
      if (inside(cur)) {
        if (!inside(prev)) out.push(cross(prev, cur));
        out.push(cur);
      } else if (inside(prev)) out.push(cross(prev, cur));
      prev = cur;
    }
    pts = out;
  }
  return pts;
}

const summary = {
  tiles: 0, errors: [], per_zoom: {}, per_tile: {}, winding_errors: 0, polygons: 0,
  buildings: {}, property_mismatches: 0,
};

const comparable = ['height', 'min_height', 'use', 'name', 'name_en', 'level', 'district'];

for (const z of fs.readdirSync(dir)) {
  for (const x of fs.readdirSync(path.join(dir, z))) {
    for (const f of fs.readdirSync(path.join(dir, z, x))) {
      const y = f.replace(/\.mvt$/, '');
      const key = `${z}/${x}/${y}`;
      let tile;
      try {
        const raw = zlib.gunzipSync(fs.readFileSync(path.join(dir, z, x, f)));
        tile = new VectorTile(new PbfReader(raw));
      } catch (e) {
        summary.errors.push(`${key}: ${e.message}`);
        continue;
      }
      summary.tiles++;
      const counts = {};
      for (const [name, layer] of Object.entries(tile.layers)) {
        counts[name] = layer.length;
        summary.per_zoom[z] ??= {};
        summary.per_zoom[z][name] = (summary.per_zoom[z][name] ?? 0) + layer.length;
        for (let i = 0; i < layer.length; i++) {
          let feat;
          try {
            feat = layer.feature(i);
            const geom = feat.loadGeometry();
            feat.toGeoJSON(Number(x), Number(y), Number(z)); // exercises the full decode path
            if (feat.type !== 3) continue;
            const polys = classifyRings(geom);
            let area = 0;
            for (const poly of polys) {
              summary.polygons++;
              if (ringArea(poly[0]) <= 0) summary.winding_errors++;
              for (const r of poly) area += ringArea(clip(r, layer.extent));
            }
            if (name === 'buildings' && Number(z) === maxZoom) {
              const n = 2 ** Number(z);
              const p0 = geom[0][0];
              const yUnit = (Number(y) + p0.y / layer.extent) / n;
              const lat = Math.atan(Math.sinh(Math.PI * (1 - 2 * yUnit)));
              const unitM = C / (n * layer.extent);
              const m2 = area * unitM * unitM * Math.cos(lat) ** 2;
              const id = String(feat.id);
              const props = {};
              for (const k of comparable) if (k in feat.properties) props[k] = feat.properties[k];
              if (feat.properties.id !== feat.id) summary.property_mismatches++;
              const b = summary.buildings[id];
              if (!b) summary.buildings[id] = { area_m2: m2, pieces: 1, props };
              else {
                b.area_m2 += m2;
                b.pieces++;
                if (JSON.stringify(b.props) !== JSON.stringify(props)) summary.property_mismatches++;
              }
            }
          } catch (e) {
            summary.errors.push(`${key}: layer ${name} feature ${i}: ${e.message}`);
          }
        }
      }
      summary.per_tile[key] = counts;
    }
  }
}
process.stdout.write(JSON.stringify(summary));
