/**
 * `report.html`: one self-contained page rendered from `report.json` (src/schema/report.ts).
 *
 * Self-contained means: inline CSS, inline SVG plots (./svg.ts), no scripts, no fonts, no URLs,
 * so the file opens the same from S3, an e-mail attachment or an air-gapped laptop, and a
 * hostile string in the data (a layer called `<script>`) can do nothing: every data string goes
 * through `escapeHtml`. Collapsible parts use `<details>`, which needs no script.
 *
 * Deterministic: the page is a pure function of the report (times come from the report, not
 * the clock), so re-rendering an unchanged report gives the same bytes.
 */
import type {
  Report,
  ReportFrontPoint,
  ReportJointPoint,
  ReportSubnetwork,
  ReportTarget,
} from '../schema/report.ts';
import {
  formatCompact,
  formatDuration,
  formatPercent,
  formatPointsDelta,
  formatSigned,
  formatTime,
  formatUsd,
} from './format.ts';
import { escapeXml, PALETTE, renderPlot, type MarkedPoint, type VerticalLine } from './svg.ts';

/** Same escaping as SVG text: `& < > " '` become character references. */
export const escapeHtml = escapeXml;

/** Colour of target i everywhere on the page (cards, marks, lines); PALETTE[0] is the fronts'. */
export function targetColor(index: number): string {
  return PALETTE[1 + (index % (PALETTE.length - 1))];
}

const NA = '<span class="na">n/a</span>';

/** Escaped text, or a grey "n/a" when the run did not produce the value. */
function opt<T>(value: T | undefined, format: (value: T) => string): string {
  return value === undefined ? NA : escapeHtml(format(value));
}

const CSS = `
:root { color-scheme: light; --fg: #1f2328; --muted: #57606a; --line: #d0d7de; --soft: #f6f8fa; --accent: #0072B2; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--fg); background: #fff; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 40px; }
h1 { font-size: 22px; margin: 0 0 2px; word-break: break-word; }
h2 { font-size: 17px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 0 0 8px; word-break: break-word; }
.sub { color: var(--muted); margin: 0 0 16px; word-break: break-word; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; vertical-align: middle; margin-left: 6px; }
.status-succeeded { background: #dafbe1; color: #116329; }
.status-partial { background: #fff8c5; color: #7d4e00; }
.status-failed { background: #ffebe9; color: #a40e26; }
.summary { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 10px; margin: 0; }
.summary > div { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; min-width: 0; }
.summary dt { color: var(--muted); font-size: 12px; }
.summary dd { margin: 2px 0 0; font-weight: 600; overflow-wrap: anywhere; }
.summary dd small { font-weight: 400; color: var(--muted); }
.timebar { display: flex; height: 8px; border-radius: 4px; overflow: hidden; background: var(--line); margin-top: 6px; }
.timebar .worker { background: var(--accent); }
.timebar .overhead { background: #E69F00; }
.problems { background: #ffebe9; border: 1px solid #ff818266; border-radius: 6px; padding: 10px 14px; margin: 16px 0 0; }
.problems ul { margin: 4px 0 0; padding-left: 20px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(400px, 100%), 1fr)); gap: 14px; }
.card { border: 1px solid var(--line); border-top: 4px solid var(--card, var(--accent)); border-radius: 6px; padding: 12px 14px; min-width: 0; }
.card .kind { color: var(--muted); font-weight: 400; font-size: 13px; }
.card .error { color: #a40e26; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
td.num, th.num { text-align: right; white-space: nowrap; }
.metrics th { width: 44%; font-size: 13px; }
.metrics td small, td small { color: var(--muted); }
td small.good { color: #116329; } td small.bad { color: #a40e26; }
.na { color: #8c959f; font-weight: 400; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(380px, 100%), 1fr)); gap: 14px; }
.scroll { overflow-x: auto; margin-bottom: 12px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; max-width: 100%; }
figure.wide { width: 100%; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
svg.plot { display: block; max-width: 100%; height: auto; margin: 0 auto; }
.empty { color: var(--muted); font-style: italic; }
details { border: 1px solid var(--line); border-radius: 6px; margin: 8px 0; padding: 0 12px; }
details[open] { padding-bottom: 10px; }
summary { cursor: pointer; padding: 8px 0; font-weight: 600; }
summary small { font-weight: 400; color: var(--muted); }
.bar { display: inline-block; width: 90px; height: 8px; background: var(--line); border-radius: 4px; overflow: hidden; vertical-align: middle; }
.bar span { display: block; height: 100%; background: var(--card, var(--accent)); }
.layer { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
footer pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; overflow: auto; max-height: 420px; color: var(--fg); font-size: 12px; }
@media print { details { break-inside: avoid; } details:not([open]) { display: none; } }
`;

/** Renders the report page. `report` must satisfy reportSchema (parseReport it when read from JSON). */
export function renderReportHtml(report: Report): string {
  const title = `emo-dir report: ${report.run.model} on ${report.run.dataset}`;
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    // No network and no scripts, even if some future edit slips one in.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    `<title>${escapeHtml(title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    '<main>',
    renderHeader(report),
    renderTargets(report),
    renderJointFront(report),
    renderSubnetworks(report),
    renderLayers(report),
    renderFooter(report),
    '</main>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Header: what ran, how long, what it cost

function renderHeader(report: Report): string {
  const { run, original, cost } = report;
  const items: [string, string][] = [];
  items.push(['Run', escapeHtml(run.runId)]);
  items.push(['Started', escapeHtml(formatTime(run.startedAt))]);
  items.push(['Finished', opt(run.finishedAt, formatTime)]);
  items.push(['Wall time', opt(run.wallSeconds, formatDuration)]);
  const workerSeconds = run.workerSeconds ?? cost?.workerSeconds;
  items.push(['Time in workers', renderWorkerTime(workerSeconds, run.wallSeconds)]);
  if (run.overheadSeconds !== undefined) items.push(['Embedded overhead', renderOverhead(run.overheadSeconds, run.wallSeconds)]);
  items.push(['Backend', opt(run.backend, String)]);
  items.push(['Store', opt(run.storeLocation, String)]);
  items.push(['Cost', renderCost(report)]);
  if (original) {
    items.push(['Original MACs / params', `${escapeHtml(formatCompact(original.macs))} / ${escapeHtml(formatCompact(original.params))}`]);
    items.push([
      'Original accuracy',
      `${opt(original.accuracy?.test, (a) => formatPercent(a, 2))} <small>test</small> · ${opt(original.accuracy?.searchVal, (a) => formatPercent(a, 2))} <small>search-val</small>`,
    ]);
    if (original.loss) {
      items.push([
        'Original loss',
        `${opt(original.loss.test, (l) => l.toFixed(4))} <small>test</small> · ${opt(original.loss.searchVal, (l) => l.toFixed(4))} <small>search-val</small>`,
      ]);
    }
  }
  const problems = report.problems ?? [];
  return [
    '<header>',
    `<h1>${escapeHtml(run.model)} <span class="status status-${report.status}">${escapeHtml(report.status)}</span></h1>`,
    `<p class="sub">EMO-DIR channel pruning on ${escapeHtml(run.dataset)} · ${report.subnetworks.length} sub-networks · ${report.targets.length} targets</p>`,
    '<dl class="summary">',
    ...items.map(([label, value]) => `<div><dt>${escapeHtml(label)}</dt><dd>${value}</dd></div>`),
    '</dl>',
    problems.length === 0
      ? ''
      : [
          '<div class="problems"><strong>Problems</strong><ul>',
          ...problems.map(
            (p) => `<li><strong>${escapeHtml(p.stage)}${p.subject ? ` / ${escapeHtml(p.subject)}` : ''}</strong>: ${escapeHtml(p.message)}</li>`,
          ),
          '</ul></div>',
        ].join('\n'),
    '</header>',
  ].join('\n');
}

/**
 * Worker time against wall time. In the embedded mode workers run one or a few at a time, so
 * 1 - worker/wall is the runner's own overhead (Plan, Merge, Report, process start-up). When
 * workers ran in parallel their sum exceeds the wall time and that ratio means nothing, so the
 * page says "parallel" instead of printing a negative overhead.
 */
function renderWorkerTime(workerSeconds: number | undefined, wallSeconds: number | undefined): string {
  if (workerSeconds === undefined) return NA;
  const worker = escapeHtml(formatDuration(workerSeconds));
  if (wallSeconds === undefined || wallSeconds <= 0) return worker;
  const ratio = workerSeconds / wallSeconds;
  if (ratio > 1) {
    return `${worker} <small>(${escapeHtml(ratio.toFixed(1))}× wall: workers ran in parallel)</small>`;
  }
  const overhead = 1 - ratio;
  return [
    `${worker} <small>of ${escapeHtml(formatDuration(wallSeconds))} · overhead ${escapeHtml(formatPercent(overhead))} (1 − worker/total)</small>`,
    `<div class="timebar" title="workers ${escapeHtml(formatPercent(ratio))}, overhead ${escapeHtml(formatPercent(overhead))}">`,
    `<div class="worker" style="width:${(ratio * 100).toFixed(2)}%"></div><div class="overhead" style="width:${(overhead * 100).toFixed(2)}%"></div>`,
    '</div>',
  ].join('');
}

/** The local runner's own share of the wall time (measured, so parallel workers do not hide it). */
function renderOverhead(overheadSeconds: number, wallSeconds: number | undefined): string {
  const seconds = escapeHtml(formatDuration(overheadSeconds));
  if (wallSeconds === undefined || wallSeconds <= 0) return seconds;
  return `${seconds} <small>${escapeHtml(formatPercent(overheadSeconds / wallSeconds))} of wall: no worker or handler running</small>`;
}

function renderCost(report: Report): string {
  const cost = report.cost;
  if (!cost) return NA;
  const gpuHours = `${(cost.workerSeconds / 3600).toFixed(2)} worker-hours`;
  if (cost.estimatedUsd === undefined || cost.usdPerGpuHour === undefined) {
    return `${escapeHtml(gpuHours)} <small>(local run: no price)</small>`;
  }
  return `${escapeHtml(formatUsd(cost.estimatedUsd))} <small>${escapeHtml(gpuHours)} at ${escapeHtml(formatUsd(cost.usdPerGpuHour))}/GPU-hour</small>`;
}

// ---------------------------------------------------------------------------------------------
// Targets

function renderTargets(report: Report): string {
  const cards = report.targets.map((target, index) => renderTargetCard(report, target, index));
  return [
    '<section id="targets">',
    '<h2>Targets</h2>',
    cards.length === 0 ? '<p class="empty">No targets.</p>' : `<div class="cards">\n${cards.join('\n')}\n</div>`,
    '</section>',
  ].join('\n');
}

/** `50% FLOPs cut`, `≤ 1.2M params`: the target as the user asked for it. */
export function describeTarget(target: Pick<ReportTarget, 'kind' | 'value'>): string {
  switch (target.kind) {
    case 'flopsCut':
      return `${formatPercent(target.value)} FLOPs cut`;
    case 'paramsCut':
      return `${formatPercent(target.value)} params cut`;
    case 'flopsBudget':
      return `≤ ${formatCompact(target.value)} MACs`;
    case 'paramsBudget':
      return `≤ ${formatCompact(target.value)} params`;
  }
}

/** An accuracy with its difference to the original model, coloured by sign. */
function accuracyCell(accuracy: number | undefined, original: number | undefined): string {
  if (accuracy === undefined) return NA;
  const value = escapeHtml(formatPercent(accuracy, 2));
  if (original === undefined) return value;
  const delta = accuracy - original;
  const tone = delta >= 0 ? 'good' : 'bad';
  return `${value} <small class="${tone}">${escapeHtml(formatPointsDelta(delta, 2))}</small>`;
}

/**
 * A registered model package version: its ARN, linked to its group's page in the SageMaker
 * console (`#/model-registry/<group>/details`), where the new version waits for approval.
 */
function modelPackageLink(arn: string): string {
  const match = /^arn:aws[a-z-]*:sagemaker:([a-z0-9-]+):\d{12}:model-package\/([^/]+)\/\d+$/.exec(arn);
  const text = `<span class="layer">${escapeHtml(arn)}</span>`;
  if (match === null) return text;
  const [, region, group] = match;
  const url = `https://${region}.console.aws.amazon.com/sagemaker/home?region=${region}#/model-registry/${encodeURIComponent(group)}/details`;
  return `<a href="${escapeHtml(url)}">${text}</a>`;
}

function renderTargetCard(report: Report, target: ReportTarget, index: number): string {
  const original = report.original;
  const achieved = target.achieved;
  const originalAccuracy = target.accuracy?.original ?? original?.accuracy?.test;
  const rows: [string, string][] = [];
  const requestedCut = target.kind === 'flopsCut' ? ` <small>asked ${escapeHtml(formatPercent(target.value))}</small>` : '';
  const requestedParamsCut = target.kind === 'paramsCut' ? ` <small>asked ${escapeHtml(formatPercent(target.value))}</small>` : '';
  rows.push([
    'FLOPs cut',
    achieved
      ? `${escapeHtml(formatPercent(achieved.flopsCut))}${requestedCut} <small>${original ? `${escapeHtml(formatCompact(original.macs))} → ` : ''}${escapeHtml(formatCompact(achieved.macs))} MACs</small>`
      : NA,
  ]);
  rows.push([
    'Params cut',
    achieved
      ? `${escapeHtml(formatPercent(achieved.paramsCut))}${requestedParamsCut} <small>${original ? `${escapeHtml(formatCompact(original.params))} → ` : ''}${escapeHtml(formatCompact(achieved.params))}</small>`
      : NA,
  ]);
  rows.push(['Accuracy, original', opt(originalAccuracy, (a) => formatPercent(a, 2))]);
  rows.push(['Accuracy, pruned (no fine-tune)', accuracyCell(target.accuracy?.beforeFineTune, originalAccuracy)]);
  rows.push(['Accuracy, fine-tuned (test)', accuracyCell(target.accuracy?.afterFineTune, originalAccuracy)]);
  rows.push(['Impairment, estimated', opt(target.estimatedImpairment, (v) => v.toFixed(4))]);
  rows.push(['Impairment, measured', opt(target.measuredImpairment, (v) => v.toFixed(4))]);
  const estimateError =
    target.estimateError ??
    (target.measuredImpairment !== undefined && target.estimatedImpairment !== undefined ? target.measuredImpairment - target.estimatedImpairment : undefined);
  rows.push(['Estimate error <small>(measured − estimated)</small>', opt(estimateError, (v) => formatSigned(v, 4))]);
  rows.push([
    'Fine-tune',
    target.fineTuneEpochs === undefined && target.fineTuneSeconds === undefined
      ? NA
      : `${opt(target.fineTuneEpochs, (e) => `${e} epoch${e === 1 ? '' : 's'}`)} · ${opt(target.fineTuneSeconds, formatDuration)}`,
  ]);
  rows.push(['Model', target.modelKey === undefined ? NA : `<span class="layer">${escapeHtml(target.modelKey)}</span>`]);
  if (target.modelPackageArn !== undefined) {
    rows.push(['SageMaker model package <small>(pending approval)</small>', modelPackageLink(target.modelPackageArn)]);
  }
  return [
    `<article class="card" id="target-${escapeHtml(target.name)}" style="--card:${targetColor(index)}">`,
    `<h3>${escapeHtml(target.name)} <span class="kind">${escapeHtml(describeTarget(target))}</span></h3>`,
    target.error ? `<p class="error">${escapeHtml(target.error)}</p>` : '',
    '<table class="metrics"><tbody>',
    ...rows.map(([label, value]) => `<tr><th scope="row">${label}</th><td>${value}</td></tr>`),
    '</tbody></table>',
    '</article>',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Joint front

/** Whole-network FLOPs the target allows, when it is a FLOPs target (a line on the FLOPs axis). */
export function flopsBudget(target: ReportTarget, originalMacs: number | undefined): number | undefined {
  if (target.kind === 'flopsBudget') return target.value;
  if (target.kind === 'flopsCut' && originalMacs !== undefined) return originalMacs * (1 - target.value);
  return undefined;
}

function renderJointFront(report: Report): string {
  const joint = report.jointFront ?? [];
  const head = '<section id="joint-front">\n<h2>Joint front (GPIR)</h2>';
  if (joint.length === 0) return `${head}\n<p class="empty">No joint front: the merge did not run or failed.</p>\n</section>`;
  const sorted = [...joint].sort((a: ReportJointPoint, b: ReportJointPoint) => a.flops - b.flops || a.estimatedImpairment - b.estimatedImpairment);
  const marks: MarkedPoint[] = [];
  const lines: VerticalLine[] = [];
  report.targets.forEach((target, index) => {
    const color = targetColor(index);
    const budget = flopsBudget(target, report.original?.macs);
    if (budget !== undefined) lines.push({ x: budget, label: `${target.name} budget`, color });
    if (target.achieved && target.estimatedImpairment !== undefined) {
      marks.push({
        x: target.achieved.macs,
        y: target.estimatedImpairment,
        label: target.name,
        tooltip: `${target.name}: estimated impairment ${target.estimatedImpairment.toFixed(4)}`,
        color,
        shape: 'ring',
        legend: 'chosen scheme (estimated)',
      });
    }
    if (target.achieved && target.measuredImpairment !== undefined) {
      marks.push({
        x: target.achieved.macs,
        y: target.measuredImpairment,
        // The ring already carries the name; a second label would sit on top of it.
        label: '',
        tooltip: `${target.name}: measured impairment ${target.measuredImpairment.toFixed(4)}`,
        color,
        shape: 'diamond',
        legend: 'chosen scheme (measured)',
      });
    }
  });
  const svg = renderPlot({
    id: 'joint-front',
    width: 1140,
    height: 420,
    x: { label: 'whole-network FLOPs (MACs)', includeZero: true, tickCount: 8 },
    y: { label: 'estimated impairment (Δ CE loss)', includeZero: true },
    series: [
      {
        name: `joint front (${joint.length} schemes)`,
        points: sorted.map((p) => ({
          x: p.flops,
          y: p.estimatedImpairment,
          label: `${formatCompact(p.flops)} MACs, ${formatCompact(p.params)} params, impairment ${p.estimatedImpairment.toFixed(4)}`,
        })),
        line: 'straight',
        color: PALETTE[0],
      },
    ],
    marks,
    verticalLines: lines,
    legend: true,
  });
  return [
    head,
    '<figure class="wide">',
    svg,
    '<figcaption>Each point is a joint scheme (one front point per sub-network); its impairment is the sum of the chosen points\' impairments. Rings: the schemes the targets picked (estimate); diamonds: the same schemes measured after assembly, before fine-tuning. Dashed lines: FLOPs budgets of the targets.</figcaption>',
    '</figure>',
    '</section>',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Sub-networks

function renderSubnetworks(report: Report): string {
  const rows = report.subnetworks.map((subnet) => {
    const cells = [
      `<td>${escapeHtml(subnet.id)}</td>`,
      `<td class="num">${subnet.layers}</td>`,
      `<td class="num">${subnet.groupIds.length}</td>`,
      `<td class="num">${escapeHtml(formatCompact(subnet.macs))}</td>`,
      `<td class="num">${escapeHtml(formatCompact(subnet.params))}</td>`,
      `<td class="num">${subnet.front === undefined ? NA : subnet.front.length}</td>`,
      `<td class="num">${opt(subnet.evaluations, String)}</td>`,
      `<td class="num">${opt(subnet.generations, String)}</td>`,
      `<td class="num">${opt(subnet.searchSeconds, formatDuration)}</td>`,
      `<td class="num">${opt(subnet.hypervolume, (h) => h.toFixed(4))}</td>`,
    ];
    return `<tr>${cells.join('')}</tr>`;
  });
  const table = [
    '<div class="scroll"><table class="subnets"><thead><tr>',
    '<th>Sub-network</th><th class="num">Layers</th><th class="num">Groups</th><th class="num">MACs</th><th class="num">Params</th><th class="num">Front</th><th class="num">Evaluations</th><th class="num">Generations</th><th class="num">Search time</th><th class="num">Hypervolume</th>',
    '</tr></thead><tbody>',
    ...rows,
    '</tbody></table></div>',
  ].join('\n');
  const plots = report.subnetworks.map((subnet, index) => renderSubnetPlot(report, subnet, index));
  const legend =
    '<p class="sub">Each plot is one sub-network\'s Pareto front: its FLOPs (over the unpruned sub-network\'s) against the global impairment it causes with every other sub-network unpruned. The step line is the front\'s attainment curve; rings mark the points the targets\' final schemes use (hover a point for its id).</p>';
  return ['<section id="subnetworks">', '<h2>Sub-network fronts</h2>', table, legend, `<div class="plots">\n${plots.join('\n')}\n</div>`, '</section>'].join('\n');
}

function renderSubnetPlot(report: Report, subnet: ReportSubnetwork, index: number): string {
  const caption = `<figcaption>${escapeHtml(subnet.id)}: ${subnet.layers} layers, ${subnet.groupIds.length} channel groups, ${escapeHtml(formatCompact(subnet.macs))} MACs, ${subnet.front?.length ?? 0} front points.</figcaption>`;
  if (subnet.front === undefined || subnet.front.length === 0) {
    return `<figure><p class="empty">${escapeHtml(subnet.id)}: no front (the search did not finish).</p>${caption}</figure>`;
  }
  const front = [...subnet.front].sort((a: ReportFrontPoint, b: ReportFrontPoint) => a.flopsRatio - b.flopsRatio || a.impairment - b.impairment);
  // Several targets may pick the same point: one ring, both names.
  const byPoint = new Map<string, { names: string[]; color: string }>();
  report.targets.forEach((target, targetIndex) => {
    const pointId = subnet.chosen?.[target.name];
    if (pointId === undefined) return;
    const entry = byPoint.get(pointId);
    if (entry) entry.names.push(target.name);
    else byPoint.set(pointId, { names: [target.name], color: targetColor(targetIndex) });
  });
  const marks: MarkedPoint[] = [];
  for (const point of front) {
    const chosen = byPoint.get(point.id);
    if (chosen) marks.push({ x: point.flopsRatio, y: point.impairment, label: chosen.names.join(', '), color: chosen.color });
  }
  const maxRatio = Math.max(1, ...front.map((p) => p.flopsRatio));
  const svg = renderPlot({
    id: `subnet-${index}`,
    title: subnet.id,
    width: 360,
    height: 270,
    x: { label: 'sub-network FLOPs ratio', min: 0, max: maxRatio > 1 ? undefined : 1, format: (v) => formatPercent(v, 0) },
    y: { label: 'impairment (Δ CE loss)', includeZero: true },
    series: [
      {
        name: `front (${front.length} points)`,
        points: front.map((p) => ({
          x: p.flopsRatio,
          y: p.impairment,
          label: `${p.id}: FLOPs ${formatPercent(p.flopsRatio)}, impairment ${p.impairment.toFixed(4)}${p.accuracy === undefined ? '' : `, accuracy ${formatPercent(p.accuracy, 2)}`}`,
        })),
        line: 'step',
        color: PALETTE[0],
      },
    ],
    marks,
    legend: false,
  });
  return `<figure>\n${svg}\n${caption}\n</figure>`;
}

// ---------------------------------------------------------------------------------------------
// Per-layer channels

function renderLayers(report: Report): string {
  const blocks = report.targets.map((target, index) => {
    const layers = target.layers ?? [];
    const before = layers.reduce((sum, layer) => sum + layer.channelsBefore, 0);
    const after = layers.reduce((sum, layer) => sum + layer.channelsAfter, 0);
    const summary =
      layers.length === 0
        ? `${escapeHtml(target.name)} <small>no layer data</small>`
        : `${escapeHtml(target.name)} <small>${layers.length} layers · ${before} → ${after} channels (${escapeHtml(formatPercent(before === 0 ? 0 : after / before))} kept)</small>`;
    const rows = layers.map((layer, layerIndex) => {
      const kept = layer.channelsBefore === 0 ? 1 : layer.channelsAfter / layer.channelsBefore;
      return [
        '<tr>',
        `<td class="num">${layerIndex + 1}</td>`,
        `<td class="layer">${escapeHtml(layer.name)}</td>`,
        `<td>${escapeHtml(layer.className)}</td>`,
        `<td class="num">${layer.channelsBefore}</td>`,
        `<td class="num">${layer.channelsAfter}</td>`,
        `<td class="num">${escapeHtml(formatPercent(kept))}</td>`,
        `<td><span class="bar"><span style="width:${(kept * 100).toFixed(1)}%"></span></span></td>`,
        '</tr>',
      ].join('');
    });
    return [
      `<details style="--card:${targetColor(index)}">`,
      `<summary>${summary}</summary>`,
      layers.length === 0
        ? '<p class="empty">This target has no per-layer data.</p>'
        : [
            '<div class="scroll"><table class="layers"><thead><tr><th class="num">#</th><th>Layer</th><th>Class</th><th class="num">Channels before</th><th class="num">After</th><th class="num">Kept</th><th></th></tr></thead><tbody>',
            ...rows,
            '</tbody></table></div>',
          ].join('\n'),
      '</details>',
    ].join('\n');
  });
  return ['<section id="layers">', '<h2>Channels per layer</h2>', ...blocks, '</section>'].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Footer

function renderFooter(report: Report): string {
  const spec = report.run.spec === undefined ? '<p class="empty">The report has no spec.</p>' : `<pre>${escapeHtml(JSON.stringify(report.run.spec, null, 2))}</pre>`;
  return [
    '<footer>',
    '<h2>Spec</h2>',
    spec,
    `<p>Generated ${escapeHtml(formatTime(report.generatedAt))} from report.json (schema v${report.schemaVersion}) by emo-dir.</p>`,
    '</footer>',
  ].join('\n');
}
