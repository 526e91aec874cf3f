// Drives sfsim's Bulk API 2.0 with jsforce's `bulk2`, unchanged: a query of 25,000 rows (jsforce
// pipes every results page into one CSV stream, so they must arrive whole), and
// `loadAndWaitForResults` for insert, upsert and delete, with results matched by key.
//
// Starts its own `sfsim` (the binary built by `cargo build`; override with SFSIM_BIN) on a free
// loopback port, and stops it at the end.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import jsforce from 'jsforce';
import { startSim, control as simControl } from './sim.mjs';

const VERSION = '62.0';
const POLL = { pollInterval: 50, pollTimeout: 60000 };

let sim;
let base;

function control(pathname, body) {
  return simControl(base, pathname, body);
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
  sim = await startSim();
  base = sim.base;
  await control('/__sim/schema', { object: 'Opportunity', name: 'Ext__c', type: 'string', externalId: true, unique: true });
});

after(() => {
  if (sim) sim.stop();
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
