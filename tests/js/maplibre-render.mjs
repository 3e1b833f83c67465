// Renders a CityTwin MapLibre style in headless Chromium (MapLibre GL JS 6.17.0, WebGL through
// SwiftShader) at several zooms and reports what was drawn.
//
//   node maplibre-render.mjs STYLE_URL OUT_DIR LON LAT ZOOM [ZOOM...]
//
// The page and MapLibre's dist files are served by a static server on 127.0.0.1 started here;
// the style, tiles and glyphs come from the CityTwin server named in STYLE_URL. For each zoom it
// waits for the map's `idle`, counts queryRenderedFeatures per layer, measures the canvas (distinct
// colours, share of pixels differing from the background) and writes OUT_DIR/zZOOM.png.
// Prints one JSON line: {"results": [{zoom, counts: {layer: n}, distinct_colours, non_background}], "errors": [...]}.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium, listenLocal } from './chromium.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'node_modules/maplibre-gl/dist');
const [styleUrl, outDir, lon, lat, ...zooms] = process.argv.slice(2);
if (!styleUrl || !outDir || zooms.length === 0) {
  console.error('usage: node maplibre-render.mjs STYLE_URL OUT_DIR LON LAT ZOOM [ZOOM...]');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });

const page_html = `<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/maplibre/maplibre-gl.css">
<style>html,body,#map{margin:0;width:1024px;height:768px}</style></head>
<body><div id="map"></div><script type="module">
import * as maplibregl from '/maplibre/maplibre-gl.mjs';
const q = new URLSearchParams(location.search);
window.__errors = [];
const map = new maplibregl.Map({
  container: 'map', style: q.get('style'), center: [+q.get('lon'), +q.get('lat')], zoom: +q.get('z'),
  pitch: 0, bearing: 0, fadeDuration: 0, attributionControl: false,
  canvasContextAttributes: { preserveDrawingBuffer: true },
});
map.on('error', (e) => window.__errors.push(String(e.error && e.error.message || e)));
map.once('idle', () => {
  const counts = {};
  for (const l of map.getStyle().layers) {
    if (l.type === 'background') continue;
    counts[l.id] = map.queryRenderedFeatures({ layers: [l.id] }).length;
  }
  // Pixels of the WebGL canvas.
  const c = map.getCanvas();
  const tmp = document.createElement('canvas');
  tmp.width = c.width; tmp.height = c.height;
  const ctx = tmp.getContext('2d');
  ctx.drawImage(c, 0, 0);
  const px = ctx.getImageData(0, 0, tmp.width, tmp.height).data;
  const colours = new Set();
  const bg = [px[0], px[1], px[2]];
  let differ = 0;
  for (let i = 0; i < px.length; i += 4) {
    colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
    if (Math.abs(px[i] - bg[0]) + Math.abs(px[i + 1] - bg[1]) + Math.abs(px[i + 2] - bg[2]) > 24) differ++;
  }
  window.__result = { counts, distinct_colours: colours.size, non_background: differ / (px.length / 4) };
});
</script></body></html>`;

const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://127.0.0.1');
  if (u.pathname === '/index.html') {
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end(page_html);
  }
  if (u.pathname.startsWith('/maplibre/')) {
    const f = path.join(dist, path.basename(u.pathname));
    if (fs.existsSync(f)) {
      const type = f.endsWith('.css') ? 'text/css' : 'text/javascript';
      res.writeHead(200, { 'content-type': type });
      return res.end(fs.readFileSync(f));
    }
  }
  res.writeHead(404);
  res.end();
});
const port = await listenLocal(server);

const browser = await launchChromium();
const results = [];
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  for (const z of zooms) {
    const url = `http://127.0.0.1:${port}/index.html?style=${encodeURIComponent(styleUrl)}&lon=${lon}&lat=${lat}&z=${z}`;
    await page.goto(url);
    await page.waitForFunction(() => window.__result || (window.__errors && window.__errors.length > 20), null, { timeout: 120000 });
    const r = await page.evaluate(() => window.__result);
    const errs = await page.evaluate(() => window.__errors);
    errors.push(...errs.map((e) => `z${z}: ${e}`));
    await page.screenshot({ path: path.join(outDir, `z${z}.png`) });
    results.push({ zoom: +z, ...r });
  }
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify({ results, errors }));
