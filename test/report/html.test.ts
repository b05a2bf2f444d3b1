import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeTarget, flopsBudget, renderReportHtml } from '../../src/report/html.ts';
import { formatDuration, formatPercent, formatPointsDelta, formatSigned, formatTime, formatUsd } from '../../src/report/format.ts';
import { parseReport, type Report } from '../../src/schema/report.ts';
import { HOSTILE_LAYER, HOSTILE_MODEL, sampleReport } from './sample-report.ts';

function render(change?: (report: Report) => void): string {
  const report = structuredClone(sampleReport());
  change?.(report);
  return renderReportHtml(parseReport(report, 'sample'));
}

function count(haystack: string, needle: RegExp): number {
  return (haystack.match(needle) ?? []).length;
}

/** Text of the element that follows `<th scope="row">label</th>` in a target card. */
function metric(html: string, cardId: string, label: string): string {
  const card = html.slice(html.indexOf(`id="target-${cardId}"`));
  const start = card.indexOf(`<th scope="row">${label}`);
  assert.ok(start >= 0, `no ${label} row in ${cardId}`);
  const cell = /<td>(.*?)<\/td>/.exec(card.slice(start));
  return (cell?.[1] ?? '').replace(/<[^>]+>/g, '');
}

test('the page is one self-contained document with a plot per front and one for the joint front', () => {
  const html = render();
  assert.ok(html.startsWith('<!DOCTYPE html>\n<html lang="en">'));
  assert.equal(count(html, /<html[\s>]/g), 1);
  assert.equal(count(html, /<\/html>/g), 1);
  assert.equal(count(html, /<body>/g), 1);
  // 3 sub-network fronts + 1 joint front; every opened svg is closed.
  assert.equal(count(html, /<svg[\s>]/g), 4);
  assert.equal(count(html, /<\/svg>/g), 4);
  assert.equal(count(html, /<details/g), 2);
  // Self-contained: no scripts, no URLs of any kind, no external resources.
  assert.equal(count(html, /<script/gi), 0);
  assert.ok(!/https?:\/\//i.test(html), 'an absolute URL leaked into the page');
  assert.ok(!/\s(?:href|src)=/i.test(html), 'the page links to something');
  assert.ok(!/url\((?!#)/.test(html), 'CSS or SVG refers to an external resource');
  assert.ok(!/@import|@font-face/.test(html));
  // Each of the 20 layers appears in both targets' tables.
  assert.equal(count(html, /<td class="layer">/g), 40);
});

test('names from the data are escaped everywhere they appear', () => {
  const html = render();
  assert.ok(!html.includes('<script>'));
  assert.ok(html.includes('resnet20 &#60;script&#62;alert(&#34;model&#34;)&#60;/script&#62;'));
  assert.ok(html.includes('stage2/&#60;script&#62;alert(1)&#60;/script&#62;&#38;conv'));
  // Also inside the title and the spec dump.
  assert.match(html, /<title>emo-dir report: resnet20 &#60;script&#62;/);
  assert.match(html, /&#34;model&#34;: &#34;resnet20 &#60;script&#62;/);
  assert.ok(HOSTILE_MODEL.includes('<script>') && HOSTILE_LAYER.includes('<script>'));
});

test('the output is deterministic', () => {
  assert.equal(render(), render());
  assert.notEqual(render(), render((r) => Object.assign(r.targets[0], { measuredImpairment: 0.5 })));
});

test('target cards show cuts, accuracies against the original and the estimate error', () => {
  const html = render((r) => {
    const target = r.targets[0];
    target.achieved = { macs: 19_400_000, params: 190_000, flopsCut: 0.521, paramsCut: 0.297 };
    target.accuracy = { beforeFineTune: 0.8775, afterFineTune: 0.9135, original: 0.9175 };
    target.estimatedImpairment = 0.3223;
    target.measuredImpairment = 0.3833;
    target.estimateError = undefined;
  });
  assert.match(metric(html, 'flops-50', 'FLOPs cut'), /^52\.1% asked 50\.0% 40\.6M → 19\.4M MACs$/);
  assert.match(metric(html, 'flops-50', 'Params cut'), /^29\.7% /);
  assert.equal(metric(html, 'flops-50', 'Accuracy, pruned (no fine-tune)'), '87.75% −4.00 pp');
  assert.equal(metric(html, 'flops-50', 'Accuracy, fine-tuned (test)'), '91.35% −0.40 pp');
  // Derived from estimated and measured when the report does not carry it.
  assert.equal(metric(html, 'flops-50', 'Estimate error'), '+0.0610');
  assert.equal(metric(html, 'flops-50', 'Fine-tune'), '2 epochs · 5 min 12 s');
});

test('the header shows worker time against wall time, and never a negative overhead', () => {
  const sequential = render((r) => Object.assign(r.run, { wallSeconds: 1000, workerSeconds: 877 }));
  assert.match(sequential, /overhead 12\.3% \(1 − worker\/total\)/);
  assert.match(sequential, /class="worker" style="width:87\.70%"/);
  const parallel = render((r) => Object.assign(r.run, { wallSeconds: 1000, workerSeconds: 2600 }));
  assert.match(parallel, /2\.6× wall: workers ran in parallel/);
  assert.ok(!/overhead −/.test(parallel));
  assert.match(render(), /local run: no price/);
  const cloud = render((r) => Object.assign(r, { cost: { workerSeconds: 7200, estimatedUsd: 2.1, usdPerGpuHour: 1.05 } }));
  assert.match(cloud, /\$2\.10 <small>2\.00 worker-hours at \$1\.05\/GPU-hour/);
});

test('chosen points are marked on each sub-network front and targets on the joint front', () => {
  const html = render();
  const plots = html.split('<svg').slice(1);
  const joint = plots.find((svg) => svg.includes('aria-label="estimated impairment'));
  assert.ok(joint);
  assert.match(joint, /class="vline"/);
  assert.equal(count(joint, /class="vline"/g), 2);
  assert.match(joint, />flops-50 budget</);
  assert.match(joint, />flops-70 budget</);
  // A ring (estimate) and a diamond (measured) per target.
  assert.equal(count(joint, /<title>flops-\d+: estimated impairment/g), 2);
  assert.equal(count(joint, /<title>flops-\d+: measured impairment/g), 2);
  for (const id of ['S1', 'S2', 'S3']) {
    const svg = plots.find((p) => p.includes(`>${id}</text>`));
    assert.ok(svg, `no plot for ${id}`);
    // Every sub-network's chosen points are labelled with the targets that chose them.
    const labels = [...svg.matchAll(/class="mark-label"[^>]*>([^<]+)</g)].map((m) => m[1]).join(', ');
    assert.match(labels, /flops-50/);
    assert.match(labels, /flops-70/);
    assert.equal(count(svg, /<circle [^>]*r="3\.5"/g), 15);
  }
});

test('a failed run renders what it has and says what is missing', () => {
  const html = render((r) => {
    r.status = 'failed';
    r.jointFront = undefined;
    r.subnetworks[2].front = undefined;
    delete r.subnetworks[2].chosen;
    r.targets[1] = { name: 'flops-70', kind: 'flopsCut', value: 0.7, error: 'finalize: worker exited with code 137' };
    for (const subnet of r.subnetworks) delete subnet.chosen?.['flops-70'];
    r.problems = [{ stage: 'search', subject: 'S3', message: 'spot instance reclaimed 3 times <again>' }];
  });
  assert.match(html, /status-failed/);
  assert.match(html, /No joint front/);
  assert.match(html, /S3: no front/);
  assert.match(html, /finalize: worker exited with code 137/);
  assert.match(html, /spot instance reclaimed 3 times &#60;again&#62;/);
  assert.equal(count(html, /<svg[\s>]/g), 2);
  assert.match(metric(html, 'flops-70', 'FLOPs cut'), /n\/a/);
});

test('formatting is locale-free and says what it means', () => {
  assert.equal(formatPercent(0.5), '50.0%');
  assert.equal(formatPercent(-0.00001), '0.0%');
  assert.equal(formatSigned(0.0123), '+0.0123');
  assert.equal(formatSigned(-0.0123), '−0.0123');
  assert.equal(formatSigned(0.00001), '0.0000');
  assert.equal(formatPointsDelta(-0.068), '−6.8 pp');
  assert.equal(formatDuration(42.25), '42.3 s');
  assert.equal(formatDuration(725), '12 min 05 s');
  assert.equal(formatDuration(3 * 3600 + 7 * 60 + 10), '3 h 07 min');
  assert.equal(formatUsd(0.004), '< $0.01');
  assert.equal(formatTime('2026-11-28T02:00:00.000Z'), '2026-11-28 02:00:00 UTC');
  assert.equal(describeTarget({ kind: 'paramsBudget', value: 1_200_000 }), '≤ 1.2M params');
  const sample = sampleReport();
  assert.equal(flopsBudget(sample.targets[0], 40e6), 20e6);
  assert.equal(flopsBudget({ ...sample.targets[0], kind: 'paramsCut' }, 40e6), undefined);
});
