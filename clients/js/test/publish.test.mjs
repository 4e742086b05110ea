// Publishing through the client against the real herald binary: the bounded queue while no
// server is up, acks after the reconnect, the server's error codes, a publish lost with its
// connection, and refused credentials that close the client instead of retrying forever.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { HeraldClient, HeraldError } from '../index.js';
import { Proxy, freePort, sleep, startHerald, waitFor } from './harness.mjs';

/** Resolves with how `promise` settled, without letting a rejection go unhandled. */
const outcome = (promise) => promise.then((value) => ({ value }), (error) => ({ error }));

test('publishes made while down wait in a bounded queue, then are sent and acked in order', { timeout: 30_000 }, async (t) => {
  const port = await freePort();
  const client = new HeraldClient(`ws://127.0.0.1:${port}/ws`, { WebSocket, maxQueued: 5, maxDelay: 500 });
  const states = [];
  client.on('state', (state, detail) => states.push({ state, ...detail }));
  let server = null;
  t.after(async () => {
    client.close();
    await server?.stop();
  });
  const events = [];
  const sub = client.subscribe('queued', { onEvent: (e) => events.push(e) });
  const queued = [0, 1, 2, 3, 4].map((n) => outcome(client.publish('queued', { n }, { id: `q-${n}` })));
  const overflow = await outcome(client.publish('queued', { n: 5 }));
  assert.ok(overflow.error instanceof HeraldError);
  assert.equal(overflow.error.code, 'QUEUE_FULL');

  await waitFor(() => states.some((s) => s.state === 'disconnected'), 5_000, 'a failed attempt');
  const refused = states.find((s) => s.state === 'disconnected');
  assert.equal(refused.opened, false);
  assert.ok(refused.delay >= 0 && refused.delay <= 250, `first retry after ${refused.delay} ms`);

  server = await startHerald({}, port);
  const acks = await Promise.all(queued);
  assert.deepEqual(
    acks.map((a) => a.value),
    [0, 1, 2, 3, 4].map((n) => ({ id: `q-${n}`, seq: n + 1 })),
  );
  // The subscription was sent before the queued publishes: it sees all of them.
  await sub.ready;
  await waitFor(() => events.length === 5, 5_000, '5 events');
  assert.deepEqual(events.map((e) => [e.id, e.seq, e.payload.n]), [0, 1, 2, 3, 4].map((n) => [`q-${n}`, n + 1, n]));
  const history = await (await fetch(`${server.base}/topics/queued/history?last_n=10`)).json();
  assert.deepEqual(history.messages.map((m) => m.id), ['q-0', 'q-1', 'q-2', 'q-3', 'q-4']);
  assert.equal(client.state, 'connected');
});

test('a refused publish rejects with the server\'s code; a refused subscribe ends it', { timeout: 20_000 }, async (t) => {
  const server = await startHerald({ MAX_MESSAGE_BYTES: '1024' });
  const client = new HeraldClient(server.ws, { WebSocket });
  t.after(async () => {
    client.close();
    await server.stop();
  });
  const bad = await outcome(client.publish('not a topic!', 1));
  assert.equal(bad.error?.code, 'BAD_REQUEST', String(bad.error));
  const big = await outcome(client.publish('t', 'x'.repeat(4096)));
  assert.equal(big.error?.code, 'PAYLOAD_TOO_LARGE', String(big.error));

  const errors = [];
  const sub = client.subscribe('no spaces allowed', { onError: (e) => errors.push(e) });
  const refused = await outcome(sub.ready);
  assert.equal(refused.error?.code, 'BAD_REQUEST');
  assert.deepEqual(errors.map((e) => e.code), ['BAD_REQUEST']);
  assert.equal(sub.state, 'unsubscribed');

  // The connection stays usable.
  const ok = await client.publish('t', { fine: true }, { id: 'm-1' });
  assert.deepEqual(ok, { id: 'm-1', seq: 1 });
});

test('a publish in flight when the connection dies rejects with DISCONNECTED; the next one goes through', { timeout: 20_000 }, async (t) => {
  const server = await startHerald();
  const proxy = await new Proxy(server.port).listen();
  const client = new HeraldClient(proxy.ws, { WebSocket, heartbeatInterval: 0 });
  t.after(async () => {
    client.close();
    await proxy.close();
    await server.stop();
  });
  await client.publish('inflight', 0);
  proxy.freeze();
  const lost = outcome(client.publish('inflight', 1));
  await sleep(100);
  proxy.cut();
  assert.equal((await lost).error?.code, 'DISCONNECTED');
  const next = await client.publish('inflight', 2);
  // Frozen means never forwarded: the lost publish did not reach the server.
  assert.equal(next.seq, 2);
});

test('a wrong API key closes the client with UNAUTHORIZED after one attempt; the right one connects', { timeout: 20_000 }, async (t) => {
  const server = await startHerald({ API_KEY: 'right-key' });
  const proxy = await new Proxy(server.port).listen();
  const wrong = new HeraldClient(proxy.ws, { WebSocket, apiKey: 'wrong-key', minDelay: 10 });
  const right = new HeraldClient(server.ws, { WebSocket, apiKey: 'right-key' });
  t.after(async () => {
    wrong.close();
    right.close();
    await proxy.close();
    await server.stop();
  });
  const states = [];
  wrong.on('state', (state, detail) => states.push({ state, ...detail }));
  const sub = wrong.subscribe('secret');
  const queued = outcome(wrong.publish('secret', 1));

  await waitFor(() => wrong.state === 'closed', 5_000, 'state closed');
  const closed = states.at(-1);
  assert.equal(closed.error?.code, 'UNAUTHORIZED');
  assert.equal((await outcome(sub.ready)).error?.code, 'UNAUTHORIZED');
  assert.equal((await queued).error?.code, 'UNAUTHORIZED');
  await sleep(1000);
  assert.equal(proxy.accepted, 1, 'no retry storm');
  assert.deepEqual(states.map((s) => s.state), ['closed']);

  const ack = await right.subscribe('secret').ready;
  assert.equal(ack.seq, 0);
  assert.equal((await outcome(wrong.publish('secret', 2))).error?.code, 'CLOSED');
});
