// herald's JavaScript client (clients/js/index.js) in headless Debian chromium: a page loads it as
// a module, the bytes herald serves at /dashboard/herald-client.js, subscribes through a TCP
// proxy that then cuts the connection, and must receive every event across the reconnect, once
// and in order, and publish with an ack.
//
//   HERALD_BIN=../target/debug/herald node --test client.test.mjs   (e2e/run.sh does this)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { launch } from './browser.mjs';
import { Proxy, freePort, restPublish, startHerald } from '../clients/js/test/harness.mjs';

const STEP_MS = 15_000;

/** The test page: a module script that imports the client and records what it sees. */
function page(wsUrl) {
  return `<!doctype html><meta charset="utf-8"><title>client</title>
<script type="module">
import { HeraldClient } from '/herald-client.js';
window.seen = { states: [], seqs: [], ns: [], gaps: 0 };
const client = new HeraldClient(${JSON.stringify(wsUrl)}, { heartbeatInterval: 1000 });
client.on('state', (s) => window.seen.states.push(s));
client.subscribe('browser', {
  onEvent: (e) => { window.seen.seqs.push(e.seq); window.seen.ns.push(e.payload.n); },
  onGap: () => { window.seen.gaps++; },
}).ready.then((ack) => { window.seen.ready = ack; });
window.client = client;
</script>`;
}

/**
 * The page and the client on a loopback origin of their own. (A page that playwright fulfils
 * itself has no address, so chromium's local-network checks would block its loopback sockets.)
 */
async function serve(html, client) {
  const server = createServer((req, res) => {
    const [type, body] = req.url === '/herald-client.js' ? ['text/javascript', client] : ['text/html', html];
    res.writeHead(200, { 'Content-Type': `${type}; charset=utf-8` }).end(body);
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${port}/` };
}

test('the client in chromium: events across a forced reconnect, once and in order', { timeout: 60_000 }, async (t) => {
  const herald = await startHerald({ HEARTBEAT_INTERVAL_SECS: '1' });
  const proxy = await new Proxy(herald.port).listen();
  const site = await serve(page(proxy.ws), await (await fetch(`${herald.base}/dashboard/herald-client.js`)).text());
  const context = await launch(t, [
    () => site.server.close(),
    () => proxy.close(),
    () => herald.stop(),
  ]);
  const tab = context.pages()[0] || (await context.newPage());
  tab.setDefaultTimeout(STEP_MS);
  const problems = [];
  tab.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // The page lives on herald's origin, so the module import is an ordinary same-origin load.
  await tab.goto(site.url);
  await tab.waitForFunction(() => window.seen && window.seen.ready);

  for (let n = 0; n < 20; n++) await restPublish(herald.base, 'browser', { n });
  await tab.waitForFunction(() => window.seen.ns.length === 20);

  proxy.cut();
  for (let n = 20; n < 40; n++) await restPublish(herald.base, 'browser', { n });
  await tab.waitForFunction(() => window.seen.ns.length >= 40);
  const ack = await tab.evaluate(() => window.client.publish('browser', { n: 40 }, { id: 'from-page' }));
  assert.deepEqual(ack, { id: 'from-page', seq: 41 });
  await tab.waitForFunction(() => window.seen.ns.length >= 41);

  const seen = await tab.evaluate(() => window.seen);
  assert.deepEqual(seen.ns, [...Array(41).keys()]);
  assert.deepEqual(seen.seqs, [...Array(41).keys()].map((i) => i + 1));
  assert.equal(seen.gaps, 0);
  assert.deepEqual(seen.states.slice(0, 4), ['connected', 'disconnected', 'connecting', 'connected']);
  assert.equal(proxy.accepted, 2, 'one reconnect');
  assert.deepEqual(problems, []);
});
