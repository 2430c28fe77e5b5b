/**
 * Host mode with policy routing, tested safely: the "host" is a namespace (hs) whose only
 * link is a veth to another namespace (inet) holding a server on 198.51.100.1. A child
 * process inside hs runs the stack with its TUN in that same namespace (host mode), the
 * rules of host-routing.ts, and a bypass consumer bound to hs's own address. curl from hs
 * must reach the server through the TUN and the bypass, with no loop.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { simulatedHost, tsInNsArgs, tunMissing } from './helpers.js';

const missing =
  tunMissing() ?? (spawnSync('curl', ['--version']).status === 0 ? null : 'curl is not installed');

t.test(
  'host mode: policy routing sends apps into the TUN, the emulator bound to its own source address stays out',
  { skip: missing ?? false },
  async (t) => {
    const rand = randomBytes(3).toString('hex');
    const hs = `gsaemu-${process.pid}-hs${rand}`;
    const inet = `gsaemu-${process.pid}-in${rand}`;
    t.teardown(() => {
      spawnSync('ip', ['netns', 'del', hs]);
      spawnSync('ip', ['netns', 'del', inet]);
    });
    simulatedHost(hs, inet, `v${rand}`, ['198.51.100.1']);

    const server: ChildProcess = spawn(
      'ip',
      [
        'netns',
        'exec',
        inet,
        process.execPath,
        '-e',
        `require('http').createServer((q,s)=>s.end('peer='+q.socket.remoteAddress)).listen(8080,'198.51.100.1',()=>console.log('up'))`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.teardown(() => {
      server.kill();
    });
    await new Promise((r) => server.stdout!.once('data', r));

    const src = (f: string) =>
      JSON.stringify(new URL(`../../src/capture/tun/${f}`, import.meta.url).href);
    const script = `
      import { spawn, spawnSync } from 'node:child_process';
      import { openTun } from ${src('device.ts')};
      import { createTunStack } from ${src('stack.ts')};
      import { pipeTcp } from ${src('glue.ts')};
      import { setupHostRouting } from ${src('host-routing.ts')};
      const dev = openTun({ name: 'gsahost${rand}' });
      spawnSync('ip', ['addr', 'add', '10.255.0.1/30', 'dev', dev.name]);
      const stack = await createTunStack({ device: dev, hooks: {
        onTcp: (s, info) => pipeTcp(s, info, (i) => ({ host: i.dstIp, port: i.dstPort, localAddress: '192.0.2.2' })),
      } });
      const undo = setupHostRouting({ tunName: dev.name, sourceAddress: '192.0.2.2' });
      const rules = spawnSync('ip', ['-4', 'rule'], { encoding: 'utf8' }).stdout;
      // async: this process runs the stack, it must not block while curl talks through it
      const r = await new Promise((resolve) => {
        const c = spawn('curl', ['-sS', '-m', '5', 'http://198.51.100.1:8080/']);
        let stdout = '', stderr = '';
        c.stdout.on('data', (d) => (stdout += d));
        c.stderr.on('data', (d) => (stderr += d));
        c.on('close', () => resolve({ stdout, stderr }));
      });
      const get = spawnSync('ip', ['-4', 'route', 'get', '198.51.100.1'], { encoding: 'utf8' }).stdout;
      const getSrc = spawnSync('ip', ['-4', 'route', 'get', '198.51.100.1', 'from', '192.0.2.2'], { encoding: 'utf8' }).stdout;
      undo();
      const after = spawnSync('ip', ['-4', 'rule'], { encoding: 'utf8' }).stdout;
      await stack.close();
      console.log(JSON.stringify({ out: r.stdout, err: r.stderr, flows: stack.counters.tcpFlows,
        accepted: stack.counters.tcpAccepted, rules, after, get, getSrc }));`;
    const r = spawnSync('ip', tsInNsArgs(hs, script), { encoding: 'utf8', timeout: 60_000 });
    t.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
    t.equal(
      res.out,
      'peer=192.0.2.2',
      `the server saw the bypass socket, from the host address ${res.err}`,
    );
    t.equal(res.flows, 1, 'one flow crossed the TUN: the bypass socket did not loop back');
    t.equal(res.accepted, 1);
    t.match(res.get, /dev gsahost/, 'an unbound socket routes into the TUN');
    t.match(
      res.getSrc,
      /via 192\.0\.2\.1 dev v[0-9a-f]+h/,
      'the emulator source address routes directly',
    );
    t.match(res.rules, /10000:\s+from 192\.0\.2\.2 lookup main/);
    t.match(res.rules, /10001:\s+from all ipproto udp dport 53 lookup 2025/);
    t.match(res.rules, /10002:\s+from all lookup main suppress_prefixlength 0/);
    t.match(res.rules, /10003:\s+from all lookup 2025/);
    t.notMatch(res.after, /1000[0-3]:/, 'rules removed');
  },
);
