/** The compiled classifier agrees with the linear oracle on >= 100,000 random flows over random tenants. */
import fc from 'fast-check';
import t from 'tap';
import { compile } from '../../src/classify/compile.js';
import { OracleClassifier } from '../../src/classify/oracle.js';
import { formatIPv4, formatIPv6 } from '../../src/util/ip.js';
import { edgesOf, fields, prng, randomFlow, stateArb, tenantArb } from './gen.js';

const RUNS = 200;
const FLOWS_PER_RUN = 600;

t.test('compiled classifier == oracle', async (t) => {
  let flows = 0;
  let tunnels = 0;
  let ruleHits = 0;
  fc.assert(
    fc.property(tenantArb, stateArb, fc.integer(), (spec, st, seed) => {
      const c = compile(spec, st);
      const o = new OracleClassifier(spec, st);
      const e = edgesOf(spec);
      const rnd = prng(seed);
      for (let i = 0; i < FLOWS_PER_RUN; i++) {
        const f = randomFlow(e, rnd);
        const got = c.decide(f);
        const want = o.decide(f);
        flows++;
        if (got.action === 'tunnel') tunnels++;
        if (got.ruleId !== null) ruleHits++;
        if (fields(got) !== fields(want)) {
          const where =
            f.family === 4 ? formatIPv4(f.ip4) : f.family === 6 ? formatIPv6(f.ip6) : '-';
          throw new Error(
            `flow proto=${f.proto} fam=${f.family} ip=${where} port=${f.port} host=${JSON.stringify(f.host)}\n got  ${fields(got)}\n want ${fields(want)}`,
          );
        }
      }
    }),
    { numRuns: RUNS, seed: Number(process.env.CLASSIFY_SEED ?? 20261126) },
  );
  t.ok(flows >= 100_000, `${flows} flows compared`);
  // The generator must actually exercise rules, not only "no match".
  t.ok(ruleHits > flows / 4, `${ruleHits} flows matched a rule`);
  t.ok(tunnels > flows / 20, `${tunnels} flows tunneled`);
});
