// Compiled by `tsc --noEmit` (tsconfig.json), never run: the README's usage must type-check
// against index.d.ts, and misuse must not (each @ts-expect-error fails the check if it compiles).
import { HeraldClient, HeraldError, type ClientState, type HeraldEvent, type GapInfo } from "../index.js";

interface Order {
  amount: number;
}

export async function usage(WebSocketImpl: typeof WebSocket): Promise<number> {
  const client = new HeraldClient("wss://host/ws", {
    token: "jwt",
    getToken: async () => "fresh-jwt",
    apiKey: "key",
    WebSocket: WebSocketImpl,
    maxQueued: 10,
  });
  const states: ClientState[] = [];
  const off = client.on("state", (s, detail) => {
    states.push(s);
    if (detail.error) console.log(detail.error.code, detail.delay, detail.code, detail.opened);
  });
  client.on("error", (e: HeraldError) => console.log(e.code, e.message));
  client.on("info", (frame) => console.log(frame.msg, frame.topic));
  const seen: HeraldEvent<Order>[] = [];
  const sub = client.subscribe<Order>("orders", {
    lastN: 5,
    onEvent: (e) => seen.push(e),
    onGap: (info: GapInfo) => console.log(info.topic, info.lastSeq, info.epoch, info.previousEpoch),
    onError: (e) => console.log(e.code),
  });
  const ack = await sub.ready;
  const resumed: number | null = sub.lastSeq;
  sub.unsubscribe();
  const { id, seq } = await client.publish("orders", { amount: 1 }, { id: "m-1" });
  off();
  client.close();
  // @ts-expect-error the state is one of four names
  const wrong: ClientState = "open";
  // @ts-expect-error publish needs a topic and a payload
  await client.publish("orders");
  // @ts-expect-error lastN is a number
  client.subscribe("x", { lastN: "5" });
  return ack.seq + seq + id.length + (resumed ?? 0) + seen.length + states.length + wrong.length;
}
