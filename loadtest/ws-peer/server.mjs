// A minimal pub/sub server speaking the part of herald's WebSocket protocol herald-load uses
// (subscribe → ack, publish → ack + one event frame per subscriber), on the `ws` package with
// permessage-deflate compressing every message once PER CONNECTION, as ws-based servers
// (Socket.IO, many hand-rolled Node servers) do. loadtest/deflate.sh runs it next to herald to
// show what compressing once saves. Each message is compressed alone (no context takeover), the
// same RFC 7692 settings herald answers with, so the bytes on the wire are comparable.
//
//   node loadtest/ws-peer/server.mjs PORT [COMPRESS_MIN_BYTES]
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? 8090);
const threshold = Number(process.argv[3] ?? 256);
const topics = new Map(); // topic -> Set of sockets
let seq = 0;

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  path: '/ws',
  perMessageDeflate: {
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    threshold,
    // ws's default of 10 concurrent zlib jobs; compression still runs once per connection.
    concurrencyLimit: 10,
  },
});

wss.on('connection', (ws) => {
  const mine = new Set();
  ws.on('message', (data) => {
    let frame;
    try {
      frame = JSON.parse(data.toString());
    } catch {
      ws.send('{"type":"error","code":"BAD_REQUEST","msg":"invalid JSON"}');
      return;
    }
    if (frame.type === 'subscribe' && typeof frame.topic === 'string') {
      if (!topics.has(frame.topic)) topics.set(frame.topic, new Set());
      topics.get(frame.topic).add(ws);
      mine.add(frame.topic);
      ws.send(JSON.stringify({ type: 'ack', topic: frame.topic, status: 'ok' }));
    } else if (frame.type === 'publish' && typeof frame.topic === 'string') {
      seq += 1;
      const id = `m${seq}`;
      const event = JSON.stringify({
        type: 'event',
        topic: frame.topic,
        message: { id, payload: frame.message?.payload },
        ts: new Date().toISOString(),
        seq,
      });
      for (const sub of topics.get(frame.topic) ?? []) sub.send(event);
      ws.send(JSON.stringify({ type: 'ack', id, status: 'ok' }));
    } else {
      ws.send('{"type":"error","code":"BAD_REQUEST","msg":"unsupported frame"}');
    }
  });
  ws.on('close', () => {
    for (const topic of mine) topics.get(topic)?.delete(ws);
  });
});

wss.on('listening', () => console.log(`ws-peer listening on 127.0.0.1:${port}`));
