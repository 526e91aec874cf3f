// Drives sfsim's Bulk API 2.0 with jsforce's `bulk2`, unchanged: a query of 25,000 rows (jsforce
// pipes every results page into one CSV stream, so they must arrive whole), and
// `loadAndWaitForResults` for insert, upsert and delete, with results matched by key.
//
// Starts its own `sfsim` (the binary built by `cargo build`; override with SFSIM_BIN) on a free
// loopback port, and stops it at the end.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import jsforce from 'jsforce';

const here = path.dirname(fileURLToPath(import.meta.url));
const SFSIM = process.env.SFSIM_BIN || path.join(here, '..', '..', 'target', 'debug', 'sfsim');
const VERSION = '62.0';
const POLL = { pollInterval: 50, pollTimeout: 60000 };

let child;
let base;

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

async function control(pathname, body) {
  const r = await fetch(`${base}${pathname}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(r.ok, `${pathname} answered ${r.status}: ${await r.clone().text()}`);
  return r.json();
}

async function connection() {
  const conn = new jsforce.Connection({
    oauth2: { loginUrl: base, clientId: 'sfsim-client', clientSecret: 'sfsim-secret' },
    version: VERSION,
  });
  await conn.login('integration@a.sim', 'passwordtoken');
  return conn;
}

function opportunity(name, extra = {}) {
  return { Name: name, StageName: 'Prospecting', CloseDate: '2026-12-31', ...extra };
}

before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(SFSIM, ['--org', `A=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  child.on('error', (e) => {
    throw new Error(`cannot start ${SFSIM}: ${e.message}`);
  });
  await waitUp(base);
  await control('/__sim/schema', { object: 'Opportunity', name: 'Ext__c', type: 'string', externalId: true, unique: true });
});

after(() => {
  if (child) child.kill('SIGTERM');
});

test('bulk2.query returns all 25,000 rows, parent fields included', async () => {
  const [account] = (await control('/__sim/records', { object: 'Account', records: [{ Name: 'Bulk Parent' }] })).results;
  const total = 25000;
  for (let start = 0; start < total; start += 10000) {
    const records = [];
    for (let i = start; i < Math.min(total, start + 10000); i++) {
      records.push(opportunity(`BQ ${String(i).padStart(5, '0')}`, { Amount: i, AccountId: i % 2 ? account.id : null }));
    }
    await control('/__sim/records', { object: 'Opportunity', records });
  }
  const conn = await connection();
  const stream = await conn.bulk2.query(
    "SELECT Id, Name, Amount, Account.Name FROM Opportunity WHERE Name LIKE 'BQ %'",
    POLL,
  );
  const rows = await stream.toArray();
  assert.equal(rows.length, total);
  const names = new Set(rows.map((r) => r.Name));
  assert.equal(names.size, total);
  const odd = rows.find((r) => r.Name === 'BQ 00001');
  assert.equal(odd['Account.Name'], 'Bulk Parent');
  assert.equal(Number(odd.Amount), 1);
  assert.match(odd.Id, /^006[0-9A-Za-z]{15}$/);
  const even = rows.find((r) => r.Name === 'BQ 00002');
  assert.ok(even['Account.Name'] === '' || even['Account.Name'] === null, JSON.stringify(even));
  const stats = await control('/__sim/stats');
  assert.equal(stats.calls.bulk_query_create, 1);
  assert.equal(stats.calls.bulk_results, 1);
});

test('loadAndWaitForResults inserts, reporting successes and failures', async () => {
  const conn = await connection();
  const input = [];
  for (let i = 0; i < 50; i++) input.push(opportunity(`BI ${i}`, { Amount: i }));
  input.push({ Name: 'BI missing fields' });
  const res = await conn.bulk2.loadAndWaitForResults({ object: 'Opportunity', operation: 'insert', input, ...POLL });
  assert.equal(res.successfulResults.length, 50);
  assert.equal(res.failedResults.length, 1);
  assert.equal(res.unprocessedRecords.length, 0);
  for (const r of res.successfulResults) {
    assert.equal(String(r.sf__Created), 'true');
    assert.match(r.sf__Id, /^006/);
    const rec = await conn.sobject('Opportunity').retrieve(r.sf__Id);
    assert.equal(rec.Name, r.Name);
  }
  assert.match(res.failedResults[0].sf__Error, /^REQUIRED_FIELD_MISSING:/);
  assert.equal(res.failedResults[0].Name, 'BI missing fields');
});

test('loadAndWaitForResults upserts by external id; null values clear fields', async () => {
  const conn = await connection();
  const { results: seeded } = await control('/__sim/records', {
    object: 'Opportunity',
    records: Array.from({ length: 20 }, (_, i) => opportunity(`BU ${i}`, { Ext__c: `U-${i}`, Description: 'old' })),
  });
  const input = Array.from({ length: 40 }, (_, i) => ({
    Ext__c: `U-${i}`,
    Name: `BU new ${i}`,
    StageName: 'Prospecting',
    CloseDate: '2026-12-31',
    Description: null,
  }));
  const res = await conn.bulk2.loadAndWaitForResults({
    object: 'Opportunity',
    operation: 'upsert',
    externalIdFieldName: 'Ext__c',
    input,
    ...POLL,
  });
  assert.equal(res.failedResults.length, 0, JSON.stringify(res.failedResults[0]));
  assert.equal(res.successfulResults.length, 40);
  const byKey = new Map(res.successfulResults.map((r) => [r.Ext__c, r]));
  assert.equal(byKey.size, 40);
  for (let i = 0; i < 40; i++) {
    const r = byKey.get(`U-${i}`);
    assert.equal(String(r.sf__Created), String(i >= 20), `U-${i}`);
    if (i < 20) assert.equal(r.sf__Id, seeded[i].id);
    const rec = await conn.sobject('Opportunity').retrieve(r.sf__Id);
    assert.equal(rec.Name, `BU new ${i}`);
    assert.equal(rec.Description, null);
  }
});

test('loadAndWaitForResults deletes by Id', async () => {
  const conn = await connection();
  const { results: seeded } = await control('/__sim/records', {
    object: 'Opportunity',
    records: Array.from({ length: 10 }, (_, i) => opportunity(`BD ${i}`)),
  });
  const input = seeded.map((r) => ({ Id: r.id }));
  const res = await conn.bulk2.loadAndWaitForResults({ object: 'Opportunity', operation: 'delete', input, ...POLL });
  assert.equal(res.successfulResults.length, 10);
  assert.equal(res.failedResults.length, 0);
  assert.deepEqual(new Set(res.successfulResults.map((r) => r.sf__Id)), new Set(seeded.map((r) => r.id)));
  const left = await conn.query("SELECT Id FROM Opportunity WHERE Name LIKE 'BD %'");
  assert.equal(left.totalSize, 0);
});
