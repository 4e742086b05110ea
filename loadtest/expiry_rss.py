#!/usr/bin/env python3
"""Topic expiry and memory (issue 24): publishes one message each to 20,000 made-up topics over one
keep-alive connection, twice, and prints herald's RSS before, at the peak and after
TOPIC_IDLE_TTL_SECS (3 s here) removed them. Loopback only; stops by itself.

    cargo build --release -p herald && python3 loadtest/expiry_rss.py [path/to/herald]
"""
import http.client, json, os, subprocess, sys, time
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../target/release/herald")
env = dict(os.environ, PORT="18555", HOST="127.0.0.1", TOPIC_IDLE_TTL_SECS="3", RUST_LOG="warn")
p = subprocess.Popen([BIN], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def rss():
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1])
def topics():
    c = http.client.HTTPConnection("127.0.0.1", 18555); c.request("GET", "/health"); return json.loads(c.getresponse().read())["topics"]
time.sleep(0.5)
print("start", rss(), "KiB", topics(), "topics")
for round in range(2):
    c = http.client.HTTPConnection("127.0.0.1", 18555)
    t0 = time.time()
    for i in range(20000):
        c.request("POST", "/publish", body=json.dumps({"topic": f"user.{round}.{i}.inbox", "data": {"n": i, "pad": "x"*100}}), headers={"Content-Type": "application/json"})
        c.getresponse().read()
    print(f"round {round}: 20000 publishes in {time.time()-t0:.1f}s;", rss(), "KiB", topics(), "topics")
    for _ in range(40):
        time.sleep(0.5)
        if topics() == 0: break
    time.sleep(1)
    print(f"round {round}: after expiry", rss(), "KiB", topics(), "topics")
p.terminate(); p.wait()
