// What the client's tests start as real processes: herald (the binary of this checkout), a TCP
// proxy that cuts or freezes connections, and a cluster of herald nodes on nats-server -js behind
// nginx. Node built-ins only, so e2e/ (headless Chromium) can use it too. Every process started
// here is killed when the test process exits, whatever happened.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Children to kill if the test process ends early (a failed assertion, a timeout). */
const children = new Set();
process.on('exit', () => {
  for (const kill of children) kill();
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** HERALD_BIN, else whichever of target/release and target/debug was built last. */
export function heraldBin() {
  if (process.env.HERALD_BIN) return path.resolve(process.env.HERALD_BIN);
  const built = ['release', 'debug']
    .map((p) => path.join(ROOT, 'target', p, 'herald'))
    .filter((p) => existsSync(p))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!built.length) throw new Error('no herald binary: run `cargo build` or set HERALD_BIN');
  return built[0];
}

/** A program from PATH or the sbin directories, or an error naming the Debian package. */
export function require(program) {
  const dirs = [...(process.env.PATH || '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs) {
    const p = path.join(dir, program);
    if (dir && existsSync(p)) return p;
  }
  throw new Error(`${program} not found: apt-get install -y ${program}`);
}

/** A port below Linux's ephemeral range (32768+), free now. */
export async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const free = await new Promise((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port in 20000..32000');
}

/** Polls `check` until it returns a truthy value; throws after `ms` naming `what`. */
export async function waitFor(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Spawns a process that dies with the test process; `group` kills its whole process group. */
function track(child, group = false) {
  const kill = () => {
    try {
      if (group) process.kill(-child.pid, 'SIGKILL');
      else child.kill('SIGKILL');
    } catch {
      // already gone
    }
  };
  children.add(kill);
  child.once('exit', () => children.delete(kill));
  return kill;
}

/** SIGTERM, then SIGKILL (`kill`) if `child` has not exited within `ms`. */
async function terminate(child, ms, kill) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  let timer;
  const exited = new Promise((r) => {
    child.once('exit', r);
    timer = setTimeout(r, ms);
  });
  child.kill('SIGTERM');
  await exited;
  clearTimeout(timer);
  kill();
}

/** One herald process. `port` fixed (for a restart on the same address) or free. */
export async function startHerald(env = {}, port = undefined) {
  const bin = heraldBin();
  for (let attempt = 1; attempt <= 5; attempt++) {
    const p = port ?? (await freePort());
    const log = [];
    const child = spawn(bin, [], {
      env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(p), RUST_LOG: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const kill = track(child);
    child.stdout.on('data', (d) => log.push(String(d)));
    child.stderr.on('data', (d) => log.push(String(d)));
    const server = {
      child,
      port: p,
      base: `http://127.0.0.1:${p}`,
      ws: `ws://127.0.0.1:${p}/ws`,
      log,
      kill,
      /** SIGTERM (graceful: shutting_down, close 1001) and wait for the exit. */
      stop: () => terminate(child, 15_000, kill),
    };
    try {
      await waitReady(server.base, child, '/livez');
      return server;
    } catch (e) {
      kill();
      if (port !== undefined || attempt === 5) throw new Error(`${e.message}\n${log.join('')}`);
    }
  }
  throw new Error('unreachable');
}

async function waitReady(base, child, probe, ms = 15_000) {
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`herald exited with ${child.exitCode}`);
    try {
      return (await fetch(base + probe)).status === 200;
    } catch {
      return false;
    }
  }, ms, `${base}${probe}`);
}

/** POST /publish; the parsed answer. Throws unless 200. */
export async function restPublish(base, topic, data, headers = {}) {
  const response = await fetch(`${base}/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify({ topic, data }),
  });
  const body = await response.json();
  if (response.status !== 200) throw new Error(`publish: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

/**
 * A TCP proxy in front of `targetPort`: what the network does to a client, on demand. `cut()`
 * resets every connection through it; `freeze()` stops forwarding on the current connections
 * without closing them (a dead path that TCP does not notice); `stall()` stops reading from the
 * server, so herald's writes back up (a slow consumer) until `resume()`. `heads` holds what each
 * connection sent up to the end of its HTTP request head (the upgrade request, as a proxy's log
 * would see it).
 */
export class Proxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.pairs = new Set();
    this.accepted = 0;
    this.heads = [];
    this.server = createServer((client) => this.#pipe(client));
  }

  async listen() {
    this.port = await freePort();
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', resolve);
    });
    this.ws = `ws://127.0.0.1:${this.port}/ws`;
    return this;
  }

  #pipe(client) {
    this.accepted++;
    const upstream = connect(this.targetPort, '127.0.0.1');
    const pair = { client, upstream, frozen: false };
    this.pairs.add(pair);
    const head = this.heads.push('') - 1;
    const record = (d) => {
      const text = this.heads[head] + d.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      this.heads[head] = end < 0 ? text.slice(0, 64 * 1024) : text.slice(0, end + 4);
      if (end >= 0 || text.length >= 64 * 1024) client.off('data', record);
    };
    client.on('data', record);
    const forget = () => this.pairs.delete(pair);
    client.on('data', (d) => pair.frozen || upstream.write(d));
    upstream.on('data', (d) => pair.frozen || client.write(d));
    // Closes pass through after what was read so far (a close frame, say) has been written.
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', () => {
      forget();
      upstream.destroy();
    });
    upstream.on('close', () => {
      forget();
      client.end();
    });
    client.on('error', () => {});
    // Nothing listening behind the proxy: the client sees its connection reset, as it would.
    upstream.on('error', () => client.resetAndDestroy());
  }

  /** Resets every connection: the client sees its socket close without a close frame. */
  cut() {
    for (const { client, upstream } of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  freeze() {
    for (const pair of this.pairs) pair.frozen = true;
  }

  stall() {
    for (const pair of this.pairs) pair.upstream.pause();
  }

  resume() {
    for (const pair of this.pairs) pair.upstream.resume();
  }

  async close() {
    this.cut();
    await new Promise((r) => this.server.close(r));
  }
}

/**
 * nats-server -js, `size` herald nodes with NATS_URL, and nginx in front (deploy/nginx.conf's
 * WebSocket settings). With `backup`, every node but the first is an nginx backup, so a client
 * lands on node 0 and fails over to the others only when it is gone.
 */
export async function startCluster(size, env = {}, { backup = true } = {}) {
  const natsBin = require('nats-server');
  const nginxBin = require('nginx');
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-js-cluster-'));
  const natsPort = await freePort();
  const nats = spawn(natsBin, ['-js', '-a', '127.0.0.1', '-p', String(natsPort), '-sd', path.join(dir, 'js')], {
    stdio: 'ignore',
  });
  const killNats = track(nats);
  const nodes = [];
  let nginx = null;
  let killNginx = null;
  const cluster = {
    dir,
    nodes,
    async stop() {
      // nginx's master stops and reaps its worker on SIGTERM; killing the group is the fallback.
      if (nginx) await terminate(nginx, 3_000, killNginx);
      await Promise.all(nodes.map((n) => n.stop()));
      killNats();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(() => tcpOpen(natsPort), 15_000, 'nats-server');
    for (let i = 0; i < size; i++) {
      nodes.push(
        await startHerald({
          NATS_URL: `nats://127.0.0.1:${natsPort}`,
          NODE_ID: `js-node${i}`,
          SHUTDOWN_TIMEOUT_SECS: '2',
          ...env,
        }),
      );
    }
    for (const node of nodes) await waitReady(node.base, node.child, '/readyz');
    cluster.port = await freePort();
    const servers = nodes
      .map((n, i) => `    server 127.0.0.1:${n.port} max_fails=1 fail_timeout=1s${backup && i > 0 ? ' backup' : ''};`)
      .join('\n');
    const conf = path.join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream herald {
${servers}
  }
  server {
    listen 127.0.0.1:${cluster.port};
    location / {
      proxy_pass http://herald;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 3600s;
      proxy_connect_timeout 2s;
      proxy_buffering off;
      proxy_next_upstream error timeout http_502 http_503;
    }
  }
}
`,
    );
    // Its own process group: killing the master alone would leave its worker listening.
    nginx = spawn(nginxBin, ['-p', dir, '-c', conf, '-e', path.join(dir, 'nginx-error.log')], {
      stdio: 'ignore',
      detached: true,
    });
    killNginx = track(nginx, true);
    await waitFor(() => tcpOpen(cluster.port), 15_000, 'nginx');
    cluster.ws = `ws://127.0.0.1:${cluster.port}/ws`;
    return cluster;
  } catch (e) {
    await cluster.stop();
    throw e;
  }
}

function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The value of one unlabelled metric from herald's /metrics. */
export async function metric(base, name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}
