// Where CesiumJS puts a tileset: the centre of the root bounding volume, with the root
// `transform` applied as Cesium does (column-major Matrix4; a region ignores it), as
// longitude/latitude/height on WGS-84, computed with Cesium's own math (no browser needed).
//   node cesium_root_position.mjs TILESET.json…
// Prints one JSON array: [{"file", "kind": "box"|"region"|"sphere", "lon", "lat", "height"}].
import fs from 'node:fs';
import * as Cesium from 'cesium';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node cesium_root_position.mjs TILESET.json…');
  process.exit(2);
}
const out = [];
for (const file of files) {
  const root = JSON.parse(fs.readFileSync(file, 'utf8')).root;
  const m = root.transform ? Cesium.Matrix4.unpack(root.transform) : Cesium.Matrix4.IDENTITY;
  const bv = root.boundingVolume;
  let kind, centre;
  if (bv.box) {
    kind = 'box';
    const obb = Cesium.OrientedBoundingBox.unpack(bv.box);
    centre = Cesium.Matrix4.multiplyByPoint(m, obb.center, new Cesium.Cartesian3());
  } else if (bv.sphere) {
    kind = 'sphere';
    const c = Cesium.Cartesian3.unpack(bv.sphere);
    centre = Cesium.Matrix4.multiplyByPoint(m, c, new Cesium.Cartesian3());
  } else if (bv.region) {
    kind = 'region';
    const [w, s, e, n, lo, hi] = bv.region;
    const obb = Cesium.OrientedBoundingBox.fromRectangle(new Cesium.Rectangle(w, s, e, n), lo, hi);
    centre = obb.center;
  } else {
    console.error(`${file}: root has no box, region or sphere`);
    process.exit(1);
  }
  const g = Cesium.Cartographic.fromCartesian(centre);
  out.push({ file, kind, lon: Cesium.Math.toDegrees(g.longitude), lat: Cesium.Math.toDegrees(g.latitude), height: g.height });
}
console.log(JSON.stringify(out));
