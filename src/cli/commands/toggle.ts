/**
 * `gsa-emu toggle <channel> on|off`: flips a tile of the running client (admin API POST
 * /toggle), as the user would in the app. Refused (exit 1, the admin's reason) when the
 * managed configuration locks or hides it. A tile already in that position: "already on/off".
 */
import type { Command } from 'commander';
import { adminCall, adminTarget } from '../../client/admin-client.js';
import { UsageError } from '../../errors.js';
import { stateDir } from '../../util/state-dir.js';
import { addAdminOptions, channelOf } from '../common.js';

export function register(program: Command): void {
  addAdminOptions(
    program
      .command('toggle')
      .description(
        'turn a channel tile on or off in the running client (m365 is the Global Secure Access tile)',
      )
      .argument('<channel>', 'm365 (gsa), private or internet')
      .argument('<state>', 'on or off'),
  ).action(
    async (
      channel: string,
      state: string,
      o: { admin?: string; adminToken?: string; stateDir?: string },
    ) => {
      const ch = channelOf(channel);
      const s = state.toLowerCase();
      if (s !== 'on' && s !== 'off')
        throw new UsageError(`state must be on or off, not "${state}"`);
      const base = adminTarget(stateDir(o.stateDir), o);
      const r = await adminCall<{ channels: Record<string, boolean>; changed?: boolean }>(
        base,
        'POST',
        '/toggle',
        { channel: ch, on: s === 'on' },
      );
      const now = Object.entries(r.channels)
        .map(([k, v]) => `${k} ${v ? 'on' : 'off'}`)
        .join(', ');
      // `changed` false: it was so already (an older API without it: it changed).
      const what = r.changed === false ? `${ch} already ${s}` : `${ch} turned ${s}`;
      process.stdout.write(`${what}; forwarding now: ${now}\n`);
    },
  );
}
