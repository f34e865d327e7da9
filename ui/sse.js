// Server-sent events over fetch: EventSource cannot send the x-api-key header, so the stream is read
// from fetch's body (a ReadableStream) and parsed here (the text/event-stream format: event, data,
// id fields; a blank line ends an event; lines starting with ':' are comments, e.g. heartbeats).

/** Parses text/event-stream chunks; calls onEvent({event, data, id}) per complete event. */
export function sseParser(onEvent) {
  let buffer = '';
  let event = { event: 'message', data: [], id: undefined };
  // A CR ended the last chunk: an LF starting the next one belongs to that line end (CRLF cut in two).
  let skipLF = false;
  return (chunk) => {
    buffer += chunk;
    if (skipLF && buffer.startsWith('\n')) buffer = buffer.slice(1);
    skipLF = false;
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      if (buffer[nl] === '\r' && nl === buffer.length - 1) skipLF = true;
      buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (event.data.length > 0) onEvent({ event: event.event, data: event.data.join('\n'), id: event.id });
        event = { event: 'message', data: [], id: event.id };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event.event = value;
      else if (field === 'data') event.data.push(value);
      else if (field === 'id') event.id = value;
    }
  };
}

/**
 * Opens a stream with the key; onEvent gets each event with its data parsed as JSON. Reconnects
 * after retryMs when the stream ends or fails (onError is told); returns a function that closes it.
 */
export function openStream(url, key, { onEvent, onError, onOpen, retryMs = 2000 }) {
  const abort = new AbortController();
  let timer;
  const connect = async () => {
    try {
      const res = await fetch(url, { headers: { accept: 'text/event-stream', 'x-api-key': key }, signal: abort.signal, cache: 'no-store' });
      if (!res.ok || !res.body) {
        const body = await res.json().catch(() => ({}));
        throw new Error(`${res.status} ${body.code ?? ''}: ${body.message ?? res.statusText}`);
      }
      onOpen?.();
      const parse = sseParser((e) => onEvent({ ...e, data: JSON.parse(e.data) }));
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parse(value);
      }
      if (!abort.signal.aborted) onError?.(new Error('the stream ended; reconnecting'));
    } catch (err) {
      if (abort.signal.aborted) return;
      onError?.(err);
    }
    if (!abort.signal.aborted) timer = setTimeout(connect, retryMs);
  };
  void connect();
  return () => {
    clearTimeout(timer);
    abort.abort();
  };
}
