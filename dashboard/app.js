// herald dashboard: polls GET /stats, draws rates on canvases, tails a topic over the WebSocket
// and publishes with POST /publish. Public API only; the key lives in sessionStorage and goes out
// as X-API-Key (REST) or api_key (WebSocket, whose handshake cannot carry headers from a page).
// Everything the server sends reaches the DOM through textContent, never as markup.
'use strict';

(() => {
  const KEY_STORAGE = 'herald.apiKey';
  const POLL_MS = 1000;
  const POINTS = 120;
  const TAIL_MAX = 200;
  const SUBSCRIBE_REQUEST = 'dashboard-subscribe';

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

  function wsUrl() {
    const url = new URL('ws', document.baseURI);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const key = apiKey();
    if (key) url.searchParams.set('api_key', key);
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

  let socket = null;

  function tailLine(frame) {
    const item = el('li', 'event');
    item.append(
      el('span', 'seq', `#${frame.seq}`),
      el('span', 'ts', frame.ts || ''),
    );
    const message = frame.message || {};
    item.append(el('span', 'payload', JSON.stringify(message.payload)));
    item.title = `id ${message.id}`;
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

  function stopTail(reason) {
    if (socket) {
      const old = socket;
      socket = null;
      old.onclose = null;
      old.close(1000);
    }
    $('tail-start').disabled = false;
    $('tail-stop').disabled = true;
    if (reason) setTailStatus(reason);
  }

  function startTail() {
    const topic = $('tail-topic').value.trim();
    const lastN = Math.max(0, Math.floor(Number($('tail-last-n').value) || 0));
    if (!topic) return;
    stopTail();
    $('tail').replaceChildren();
    setTailStatus(`connecting to ${topic}…`);
    const ws = new WebSocket(wsUrl());
    socket = ws;
    $('tail-start').disabled = true;
    $('tail-stop').disabled = false;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'subscribe', topic, last_n: lastN, request_id: SUBSCRIBE_REQUEST }));
    };
    ws.onmessage = (msg) => {
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch (e) {
        return;
      }
      switch (frame.type) {
        case 'ack':
          if (frame.request_id === SUBSCRIBE_REQUEST) {
            setTailStatus(`subscribed to ${frame.topic} (seq ${frame.seq})`, 'ok');
          }
          break;
        case 'event':
          pushTail(tailLine(frame));
          break;
        case 'error': {
          const err = frame.error || {};
          setTailStatus(`${err.code}: ${err.message}`, 'error');
          break;
        }
        case 'info':
          if (frame.msg === 'topic_deleted') pushTail(tailNote(`topic ${frame.topic} was deleted`));
          if (frame.msg === 'shutting_down') pushTail(tailNote('server is shutting down'));
          break;
        default:
          break;
      }
    };
    ws.onclose = (ev) => {
      if (socket !== ws) return;
      socket = null;
      $('tail-start').disabled = false;
      $('tail-stop').disabled = true;
      // A refused handshake (wrong key) reaches a page only as close 1006 with no detail.
      const hint = ev.code === 1006 ? ' — check the API key' : '';
      setTailStatus(`closed (${ev.code})${hint}`, 'error');
    };
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
    if (socket) startTail();
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
