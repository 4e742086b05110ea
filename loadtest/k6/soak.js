// Soak: a long mixed profile on one topic unique to this run, DURATION (default 30m) long:
//   - subscribers: SUBSCRIBERS long-lived connections that check every event (seq exactly +1,
//     shape, latency), send an application ping every PING_EVERY and check the pong, and at the
//     end check over REST that they got everything up to the topic's latest seq;
//   - ws_publishers: PUBLISHERS connections publishing RATE messages/s in total, acks checked;
//   - rest_publish: REST_RATE POST /publish per second, responses checked;
//   - churn: CHURN_VUS virtual users that keep connecting, subscribing (the first time with
//     last_n, then resuming with since_seq + epoch from where the previous connection stopped,
//     checking that the replay joins up with no gap), holding 1-5 s, unsubscribing, closing.
//
//   HERALD_URL=https://herald.example.com DURATION=2h SUBSCRIBERS=200 RATE=100 \
//     k6 run loadtest/k6/soak.js
//
// See README.md beside this file for every variable.

import http from 'k6/http';
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import {
  BASE_URL,
  WS_URL,
  envNum,
  envStr,
  envBool,
  parseDuration,
  runTopic,
  ensureServer,
  ensureTopic,
  deleteTopic,
  httpParams,
  subscriber,
  publisher,
  checkEvent,
  SeqTracker,
  published,
  publishErrors,
  wsErrors,
  churnCycles,
  resumeUnrecovered,
  resumed,
  zero,
} from './lib/herald.js';

const DURATION_STR = envStr('DURATION', '30m');
const DURATION = parseDuration(DURATION_STR);
const SUBSCRIBERS = envNum('SUBSCRIBERS', 20);
const PUBLISHERS = envNum('PUBLISHERS', 2);
const RATE = envNum('RATE', 50); // WebSocket messages per second, all publishers together
const REST_RATE = envNum('REST_RATE', 20); // POST /publish per second
const CHURN_VUS = envNum('CHURN_VUS', 4);
const LAST_N = envNum('LAST_N', 5);
const PAYLOAD_BYTES = envNum('PAYLOAD_BYTES', 0);
const PING_EVERY = parseDuration(envStr('PING_EVERY', '15s'));
const DRAIN = parseDuration(envStr('DRAIN', '10s'));
const P99_MS = envNum('P99_MS', 200);
const P95_MS = envNum('P95_MS', 100);
const CONNECT_P95_MS = envNum('CONNECT_P95_MS', 500);
const MAX_DURATION = `${Math.ceil(DURATION + 2 * DRAIN + 30)}s`;

const scenarios = {
  subscribers: {
    executor: 'per-vu-iterations',
    exec: 'subscribe',
    vus: SUBSCRIBERS,
    iterations: 1,
    maxDuration: MAX_DURATION,
    gracefulStop: '10s',
  },
  ws_publishers: {
    executor: 'per-vu-iterations',
    exec: 'publishWs',
    vus: PUBLISHERS,
    iterations: 1,
    maxDuration: MAX_DURATION,
    gracefulStop: '10s',
  },
  churn: {
    executor: 'constant-vus',
    exec: 'churn',
    vus: CHURN_VUS,
    duration: DURATION_STR,
    gracefulStop: '15s',
  },
};
if (REST_RATE > 0) {
  scenarios.rest_publish = {
    executor: 'constant-arrival-rate',
    exec: 'publishRest',
    rate: REST_RATE,
    timeUnit: '1s',
    duration: DURATION_STR,
    preAllocatedVUs: envNum('REST_VUS', 5),
    maxVUs: envNum('REST_MAX_VUS', 50),
    gracefulStop: '10s',
  };
}
for (const name of Object.keys(scenarios)) {
  const sc = scenarios[name];
  if ((sc.vus !== undefined && sc.vus <= 0) || (name === 'ws_publishers' && RATE <= 0)) delete scenarios[name];
}

const thresholds = {
  checks: ['rate>0.99'],
  herald_seq_gaps: ['count==0'],
  herald_seq_reorders: ['count==0'],
  herald_events_missing: ['count==0'],
  herald_publish_errors: ['count==0'],
  herald_ws_errors: ['count==0'],
  herald_delivery_latency: [`p(99)<${P99_MS}`],
  herald_publish_ack_latency: [`p(99)<${P99_MS}`],
  ws_connecting: [`p(95)<${CONNECT_P95_MS}`],
  http_req_failed: ['rate<0.01'],
};
if (SUBSCRIBERS > 0) thresholds.herald_events_received = ['count>0'];
if (REST_RATE > 0) thresholds['http_req_duration{name:POST /publish}'] = [`p(95)<${P95_MS}`];
if (CHURN_VUS > 0) thresholds.herald_churn_cycles = ['count>0'];

export const options = {
  scenarios,
  thresholds,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  ensureServer();
  const topic = runTopic('k6-soak');
  ensureTopic(topic);
  console.log(
    `soak: topic ${topic} for ${DURATION_STR}: ${SUBSCRIBERS} subscribers, ${PUBLISHERS} ws publishers at ` +
      `${RATE} msg/s, REST ${REST_RATE} req/s, ${CHURN_VUS} churning connections`,
  );
  return { topic, endAt: Date.now() + DURATION * 1000 };
}

export function subscribe(data) {
  zero();
  subscriber({
    topic: data.topic,
    run: data.topic,
    expectEnds: 0,
    // Publishing stops at endAt; a moment later each subscriber reads the topic's latest seq
    // over REST and waits up to DRAIN for the events it still lacks.
    deadlineAt: data.endAt + 2000,
    tailCheck: true,
    drainMs: DRAIN * 1000,
    appPingMs: PING_EVERY * 1000,
  });
}

export function publishWs(data) {
  zero();
  publisher({
    topic: data.topic,
    run: data.topic,
    rate: RATE / PUBLISHERS,
    endAt: data.endAt,
    payloadBytes: PAYLOAD_BYTES,
    sendEnd: false,
  });
}

const pad = PAYLOAD_BYTES > 0 ? 'x'.repeat(PAYLOAD_BYTES) : undefined;
let restN = 0;
let restLastSeq = 0;

export function publishRest(data) {
  const payload = { run: data.topic, pub: `r${exec.vu.idInTest}`, n: restN++, sent_at: Date.now() };
  if (pad) payload.pad = pad;
  const res = http.post(`${BASE_URL}/publish`, JSON.stringify({ topic: data.topic, data: payload }), httpParams('POST /publish'));
  let body = null;
  try {
    body = res.json();
  } catch (_) {
    // checked below
  }
  const ok = check(res, {
    'rest publish: status 200': (r) => r.status === 200,
    'rest publish: body shape': () =>
      body !== null &&
      body.status === 'published' &&
      body.topic === data.topic &&
      typeof body.id === 'string' &&
      Number.isInteger(body.seq) &&
      body.seq > restLastSeq,
  });
  if (ok) {
    restLastSeq = body.seq;
    published.add(1, { via: 'rest' });
  } else {
    publishErrors.add(1, { code: body && body.error ? body.error.code : `http_${res.status}` });
  }
}

// Per churn VU, carried across its iterations: where the previous connection stopped.
let resume = null;
let churnZeroed = false;

export function churn(data) {
  if (!churnZeroed) {
    zero(wsErrors);
    churnZeroed = true;
  }
  sleep(0.2 + Math.random() * 0.5);
  if (Date.now() > data.endAt - 1000) return;
  const rid = `churn-${exec.vu.idInTest}-${exec.vu.iterationInScenario}`;
  const unsubRid = `${rid}-unsub`;
  const holdMs = 1000 + Math.random() * 4000;
  const tracker = new SeqTracker();
  const sub = { type: 'subscribe', topic: data.topic, request_id: rid };
  if (resume && resume.seq !== null) {
    sub.since_seq = resume.seq;
    sub.epoch = resume.epoch;
  } else {
    sub.last_n = LAST_N;
  }
  let epoch = resume ? resume.epoch : null;
  let ackSeq = null;
  let firstEvent = true;
  let unsubscribed = false;
  let holdTimer = null;
  let guardTimer = null;

  const ws = new WebSocket(WS_URL, null, { tags: { name: 'churn' } });

  ws.onopen = () => {
    ws.send(JSON.stringify(sub));
    holdTimer = setTimeout(() => {
      ws.send(JSON.stringify({ type: 'unsubscribe', topic: data.topic, request_id: unsubRid }));
    }, holdMs);
    guardTimer = setTimeout(() => {
      check(null, { 'churn: unsubscribe acked in time': () => false });
      unsubscribed = true;
      ws.close();
    }, holdMs + 10000);
  };

  ws.onmessage = (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch (_) {
      check(null, { 'frame is a JSON object': () => false });
      return;
    }
    if (msg.type === 'ack' && msg.request_id === rid) {
      check(msg, {
        'churn subscribe ack: ok': (m) => m.status === 'ok' && m.topic === data.topic && Number.isInteger(m.seq),
        'churn subscribe ack: recovered is a boolean': (m) => typeof m.recovered === 'boolean',
      });
      ackSeq = msg.seq;
      epoch = msg.epoch;
      if (sub.since_seq !== undefined && msg.recovered === true) {
        tracker.start(sub.since_seq); // the replay must join up with the previous connection
        resumed.add(1);
      } else if (sub.since_seq !== undefined) {
        resumeUnrecovered.add(1); // missed more than the ring holds: allowed, counted
      }
    } else if (msg.type === 'ack' && msg.request_id === unsubRid) {
      check(msg, { 'churn unsubscribe ack: ok': (m) => m.status === 'ok' && m.topic === data.topic });
      unsubscribed = true;
      churnCycles.add(1);
      ws.close();
    } else if (msg.type === 'event') {
      if (firstEvent && tracker.last === null && ackSeq !== null && sub.last_n !== undefined) {
        // last_n replay starts at most LAST_N back from the ack's seq, and never after it + 1.
        check(msg.seq, {
          'churn last_n replay starts in range': (s) => s >= ackSeq - LAST_N + 1 && s <= ackSeq + 1,
        });
      }
      firstEvent = false;
      check(msg, { 'churn: event after the subscribe ack': () => ackSeq !== null });
      checkEvent(msg, data.topic, data.topic, tracker, false);
    } else if (msg.type === 'error') {
      wsErrors.add(1, { code: (msg.error && msg.error.code) || 'unknown' });
      check(msg, { 'churn: no error frames': () => false });
      console.warn(`churn ${rid}: ${JSON.stringify(msg)}`);
    }
  };

  ws.onerror = (e) => {
    wsErrors.add(1, { code: 'socket' });
    console.warn(`churn ${rid}: websocket error: ${e.error}`);
  };

  ws.onclose = () => {
    clearTimeout(holdTimer);
    clearTimeout(guardTimer);
    if (!unsubscribed) {
      wsErrors.add(1, { code: 'closed_early' });
      check(null, { 'churn: connection stays open': () => false });
    }
    const last = tracker.last !== null ? tracker.last : ackSeq;
    resume = last !== null && epoch ? { seq: last, epoch } : null;
  };
}

export function teardown(data) {
  if (!envBool('KEEP_TOPIC', false) && !__ENV.TOPIC) deleteTopic(data.topic);
}
