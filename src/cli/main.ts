#!/usr/bin/env node
/**
 * The `gsa-emu` command line. Each command lives in src/cli/commands/<name>.ts and exports
 * `register(program: Command): void`; this file only assembles them and turns GsaErrors
 * into one clear message (no stack trace) and a non-zero exit code.
 */
import { Command, CommanderError } from 'commander';
import { GsaError } from '../errors.js';
import { loopbackDownHint } from '../util/listen.js';
import { packageVersion } from '../util/package.js';
import { guardExit } from './exit-guard.js';
import { guardOutput } from './stdio.js';

type Registrar = (program: Command) => void;

/** Command modules, in help order. */
const COMMANDS: Array<() => Promise<{ register: Registrar }>> = [
  () => import('./commands/explain.js'),
  () => import('./commands/profiles.js'),
  () => import('./commands/edge.js'),
  () => import('./commands/up.js'),
  () => import('./commands/status.js'),
  () => import('./commands/flows.js'),
  () => import('./commands/hostnames.js'),
  () => import('./commands/toggle.js'),
  () => import('./commands/vpn.js'),
  () => import('./commands/stop.js'),
  () => import('./commands/netns.js'),
];

export async function buildProgram(): Promise<Command> {
  const program = new Command('gsa-emu')
    .description(
      'Emulator of the Microsoft Entra Global Secure Access client (loopback VPN) and its edge.',
    )
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run gsa-emu --help for usage)')
    // A command's options come before its arguments (`netns` passes the rest through).
    .enablePositionalOptions()
    .exitOverride();
  for (const load of COMMANDS) (await load()).register(program);
  return program;
}

export function reportError(err: unknown): number {
  // Help and version exit 0; every command-line error commander finds (a missing argument,
  // an unknown option or command) is a usage error, exit 2, like gsa-emu's own.
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
  if (err instanceof GsaError) {
    process.stderr.write(`gsa-emu: ${err.message}\n`);
    return err.code === 'GSA_ERR_USAGE' ? 2 : 1;
  }
  const e = err as NodeJS.ErrnoException & { address?: unknown };
  if (e && typeof e.code === 'string' && typeof e.message === 'string') {
    // A UDP bind or a connect on 127.0.0.1 in a namespace whose `lo` is down.
    const hint =
      e.code === 'EADDRNOTAVAIL' && typeof e.address === 'string'
        ? loopbackDownHint(e.address)
        : null;
    process.stderr.write(`gsa-emu: ${e.message}${hint ? `: ${hint}` : ''}\n`);
    return 1;
  }
  process.stderr.write(`gsa-emu: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
  return 70;
}

async function main(argv: string[]): Promise<void> {
  guardExit();
  // Output to a closed pipe (`| head -1`) is not a crash: ./stdio.ts.
  guardOutput();
  try {
    const program = await buildProgram();
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}

await main(process.argv);
