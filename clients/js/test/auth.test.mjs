// The client's tokens against the real herald binary (PROTOCOL.md §4): refreshed in-band on
// `token_expiring` without a reconnect, a refresh under another identity refused, a token the
// server cannot verify, and a token without the right to a topic. Tokens are minted by
// `herald token` (jsonwebtoken), the way a deployment's token service would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import { HeraldClient } from '../index.js';
import { Proxy, heraldBin, sleep, startHerald, waitFor } from './harness.mjs';

const SECRET = 'js-client-auth-test-secret-of-32+bytes';
/** Tokens live 8 s and the server warns 5 s before: a refresh every ~3 s, one expiry in ~8 s. */
const AUTH = { JWT_SECRET: SECRET, JWT_LEEWAY_SECS: '0', TOKEN_REFRESH_WINDOW_SECS: '5' };

/** Resolves with how `promise` settled, without letting a rejection go unhandled. */
const outcome = (promise) => promise.then((value) => ({ value }), (error) => ({ error }));

/** A token from `herald token`; `secret` other than the server's makes its signature bad. */
async function mint({ sub, allowSub = [], allowPub = [], ttl = '8s', secret = SECRET }) {
  const args = ['token', '--sub', sub, '--ttl', ttl];
  for (const p of allowSub) args.push('--allow-sub', p);
  for (const p of allowPub) args.push('--allow-pub', p);
  const { stdout } = await promisify(execFile)(heraldBin(), args, {
    env: { PATH: process.env.PATH, JWT_SECRET: secret },
  });
  return stdout.trim();
}

/** `text` with every one of `tokens` replaced, so a failed assertion prints none. */
const redact = (text, tokens) => tokens.reduce((t, token) => t.replaceAll(token, '<token>'), text);

/** A getToken that mints `claims(call)` for its call-th call (1-based) and keeps what it gave. */
function tokenSource(claims) {
  const source = {
    calls: 0,
    tokens: [],
    getToken: async () => {
      const token = await mint(claims(++source.calls));
      source.tokens.push(token);
      return token;
    },
  };
  return source;
}

/** A client through `proxy` that records its states, errors and info frames. */
function watched(proxy, options) {
  const client = new HeraldClient(proxy.ws, { WebSocket, heartbeatInterval: 0, ...options });
  const seen = { client, states: [], errors: [], infos: [] };
  client.on('state', (state, detail) => seen.states.push({ state, ...detail }));
  client.on('error', (e) => seen.errors.push(e));
  client.on('info', (frame) => seen.infos.push(frame));
  return seen;
}

async function setup(t, options) {
  const server = await startHerald(AUTH);
  const proxy = await new Proxy(server.port).listen();
  const seen = watched(proxy, options);
  t.after(async () => {
    seen.client.close();
    await proxy.close();
    await server.stop();
  });
  return { server, proxy, seen };
}

test('token refreshed in-band on token_expiring: one connection outlives several tokens, nothing lost', { timeout: 30_000 }, async (t) => {
  const source = tokenSource(() => ({ sub: 'u1', allowSub: ['refresh.*'], allowPub: ['refresh.*'] }));
  const { proxy, seen } = await setup(t, { getToken: source.getToken });
  const events = [];
  const sub = seen.client.subscribe('refresh.stream', { onEvent: (e) => events.push(e) });
  await sub.ready;

  // Almost twice a token's life: without a working refresh the server closes at the first expiry.
  const until = Date.now() + 14_000;
  const acks = [];
  for (let n = 0; Date.now() < until; n++) {
    acks.push(outcome(seen.client.publish('refresh.stream', { n })));
    await sleep(10);
  }
  const settled = await Promise.all(acks);
  const failed = settled.filter((s) => s.error);
  assert.deepEqual(failed.map((s) => s.error.code), [], 'every publish acked');
  const count = settled.length;
  await waitFor(() => events.length >= count, 5_000, `${count} events (have ${events.length})`);
  await sleep(200); // a duplicate would arrive now

  assert.equal(events.length, count, 'no duplicates');
  events.forEach((e, i) => {
    if (e.seq !== i + 1 || e.payload.n !== i) assert.fail(`event ${i}: seq ${e.seq}, n ${e.payload.n}`);
  });
  assert.deepEqual(settled.map((s) => s.value.seq), events.map((e) => e.seq));
  // The first token, then one per token_expiring: every ~3 s.
  const warnings = seen.infos.filter((f) => f.msg === 'token_expiring');
  assert.ok(source.calls >= 4, `getToken called ${source.calls} times`);
  assert.equal(source.calls, 1 + warnings.length);
  for (const w of warnings) assert.ok(w.expires_in >= 4 && w.expires_in <= 6, `expires_in ${w.expires_in}`);
  assert.deepEqual(seen.errors, []);
  assert.deepEqual(seen.states.map((s) => s.state), ['connected'], 'no reconnect');
  assert.equal(proxy.accepted, 1);
  // In-band only: no token in the upgrade request (its URL or headers) that a proxy would log.
  assert.equal(proxy.heads.length, 1);
  const head = redact(proxy.heads[0], source.tokens);
  assert.match(head, /^GET \/ws HTTP\/1\.1\r\n/);
  assert.doesNotMatch(head, /token|authorization:/i);
  console.log(`refresh: ${count} messages, ${source.calls} tokens, ${warnings.length} token_expiring`);
});

test('a refresh under another sub is refused (FORBIDDEN); at expiry the client reconnects once with a fresh token', { timeout: 30_000 }, async (t) => {
  // The second token (the refresh) names someone else; the first and third are u1's. The first
  // lives 6 s: token_expiring after ~1 s, TOKEN_EXPIRED after ~6 s.
  const source = tokenSource((call) => ({
    sub: call === 2 ? 'intruder' : 'u1',
    allowSub: ['who.*'],
    allowPub: ['who.*'],
    ttl: call === 1 ? '6s' : '8s',
  }));
  const { proxy, seen } = await setup(t, { getToken: source.getToken });
  const events = [];
  const sub = seen.client.subscribe('who.feed', { onEvent: (e) => events.push(e) });
  await sub.ready;
  await seen.client.publish('who.feed', { n: 0 });

  await waitFor(() => seen.errors.length >= 1, 8_000, 'the refused refresh');
  const [forbidden] = seen.errors;
  assert.equal(forbidden.code, 'FORBIDDEN', String(forbidden));
  assert.match(forbidden.message, /sub/);
  assert.equal(source.calls, 2);
  // Rights unchanged: u1's token still works until it expires.
  await seen.client.publish('who.feed', { n: 1 });
  assert.equal(seen.client.state, 'connected');

  await waitFor(() => seen.states.filter((s) => s.state === 'connected').length === 2, 10_000, 'the reconnect after expiry');
  assert.deepEqual(seen.errors.map((e) => e.code), ['FORBIDDEN', 'TOKEN_EXPIRED']);
  assert.deepEqual(seen.states.map((s) => s.state), ['connected', 'disconnected', 'connecting', 'connected']);
  const lost = seen.states[1];
  assert.equal(lost.error?.code, 'TOKEN_EXPIRED');
  assert.equal(lost.code, 1008);
  assert.equal(source.calls, 3, 'one fresh token for the reconnect');
  assert.equal(proxy.accepted, 2, 'exactly one more connection');

  // The subscription resumed under the fresh token.
  await seen.client.publish('who.feed', { n: 2 });
  await waitFor(() => events.length === 3, 5_000, `3 events (have ${events.length})`);
  assert.deepEqual(events.map((e) => [e.seq, e.payload.n]), [[1, 0], [2, 1], [3, 2]]);
  assert.equal(seen.client.state, 'connected');
});

test('a refused refresh token is not reused: a reconnect before expiry asks getToken again', { timeout: 20_000 }, async (t) => {
  // The refresh names someone without rights on who.*: were the reconnect to present it, the
  // resumed subscription would be refused.
  const source = tokenSource((call) => ({
    sub: call === 2 ? 'intruder' : 'u1',
    allowSub: [call === 2 ? 'elsewhere.*' : 'who.*'],
    allowPub: [call === 2 ? 'elsewhere.*' : 'who.*'],
    ttl: call === 1 ? '6s' : '8s',
  }));
  const { proxy, seen } = await setup(t, { getToken: source.getToken, minDelay: 10 });
  const events = [];
  const refusals = [];
  const sub = seen.client.subscribe('who.feed', { onEvent: (e) => events.push(e), onError: (e) => refusals.push(e) });
  await sub.ready;
  await waitFor(() => seen.errors.length >= 1, 8_000, 'the refused refresh');
  assert.equal(seen.errors[0].code, 'FORBIDDEN');

  proxy.cut();
  await waitFor(() => seen.states.filter((s) => s.state === 'connected').length === 2, 5_000, 'the reconnect');
  await waitFor(() => sub.state === 'subscribed', 5_000, 'the resumed subscription');
  assert.equal(source.calls, 3, 'a fresh token for the reconnect');
  await seen.client.publish('who.feed', { n: 0 });
  await waitFor(() => events.length === 1, 5_000, 'the event');
  assert.deepEqual(refusals, []);
  assert.deepEqual(seen.errors.map((e) => e.code), ['FORBIDDEN']);
  assert.equal(proxy.accepted, 2);
});

test('a token with a bad signature from getToken: closed with UNAUTHORIZED after one connection', { timeout: 20_000 }, async (t) => {
  const source = tokenSource(() => ({ sub: 'u1', allowSub: ['x.*'], secret: 'not-the-server-secret-but-32-bytes-long' }));
  const { proxy, seen } = await setup(t, { getToken: source.getToken, minDelay: 10 });
  const sub = seen.client.subscribe('x.y');
  const queued = outcome(seen.client.publish('x.y', 1));

  await waitFor(() => seen.client.state === 'closed', 5_000, 'state closed');
  const closed = seen.states.at(-1);
  assert.equal(closed.error?.code, 'UNAUTHORIZED');
  assert.match(closed.error.message, /signature/i);
  assert.ok(!closed.error.message.includes(source.tokens[0]), 'the token echoed');
  assert.equal((await outcome(sub.ready)).error?.code, 'UNAUTHORIZED');
  assert.equal((await queued).error?.code, 'UNAUTHORIZED');
  await sleep(1000);
  assert.deepEqual(seen.states.map((s) => s.state), ['closed']);
  assert.equal(source.calls, 1);
  assert.equal(proxy.accepted, 1, 'no retry storm');
});

test('a token without the right to a topic: that subscribe and publish are FORBIDDEN, the connection stays', { timeout: 20_000 }, async (t) => {
  const token = await mint({ sub: 'u1', allowSub: ['open.*'], allowPub: ['open.*'], ttl: '1h' });
  const { proxy, seen } = await setup(t, { token });
  const refusals = [];
  const secret = seen.client.subscribe('secret.plans', { onError: (e) => refusals.push(e) });
  const open = seen.client.subscribe('open.chat');

  const refused = await outcome(secret.ready);
  assert.equal(refused.error?.code, 'FORBIDDEN', String(refused.error));
  assert.equal(secret.state, 'unsubscribed');
  assert.deepEqual(refusals.map((e) => e.code), ['FORBIDDEN']);
  assert.equal((await open.ready).seq, 0);
  assert.equal((await outcome(seen.client.publish('secret.plans', 1))).error?.code, 'FORBIDDEN');
  assert.deepEqual(await seen.client.publish('open.chat', { hi: 1 }, { id: 'm-1' }), { id: 'm-1', seq: 1 });

  await sleep(500);
  assert.equal(seen.client.state, 'connected');
  assert.deepEqual(seen.states.map((s) => s.state), ['connected']);
  assert.equal(proxy.accepted, 1);
});
