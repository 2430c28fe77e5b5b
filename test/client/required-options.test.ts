/**
 * startClient and startDemo called without their required option (from JavaScript, where
 * no type says so) reject with a ConfigError naming it, as startEdge does for `stateDir`
 * (docs/errors.md: every error raised on purpose is a GsaError with a code); they threw a
 * TypeError ("Cannot read properties of undefined (reading 'url')"). Nothing listens.
 */
import t from 'tap';
import { type ClientOptions, startClient } from '../../src/client/client.js';
import { type DemoOptions, startDemo } from '../../src/client/demo.js';

t.test('startClient without edge', async (t) => {
  for (const opts of [undefined, {}, { edge: null }, { edge: 'http://127.0.0.1:1' }]) {
    await t.rejects(
      startClient(opts as unknown as ClientOptions),
      { name: 'ConfigError', code: 'GSA_ERR_CONFIG', issues: [{ path: 'edge' }] },
      JSON.stringify(opts) ?? 'undefined',
    );
  }
});

t.test('startDemo without stateDir', async (t) => {
  for (const opts of [undefined, {}, { stateDir: '' }]) {
    await t.rejects(
      startDemo(opts as unknown as DemoOptions),
      { name: 'ConfigError', code: 'GSA_ERR_CONFIG', issues: [{ path: 'stateDir' }] },
      JSON.stringify(opts) ?? 'undefined',
    );
  }
});
