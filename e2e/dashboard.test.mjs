// End-to-end test of /dashboard in headless Debian chromium, driven by playwright-core: starts
// herald with API_KEY on a free loopback port, opens the page, enters the key, tails a topic,
// publishes from the form, sees the event in the tail, the topic in the list and who is on it (the
// presence card), checks that a payload carrying markup stays text, and saves a screenshot
// (SCREENSHOT_PATH, else a temp file).
//
//   HERALD_BIN=../target/debug/herald node --test dashboard.test.mjs   (e2e/run.sh does this)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launch as launchBrowser } from './browser.mjs';
import { startHerald } from '../clients/js/test/harness.mjs';

const KEY = `e2e-${process.pid}-${Date.now()}`;
const STEP_MS = 15_000;

function startKeyed(env = {}) {
  assert.ok(process.env.HERALD_BIN, 'set HERALD_BIN to the herald binary');
  return startHerald({ API_KEY: KEY, ...env });
}

async function publish(base, topic, data) {
  const response = await fetch(`${base}/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-API-Key': KEY },
    body: JSON.stringify({ topic, data }),
  });
  assert.equal(response.status, 200, await response.text());
}

/** Chromium for `herald`'s dashboard; herald stops after the test. */
function launch(t, herald) {
  return launchBrowser(t, [() => herald.stop()], { width: 1280, height: 860 });
}

test('dashboard: key, tail, publish, topic list, screenshot', { timeout: 90_000 }, async (t) => {
  const herald = await startKeyed();
  const context = await launch(t, herald);
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (msg) => {
    // The first /stats poll is a 401 before the key is entered; chromium logs it as an error.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) {
      problems.push(`console: ${msg.text()}`);
    }
  });

  // The page itself needs no key; the data does.
  const response = await page.goto(`${herald.base}/dashboard`);
  assert.equal(response.status(), 200);
  await page.locator('#server-status', { hasText: 'API key needed' }).waitFor();

  await page.fill('#api-key', KEY);
  await page.click('#key-save');
  await page.locator('#server-status', { hasText: 'live' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('herald.apiKey')), KEY);

  // Something to replay: the tail asks for last_n = 5.
  await publish(herald.base, 'e2e-orders', { order: 'ORD-0' });

  await page.fill('#tail-topic', 'e2e-orders');
  await page.fill('#tail-last-n', '5');
  await page.click('#tail-start');
  await page.locator('#tail-status', { hasText: 'subscribed to e2e-orders' }).waitFor();
  await page.locator('#tail li.event', { hasText: 'ORD-0' }).waitFor();

  const markup = '<img src=x onerror="window.__pwned=1">';
  await page.fill('#publish-topic', 'e2e-orders');
  await page.fill('#publish-id', 'm-dashboard-1');
  await page.fill('#publish-payload', JSON.stringify({ order: 'ORD-1', note: markup }));
  await page.click('#publish-send');
  await page.locator('#publish-result', { hasText: 'published m-dashboard-1 as seq 2' }).waitFor();

  // The event arrives in the tail, newest first, as text.
  const newest = page.locator('#tail li.event').first();
  await newest.filter({ hasText: 'ORD-1' }).waitFor();
  assert.match(await newest.textContent(), /#2/);
  assert.ok((await newest.textContent()).includes('<img src=x onerror='), 'markup shown as text');
  assert.equal(await page.locator('#tail img').count(), 0, 'markup became an element');
  assert.equal(await page.evaluate(() => window.__pwned), undefined);

  // The topic is listed with the tail's subscription.
  const row = page.locator('#topics-body tr[data-topic="e2e-orders"]');
  await row.locator('td.subscribers', { hasText: /^1$/ }).waitFor();
  await row.locator('td.messages', { hasText: /^2$/ }).waitFor();

  // Clicking the topic shows who is on it: the tail's connection and one that names itself.
  await page.evaluate((key) => {
    const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/ws?id=e2e-user&api_key=${encodeURIComponent(key)}`);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'subscribe', topic: 'e2e-orders' }));
    window.__named = ws;
  }, KEY);
  await row.click();
  await page.locator('#presence-topic', { hasText: 'e2e-orders' }).waitFor();
  await page.locator('#presence li.client[data-client="e2e-user"]', { hasText: '×1' }).waitFor();
  await page.locator('#presence-count', { hasText: /^2 clients$/ }).waitFor();

  // A refused publish shows its code (a message id over 255 bytes).
  await page.fill('#publish-id', 'x'.repeat(300));
  await page.click('#publish-send');
  await page.locator('#publish-result', { hasText: 'BAD_REQUEST' }).waitFor();
  await page.fill('#publish-id', '');

  // Some traffic for the charts and the screenshot: a few topics, ~30 messages a second, and
  // two more subscribers opened from the page.
  await page.evaluate((key) => {
    for (const topic of ['orders', 'payments']) {
      const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/ws?api_key=${encodeURIComponent(key)}`);
      ws.onopen = () => ws.send(JSON.stringify({ type: 'subscribe', topic }));
      window.__extra = (window.__extra || []).concat(ws);
    }
  }, KEY);
  const topics = ['orders', 'payments', 'e2e-orders', 'audit.log'];
  for (let i = 0; i < 120; i++) {
    await publish(herald.base, topics[i % topics.length], { n: i, amount: (i * 7.5) % 100 });
    await new Promise((r) => setTimeout(r, 30));
  }
  await page.locator('#topics-body tr[data-topic="payments"] td.subscribers', { hasText: /^1$/ }).waitFor();
  await page.waitForFunction(() => Number(document.getElementById('total-publish-rate').textContent) > 0);
  await page.locator('#tail li.event', { hasText: '"n":' }).first().waitFor();

  // End on a successful publish from the form.
  await page.fill('#publish-payload', JSON.stringify({ order: 'ORD-2', amount: 42 }));
  await page.click('#publish-send');
  await page.locator('#publish-result', { hasText: /^published .* as seq \d+$/ }).waitFor();
  await page.locator('#tail li.event', { hasText: 'ORD-2' }).waitFor();

  const shot = process.env.SCREENSHOT_PATH || path.join(tmpdir(), 'herald-dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);

  assert.deepEqual(problems, [], 'no page errors, no CSP violations');
  assert.equal(herald.child.exitCode, null, `herald exited:\n${herald.log.join('')}`);
});

test('dashboard: ALLOWED_ORIGINS never blocks the page the server itself serves', { timeout: 60_000 }, async (t) => {
  // The list names another site only; the dashboard's own origin (same host) is still allowed.
  const herald = await startKeyed({ ALLOWED_ORIGINS: 'https://elsewhere.example' });
  const context = await launch(t, herald);
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  await page.goto(`${herald.base}/dashboard`);
  await page.fill('#api-key', KEY);
  await page.click('#key-save');
  await page.locator('#server-status', { hasText: 'live' }).waitFor();
  await page.fill('#tail-topic', 'e2e-own-origin');
  await page.click('#tail-start');
  await page.locator('#tail-status', { hasText: 'subscribed to e2e-own-origin' }).waitFor();
  await publish(herald.base, 'e2e-own-origin', { order: 'OWN-1' });
  await page.locator('#tail li.event', { hasText: 'OWN-1' }).waitFor();
  assert.equal(herald.child.exitCode, null, `herald exited:\n${herald.log.join('')}`);
});

// A reverse proxy that rewrites Host to herald's own address (as `proxy_pass` without
// `proxy_set_header Host` does): the page's origin is then the proxy's, not the host herald
// sees, so ALLOWED_ORIGINS must name it.
async function hostRewritingProxy(t, base) {
  const target = new URL(base);
  const server = http.createServer((req, res) => {
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (req, socket, head) => {
    const upstream = net.connect(Number(target.port), target.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i];
        lines.push(`${name}: ${name.toLowerCase() === 'host' ? target.host : req.rawHeaders[i + 1]}`);
      }
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  // `localhost`, not 127.0.0.1: another origin than the one herald sees in Host.
  return `http://localhost:${server.address().port}`;
}

test('dashboard: a tail refused for its origin says so, not "check the API key"', { timeout: 60_000 }, async (t) => {
  const herald = await startKeyed({ ALLOWED_ORIGINS: 'https://elsewhere.example' });
  const context = await launch(t, herald);
  const proxied = await hostRewritingProxy(t, herald.base);
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  await page.goto(`${proxied}/dashboard`);

  // A wrong key first: that one is the key's fault.
  await page.fill('#api-key', 'not-the-key');
  await page.click('#key-save');
  await page.fill('#tail-topic', 'e2e-origin');
  await page.click('#tail-start');
  await page.locator('#tail-status', { hasText: 'refused: wrong API key' }).waitFor();
  assert.equal(await page.locator('#tail-start').isDisabled(), false, 'the tail stopped retrying');

  await page.fill('#api-key', KEY);
  await page.click('#key-save');
  await page.locator('#server-status', { hasText: 'live' }).waitFor();
  await page.click('#tail-start');
  const status = page.locator('#tail-status', { hasText: 'ALLOWED_ORIGINS' });
  await status.waitFor();
  const text = await status.textContent();
  assert.ok(text.includes(proxied), `names the page's origin: ${text}`);
  assert.ok(!/API key/i.test(text), `does not blame the key: ${text}`);
  assert.equal(await page.locator('#tail-start').isDisabled(), false, 'the tail stopped retrying');
  assert.equal(herald.child.exitCode, null, `herald exited:\n${herald.log.join('')}`);
});
