// The client against the real herald binary through a TCP proxy that breaks its connection:
// cuts every ~300 ms, a frozen path only the heartbeat watchdog notices, a server restart (a new
// epoch, so onGap), and a slow-consumer disconnect. Every message must arrive once, in order.
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { HeraldClient } from '../index.js';
import { Proxy, freePort, metric, restPublish, sleep, startHerald, waitFor } from './harness.mjs';

/** A subscriber that records everything the client hands it. */
function subscriber(url, topic, options = {}) {
  const client = new HeraldClient(url, { WebSocket, heartbeatInterval: 1000, ...options });
  const seen = { events: [], gaps: [], states: [], errors: [], client };
  client.on('state', (state, detail) => seen.states.push({ state, ...detail }));
  client.on('error', (e) => seen.errors.push(e));
  seen.sub = client.subscribe(topic, {
    onEvent: (e) => seen.events.push(e),
    onGap: (g) => seen.gaps.push(g),
  });
  return seen;
}

/** Publishes `count` numbered messages over a direct connection, `batch` at a time, pausing `pause` ms between batches. */
async function publishNumbered(url, topic, count, { batch = 100, pause = 0, start = 0 } = {}) {
  const publisher = new HeraldClient(url, { WebSocket });
  try {
    for (let n = start; n < start + count; n += batch) {
      const acks = [];
      for (let i = n; i < Math.min(n + batch, start + count); i++) acks.push(publisher.publish(topic, { n: i }));
      await Promise.all(acks);
      if (pause) await sleep(pause);
    }
  } finally {
    publisher.close();
  }
}

const connects = (seen) => seen.states.filter((s) => s.state === 'connected').length;

test('10,000 messages while the connection is cut every ~300 ms: each once, in order', { timeout: 90_000 }, async (t) => {
  const server = await startHerald({ RING_BUFFER_SIZE: '5000', HEARTBEAT_INTERVAL_SECS: '1' });
  const proxy = await new Proxy(server.port).listen();
  const seen = subscriber(proxy.ws, 'cuts');
  t.after(async () => {
    seen.client.close();
    await proxy.close();
    await server.stop();
  });
  await seen.sub.ready;

  let cuts = 0;
  const cutter = setInterval(() => {
    proxy.cut();
    cuts++;
  }, 300);
  try {
    // ~3,000 a second, so the stream spans a dozen cuts.
    await publishNumbered(server.ws, 'cuts', 10_000, { batch: 100, pause: 30 });
  } finally {
    clearInterval(cutter);
  }
  await waitFor(() => seen.events.length >= 10_000, 30_000, `10,000 events (have ${seen.events.length})`);
  await sleep(200); // anything extra (a duplicate) would arrive now

  assert.equal(seen.events.length, 10_000, 'no duplicates');
  seen.events.forEach((e, i) => {
    if (e.seq !== i + 1 || e.payload.n !== i) assert.fail(`event ${i}: seq ${e.seq}, n ${e.payload.n}`);
  });
  assert.deepEqual(seen.gaps, [], 'the ring covered every outage');
  assert.ok(cuts >= 8, `only ${cuts} cuts`);
  assert.ok(connects(seen) >= 5, `reconnected only ${connects(seen)} times over ${cuts} cuts`);
  console.log(`cuts: ${cuts}, reconnects: ${connects(seen)}, proxied connections: ${proxy.accepted}`);
});

test('a frozen path (no close, no data) is noticed by the heartbeat watchdog', { timeout: 30_000 }, async (t) => {
  const server = await startHerald({ HEARTBEAT_INTERVAL_SECS: '1' });
  const proxy = await new Proxy(server.port).listen();
  const seen = subscriber(proxy.ws, 'frozen');
  t.after(async () => {
    seen.client.close();
    await proxy.close();
    await server.stop();
  });
  await seen.sub.ready;
  await publishNumbered(server.ws, 'frozen', 20);
  await waitFor(() => seen.events.length === 20, 5_000, '20 events');

  proxy.freeze();
  const frozenAt = Date.now();
  await publishNumbered(server.ws, 'frozen', 20, { start: 20 });
  await waitFor(() => connects(seen) === 2, 8_000, 'a reconnect after the freeze');
  const noticed = Date.now() - frozenAt;
  const lost = seen.states.find((s) => s.state === 'disconnected');
  assert.equal(lost.error?.code, 'HEARTBEAT_TIMEOUT');
  // 2.5 heartbeats of silence (the last message may have come up to a second before the freeze).
  assert.ok(noticed >= 1400 && noticed < 5000, `noticed after ${noticed} ms`);

  await publishNumbered(server.ws, 'frozen', 20, { start: 40 });
  await waitFor(() => seen.events.length >= 60, 5_000, `60 events (have ${seen.events.length})`);
  assert.deepEqual(seen.events.map((e) => e.payload.n), [...Array(60).keys()]);
  assert.deepEqual(seen.gaps, []);
});

test('server restarted without shared state: onGap with the new epoch, then delivery goes on', { timeout: 30_000 }, async (t) => {
  let server = await startHerald();
  const seen = subscriber(server.ws, 'restart', { heartbeatInterval: 0 });
  t.after(async () => {
    seen.client.close();
    await server.stop();
  });
  const first = await seen.sub.ready;
  for (let n = 0; n < 5; n++) await restPublish(server.base, 'restart', { n });
  await waitFor(() => seen.events.length === 5, 5_000, '5 events');

  await server.stop();
  server = await startHerald({}, server.port);
  await waitFor(() => seen.gaps.length === 1, 10_000, 'onGap');
  const [gap] = seen.gaps;
  assert.equal(gap.topic, 'restart');
  assert.equal(gap.lastSeq, 5);
  assert.equal(gap.previousEpoch, first.epoch);
  assert.notEqual(gap.epoch, first.epoch);
  assert.equal(seen.sub.epoch, gap.epoch);

  for (let n = 5; n < 8; n++) await restPublish(server.base, 'restart', { n });
  await waitFor(() => seen.events.length === 8, 5_000, '8 events');
  // "Never twice" holds within an epoch: the new one numbers from 1 again.
  assert.deepEqual(seen.events.map((e) => e.seq), [1, 2, 3, 4, 5, 1, 2, 3]);
  assert.deepEqual(seen.events.map((e) => e.payload.n), [0, 1, 2, 3, 4, 5, 6, 7]);
  const disconnected = seen.states.find((s) => s.state === 'disconnected');
  assert.equal(disconnected.code, 1001, 'graceful shutdown closes with 1001');
});

test('closed as a slow consumer: resumes and loses nothing', { timeout: 60_000 }, async (t) => {
  const server = await startHerald({ SUBSCRIBER_QUEUE_SIZE: '16', RING_BUFFER_SIZE: '5000' });
  const proxy = await new Proxy(server.port).listen();
  const seen = subscriber(proxy.ws, 'slow', { heartbeatInterval: 0 });
  t.after(async () => {
    seen.client.close();
    await proxy.close();
    await server.stop();
  });
  await seen.sub.ready;

  // The client stops reading: herald's writes fill the socket buffers, then its 16-frame queue.
  // The payload must not compress: ws negotiates permessage-deflate, and 2,000 events of 8 KiB
  // of one letter go out as ~60-byte frames that the socket buffers alone absorb, so the queue
  // overflowed only when the writer happened to fall 16 frames behind the publisher. Random
  // bytes keep ~12 MiB on the wire, past the ~4 MiB the socket buffers and the 2 MiB the writer
  // may hold.
  proxy.stall();
  const blob = randomBytes(6 * 1024).toString('base64');
  const publisher = new HeraldClient(server.ws, { WebSocket, maxQueued: 2000 });
  const acks = [];
  for (let n = 0; n < 2000; n++) acks.push(publisher.publish('slow', { n, blob }));
  await Promise.all(acks);
  publisher.close();
  await waitFor(async () => (await metric(server.base, 'herald_slow_consumer_disconnects_total')) >= 1, 10_000, 'a slow-consumer disconnect');
  proxy.resume();

  await waitFor(() => seen.events.length >= 2000, 20_000, `2000 events (have ${seen.events.length})`);
  await sleep(200);
  assert.deepEqual(seen.events.map((e) => e.payload.n), [...Array(2000).keys()]);
  assert.deepEqual(seen.gaps, []);
  assert.ok(connects(seen) >= 2, 'resumed on a new connection');
  const lost = seen.states.find((s) => s.state === 'disconnected');
  console.log(`slow consumer: close ${lost.code}, error ${lost.error?.code ?? '-'}`);
});

test('backoff: full jitter under a doubling ceiling, from the minimum again once subscribed', { timeout: 30_000 }, async (t) => {
  const port = await freePort();
  const seen = subscriber(`ws://127.0.0.1:${port}/ws`, 'backoff', { minDelay: 50, maxDelay: 400, heartbeatInterval: 0 });
  let server = null;
  t.after(async () => {
    seen.client.close();
    await server?.stop();
  });
  const delays = () => seen.states.filter((s) => s.state === 'disconnected').map((s) => s.delay);
  await waitFor(() => delays().length >= 8, 10_000, '8 refused attempts');
  delays().slice(0, 8).forEach((d, i) => assert.ok(d >= 0 && d <= Math.min(400, 50 * 2 ** i), `attempt ${i}: ${d} ms`));
  // Jittered, not pinned to the floor: five draws under a 400 ms ceiling all at 50 ms or less
  // would happen once in 30,000 runs.
  assert.ok(delays().slice(3, 8).some((d) => d > 50), `delays ${delays()}`);

  server = await startHerald({}, port);
  await seen.sub.ready;
  await waitFor(() => connects(seen) === 1, 5_000, 'connected');
  const before = delays().length;
  await server.stop();
  await waitFor(() => delays().length > before, 5_000, 'the disconnect');
  assert.ok(delays()[before] <= 50, `after a healthy connection the first retry waits ${delays()[before]} ms`);
});
