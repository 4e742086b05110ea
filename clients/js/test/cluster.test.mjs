// Cluster mode with real processes: nats-server -js, three herald nodes, nginx in front. The
// client's node is SIGKILLed mid-stream, then the node it failed over to drains (SIGTERM, close
// 1012): each time the client resumes through another node with no gap and no duplicate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { HeraldClient } from '../index.js';
import { metric, restPublish, sleep, startCluster, waitFor } from './harness.mjs';

const TOPIC = 'cluster.orders';

/** The node the one subscriber is connected to: the one whose own herald_connections is 1. */
async function subscriberNode(nodes) {
  for (const node of nodes) {
    if (node.child.exitCode !== null || node.child.signalCode !== null) continue;
    try {
      if ((await metric(node.base, 'herald_connections')) >= 1) return node;
    } catch {
      // draining or gone
    }
  }
  return undefined;
}

test('cluster: the client\'s node killed, then another drained: resumed each time, no gap', { timeout: 90_000 }, async (t) => {
  const cluster = await startCluster(3, { RING_BUFFER_SIZE: '5000', DRAIN_DURATION_SECS: '1', HEARTBEAT_INTERVAL_SECS: '1' });
  const events = [];
  const gaps = [];
  const states = [];
  const client = new HeraldClient(cluster.ws, { WebSocket, heartbeatInterval: 1000 });
  client.on('state', (state, detail) => states.push({ state, ...detail }));
  t.after(async () => {
    client.close();
    await cluster.stop();
  });
  const sub = client.subscribe(TOPIC, { onEvent: (e) => events.push(e), onGap: (g) => gaps.push(g) });
  await sub.ready;
  const [node0, node1, node2] = cluster.nodes;
  assert.equal(await subscriberNode(cluster.nodes), node0, 'nginx sends the client to node 0 first');

  // Published through node 2 over REST, so no publish is lost with a connection.
  let n = 0;
  const publishSome = async (count, target) => {
    for (const end = n + count; n < end; n++) {
      await restPublish(target.base, TOPIC, { n });
      if (n % 20 === 0) await sleep(5);
    }
  };
  await publishSome(200, node2);
  node0.kill(); // SIGKILL: no close frame, no drain
  await publishSome(300, node2);
  await waitFor(() => events.length === n, 20_000, `${n} events after the kill (have ${events.length})`);
  const failedOver = await waitFor(() => subscriberNode([node1, node2]), 5_000, 'the subscriber on node 1 or 2');

  // Now drain that node: herald closes its clients with 1012 and the client moves on.
  const other = failedOver === node1 ? node2 : node1;
  failedOver.child.kill('SIGTERM');
  await publishSome(300, other);
  await waitFor(() => events.length === n, 20_000, `${n} events after the drain (have ${events.length})`);
  await sleep(300);

  assert.equal(events.length, 800, 'no duplicates');
  assert.deepEqual(events.map((e) => e.payload.n), [...Array(800).keys()], 'in order, no gap');
  for (let i = 1; i < events.length; i++) assert.ok(events[i].seq > events[i - 1].seq, `seq increases at ${i}`);
  assert.deepEqual(gaps, []);
  const closes = states.filter((s) => s.state === 'disconnected').map((s) => s.code);
  assert.ok(closes.includes(1012), `a drain close 1012 among ${JSON.stringify(closes)}`);
  assert.equal((await subscriberNode([other])) ?? null, other, 'resumed through the third node');
  console.log(`cluster: closes ${JSON.stringify(closes)}, connects ${states.filter((s) => s.state === 'connected').length}`);
});
