/** The compiled classifier agrees with the linear oracle on >= 100,000 random flows over random tenants. */
import fc from 'fast-check';
import t from 'tap';
import { compile } from '../../src/classify/compile.js';
import { OracleClassifier } from '../../src/classify/oracle.js';
import type { ClientState, TenantSpec } from '../../src/policy/model.js';
import { formatIPv4, formatIPv6 } from '../../src/util/ip.js';
import {
  addLocalSubnetEdges,
  edgesOf,
  fields,
  localStateArb,
  privateTenantArb,
  prng,
  randomFlow,
  stateArb,
  tenantArb,
  withTenantSubnet,
} from './gen.js';

const RUNS = 200;
const FLOWS_PER_RUN = 600;
const SEED = Number(process.env.CLASSIFY_SEED ?? 20261126);

interface Counts {
  flows: number;
  tunnels: number;
  ruleHits: number;
  /** Flows in a local subnet that skipped a Private Access IP rule ... */
  local: number;
  /** ... and then matched a later rule. */
  localRule: number;
  /** Flows no active rule decided that a rule of a channel turned off would have. */
  off: number;
}

/** Compare the two on FLOWS_PER_RUN flows of `spec` (plus a local subnet around one of its Private IPs). */
function compare(spec: TenantSpec, st0: ClientState, seed: number, n: Counts): void {
  const rnd = prng(seed);
  const st = withTenantSubnet(spec, st0, rnd);
  const c = compile(spec, st);
  const o = new OracleClassifier(spec, st);
  const e = addLocalSubnetEdges(edgesOf(spec), st);
  for (let i = 0; i < FLOWS_PER_RUN; i++) {
    const f = randomFlow(e, rnd);
    const got = c.decide(f);
    const want = o.decide(f);
    n.flows++;
    if (got.action === 'tunnel') n.tunnels++;
    if (got.ruleId !== null) n.ruleHits++;
    if (got.reason.includes('local subnet')) {
      n.local++;
      if (got.ruleId !== null) n.localRule++;
    }
    if (got.ruleId === null && / Access channel is off/.test(got.reason)) n.off++;
    if (fields(got) !== fields(want)) {
      const where = f.family === 4 ? formatIPv4(f.ip4) : f.family === 6 ? formatIPv6(f.ip6) : '-';
      throw new Error(
        `flow proto=${f.proto} fam=${f.family} ip=${where} port=${f.port} host=${JSON.stringify(f.host)} localSubnets=${JSON.stringify(st.localSubnets)}\n got  ${fields(got)}\n want ${fields(want)}`,
      );
    }
  }
}

const counts = (): Counts => ({
  flows: 0,
  tunnels: 0,
  ruleHits: 0,
  local: 0,
  localRule: 0,
  off: 0,
});

t.test('compiled classifier == oracle', async (t) => {
  const n = counts();
  fc.assert(
    fc.property(tenantArb, stateArb, fc.integer(), (spec, st, seed) => compare(spec, st, seed, n)),
    { numRuns: RUNS, seed: SEED },
  );
  t.ok(n.flows >= 100_000, `${n.flows} flows compared`);
  // The generator must actually exercise rules, not only "no match".
  t.ok(n.ruleHits > n.flows / 4, `${n.ruleHits} flows matched a rule`);
  t.ok(n.tunnels > n.flows / 20, `${n.tunnels} flows tunneled`);
  t.ok(n.local > 0, `${n.local} flows in a local subnet skipped a Private Access IP rule`);
  t.ok(n.off > n.flows / 100, `${n.off} flows named a rule of a channel that is off`);
});

t.test('compiled classifier == oracle, Private Access IP rules and local subnets', async (t) => {
  const n = counts();
  fc.assert(
    fc.property(privateTenantArb, localStateArb, fc.integer(), (spec, st, seed) =>
      compare(spec, st, seed, n),
    ),
    { numRuns: RUNS / 2, seed: SEED },
  );
  t.ok(n.flows >= 50_000, `${n.flows} flows compared`);
  t.ok(
    n.local > n.flows / 100,
    `${n.local} flows in a local subnet skipped a Private Access IP rule`,
  );
  t.ok(n.localRule > 20, `${n.localRule} of them then matched a later rule`);
});
