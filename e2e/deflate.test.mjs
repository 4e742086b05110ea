// permessage-deflate in headless Chromium, which offers it on every WebSocket: the browser gets
// the extension (`WebSocket.extensions`), receives live events above and below
// COMPRESS_MIN_BYTES intact, and a second socket gets them replayed (compressed once, shared);
// with COMPRESSION=off the same page works without the extension.
//
//   HERALD_BIN=../target/debug/herald node --test deflate.test.mjs   (e2e/run.sh does this)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './browser.mjs';
import { startHerald } from '../clients/js/test/harness.mjs';

/** Runs in the page: subscribe, publish a large and a small payload, replay them on a 2nd socket. */
async function exchange({ wsUrl, big, small }) {
  const open = (url) =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const frames = [];
      const waiters = [];
      ws.onmessage = (e) => {
        const frame = JSON.parse(e.data);
        if (frame.type === 'info') return;
        frames.push(frame);
        waiters.splice(0).forEach((w) => w());
      };
      ws.onerror = () => reject(new Error('socket error'));
      ws.onopen = () => resolve({ ws, frames, waiters });
    });
  const next = async (s, n) => {
    const deadline = Date.now() + 10_000;
    while (s.frames.length < n) {
      if (Date.now() > deadline) throw new Error(`timeout: ${JSON.stringify(s.frames)}`);
      await new Promise((r) => {
        s.waiters.push(r);
        setTimeout(r, 200);
      });
    }
    return s.frames.splice(0, n);
  };
  const a = await open(wsUrl);
  a.ws.send(JSON.stringify({ type: 'subscribe', topic: 'browser', request_id: 's' }));
  await next(a, 1);
  for (const [i, p] of [big, small].entries()) {
    a.ws.send(JSON.stringify({ type: 'publish', topic: 'browser', request_id: `p${i}`, message: { payload: p } }));
  }
  const live = await next(a, 4);
  const b = await open(wsUrl);
  b.ws.send(JSON.stringify({ type: 'subscribe', topic: 'browser', last_n: 2 }));
  const replayed = await next(b, 3);
  const extensions = [a.ws.extensions, b.ws.extensions];
  a.ws.close();
  b.ws.close();
  return { extensions, live, replayed };
}

/** A payload of realistic JSON well over the 256-byte threshold (≈ 6 KiB). */
function bigPayload() {
  const cities = ['Lisbon', 'Nairobi', 'Osaka', 'Toronto'];
  return {
    readings: Array.from({ length: 60 }, (_, i) => ({
      id: i,
      city: cities[i % cities.length],
      text: `reading ${i}: light rain easing by the afternoon, winds ${10 + (i % 7)} km/h from the west`,
    })),
  };
}

async function runPage(t, env) {
  const herald = await startHerald(env);
  const context = await launch(t, [() => herald.stop()]);
  const page = context.pages()[0] || (await context.newPage());
  // herald's own origin: Chromium's local-network checks block a blank page's loopback socket.
  await page.goto(`${herald.base}/livez`);
  const big = bigPayload();
  const small = { n: 1 };
  const got = await page.evaluate(exchange, { wsUrl: herald.ws, big, small });
  return { got, big, small };
}

function assertDelivered({ got, big, small }) {
  const events = got.live.filter((f) => f.type === 'event');
  assert.deepEqual(
    got.live.filter((f) => f.type === 'ack').map((f) => f.request_id),
    ['p0', 'p1'],
  );
  assert.deepEqual(events.map((e) => e.message.payload), [big, small]);
  assert.deepEqual(events.map((e) => e.seq), [1, 2]);
  assert.equal(got.replayed[0].type, 'ack');
  assert.deepEqual(got.replayed.slice(1).map((e) => e.message.payload), [big, small]);
}

test('Chromium negotiates permessage-deflate and receives events and replays intact', { timeout: 60_000 }, async (t) => {
  const run = await runPage(t, {});
  for (const ext of run.got.extensions) {
    assert.match(ext, /^permessage-deflate/);
    assert.match(ext, /server_no_context_takeover/);
    assert.match(ext, /client_no_context_takeover/);
  }
  assertDelivered(run);
});

test('COMPRESSION=off: Chromium gets no extension and the same frames', { timeout: 60_000 }, async (t) => {
  const run = await runPage(t, { COMPRESSION: 'off' });
  assert.deepEqual(run.got.extensions, ['', '']);
  assertDelivered(run);
});
