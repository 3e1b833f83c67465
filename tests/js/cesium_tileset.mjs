// Loads a 3D Tiles tileset in CesiumJS (headless Chromium, WebGL through SwiftShader), looks
// straight down at a point from a given height, waits until every tile in view is loaded, counts
// drawn pixels and picks the feature at the centre of the screen.
//   node cesium_tileset.mjs TILESET_URL LON LAT CAMERA_HEIGHT_M [SCREENSHOT.png]
// The page and Cesium's Build/Cesium files are served from 127.0.0.1 by this script; any request
// to another host is blocked and reported. Prints one JSON object:
//   {"loaded", "loadedByKind": {l2, l3, l4, trees} (by content URI), "failed", "failures": [...],
//    "tilesLoaded", "nonBackground", "pixels",
//    "picked": {id, height, use, level, name, district, floors, source} | null,
//    "pickedHeight": metres above the ellipsoid of the surface at the centre, "blocked": [...],
//    "pageErrors": [...]}
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium, listenLocal } from './chromium.mjs';

const [url, lonS, latS, hS, shot] = process.argv.slice(2);
if (!url || !lonS || !latS || !hS) {
  console.error('usage: node cesium_tileset.mjs TILESET_URL LON LAT CAMERA_HEIGHT_M [SCREENSHOT.png]');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const cesiumDir = path.join(here, 'node_modules', 'cesium', 'Build', 'Cesium');
const types = { '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.png': 'image/png',
  '.jpg': 'image/jpeg', '.wasm': 'application/wasm', '.glsl': 'text/plain', '.html': 'text/html', '.xml': 'text/xml' };
const page = `<!doctype html><html><head><meta charset="utf-8">
<style>html,body,#c{margin:0;width:100%;height:100%;overflow:hidden;background:#000}</style>
<link rel="stylesheet" href="/cesium/Widgets/widgets.css"><script>window.CESIUM_BASE_URL = '/cesium/';</script><script src="/cesium/Cesium.js"></script>
</head><body><div id="c"></div></body></html>`;

const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://127.0.0.1');
  if (u.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end(page);
  }
  if (u.pathname.startsWith('/cesium/')) {
    const rel = decodeURIComponent(u.pathname.slice('/cesium/'.length));
    const file = path.resolve(cesiumDir, rel);
    if (file.startsWith(cesiumDir + path.sep) && fs.existsSync(file) && fs.statSync(file).isFile()) {
      res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' });
      return fs.createReadStream(file).pipe(res);
    }
  }
  res.writeHead(404);
  res.end();
});
const port = await listenLocal(server);

const browser = await launchChromium();
const out = { blocked: [], pageErrors: [], console: [] };
try {
  const p = await browser.newPage({ viewport: { width: 800, height: 600 } });
  await p.route('**/*', (route) => {
    const h = new URL(route.request().url()).hostname;
    if (h === '127.0.0.1' || h === 'localhost') return route.continue();
    out.blocked.push(route.request().url());
    return route.abort();
  });
  p.on('pageerror', (e) => out.pageErrors.push(String(e)));
  p.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') out.console.push(m.text().slice(0, 300)); });
  await p.goto(`http://127.0.0.1:${port}/`);
  const r = await p.evaluate(async ({ url, lon, lat, h }) => {
    const viewer = new Cesium.Viewer('c', {
      baseLayer: false, baseLayerPicker: false, geocoder: false, timeline: false, animation: false,
      homeButton: false, sceneModePicker: false, navigationHelpButton: false, fullscreenButton: false,
      infoBox: false, selectionIndicator: false, skyBox: false, skyAtmosphere: false,
      terrainProvider: new Cesium.EllipsoidTerrainProvider(),
      contextOptions: { webgl: { preserveDrawingBuffer: true } },
    });
    const scene = viewer.scene;
    scene.globe.show = false;
    scene.fog.enabled = false;
    scene.backgroundColor = Cesium.Color.BLACK;
    viewer.clock.shouldAnimate = false;
    viewer.clock.currentTime = Cesium.JulianDate.fromIso8601('2026-06-21T04:00:00Z'); // local noon
    const res = { loaded: 0, failed: 0, failures: [], loadedByKind: { l2: 0, l3: 0, l4: 0, trees: 0 } };
    const tileset = await Cesium.Cesium3DTileset.fromUrl(url);
    tileset.tileLoad.addEventListener((tile) => {
      res.loaded += 1;
      const u = String(tile?.content?.url ?? '');
      // L3: children of L2 tiles (-l3-) and key buildings' slots (-k<id>); L4: -l4-
      const kind = u.includes('-l4-') ? 'l4' : (u.includes('-l3-') || u.includes('-k')) ? 'l3' : u.includes('trees-') ? 'trees' : 'l2';
      res.loadedByKind[kind] += 1;
    });
    tileset.tileFailed.addEventListener((e) => { res.failed += 1; res.failures.push(`${e.url}: ${e.message}`); });
    scene.primitives.add(tileset);
    viewer.camera.setView({
      destination: Cesium.Cartesian3.fromDegrees(lon, lat, h),
      orientation: { heading: 0, pitch: -Cesium.Math.PI_OVER_TWO, roll: 0 },
    });
    const t0 = performance.now();
    let settled = 0;
    while (performance.now() - t0 < 120000) {
      scene.render();
      await new Promise((r) => setTimeout(r, 100));
      settled = tileset.tilesLoaded && res.loaded > 0 ? settled + 1 : 0;
      if (settled >= 5) break;
    }
    scene.render();
    res.tilesLoaded = tileset.tilesLoaded;
    res.seconds = (performance.now() - t0) / 1000;
    // pixels that are not the black background
    const c = scene.canvas;
    const c2 = document.createElement('canvas');
    c2.width = c.width; c2.height = c.height;
    const ctx = c2.getContext('2d');
    ctx.drawImage(c, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 24) n += 1;
    res.nonBackground = n;
    res.pixels = c.width * c.height;
    const centre = new Cesium.Cartesian2(c.clientWidth / 2, c.clientHeight / 2);
    const picked = scene.pick(centre);
    // height of the surface drawn at the centre (depth buffer): the roof, if the block stands up
    if (scene.pickPositionSupported) {
      const p = scene.pickPosition(centre);
      if (p) res.pickedHeight = Cesium.Cartographic.fromCartesian(p).height;
    }
    if (picked instanceof Cesium.Cesium3DTileFeature) {
      const g = (k) => picked.getProperty(k);
      res.picked = { id: g('id'), height: g('height'), use: g('use'), level: g('level'), name: g('name'),
        district: g('district'), floors: g('floors'), source: g('source') };
    } else {
      res.picked = null;
      res.pickedType = picked ? Object.prototype.toString.call(picked) : 'nothing';
    }
    return res;
  }, { url, lon: Number(lonS), lat: Number(latS), h: Number(hS) });
  Object.assign(out, r);
  if (shot) await p.screenshot({ path: shot });
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(out));
