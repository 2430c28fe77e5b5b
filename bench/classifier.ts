/**
 * Classifier benchmark: compiled `decide` vs the linear oracle, at 100 / 1k / 10k / 100k
 * rules, for IPv4, IPv6, FQDN and mixed flows; compile time and memory per rule.
 * A careful hand loop (one monomorphic loop per classifier, 4096 prebuilt flows cycled,
 * several timed runs, median) so ns/op and decisions/s come out directly.
 *
 *   npm run bench:classifier            (builds with tsconfig.bench.json, runs with --expose-gc)
 *   QUICK=1 npm run bench:classifier    (fewer, shorter runs)
 *   SIZES=100,1000 REPEAT=3: docs/benchmarks.md, "Settings".
 *
 * Writes bench/results/classifier.json and the "Classifier" section of docs/benchmarks.md
 * (not when SIZES picks other sizes than the default ones: that run prints its figures only;
 * nor with QUICK=1: bench/results/classifier.quick.tmp.json instead).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NO_ITEM } from '../src/classify/candidates.js';
import { type CompiledClassifier, compile } from '../src/classify/compile.js';
import { type FqdnTable, suffixHash } from '../src/classify/fqdn-table.js';
import type { Ip4Table } from '../src/classify/ip4-table.js';
import type { Ip6Table } from '../src/classify/ip6-table.js';
import { OracleClassifier } from '../src/classify/oracle.js';
import type { Decision, Flow } from '../src/classify/types.js';
import { BENCH_STATE, benchFlows, type FlowKind, syntheticTenant } from './classifier-tenant.js';
import {
  benchCommand,
  flagSetting,
  helpRequested,
  interruptible,
  intListSetting,
  intSetting,
  settingsOrExit,
  stopOnExit,
  writeQuickResults,
} from './settings.js';

helpRequested(`
npm run bench:classifier: the compiled classifier against the linear oracle, ns per decision
at 100 to 100,000 rules; compile time and memory per rule.
  QUICK=1          9 runs of 5 ms per case (default 31 of 10 ms), 1 process per size
  SIZES=100,1000   tenant sizes (default 100,1000,10000,100000; other sizes: nothing written)
  REPEAT=3         processes per size (1 with QUICK)
A quick check (about 30 s): QUICK=1 npm run bench:classifier (its figures go to bench/results/classifier.quick.tmp.json, not over the recorded ones)
`);
// The benchmark, not a child measuring one size (which a SIGTERM must stop at once, even
// in a busy loop: no handler).
if (!process.argv.includes('--size')) interruptible();
const QUICK = settingsOrExit('bench:classifier', () => flagSetting(process.env, 'QUICK'));
const DEFAULT_SIZES = [100, 1000, 10000, 100000];
const SIZES = settingsOrExit('bench:classifier', () =>
  intListSetting(process.env, 'SIZES', DEFAULT_SIZES),
);
/** Other sizes than the recorded ones: the run does not overwrite the recorded results. */
const PARTIAL = SIZES.join(',') !== DEFAULT_SIZES.join(',');
const KINDS: FlowKind[] = ['ipv4', 'ipv6', 'fqdn', 'mixed'];
// Many short runs: on a shared machine a run that gets preempted is an outlier, not the median.
const RUNS = QUICK ? 9 : 31;
const RUN_MS = QUICK ? 5 : 10;
const ORACLE_MS = QUICK ? 60 : 150;
const ORACLE_RUNS = QUICK ? 3 : 7;
/** Child processes per size; the tables report the median over them. */
const REPEAT = settingsOrExit('bench:classifier', () =>
  intSetting(process.env, 'REPEAT', QUICK ? 1 : 3),
);
const FLOWS = 4096;

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const now = () => Number(process.hrtime.bigint());
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
};

let sink = 0;
function loopCompiled(c: CompiledClassifier, flows: Flow[], n: number): void {
  let acc = 0;
  for (let i = 0; i < n; i++) if (c.decide(flows[i & (FLOWS - 1)]!).action === 'tunnel') acc++;
  sink += acc;
}
function loopOracle(o: OracleClassifier, flows: Flow[], n: number): void {
  let acc = 0;
  for (let i = 0; i < n; i++) if (o.decide(flows[i % flows.length]!).action === 'tunnel') acc++;
  sink += acc;
}
const CONST: Decision = Object.freeze({ action: 'tunnel' }) as Decision;
const noop = { decide: (_f: Flow) => CONST };
function loopBaseline(c: typeof noop, flows: Flow[], n: number): void {
  let acc = 0;
  for (let i = 0; i < n; i++) if (c.decide(flows[i & (FLOWS - 1)]!).action === 'tunnel') acc++;
  sink += acc;
}

function loopV4(t: Ip4Table, ips: Uint32Array, n: number): void {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += t.lookup(ips[i & (FLOWS - 1)]!, 1, 443, NO_ITEM);
  sink += acc;
}
function loopV6(t: Ip6Table, w: Uint32Array, n: number): void {
  let acc = 0;
  for (let i = 0; i < n; i++) {
    const o = 4 * (i & (FLOWS - 1));
    acc += t.lookup(w[o]!, w[o + 1]!, w[o + 2]!, w[o + 3]!, 1, 443, NO_ITEM);
  }
  sink += acc;
}
function loopNames(t: FqdnTable, hosts: string[], n: number): void {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += t.lookup(hosts[i & (FLOWS - 1)]!, 1, 443, NO_ITEM);
  sink += acc;
}
/** The floor of any name matcher that reads every character once: an FNV pass. */
function loopHashOnly(hosts: string[], n: number): void {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += suffixHash(hosts[i & (FLOWS - 1)]!, 0);
  sink += acc;
}

interface Timing {
  median: number;
  min: number;
}

/** ns/op of `loop` over `runs` runs of about `ms` each: median and best run. */
function measure(loop: (n: number) => void, ms: number, runs: number): Timing {
  // Calibrate: double n until one run takes >= ms/4.
  let n = 1;
  for (;;) {
    const t0 = now();
    loop(n);
    const dt = (now() - t0) / 1e6;
    if (dt >= ms / 4 || n >= 1 << 26) {
      n = Math.max(1, Math.round((n * ms) / Math.max(dt, 0.001)));
      break;
    }
    n *= 2;
  }
  // Warm up: let V8 re-optimize for this case's flows before timing.
  for (let r = 0; r < 3; r++) loop(n);
  const res: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = now();
    loop(n);
    res.push((now() - t0) / n);
  }
  return { median: median(res), min: Math.min(...res) };
}

interface CaseResult {
  rules: number;
  kind: FlowKind;
  /** Median ns/op of the compiled classifier. */
  ns: number;
  /** Best run (least disturbed by other processes on a shared machine). */
  minNs: number;
  decisionsPerSec: number;
  oracleNs: number;
  /** oracle median / compiled median. */
  speedup: number;
  /** The table lookup alone (no flow record, no Decision fetch): ipv4/ipv6/fqdn only. */
  tableNs: number | null;
  /** fqdn only: one FNV pass over the host, the floor of any per-character matcher. */
  hashNs: number | null;
  /** Share of flows a rule matched (sanity: the flows are not all misses). */
  matchedShare: number;
}
interface CompileResult {
  rules: number;
  items: number;
  compileMs: number;
  heapBytesPerRule: number;
  tableBytesPerRule: number;
}

/** One tenant size, in this process (a child of `main`): fresh JIT state per size. */
function runSize(size: number): { compile: CompileResult; cases: CaseResult[] } {
  const cases: CaseResult[] = [];
  const compiles: CompileResult[] = [];
  {
    const { spec, targets } = syntheticTenant(size, size);
    gc();
    gc();
    const heap0 = process.memoryUsage();
    const t0 = now();
    let c = compile(spec, BENCH_STATE);
    const compileMs = (now() - t0) / 1e6;
    gc();
    gc();
    const heap1 = process.memoryUsage();
    const used = heap1.heapUsed - heap0.heapUsed + (heap1.arrayBuffers - heap0.arrayBuffers);
    // Compile a few more times for a steadier compile time.
    const times = [compileMs];
    for (let k = 0; k < (size >= 100000 ? 2 : 4); k++) {
      const t1 = now();
      c = compile(spec, BENCH_STATE);
      times.push((now() - t1) / 1e6);
    }
    const cr: CompileResult = {
      rules: size,
      items: c.size,
      compileMs: median(times),
      heapBytesPerRule: Math.round(used / size),
      tableBytesPerRule: Math.round(c.stats.tableBytes / size),
    };
    compiles.push(cr);
    console.log(
      `rules=${size} items=${c.size} compile ${cr.compileMs.toFixed(1)} ms, heap ${cr.heapBytesPerRule} B/rule (tables ${cr.tableBytesPerRule} B/rule)`,
    );
    const o = new OracleClassifier(spec, BENCH_STATE);
    // Let the collector and its concurrent sweepers finish with the compiles' garbage
    // before timing (at 100k rules that is hundreds of MB).
    gc();
    gc();
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    for (const kind of KINDS) {
      const flows = benchFlows(targets, kind, FLOWS, size + kind.length);
      // Sanity: agree with the oracle on a sample; count matches.
      let matched = 0;
      const sample = Math.min(FLOWS, size >= 100000 ? 200 : size >= 10000 ? 1000 : FLOWS);
      for (let i = 0; i < sample; i++) {
        const a = c.decide(flows[i]!);
        const b = o.decide(flows[i]!);
        if (a.ruleId !== b.ruleId || a.action !== b.action || a.reason !== b.reason) {
          throw new Error(`mismatch at rules=${size} kind=${kind} flow ${i}`);
        }
        if (a.ruleId !== null) matched++;
      }
      gc(); // the oracle's garbage from the previous case must not be collected mid-timing
      const ns = measure((n) => loopCompiled(c, flows, n), RUN_MS, RUNS);
      const oracleNs = measure(
        (n) => loopOracle(o, flows, n),
        ORACLE_MS,
        size >= 100000 ? 3 : ORACLE_RUNS,
      );
      const tb = c.tables;
      let tableNs: number | null = null;
      let hashNs: number | null = null;
      if (kind === 'ipv4') {
        const ips = Uint32Array.from(flows, (f) => f.ip4);
        tableNs = measure((n) => loopV4(tb.v4, ips, n), RUN_MS, RUNS).median;
      } else if (kind === 'ipv6') {
        const w = new Uint32Array(4 * FLOWS);
        for (let i = 0; i < FLOWS; i++) w.set(flows[i]!.ip6, 4 * i);
        tableNs = measure((n) => loopV6(tb.v6, w, n), RUN_MS, RUNS).median;
      } else if (kind === 'fqdn') {
        const hosts = flows.map((f) => f.host ?? '');
        tableNs = measure((n) => loopNames(tb.names, hosts, n), RUN_MS, RUNS).median;
        hashNs = measure((n) => loopHashOnly(hosts, n), RUN_MS, RUNS).median;
      }
      const r: CaseResult = {
        rules: size,
        kind,
        ns: Math.round(ns.median * 10) / 10,
        minNs: Math.round(ns.min * 10) / 10,
        decisionsPerSec: Math.round(1e9 / ns.median),
        oracleNs: Math.round(oracleNs.median),
        speedup: Math.round(oracleNs.median / ns.median),
        matchedShare: Math.round((matched / sample) * 100) / 100,
        tableNs: tableNs === null ? null : Math.round(tableNs * 10) / 10,
        hashNs: hashNs === null ? null : Math.round(hashNs * 10) / 10,
      };
      cases.push(r);
      console.log(
        `  ${kind.padEnd(6)} ${r.ns.toFixed(1).padStart(7)} ns/op (best ${r.minNs.toFixed(1)})  ${(r.decisionsPerSec / 1e6).toFixed(1).padStart(6)} M/s   oracle ${r.oracleNs.toString().padStart(9)} ns/op   x${r.speedup}   matched ${Math.round(r.matchedShare * 100)}%${r.tableNs !== null ? `   table ${r.tableNs}` : ''}${r.hashNs !== null ? `   hash ${r.hashNs}` : ''}`,
      );
    }
  }
  return { compile: compiles[0]!, cases };
}

/** One child process for one size. */
async function runChild(size: number): Promise<{ compile: CompileResult; cases: CaseResult[] }> {
  // Not spawnSync: a Ctrl+C (or SIGTERM to this process alone) must stop the child too.
  const child = stopOnExit(
    spawn(
      process.execPath,
      ['--expose-gc', fileURLToPath(import.meta.url), '--size', String(size)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: process.env,
      },
    ),
  );
  let out = '';
  let result: string | null = null;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    out += d;
    const lines = out.split('\n');
    out = lines.pop()!;
    for (const l of lines) if (l && !l.startsWith('RESULT ')) console.log(l);
    for (const l of lines) if (l.startsWith('RESULT ')) result = l;
  });
  const [status] = (await once(child, 'close')) as [number | null];
  if (out.startsWith('RESULT ')) result = out;
  if (status !== 0 || !result) throw new Error(`size ${size} failed (status ${status})`);
  return JSON.parse(result.slice(7)) as { compile: CompileResult; cases: CaseResult[] };
}

/**
 * Each size runs in its own child process, as a real client holds one tenant: otherwise
 * the JIT's feedback from one size's flows (deopts, re-optimizations) leaks into the next
 * case and makes single cases 5-10x slower in a way no production process would see.
 */
async function main(): Promise<void> {
  const flowsA = benchFlows({ v4: [[0, 0]], v6: [], names: [] }, 'ipv4', FLOWS);
  const baseline = measure((n) => loopBaseline(noop, flowsA, n), RUN_MS, RUNS);
  const baselineNs = baseline.median;
  console.log(
    `harness baseline (loop + call + property read): ${baseline.median.toFixed(1)} ns/op (best ${baseline.min.toFixed(1)})`,
  );
  const cases: CaseResult[] = [];
  const compiles: CompileResult[] = [];
  for (const size of SIZES) {
    const reps: Array<{ compile: CompileResult; cases: CaseResult[] }> = [];
    for (let rep = 0; rep < REPEAT; rep++) reps.push(await runChild(size));
    // Per case: the median over the processes of each process's median; the best of the bests.
    const mid = <T>(xs: T[], f: (x: T) => number) => median(xs.map(f));
    compiles.push({
      ...reps[0]!.compile,
      compileMs: mid(reps, (r) => r.compile.compileMs),
      heapBytesPerRule: mid(reps, (r) => r.compile.heapBytesPerRule),
    });
    reps[0]!.cases.forEach((c0, i) => {
      const all = reps.map((r) => r.cases[i]!);
      const ns = mid(all, (c) => c.ns);
      const oracleNs = mid(all, (c) => c.oracleNs);
      const tb = all.map((c) => c.tableNs).filter((x): x is number => x !== null);
      const hs = all.map((c) => c.hashNs).filter((x): x is number => x !== null);
      cases.push({
        ...c0,
        ns,
        minNs: Math.min(...all.map((c) => c.minNs)),
        decisionsPerSec: Math.round(1e9 / ns),
        oracleNs,
        speedup: Math.round(oracleNs / ns),
        tableNs: tb.length ? median(tb) : null,
        hashNs: hs.length ? median(hs) : null,
      });
    });
  }
  const env = {
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    date: new Date().toISOString(),
    runs: RUNS,
    runMs: RUN_MS,
    processes: REPEAT,
    quick: QUICK,
    command: benchCommand('bench:classifier', ['QUICK', 'REPEAT', 'SIZES']),
    /** 1-minute load average at the end: other processes share these cores. */
    loadavg: Math.round(os.loadavg()[0]! * 100) / 100,
  };
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const result = { env, baselineNs, compile: compiles, cases };
  if (PARTIAL) {
    console.log(
      `SIZES=${SIZES.join(',')} (not ${DEFAULT_SIZES.join(',')}): bench/results/classifier.json and docs/benchmarks.md not written`,
    );
    return;
  }
  if (QUICK) {
    writeQuickResults(root, 'classifier', result);
    return;
  }
  writeFileSync(
    join(root, 'bench/results/classifier.json'),
    `${JSON.stringify(result, null, 2)}\n`,
  );
  writeSection(root, result);
  console.log(
    'written bench/results/classifier.json and the Classifier section of docs/benchmarks.md',
  );
}

function writeSection(
  root: string,
  r: {
    env: Record<string, unknown>;
    baselineNs: number;
    compile: CompileResult[];
    cases: CaseResult[];
  },
): void {
  const file = join(root, 'docs/benchmarks.md');
  const lines: string[] = [];
  lines.push('## Classifier');
  lines.push('');
  lines.push(
    `\`${r.env.command ?? 'npm run bench:classifier'}\` (bench/classifier.ts; ${r.env.node}, ${r.env.cpu}, ${r.env.cores} cores, single thread; per case the median over ${r.env.processes} processes of the median of ${r.env.runs} runs of ${r.env.runMs} ms; "best run" is the fastest single run; load average ${r.env.loadavg} from other work on the same 2 cores; ${String(r.env.date).slice(0, 16)}Z). Raw data: bench/results/classifier.json.`,
  );
  lines.push('');
  lines.push(
    'Synthetic tenant: one destination per rule; 40% IPv4 CIDRs/ranges, 15% IPv6 /64s, 45% names (60% exact, 28% `*.x`, 6% `autodiscover.*.x`, 6% dnsSuffix); 5% M365, 35% Private, 60% Internet rules. Flows: 4096 prebuilt, about half aimed at a rule destination, cycled. "oracle" is the linear first-match scan (src/classify/oracle.ts).',
  );
  lines.push('');
  lines.push(
    '| rules | flows | ns/op (median) | ns/op (best run) | table lookup alone | decisions/s | oracle ns/op | speedup |',
  );
  lines.push('|------:|:------|------:|------:|------:|------------:|-------------:|--------:|');
  for (const c of r.cases) {
    lines.push(
      `| ${c.rules.toLocaleString('en-US')} | ${c.kind} | ${c.ns.toFixed(1)} | ${c.minNs.toFixed(1)} | ${c.tableNs === null ? '' : c.tableNs.toFixed(1)}${c.hashNs === null ? '' : ` (hash pass ${c.hashNs.toFixed(1)})`} | ${(c.decisionsPerSec / 1e6).toFixed(1)} M | ${c.oracleNs.toLocaleString('en-US')} | ${c.speedup.toLocaleString('en-US')}x |`,
    );
  }
  lines.push('');
  lines.push('| rules | items | compile ms | heap B/rule | tables B/rule |');
  lines.push('|------:|------:|-----------:|------------:|--------------:|');
  for (const c of r.compile) {
    lines.push(
      `| ${c.rules.toLocaleString('en-US')} | ${c.items.toLocaleString('en-US')} | ${c.compileMs.toFixed(1)} | ${c.heapBytesPerRule} | ${c.tableBytesPerRule} |`,
    );
  }
  lines.push('');
  lines.push(
    `Harness baseline (loop, call, one property read, no classification): ${r.baselineNs.toFixed(1)} ns/op, included in every figure above.`,
  );
  lines.push('');
  const begin = '<!-- classifier:begin -->';
  const end = '<!-- classifier:end -->';
  const section = `${begin}\n${lines.join('\n')}${end}`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    text =
      '# Benchmarks\n\nEach section is written by its benchmark; edit the benchmark, not the table.\n\n';
  }
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a >= 0 && b > a) text = text.slice(0, a) + section + text.slice(b + end.length);
  else text = `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, text);
}

const sizeArg = process.argv.indexOf('--size');
if (sizeArg >= 0) {
  const r = runSize(Number(process.argv[sizeArg + 1]));
  console.log(`RESULT ${JSON.stringify(r)}`);
  if (sink === 42) console.log('');
} else {
  await main();
}
