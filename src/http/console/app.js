// The smshook console: reads the query API (under /api) with the token its
// user gives, kept for this browser tab only (sessionStorage). Its URLs are
// relative to the page's, so it works behind a proxy that serves smshook
// under a path of its own. Everything it shows came from providers, so it
// is written with textContent, never as HTML; the page's
// Content-Security-Policy allows no other script.
'use strict';

const TOKEN_KEY = 'smshook.api-token';
const PAGE = 50;
const EVENT_FIELDS = [
  'id', 'source', 'provider', 'type', 'provider_type', 'provider_event_id',
  'message_id', 'from', 'to', 'body', 'status', 'error_code', 'error_reason',
  'opt_out', 'occurred_at', 'received_at',
];

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  /** The `next` cursor of each listing's last page. */
  next: {},
  /** The live stream's AbortController while it runs. */
  live: null,
  /** Where live starts: the newest listed event's receive time (the
   * server's clock), or a little before the listing was asked for. */
  listedAt: null,
  /** Ids of the events listed, so live adds none twice. */
  listed: new Set(),
  /** The timer that lists the request log again while it is followed. */
  following: null,
};

/** How far before the browser's "now" live starts when nothing was
 * listed: room for a browser clock ahead of the server's. */
const CLOCK_MARGIN_MS = 5 * 60 * 1000;

/** How often a followed request log is asked for again. */
const FOLLOW_MS = 2000;

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, body) {
    super(body.message || body.error || `HTTP ${status}`);
    this.status = status;
    this.code = body.error;
  }
}

function authorization() {
  return { Authorization: `Bearer ${state.token}` };
}

/** The JSON answer of an API call; an ApiError for any other status. */
async function api(path, init = {}) {
  const response = await fetch(path, { ...init, headers: authorization(), cache: 'no-store' });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, body);
  }
  return body;
}

function say(text, isError = false) {
  const status = $('status');
  status.textContent = text;
  status.classList.toggle('error', isError);
}

/** What went wrong, in words a user can act on. */
function explain(error) {
  switch (error.code) {
    case 'api_disabled':
      return 'The API is off: start smshook with SMSHOOK_API_TOKEN set, and give that token here.';
    case 'unauthorized':
      return 'That is not the API token (SMSHOOK_API_TOKEN). Give it above.';
    default:
      return error.message || String(error);
  }
}

/** A form's filled-in fields, after `fixed`, as a query string. */
function query(form, fixed = {}) {
  const params = new URLSearchParams(fixed);
  for (const [name, value] of new FormData(form)) {
    if (typeof value === 'string' && value.trim() !== '') {
      params.set(name, value.trim());
    }
  }
  return params;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? '' : String(text);
  if (className) {
    td.className = className;
  }
  return td;
}

function localTime(text) {
  if (!text) {
    return '';
  }
  const time = new Date(text);
  return Number.isNaN(time.getTime()) ? text : time.toLocaleString();
}

/** `n` and `noun`, plural unless `n` is 1. */
function plural(n, noun) {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function short(text, length = 90) {
  if (!text) {
    return '';
  }
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/** A row's class for an event type: delivered, failed, opted out… */
function typeClass(type) {
  if (type === 'message.failed' || type === 'contact.opted_out') {
    return 'bad';
  }
  if (type === 'message.delivered' || type === 'contact.opted_in') {
    return 'good';
  }
  return '';
}

/** A button that opens the event `id` (from the request log or outbox). */
function eventLink(row, id) {
  const td = row.insertCell();
  if (!id) {
    return;
  }
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'link';
  button.textContent = id;
  button.addEventListener('click', () => openEvent(id));
  td.append(button);
}

/**
 * A page of the listing at `path` (the API path of listing NAME: its rows go to
 * `#NAME-rows`), after the page before when `more`, else from the start.
 * Returns how many rows are shown.
 */
async function listPage(path, params, rowOf, more) {
  const name = path.split('/')[1];
  if (more) {
    params.set('after', state.next[name]);
  }
  const page = await api(`${path}?${params}`);
  const rows = $(`${name}-rows`);
  if (!more) {
    rows.replaceChildren();
  }
  rows.append(...page[name].map(rowOf));
  state.next[name] = page.next;
  $(`${name}-more`).hidden = !page.next;
  return rows.rows.length;
}

// Events

function eventRow(event) {
  const row = document.createElement('tr');
  cell(row, localTime(event.received_at));
  cell(row, event.source);
  cell(row, event.type, `nowrap ${typeClass(event.type)}`);
  cell(row, event.from, 'nowrap');
  cell(row, event.to, 'nowrap');
  cell(row, short(event.body || event.error_reason || event.status));
  row.tabIndex = 0;
  row.addEventListener('click', () => showEvent(event));
  row.addEventListener('keydown', (key) => {
    if (key.key === 'Enter') {
      showEvent(event);
    }
  });
  return row;
}

function showEvent(event) {
  const fields = $('event-fields');
  fields.replaceChildren();
  for (const name of EVENT_FIELDS) {
    const term = document.createElement('dt');
    term.textContent = name;
    const value = document.createElement('dd');
    const text = event[name];
    value.textContent = text === null || text === undefined ? 'null' : String(text);
    fields.append(term, value);
  }
  $('event-payload').textContent = JSON.stringify(event.payload, null, 2);
  $('event-message').hidden = !event.message_id;
  $('event-message').dataset.messageId = event.message_id || '';
  $('event-detail').hidden = false;
}

/** Lists every event of the message shown: its sending, its reports. */
function showMessage() {
  const form = $('events-filter');
  for (const name of ['source', 'type', 'number']) {
    form.elements[name].value = '';
  }
  form.elements.message_id.value = $('event-message').dataset.messageId;
  location.hash = '#events';
  form.requestSubmit();
}

async function openEvent(id) {
  try {
    const event = await api(`api/events/${encodeURIComponent(id)}`);
    location.hash = '#events';
    showEvent(event);
  } catch (error) {
    say(explain(error), true);
  }
}

async function loadEvents(more) {
  const params = query($('events-filter'), { order: 'desc', limit: PAGE });
  if (!more) {
    state.listed.clear();
    state.listedAt = new Date(Date.now() - CLOCK_MARGIN_MS).toISOString();
  }
  const listed = (event) => {
    if (!more && state.listed.size === 0) {
      state.listedAt = event.received_at;
    }
    state.listed.add(event.id);
    return eventRow(event);
  };
  const shown = await listPage('api/events', params, listed, more);
  return shown ? `${plural(shown, 'event')}, newest first.` : 'No events match.';
}

/** Whether a streamed event matches what the stream cannot filter. */
function matchesForm(event, form) {
  const digits = (text) => (text || '').trim().replace(/^\+/, '');
  const number = digits(form.elements.number.value);
  const messageId = form.elements.message_id.value.trim();
  const numberMatches = !number || [event.from, event.to].some((n) => digits(n) === number);
  return numberMatches && (!messageId || event.message_id === messageId);
}

/** The data of each complete Server-Sent Event in `buffer`, and the rest. */
function frames(buffer) {
  const parts = buffer.split('\n\n');
  const rest = parts.pop();
  const data = parts.map((frame) => frame
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(5).replace(/^ /, ''))
    .join('\n')).filter((text) => text !== '');
  return { data, rest };
}

/** Follows the live stream, putting each new event at the top, until stopped. */
async function goLive() {
  const controller = new AbortController();
  state.live = controller;
  const form = $('events-filter');
  // From where the listing ends (the stream would otherwise start with
  // the first event ever stored); what is listed already is skipped.
  const since = state.listedAt || new Date(Date.now() - CLOCK_MARGIN_MS).toISOString();
  const params = new URLSearchParams({ since });
  for (const name of ['source', 'type']) {
    const value = form.elements[name].value.trim();
    if (value) {
      params.set(name, value);
    }
  }
  try {
    const response = await fetch(`api/stream?${params}`, {
      headers: authorization(),
      signal: controller.signal,
    });
    if (!response.ok) {
      throw new ApiError(response.status, await response.json().catch(() => ({})));
    }
    say('Live: new events appear at the top as they are stored.');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        break;
      }
      const read = frames(buffer + value.replace(/\r\n?/g, '\n'));
      buffer = read.rest;
      for (const event of read.data.map((text) => JSON.parse(text))) {
        if (matchesForm(event, form) && !state.listed.has(event.id)) {
          state.listed.add(event.id);
          $('events-rows').prepend(eventRow(event));
        }
      }
    }
    say('The live stream ended (the server stopped?).', true);
  } catch (error) {
    if (error.name !== 'AbortError') {
      say(explain(error), true);
    }
  } finally {
    if (state.live === controller) {
      state.live = null;
      $('live').checked = false;
    }
  }
}

function stopLive() {
  if (state.live) {
    state.live.abort();
    state.live = null;
  }
}

// Requests

function requestRow(request) {
  const row = document.createElement('tr');
  cell(row, localTime(request.at));
  cell(row, request.source);
  cell(row, request.status, request.status === 200 ? 'good' : 'bad');
  cell(row, request.reason);
  cell(row, request.message);
  cell(row, request.remote_addr);
  cell(row, request.size, 'number');
  eventLink(row, request.event_id);
  return row;
}

async function loadRequests(more) {
  const params = query($('requests-filter'), { order: 'desc', limit: 100 });
  const shown = await listPage('api/requests', params, requestRow, more);
  return shown ? `${plural(shown, 'request')}, newest first.` : 'No requests match.';
}

/** Lists the request log again every FOLLOW_MS while `on`, quietly. */
function followRequests(on) {
  clearInterval(state.following);
  state.following = null;
  if (!on) {
    return;
  }
  const again = () => {
    if (currentView() === 'requests') {
      loadRequests(false).then(say, (error) => say(explain(error), true));
    }
  };
  state.following = setInterval(again, FOLLOW_MS);
  again();
}

// Stats

function fill(id, items, columns) {
  const rows = $(id);
  rows.replaceChildren();
  for (const item of items) {
    const row = rows.insertRow();
    for (const column of columns) {
      const [text, className] = column(item);
      cell(row, text, className);
    }
  }
}

async function loadStats() {
  const stats = await api('api/stats');
  fill('stats-outcomes', stats.outcomes, [
    (o) => [o.source],
    (o) => [o.delivered, 'number'],
    (o) => [o.failed, o.failed ? 'number bad' : 'number'],
    (o) => [`${Math.round((100 * o.delivered) / Math.max(1, o.delivered + o.failed))}%`, 'number'],
  ]);
  fill('stats-events', stats.events, [
    (e) => [e.source],
    (e) => [e.type, typeClass(e.type)],
    (e) => [e.count, 'number'],
  ]);
  fill('stats-requests', stats.requests, [
    (r) => [r.source],
    (r) => [r.status, r.status === 200 ? 'good' : 'bad'],
    (r) => [r.reason],
    (r) => [r.count, 'number'],
  ]);
  return `Since ${localTime(stats.since)}.`;
}

// Opt-outs

function optoutRow(optout) {
  const row = document.createElement('tr');
  cell(row, optout.number);
  cell(row, optout.source);
  cell(row, localTime(optout.changed_at));
  eventLink(row, optout.event_id);
  return row;
}

async function loadOptouts(more) {
  const params = new URLSearchParams({ limit: 100 });
  const shown = await listPage('api/optouts', params, optoutRow, more);
  return shown ? `${plural(shown, 'number')} opted out.` : 'No number is opted out.';
}

/** Whether the number in the form may be sent to, and since when. */
async function checkNumber() {
  const number = $('optouts-filter').elements.number.value.trim();
  if (!number) {
    return 'Give a number to check.';
  }
  try {
    const optout = await api(`api/optouts/${encodeURIComponent(number)}`);
    const when = `${localTime(optout.changed_at)}, ${optout.source}`;
    return optout.opted_out
      ? `${optout.number} is opted out: do not send to it (since ${when}).`
      : `${optout.number} opted back in (${when}).`;
  } catch (error) {
    if (error.status === 404) {
      return `${number} never opted out nor in.`;
    }
    throw error;
  }
}

// Deliveries

function deliveryRow(delivery) {
  const row = document.createElement('tr');
  cell(row, delivery.id, 'number');
  eventLink(row, delivery.event_id);
  cell(row, delivery.destination);
  cell(row, delivery.state, delivery.state === 'dead' ? 'bad' : '');
  cell(row, delivery.attempts, 'number');
  cell(row, delivery.state === 'pending' ? localTime(delivery.next_attempt_at) : '');
  cell(row, delivery.last_status);
  cell(row, delivery.last_error);
  return row;
}

/** What a destination takes: its sources, types and opt-out filter. */
function takes(d) {
  const optOut = { true: 'opt-outs only', false: 'opt-ins only' }[d.opt_out];
  const parts = [d.sources.join(', ') || 'every source', d.types.join(', ') || 'every type', optOut];
  return parts.filter(Boolean).join('; ');
}

async function loadDestinations() {
  const listed = await api('api/destinations');
  fill('destinations-rows', listed.destinations, [
    (d) => [d.name],
    (d) => [d.kind],
    (d) => [d.target],
    (d) => [takes(d)],
    (d) => [d.pending, 'number'],
    (d) => [d.dead, d.dead ? 'number bad' : 'number'],
  ]);
}

async function loadDeliveries(more) {
  if (!more) {
    await loadDestinations();
  }
  const params = query($('deliveries-filter'), { limit: 100 });
  const shown = await listPage('api/deliveries', params, deliveryRow, more);
  return shown ? `${shown} ${shown === 1 ? 'delivery' : 'deliveries'}.` : 'No deliveries match.';
}

async function retryDead() {
  const destination = $('deliveries-filter').elements.destination.value.trim();
  const params = new URLSearchParams(destination ? { destination } : {});
  const answer = await api(`api/deliveries/retry?${params}`, { method: 'POST' });
  await loadDeliveries(false);
  return `${answer.retried} dead deliveries scheduled again.`;
}

// Sources

/** Each source's requests of the last 24 hours: accepted, and refused by reason. */
function answersBySource(requests) {
  const answers = new Map();
  for (const r of requests) {
    if (!answers.has(r.source)) {
      answers.set(r.source, { accepted: 0, refused: 0, reasons: [] });
    }
    const a = answers.get(r.source);
    if (r.status === 200) {
      a.accepted += r.count;
    } else {
      a.refused += r.count;
      a.reasons.push(`${r.reason} ${r.count}`);
    }
  }
  return answers;
}

async function loadSources() {
  const [listed, stats] = await Promise.all([api('api/sources'), api('api/stats')]);
  const answers = answersBySource(stats.requests);
  const none = { accepted: 0, refused: 0, reasons: [] };
  fill('sources-rows', listed.sources, [
    (s) => [s.name],
    (s) => [s.provider],
    (s) => [s.public_url || new URL(s.path.slice(1), document.baseURI).href],
    (s) => [s.methods.join(', ')],
    (s) => [plural(s.credentials, s.credential_kind)],
    (s) => [s.allowed_ips || 'any address'],
    (s) => [(answers.get(s.name) || none).accepted, 'number'],
    (s) => {
      const a = answers.get(s.name) || none;
      return a.refused ? [`${a.refused} (${a.reasons.join(', ')})`, 'number bad'] : [0, 'number'];
    },
  ]);
  return `${plural(listed.sources.length, 'source')}. Each URL is this page's address with the source's path: give the provider the address it reaches smshook at.`;
}

// Views

const LOADERS = {
  events: loadEvents,
  requests: loadRequests,
  stats: loadStats,
  optouts: loadOptouts,
  deliveries: loadDeliveries,
  sources: loadSources,
};

function currentView() {
  const name = location.hash.slice(1);
  return Object.hasOwn(LOADERS, name) ? name : 'events';
}

/** Runs `action` and says what it did, or why it failed. */
async function run(action) {
  if (!state.token) {
    say('Give the API token (SMSHOOK_API_TOKEN) to see what smshook stored.');
    return;
  }
  say('Loading…');
  try {
    say(await action());
  } catch (error) {
    say(explain(error), true);
  }
}

function show() {
  const view = currentView();
  for (const section of document.querySelectorAll('.view')) {
    section.hidden = section.id !== view;
  }
  for (const link of document.querySelectorAll('nav a')) {
    link.classList.toggle('current', link.dataset.view === view);
  }
  return run(() => LOADERS[view](false));
}

function onSubmit(id, action) {
  $(id).addEventListener('submit', (submitted) => {
    submitted.preventDefault();
    action();
  });
}

function onClick(id, action) {
  $(id).addEventListener('click', () => run(action));
}

function start() {
  $('token').value = state.token;
  onSubmit('token-form', () => {
    state.token = $('token').value.trim();
    sessionStorage.setItem(TOKEN_KEY, state.token);
    show();
  });
  for (const name of ['events', 'requests', 'deliveries']) {
    onSubmit(`${name}-filter`, () => run(() => LOADERS[name](false)));
  }
  for (const name of ['events', 'requests', 'optouts', 'deliveries']) {
    onClick(`${name}-more`, () => LOADERS[name](true));
  }
  onSubmit('optouts-filter', () => run(checkNumber));
  onClick('retry-dead', retryDead);
  $('events-filter').addEventListener('submit', () => {
    if (state.live) {
      stopLive();
      goLive();
    }
  });
  $('event-message').addEventListener('click', showMessage);
  $('requests-follow').addEventListener('change', (changed) => {
    followRequests(changed.target.checked && Boolean(state.token));
  });
  $('event-close').addEventListener('click', () => {
    $('event-detail').hidden = true;
  });
  $('live').addEventListener('change', (changed) => {
    stopLive();
    if (changed.target.checked && state.token) {
      goLive();
    } else if (changed.target.checked) {
      changed.target.checked = false;
      say('Give the API token first.', true);
    }
  });
  window.addEventListener('hashchange', show);
  show();
}

start();
