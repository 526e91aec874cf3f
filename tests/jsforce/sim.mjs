// Starts and stops the `sfsim` binary for the jsforce checks: one simulated org on a free
// loopback port (the binary built by `cargo build`; override with SFSIM_BIN), and calls to its
// control API. Shared by every *.test.mjs here.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SFSIM = process.env.SFSIM_BIN || path.join(here, '..', '..', 'target', 'debug', 'sfsim');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitUp(url) {
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`${url}/__sim/users`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sfsim did not come up at ${url}`);
}

/** Starts org A of a new sfsim; resolves to `{ base, stop }` once it answers. */
export async function startSim() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(SFSIM, ['--org', `A=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  child.on('error', (e) => {
    throw new Error(`cannot start ${SFSIM}: ${e.message}`);
  });
  await waitUp(base);
  return { base, stop: () => child.kill('SIGTERM') };
}

/** A control-API call (GET without a body, POST with one); its JSON reply. */
export async function control(base, pathname, body) {
  const r = await fetch(`${base}${pathname}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(r.ok, `${pathname} answered ${r.status}: ${await r.clone().text()}`);
  return r.json();
}
