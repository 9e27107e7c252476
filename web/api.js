// api.js - the server's OpenAI API from the page: the model list, and chat
// completions streamed as server-sent events (fetch + ReadableStream), with
// the API key the user entered (Authorization: Bearer). Aborting the fetch
// closes the connection, which cancels the request on the server.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(key) {
  const h = { 'content-type': 'application/json' };
  if (key) h.authorization = 'Bearer ' + key;
  return h;
}

async function fail(r) {
  let msg = `${r.status} ${r.statusText}`;
  try {
    const j = await r.json();
    if (j?.error?.message) msg = j.error.message;
  } catch { /* not JSON */ }
  return new ApiError(r.status, msg);
}

export async function listModels(key) {
  const r = await fetch('/v1/models', { headers: headers(key) });
  if (!r.ok) throw await fail(r);
  const j = await r.json();
  return (j.data || []).map((m) => String(m.id));
}

// The events of an SSE body: calls onData(parsed JSON) for each "data:" line
// until "[DONE]".
async function readEvents(body, onData) {
  const reader = body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') return;
      let j;
      try { j = JSON.parse(data); } catch { continue; }
      if (j.error) throw new ApiError(500, j.error.message || 'the server reported an error');
      onData(j);
    }
  }
}

// Streams one chat completion: body is the request (stream is set here);
// onDelta({content, reasoning, toolCalls, tokens, usage, finish}) per chunk.
export async function streamChat({ key, body, signal, onDelta }) {
  const r = await fetch('/v1/chat/completions', {
    method: 'POST', headers: headers(key), signal,
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (!r.ok) throw await fail(r);
  await readEvents(r.body, (j) => {
    const c = j.choices?.[0];
    const d = c?.delta || {};
    const tokens = (c?.logprobs?.content || c?.uncertainty?.content || []).map((t) => ({
      t: String(t.token ?? ''), lp: typeof t.logprob === 'number' ? t.logprob : null,
      h: typeof t.entropy === 'number' ? t.entropy : null,
    }));
    onDelta({
      content: typeof d.content === 'string' ? d.content : '',
      reasoning: typeof d.reasoning_content === 'string' ? d.reasoning_content : '',
      toolCalls: Array.isArray(d.tool_calls) ? d.tool_calls : [],
      tokens, usage: j.usage || null, finish: c?.finish_reason || null,
    });
  });
}
