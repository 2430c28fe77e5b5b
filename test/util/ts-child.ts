/**
 * Child Node processes that run TypeScript given inline (ESM), through tap's TypeScript
 * loader: for scenarios that must not run in the test process (one that would leave it
 * unable to exit, or one that needs another network namespace).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';

/** Node arguments that run the inline ESM TypeScript `script`. */
export function tsEvalArgs(script: string): string[] {
  const tsImport = new URL(
    '../../node_modules/@tapjs/typescript/dist/esm/import.mjs',
    import.meta.url,
  ).href;
  return ['--import', tsImport, '--input-type=module', '-e', script];
}

export interface TsRun {
  /** Exit code, or null when killed. */
  code: number | null;
  /** 'SIGKILL' when it ran past the time limit. */
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs `script` in a child node; kills it after `timeoutMs`. */
export async function runTs(script: string, timeoutMs = 20_000): Promise<TsRun> {
  const child = spawn(process.execPath, tsEvalArgs(script), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString();
  });
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  return { code, signal, stdout, stderr };
}
