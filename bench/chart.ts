/** A small SVG chart for the benchmarks: grouped horizontal bars, one colour per series. */
export interface Bar {
  group: string;
  series: string;
  value: number;
}

export function groupedBars(title: string, bars: readonly Bar[]): string {
  const groups = [...new Set(bars.map((b) => b.group))];
  const series = [...new Set(bars.map((b) => b.series))];
  const colors = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948'];
  const max = Math.max(...bars.map((b) => b.value), 0.0001);
  const bar = 18;
  const gap = 24;
  const left = 260;
  const width = 760;
  const height = 40 + groups.length * (series.length * bar + gap) + 40;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`];
  parts.push(`<text x="10" y="20" font-size="14">${title}</text>`);
  groups.forEach((g, gi) => {
    const y0 = 40 + gi * (series.length * bar + gap);
    parts.push(`<text x="10" y="${y0 + (series.length * bar) / 2 + 4}">${g}</text>`);
    series.forEach((name, si) => {
      const b = bars.find((x) => x.group === g && x.series === name);
      if (!b) return;
      const w = ((width - left - 80) * b.value) / max;
      const y = y0 + si * bar;
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${bar - 3}" fill="${colors[si % colors.length]}"/>`);
      parts.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + bar - 6}">${b.value.toFixed(4)}</text>`);
    });
  });
  const ly = height - 20;
  series.forEach((name, si) => {
    parts.push(`<rect x="${left + si * 170}" y="${ly - 10}" width="12" height="12" fill="${colors[si % colors.length]}"/>`);
    parts.push(`<text x="${left + si * 170 + 16}" y="${ly}">${name}</text>`);
  });
  parts.push('</svg>\n');
  return parts.join('\n');
}
