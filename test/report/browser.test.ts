/**
 * Opens the rendered report in a real (headless) Chromium: no console errors, no page errors,
 * no network requests, the plots laid out with a non-zero size, the hostile `<script>` names
 * shown as text; saves a screenshot to test-output/report.png for a human to look at.
 *
 * Skipped, with the command that fixes it, where Chromium is not installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { renderReportHtml } from '../../src/report/html.ts';
import { parseReport } from '../../src/schema/report.ts';
import { HOSTILE_LAYER, HOSTILE_MODEL, sampleReport } from './sample-report.ts';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = resolve('test-output/report.png');

// Playwright's own 30 s limits (launch, navigation, actions) are off: on a loaded machine Chromium
// can take longer than that to start, and a slow start is not a broken report. The test's
// timeout only ends a browser that hangs.
test('the report renders cleanly in Chromium', { skip: existsSync(CHROMIUM) ? false : 'chromium not installed: apt-get install chromium', timeout: 10 * 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'emo-dir-report-'));
  const browser = await chromium.launch({
    timeout: 0,
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const report = parseReport(sampleReport(), 'sample report');
    const file = join(dir, 'report.html');
    await writeFile(file, renderReportHtml(report));

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(0);
    const consoleErrors: string[] = [];
    const pageErrors: string[] = [];
    const requests: string[] = [];
    const dialogs: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('request', (request) => requests.push(request.url()));
    // An escaped `<script>alert(...)` must never run; if it did, it would open a dialog.
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    const url = pathToFileURL(file).href;
    await page.goto(url, { waitUntil: 'load' });

    assert.deepEqual(pageErrors, []);
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(dialogs, []);
    // The page itself is the only request: no fonts, images, scripts or stylesheets from anywhere.
    assert.deepEqual(requests, [url]);
    assert.equal(await page.locator('script').count(), 0);

    // 3 sub-network fronts + the joint front, each laid out with a real size.
    const plots = page.locator('svg.plot');
    assert.equal(await plots.count(), 4);
    for (let i = 0; i < 4; i++) {
      const box = await plots.nth(i).boundingBox();
      assert.ok(box && box.width > 200 && box.height > 150, `plot ${i} has size ${JSON.stringify(box)}`);
    }
    const jointBox = await page.locator('#joint-front svg').boundingBox();
    assert.ok(jointBox && jointBox.width > 600, `joint front is ${JSON.stringify(jointBox)}`);

    // The hostile names are visible as text (escaped, not parsed as markup).
    assert.equal((await page.locator('h1').innerText()).includes(HOSTILE_MODEL), true);
    const firstTarget = page.locator('#layers details').first();
    await firstTarget.locator('summary').click();
    assert.ok((await firstTarget.innerText()).includes(HOSTILE_LAYER));

    // The page fits the viewport's width (no horizontal scroll from a wide table or plot).
    const overflow = await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    assert.equal(overflow, 0);

    await mkdir(resolve('test-output'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // On a narrow window wide tables scroll inside their box and plots shrink; the page does not.
    await page.setViewportSize({ width: 640, height: 900 });
    assert.equal(await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth'), 0);
    const narrowBox = await page.locator('#joint-front svg').boundingBox();
    assert.ok(narrowBox && narrowBox.width <= 640 && narrowBox.height > 100, `joint front at 640 px: ${JSON.stringify(narrowBox)}`);
  } finally {
    await browser.close();
    await rm(dir, { recursive: true, force: true });
  }
});
