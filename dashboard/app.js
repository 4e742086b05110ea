// herald dashboard: polls GET /stats, draws rates on canvases, tails a topic over the WebSocket
// and publishes with POST /publish. Public API only; the key lives in sessionStorage and goes out
// as X-API-Key (REST) or api_key (WebSocket, whose handshake cannot carry headers from a page).
// Everything the server sends reaches the DOM through textContent, never as markup.
// The live tail is herald's JavaScript client (clients/js/index.js, served beside this file), so
// it reconnects and resumes as any application using that client does.
import { HeraldClient } from './herald-client.js';

(() => {
  const KEY_STORAGE = 'herald.apiKey';
  const POLL_MS = 1000;
  const POINTS = 120;
  const TAIL_MAX = 200;

  const $ = (id) => document.getElementById(id);

  // ---- key and URLs --------------------------------------------------------------------------

  function apiKey() {
    return sessionStorage.getItem(KEY_STORAGE) || '';
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra);
    const key = apiKey();
    if (key) headers['X-API-Key'] = key;
    return headers;
  }

  // Relative to the page, so the dashboard keeps working behind a proxy that adds a path prefix.
  function apiUrl(path) {
    return new URL(path, document.baseURI).toString();
  }

  // The client adds the key as api_key.
  function wsUrl() {
    const url = new URL('ws', document.baseURI);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.toString();
  }

  // ---- small DOM helpers ---------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function setText(id, text, className) {
    const node = $(id);
    node.textContent = String(text);
    if (className !== undefined) node.className = className;
  }

  function formatRate(value) {
    if (!Number.isFinite(value)) return '–';
    return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1);
  }

  function formatUptime(secs) {
    if (!Number.isFinite(secs)) return '–';
    const h = Math.floor(secs / 3600);
    const m = Math.floor((secs % 3600) / 60);
    const s = Math.floor(secs % 60);
    const pad = (n) => String(n).padStart(2, '0');
    return h > 0 ? `${h}h ${pad(m)}m ${pad(s)}s` : `${m}m ${pad(s)}s`;
  }

  function errorText(body, status) {
    const err = body && body.error;
    if (err && typeof err.code === 'string') return `${err.code}: ${err.message}`;
    return `HTTP ${status}`;
  }

  function setServerStatus(state, text) {
    const badge = $('server-status');
    badge.dataset.state = state;
    badge.textContent = text;
  }

  // ---- charts --------------------------------------------------------------------------------

  // A line chart of the last POINTS samples, drawn by hand: nothing to vendor, nothing to fetch.
  class Chart {
    constructor(canvas, color) {
      this.canvas = canvas;
      this.color = color;
      this.values = [];
    }

    push(value) {
      this.values.push(Math.max(0, value));
      if (this.values.length > POINTS) this.values.shift();
      this.draw();
    }

    static niceCeiling(value) {
      if (value <= 1) return 1;
      const magnitude = 10 ** Math.floor(Math.log10(value));
      for (const step of [1, 2, 2.5, 5, 10]) {
        if (step * magnitude >= value) return step * magnitude;
      }
      return 10 * magnitude;
    }

    draw() {
      const canvas = this.canvas;
      const dpr = window.devicePixelRatio || 1;
      const width = canvas.clientWidth || canvas.width;
      const height = canvas.clientHeight || canvas.height;
      if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
        canvas.width = Math.round(width * dpr);
        canvas.height = Math.round(height * dpr);
      }
      const ctx = canvas.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, height);
      const left = 48;
      const right = 8;
      const top = 8;
      const bottom = 18;
      const plotW = width - left - right;
      const plotH = height - top - bottom;
      const max = Chart.niceCeiling(Math.max(0, ...this.values));

      ctx.font = '11px system-ui, sans-serif';
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      ctx.lineWidth = 1;
      for (let i = 0; i <= 4; i++) {
        const y = top + plotH - (plotH * i) / 4;
        ctx.strokeStyle = '#e6e8ee';
        ctx.beginPath();
        ctx.moveTo(left, Math.round(y) + 0.5);
        ctx.lineTo(left + plotW, Math.round(y) + 0.5);
        ctx.stroke();
        ctx.fillStyle = '#6b7385';
        ctx.fillText(formatRate((max * i) / 4), left - 6, y);
      }
      ctx.textAlign = 'left';
      ctx.textBaseline = 'alphabetic';
      ctx.fillText(`-${POINTS}s`, left, height - 4);
      ctx.textAlign = 'right';
      ctx.fillText('now', left + plotW, height - 4);

      if (this.values.length < 2) return;
      const step = plotW / (POINTS - 1);
      const x0 = left + plotW - step * (this.values.length - 1);
      const yOf = (v) => top + plotH - (plotH * v) / max;
      ctx.beginPath();
      this.values.forEach((v, i) => {
        const x = x0 + i * step;
        if (i === 0) ctx.moveTo(x, yOf(v));
        else ctx.lineTo(x, yOf(v));
      });
      ctx.strokeStyle = this.color;
      ctx.lineWidth = 2;
      ctx.stroke();
      ctx.lineTo(x0 + (this.values.length - 1) * step, top + plotH);
      ctx.lineTo(x0, top + plotH);
      ctx.closePath();
      ctx.globalAlpha = 0.12;
      ctx.fillStyle = this.color;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
  }

  const publishChart = new Chart($('chart-publish'), '#2f6fde');
  const deliveryChart = new Chart($('chart-delivery'), '#13a37f');

  // ---- stats polling -------------------------------------------------------------------------

  let previous = null; // { at, messages: Map(name -> count) }
  let pollTimer = null;
  let pollInFlight = false;

  function chooseTopic(name) {
    $('tail-topic').value = name;
    $('publish-topic').value = name;
    presenceTopic = name;
    refreshPresence();
  }

  // ---- presence of the chosen topic ----------------------------------------------------------

  let presenceTopic = null;

  async function refreshPresence() {
    const name = presenceTopic;
    if (!name) return;
    setText('presence-topic', name, 'muted');
    let response;
    let body = null;
    try {
      response = await fetch(apiUrl(`topics/${encodeURIComponent(name)}/presence`), {
        headers: authHeaders(),
        cache: 'no-store',
      });
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (name !== presenceTopic) return;
    if (!response || !response.ok || !body || !Array.isArray(body.clients)) {
      setText('presence-count', errorText(body, response ? response.status : 0), 'error');
      $('presence').replaceChildren();
      return;
    }
    const shown = body.clients.length;
    const more = body.count > shown ? ` (first ${shown} shown)` : '';
    setText('presence-count', `${body.count} client${body.count === 1 ? '' : 's'}${more}`, 'muted');
    // textContent only: client ids come from clients.
    $('presence').replaceChildren(
      ...body.clients.map((c) => {
        const item = el('li', 'client', String(c.client_id));
        item.dataset.client = String(c.client_id);
        item.append(el('span', 'num connections', ` ×${Number(c.connections) || 0}`));
        return item;
      }),
    );
  }

  function renderTopics(topics, rates) {
    const body = $('topics-body');
    const rows = Object.keys(topics).sort().map((name) => {
      const t = topics[name] || {};
      const row = el('tr');
      row.dataset.topic = name;
      row.append(
        el('td', 'name', name),
        el('td', 'num subscribers', t.subscribers ?? 0),
        el('td', 'num messages', t.messages ?? 0),
        el('td', 'num rate', formatRate(rates.get(name) || 0)),
        el('td', 'num dropped', t.dropped ?? 0),
      );
      row.addEventListener('click', () => chooseTopic(name));
      return row;
    });
    body.replaceChildren(...rows);
    $('topics-empty').hidden = rows.length > 0;
  }

  // Rates come from differences of the cumulative per-topic message counts between two polls.
  // Deliveries are estimated as messages x current subscribers: /stats keeps no delivery
  // counter, and under the default policy every subscriber gets every message.
  function update(stats, at) {
    const topics = stats.topics && typeof stats.topics === 'object' ? stats.topics : {};
    const messages = new Map();
    const rates = new Map();
    let published = 0;
    let delivered = 0;
    const seconds = previous ? (at - previous.at) / 1000 : 0;
    for (const [name, t] of Object.entries(topics)) {
      const count = Number(t.messages) || 0;
      messages.set(name, count);
      if (!previous || seconds <= 0) continue;
      const before = previous.messages.get(name);
      // A new topic, or one deleted and re-created, counts from zero.
      const delta = before === undefined || count < before ? count : count - before;
      rates.set(name, delta / seconds);
      published += delta;
      delivered += delta * (Number(t.subscribers) || 0);
    }
    renderTopics(topics, rates);
    const totalSubscribers = Object.values(topics).reduce((n, t) => n + (Number(t.subscribers) || 0), 0);
    setText('total-topics', Object.keys(topics).length);
    setText('total-subscribers', stats.subscribers ?? totalSubscribers);
    setText('total-connections', stats.connections ?? '–');
    setText('total-dropped', stats.dropped ?? '–');
    setText('total-uptime', formatUptime(Number(stats.uptime_sec)));
    if (previous && seconds > 0) {
      const publishRate = published / seconds;
      const deliveryRate = delivered / seconds;
      setText('total-publish-rate', formatRate(publishRate));
      setText('total-delivery-rate', formatRate(deliveryRate));
      publishChart.push(publishRate);
      deliveryChart.push(deliveryRate);
    }
    previous = { at, messages };
  }

  async function poll() {
    if (pollInFlight) return;
    pollInFlight = true;
    clearTimeout(pollTimer);
    try {
      const response = await fetch(apiUrl('stats'), { headers: authHeaders(), cache: 'no-store' });
      if (response.status === 401) {
        setServerStatus('auth', apiKey() ? 'wrong API key' : 'API key needed');
        previous = null;
      } else if (!response.ok) {
        setServerStatus('down', `HTTP ${response.status}`);
      } else {
        update(await response.json(), performance.now());
        setServerStatus('ok', 'live');
        refreshPresence();
      }
    } catch (e) {
      setServerStatus('down', 'unreachable');
      previous = null;
    } finally {
      pollInFlight = false;
      pollTimer = setTimeout(poll, POLL_MS);
    }
  }

  // ---- live tail -----------------------------------------------------------------------------

  let tail = null; // { client, topic, probing }

  function tailLine(event) {
    const item = el('li', 'event');
    item.append(
      el('span', 'seq', `#${event.seq}`),
      el('span', 'ts', event.ts || ''),
    );
    item.append(el('span', 'payload', JSON.stringify(event.payload)));
    item.title = `id ${event.id}`;
    return item;
  }

  function tailNote(text) {
    return el('li', 'info', text);
  }

  function pushTail(item) {
    const list = $('tail');
    list.prepend(item);
    while (list.children.length > TAIL_MAX) list.lastElementChild.remove();
  }

  function setTailStatus(text, className) {
    setText('tail-status', text, className || 'muted');
  }

  function stopTail(reason, className) {
    if (tail) {
      const old = tail;
      tail = null;
      old.client.close();
    }
    $('tail-start').disabled = false;
    $('tail-stop').disabled = true;
    if (reason) setTailStatus(reason, className);
  }

  // A page learns nothing about a refused WebSocket handshake (it sees close 1006, whether the
  // key was wrong, the origin not allowed or the server down), so ask the same route over plain
  // HTTP: 401 is the key; 400 ("expects a WebSocket upgrade") means the key is accepted and the
  // server is up, which leaves the origin check (ALLOWED_ORIGINS), the one a same-origin fetch
  // does not trigger. Either way retrying cannot help, so the tail stops.
  async function explainRefusal(current) {
    if (current.probing) return;
    current.probing = true;
    let response = null;
    try {
      response = await fetch(apiUrl('ws'), { headers: authHeaders(), cache: 'no-store' });
    } catch (e) {
      response = null;
    }
    current.probing = false;
    if (tail !== current) return;
    if (!response) {
      setTailStatus('server unreachable; retrying…', 'error');
    } else if (response.status === 401) {
      stopTail(`refused: ${apiKey() ? 'wrong API key' : 'API key needed'}`, 'error');
    } else if (response.status === 400 || response.status === 403) {
      stopTail(
        `refused: the key is accepted, so this page's origin (${location.origin}) is probably ` +
          'not allowed: add it to ALLOWED_ORIGINS',
        'error',
      );
    } else {
      setTailStatus(`cannot open the WebSocket (HTTP ${response.status}); retrying…`, 'error');
    }
  }

  function startTail() {
    const topic = $('tail-topic').value.trim();
    const lastN = Math.max(0, Math.floor(Number($('tail-last-n').value) || 0));
    if (!topic) return;
    stopTail();
    $('tail').replaceChildren();
    setTailStatus(`connecting to ${topic}…`);
    const client = new HeraldClient(wsUrl(), { apiKey: apiKey() || undefined });
    const current = { client, topic, probing: false };
    tail = current;
    $('tail-start').disabled = true;
    $('tail-stop').disabled = false;
    let acked = false;
    client.on('state', (state, detail) => {
      if (tail !== current) return;
      if (state === 'connected' && acked) {
        setTailStatus(`reconnected; resuming ${topic} after seq ${sub.lastSeq}`, 'ok');
      } else if (state === 'disconnected' && !detail.opened) {
        setTailStatus(`cannot connect; retrying in ${(detail.delay / 1000).toFixed(1)} s…`, 'error');
        explainRefusal(current);
      } else if (state === 'disconnected') {
        const why = detail.error ? detail.error.code : `closed ${detail.code}`;
        setTailStatus(`connection lost (${why}); reconnecting…`, 'error');
      } else if (state === 'closed' && detail.error) {
        stopTail(`${detail.error.code}: ${detail.error.message}`, 'error');
      }
    });
    client.on('info', (frame) => {
      if (tail === current && frame.msg === 'shutting_down') pushTail(tailNote('server is shutting down'));
    });
    const sub = client.subscribe(topic, {
      lastN,
      onEvent: (event) => pushTail(tailLine(event)),
      onGap: (gap) => pushTail(tailNote(`messages after seq ${gap.lastSeq} were missed (new epoch ${gap.epoch})`)),
      onError: (err) => {
        if (tail !== current) return;
        if (err.code === 'TOPIC_DELETED') pushTail(tailNote(`topic ${topic} was deleted`));
        stopTail(`${err.code}: ${err.message}`, 'error');
      },
    });
    sub.ready.then(
      (ack) => {
        acked = true;
        if (tail === current) setTailStatus(`subscribed to ${topic} (seq ${ack.seq})`, 'ok');
      },
      () => {},
    );
  }

  // ---- publish -------------------------------------------------------------------------------

  async function publish() {
    const topic = $('publish-topic').value.trim();
    const id = $('publish-id').value.trim();
    const text = $('publish-payload').value;
    let payload;
    try {
      payload = JSON.parse(text);
    } catch (e) {
      payload = text;
    }
    const message = { payload };
    if (id) message.id = id;
    setText('publish-result', 'publishing…', 'muted');
    try {
      const response = await fetch(apiUrl('publish'), {
        method: 'POST',
        headers: authHeaders({ 'Content-Type': 'application/json' }),
        body: JSON.stringify({ topic, message }),
      });
      let body = null;
      try {
        body = await response.json();
      } catch (e) {
        body = null;
      }
      if (response.ok && body) {
        setText('publish-result', `published ${body.id} as seq ${body.seq}`, 'ok');
      } else {
        setText('publish-result', errorText(body, response.status), 'error');
      }
    } catch (e) {
      setText('publish-result', 'server unreachable', 'error');
    }
  }

  // ---- wiring --------------------------------------------------------------------------------

  $('api-key').value = apiKey();
  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = $('api-key').value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    previous = null;
    poll();
    if (tail) startTail();
  });
  $('key-clear').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORAGE);
    $('api-key').value = '';
    previous = null;
    poll();
  });
  $('tail-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    startTail();
  });
  $('tail-stop').addEventListener('click', () => stopTail('not subscribed'));
  $('publish-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    publish();
  });
  window.addEventListener('resize', () => {
    publishChart.draw();
    deliveryChart.draw();
  });

  publishChart.draw();
  deliveryChart.draw();
  poll();
})();
