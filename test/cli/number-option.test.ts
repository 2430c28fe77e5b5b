/**
 * The one parser of numeric option values (src/cli/common.ts `numberOption`): decimal
 * digits (a fraction where seconds allow it), in range; else a UsageError naming the flag,
 * the value and the range. Number() took "" and " " as 0, "0x10", "1e3", "Infinity".
 */
import t from 'tap';
import { numberOption, waitSeconds } from '../../src/cli/common.js';

const seconds = { unit: 'seconds', fraction: true, min: 0, max: 60 };
const count = { min: 1 };

t.test('digits, in range, are taken', async (t) => {
  t.equal(numberOption('0', '--s', seconds), 0);
  t.equal(numberOption('60', '--s', seconds), 60);
  t.equal(numberOption('1.5', '--s', seconds), 1.5);
  t.equal(numberOption('007', '--s', seconds), 7);
  t.equal(numberOption('1', '--n', count), 1);
  t.equal(numberOption('123456789', '--n', count), 123456789);
  t.equal(waitSeconds('0.5'), 0.5);
  t.equal(waitSeconds('3600'), 3600);
});

t.test('anything else is a UsageError naming the flag, the value and the range', async (t) => {
  for (const v of ['', ' ', ' 5', '5 ', '0x10', '1e3', 'Infinity', '-1', '+5', '.5', '5.', '61']) {
    t.throws(
      () => numberOption(v, '--s', seconds),
      {
        name: 'UsageError',
        message: `--s "${v}" is not a number of seconds from 0 to 60`,
      },
      JSON.stringify(v),
    );
  }
  for (const v of ['0', '1.5', '', '0x10', '9'.repeat(400)]) {
    t.throws(
      () => numberOption(v, '--limit', count),
      { name: 'UsageError', message: `--limit "${v}" is not a whole number of 1 or more` },
      JSON.stringify(v).slice(0, 20),
    );
  }
  for (const v of ['0', '', ' ', '1e0', '0x10', '3600.5']) {
    t.throws(
      () => waitSeconds(v),
      {
        name: 'UsageError',
        message: `--wait "${v}" is not a number of seconds above 0, at most 3600`,
      },
      JSON.stringify(v),
    );
  }
});
