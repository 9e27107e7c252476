// store.js - conversations kept in the browser (IndexedDB "hearth-chat",
// store "conversations", keyed by id, indexed by "updated" so that the list
// reads newest first a page at a time however many there are).
//
// A conversation: { id, title, created, updated (ms), model, system,
//   messages: [{ role: 'user' | 'assistant', content, reasoning?, tool_calls?,
//                tokens? [{t, lp, h}], stats? {n, tps, ms}, stopped?, error? }] }

const DB_NAME = 'hearth-chat';
const STORE = 'conversations';
let dbp = null;

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function db() {
  if (!dbp) {
    const r = indexedDB.open(DB_NAME, 1);
    r.onupgradeneeded = () => {
      const s = r.result.createObjectStore(STORE, { keyPath: 'id' });
      s.createIndex('updated', 'updated');
    };
    dbp = req(r);
  }
  return dbp;
}

async function tx(mode) {
  return (await db()).transaction(STORE, mode).objectStore(STORE);
}

export function newId() {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return 'c' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export async function get(id) {
  return req((await tx('readonly')).get(id));
}

export async function put(conv) {
  return req((await tx('readwrite')).put(conv));
}

export async function remove(id) {
  return req((await tx('readwrite')).delete(id));
}

export async function count() {
  return req((await tx('readonly')).count());
}

// Up to limit conversations' {id, title, updated}, newest first, after skipping
// offset; with query, only those whose title or text holds it (case-insensitive).
export async function list({ offset = 0, limit = 50, query = '' } = {}) {
  const s = await tx('readonly');
  const q = query.trim().toLowerCase();
  const out = [];
  return new Promise((resolve, reject) => {
    let skipped = 0, advanced = false;
    const r = s.index('updated').openCursor(null, 'prev');
    r.onerror = () => reject(r.error);
    r.onsuccess = () => {
      const c = r.result;
      if (!c || out.length >= limit) return resolve(out);
      if (!q && offset && !advanced) { // without a query, jump over the first page(s) at once
        advanced = true;
        c.advance(offset);
        return;
      }
      const v = c.value;
      if (!q || matches(v, q)) {
        if (q && skipped < offset) skipped++;
        else out.push({ id: v.id, title: v.title, updated: v.updated });
      }
      c.continue();
    };
  });
}

function matches(conv, q) {
  if (String(conv.title || '').toLowerCase().includes(q)) return true;
  for (const m of conv.messages || [])
    if (String(m.content || '').toLowerCase().includes(q)) return true;
  return false;
}

export async function all() {
  return req((await tx('readonly')).getAll());
}

// ---- export and import ---------------------------------------------------------------

const MAX_IMPORT = 100000;     // conversations in one file
const MAX_MESSAGES = 10000;    // per conversation
const MAX_TEXT = 4 << 20;      // characters of one text

function str(v, max = MAX_TEXT) {
  return typeof v === 'string' ? v.slice(0, max) : '';
}

function num(v, dflt) {
  return typeof v === 'number' && Number.isFinite(v) ? v : dflt;
}

// One message of an imported file, keeping only known fields of the right types.
function cleanMessage(m) {
  if (!m || typeof m !== 'object' || (m.role !== 'user' && m.role !== 'assistant')) return null;
  const out = { role: m.role, content: str(m.content) };
  if (m.reasoning) out.reasoning = str(m.reasoning);
  if (Array.isArray(m.tool_calls))
    out.tool_calls = m.tool_calls.slice(0, 64).map((c) => ({ name: str(c?.name, 200), arguments: str(c?.arguments, 1 << 20) }));
  if (Array.isArray(m.tokens))
    out.tokens = m.tokens.slice(0, 100000).map((t) => ({ t: str(t?.t, 200), lp: num(t?.lp, null), h: num(t?.h, null) }));
  if (m.stats && typeof m.stats === 'object') out.stats = { n: num(m.stats.n, 0), tps: num(m.stats.tps, 0), ms: num(m.stats.ms, 0) };
  if (m.stopped === true) out.stopped = true;
  if (m.model) out.model = str(m.model, 200);
  return out;
}

// A conversation of an imported file, or null when it is not one.
export function cleanConversation(c) {
  if (!c || typeof c !== 'object' || !Array.isArray(c.messages) || c.messages.length > MAX_MESSAGES) return null;
  const id = typeof c.id === 'string' && /^[\w-]{1,64}$/.test(c.id) ? c.id : newId();
  const now = Date.now();
  return {
    id, title: str(c.title, 300) || 'Imported conversation', created: num(c.created, now), updated: num(c.updated, now),
    model: str(c.model, 200), system: str(c.system),
    messages: c.messages.map(cleanMessage).filter(Boolean),
  };
}

export async function exportAll() {
  return { format: 'hearth-chat', version: 1, exported: new Date().toISOString(), conversations: await all() };
}

// Imports a parsed export file; the number of conversations stored.
export async function importAll(data) {
  const list = Array.isArray(data) ? data : data?.conversations;
  if (!Array.isArray(list)) throw new Error('not a hearth-chat export: no "conversations" list');
  if (list.length > MAX_IMPORT) throw new Error(`too many conversations (${list.length}, at most ${MAX_IMPORT})`);
  const s = await tx('readwrite');
  let n = 0;
  for (const c of list) {
    const clean = cleanConversation(c);
    if (clean) { s.put(clean); n++; }
  }
  await new Promise((resolve, reject) => {
    s.transaction.oncomplete = resolve;
    s.transaction.onerror = () => reject(s.transaction.error);
  });
  return n;
}
