/** A hand-written SVG line chart (no dependencies): throughput over time, one line per series. */

export interface Series {
  label: string;
  points: Array<[number, number]>;
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function lineChart(
  title: string,
  yLabel: string,
  series: Series[],
  xLabel = 'seconds since first message',
): string {
  const W = 760;
  const H = 360;
  const L = 70;
  const R = 190;
  const T = 40;
  const B = 50;
  const xMax = niceMax(Math.max(1, ...series.flatMap((s) => s.points.map(([x]) => x))));
  const yMax = niceMax(Math.max(1, ...series.flatMap((s) => s.points.map(([, y]) => y))));
  const px = (x: number) => L + (x / xMax) * (W - L - R);
  const py = (y: number) => H - B - (y / yMax) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - R / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const y = (yMax * i) / 5;
    const x = (xMax * i) / 5;
    out.push(
      `<line x1="${L}" x2="${W - R}" y1="${py(y)}" y2="${py(y)}" stroke="#e5e5e5"/>`,
      `<text x="${L - 6}" y="${py(y) + 4}" text-anchor="end">${Math.round(y)}</text>`,
      `<text x="${px(x)}" y="${H - B + 16}" text-anchor="middle">${Math.round(x * 10) / 10}</text>`,
    );
  }
  out.push(
    `<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(18 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const c = COLOURS[i % COLOURS.length];
    const pts = [[0, 0] as [number, number], ...s.points].map(
      ([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`,
    );
    out.push(
      `<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.join(' ')}"/>`,
      `<rect x="${W - R + 12}" y="${T + i * 20}" width="12" height="12" fill="${c}"/>`,
      `<text x="${W - R + 30}" y="${T + i * 20 + 10}">${esc(s.label)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
