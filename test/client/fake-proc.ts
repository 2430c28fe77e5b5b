/**
 * A fake /proc for ProcessOwners tests (its `procRoot`): processes with a name and socket
 * fds, and net/tcp and net/tcp6 tables. Removed when the test ends.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

const HEAD =
  '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
export interface FakeProc {
  root: string;
  /** A process `pid` named `name` holding the sockets `inodes` (fds 3...), besides fds 0 and 1. */
  proc(pid: number, name: string, inodes: number[]): void;
  /** The process is gone. */
  exit(pid: number): void;
  /** net/tcp: its header and `lines` (none written until then: the inodes from sock_diag). */
  tcp(lines: string): void;
  tcp6(lines: string): void;
}

export function fakeProc(t: Test): FakeProc {
  const root = mkdtempSync(join(tmpdir(), 'gsa-fake-proc-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'net'));
  return {
    root,
    proc(pid, name, inodes) {
      const dir = join(root, String(pid));
      mkdirSync(join(dir, 'fd'), { recursive: true });
      writeFileSync(join(dir, 'comm'), `${name}\n`);
      symlinkSync('/dev/null', join(dir, 'fd', '0'));
      symlinkSync('pipe:[77]', join(dir, 'fd', '1'));
      for (const [i, ino] of inodes.entries()) {
        symlinkSync(`socket:[${ino}]`, join(dir, 'fd', String(3 + i)));
      }
    },
    exit(pid) {
      rmSync(join(root, String(pid)), { recursive: true });
    },
    tcp(lines) {
      writeFileSync(join(root, 'net', 'tcp'), HEAD + lines);
    },
    tcp6(lines) {
      writeFileSync(join(root, 'net', 'tcp6'), HEAD + lines);
    },
  };
}
