// herald's JavaScript client: one WebSocket that reconnects by itself (exponential backoff, full
// jitter), resumes every subscription from the last `seq` it delivered (`since_seq` + `epoch`, so
// nothing is delivered twice and a gap is reported, never hidden), watches the server's heartbeat,
// and queues publishes while it is down. The wire contract is PROTOCOL.md at the repository root.
//
// Plain ES module, no build step, no dependencies: a browser imports this file as it is (the
// dashboard does, from /dashboard/herald-client.js), Node >= 22 has a global WebSocket, and
// Node 20 passes one in: `new HeraldClient(url, { WebSocket: (await import("ws")).WebSocket })`.

/** Default options; every one can be overridden in the constructor. */
const DEFAULTS = {
  minDelay: 250, // first reconnect waits up to this long (ms) ...
  maxDelay: 20_000, // ... doubling per failed attempt up to this ceiling
  heartbeatInterval: 20_000, // the server's HEARTBEAT_INTERVAL_SECS, in ms; 0 turns the watchdog off
  connectTimeout: 10_000, // an opening handshake that takes longer is abandoned and retried
  timeout: 10_000, // a sent publish (or auth) without an answer this long rejects with TIMEOUT
  maxQueued: 1_000, // publishes waiting for a connection; more reject with QUEUE_FULL
};

/** Silence for this many heartbeat intervals means the connection is dead, whatever TCP thinks. */
const WATCHDOG_FACTOR = 2.5;

/** Errors that retrying with the same credentials cannot fix: the client closes instead. */
const FATAL = new Set(['UNAUTHORIZED', 'FORBIDDEN', 'TOKEN_EXPIRED']);

/** An error from herald (its `code` is the wire code) or from the client (codes in index.d.ts). */
export class HeraldError extends Error {
  constructor(code, message, extra) {
    super(message || code);
    this.name = 'HeraldError';
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

/** The server's error frame as a HeraldError. */
function fromFrame(frame) {
  const e = frame.error && typeof frame.error === 'object' ? frame.error : {};
  return new HeraldError(String(e.code || 'INTERNAL'), String(e.message || ''), {
    requestId: frame.request_id,
  });
}

const decoder = typeof TextDecoder === 'function' ? new TextDecoder() : null;
const noop = () => {};

/** A subscription as the application sees it; the client keeps the state behind it. */
export class Subscription {
  #rec;
  #unsubscribe;

  constructor(rec, unsubscribe) {
    this.#rec = rec;
    this.#unsubscribe = unsubscribe;
    /** Resolves with the first ack `{seq, epoch, recovered}`; rejects if the server refuses. */
    this.ready = rec.ready;
  }

  /** The topic name. */
  get topic() { return this.#rec.topic; }
  /** "subscribing" (waiting for the ack of this connection) | "subscribed" | "unsubscribed". */
  get state() { return this.#rec.state; }
  /** The last `seq` delivered (or the position the subscription took effect at). */
  get lastSeq() { return this.#rec.delivered ?? this.#rec.floor; }
  /** The topic epoch the `seq` numbers belong to; undefined before the first ack. */
  get epoch() { return this.#rec.epoch; }

  /** Stops delivery now and tells the server when connected. */
  unsubscribe() { this.#unsubscribe(this.#rec); }
}

export class HeraldClient {
  #url;
  #opts;
  #WS;
  #ws = null; // the current socket, null while disconnected
  #live = false; // open (and authenticated when a token is used): frames may be sent
  #opened = false; // the current socket reached `open`
  #state = 'connecting';
  #closed = false;
  #attempt = 0; // failed attempts since the last healthy connection, drives the backoff
  #timer = null; // reconnect delay
  #watchdog = null; // connect timeout before open, heartbeat watchdog after
  #heard = 0; // when the current socket last received anything (Date.now())
  #subs = new Map(); // topic -> record
  #pending = new Map(); // request_id -> {ok, fail, timer}
  #queue = []; // publishes waiting for a connection
  #nextId = 0;
  #listeners = new Map();
  #token;
  #freshToken = false; // the last token was refused: ask getToken before the next connect
  #tokenIsFresh = false; // the token came from getToken for this attempt and is not yet accepted
  #refreshing = false;
  #closeError = null; // the error frame or refused upgrade that explains the coming close

  /**
   * @param {string} url ws:// or wss:// URL of herald's /ws
   * @param {object} [options] see index.d.ts
   */
  constructor(url, options = {}) {
    this.#opts = { ...DEFAULTS, ...options };
    this.#WS = options.WebSocket || globalThis.WebSocket;
    if (typeof this.#WS !== 'function') {
      throw new TypeError('no WebSocket: pass one in the options, e.g. { WebSocket } from "ws"');
    }
    const u = new URL(url);
    if (options.apiKey) u.searchParams.set('api_key', options.apiKey);
    this.#url = u.toString();
    this.#token = options.token;
    // Connect after the caller's synchronous code, so handlers attached right after `new` see
    // the first state change.
    queueMicrotask(() => this.#connect());
  }

  /** "connecting" | "connected" | "disconnected" | "closed". */
  get state() { return this.#state; }

  /** Adds a listener for "state", "error" or "info"; returns a function that removes it. */
  on(event, fn) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  /** Removes a listener added with `on`. */
  off(event, fn) { this.#listeners.get(event)?.delete(fn); }

  /** Subscribes to `topic`; delivery resumes by itself across reconnects. */
  subscribe(topic, options = {}) {
    if (this.#closed) throw new HeraldError('CLOSED', 'the client is closed');
    if (this.#subs.has(topic)) {
      throw new HeraldError('ALREADY_SUBSCRIBED', `already subscribed to ${topic}`);
    }
    const rec = {
      topic,
      opts: options,
      state: 'subscribing',
      epoch: undefined,
      delivered: null, // highest seq delivered in `epoch`: nothing at or below it is delivered again
      floor: null, // where to resume from when nothing was delivered yet
      live: false, // acked on the current socket
      settled: false, // `ready` resolved or rejected
    };
    rec.ready = new Promise((resolve, reject) => {
      rec.resolve = resolve;
      rec.reject = reject;
    });
    // Marked handled: an app that never awaits `ready` must not crash Node on a refusal.
    rec.ready.catch(noop);
    this.#subs.set(topic, rec);
    if (this.#live) this.#sendSubscribe(rec);
    return new Subscription(rec, (r) => this.#unsubscribe(r));
  }

  /** Publishes; resolves with the server's `{id, seq}`. Queued while disconnected. */
  publish(topic, payload, options = {}) {
    if (this.#closed) return Promise.reject(new HeraldError('CLOSED', 'the client is closed'));
    const message = options.id === undefined ? { payload } : { id: options.id, payload };
    return new Promise((resolve, reject) => {
      const item = { frame: { type: 'publish', topic, message }, resolve, reject, timeout: options.timeout };
      if (this.#live) this.#sendPublish(item);
      else if (this.#queue.length >= this.#opts.maxQueued) {
        reject(new HeraldError('QUEUE_FULL', `${this.#queue.length} publishes already wait for a connection`));
      } else this.#queue.push(item);
    });
  }

  /** Closes for good: no more reconnects; everything waiting rejects with CLOSED. */
  close() { this.#shutdown(null); }

  // ---- connection -----------------------------------------------------------------------------

  async #connect() {
    this.#timer = null;
    if (this.#closed) return;
    this.#setState('connecting');
    const { getToken } = this.#opts;
    if (getToken && (this.#token === undefined || this.#freshToken)) {
      let token;
      try {
        token = await getToken();
      } catch (e) {
        this.#retry({ error: new HeraldError('TOKEN_UNAVAILABLE', `getToken failed: ${e?.message ?? e}`) });
        return;
      }
      if (this.#closed) return;
      if (!token) {
        this.#shutdown(new HeraldError('UNAUTHORIZED', 'getToken returned no token'));
        return;
      }
      this.#token = token;
      this.#freshToken = false;
      this.#tokenIsFresh = true;
    }
    let ws;
    try {
      ws = new this.#WS(this.#url);
    } catch (e) {
      this.#retry({ error: new HeraldError('CONNECT_FAILED', String(e?.message ?? e)) });
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.#ws = ws;
    this.#opened = false;
    this.#closeError = null;
    this.#arm(this.#opts.connectTimeout, 'CONNECT_TIMEOUT', false);
    ws.onopen = () => ws === this.#ws && this.#onOpen();
    ws.onmessage = (ev) => ws === this.#ws && this.#onMessage(ev.data);
    ws.onerror = (ev) => ws === this.#ws && this.#onSocketError(ev);
    ws.onclose = (ev) => ws === this.#ws && this.#lost({ code: ev.code, reason: ev.reason });
  }

  async #onOpen() {
    this.#opened = true;
    this.#heard = Date.now();
    this.#arm(this.#opts.heartbeatInterval * WATCHDOG_FACTOR, 'HEARTBEAT_TIMEOUT', true);
    if (this.#token) {
      // In-band, so the token is in no URL (and no proxy log), and before any subscribe, so
      // every resumed subscription is checked against this identity.
      const ws = this.#ws;
      try {
        await this.#auth(this.#token);
      } catch (e) {
        if (ws === this.#ws) this.#lost({ error: e });
        return;
      }
      if (ws !== this.#ws) return;
      this.#tokenIsFresh = false;
    }
    this.#live = true;
    for (const rec of this.#subs.values()) this.#sendSubscribe(rec);
    const queued = this.#queue.splice(0);
    for (const item of queued) this.#sendPublish(item);
    // Announced after the resubscribes went out: a listener that subscribes now sends once.
    this.#setState('connected');
    this.#settle();
  }

  /** The connection is gone (closed, dead, refused): clean up and retry, or close for good. */
  #lost({ code, reason, error }) {
    const err = error || this.#closeError;
    const opened = this.#opened;
    this.#drop();
    if (err && FATAL.has(err.code)) {
      // Refused credentials: no retry storm. The one retry that can help is a token straight
      // from getToken when the refused one was not (it expired, or outlived a long outage).
      if (!this.#opts.getToken || this.#tokenIsFresh) return this.#shutdown(err);
      this.#freshToken = true;
    }
    this.#retry({ code, reason, error: err, opened });
  }

  #retry(detail) {
    if (this.#closed) return;
    const ceiling = Math.min(this.#opts.maxDelay, this.#opts.minDelay * 2 ** this.#attempt);
    const delay = Math.round(Math.random() * ceiling); // full jitter
    this.#attempt = Math.min(this.#attempt + 1, 30);
    this.#setState('disconnected', { ...detail, delay });
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  /** Forgets the current socket; requests in flight on it reject with DISCONNECTED. */
  #drop() {
    clearTimeout(this.#watchdog);
    this.#watchdog = null;
    const ws = this.#ws;
    this.#ws = null;
    this.#live = false;
    this.#opened = false;
    if (ws) {
      // Handlers stay set (to no-ops): the `ws` package throws on an error event nobody hears.
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = noop;
      try {
        if (typeof ws.terminate === 'function') ws.terminate();
        else ws.close();
      } catch {
        // already closed
      }
    }
    for (const rec of this.#subs.values()) {
      rec.live = false;
      rec.state = 'subscribing';
    }
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      p.fail(new HeraldError('DISCONNECTED', 'the connection was lost before the answer came'));
    }
  }

  #shutdown(error) {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#drop();
    const err = error || new HeraldError('CLOSED', 'the client is closed');
    for (const item of this.#queue.splice(0)) item.reject(err);
    for (const rec of this.#subs.values()) {
      rec.state = 'unsubscribed';
      if (!rec.settled) rec.reject(err);
    }
    this.#subs.clear();
    this.#setState('closed', error ? { error } : {});
  }

  /**
   * Starts the timer that declares the socket dead after `ms` (the connect timeout, then the
   * heartbeat watchdog). With `sliding`, anything heard in the meantime moves the deadline: one
   * timer per deadline rather than one per frame.
   */
  #arm(ms, code, sliding) {
    clearTimeout(this.#watchdog);
    this.#watchdog = null;
    if (!(ms > 0)) return;
    const check = () => {
      const idle = sliding ? Date.now() - this.#heard : ms;
      if (idle >= ms) this.#lost({ error: new HeraldError(code, `nothing heard for ${idle} ms`) });
      else this.#watchdog = setTimeout(check, ms - idle);
    };
    this.#watchdog = setTimeout(check, ms);
  }

  /** Once connected and every subscription acked, the next failure starts the backoff afresh. */
  #settle() {
    if (!this.#live) return;
    for (const rec of this.#subs.values()) if (!rec.live) return;
    this.#attempt = 0;
  }

  #onSocketError(ev) {
    // Browsers say nothing about a refused upgrade; the `ws` package names the status.
    const text = String(ev?.message ?? ev?.error?.message ?? '');
    const status = /Unexpected server response: (\d{3})/.exec(text)?.[1];
    if (status === '401') this.#closeError = new HeraldError('UNAUTHORIZED', `upgrade refused: HTTP ${status}`, { status: 401 });
    if (status === '403') this.#closeError = new HeraldError('FORBIDDEN', `upgrade refused: HTTP ${status}`, { status: 403 });
  }

  // ---- frames ---------------------------------------------------------------------------------

  #send(frame) { this.#ws.send(JSON.stringify(frame)); }

  /**
   * Sends `frame` with a fresh request_id; `ok` gets its ack, `fail` its error. Called back
   * synchronously, not through a promise: the events that follow a subscribe ack in the same
   * read must find the subscription already live.
   */
  #request(frame, ok, fail, timeout = this.#opts.timeout) {
    const id = `h${++this.#nextId}`;
    const entry = { ok, fail, timer: null };
    if (timeout > 0) {
      entry.timer = setTimeout(() => {
        this.#pending.delete(id);
        fail(new HeraldError('TIMEOUT', `no answer within ${timeout} ms`));
      }, timeout);
      entry.ok = (v) => { clearTimeout(entry.timer); ok(v); };
      entry.fail = (e) => { clearTimeout(entry.timer); fail(e); };
    }
    this.#pending.set(id, entry);
    this.#send({ ...frame, request_id: id });
  }

  #auth(token) {
    return new Promise((resolve, reject) => this.#request({ type: 'auth', token }, resolve, reject));
  }

  #sendPublish(item) {
    const ok = (ack) => item.resolve({ id: ack.id, seq: ack.seq });
    this.#request(item.frame, ok, item.reject, item.timeout ?? this.#opts.timeout);
  }

  #sendSubscribe(rec) {
    const frame = { type: 'subscribe', topic: rec.topic };
    const { lastN, sinceSeq, epoch } = rec.opts;
    if (rec.epoch !== undefined) {
      frame.since_seq = rec.delivered ?? rec.floor;
      frame.epoch = rec.epoch;
    } else if (sinceSeq !== undefined) {
      frame.since_seq = sinceSeq;
      if (epoch !== undefined) frame.epoch = epoch;
    } else if (lastN) frame.last_n = lastN;
    const refused = (err) => {
      if (err.code === 'DISCONNECTED' || this.#subs.get(rec.topic) !== rec) return;
      this.#subs.delete(rec.topic);
      rec.state = 'unsubscribed';
      rec.settled = true;
      rec.reject(err);
      this.#callback(rec.opts.onError, err);
    };
    this.#request(frame, (ack) => this.#subscribed(rec, frame, ack), refused, 0);
  }

  #subscribed(rec, frame, ack) {
    if (this.#subs.get(rec.topic) !== rec) return;
    const seq = Number(ack.seq) || 0;
    const first = rec.epoch === undefined;
    const gap = frame.since_seq !== undefined && ack.recovered === false;
    const previousEpoch = first ? frame.epoch : rec.epoch;
    const lastSeq = first ? frame.since_seq : rec.delivered ?? rec.floor;
    if (gap && ack.epoch !== previousEpoch) {
      // A new numbering: nothing of the old epoch can be resumed, live events follow the ack.
      rec.delivered = null;
      rec.floor = seq;
    } else if (first) {
      // last_n replays events after `seq - lastN` (exactly so on one node): resuming from there
      // before any of them arrived asks for the same window again.
      rec.floor = frame.since_seq ?? (frame.last_n ? Math.max(0, seq - frame.last_n) : seq);
    }
    rec.epoch = ack.epoch;
    rec.live = true;
    rec.state = 'subscribed';
    if (!rec.settled) {
      rec.settled = true;
      rec.resolve({ seq, epoch: ack.epoch, recovered: ack.recovered });
    }
    if (gap) {
      this.#callback(rec.opts.onGap, { topic: rec.topic, lastSeq, epoch: ack.epoch, previousEpoch });
    }
    this.#settle();
  }

  #unsubscribe(rec) {
    if (this.#subs.get(rec.topic) !== rec) return;
    this.#subs.delete(rec.topic);
    rec.state = 'unsubscribed';
    if (!rec.settled) {
      rec.settled = true;
      rec.reject(new HeraldError('UNSUBSCRIBED', 'unsubscribed before the server answered'));
    }
    if (this.#live) this.#send({ type: 'unsubscribe', topic: rec.topic });
    this.#settle();
  }

  #onMessage(data) {
    this.#heard = Date.now();
    let frame;
    try {
      frame = JSON.parse(typeof data === 'string' ? data : decoder.decode(data));
    } catch {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    const entry = frame.request_id == null ? undefined : this.#pending.get(frame.request_id);
    if (entry && (frame.type === 'ack' || frame.type === 'error')) {
      this.#pending.delete(frame.request_id);
      if (frame.type === 'ack') entry.ok(frame);
      else entry.fail(fromFrame(frame));
      return;
    }
    switch (frame.type) {
      case 'event': return this.#onEvent(frame);
      case 'error': return this.#onError(fromFrame(frame));
      case 'info': return this.#onInfo(frame);
      default: return undefined;
    }
  }

  #onEvent(frame) {
    const rec = this.#subs.get(frame.topic);
    // Events reach a subscription only after its ack on this socket (the server sends the ack
    // first), so leftovers of an earlier subscription to the same topic never leak in.
    if (!rec || !rec.live) return;
    const seq = Number(frame.seq);
    if (Number.isFinite(seq)) {
      if (rec.delivered !== null && seq <= rec.delivered) return; // never twice
      rec.delivered = seq;
    }
    const m = frame.message && typeof frame.message === 'object' ? frame.message : {};
    this.#callback(rec.opts.onEvent, { topic: frame.topic, id: m.id, payload: m.payload, seq, ts: frame.ts });
  }

  /** An error frame that answers no pending request. One that answers none at all may explain the close that follows. */
  #onError(err) {
    const unprompted = err.requestId == null;
    if (unprompted && (err.code === 'SLOW_CONSUMER' || FATAL.has(err.code))) this.#closeError = err;
    this.#emit('error', err);
  }

  #onInfo(frame) {
    if (frame.msg === 'ping') return;
    if (frame.msg === 'token_expiring') this.#refreshToken();
    if (frame.msg === 'gap') this.#onGapNotice(frame);
    if (frame.msg === 'topic_deleted') {
      const rec = this.#subs.get(frame.topic);
      if (rec) {
        // The server dropped the subscription; subscribing again would re-create the topic.
        this.#subs.delete(frame.topic);
        rec.state = 'unsubscribed';
        const err = new HeraldError('TOPIC_DELETED', `topic ${frame.topic} was deleted`);
        if (!rec.settled) {
          rec.settled = true;
          rec.reject(err);
        }
        this.#callback(rec.opts.onError, err);
      }
    }
    this.#emit('info', frame);
  }

  /** Cluster mode: the server's node lost events of a subscribed topic (backplane retention
   * exceeded during a partition). Nothing in the range can come any more: a later resume asks
   * from its end, so the same loss is not reported twice. */
  #onGapNotice(frame) {
    const rec = this.#subs.get(frame.topic);
    if (!rec || rec.epoch === undefined) return;
    const fromSeq = Number(frame.from_seq);
    const toSeq = Number(frame.to_seq);
    const lastSeq = rec.delivered ?? rec.floor;
    if (rec.delivered === null || toSeq > rec.delivered) rec.delivered = toSeq;
    this.#callback(rec.opts.onGap, {
      topic: rec.topic, lastSeq, epoch: rec.epoch, previousEpoch: rec.epoch, fromSeq, toSeq,
    });
  }

  async #refreshToken() {
    const { getToken } = this.#opts;
    if (!getToken || this.#refreshing) return;
    this.#refreshing = true;
    try {
      const token = await getToken();
      if (!token) throw new HeraldError('UNAUTHORIZED', 'getToken returned no token');
      if (this.#live) await this.#auth(token);
      // Kept only once the server took it: a refused one (another `sub`, a bad signature) is
      // never presented again, not even after a network blip before the old one expires.
      this.#token = token;
    } catch (e) {
      // The server closes with TOKEN_EXPIRED at expiry; the next connect, then or sooner, asks
      // getToken rather than presenting the token that is about to expire.
      this.#freshToken = true;
      this.#emit('error', e instanceof HeraldError ? e : new HeraldError('TOKEN_UNAVAILABLE', String(e?.message ?? e)));
    } finally {
      this.#refreshing = false;
    }
  }

  // ---- listeners ------------------------------------------------------------------------------

  #setState(state, detail = {}) {
    if (state === this.#state && state !== 'disconnected') return;
    this.#state = state;
    for (const fn of [...(this.#listeners.get('state') || [])]) this.#callback(fn, state, detail);
  }

  #emit(event, value) {
    for (const fn of [...(this.#listeners.get(event) || [])]) this.#callback(fn, value);
  }

  /** Runs application code; its exceptions surface (asynchronously) without breaking the client. */
  #callback(fn, ...args) {
    if (typeof fn !== 'function') return;
    try {
      fn(...args);
    } catch (e) {
      setTimeout(() => { throw e; });
    }
  }
}
