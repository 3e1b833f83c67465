// Validates every GLB under a directory with the Khronos glTF-Validator (library use).
//   node validate_glb.mjs DIR [DIR...]
// Files named *.glb or *.glb.gz (gunzipped first). Prints one JSON object:
//   {"files": N, "errors": total, "warnings": total, "failed": [{"file", "numErrors", "messages": [...]}],
//    "issueCodes": {"CODE": count, ...}, "extensionsUsed": [...]}
// Exit status 0 when it could run (the Rust test asserts on the numbers), 2 on a usage error.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import validator from 'gltf-validator';

const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  console.error('usage: node validate_glb.mjs DIR [DIR...]');
  process.exit(2);
}

function* walk(d) {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.name.endsWith('.glb') || e.name.endsWith('.glb.gz')) yield p;
  }
}

const out = { files: 0, errors: 0, warnings: 0, infos: 0, failed: [], issueCodes: {}, extensionsUsed: [] };
const ext = new Set();
for (const d of dirs) {
  for (const file of walk(d)) {
    let bytes = fs.readFileSync(file);
    if (file.endsWith('.gz')) bytes = zlib.gunzipSync(bytes);
    const report = await validator.validateBytes(new Uint8Array(bytes), {
      uri: path.basename(file).replace(/\.gz$/, ''),
      maxIssues: 0,
      externalResourceFunction: () => Promise.reject(new Error('no external resources')),
    });
    out.files += 1;
    out.errors += report.issues.numErrors;
    out.warnings += report.issues.numWarnings;
    out.infos += report.issues.numInfos;
    for (const m of report.issues.messages) out.issueCodes[`${m.severity}:${m.code}`] = (out.issueCodes[`${m.severity}:${m.code}`] || 0) + 1;
    for (const e of report.info?.extensionsUsed || []) ext.add(e);
    if (report.issues.numErrors > 0) {
      out.failed.push({
        file,
        numErrors: report.issues.numErrors,
        messages: report.issues.messages.filter((m) => m.severity === 0).slice(0, 10),
      });
    }
  }
}
out.extensionsUsed = [...ext].sort();
console.log(JSON.stringify(out));
