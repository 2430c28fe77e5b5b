/**
 * `gsa-emu vpn on|off [--via settings|app]` and `gsa-emu onboard`: what the user does to the
 * VPN of the running client (admin API POST /vpn, POST /onboard), as in the seed:
 * - the VPN is switched in Settings (refused off with "Block users from disabling automatic
 *   VPN") or, with EnableVPNToggleInApp=TRUE, in the app; while it is off nothing is
 *   forwarded: every flow goes direct;
 * - without SilentOnboard=TRUE the client starts not onboarded and forwards nothing until
 *   the user onboards.
 * - `gsa-emu pause` / `gsa-emu resume`: the macOS client's Pause (10 minutes; nothing is
 *   forwarded until it resumes by itself), both refused on other platforms, and `pause`
 *   with HidePauseButton;
 * - `--privileged` (vpn, toggle): the user is an administrator (Windows
 *   RestrictNonPrivilegedUsers=1 refuses a standard user, the default).
 * Refused (exit 1, the reason) as the managed configuration says. Asked for what is so
 * already, they say so ("VPN already on", "already onboarded") and change nothing.
 */
import type { Command } from 'commander';
import { adminCall, adminTarget } from '../../client/admin-client.js';
import { UsageError } from '../../errors.js';
import { stateDir } from '../../util/state-dir.js';
import {
  type AdminOptionValues,
  addAdminOptions,
  forwardingText,
  onOff,
  type UserActionAnswer,
} from '../common.js';

export function register(program: Command): void {
  addAdminOptions(
    program
      .command('vpn')
      .description(
        'switch the VPN of the running client on or off, in Settings (default) or in the app',
      )
      .argument('<state>', 'on or off')
      .option(
        '--via <where>',
        'settings or app (the app needs EnableVPNToggleInApp=TRUE)',
        'settings',
      )
      .option(
        '--privileged',
        'as a privileged user (Windows: an administrator; RestrictNonPrivilegedUsers=1 refuses others)',
      ),
  ).action(async (state: string, o: AdminOptionValues & { via: string; privileged?: boolean }) => {
    const s = onOff(state);
    const via = o.via.toLowerCase();
    if (via !== 'settings' && via !== 'app') {
      throw new UsageError(`--via must be settings or app, not "${o.via}"`);
    }
    const base = adminTarget(stateDir(o.stateDir), o);
    const r = await adminCall<UserActionAnswer>(base, 'POST', '/vpn', {
      on: s === 'on',
      via,
      privileged: o.privileged === true,
    });
    const what =
      r.changed === false
        ? `VPN already ${s}`
        : `VPN turned ${s} in ${via === 'app' ? 'the app' : 'Settings'}`;
    process.stdout.write(`${what}; forwarding now: ${forwardingText(r.channels)}\n`);
  });

  addAdminOptions(
    program
      .command('onboard')
      .description(
        'onboard the running client, as the user would in the app (without SilentOnboard)',
      ),
  ).action(async (o: AdminOptionValues) => {
    const base = adminTarget(stateDir(o.stateDir), o);
    const r = await adminCall<UserActionAnswer>(base, 'POST', '/onboard', {});
    const what = r.changed === false ? 'already onboarded' : 'onboarded';
    process.stdout.write(`${what}; forwarding now: ${forwardingText(r.channels)}\n`);
  });

  addAdminOptions(
    program
      .command('pause')
      .description(
        "pause the running client for 10 minutes, as the macOS client's Pause (nothing is forwarded; it resumes by itself, or at `resume`); --platform macos only, and refused with HidePauseButton=1 (exit 1)",
      ),
  ).action(async (o: AdminOptionValues) => {
    const base = adminTarget(stateDir(o.stateDir), o);
    const r = await adminCall<UserActionAnswer & { pausedUntil?: string | null }>(
      base,
      'POST',
      '/pause',
      {},
    );
    const what = r.changed === false ? 'already paused' : 'paused';
    process.stdout.write(
      `${what} until ${r.pausedUntil ?? '?'} (it resumes by itself then); forwarding now: ${forwardingText(r.channels)}\n`,
    );
  });

  addAdminOptions(
    program
      .command('resume')
      .description(
        'end a pause of the running client now (`not paused` when there is none); as `pause`, refused on a platform other than --platform macos (exit 1)',
      ),
  ).action(async (o: AdminOptionValues) => {
    const base = adminTarget(stateDir(o.stateDir), o);
    const r = await adminCall<UserActionAnswer>(base, 'POST', '/resume', {});
    const what = r.changed === false ? 'not paused' : 'resumed';
    process.stdout.write(`${what}; forwarding now: ${forwardingText(r.channels)}\n`);
  });
}
