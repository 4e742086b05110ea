"""permessage-deflate with Python `websockets` (run by tests/ws_deflate.rs against a live herald).

A client that offers deflate (the library's default) and one that does not subscribe to one topic;
the compressing client publishes (its frames compressed by the library) a payload above
COMPRESS_MIN_BYTES and a small one; both receive the same events; a late compressing client gets
them replayed. Prints "ok" on success; any mismatch raises.
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect

URL = sys.argv[1]
TOPIC = "py-deflate"


def payload(n):
    return {
        "items": [
            {
                "id": i,
                "city": ["Lisbon", "Nairobi", "Osaka"][i % 3],
                "text": f"reading {i}: light rain easing by the afternoon, winds from the west",
            }
            for i in range(n)
        ]
    }


async def next_json(ws):
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame.get("type") != "info":
            return frame


async def main():
    big, small = payload(40), {"n": 1}
    async with connect(URL) as deflating, connect(URL, compression=None) as plain:
        extensions = deflating.response.headers.get("Sec-WebSocket-Extensions", "")
        assert extensions.startswith("permessage-deflate"), extensions
        assert "server_no_context_takeover" in extensions, extensions
        assert "Sec-WebSocket-Extensions" not in plain.response.headers
        for ws in (deflating, plain):
            await ws.send(json.dumps({"type": "subscribe", "topic": TOPIC}))
            assert (await next_json(ws))["type"] == "ack"
        for i, p in enumerate((big, small)):
            await deflating.send(
                json.dumps({"type": "publish", "topic": TOPIC, "message": {"payload": p}, "request_id": f"r{i}"})
            )
        seen = {"deflating": [], "plain": []}
        for name, ws, count in (("deflating", deflating, 4), ("plain", plain, 2)):
            for _ in range(count):
                seen[name].append(await next_json(ws))
        events = [f for f in seen["deflating"] if f["type"] == "event"]
        acks = [f["request_id"] for f in seen["deflating"] if f["type"] == "ack"]
        assert acks == ["r0", "r1"], seen["deflating"]
        assert [e["message"]["payload"] for e in events] == [big, small], events
        assert [e["message"]["payload"] for e in seen["plain"]] == [big, small], seen["plain"]
        assert [e["seq"] for e in events] == [1, 2]
    async with connect(URL) as late:
        await late.send(json.dumps({"type": "subscribe", "topic": TOPIC, "last_n": 2}))
        assert (await next_json(late))["type"] == "ack"
        replayed = [await next_json(late) for _ in range(2)]
        assert [e["message"]["payload"] for e in replayed] == [big, small], replayed
    print("ok")


asyncio.run(main())
