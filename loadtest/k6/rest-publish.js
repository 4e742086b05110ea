// REST publish: POST /publish at a constant arrival rate (RATE requests/s for DURATION), spread
// over TOPICS topics unique to this run; every response is checked (200, body
// {"status":"published","topic","id","seq"}, seq increasing for each virtual user and topic).
//
//   HERALD_URL=http://127.0.0.1:8080 RATE=500 DURATION=1m k6 run loadtest/k6/rest-publish.js
//
// See README.md beside this file for every variable.

import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import {
  BASE_URL,
  envNum,
  envStr,
  envBool,
  parseDuration,
  runTopic,
  ensureServer,
  ensureTopic,
  deleteTopic,
  httpParams,
  published,
  publishErrors,
  seqReorders,
  zero,
} from './lib/herald.js';

const RATE = envNum('RATE', 100); // requests per second
const DURATION = envStr('DURATION', '30s');
const TOPICS = envNum('TOPICS', 1);
const VUS = envNum('VUS', 10);
const MAX_VUS = envNum('MAX_VUS', Math.max(VUS, 100));
const PAYLOAD_BYTES = envNum('PAYLOAD_BYTES', 0);
const P95_MS = envNum('P95_MS', 100);

parseDuration(DURATION); // fail early on a malformed value

export const options = {
  scenarios: {
    rest_publish: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: VUS,
      maxVUs: MAX_VUS,
      gracefulStop: '10s',
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    'http_req_duration{name:POST /publish}': [`p(95)<${P95_MS}`],
    checks: ['rate>0.99'],
    herald_published: ['count>0'],
    herald_publish_errors: ['count==0'],
    herald_seq_reorders: ['count==0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  ensureServer();
  const prefix = runTopic('k6-rest');
  const topics = [];
  for (let i = 0; i < TOPICS; i++) {
    const t = TOPICS === 1 ? prefix : `${prefix}.${i}`;
    ensureTopic(t);
    topics.push(t);
  }
  console.log(`rest-publish: ${topics.length} topic(s) ${prefix}…, ${RATE} req/s for ${DURATION}`);
  return { topics, run: prefix };
}

const pad = PAYLOAD_BYTES > 0 ? 'x'.repeat(PAYLOAD_BYTES) : undefined;
const lastSeq = {}; // per VU (each VU has its own copy): topic -> last seq acknowledged
let n = 0;
let zeroed = false;

export default function (data) {
  if (!zeroed) {
    zero(publishErrors, seqReorders);
    zeroed = true;
  }
  const topic = data.topics[exec.scenario.iterationInTest % data.topics.length];
  const payload = { run: data.run, pub: `r${exec.vu.idInTest}`, n: n++, sent_at: Date.now() };
  if (pad) payload.pad = pad;
  const res = http.post(`${BASE_URL}/publish`, JSON.stringify({ topic, data: payload }), httpParams('POST /publish'));
  let body = null;
  try {
    body = res.json();
  } catch (_) {
    // checked below
  }
  const prev = lastSeq[topic] || 0;
  const ok = check(res, {
    'publish: status 200': (r) => r.status === 200,
    'publish: body {status, topic}': () => body !== null && body.status === 'published' && body.topic === topic,
    'publish: body id is a string': () => body !== null && typeof body.id === 'string' && body.id.length > 0,
    'publish: body seq increases': () => body !== null && Number.isInteger(body.seq) && body.seq > prev,
  });
  if (body !== null && Number.isInteger(body.seq)) {
    if (body.seq <= prev) seqReorders.add(1);
    else lastSeq[topic] = body.seq;
  }
  if (ok) {
    published.add(1, { via: 'rest' });
  } else {
    const code = body && body.error && body.error.code ? body.error.code : `http_${res.status}`;
    publishErrors.add(1, { code });
  }
}

export function teardown(data) {
  if (envBool('KEEP_TOPIC', false) || __ENV.TOPIC) return;
  for (const t of data.topics) deleteTopic(t);
}
