// Shared helpers for the herald k6 scripts: configuration from the environment, REST helpers,
// custom metrics, and the two long-lived WebSocket roles (subscriber and publisher) that
// ws-fanout.js and soak.js build on. Wire contract: PROTOCOL.md at the repository root.
//
// WebSockets use k6/experimental/websockets (the event-loop API; k6 v1.1.0 has no
// k6/websockets yet), so one VU can publish on a timer while it reads acks.

import http from 'k6/http';
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout, clearTimeout, setInterval, clearInterval } from 'k6/timers';

// ---------------------------------------------------------------------------------------------
// Configuration

export function envStr(name, def) {
  const v = __ENV[name];
  return v === undefined || v === '' ? def : v;
}

export function envNum(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got "${v}"`);
  return n;
}

export function envBool(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') return def;
  return /^(1|true|yes|on)$/i.test(v);
}

// "1h30m", "5m", "30s", "500ms", or a bare number of seconds -> seconds.
export function parseDuration(s) {
  if (/^\d+(\.\d+)?$/.test(String(s))) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let total = 0;
  let matched = '';
  let m;
  while ((m = re.exec(s)) !== null) {
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3600 : m[2] === 'm' ? n * 60 : m[2] === 's' ? n : n / 1000;
    matched += m[0];
  }
  if (matched !== s) throw new Error(`bad duration "${s}" (use e.g. 30s, 5m, 1h30m)`);
  return total;
}

export const BASE_URL = envStr('HERALD_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const API_KEY = envStr('HERALD_API_KEY', '');
const WS_BASE = BASE_URL.replace(/^http(s?):\/\//, 'ws$1://') + '/ws';
// Browsers cannot set WebSocket headers, so herald also takes the key as ?api_key= (PROTOCOL.md
// §4); the `name` tag keeps the key out of the metrics' url tags.
export const WS_URL = API_KEY ? `${WS_BASE}?api_key=${encodeURIComponent(API_KEY)}` : WS_BASE;
const WS_PARAMS = { tags: { name: WS_BASE } };

// In cluster mode (NATS_URL) seq may skip numbers (PROTOCOL.md §1); then only order is checked.
export const ALLOW_SEQ_SKIPS = envBool('ALLOW_SEQ_SKIPS', false);

export const TS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

export function httpParams(name, extra) {
  const headers = { 'Content-Type': 'application/json' };
  if (API_KEY) headers['X-API-Key'] = API_KEY;
  return Object.assign({ headers, tags: { name } }, extra || {});
}

// A topic name unique to this test run (PROTOCOL.md §5: A-Z a-z 0-9 _ - . :), or $TOPIC.
export function runTopic(prefix) {
  const rnd = Math.floor(Math.random() * 0x7fffffff).toString(36);
  return envStr('TOPIC', `${prefix}-${Date.now().toString(36)}-${rnd}`);
}

// ---------------------------------------------------------------------------------------------
// Metrics. Counters that thresholds expect to stay at zero get an explicit 0 sample (zero())
// so they always show up in the summary.

export const eventsReceived = new Counter('herald_events_received');
export const seqGaps = new Counter('herald_seq_gaps');
export const seqReorders = new Counter('herald_seq_reorders');
export const eventsMissing = new Counter('herald_events_missing');
export const endMarkersMissing = new Counter('herald_end_markers_missing');
export const deliveryLatency = new Trend('herald_delivery_latency', true);
export const subscribeLatency = new Trend('herald_subscribe_latency', true);
export const published = new Counter('herald_published');
export const publishAckLatency = new Trend('herald_publish_ack_latency', true);
export const publishErrors = new Counter('herald_publish_errors');
export const wsErrors = new Counter('herald_ws_errors');
export const heartbeats = new Counter('herald_heartbeats');
export const churnCycles = new Counter('herald_churn_cycles');
export const resumed = new Counter('herald_resumed');
export const resumeUnrecovered = new Counter('herald_resume_unrecovered');

export function zero(...counters) {
  const all = [seqGaps, seqReorders, eventsMissing, endMarkersMissing, publishErrors, wsErrors];
  for (const c of counters.length ? counters : all) c.add(0);
}

// ---------------------------------------------------------------------------------------------
// REST helpers (setup/teardown and coordination)

function parse(res) {
  try {
    return res.json();
  } catch (_) {
    return null;
  }
}

export function ensureServer() {
  const res = http.get(`${BASE_URL}/health`, httpParams('GET /health'));
  if (res.status !== 200) {
    throw new Error(`GET ${BASE_URL}/health answered ${res.status} ${res.error || ''} ${res.body || ''}`);
  }
  return parse(res);
}

// POST /topics; 409 (already there) is fine. Works whether or not AUTO_CREATE_TOPICS is on.
export function ensureTopic(name) {
  const res = http.post(`${BASE_URL}/topics`, JSON.stringify({ name }), httpParams('POST /topics'));
  if (res.status !== 201 && res.status !== 409) {
    throw new Error(`POST /topics ${name} answered ${res.status}: ${res.body}`);
  }
}

export function deleteTopic(name) {
  http.del(`${BASE_URL}/topics/${encodeURIComponent(name)}`, null, httpParams('DELETE /topics/{name}'));
}

export function topicInfo(name) {
  const res = http.get(`${BASE_URL}/topics/${encodeURIComponent(name)}`, httpParams('GET /topics/{name}'));
  return res.status === 200 ? parse(res) : null;
}

// Polls GET /topics/{name} until it counts at least n subscriptions; false on timeout.
export function waitForSubscribers(topic, n, timeoutSec) {
  const until = Date.now() + timeoutSec * 1000;
  for (;;) {
    const info = topicInfo(topic);
    if (info && info.subscribers >= n) return true;
    if (Date.now() > until) return false;
    sleep(0.1);
  }
}

// ---------------------------------------------------------------------------------------------
// Sequence tracking: on one node every subscriber sees seq = ack.seq + 1, + 2, ... (PROTOCOL.md §1).

export class SeqTracker {
  constructor() {
    this.last = null; // last seq seen (or the subscribe ack's seq before any event)
  }
  start(ackSeq) {
    this.last = ackSeq;
  }
  // -> true when seq is exactly the next one (or, with ALLOW_SEQ_SKIPS, merely later).
  observe(seq) {
    if (!Number.isInteger(seq)) return false;
    if (this.last === null) {
      this.last = seq;
      return true;
    }
    if (seq <= this.last) {
      seqReorders.add(1);
      return false;
    }
    const gap = seq - this.last - 1;
    this.last = seq;
    if (gap > 0 && !ALLOW_SEQ_SKIPS) {
      seqGaps.add(gap);
      return false;
    }
    return true;
  }
}

// Checks one event frame; returns its payload (or null).
// recordLatency=false for replayed events (last_n / since_seq), which were published earlier.
export function checkEvent(msg, topic, run, tracker, recordLatency = true) {
  eventsReceived.add(1);
  const message = msg.message || {};
  const p = message.payload;
  const seqOk = tracker.observe(msg.seq);
  check(msg, {
    'event: topic matches': (m) => m.topic === topic,
    'event: seq is the next one': () => seqOk,
    'event: message.id is a string': () => typeof message.id === 'string' && message.id.length > 0,
    'event: ts is RFC 3339 UTC': (m) => typeof m.ts === 'string' && TS_RE.test(m.ts),
    'event: payload shape': () =>
      p !== null &&
      typeof p === 'object' &&
      p.run === run &&
      typeof p.pub === 'string' &&
      (p.kind === 'end' ? Number.isInteger(p.count) : Number.isInteger(p.n) && typeof p.sent_at === 'number'),
  });
  if (recordLatency && p && typeof p.sent_at === 'number') deliveryLatency.add(Math.max(0, Date.now() - p.sent_at));
  return p && typeof p === 'object' ? p : null;
}

function parseFrame(data) {
  try {
    const m = JSON.parse(data);
    if (m && typeof m === 'object') return m;
  } catch (_) {
    // fall through
  }
  check(null, { 'frame is a JSON object': () => false });
  return null;
}

// ---------------------------------------------------------------------------------------------
// Subscriber: one connection, one topic, every event checked.
//
// opts: topic, run, expectEnds (end markers to wait for, one per publisher; 0 = none),
//       deadlineAt (epoch ms: stop waiting then), tailCheck (before closing, read the topic's
//       latest seq over REST and wait up to drainMs for it), drainMs, appPingMs (0 = off),
//       subscribe (extra subscribe fields, e.g. last_n), onDone(state).
export function subscriber(opts) {
  const vu = exec.vu.idInTest;
  const subId = `sub-${vu}-${exec.vu.iterationInScenario}`;
  const tracker = new SeqTracker();
  const perPub = {}; // publisher id -> data events received
  const ends = {}; // publisher id -> messages that publisher had acked
  let endsSeen = 0;
  let subscribed = false;
  let finished = false;
  let subscribeSentAt = 0;
  let tailTarget = null;
  let tailTimer = null;
  let pingTimer = null;
  let pingN = 0;
  const timers = [];

  const ws = new WebSocket(WS_URL, null, WS_PARAMS);

  const close = () => {
    finished = true;
    for (const t of timers) clearTimeout(t);
    if (tailTimer) clearTimeout(tailTimer);
    if (pingTimer) clearInterval(pingTimer);
    ws.close();
  };

  const account = () => {
    let missing = 0;
    if (opts.expectEnds > 0) {
      endMarkersMissing.add(Math.max(0, opts.expectEnds - endsSeen));
      for (const pub of Object.keys(ends)) missing += Math.max(0, ends[pub] - (perPub[pub] || 0));
    }
    if (tailTarget !== null) missing += Math.max(0, tailTarget - (tracker.last || 0));
    eventsMissing.add(missing);
    check(missing, { 'subscriber: received every message': (m) => m === 0 });
    if (opts.onDone) opts.onDone({ last: tracker.last, perPub, ends });
  };

  const finish = () => {
    if (finished) return;
    if (opts.tailCheck && tailTarget === null) {
      const info = topicInfo(opts.topic);
      tailTarget = info && Number.isInteger(info.seq) ? info.seq : 0;
      if ((tracker.last || 0) < tailTarget) {
        tailTimer = setTimeout(() => {
          account();
          close();
        }, opts.drainMs || 5000);
        return; // onEvent finishes once tracker.last reaches tailTarget
      }
    }
    account();
    close();
  };

  ws.onopen = () => {
    subscribeSentAt = Date.now();
    ws.send(JSON.stringify(Object.assign({ type: 'subscribe', topic: opts.topic, request_id: subId }, opts.subscribe || {})));
    if (opts.appPingMs > 0) {
      pingTimer = setInterval(() => {
        ws.send(JSON.stringify({ type: 'ping', request_id: `${subId}-ping-${pingN++}` }));
      }, opts.appPingMs);
    }
    const wait = Math.max(0, opts.deadlineAt - Date.now());
    timers.push(setTimeout(finish, wait));
  };

  ws.onmessage = (e) => {
    const msg = parseFrame(e.data);
    if (!msg) return;
    switch (msg.type) {
      case 'ack':
        if (msg.request_id === subId) {
          check(msg, {
            'subscribe ack: ok': (m) => m.status === 'ok' && m.topic === opts.topic,
            'subscribe ack: seq and epoch': (m) => Number.isInteger(m.seq) && typeof m.epoch === 'string',
          });
          subscribeLatency.add(Date.now() - subscribeSentAt);
          tracker.start(msg.seq);
          subscribed = true;
        }
        break;
      case 'event': {
        check(msg, { 'event: after the subscribe ack': () => subscribed });
        const p = checkEvent(msg, opts.topic, opts.run, tracker);
        if (p && typeof p.pub === 'string') {
          if (p.kind === 'end') {
            if (ends[p.pub] === undefined) endsSeen++;
            ends[p.pub] = p.count;
            if (opts.expectEnds > 0 && endsSeen >= opts.expectEnds) finish();
          } else {
            perPub[p.pub] = (perPub[p.pub] || 0) + 1;
          }
        }
        if (tailTarget !== null && tracker.last >= tailTarget && !finished) {
          account();
          close();
        }
        break;
      }
      case 'pong':
        check(msg, { 'pong answers our ping': (m) => typeof m.request_id === 'string' && m.request_id.startsWith(subId) });
        break;
      case 'info':
        if (msg.msg === 'ping') heartbeats.add(1);
        else check(msg, { 'no unexpected info frame (topic_deleted, shutting_down)': () => false });
        break;
      case 'error':
        wsErrors.add(1, { code: (msg.error && msg.error.code) || 'unknown' });
        check(msg, { 'subscriber: no error frames': () => false });
        console.warn(`subscriber ${subId}: ${JSON.stringify(msg)}`);
        break;
      default:
        check(msg, { 'frame type is known': () => false });
    }
  };

  ws.onerror = (e) => {
    wsErrors.add(1, { code: 'socket' });
    console.warn(`subscriber ${subId}: websocket error: ${e.error}`);
  };

  ws.onclose = () => {
    if (!finished) {
      // Closed by the server or the network before we were done.
      wsErrors.add(1, { code: 'closed_early' });
      check(null, { 'subscriber: connection stays open': () => false });
      finished = true;
      if (opts.expectEnds > 0) endMarkersMissing.add(Math.max(0, opts.expectEnds - endsSeen));
      for (const t of timers) clearTimeout(t);
      if (tailTimer) clearTimeout(tailTimer);
      if (pingTimer) clearInterval(pingTimer);
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Publisher: one connection publishing at `rate` messages/s until `endAt`, every ack checked;
// then (sendEnd) one end marker carrying how many messages this publisher had acked, so each
// subscriber can tell whether it got all of them.
//
// opts: topic, run, rate, endAt (epoch ms), payloadBytes, sendEnd, maxInflight
export function publisher(opts) {
  const pubId = `p${exec.vu.idInTest}`;
  const pad = opts.payloadBytes > 0 ? 'x'.repeat(opts.payloadBytes) : undefined;
  const maxInflight = opts.maxInflight || 1000;
  const pending = {}; // request_id -> sent at (ms)
  let inflight = 0;
  let sent = 0;
  let acked = 0;
  let stopping = false;
  let endRid = null;
  let done = false;
  let tick = null;
  let safety = null;
  let start = 0;

  const ws = new WebSocket(WS_URL, null, WS_PARAMS);

  const publish = (payload, rid) => {
    pending[rid] = Date.now();
    inflight++;
    ws.send(JSON.stringify({ type: 'publish', topic: opts.topic, request_id: rid, message: { payload } }));
  };

  const sendEndOrClose = () => {
    if (done) return;
    if (opts.sendEnd && endRid === null) {
      endRid = `${pubId}-end`;
      publish({ run: opts.run, pub: pubId, kind: 'end', count: acked }, endRid);
      return;
    }
    done = true;
    if (safety) clearTimeout(safety);
    ws.close();
  };

  const stop = () => {
    if (stopping) return;
    stopping = true;
    clearInterval(tick);
    // Wait for outstanding acks, but not forever.
    safety = setTimeout(() => {
      publishErrors.add(inflight, { code: 'no_ack' });
      done = true;
      ws.close();
    }, 10000);
    if (inflight === 0) sendEndOrClose();
  };

  ws.onopen = () => {
    start = Date.now();
    // Whole messages due so far at the configured rate; a 10 ms tick keeps bursts small.
    tick = setInterval(() => {
      const now = Date.now();
      if (now >= opts.endAt) {
        stop();
        return;
      }
      const due = Math.floor(((now - start) * opts.rate) / 1000) + 1;
      while (sent < due && inflight < maxInflight) {
        const n = sent++;
        const payload = { run: opts.run, pub: pubId, n, sent_at: Date.now() };
        if (pad) payload.pad = pad;
        publish(payload, `${pubId}-${n}`);
      }
    }, 10);
  };

  ws.onmessage = (e) => {
    const msg = parseFrame(e.data);
    if (!msg) return;
    const rid = msg.request_id;
    if ((msg.type === 'ack' || msg.type === 'error') && rid !== undefined && pending[rid] !== undefined) {
      const ok = check(msg, {
        'publish ack: ok': (m) => m.type === 'ack' && m.status === 'ok' && m.topic === opts.topic,
        'publish ack: id and seq': (m) => typeof m.id === 'string' && Number.isInteger(m.seq) && m.seq > 0,
      });
      publishAckLatency.add(Date.now() - pending[rid]);
      delete pending[rid];
      inflight--;
      if (ok) {
        if (rid !== endRid) {
          acked++;
          published.add(1, { via: 'ws' });
        }
      } else {
        publishErrors.add(1, { code: (msg.error && msg.error.code) || 'bad_ack' });
        console.warn(`publisher ${pubId}: ${JSON.stringify(msg)}`);
      }
      if (rid === endRid) sendEndOrClose();
      else if (stopping && inflight === 0) sendEndOrClose();
    } else if (msg.type === 'error') {
      publishErrors.add(1, { code: (msg.error && msg.error.code) || 'unknown' });
      console.warn(`publisher ${pubId}: ${JSON.stringify(msg)}`);
    } else if (msg.type === 'info' && msg.msg === 'ping') {
      heartbeats.add(1);
    }
  };

  ws.onerror = (e) => {
    wsErrors.add(1, { code: 'socket' });
    console.warn(`publisher ${pubId}: websocket error: ${e.error}`);
  };

  ws.onclose = () => {
    if (tick) clearInterval(tick);
    if (safety) clearTimeout(safety);
    if (!done) {
      wsErrors.add(1, { code: 'closed_early' });
      check(null, { 'publisher: connection stays open': () => false });
      done = true;
    }
  };
}
