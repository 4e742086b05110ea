// Each seed's own browser snippet (shared/seeds/*.md, quoted below) run in headless Chromium
// against herald, with only host and port changed (and, for seeds b and c, their sends moved into
// `onopen`: as written they send while the socket is still connecting, which throws in every
// browser). What each `onmessage` logged is checked: the published data under the field names
// its seed documents, and nothing else — with a 1 s heartbeat, so a JSON heartbeat would show.
//
//   HERALD_BIN=../target/debug/herald node --test seeds.test.mjs   (e2e/run.sh does this)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './browser.mjs';
import { startHerald, sleep } from '../clients/js/test/harness.mjs';

// Long enough for three heartbeats of HEARTBEAT_INTERVAL_SECS=1 after the publish.
const LISTEN_MS = 3500;

/** A page in headless Chromium whose console.log calls are collected as JSON values. */
async function blankPage(t, herald) {
  const context = await launch(t, [() => herald.stop()]);
  const page = context.pages()[0] || (await context.newPage());
  const logs = [];
  const pending = [];
  page.on('console', (msg) => {
    pending.push(
      Promise.all(msg.args().map((a) => a.jsonValue())).then((args) => logs.push(args.length ? args : [msg.text()])),
    );
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // A page of herald's own origin (any page with no CSP of its own): Chromium's local-network
  // checks block a blank page's socket to loopback, as they would a public site's.
  await page.goto(`${herald.base}/livez`);
  const settled = async () => {
    await Promise.all(pending);
    return logs;
  };
  return { page, settled, errors };
}

/** Waits until `count` log lines start with `prefix` (the sockets are open). */
async function waitForLogs(settled, prefix, count) {
  for (let i = 0; i < 100; i++) {
    const logs = await settled();
    if (logs.filter((l) => String(l[0]).startsWith(prefix)).length >= count) return;
    await sleep(50);
  }
  assert.fail(`no ${count} × "${prefix}" in the log: ${JSON.stringify(await settled())}`);
}

async function post(url, body, headers = {}) {
  const response = await fetch(url, { method: 'POST', headers, body });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  return JSON.parse(text);
}

test('seed a snippet: two /ws/sub sockets log the curl message and nothing else', { timeout: 60_000 }, async (t) => {
  const herald = await startHerald({ HEARTBEAT_INTERVAL_SECS: '1' });
  const { page, settled, errors } = await blankPage(t, herald);
  const host = `127.0.0.1:${herald.port}`;
  // shared/seeds/a-simple-go-pubsub.md, "Connect Subscribers (WebSockets)", host changed.
  await page.addScriptTag({
    content: `
const topic = "order_events";
const clientID = \`client_\${Math.floor(Math.random() * 1000)}\`;

const ws = new WebSocket(\`ws://${host}/ws/sub/\${topic}?id=\${clientID}\`);

ws.onopen = () =>
  console.log(\`[\${clientID}] Connected! Waiting for messages on '\${topic}'.\`);
ws.onmessage = (event) =>
  console.log(\`[\${clientID}] Received Message:\`, JSON.parse(event.data));
ws.onclose = () => console.log(\`[\${clientID}] Connection closed.\`);

// Connect a second client too
const ws2 = new WebSocket(
  \`ws://${host}/ws/sub/\${topic}?id=second_client\`
);
ws2.onmessage = (event) =>
  console.log(\`[SECOND CLIENT] Received Message:\`, JSON.parse(event.data));
`,
  });
  await waitForLogs(settled, '[client_', 1);
  // ws2 logs nothing on open; a topic with two subscribers says it is subscribed.
  for (let i = 0; i < 100; i++) {
    const topic = await (await fetch(`${herald.base}/topics/order_events`)).json();
    if (topic.subscribers === 2) break;
    await sleep(50);
  }
  // curl -X POST http://localhost:8080/pub/order_events -d "New Order: ORD-12345"
  const published = await post(`${herald.base}/pub/order_events`, 'New Order: ORD-12345', {
    'Content-Type': 'application/x-www-form-urlencoded',
  });
  await sleep(LISTEN_MS);
  const received = (await settled()).filter((l) => String(l[0]).includes('Received Message'));
  assert.equal(received.length, 2, `one message per socket: ${JSON.stringify(received)}`);
  for (const [, message] of received) {
    assert.equal(message.message.payload, 'New Order: ORD-12345', JSON.stringify(message));
    assert.equal(message.message.id, published.id);
  }
  assert.deepEqual(errors, []);
});

test('seed b snippet: subscribe and publish log the acks and the message', { timeout: 60_000 }, async (t) => {
  const herald = await startHerald({});
  const { page, settled, errors } = await blankPage(t, herald);
  // shared/seeds/b-go-pubsub-system.md, "WebSocket Client Example", host changed, sends in onopen.
  await page.addScriptTag({
    content: `
const ws = new WebSocket('ws://127.0.0.1:${herald.port}/ws');

ws.onopen = () => {
// Subscribe to a topic
ws.send(JSON.stringify({
  type: 'subscribe',
  topic: 'news'
}));

// Publish a message
ws.send(JSON.stringify({
  type: 'publish',
  topic: 'news',
  data: 'Hello World!'
}));
};

// Handle incoming messages
ws.onmessage = function(event) {
  const message = JSON.parse(event.data);
  console.log('Received:', message);
};
`,
  });
  await waitForLogs(settled, 'Received:', 3);
  await sleep(500);
  const frames = (await settled()).map(([, message]) => message);
  // Seed b documents no server frames; herald's (PROTOCOL.md §1): the subscribe's ack, then the
  // event and the publish's ack (the event is queued as the publish fans out, before its ack).
  assert.deepEqual(
    frames.map((f) => f.type),
    ['ack', 'event', 'ack'],
    JSON.stringify(frames),
  );
  assert.equal(frames[1].message.payload, 'Hello World!');
  assert.equal(frames[1].message.id, frames[2].id);
  assert.deepEqual(errors, []);
});

test('seed c snippet: the curl message arrives as seed c\'s Message, and nothing else', { timeout: 60_000 }, async (t) => {
  const herald = await startHerald({ HEARTBEAT_INTERVAL_SECS: '1' });
  const { page, settled, errors } = await blankPage(t, herald);
  // shared/seeds/c-go-messaging-system.md, "Using WebSocket", host changed, send in onopen.
  await page.addScriptTag({
    content: `
// Connect to WebSocket
const ws = new WebSocket('ws://127.0.0.1:${herald.port}/ws');

// Subscribe to topic
ws.onopen = () => ws.send(JSON.stringify({
    action: 'subscribe',
    topic: 'notifications'
}));

// Listen for messages
ws.onmessage = function(event) {
    console.log('Received:', JSON.parse(event.data));
};
`,
  });
  for (let i = 0; i < 100; i++) {
    const topics = await (await fetch(`${herald.base}/topics`)).json();
    if (topics.topics?.some((x) => x.name === 'notifications' && x.subscribers === 1)) break;
    await sleep(50);
  }
  // curl -X POST http://localhost:8080/publish -H "Content-Type: application/json" \
  //   -d '{"topic":"notifications","data":{"message":"Hello"}}'
  const published = await post(
    `${herald.base}/publish`,
    '{"topic":"notifications","data":{"message":"Hello"}}',
    { 'Content-Type': 'application/json' },
  );
  await sleep(LISTEN_MS);
  const logs = await settled();
  assert.equal(logs.length, 1, `one message and nothing else: ${JSON.stringify(logs)}`);
  const [label, msg] = logs[0];
  assert.equal(label, 'Received:');
  assert.deepEqual(Object.keys(msg).sort(), ['data', 'id', 'seq', 'timestamp', 'topic']);
  assert.deepEqual(msg.data, { message: 'Hello' });
  assert.equal(msg.topic, 'notifications');
  assert.equal(msg.id, published.id);
  assert.ok(!Number.isNaN(Date.parse(msg.timestamp)), msg.timestamp);
  assert.deepEqual(errors, []);
});
