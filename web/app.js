// app.js - the web chat page: conversations (store.js) shown and continued
// through the server's streaming chat API (api.js), model output rendered as
// markdown (markdown.js) that never becomes HTML. Settings, the API key and
// the theme are kept in this browser's localStorage; nothing leaves for any
// address but this server's.
import { ApiError, listModels, streamChat } from './api.js';
import { renderMarkdown } from './markdown.js';
import * as store from './store.js';

const $ = (id) => document.getElementById(id);
const PAGE = 50;              // conversations listed per page
const SAMPLING = ['temperature', 'top_p', 'top_k', 'min_p', 'max_tokens', 'seed', 'repeat_penalty', 'presence_penalty'];

const state = {
  settings: loadSettings(),
  conv: null,                 // the conversation shown (null: a new one, not stored yet)
  model: localStorage.getItem('hearth.model') || '',
  abort: null,                // the AbortController of the generation running
  listed: 0, listDone: false, listing: Promise.resolve(), listQueued: false, query: '',
  composing: false, compositionEnded: 0, sending: false,
};

function loadSettings() {
  const dflt = { key: '', system: '', uncertainty: true, extra: '' };
  try {
    return { ...dflt, ...JSON.parse(localStorage.getItem('hearth.settings') || '{}') };
  } catch {
    return dflt;
  }
}

function saveSettings() {
  localStorage.setItem('hearth.settings', JSON.stringify(state.settings));
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(text, onClick, cls) {
  const b = el('button', cls, text);
  b.type = 'button';
  b.addEventListener('click', onClick);
  return b;
}

function setStatus(text) {
  $('status').textContent = text;
}

// ---- theme --------------------------------------------------------------------------

function applyTheme() {
  const t = localStorage.getItem('hearth.theme');
  if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}

function toggleTheme() {
  const dark = document.documentElement.dataset.theme === 'dark' ||
    (!document.documentElement.dataset.theme && matchMedia('(prefers-color-scheme: dark)').matches);
  localStorage.setItem('hearth.theme', dark ? 'light' : 'dark');
  applyTheme();
}

// ---- models -------------------------------------------------------------------------

async function loadModels() {
  try {
    const ids = await listModels(state.settings.key);
    const sel = $('model');
    sel.replaceChildren(...ids.map((id) => { const o = el('option', '', id); o.value = id; return o; }));
    if (!ids.includes(state.model)) state.model = ids[0] || '';
    sel.value = state.model;
    setStatus('');
  } catch (e) {
    handleError(e);
  }
}

function pickModel() {
  state.model = $('model').value;
  localStorage.setItem('hearth.model', state.model);
  if (state.conv) {
    state.conv.model = state.model;
    store.put(state.conv);
  }
}

// ---- errors and the API key -----------------------------------------------------------

function handleError(e) {
  if (e instanceof ApiError && e.status === 401) {
    setStatus('API key needed');
    openSettings(true);
    return;
  }
  setStatus(e.message || String(e));
}

// ---- settings -------------------------------------------------------------------------

function openSettings(needKey) {
  const s = state.settings;
  $('key-note').hidden = !needKey;
  $('s-key').value = s.key || '';
  $('s-system').value = s.system || '';
  for (const k of SAMPLING) $('s-' + k).value = s[k] ?? '';
  $('s-uncertainty').checked = !!s.uncertainty;
  $('s-extra').value = s.extra || '';
  $('s-error').hidden = true;
  if (!$('settings').open) $('settings').showModal();
  if (needKey) $('s-key').focus();
}

function saveSettingsForm(ev) {
  ev.preventDefault();
  const extra = $('s-extra').value.trim();
  if (extra) {
    let j = null;
    try { j = JSON.parse(extra); } catch { /* below */ }
    if (!j || typeof j !== 'object' || Array.isArray(j)) {
      $('s-error').textContent = 'More request fields: not a JSON object';
      $('s-error').hidden = false;
      return;
    }
  }
  const s = state.settings;
  const hadKey = s.key;
  s.key = $('s-key').value.trim();
  s.system = $('s-system').value;
  for (const k of SAMPLING) {
    const v = $('s-' + k).value.trim();
    if (v === '' || !Number.isFinite(Number(v))) delete s[k];
    else s[k] = Number(v);
  }
  s.uncertainty = $('s-uncertainty').checked;
  s.extra = extra;
  saveSettings();
  $('settings').close();
  if (s.key !== hadKey || !$('model').options.length) loadModels();
}

// ---- the conversation list ------------------------------------------------------------

function listItem(c) {
  const li = el('li');
  li.dataset.id = c.id;
  if (state.conv && state.conv.id === c.id) li.classList.add('active');
  const open = button(c.title || 'Untitled', () => openConversation(c.id), 'open');
  open.title = c.title || '';
  const del = button('\u00d7', () => deleteConversation(c.id), 'del');
  del.title = 'Delete';
  del.setAttribute('aria-label', 'Delete conversation');
  li.append(open, del);
  return li;
}

// The list's reads run one after another (scrolling, searching and
// refreshing all page through the same index): no page lands in a list
// that was cleared meanwhile.
function listChain(fn) {
  state.listing = state.listing.then(fn, fn);
  return state.listing;
}

async function loadPage() {
  if (state.listDone) return;
  const items = await store.list({ offset: state.listed, limit: PAGE, query: state.query });
  state.listed += items.length;
  state.listDone = items.length < PAGE;
  $('conv-list').append(...items.map(listItem));
  // the next page too while the list does not fill its box (the observer fires only on changes)
  const box = $('conv-scroll');
  if (!state.listDone && $('list-more').getBoundingClientRect().top < box.getBoundingClientRect().bottom) await loadPage();
}

function listMore() {
  if (state.listQueued || state.listDone) return;
  state.listQueued = true;
  listChain(() => { state.listQueued = false; return loadPage(); });
}

function refreshList() {
  return listChain(() => {
    state.listed = 0;
    state.listDone = false;
    $('conv-list').replaceChildren();
    return loadPage();
  });
}

function markActive() {
  for (const li of $('conv-list').children) li.classList.toggle('active', !!state.conv && li.dataset.id === state.conv.id);
}

async function deleteConversation(id) {
  if (!confirm('Delete this conversation?')) return;
  await store.remove(id);
  if (state.conv && state.conv.id === id) newChat();
  const li = $('conv-list').querySelector(`li[data-id="${CSS.escape(id)}"]`);
  if (li) {
    li.remove();
    state.listed = Math.max(0, state.listed - 1);
  }
}

async function openConversation(id) {
  if (state.abort) return;
  const c = await store.get(id);
  if (!c) return;
  state.conv = c;
  localStorage.setItem('hearth.open', id);
  if (c.model && [...$('model').options].some((o) => o.value === c.model)) {
    state.model = c.model;
    $('model').value = c.model;
  }
  renderConversation();
  markActive();
}

function newChat() {
  if (state.abort) return;
  state.conv = null;
  localStorage.removeItem('hearth.open');
  renderConversation();
  markActive();
  $('input').focus();
}

// ---- messages -------------------------------------------------------------------------

function heatView(tokens) {
  const wrap = el('div', 'heat');
  for (const t of tokens) {
    const s = el('span', '', t.t);
    // entropy (nats) when the server sent it, else the surprise (-logprob) of the token
    const u = t.h ?? (t.lp === null ? 0 : -t.lp);
    s.style.backgroundColor = `rgba(230, 80, 30, ${Math.min(0.85, u / 4).toFixed(3)})`;
    s.title = `${JSON.stringify(t.t)}  logprob ${t.lp?.toFixed(3) ?? '-'}  entropy ${t.h?.toFixed(3) ?? '-'}`;
    wrap.append(s);
  }
  const legend = el('div', 'heat-legend', t0(tokens));
  return [wrap, legend];
}

function t0(tokens) {
  const hs = tokens.map((t) => t.h).filter((h) => typeof h === 'number');
  const mean = hs.length ? hs.reduce((a, b) => a + b, 0) / hs.length : NaN;
  return `${tokens.length} tokens; darker = less certain` + (hs.length ? `; mean entropy ${mean.toFixed(2)} nats` : '');
}

function toolView(calls) {
  return calls.map((c) => {
    const d = el('details', 'tool');
    d.append(el('summary', '', `Tool call: ${c.name || '?'}`));
    const pre = el('pre');
    let args = c.arguments || '';
    try { args = JSON.stringify(JSON.parse(args), null, 2); } catch { /* shown as sent */ }
    pre.textContent = args;
    d.append(pre);
    return d;
  });
}

// The body of an assistant message: reasoning (folded), text, tool calls.
function fillAssistant(body, m, streaming) {
  const parts = [];
  if (m.reasoning) {
    const d = el('details', 'reasoning');
    d.open = !!streaming && !m.content;
    d.append(el('summary', '', streaming && !m.content ? 'Reasoning\u2026' : 'Reasoning'), el('div', 'text', m.reasoning));
    parts.push(d);
  }
  if ($('heatmap').checked && m.tokens?.length) parts.push(...heatView(m.tokens));
  else if (m.content) parts.push(renderMarkdown(m.content));
  if (m.tool_calls?.length) parts.push(...toolView(m.tool_calls));
  if (m.stopped) parts.push(el('div', 'stopped-note', 'Stopped.'));
  if (m.error) parts.push(el('div', 'error', m.error));
  body.replaceChildren(...parts);
}

function statsText(st) {
  if (!st) return '';
  return `${st.n} tokens` + (st.tps ? `, ${st.tps.toFixed(1)} tokens/s` : '') + (st.ttft ? `, first after ${(st.ttft / 1000).toFixed(2)} s` : '');
}

function messageView(m, i) {
  const div = el('div', 'msg ' + m.role);
  div.dataset.index = i;
  div.append(el('div', 'who', m.role === 'user' ? 'You' : m.model || 'Assistant'));
  const body = el('div', 'body');
  if (m.role === 'user') body.textContent = m.content;
  else fillAssistant(body, m, false);
  div.append(body);
  const actions = el('div', 'actions');
  if (m.role === 'user') {
    actions.append(button('Edit', () => editMessage(i, div), 'edit-btn'));
  } else {
    actions.append(button('Copy', () => copyText(m.content), 'copy-msg'));
    if (i === state.conv.messages.length - 1) actions.append(button('Regenerate', regenerate, 'regen'));
    actions.append(el('span', 'stats', statsText(m.stats)));
  }
  div.append(actions);
  return div;
}

function renderConversation() {
  const box = $('messages');
  if (!state.conv || !state.conv.messages.length) {
    box.replaceChildren(el('div', 'empty', 'Start a conversation.'));
    return;
  }
  box.replaceChildren(...state.conv.messages.map(messageView));
  box.scrollTop = box.scrollHeight;
}

function editMessage(i, div) {
  if (state.abort) return;
  const m = state.conv.messages[i];
  const ta = el('textarea', 'edit');
  ta.value = m.content;
  const body = div.querySelector('.body');
  const actions = div.querySelector('.actions');
  body.replaceChildren(ta);
  actions.replaceChildren(
    button('Send', async () => {
      const text = ta.value.trim();
      if (!text) return;
      state.conv.messages.length = i;
      state.conv.messages.push({ role: 'user', content: text });
      await saveConversation();
      renderConversation();
      generate();
    }, 'primary'),
    button('Cancel', renderConversation));
  ta.focus();
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    setStatus('Copied');
  } catch {
    const ta = el('textarea');
    ta.value = text;
    document.body.append(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
    setStatus('Copied');
  }
}

// ---- sending and streaming --------------------------------------------------------------

function titleOf(text) {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 60 ? t.slice(0, 60) + '\u2026' : t;
}

async function saveConversation() {
  state.conv.updated = Date.now();
  await store.put(state.conv);
}

async function send(text) {
  if (state.abort || state.sending || !text.trim()) return;
  state.sending = true; // until generate() holds state.abort (a second Enter meanwhile sends nothing)
  const isNew = !state.conv;
  if (isNew) {
    const now = Date.now();
    state.conv = { id: store.newId(), title: titleOf(text), created: now, updated: now, model: state.model,
                   system: state.settings.system || '', messages: [] };
    localStorage.setItem('hearth.open', state.conv.id);
  }
  state.conv.messages.push({ role: 'user', content: text });
  $('input').value = '';
  try {
    await saveConversation();
  } catch (e) {
    state.sending = false;
    setStatus('The conversation could not be stored: ' + (e.message || e));
    return;
  }
  // it is now the newest: at the top of the list (counted in the pages read when it was not listed)
  const li = !isNew && $('conv-list').querySelector(`li[data-id="${CSS.escape(state.conv.id)}"]`);
  if (li) {
    $('conv-list').prepend(li);
  } else {
    $('conv-list').prepend(listItem(state.conv));
    state.listed++;
  }
  markActive();
  renderConversation();
  state.sending = false;
  generate();
}

// The request for the conversation's messages so far.
function requestBody() {
  const s = state.settings;
  const messages = [];
  const system = state.conv.system || s.system;
  if (system) messages.push({ role: 'system', content: system });
  for (const m of state.conv.messages) messages.push({ role: m.role, content: m.content || '' });
  const body = { model: state.model || undefined, messages };
  for (const k of SAMPLING) if (typeof s[k] === 'number') body[k] = s[k];
  if (s.uncertainty) { body.logprobs = true; body.uncertainty = true; }
  if (s.extra) {
    try { Object.assign(body, JSON.parse(s.extra)); } catch { /* checked when saved */ }
  }
  return body;
}

function setBusy(busy) {
  $('send').hidden = busy;
  $('stop').hidden = !busy;
}

async function generate() {
  const conv = state.conv;
  const m = { role: 'assistant', content: '', model: state.model };
  const body = requestBody();
  conv.messages.push(m);
  renderConversation();
  const div = $('messages').lastElementChild;
  const view = div.querySelector('.body');
  div.querySelector('.actions').hidden = true; // no copy or regenerate while it streams
  const ctl = new AbortController();
  state.abort = ctl;
  setBusy(true);
  setStatus('Generating\u2026');
  const calls = [];
  let n = 0, tFirst = 0, pending = false, painted = 0, cost = 0;
  const t0 = performance.now();
  const paint = () => {
    pending = false;
    const t = performance.now();
    fillAssistant(view, m, true);
    const box = $('messages');
    if (box.scrollHeight - box.scrollTop - box.clientHeight < 200) box.scrollTop = box.scrollHeight;
    painted = performance.now();
    cost = painted - t;
  };
  // a long answer is rendered whole each time: at most a fifth of the time goes to it
  const schedule = () => {
    if (pending) return;
    pending = true;
    const wait = Math.max(0, painted + Math.min(1000, cost * 4) - performance.now());
    setTimeout(() => requestAnimationFrame(paint), wait);
  };
  try {
    await streamChat({
      key: state.settings.key, body, signal: ctl.signal,
      onDelta(d) {
        if ((d.content || d.reasoning) && !tFirst) tFirst = performance.now();
        m.content += d.content;
        if (d.reasoning) m.reasoning = (m.reasoning || '') + d.reasoning;
        for (const c of d.toolCalls) {
          const k = Number.isInteger(c.index) ? c.index : calls.length;
          calls[k] = calls[k] || { name: '', arguments: '' };
          if (c.function?.name) calls[k].name = String(c.function.name);
          if (c.function?.arguments) calls[k].arguments += String(c.function.arguments);
        }
        if (calls.length) m.tool_calls = calls.filter(Boolean);
        if (d.tokens.length) m.tokens = (m.tokens || []).concat(d.tokens);
        if (d.usage?.completion_tokens) n = d.usage.completion_tokens;
        schedule();
      },
    });
  } catch (e) {
    if (e.name === 'AbortError') m.stopped = true;
    else if (e instanceof ApiError && e.status === 401) { m.error = 'API key needed'; handleError(e); }
    else m.error = e.message || String(e);
  }
  const tEnd = performance.now();
  if (!n) n = m.tokens?.length || 0;
  m.stats = { n, ms: tEnd - t0, ttft: tFirst ? tFirst - t0 : 0, tps: tFirst && n > 1 ? (n - 1) / ((tEnd - tFirst) / 1000) : 0 };
  // the final view and the stored copy first, then the buttons: a page that
  // shows itself idle shows, and has kept, the whole answer
  if (conv === state.conv) renderConversation();
  conv.updated = Date.now();
  let stored = true;
  try {
    await store.put(conv);
  } catch (e) {
    stored = false;
    setStatus('The conversation could not be stored: ' + (e.message || e));
  }
  state.abort = null;
  setBusy(false);
  if (stored) setStatus(m.stopped ? 'Stopped' : m.error ? '' : 'Done');
}

function stop() {
  if (state.abort) state.abort.abort();
}

async function regenerate() {
  if (state.abort || !state.conv) return;
  const msgs = state.conv.messages;
  while (msgs.length && msgs[msgs.length - 1].role === 'assistant') msgs.pop();
  if (!msgs.length) return;
  await saveConversation();
  generate();
}

// ---- the composer: Enter sends, except the Enter that ends an IME composition ------------

function onKeyDown(e) {
  if (e.key !== 'Enter' || e.shiftKey) return;
  // while a Chinese or Japanese input method composes, Enter confirms the
  // candidate; some browsers deliver it after compositionend (keyCode 229)
  if (e.isComposing || state.composing || e.keyCode === 229 || performance.now() - state.compositionEnded < 50) return;
  e.preventDefault();
  send($('input').value);
}

// ---- export and import ------------------------------------------------------------------

async function exportAll() {
  const data = await store.exportAll();
  const blob = new Blob([JSON.stringify(data)], { type: 'application/json' });
  const a = el('a');
  a.href = URL.createObjectURL(blob);
  a.download = `hearth-chats-${new Date().toISOString().slice(0, 10)}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function importFile(file) {
  try {
    const n = await store.importAll(JSON.parse(await file.text()));
    setStatus(`Imported ${n} conversation${n === 1 ? '' : 's'}`);
    await refreshList();
  } catch (e) {
    setStatus('Import failed: ' + (e.message || e));
  }
}

// ---- start ------------------------------------------------------------------------------

function wire() {
  $('composer').addEventListener('submit', (e) => { e.preventDefault(); send($('input').value); });
  $('input').addEventListener('keydown', onKeyDown);
  $('input').addEventListener('compositionstart', () => { state.composing = true; });
  $('input').addEventListener('compositionend', () => { state.composing = false; state.compositionEnded = performance.now(); });
  $('stop').addEventListener('click', stop);
  $('new-chat').addEventListener('click', newChat);
  $('model').addEventListener('change', pickModel);
  $('theme').addEventListener('click', toggleTheme);
  $('open-settings').addEventListener('click', () => openSettings(false));
  $('settings-form').addEventListener('submit', saveSettingsForm);
  $('s-cancel').addEventListener('click', () => $('settings').close());
  $('heatmap').addEventListener('change', renderConversation);
  $('toggle-side').addEventListener('click', () => $('app').classList.toggle('side-hidden'));
  $('export').addEventListener('click', exportAll);
  $('import').addEventListener('click', () => $('import-file').click());
  $('import-file').addEventListener('change', (e) => { if (e.target.files[0]) importFile(e.target.files[0]); e.target.value = ''; });
  let timer = 0;
  $('search').addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.query = $('search').value; refreshList(); }, 150);
  });
  // copy buttons of code blocks (delegated: the blocks are rebuilt as text streams in)
  $('messages').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-copy]');
    if (b) copyText(b.closest('.code').querySelector('pre').textContent);
  });
  new IntersectionObserver((es) => { if (es.some((x) => x.isIntersecting)) listMore(); }, { root: $('conv-scroll') })
    .observe($('list-more'));
}

async function start() {
  applyTheme();
  wire();
  await loadModels();
  await refreshList();
  const open = localStorage.getItem('hearth.open');
  if (open && await store.get(open)) await openConversation(open);
  else renderConversation();
  document.body.dataset.ready = '1';
}

start();
