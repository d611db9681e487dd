// Real Node clients, unmodified, against crashcart's mocks: jsforce's sObject Collections
// (retrieve by ids, upsert by external id), openai-node's `runTools` agent loop and its
// Responses API (`responses.create`, streamed, and the `responses.stream` helper). The
// packages are the zoo's (zoo/node-jsforce/setup.sh installs them from the lockfile).
//
//   node tests/node/clients_flow.cjs collections   (SALESFORCE_* from the environment)
//   node tests/node/clients_flow.cjs bulk          (the same; Bulk API 2.0 through jsforce's bulk2)
//   node tests/node/clients_flow.cjs streaming     (the same; change events through jsforce's streaming)
//   node tests/node/clients_flow.cjs tools         (OPENAI_BASE_URL, OPENAI_API_KEY, MODEL)
//   node tests/node/clients_flow.cjs responses     (the same; the Responses API, whole and streamed)
//
// Prints one JSON object with what the clients returned.
'use strict';

const path = require('node:path');

const modules = path.join(__dirname, '..', '..', 'zoo', 'node-jsforce', 'node_modules');
const need = (name) => require(path.join(modules, name));

/** A jsforce connection logged in with the mock's settings (SALESFORCE_* variables). */
async function login() {
  const jsforce = need('jsforce');
  const env = process.env;
  const conn = new jsforce.Connection({
    oauth2: {
      loginUrl: env.SALESFORCE_LOGIN_URL,
      clientId: env.SALESFORCE_CLIENT_ID,
      clientSecret: env.SALESFORCE_CLIENT_SECRET,
    },
    version: env.SALESFORCE_API_VERSION,
  });
  await conn.login(env.SALESFORCE_USERNAME, env.SALESFORCE_PASSWORD);
  return conn;
}

/** Bulk API 2.0 through jsforce's `bulk2`: a load with one bad row, then a query. */
async function bulk() {
  const conn = await login();
  conn.bulk2.pollInterval = 50;
  const input = Array.from({ length: 120 }, (_, i) => ({
    FirstName: `Pat${i}`,
    LastName: `Bulk${String(i).padStart(4, '0')}`,
    Patient_External_Id__c: `CC-JS-${i}`,
  }));
  input.push({ FirstName: 'No last name', LastName: null, Patient_External_Id__c: 'CC-JS-X' });
  const loaded = await conn.bulk2.loadAndWaitForResults({
    object: 'Contact',
    operation: 'insert',
    input,
    pollTimeout: 20000,
  });
  const stream = await conn.bulk2.query("SELECT Id, LastName FROM Contact WHERE LastName LIKE 'Bulk%'", {
    pollInterval: 50,
    pollTimeout: 20000,
  });
  const records = await new Promise((resolve, reject) => {
    const out = [];
    stream.on('record', (r) => out.push(r));
    stream.on('end', () => resolve(out));
    stream.on('error', reject);
  });
  return {
    successful: loaded.successfulResults.length,
    failed: loaded.failedResults,
    unprocessed: loaded.unprocessedRecords.length,
    queried: records.length,
    first: records[0],
  };
}

/**
 * Subscribe and wait for the server's acknowledgement; then `events` is a promise of the
 * first `n` messages (rejected after 15 s).
 */
async function subscribed(subscribe, n) {
  let resolve;
  let reject;
  const events = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const got = [];
  const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${n} events`)), 15000);
  const subscription = subscribe((m) => {
    got.push(m);
    if (got.length === n) {
      clearTimeout(timer);
      resolve(got);
    }
  });
  await subscription;
  return { events, subscription };
}

/** Change Data Capture through jsforce's streaming client (faye, CometD long polling). */
async function streaming() {
  const { StreamingExtension } = need('jsforce/lib/api/streaming');
  const conn = await login();
  const channel = '/data/ContactChangeEvent';
  const before = await conn.sobject('Contact').create({ LastName: 'Before', Patient_External_Id__c: 'CC-ST-0' });
  const live = await subscribed((cb) => conn.streaming.topic(channel).subscribe(cb), 2);
  const created = await conn.sobject('Contact').create({ LastName: 'Live', Patient_External_Id__c: 'CC-ST-1' });
  await conn.sobject('Contact').update({ Id: created.id, FirstName: 'Grace' });
  const events = await live.events;
  live.subscription.cancel();
  // A second client replays every retained event from the start (-2).
  const replayClient = conn.streaming.createClient([new StreamingExtension.Replay(channel, -2)]);
  const replay = await subscribed((cb) => replayClient.subscribe(channel, cb), 3);
  const replayed = await replay.events;
  replayClient.disconnect();
  // A platform event, published by inserting it and received on its /event/ channel.
  const alerts = await subscribed((cb) => conn.streaming.topic('/event/Appointment_Request__e').subscribe(cb), 1);
  const published = await conn.sobject('Appointment_Request__e').create({ Patient_External_Id__c: 'CC-ST-1', Reason__c: 'rebook' });
  const [alert] = await alerts.events;
  alerts.subscription.cancel();
  return {
    published: { success: published.success, uuid: published.errors[0] && published.errors[0].message },
    alert: { reason: alert.payload.Reason__c, uuid: alert.event.EventUuid, replayId: alert.event.replayId },
    before: before.id,
    created: created.id,
    live: events.map((e) => ({
      type: e.payload.ChangeEventHeader.changeType,
      ids: e.payload.ChangeEventHeader.recordIds,
      replayId: e.event.replayId,
      changed: e.payload.ChangeEventHeader.changedFields,
    })),
    replayed: replayed.map((e) => e.payload.ChangeEventHeader.recordIds[0]),
  };
}

async function collections() {
  const conn = await login();
  const contacts = conn.sobject('Contact');
  const patients = [1, 2, 3].map((n) => ({
    Patient_External_Id__c: `CC-NODE-${n}`,
    FirstName: `Ada${n}`,
    LastName: 'Synthetic',
  }));
  const firstUpsert = await contacts.upsert(patients, 'Patient_External_Id__c');
  const renamed = patients.map((p, i) => ({ ...p, FirstName: i === 0 ? 'Grace' : p.FirstName }));
  renamed.push({ Patient_External_Id__c: 'CC-NODE-4', FirstName: 'Alan', LastName: 'Synthetic' });
  const secondUpsert = await contacts.upsert(renamed, 'Patient_External_Id__c');
  const ids = secondUpsert.map((r) => r.id);
  const retrieved = await contacts.retrieve([...ids, '003000000000000AAA'], {
    fields: ['Id', 'FirstName', 'Patient_External_Id__c'],
  });
  // Without `fields`, jsforce reads the describe and asks for every field.
  const everyField = await contacts.retrieve(ids.slice(0, 2));
  let badField = null;
  try {
    await contacts.retrieve(ids.slice(0, 1), { fields: ['NoSuchField__c'] });
  } catch (err) {
    badField = { errorCode: err.errorCode, name: err.name };
  }
  const allOrNone = await contacts.upsert(
    [
      { Patient_External_Id__c: 'CC-NODE-5', FirstName: 'Rolled', LastName: 'Back' },
      { Patient_External_Id__c: 'CC-NODE-6', FirstName: 'No last name' },
    ],
    'Patient_External_Id__c',
    { allOrNone: true },
  );
  const afterRollback = await conn.query(
    "SELECT Id FROM Contact WHERE Patient_External_Id__c = 'CC-NODE-5'",
  );
  // Aggregates and relative dates through jsforce's own query.
  const counted = await conn.query(
    'SELECT COUNT(Id) n, MAX(FirstName) top FROM Contact WHERE CreatedDate = TODAY',
  );
  const grouped = await conn.query(
    'SELECT LastName, COUNT(Id) n FROM Contact GROUP BY LastName HAVING COUNT(Id) > 1',
  );
  // A child subquery: the patient with their appointments.
  await conn.sobject('Event').create({
    WhoId: ids[0],
    Subject: 'Checkup',
    StartDateTime: '2030-01-02T09:00:00Z',
    EndDateTime: '2030-01-02T09:30:00Z',
  });
  const withEvents = await conn.query(
    `SELECT LastName, (SELECT Subject FROM Events) FROM Contact WHERE Id = '${ids[0]}'`,
  );
  // Replication polling through jsforce's own method (records of this minute are not yet
  // covered: Salesforce covers whole past minutes).
  const now = new Date();
  const updated = await contacts.updated(new Date(now.getTime() - 3600e3), now);
  const found = await conn.search(
    'FIND {Grace} IN NAME FIELDS RETURNING Contact(Id, FirstName, Patient_External_Id__c)',
  );
  return {
    found: found.searchRecords,
    updated,
    children: withEvents.records[0].Events,
    aggregate: counted.records[0],
    grouped: grouped.records,
    firstUpsert,
    secondUpsert,
    retrieved,
    everyField: everyField.map((r) => (r ? Object.keys(r).length : 0)),
    badField,
    allOrNone,
    afterRollback: afterRollback.totalSize,
  };
}

async function tools() {
  const OpenAI = need('openai').default;
  const client = new OpenAI({
    baseURL: process.env.OPENAI_BASE_URL,
    apiKey: process.env.OPENAI_API_KEY,
    maxRetries: 0,
  });
  const calls = [];
  const runner = client.chat.completions.runTools({
    model: process.env.MODEL,
    messages: [
      { role: 'system', content: 'You book clinic appointments.' },
      { role: 'user', content: 'Please find_slot for patient CC-SYN-1 with Dr. Okafor next week.' },
    ],
    tool_choice: 'auto',
    tools: [
      {
        type: 'function',
        function: {
          name: 'find_slot',
          description: 'Find a free slot for a patient',
          parameters: {
            type: 'object',
            properties: { patient_id: { type: 'string' }, practitioner: { type: 'string' } },
            required: ['patient_id'],
          },
          parse: JSON.parse,
          function: async (args) => {
            calls.push(args);
            return { start: '2026-12-08T09:00:00Z', end: '2026-12-08T09:30:00Z' };
          },
        },
      },
    ],
    maxChatCompletions: 5,
  });
  const content = await runner.finalContent();
  const messages = runner.messages.map((m) => m.role);
  return { calls: calls.length, content, roles: messages };
}

async function responses() {
  const OpenAI = need('openai').default;
  const client = new OpenAI({
    baseURL: process.env.OPENAI_BASE_URL,
    apiKey: process.env.OPENAI_API_KEY,
    maxRetries: 0,
  });
  const model = process.env.MODEL;
  const input = 'Prepare the visit. Patient takes metformin 500 mg twice daily.';
  const whole = await client.responses.create({ model, input });
  const stream = await client.responses.create({ model, input, stream: true });
  const events = [];
  let text = '';
  let final = null;
  for await (const e of stream) {
    events.push(e.type);
    if (e.type === 'response.output_text.delta') text += e.delta;
    if (e.type === 'response.completed') final = outputText(e.response);
  }
  // The SDK's helper that accumulates the stream into the final response.
  const runner = client.responses.stream({ model, input });
  const helper = await runner.finalResponse();
  return {
    whole: { status: whole.status, text: whole.output_text },
    stream: { events, text, final },
    helper: outputText(helper),
  };
}

/** The text of a response's message items (what `output_text` adds on whole answers). */
function outputText(response) {
  return response.output
    .filter((item) => item.type === 'message')
    .flatMap((item) => item.content)
    .filter((part) => part.type === 'output_text')
    .map((part) => part.text)
    .join('');
}

const flows = { collections, bulk, streaming, tools, responses };
const flow = flows[process.argv[2]];
if (!flow) {
  console.error(`usage: clients_flow.cjs ${Object.keys(flows).join('|')}`);
  process.exit(2);
}
flow().then(
  // Exit once written: a streaming client would otherwise keep polling.
  (out) => process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(0)),
  (err) => {
    console.error(err && err.stack ? err.stack : String(err));
    process.exit(1);
  },
);
