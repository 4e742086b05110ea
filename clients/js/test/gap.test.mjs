// A cluster node's gap notice (`{"type":"info","msg":"gap","topic","from_seq","to_seq"}`, PROTOCOL.md
// §8) as the client meets it: a scripted WebSocket server on a real socket sends the frames the
// Rust cluster tests show a node sending after its backplane retention was exceeded. The client
// reports it through onGap, delivers what follows, and a later resume asks from the gap's end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket, WebSocketServer } from 'ws';
import { HeraldClient } from '../index.js';
import { waitFor } from './harness.mjs';

test('a server gap notice reaches onGap and the next resume starts after the gap', { timeout: 20_000 }, async (t) => {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  const subscribes = [];
  let connections = 0;
  server.on('connection', (socket) => {
    connections += 1;
    const first = connections === 1;
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type !== 'subscribe') return;
      subscribes.push(frame);
      const event = (seq) => JSON.stringify({
        type: 'event', topic: 'room', seq, ts: '2026-12-05T00:00:00.000Z',
        message: { id: `m${seq}`, payload: { seq } },
      });
      socket.send(JSON.stringify({
        type: 'ack', topic: 'room', status: 'ok', request_id: frame.request_id,
        seq: first ? 0 : 10, epoch: 'e1', ...(first ? {} : { recovered: true }),
      }));
      if (!first) return;
      socket.send(event(1));
      socket.send(event(2));
      socket.send(JSON.stringify({ type: 'info', msg: 'gap', topic: 'room', from_seq: 3, to_seq: 9 }));
      socket.send(event(10));
      setTimeout(() => socket.terminate(), 100);
    });
  });
  const url = `ws://127.0.0.1:${server.address().port}/ws`;
  const client = new HeraldClient(url, { WebSocket, maxDelay: 200 });
  t.after(() => {
    client.close();
    server.close();
  });
  const events = [];
  const gaps = [];
  client.subscribe('room', { onEvent: (e) => events.push(e.seq), onGap: (g) => gaps.push(g) });
  await waitFor(() => subscribes.length === 2, 10_000, 'the resume after the connection dropped');
  assert.deepEqual(events, [1, 2, 10]);
  assert.deepEqual(gaps, [{ topic: 'room', lastSeq: 2, epoch: 'e1', previousEpoch: 'e1', fromSeq: 3, toSeq: 9 }]);
  assert.equal(subscribes[1].since_seq, 10, 'resumed after what was delivered');
  assert.equal(subscribes[1].epoch, 'e1');
});
