// Drives sfsim with jsforce, a real Salesforce client library, unchanged. If jsforce can log
// in, page, write and describe against the simulator exactly as it does against a real org,
// what our Rust tests prove against sfsim is worth something.
//
// Starts its own `sfsim` (the binary built by `cargo build`; override with SFSIM_BIN) on a free
// loopback port, and stops it at the end.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import jsforce from 'jsforce';
import { startSim, control as simControl } from './sim.mjs';

const VERSION = '62.0';
const USER = 'integration@a.sim';
const PASSWORD = 'password';
const TOKEN = 'token';

let sim;
let base;

function control(pathname, body) {
  return simControl(base, pathname, body);
}

async function oauthConnection() {
  const conn = new jsforce.Connection({
    oauth2: { loginUrl: base, clientId: 'sfsim-client', clientSecret: 'sfsim-secret' },
    version: VERSION,
  });
  await conn.login(USER, PASSWORD + TOKEN);
  return conn;
}

before(async () => {
  sim = await startSim();
  base = sim.base;
});

after(() => {
  if (sim) sim.stop();
});

test('SOAP login with password + security token', async () => {
  const conn = new jsforce.Connection({ loginUrl: base, version: VERSION });
  const info = await conn.login(USER, PASSWORD + TOKEN);
  assert.match(info.organizationId, /^00D[0-9A-Za-z]{15}$/);
  assert.match(info.id, /^005[0-9A-Za-z]{15}$/);
  assert.equal(conn.instanceUrl, base);
  const res = await conn.query('SELECT Id, Username FROM User');
  assert.ok(res.records.some((u) => u.Username === USER));
});

test('SOAP login with a wrong password is refused with INVALID_LOGIN', async () => {
  const conn = new jsforce.Connection({ loginUrl: base, version: VERSION });
  await assert.rejects(conn.login(USER, 'wrong' + TOKEN), /INVALID_LOGIN/);
});

test('OAuth username-password login', async () => {
  const conn = await oauthConnection();
  assert.equal(conn.instanceUrl, base);
  assert.ok(conn.accessToken);
  const res = await conn.query('SELECT Id FROM User');
  assert.ok(res.totalSize >= 2);
});

test('a query of 5,000 records pages through nextRecordsUrl', async () => {
  const conn = await oauthConnection();
  const total = 5000;
  const records = [];
  for (let i = 0; i < total; i++) {
    records.push({ Name: `Paging ${String(i).padStart(5, '0')}`, StageName: 'Prospecting', CloseDate: '2026-12-31', Amount: i });
  }
  for (let i = 0; i < total; i += 200) {
    const rets = await conn.sobject('Opportunity').create(records.slice(i, i + 200));
    assert.equal(rets.length, Math.min(200, total - i));
    assert.ok(rets.every((r) => r.success), JSON.stringify(rets.find((r) => !r.success)));
  }
  const soql = "SELECT Id, Name, Amount FROM Opportunity WHERE Name LIKE 'Paging %' ORDER BY Name";
  // by hand: the first batch, then queryMore until done
  let res = await conn.query(soql);
  assert.equal(res.totalSize, total);
  assert.equal(res.done, false);
  const sizes = [res.records.length];
  let seen = [...res.records];
  while (!res.done) {
    res = await conn.queryMore(res.nextRecordsUrl);
    sizes.push(res.records.length);
    seen = seen.concat(res.records);
  }
  assert.deepEqual(sizes, [2000, 2000, 1000]);
  assert.equal(new Set(seen.map((r) => r.Id)).size, total);
  assert.equal(seen[0].Name, 'Paging 00000');
  assert.equal(seen[total - 1].Name, 'Paging 04999');
  // and jsforce's own auto-fetch
  const all = await conn.query(soql).execute({ autoFetch: true, maxFetch: 10000 });
  assert.equal(all.totalSize, total);
  assert.equal(all.records.length, total);
  assert.equal(new Set(all.records.map((r) => r.Id)).size, total);
});

test('create, update, upsert by external id and delete through sObject Collections', async () => {
  const conn = await oauthConnection();
  await control('/__sim/schema', {
    object: 'Opportunity',
    name: 'Ext_Id__c',
    type: 'string',
    length: 64,
    externalId: true,
    unique: true,
  });
  const created = await conn.sobject('Opportunity').create([
    { Name: 'Coll 1', StageName: 'Prospecting', CloseDate: '2026-12-31', Ext_Id__c: 'X-1' },
    { Name: 'Coll 2', StageName: 'Prospecting', CloseDate: '2026-12-31', Ext_Id__c: 'X-2' },
    { Name: 'Coll bad', StageName: 'Prospecting' }, // CloseDate missing
  ]);
  assert.equal(created.length, 3);
  assert.ok(created[0].success && created[1].success);
  assert.equal(created[2].success, false);
  assert.equal(created[2].errors[0].statusCode, 'REQUIRED_FIELD_MISSING');

  const updated = await conn.sobject('Opportunity').update([
    { Id: created[0].id, Amount: 100 },
    { Id: created[1].id, Amount: 200 },
  ]);
  assert.ok(updated.every((r) => r.success));

  const upserted = await conn.sobject('Opportunity').upsert(
    [
      { Ext_Id__c: 'X-1', Description: 'upserted' },
      { Ext_Id__c: 'X-3', Name: 'Coll 3', StageName: 'Prospecting', CloseDate: '2027-01-31' },
    ],
    'Ext_Id__c',
  );
  assert.equal(upserted.length, 2);
  assert.ok(upserted.every((r) => r.success));
  assert.equal(upserted[0].created, false);
  assert.equal(upserted[1].created, true);

  const rec = await conn.sobject('Opportunity').retrieve(created[0].id);
  assert.equal(rec.Description, 'upserted');
  assert.equal(rec.Amount, 100);

  const deleted = await conn.sobject('Opportunity').destroy([created[0].id, created[1].id]);
  assert.ok(deleted.every((r) => r.success));
  const left = await conn.query("SELECT Id FROM Opportunity WHERE Name LIKE 'Coll %'");
  assert.equal(left.totalSize, 1);
});

test('describe lists fields with their types', async () => {
  const conn = await oauthConnection();
  const d = await conn.sobject('Opportunity').describe();
  assert.equal(d.name, 'Opportunity');
  assert.equal(d.keyPrefix, '006');
  const byName = Object.fromEntries(d.fields.map((f) => [f.name, f]));
  assert.equal(byName.Amount.type, 'currency');
  assert.equal(byName.CloseDate.type, 'date');
  assert.equal(byName.StageName.type, 'picklist');
  assert.equal(byName.AccountId.type, 'reference');
  assert.deepEqual(byName.AccountId.referenceTo, ['Account']);
  assert.equal(byName.SystemModstamp.updateable, false);
});

test('a malformed query is reported with errorCode MALFORMED_QUERY', async () => {
  const conn = await oauthConnection();
  await assert.rejects(conn.query('SELECT Id FROM Opportunity WHERE invalid invalid'), (err) => {
    assert.equal(err.errorCode, 'MALFORMED_QUERY');
    return true;
  });
  await assert.rejects(conn.query('SELECT Nope FROM Opportunity'), (err) => {
    assert.equal(err.errorCode, 'INVALID_FIELD');
    return true;
  });
});

test('identity() answers for the logged-in user, after SOAP and OAuth logins', async () => {
  const soapConn = new jsforce.Connection({ loginUrl: base, version: VERSION });
  const info = await soapConn.login(USER, PASSWORD + TOKEN);
  const id = await soapConn.identity();
  assert.equal(id.user_id, info.id);
  assert.equal(id.organization_id, info.organizationId);
  assert.equal(id.username, USER);
  assert.equal(id.id, `${base}/id/${info.organizationId}/${info.id}`);
  assert.match(id.urls.rest, /\/services\/data\/v/);

  const conn = await oauthConnection();
  const again = await conn.identity();
  assert.equal(again.username, USER);
  assert.equal(conn.userInfo.id, again.user_id);
});

test('logout() ends the session, by SOAP and by OAuth revoke', async () => {
  const soapConn = new jsforce.Connection({ loginUrl: base, version: VERSION });
  await soapConn.login(USER, PASSWORD + TOKEN);
  const soapToken = soapConn.accessToken;
  await soapConn.logout();
  const stale = new jsforce.Connection({ instanceUrl: base, accessToken: soapToken, version: VERSION });
  await assert.rejects(stale.query('SELECT Id FROM User'), (err) => {
    assert.equal(err.errorCode, 'INVALID_SESSION_ID');
    return true;
  });

  const conn = await oauthConnection();
  const oauthToken = conn.accessToken;
  await conn.logout();
  const staleOauth = new jsforce.Connection({ instanceUrl: base, accessToken: oauthToken, version: VERSION });
  await assert.rejects(staleOauth.query('SELECT Id FROM User'), (err) => {
    assert.equal(err.errorCode, 'INVALID_SESSION_ID');
    return true;
  });
});

test('a custom object added through /__sim/schema: create, retrieve, upsert, query, delete', async () => {
  const conn = await oauthConnection();
  await control('/__sim/schema', {
    object: 'BigTable__c',
    label: 'Big Table',
    fields: [
      { name: 'Ext_Id__c', type: 'string', length: 40, externalId: true, unique: true },
      { name: 'Score__c', type: 'double' },
    ],
  });
  const d = await conn.sobject('BigTable__c').describe();
  assert.equal(d.custom, true);
  const created = await conn.sobject('BigTable__c').create({ Name: 'Row 1', Ext_Id__c: 'R-1', Score__c: 1 });
  assert.ok(created.success);
  const upserted = await conn.sobject('BigTable__c').upsert([{ Ext_Id__c: 'R-1', Score__c: 2 }, { Ext_Id__c: 'R-2', Name: 'Row 2' }], 'Ext_Id__c');
  assert.deepEqual(upserted.map((r) => [r.success, r.created]), [[true, false], [true, true]]);
  const rec = await conn.sobject('BigTable__c').retrieve(created.id);
  assert.equal(rec.Score__c, 2);
  const res = await conn.query('SELECT Id, Name FROM BigTable__c ORDER BY Name');
  assert.deepEqual(res.records.map((r) => r.Name), ['Row 1', 'Row 2']);
  const del = await conn.sobject('BigTable__c').destroy(created.id);
  assert.ok(del.success);
  const left = await conn.query('SELECT COUNT() FROM BigTable__c');
  assert.equal(left.totalSize, 1);
});

test('a parent-to-child subquery nests the children, and describe lists the relationship', async () => {
  const conn = await oauthConnection();
  const acc = await conn.sobject('Account').create({ Name: 'Subquery Parent' });
  await conn.sobject('Contact').create([
    { LastName: 'Second', AccountId: acc.id },
    { LastName: 'First', AccountId: acc.id },
  ]);
  const res = await conn.query(
    `SELECT Id, Name, (SELECT Id, LastName FROM Contacts ORDER BY LastName) FROM Account WHERE Id = '${acc.id}'`,
  );
  assert.equal(res.totalSize, 1);
  const contacts = res.records[0].Contacts;
  assert.equal(contacts.totalSize, 2);
  assert.deepEqual(contacts.records.map((c) => c.LastName), ['First', 'Second']);
  const d = await conn.sobject('Account').describe();
  assert.ok(d.childRelationships.some((r) => r.relationshipName === 'Contacts' && r.childSObject === 'Contact'));
});

test('FOR VIEW marks records recently viewed: recent() lists them; explain() answers with plans', async () => {
  const conn = await oauthConnection();
  const acc = await conn.sobject('Account').create({ Name: 'Viewed Account' });
  await conn.query(`SELECT Id, Name FROM Account WHERE Id = '${acc.id}' FOR VIEW`);
  const recent = await conn.recent();
  assert.equal(recent[0].Id, acc.id);
  assert.equal(recent[0].Name, 'Viewed Account');
  const ofType = await conn.recent('Account', 5);
  assert.ok(ofType.some((r) => r.Id === acc.id));
  const plan = await conn.query("SELECT Id FROM Account WHERE Name = 'Viewed Account'").explain();
  assert.ok(Array.isArray(plan.plans) && plan.plans.length >= 1);
  assert.equal(plan.plans[0].sobjectType, 'Account');
  assert.equal(plan.plans[0].leadingOperationType, 'Index');
});

test('delete, then queryAll sees the row with IsDeleted; SOAP undelete brings it back', async () => {
  const conn = await oauthConnection();
  const acc = await conn.sobject('Account').create({ Name: 'Recycled Account' });
  const opp = await conn.sobject('Opportunity').create({
    Name: 'Recycled Opp',
    StageName: 'Prospecting',
    CloseDate: '2026-12-31',
    AccountId: acc.id,
  });
  const del = await conn.sobject('Account').destroy(acc.id);
  assert.equal(del.success, true);
  const live = await conn.query("SELECT Id FROM Opportunity WHERE Name = 'Recycled Opp'");
  assert.equal(live.totalSize, 0);
  // jsforce 3 has no conn.queryAll(): scanAll sends the query to the queryAll resource.
  const all = await conn.query(
    "SELECT Id, IsDeleted, LastModifiedById FROM Opportunity WHERE Name = 'Recycled Opp' AND IsDeleted = true",
    { scanAll: true },
  );
  assert.equal(all.totalSize, 1);
  assert.equal(all.records[0].Id, opp.id);
  assert.equal(all.records[0].IsDeleted, true);
  const scanned = await conn
    .query("SELECT Id FROM Account WHERE Name = 'Recycled Account'")
    .run({ scanAll: true });
  assert.equal(scanned.totalSize, 1);
  // A second delete: ENTITY_IS_DELETED.
  const again = await conn.sobject('Account').destroy([acc.id]);
  assert.equal(again[0].success, false);
  assert.equal(again[0].errors[0].statusCode, 'ENTITY_IS_DELETED');

  const undeleted = await conn.soap.undelete([acc.id]);
  assert.equal(undeleted.length, 1);
  assert.equal(undeleted[0].success, true);
  assert.equal(undeleted[0].id, acc.id);
  const back = await conn.query("SELECT Id, AccountId FROM Opportunity WHERE Name = 'Recycled Opp'");
  assert.equal(back.totalSize, 1);
  assert.equal(back.records[0].AccountId, acc.id);
  const twice = await conn.soap.undelete([acc.id]);
  assert.equal(twice[0].success, false);
  assert.equal(twice[0].errors[0].statusCode, 'UNDELETE_FAILED');
});

test('SOAP merge of Accounts: the loser is deleted with MasterRecordId, its opportunities move', async () => {
  const conn = await oauthConnection();
  const [master, loser] = await conn
    .sobject('Account')
    .create([{ Name: 'Merge Master' }, { Name: 'Merge Loser' }]);
  const opp = await conn.sobject('Opportunity').create({
    Name: 'Merge Opp',
    StageName: 'Prospecting',
    CloseDate: '2026-12-31',
    AccountId: loser.id,
  });
  const result = await conn.soap.merge({
    masterRecord: { type: 'Account', Id: master.id, Phone: '555-0199' },
    recordToMergeIds: [loser.id],
  });
  assert.equal(result.success, true);
  assert.equal(result.id, master.id);
  assert.deepEqual(result.mergedRecordIds, [loser.id]);
  assert.deepEqual(result.updatedRelatedIds, [opp.id]);
  const rows = await conn
    .query(`SELECT Id, IsDeleted, MasterRecordId FROM Account WHERE Id = '${loser.id}'`)
    .scanAll(true);
  assert.equal(rows.records[0].IsDeleted, true);
  assert.equal(rows.records[0].MasterRecordId, master.id);
  const moved = await conn.sobject('Opportunity').retrieve(opp.id);
  assert.equal(moved.AccountId, master.id);
  const m = await conn.sobject('Account').retrieve(master.id);
  assert.equal(m.Phone, '555-0199');
});
