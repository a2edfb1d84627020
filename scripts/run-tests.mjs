#!/usr/bin/env node
// Runs the compiled test files with node's test runner. Node 20's `--test`
// takes no globs, so the files are listed here; extra arguments pass through
// (e.g. `npm test -- --test-name-pattern=relaxed`).
//
// `--unit` runs the tests that need no root and no tool outside Node (no
// dnsmasq, Postfix, Perl, Python or OpenDKIM): the edit-test loop, in well
// under 20 seconds. `npm test` runs everything.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Files in test/ that drive nothing outside this process's own sockets. */
const SELF_CONTAINED = ['limits', 'deadlines', 'load', 'fuzz', 'policy', 'pitfalls'].map((name) => join('dist/test', `${name}.test.js`));

function find(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...find(path));
    else if (entry.name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const args = process.argv.slice(2);
const unit = args.includes('--unit');
const passThrough = args.filter((a) => a !== '--unit');
// Longest first (SELF_CONTAINED is in that order), so that the short ones fill in beside them.
const files = unit ? [...SELF_CONTAINED, ...find('dist/src').sort()] : [...find('dist/src'), ...find('dist/test')].sort();
const env = unit ? { ...process.env, DKIM_PROXY_FUZZ_BATCHES: process.env.DKIM_PROXY_FUZZ_BATCHES ?? '8', DKIM_PROXY_UNIT: '1' } : process.env;
// The unit files mostly wait (deadlines, timeouts): three at a time overlap the waits.
const concurrency = unit ? ['--test-concurrency=3'] : [];
const result = spawnSync(process.execPath, ['--test', '--enable-source-maps', ...concurrency, ...passThrough, ...files], { stdio: 'inherit', env });
process.exit(result.status ?? 1);
