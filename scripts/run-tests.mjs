#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's built-in runner. A script (not a shell glob) because
// Node 20's `--test` neither expands `**` nor knows `.ts`, and we want both cores busy.
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { appendFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { availableParallelism } from 'node:os';
import { pipeline } from 'node:stream/promises';

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith('.test.ts')) found.push(path);
  }
  return found;
}

const filters = process.argv.slice(2);
const files = findTests('test').filter(
  (file) => filters.length === 0 || filters.some((f) => relative('.', file).includes(f)),
);
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
// Child test processes inherit NODE_OPTIONS, which is how they load TypeScript through tsx.
process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import tsx`.trim();
const concurrency = Number(process.env.EMO_DIR_TEST_CONCURRENCY ?? Math.max(1, availableParallelism()));
let failed = false;
const stream = run({ files, concurrency, timeout: 20 * 60_000 });
stream.on('test:fail', () => {
  failed = true;
});
// EMO_DIR_TEST_EVENTS=<file>: one JSON line per finished test (scripts/stress-tests.sh counts
// failures per test from them).
const eventsFile = process.env.EMO_DIR_TEST_EVENTS;
if (eventsFile) {
  const record = (result) => (event) =>
    appendFileSync(eventsFile, `${JSON.stringify({ result: event.skip ? 'skip' : result, file: event.file && relative('.', event.file), name: event.name, nesting: event.nesting })}\n`);
  stream.on('test:pass', record('pass'));
  stream.on('test:fail', record('fail'));
}
await pipeline(stream.compose(spec), process.stdout);
process.exitCode = failed ? 1 : 0;
