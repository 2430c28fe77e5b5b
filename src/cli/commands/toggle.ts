/**
 * `gsa-emu toggle <channel> on|off`: flips a tile of the running client (admin API POST
 * /toggle), as the user would in the app. Refused (exit 1, the admin's reason) when the
 * managed configuration locks or hides it. A tile already in that position: "already on/off".
 */
import type { Command } from 'commander';
import { adminCall, adminTarget } from '../../client/admin-client.js';
import { stateDir } from '../../util/state-dir.js';
import {
  type AdminOptionValues,
  addAdminOptions,
  channelOf,
  forwardingText,
  onOff,
  type UserActionAnswer,
} from '../common.js';

export function register(program: Command): void {
  addAdminOptions(
    program
      .command('toggle')
      .description(
        'turn a channel tile on or off in the running client (m365 is the Global Secure Access tile)',
      )
      .argument('<channel>', 'm365 (gsa), private or internet')
      .argument('<state>', 'on or off')
      .option(
        '--privileged',
        'as a privileged user (Windows: an administrator; RestrictNonPrivilegedUsers=1 refuses others)',
      ),
  ).action(
    async (channel: string, state: string, o: AdminOptionValues & { privileged?: boolean }) => {
      const ch = channelOf(channel);
      const s = onOff(state);
      const base = adminTarget(stateDir(o.stateDir), o);
      const r = await adminCall<UserActionAnswer>(base, 'POST', '/toggle', {
        channel: ch,
        on: s === 'on',
        privileged: o.privileged === true,
      });
      const what = r.changed === false ? `${ch} already ${s}` : `${ch} turned ${s}`;
      process.stdout.write(`${what}; forwarding now: ${forwardingText(r.channels)}\n`);
    },
  );
}
