/**
 * The systemd unit and the container image, checked as far as this machine
 * allows (no systemd as PID 1, no Docker engine): the unit passes
 * `systemd-analyze verify` and rates at most 2.0 in `systemd-analyze
 * security`; its commands, run as written (paths moved), check the config and
 * start the daemon, which reloads and drains on the unit's signals; its
 * writable path is the README's spool_dir. The Dockerfile's HEALTHCHECK
 * command, run against the daemon on the image's config, reports healthy.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { cli } from './helpers/cli.js';
import { makeConfigDir, type ConfigDir } from './helpers/config-dir.js';
import { startDaemon, startNode } from './helpers/daemon.js';
import { ROOT } from './helpers/fixtures.js';
import { freeTcpPort } from './helpers/ports.js';
import { readmeBlock, substitute } from './helpers/postfix.js';
import { startSink, type Sink } from './helpers/sink.js';

const run = promisify(execFile);
const UNIT = join(ROOT, 'packaging/dkim-proxy.service');
const unitText = readFileSync(UNIT, 'utf8');
/** The values of one directive, in order. */
const directive = (name: string): string[] => [...unitText.matchAll(new RegExp(`^${name}=(.*)$`, 'gm'))].map((m) => m[1]!);
/** A unit command line as argv, the install paths moved to this checkout. */
const argvOf = (line: string, config: string): string[] =>
  line
    .split(/\s+/)
    .map((a) => a.replace('/opt/dkim-proxy', ROOT).replace('/etc/dkim-proxy/dkim-proxy.toml', config));

describe('packaging/dkim-proxy.service', () => {
  const analyze = existsSync('/usr/bin/systemd-analyze') ? undefined : 'systemd-analyze is not installed';

  it('passes systemd-analyze verify, and its exposure rating is at most 2.0', { skip: analyze }, async () => {
    const verified = await run('systemd-analyze', ['verify', UNIT], { timeout: 30_000 }).catch((err: { stderr: string }) => err);
    assert.equal(verified.stderr.replace(/.*(Failed to open|dkim-proxy\.service: Command \/usr\/bin\/node is not executable).*\n/g, ''), '', 'no complaints but a missing node binary on this machine');
    const security = await run('systemd-analyze', ['security', '--offline=true', '--threshold=20', UNIT], { timeout: 30_000 }).catch((err: { stdout: string; code: number }) => err);
    assert.match(security.stdout, /Overall exposure level for dkim-proxy\.service: (0|1)\.\d OK/);
  });

  it('has the directives a production unit needs', () => {
    assert.deepEqual(directive('ExecReload'), ['/bin/kill -HUP $MAINPID']);
    assert.deepEqual(directive('User'), ['dkim-proxy']);
    for (const d of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'PrivateTmp=yes', 'CapabilityBoundingSet=']) assert.ok(unitText.includes(`\n${d}\n`), d);
    // The one writable path is where the README's config spools.
    const spool = /^spool_dir = "([^"]+)"/m.exec(readmeBlock('dkim-proxy.toml'))![1];
    assert.deepEqual(directive('ReadWritePaths'), [spool]);
    // It outlasts the daemon's 30 s drain.
    assert.ok(Number(directive('TimeoutStopSec')[0]) > 30);
  });

  describe('its commands, as written', () => {
    let sink: Sink;
    let dir: ConfigDir;
    before(async () => {
      sink = await startSink();
      dir = makeConfigDir(`[out]\nlisten = "127.0.0.1:0"\nrelay = "127.0.0.1:${sink.port}"\n[domain."example.com"]\nselector = "s1"\n`, [{ domain: 'example.com', selector: 's1' }]);
    });
    after(async () => {
      await sink?.stop();
      rmSync(dir.dir, { recursive: true, force: true });
    });

    it('ExecStartPre checks the config: 0 when good, 78 when not', async () => {
      const [node, ...args] = argvOf(directive('ExecStartPre')[0]!, dir.file);
      assert.equal(node, '/usr/bin/node');
      const good = await cli(args.slice(1), undefined, dir.dir);
      assert.equal(good.code, 0, good.stderr);
      const badFile = join(dir.dir, 'bad.toml');
      writeFileSync(badFile, '[out]\nlisten = 1\n');
      const bad = await cli(argvOf(directive('ExecStartPre')[0]!, badFile).slice(2), undefined, dir.dir);
      assert.equal(bad.code, 78);
    });

    it('ExecStart runs the daemon: JSON logs, SIGHUP reloads (ExecReload), SIGTERM (KillSignal) drains and exits 0', async () => {
      const [, ...args] = argvOf(directive('ExecStart')[0]!, dir.file);
      // startNode parses every stdout line as JSON: a line that is not fails the test.
      const d = startNode(args, dir.dir);
      try {
        await d.port('out');
        d.child.kill('SIGHUP');
        await d.waitFor((l) => l['msg'] === 'configuration and keys reloaded');
        assert.equal(directive('KillSignal')[0], 'SIGTERM');
        assert.equal(await d.stop(), 0);
      } finally {
        d.child.kill('SIGKILL');
      }
    });
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

  it('runs as a non-root user, with the container config where its commands read it', () => {
    assert.match(dockerfile, /^USER dkim$/m);
    assert.match(dockerfile, /^COPY config\/examples\/container\.toml \/etc\/dkim-proxy\/dkim-proxy\.toml$/m);
    assert.match(dockerfile, /^CMD \["run", "--config", "\/etc\/dkim-proxy\/dkim-proxy\.toml"\]$/m);
    assert.match(dockerfile, /^STOPSIGNAL SIGTERM$/m);
  });

  it('its HEALTHCHECK command reports the daemon on the image\'s config healthy, and unhealthy once it is gone', async () => {
    const check = /^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$/m.exec(dockerfile);
    assert.ok(check, 'a HEALTHCHECK with an exec-form CMD');
    const [node, script, ...args] = JSON.parse(check[1]!) as string[];
    assert.equal(node, 'node');
    assert.equal(script, '/app/dist/src/cli/main.js');

    // The image's config, on loopback ports of this machine (tests bind 127.0.0.1 only).
    const sink = await startSink();
    const metricsPort = await freeTcpPort();
    const container = readFileSync(join(ROOT, 'config/examples/container.toml'), 'utf8');
    const toml = substitute(
      container,
      new Map<string | RegExp, string>([
        [/0\.0\.0\.0:1002[57]/g, '127.0.0.1:0'],
        [/postfix:1002[68]/g, `127.0.0.1:${sink.port}`],
        ['0.0.0.0:9090', `127.0.0.1:${metricsPort}`],
        [/\/var\/spool\/dkim-proxy/g, '/tmp'],
        ['"/etc/dkim-proxy/keys/', '"keys/'],
      ]),
    );
    const dir = makeConfigDir(toml, [{ domain: 'example.com', selector: 's2026' }]);
    const d = startDaemon(dir.file, dir.dir);
    try {
      const healthArgs = args.map((a) => (a === '/etc/dkim-proxy/dkim-proxy.toml' ? dir.file : a));
      await d.waitFor((l) => l['msg'] === 'metrics and health endpoint listening');
      const r = await cli(healthArgs, undefined, dir.dir);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(r.stdout, `ok  http://127.0.0.1:${metricsPort}/healthz\n`);
      assert.equal(await d.stop(), 0);
      const gone = await cli(healthArgs, undefined, dir.dir);
      assert.equal(gone.code, 1);
    } finally {
      d.child.kill('SIGKILL');
      await sink.stop();
      rmSync(dir.dir, { recursive: true, force: true });
    }
  });
});
