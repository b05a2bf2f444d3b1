import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  axisLayout,
  escapeXml,
  formatCompact,
  logTicks,
  niceStep,
  niceTicks,
  renderPlot,
  scaleValue,
  type PlotOptions,
} from '../../src/report/svg.ts';

test('nice steps are 1, 2 or 5 times a power of ten, nearest the requested spacing', () => {
  assert.equal(niceStep(1, 5), 0.2);
  assert.equal(niceStep(10, 5), 2);
  assert.equal(niceStep(40.6e6, 8), 5e6);
  assert.equal(niceStep(0.0037, 5), 0.001);
  assert.equal(niceStep(0, 5), 1);
  for (const range of [0.013, 0.7, 3, 17, 999, 4.2e7]) {
    const step = niceStep(range, 5);
    const mantissa = step / 10 ** Math.floor(Math.log10(step));
    assert.ok([1, 2, 5].includes(Number(mantissa.toFixed(9))), `step ${step} for range ${range}`);
    const count = range / step;
    assert.ok(count >= 5 / 1.5 && count <= 5 * 1.5, `range ${range}: ${count} steps`);
  }
});

test('linear ticks are exact decimals inside the interval', () => {
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  // Float noise (0.30000000000000004) would show up in the labels.
  assert.deepEqual(niceTicks(0.1, 0.7, 6), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]);
  assert.deepEqual(niceTicks(-0.013, 0.041, 5), [-0.01, 0, 0.01, 0.02, 0.03, 0.04]);
  assert.deepEqual(niceTicks(3, 3), [3]);
  assert.deepEqual(niceTicks(2, 1), []);
  for (const tick of niceTicks(0, 4.06e7, 8)) assert.equal(tick % 5e6, 0);
});

test('log ticks are powers of ten, with 2x and 5x on short axes', () => {
  assert.deepEqual(logTicks(1, 1e6), [1, 10, 100, 1000, 1e4, 1e5, 1e6]);
  assert.deepEqual(logTicks(0.001, 0.1), [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1]);
  assert.deepEqual(logTicks(3, 40), [5, 10, 20]);
  assert.deepEqual(logTicks(0, 10), []);
});

test('axis domains round out to ticks, honour fixed ends and survive degenerate data', () => {
  assert.deepEqual(axisLayout([0.013, 0.87], { label: 'x' }).domain, [0, 1]);
  assert.deepEqual(axisLayout([0.3, 0.87], { label: 'x', includeZero: true }).domain, [0, 1]);
  assert.deepEqual(axisLayout([0.3, 0.87], { label: 'x', min: 0.25, max: 0.9 }).domain, [0.25, 0.9]);
  assert.deepEqual(axisLayout([], { label: 'x' }).domain, [0, 1]);
  const single = axisLayout([0.05], { label: 'x' });
  assert.ok(single.domain[0] < 0.05 && single.domain[1] > 0.05, JSON.stringify(single));
  const log = axisLayout([0, -1, 320, 45_000], { label: 'x', scale: 'log' });
  assert.deepEqual(log.domain, [100, 100_000]);
  assert.deepEqual(log.ticks, [100, 1000, 10_000, 100_000]);
});

test('scales map the domain onto the range, log scales in log space', () => {
  assert.equal(scaleValue(0, 'linear', [0, 10], 100, 200), 100);
  assert.equal(scaleValue(5, 'linear', [0, 10], 100, 200), 150);
  // y axes map upwards: the domain's minimum goes to the bottom pixel.
  assert.equal(scaleValue(10, 'linear', [0, 10], 300, 20), 20);
  assert.equal(scaleValue(100, 'log', [10, 1000], 0, 100), 50);
});

test('compact numbers are short and locale-free', () => {
  assert.equal(formatCompact(0), '0');
  assert.equal(formatCompact(40_600_000), '40.6M');
  assert.equal(formatCompact(1_250_000), '1.25M');
  assert.equal(formatCompact(2500), '2.5k');
  assert.equal(formatCompact(0.2), '0.2');
  assert.equal(formatCompact(0.0005), '0.0005');
  assert.equal(formatCompact(-3), '-3');
  assert.equal(formatCompact(2.4e9), '2.4G');
});

function plot(overrides: Partial<PlotOptions> = {}): PlotOptions {
  return {
    id: 'p',
    title: 'front',
    x: { label: 'FLOPs ratio', min: 0, max: 1 },
    y: { label: 'impairment', includeZero: true },
    series: [
      {
        name: 'front',
        points: [
          { x: 0.2, y: 0.4, label: 'a' },
          { x: 0.5, y: 0.1, label: 'b' },
          { x: 1, y: 0, label: 'c' },
        ],
        line: 'step',
      },
    ],
    marks: [{ x: 0.5, y: 0.1, label: 'flops-50' }],
    verticalLines: [{ x: 0.3, label: 'budget' }],
    ...overrides,
  };
}

/** The numbers of an attribute across the output, e.g. every `x1="..."`. */
function attributeValues(svg: string, name: string): number[] {
  return [...svg.matchAll(new RegExp(` ${name}="(-?[0-9.]+)"`, 'g'))].map((m) => Number(m[1]));
}

test('a plot has its axes, ticks, labels, series, marks and lines where the data says', () => {
  const svg = renderPlot(plot({ width: 400, height: 300 }));
  assert.match(svg, /^<svg [^>]*width="400" height="300"/);
  assert.ok(svg.endsWith('</svg>'));
  assert.ok(!svg.includes('xmlns'), 'inline SVG needs no namespace URL');
  // x ticks 0..1 by 0.2 (fixed domain), y ticks 0..0.4 by 0.1.
  const tickLabels = [...svg.matchAll(/<text [^>]*text-anchor="(?:middle|end)">([^<]*)<\/text>/g)].map((m) => m[1]);
  for (const label of ['0', '0.2', '0.4', '0.6', '0.8', '1', '0.1', '0.3']) assert.ok(tickLabels.includes(label), `${label} in ${tickLabels.join()}`);
  assert.match(svg, />FLOPs ratio<\/text>/);
  assert.match(svg, />impairment<\/text>/);
  // Step line: M first point, then H/V pairs to each next point.
  const path = /class="series-line" d="([^"]+)"/.exec(svg)?.[1] ?? '';
  assert.match(path, /^M[\d.]+ [\d.]+H[\d.]+V[\d.]+H[\d.]+V[\d.]+$/);
  // The plot area spans x = 62 .. 384; data x 0.3 is 30% across it.
  const vline = /class="vline" x1="([\d.]+)"/.exec(svg);
  assert.ok(vline);
  assert.ok(Math.abs(Number(vline[1]) - (62 + 0.3 * 322)) < 0.01, vline[1]);
  assert.match(svg, />flops-50<\/text>/);
  assert.match(svg, /<circle [^>]*r="7"[^>]*><title>flops-50<\/title>/);
  assert.equal((svg.match(/<title>[abc]<\/title>/g) ?? []).length, 3);
  // Every coordinate is short (at most two decimals) and finite.
  for (const name of ['x', 'y', 'x1', 'y1', 'x2', 'y2', 'cx', 'cy']) {
    for (const value of attributeValues(svg, name)) {
      assert.ok(Number.isFinite(value));
      assert.equal(value, Math.round(value * 100) / 100);
    }
  }
});

test('the same options give the same string', () => {
  assert.equal(renderPlot(plot()), renderPlot(plot()));
  assert.notEqual(renderPlot(plot()), renderPlot(plot({ id: 'q' })));
});

test('every caller string is escaped', () => {
  const hostile = '<script>alert("x")</script>&';
  const svg = renderPlot(
    plot({
      id: 'a"b<c',
      title: hostile,
      x: { label: hostile, min: 0, max: 1 },
      y: { label: hostile },
      series: [{ name: hostile, points: [{ x: 0.5, y: 1, label: hostile }], color: '"red" onload="x"' }, { name: 'second', points: [] }],
      marks: [{ x: 0.5, y: 1, label: hostile, legend: hostile }],
      verticalLines: [{ x: 0.2, label: hostile }],
    }),
  );
  assert.ok(!svg.includes('<script'), svg);
  assert.ok(!svg.includes('onload="'), 'a colour cannot open an attribute');
  assert.ok(svg.includes('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;&#38;'));
  assert.match(svg, /clipPath id="a_b_c-clip"/);
  assert.equal(escapeXml(`<&>"'`), '&#60;&#38;&#62;&#34;&#39;');
});

test('a legend lists the series and mark kinds, and only when asked or useful', () => {
  const single = renderPlot(plot({ title: 'one series', marks: [] }));
  assert.ok(!single.includes('>front</text>'), 'one series needs no legend');
  const withLegend = renderPlot(
    plot({
      series: [
        { name: 'joint front', points: [{ x: 0.1, y: 0.1 }], line: 'straight' },
        { name: 'uniform-l1', points: [{ x: 0.2, y: 0.3 }] },
      ],
      marks: [
        { x: 0.1, y: 0.1, label: 'a', legend: 'chosen' },
        { x: 0.2, y: 0.2, label: 'b', legend: 'chosen' },
      ],
    }),
  );
  assert.match(withLegend, />joint front<\/text>/);
  assert.match(withLegend, />uniform-l1<\/text>/);
  assert.equal((withLegend.match(/>chosen<\/text>/g) ?? []).length, 1);
});

test('log axes skip values they cannot show instead of emitting NaN', () => {
  const svg = renderPlot(
    plot({
      x: { label: 'MACs', scale: 'log' },
      series: [{ name: 's', points: [{ x: 0, y: 1 }, { x: -5, y: 1 }, { x: 1000, y: 1 }, { x: 1e6, y: 2 }], line: 'straight' }],
      marks: [],
      verticalLines: [{ x: 0, label: 'zero' }],
    }),
  );
  assert.ok(!svg.includes('NaN') && !svg.includes('Infinity'));
  assert.ok(!svg.includes('>zero<'));
  assert.equal((svg.match(/<circle /g) ?? []).length, 2);
});

test('mark labels stay inside the plot and do not overlap each other', () => {
  const svg = renderPlot(
    plot({
      y: { label: 'impairment', min: 0, max: 1 },
      marks: [
        { x: 0.2, y: 1, label: 'top' },
        { x: 0.2, y: 0.98, label: 'next' },
      ],
    }),
  );
  const labels = [...svg.matchAll(/class="mark-label" x="([\d.]+)" y="([\d.]+)"/g)].map((m) => Number(m[2]));
  assert.equal(labels.length, 2);
  // The plot area starts at y = 10 + 20 (title) + legend rows; labels sit below its top edge.
  for (const y of labels) assert.ok(y - 11 >= 30, `label baseline ${y}`);
  assert.ok(Math.abs(labels[0] - labels[1]) >= 11, `labels at ${labels.join(', ')} overlap`);
});
