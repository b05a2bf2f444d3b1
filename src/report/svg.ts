/**
 * A tiny static SVG plot library for the run report: scatter and line series on linear or log
 * axes with "nice" ticks, a legend, highlighted points and labelled vertical lines.
 *
 * Why not a charting package: the report is rendered in a Lambda and opened from S3 or a laptop
 * with no network, so it must be one HTML file with no scripts and no URLs; the plots we need
 * are simple enough that ~300 lines beat a dependency plus a headless DOM.
 *
 * Output is a pure function of the input (no clock, no counters, no locale-dependent
 * formatting; coordinates rounded to 0.01 px), so a re-rendered report is byte-identical and
 * tests can compare strings. Every caller-supplied string (titles, labels, colours) is escaped.
 * The `<svg>` has no xmlns: it is meant to be inlined in HTML, where the parser puts it in the
 * SVG namespace (pass `standalone: true` for a file of its own).
 */

export type ScaleKind = 'linear' | 'log';

export interface AxisOptions {
  readonly label: string;
  /** Default `linear`. On a log axis, points with a value <= 0 cannot be drawn and are skipped. */
  readonly scale?: ScaleKind;
  /** Fixed ends of the axis; an end left out is taken from the data and rounded to a tick. */
  readonly min?: number;
  readonly max?: number;
  /** Stretch an automatic linear domain to include 0 (cost axes read better from zero). */
  readonly includeZero?: boolean;
  /** About this many ticks on a linear axis (default 5). */
  readonly tickCount?: number;
  /** Tick label text (default: `formatCompact`). */
  readonly format?: (value: number) => string;
}

export interface PlotPoint {
  readonly x: number;
  readonly y: number;
  /** Shown as the point's tooltip (`<title>`), which needs no script. */
  readonly label?: string;
}

export interface Series {
  readonly name: string;
  readonly points: readonly PlotPoint[];
  /**
   * How consecutive points are joined, in the given order: `none` (scatter, the default),
   * `straight`, or `step` (horizontal then vertical: the attainment curve of a front where
   * both objectives are minimised, given points sorted by x).
   */
  readonly line?: 'none' | 'straight' | 'step';
  /** Draw a marker at each point (default: true). */
  readonly markers?: boolean;
  readonly dashed?: boolean;
  /** Default: the series' place in a colour-blind-safe palette. */
  readonly color?: string;
}

/** A point drawn on top of everything, larger, with a visible label (e.g. a chosen scheme). */
export interface MarkedPoint {
  readonly x: number;
  readonly y: number;
  /** Drawn beside the mark; '' draws none (e.g. a second mark at the same place). */
  readonly label: string;
  /** Hover text (default: the label). */
  readonly tooltip?: string;
  readonly color?: string;
  /** `ring` (default) or `diamond`, to tell two kinds of mark apart (estimate vs measured). */
  readonly shape?: 'ring' | 'diamond';
  /** Appears in the legend once per distinct name (marks without it stay out of the legend). */
  readonly legend?: string;
}

/** A labelled vertical line across the plot area (e.g. a FLOPs target). */
export interface VerticalLine {
  readonly x: number;
  readonly label: string;
  readonly color?: string;
}

export interface PlotOptions {
  /** Unique within the page: prefixes the clip-path id. Characters outside [A-Za-z0-9_-] are replaced. */
  readonly id: string;
  readonly title?: string;
  /** Pixels (default 480 x 320). */
  readonly width?: number;
  readonly height?: number;
  readonly x: AxisOptions;
  readonly y: AxisOptions;
  readonly series: readonly Series[];
  readonly marks?: readonly MarkedPoint[];
  readonly verticalLines?: readonly VerticalLine[];
  /** Default: shown when there is more than one legend entry. */
  readonly legend?: boolean;
  /** Adds the xmlns attribute so the string is a valid .svg file on its own. */
  readonly standalone?: boolean;
}

/** Okabe-Ito colours without the yellow, which vanishes on white. */
export const PALETTE: readonly string[] = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000'];

const FONT_SIZE = 11;
/** Average glyph width of the sans-serif stack at FONT_SIZE; only used to lay out the legend. */
const CHAR_WIDTH = 6.2;

// ---------------------------------------------------------------------------------------------
// Text and numbers

/** Escapes text for SVG/HTML element content and double- or single-quoted attributes. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A coordinate with at most two decimals, never `-0` (so output is stable and short). */
function px(value: number): string {
  const rounded = Math.round(value * 100) / 100;
  return Object.is(rounded, -0) ? '0' : String(rounded);
}

/** Cleans float noise from a computed tick (0.30000000000000004 -> 0.3). */
function clean(value: number): number {
  const cleaned = Number(value.toPrecision(12));
  return Object.is(cleaned, -0) ? 0 : cleaned;
}

/**
 * Short, locale-free number text: 3 significant digits with SI suffixes from 1e3 up
 * (`1.25M`, `40.5k`, `0.25`, `0.0005`, `-3`).
 */
export function formatCompact(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return '0';
  const abs = Math.abs(value);
  const units: readonly [number, string][] = [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [size, suffix] of units) {
    if (abs >= size) return `${trimNumber((value / size).toPrecision(3))}${suffix}`;
  }
  return trimNumber(value.toPrecision(3));
}

/** `1.50` -> `1.5`, `2.00` -> `2`, `1.20e-7` -> `1.2e-7`. */
function trimNumber(text: string): string {
  const [mantissa, exponent] = text.split('e');
  const trimmed = mantissa.includes('.') ? mantissa.replace(/0+$/, '').replace(/\.$/, '') : mantissa;
  return exponent === undefined ? trimmed : `${trimmed}e${exponent}`;
}

// ---------------------------------------------------------------------------------------------
// Ticks and domains

/**
 * The 1-2-5 x 10^k step nearest to `range / count` in log space (thresholds at the geometric
 * means, as d3 does): rounding up instead would turn "about 8 ticks" over 40.6M into 10M steps
 * (5 ticks); nearest gives 5M steps. So the tick count lands within ~1.4x of `count`.
 */
export function niceStep(range: number, count: number): number {
  if (!(range > 0) || !Number.isFinite(range)) return 1;
  const raw = range / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / magnitude;
  const nice = fraction >= Math.sqrt(50) ? 10 : fraction >= Math.sqrt(10) ? 5 : fraction >= Math.sqrt(2) ? 2 : 1;
  return clean(nice * magnitude);
}

/** Multiples of `niceStep(max - min, count)` inside [min, max] (inclusive, ascending). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) return [];
  if (min === max) return [clean(min)];
  const step = niceStep(max - min, count);
  const first = Math.ceil(clean(min / step));
  const last = Math.floor(clean(max / step));
  const ticks: number[] = [];
  // Multiply integers by the step (not repeated addition) so errors do not accumulate.
  for (let i = first; i <= last; i++) ticks.push(clean(i * step));
  return ticks;
}

/**
 * Ticks of a log axis on [min, max] (both > 0): the powers of ten, plus 2x and 5x of each when
 * the axis spans fewer than three decades (else a short axis would show one or two labels).
 */
export function logTicks(min: number, max: number): number[] {
  if (!(min > 0) || !(max >= min) || !Number.isFinite(max)) return [];
  const low = Math.floor(Math.log10(min));
  const high = Math.ceil(Math.log10(max));
  const multiples = high - low < 3 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let exponent = low; exponent <= high; exponent++) {
    for (const m of multiples) {
      const tick = clean(m * 10 ** exponent);
      // A relative tolerance: 10 ** -3 is not exactly 0.001.
      if (tick >= min * (1 - 1e-9) && tick <= max * (1 + 1e-9)) ticks.push(tick);
    }
  }
  return ticks;
}

export interface AxisLayout {
  readonly domain: readonly [number, number];
  readonly ticks: readonly number[];
}

/**
 * The domain and ticks of an axis that must show `values`: fixed ends win, free ends are
 * rounded out to the next tick (linear) or power of ten (log); an empty or single-valued
 * data set still gets a usable, non-degenerate axis.
 */
export function axisLayout(values: readonly number[], axis: AxisOptions): AxisLayout {
  const count = axis.tickCount ?? 5;
  if (axis.scale === 'log') {
    const positive = values.filter((v) => v > 0 && Number.isFinite(v));
    let low = axis.min !== undefined && axis.min > 0 ? axis.min : positive.length > 0 ? 10 ** Math.floor(Math.log10(Math.min(...positive))) : 1;
    let high = axis.max !== undefined && axis.max > 0 ? axis.max : positive.length > 0 ? 10 ** Math.ceil(Math.log10(Math.max(...positive))) : 10;
    low = clean(low);
    high = clean(high);
    if (high <= low) high = clean(low * 10);
    return { domain: [low, high], ticks: logTicks(low, high) };
  }
  const finite = values.filter(Number.isFinite);
  let low = axis.min ?? (finite.length > 0 ? Math.min(...finite) : 0);
  let high = axis.max ?? (finite.length > 0 ? Math.max(...finite) : 1);
  if (axis.includeZero) {
    if (axis.min === undefined) low = Math.min(low, 0);
    if (axis.max === undefined) high = Math.max(high, 0);
  }
  if (high < low) [low, high] = [high, low];
  if (high === low) {
    // One value: open an interval around it proportional to its size (impairments are ~0.01).
    const pad = low === 0 ? 1 : Math.abs(low) * 0.1;
    if (axis.min === undefined) low -= pad;
    if (axis.max === undefined || axis.min !== undefined) high += pad;
  }
  const step = niceStep(high - low, count);
  if (axis.min === undefined) low = clean(Math.floor(clean(low / step)) * step);
  if (axis.max === undefined) high = clean(Math.ceil(clean(high / step)) * step);
  return { domain: [low, high], ticks: niceTicks(low, high, count) };
}

/** Maps a data value onto [rangeStart, rangeEnd]; log scales map log10 linearly. */
export function scaleValue(
  value: number,
  kind: ScaleKind,
  domain: readonly [number, number],
  rangeStart: number,
  rangeEnd: number,
): number {
  const [d0, d1] = kind === 'log' ? [Math.log10(domain[0]), Math.log10(domain[1])] : domain;
  const v = kind === 'log' ? Math.log10(value) : value;
  if (d1 === d0) return (rangeStart + rangeEnd) / 2;
  return rangeStart + ((v - d0) / (d1 - d0)) * (rangeEnd - rangeStart);
}

// ---------------------------------------------------------------------------------------------
// Rendering

interface LegendEntry {
  readonly name: string;
  readonly color: string;
  readonly kind: 'line' | 'marker' | 'ring' | 'diamond';
  readonly dashed: boolean;
}

function legendEntries(options: PlotOptions): LegendEntry[] {
  const entries: LegendEntry[] = options.series.map((series, index) => ({
    name: series.name,
    color: series.color ?? PALETTE[index % PALETTE.length],
    kind: (series.line ?? 'none') === 'none' ? 'marker' : 'line',
    dashed: series.dashed ?? false,
  }));
  const seen = new Set<string>();
  for (const mark of options.marks ?? []) {
    if (mark.legend === undefined || seen.has(mark.legend)) continue;
    seen.add(mark.legend);
    // Grey: marks are usually coloured per item (per target), so no one mark's colour stands for the kind.
    entries.push({ name: mark.legend, color: '#57606a', kind: mark.shape ?? 'ring', dashed: false });
  }
  return entries;
}

/** Greedy left-to-right rows of legend entries that fit `width`; returns [entry, x, row] triples. */
function layoutLegend(entries: readonly LegendEntry[], left: number, width: number): { placed: [LegendEntry, number, number][]; rows: number } {
  const placed: [LegendEntry, number, number][] = [];
  let x = 0;
  let row = 0;
  for (const entry of entries) {
    const entryWidth = 22 + entry.name.length * CHAR_WIDTH + 14;
    if (x > 0 && x + entryWidth > width) {
      row++;
      x = 0;
    }
    placed.push([entry, left + x, row]);
    x += entryWidth;
  }
  return { placed, rows: entries.length === 0 ? 0 : row + 1 };
}

function markerSvg(x: number, y: number, color: string, shape: 'circle' | 'ring' | 'diamond', radius: number): string {
  const c = escapeXml(color);
  if (shape === 'diamond') {
    const r = radius * 1.3;
    return `<path d="M${px(x)} ${px(y - r)}L${px(x + r)} ${px(y)}L${px(x)} ${px(y + r)}L${px(x - r)} ${px(y)}Z" fill="#ffffff" stroke="${c}" stroke-width="2"`;
  }
  if (shape === 'ring') {
    return `<circle cx="${px(x)}" cy="${px(y)}" r="${px(radius)}" fill="none" stroke="${c}" stroke-width="2.5"`;
  }
  return `<circle cx="${px(x)}" cy="${px(y)}" r="${px(radius)}" fill="${c}" fill-opacity="0.85"`;
}

/** Closes an element opened by markerSvg, with an optional tooltip. */
function closeMarker(open: string, tooltip: string | undefined): string {
  const tag = open.startsWith('<path') ? 'path' : 'circle';
  return tooltip === undefined ? `${open}/>` : `${open}><title>${escapeXml(tooltip)}</title></${tag}>`;
}

/** Renders one plot as an `<svg>` string. Deterministic: equal options give equal strings. */
export function renderPlot(options: PlotOptions): string {
  const width = options.width ?? 480;
  const height = options.height ?? 320;
  const id = options.id.replace(/[^A-Za-z0-9_-]/g, '_');
  const xKind: ScaleKind = options.x.scale ?? 'linear';
  const yKind: ScaleKind = options.y.scale ?? 'linear';
  const drawable = (p: { x: number; y: number }): boolean =>
    Number.isFinite(p.x) && Number.isFinite(p.y) && (xKind !== 'log' || p.x > 0) && (yKind !== 'log' || p.y > 0);

  const allPoints = [...options.series.flatMap((s) => s.points), ...(options.marks ?? [])].filter(drawable);
  const xValues = [...allPoints.map((p) => p.x), ...(options.verticalLines ?? []).map((line) => line.x)];
  const xLayout = axisLayout(xValues, options.x);
  const yLayout = axisLayout(allPoints.map((p) => p.y), options.y);

  const entries = legendEntries(options);
  const showLegend = options.legend ?? entries.length > 1;
  const left = 62;
  const right = 16;
  const plotWidth = width - left - right;
  const legend = showLegend ? layoutLegend(entries, left, plotWidth) : { placed: [], rows: 0 };
  const titleHeight = options.title === undefined ? 0 : 20;
  const top = 10 + titleHeight + legend.rows * 16 + (legend.rows > 0 ? 4 : 0);
  const bottom = 42;
  const plotHeight = Math.max(40, height - top - bottom);
  const x0 = left;
  const x1 = left + plotWidth;
  const y0 = top + plotHeight; // SVG y grows downwards; the data's y grows upwards
  const y1 = top;
  const sx = (v: number): number => scaleValue(v, xKind, xLayout.domain, x0, x1);
  const sy = (v: number): number => scaleValue(v, yKind, yLayout.domain, y0, y1);
  const formatX = options.x.format ?? formatCompact;
  const formatY = options.y.format ?? formatCompact;

  const out: string[] = [];
  const xmlns = options.standalone ? ' xmlns="http://www.w3.org/2000/svg"' : '';
  const titleText = options.title ?? `${options.y.label} vs ${options.x.label}`;
  out.push(
    `<svg${xmlns} class="plot" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(titleText)}" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif" font-size="${FONT_SIZE}">`,
  );
  out.push(`<title>${escapeXml(titleText)}</title>`);
  out.push(`<defs><clipPath id="${id}-clip"><rect x="${px(x0)}" y="${px(y1)}" width="${px(plotWidth)}" height="${px(plotHeight)}"/></clipPath></defs>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  if (options.title !== undefined) {
    out.push(`<text x="${px(x0)}" y="20" font-size="13" font-weight="600" fill="#1f2328">${escapeXml(options.title)}</text>`);
  }

  // Legend, above the plot area so it never hides data.
  for (const [entry, ex, row] of legend.placed) {
    const ey = 10 + titleHeight + row * 16 + 8;
    const c = escapeXml(entry.color);
    if (entry.kind === 'line') {
      out.push(`<line x1="${px(ex)}" y1="${px(ey)}" x2="${px(ex + 18)}" y2="${px(ey)}" stroke="${c}" stroke-width="2"${entry.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    } else {
      out.push(closeMarker(markerSvg(ex + 9, ey, entry.color, entry.kind === 'marker' ? 'circle' : entry.kind, entry.kind === 'marker' ? 3.5 : 4.5), undefined));
    }
    out.push(`<text x="${px(ex + 22)}" y="${px(ey + 4)}" fill="#1f2328">${escapeXml(entry.name)}</text>`);
  }

  // Grid, ticks and tick labels.
  out.push('<g class="axes" stroke="#d0d7de" stroke-width="1">');
  for (const tick of xLayout.ticks) {
    const x = sx(tick);
    out.push(`<line x1="${px(x)}" y1="${px(y1)}" x2="${px(x)}" y2="${px(y0)}"/>`);
  }
  for (const tick of yLayout.ticks) {
    const y = sy(tick);
    out.push(`<line x1="${px(x0)}" y1="${px(y)}" x2="${px(x1)}" y2="${px(y)}"/>`);
  }
  out.push('</g>');
  out.push(`<rect x="${px(x0)}" y="${px(y1)}" width="${px(plotWidth)}" height="${px(plotHeight)}" fill="none" stroke="#57606a" stroke-width="1"/>`);
  out.push('<g class="tick-labels" fill="#57606a">');
  for (const tick of xLayout.ticks) {
    out.push(`<text x="${px(sx(tick))}" y="${px(y0 + 15)}" text-anchor="middle">${escapeXml(formatX(tick))}</text>`);
  }
  for (const tick of yLayout.ticks) {
    out.push(`<text x="${px(x0 - 6)}" y="${px(sy(tick) + 4)}" text-anchor="end">${escapeXml(formatY(tick))}</text>`);
  }
  out.push('</g>');
  out.push(`<text class="x-label" x="${px((x0 + x1) / 2)}" y="${px(height - 8)}" text-anchor="middle" fill="#1f2328">${escapeXml(options.x.label)}</text>`);
  out.push(
    `<text class="y-label" transform="translate(14 ${px((y0 + y1) / 2)}) rotate(-90)" text-anchor="middle" fill="#1f2328">${escapeXml(options.y.label)}</text>`,
  );

  // Data, clipped to the plot area (fixed axis ends may cut points off).
  out.push(`<g clip-path="url(#${id}-clip)">`);
  for (const line of options.verticalLines ?? []) {
    if (!drawable({ x: line.x, y: yKind === 'log' ? 1 : 0 })) continue;
    const x = sx(line.x);
    const c = escapeXml(line.color ?? '#6e7781');
    out.push(`<line class="vline" x1="${px(x)}" y1="${px(y1)}" x2="${px(x)}" y2="${px(y0)}" stroke="${c}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    // Rotated along the line: labels of nearby targets then never overlap each other.
    out.push(`<text transform="translate(${px(x + 4)} ${px(y1 + 6)}) rotate(90)" fill="${c}">${escapeXml(line.label)}</text>`);
  }
  options.series.forEach((series, index) => {
    const color = series.color ?? PALETTE[index % PALETTE.length];
    const points = series.points.filter(drawable);
    const lineKind = series.line ?? 'none';
    if (lineKind !== 'none' && points.length > 1) {
      const path: string[] = [];
      points.forEach((p, i) => {
        if (i === 0) path.push(`M${px(sx(p.x))} ${px(sy(p.y))}`);
        else if (lineKind === 'step') path.push(`H${px(sx(p.x))}V${px(sy(p.y))}`);
        else path.push(`L${px(sx(p.x))} ${px(sy(p.y))}`);
      });
      out.push(
        `<path class="series-line" d="${path.join('')}" fill="none" stroke="${escapeXml(color)}" stroke-width="2" stroke-linejoin="round"${series.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      );
    }
    if (series.markers ?? true) {
      out.push(`<g class="series-points">`);
      for (const p of points) out.push(closeMarker(markerSvg(sx(p.x), sy(p.y), color, 'circle', 3.5), p.label));
      out.push('</g>');
    }
  });
  // Boxes of mark labels already drawn: a label that would overlap one moves to the next slot.
  const placedLabels: { left: number; right: number; top: number; bottom: number }[] = [];
  for (const mark of options.marks ?? []) {
    if (!drawable(mark)) continue;
    const x = sx(mark.x);
    const y = sy(mark.y);
    const color = mark.color ?? '#000000';
    const tooltip = mark.tooltip ?? mark.label;
    out.push(closeMarker(markerSvg(x, y, color, mark.shape ?? 'ring', 7), tooltip === '' ? undefined : tooltip));
    if (mark.label === '') continue;
    // Labels go to the left of points in the right third and below points near the top, so
    // they stay inside the (clipped) plot area.
    const anchorEnd = x > x0 + plotWidth * 0.66;
    const labelX = anchorEnd ? x - 10 : x + 10;
    const labelWidth = mark.label.length * CHAR_WIDTH;
    const labelLeft = anchorEnd ? labelX - labelWidth : labelX;
    const lineHeight = FONT_SIZE + 2;
    // Candidate baselines: above the mark, below it, then further out alternately.
    const candidates = [y - 8, y + 8 + FONT_SIZE, y - 8 - lineHeight, y + 8 + FONT_SIZE + lineHeight, y - 8 - 2 * lineHeight, y + 8 + FONT_SIZE + 2 * lineHeight];
    const inside = candidates.filter((baseline) => baseline - FONT_SIZE >= y1 && baseline <= y0);
    const free = inside.find((baseline) =>
      placedLabels.every((box) => labelLeft + labelWidth <= box.left || labelLeft >= box.right || baseline <= box.top || baseline - FONT_SIZE >= box.bottom),
    );
    const labelY = free ?? inside[0] ?? y - 8;
    placedLabels.push({ left: labelLeft, right: labelLeft + labelWidth, top: labelY - FONT_SIZE, bottom: labelY });
    out.push(
      `<text class="mark-label" x="${px(labelX)}" y="${px(labelY)}" text-anchor="${anchorEnd ? 'end' : 'start'}" font-weight="600" fill="${escapeXml(color)}" stroke="#ffffff" stroke-width="3" paint-order="stroke">${escapeXml(mark.label)}</text>`,
    );
  }
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n');
}
