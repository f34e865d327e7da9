/**
 * The dashboard's server-sent-event reader (ui/sse.js: fetch + ReadableStream, since EventSource
 * cannot send the key header): the text/event-stream format cut at any byte, and openStream against
 * a small local server (the key sent, events parsed, a reconnect after the stream ends, closed on
 * request).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain browser JavaScript, no type declarations
import { openStream, sseParser } from '../../ui/sse.js';

type Parsed = { event: string; data: string; id: string | undefined };
const parse = sseParser as (onEvent: (e: Parsed) => void) => (chunk: string) => void;

describe('sseParser', () => {
  const stream = 'event: rate\ndata: {"a":1}\n\n: keep-alive\n\r\nid: 7\r\nevent: recommendations\r\ndata: line one\r\ndata: line two\r\n\r\ndata:no-space\rdata: x\r\r';
  const want: Parsed[] = [
    { event: 'rate', data: '{"a":1}', id: undefined },
    { event: 'recommendations', data: 'line one\nline two', id: '7' },
    { event: 'message', data: 'no-space\nx', id: '7' },
  ];

  it('reads events, multi-line data, ids and comments with LF, CRLF and CR line ends', () => {
    const got: Parsed[] = [];
    parse((e) => got.push(e))(stream);
    expect(got).toEqual(want);
  });

  it('gives the same events whatever the chunks (cut at every position, and one character at a time)', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const got: Parsed[] = [];
      const feed = parse((e) => got.push(e));
      feed(stream.slice(0, cut));
      feed(stream.slice(cut));
      // A CRLF cut in two is still one line end (not an empty line that would end the event early).
      expect(got, `cut at ${cut}`).toEqual(want);
    }
    const got: Parsed[] = [];
    const feed = parse((e) => got.push(e));
    for (const ch of stream) feed(ch);
    expect(got).toEqual(want);
  });
});

describe('openStream', () => {
  let server: Server;
  let url: string;
  const keys: (string | undefined)[] = [];
  let connections = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      keys.push(req.headers['x-api-key'] as string | undefined);
      connections++;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`: hello\n\nevent: rate\ndata: {"n":${connections}}\n\n`);
      // The first stream ends at once (the reader reconnects); later ones stay open.
      if (connections === 1) res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/stream`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it('sends the key, parses the JSON data, reconnects after the stream ends, and stops when closed', async () => {
    const events: { event: string; data: { n: number } }[] = [];
    const errors: string[] = [];
    const close = (openStream as (url: string, key: string, o: object) => () => void)(url, 'k-123', {
      retryMs: 50,
      onEvent: (e: { event: string; data: { n: number } }) => events.push(e),
      onError: (err: Error) => errors.push(err.message),
    });
    const t0 = Date.now();
    while (events.length < 2 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    close();
    expect(events.map((e) => [e.event, e.data.n])).toEqual([
      ['rate', 1],
      ['rate', 2],
    ]);
    expect(errors).toEqual(['the stream ended; reconnecting']);
    expect(keys).toEqual(['k-123', 'k-123']);
    await new Promise((r) => setTimeout(r, 200));
    expect(connections, 'no reconnect after close').toBe(2);
  });
});
