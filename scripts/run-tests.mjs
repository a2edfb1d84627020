#!/usr/bin/env node
// Runs every compiled test file with node's test runner. Node 20's `--test`
// takes no globs, so the files are listed here; extra arguments pass through
// (e.g. `npm test -- --test-name-pattern=relaxed`).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...find(path));
    else if (entry.name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const files = [...find('dist/src'), ...find('dist/test')].sort();
const args = ['--test', '--enable-source-maps', ...process.argv.slice(2), ...files];
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(result.status ?? 1);
