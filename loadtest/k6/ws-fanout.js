// WebSocket fan-out: SUBSCRIBERS virtual users each hold one connection subscribed to a topic
// unique to this run and check every event they get (topic, seq exactly one more than the last,
// message id, ts, payload shape); PUBLISHERS virtual users publish RATE messages/s in total over
// WebSocket for DURATION and check every ack. Each publisher ends with a marker carrying how many
// of its messages were acked, so each subscriber also checks that it got all of them.
//
//   HERALD_URL=http://127.0.0.1:8080 SUBSCRIBERS=50 PUBLISHERS=2 RATE=200 DURATION=1m \
//     k6 run loadtest/k6/ws-fanout.js
//
// See README.md beside this file for every variable.

import {
  envNum,
  envStr,
  envBool,
  parseDuration,
  runTopic,
  ensureServer,
  ensureTopic,
  deleteTopic,
  waitForSubscribers,
  subscriber,
  publisher,
  zero,
} from './lib/herald.js';
import { check } from 'k6';

const SUBSCRIBERS = envNum('SUBSCRIBERS', 10);
const PUBLISHERS = envNum('PUBLISHERS', 2);
const RATE = envNum('RATE', 100); // messages per second, all publishers together
const DURATION = parseDuration(envStr('DURATION', '30s'));
const PAYLOAD_BYTES = envNum('PAYLOAD_BYTES', 0);
const P99_MS = envNum('P99_MS', 200);
const SUBSCRIBE_TIMEOUT = parseDuration(envStr('SUBSCRIBE_TIMEOUT', '30s'));
const DRAIN = parseDuration(envStr('DRAIN', '10s'));
const MAX_DURATION = `${Math.ceil(SUBSCRIBE_TIMEOUT + DURATION + DRAIN + 15)}s`;

export const options = {
  scenarios: {
    subscribers: {
      executor: 'per-vu-iterations',
      exec: 'subscribe',
      vus: SUBSCRIBERS,
      iterations: 1,
      maxDuration: MAX_DURATION,
      gracefulStop: '5s',
    },
    publishers: {
      executor: 'per-vu-iterations',
      exec: 'publish',
      vus: PUBLISHERS,
      iterations: 1,
      maxDuration: MAX_DURATION,
      gracefulStop: '5s',
    },
  },
  thresholds: {
    checks: ['rate>0.99'],
    herald_events_received: ['count>0'],
    herald_seq_gaps: ['count==0'],
    herald_seq_reorders: ['count==0'],
    herald_events_missing: ['count==0'],
    herald_end_markers_missing: ['count==0'],
    herald_publish_errors: ['count==0'],
    herald_ws_errors: ['count==0'],
    herald_published: ['count>0'],
    herald_delivery_latency: [`p(99)<${P99_MS}`],
    herald_publish_ack_latency: [`p(99)<${P99_MS}`],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  ensureServer();
  const topic = runTopic('k6-fanout');
  ensureTopic(topic);
  console.log(`ws-fanout: topic ${topic}, ${SUBSCRIBERS} subscribers, ${PUBLISHERS} publishers, ${RATE} msg/s for ${DURATION}s`);
  return { topic };
}

export function subscribe(data) {
  zero();
  subscriber({
    topic: data.topic,
    run: data.topic,
    expectEnds: PUBLISHERS,
    deadlineAt: Date.now() + (SUBSCRIBE_TIMEOUT + DURATION + DRAIN) * 1000,
  });
}

export function publish(data) {
  zero();
  // Start publishing only once every subscriber is subscribed, so each must see every message.
  const ready = waitForSubscribers(data.topic, SUBSCRIBERS, SUBSCRIBE_TIMEOUT);
  check(ready, { 'publisher: all subscribers subscribed in time': (r) => r });
  publisher({
    topic: data.topic,
    run: data.topic,
    rate: RATE / PUBLISHERS,
    endAt: Date.now() + DURATION * 1000,
    payloadBytes: PAYLOAD_BYTES,
    sendEnd: true,
  });
}

export function teardown(data) {
  if (!envBool('KEEP_TOPIC', false) && !__ENV.TOPIC) deleteTopic(data.topic);
}
