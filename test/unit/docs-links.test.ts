/**
 * The README and the reference pages in docs/ link to each other. This keeps those links working:
 * every relative link in README.md and docs/*.md names a file or folder that exists, and every
 * `#anchor` names a heading of the page it points to (GitHub's slugs). It also keeps the README what
 * it is meant to be: short, the Quickstart first, and every docs page and section reachable from it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const docsDir = join(root, 'docs');
const pages = [join(root, 'README.md'), ...readdirSync(docsDir).filter((f) => f.endsWith('.md')).sort().map((f) => join(docsDir, f))];
const show = (file: string): string => relative(root, file);

/** The Markdown without fenced code blocks (their lines become empty, so line numbers stay). */
function withoutFences(markdown: string): string[] {
  let fence: string | undefined;
  return markdown.split('\n').map((line) => {
    const marker = /^\s*(```|~~~)/.exec(line)?.[1];
    if (fence === undefined && marker !== undefined) {
      fence = marker;
      return '';
    }
    if (fence !== undefined) {
      if (marker === fence) fence = undefined;
      return '';
    }
    return line;
  });
}

/** GitHub's anchor for a heading's text (github-slugger): lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
    .replace(/<[^>]+>/g, '') // inline HTML
    .replace(/[`*]/g, ''); // code spans and emphasis
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

interface Heading {
  level: number;
  text: string;
  anchor: string;
}

/** A page's headings with their anchors; a repeated slug gets -1, -2, ... as on GitHub. */
function headings(file: string): Heading[] {
  const seen = new Map<string, number>();
  const out: Heading[] = [];
  for (const line of withoutFences(readFileSync(file, 'utf8'))) {
    const m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[2]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.push({ level: m[1]!.length, text: m[2]!, anchor: n === 0 ? base : `${base}-${n}` });
  }
  return out;
}

interface Link {
  line: number;
  target: string;
}

/** Inline links and images outside code (fenced blocks and code spans). */
function links(file: string): Link[] {
  const out: Link[] = [];
  withoutFences(readFileSync(file, 'utf8')).forEach((raw, i) => {
    const line = raw.replace(/`[^`]*`/g, (code) => ' '.repeat(code.length));
    for (const m of line.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ line: i + 1, target: m[1]! });
  });
  return out;
}

const isExternal = (target: string): boolean => /^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//');

describe('slug', () => {
  it("computes GitHub's heading anchors", () => {
    expect(slug('Using an existing Kafka cluster')).toBe('using-an-existing-kafka-cluster');
    expect(slug('The `streamrec config` command')).toBe('the-streamrec-config-command');
    expect(slug('Rules & limits (v2)')).toBe('rules--limits-v2');
    expect(slug('What it is, and how it fits.')).toBe('what-it-is-and-how-it-fits');
    expect(slug('state_dir and **bold**')).toBe('state_dir-and-bold');
  });
});

describe('docs links', () => {
  it('finds the pages', () => {
    expect(pages.map(show)).toEqual(expect.arrayContaining(['README.md', 'docs/api.md', 'docs/operations.md', 'docs/configuration.md', 'docs/errors.md']));
  });

  for (const page of pages) {
    it(`${show(page)}: every relative link and anchor resolves`, () => {
      const broken: string[] = [];
      for (const { line, target } of links(page)) {
        if (target === '' || isExternal(target)) continue;
        const hash = target.indexOf('#');
        const path = decodeURI(hash < 0 ? target : target.slice(0, hash));
        const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
        const file = path === '' ? page : path.startsWith('/') ? join(root, path) : resolve(dirname(page), path);
        const where = `${show(page)}:${line}: ${target}`;
        if (!file.startsWith(root + '/') && file !== root) {
          broken.push(`${where} (outside the repository)`);
          continue;
        }
        if (!existsSync(file)) {
          broken.push(`${where} (no such file)`);
          continue;
        }
        if (anchor === undefined) continue;
        if (statSync(file).isDirectory() || !file.endsWith('.md')) {
          broken.push(`${where} (an anchor into something that is not a Markdown page)`);
          continue;
        }
        if (!headings(file).some((h) => h.anchor === anchor)) broken.push(`${where} (no heading with the anchor #${anchor} in ${show(file)})`);
      }
      expect(broken).toEqual([]);
    });
  }
});

describe('README', () => {
  const readme = join(root, 'README.md');
  const text = readFileSync(readme, 'utf8');

  it('is short, with the Quickstart first', () => {
    expect(text.split('\n').length - (text.endsWith('\n') ? 1 : 0)).toBeLessThanOrEqual(250);
    expect(headings(readme).find((h) => h.level === 2)?.text).toBe('Quickstart');
    expect(text).toContain('npm ci && npm start');
    expect(text).toContain('npm ci && npm test');
  });

  it('links every docs page and every section (## heading) of it', () => {
    const linked = new Set(
      links(readme)
        .map((l) => l.target)
        .filter((t) => !isExternal(t))
        .map((t) => resolve(root, decodeURI(t.split('#')[0]!)) + (t.includes('#') ? `#${t.split('#')[1]}` : '')),
    );
    const missing: string[] = [];
    for (const page of pages.slice(1)) {
      if (![...linked].some((l) => l === page || l.startsWith(`${page}#`))) missing.push(show(page));
      for (const h of headings(page).filter((x) => x.level === 2)) {
        if (!linked.has(`${page}#${h.anchor}`)) missing.push(`${show(page)}#${h.anchor} (${h.text})`);
      }
    }
    expect(missing, 'docs pages and sections the README does not link').toEqual([]);
  });
});
