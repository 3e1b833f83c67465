// Shared by the browser tests: headless Debian Chromium through playwright-core with the flags
// that work on these machines (../../../shared/TESTING.md): root without a sandbox, no
// background networking on the closed network, WebGL through SwiftShader.
import { chromium } from 'playwright-core';

export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--enable-unsafe-swiftshader', '--use-angle=swiftshader'];

export function launchChromium() {
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
}

// Starts a node http server on 127.0.0.1 (an ephemeral port) and returns the port.
export async function listenLocal(server) {
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server.address().port;
}
