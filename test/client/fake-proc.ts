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
const hex = (port: number): string => port.toString(16).toUpperCase().padStart(4, '0');

/** One /proc/net/tcp line: 127.0.0.1:local -> 127.0.0.1:remote, ESTABLISHED. */
export function tcpLine(sl: number, local: number, remote: number, inode: number): string {
  return `   ${sl}: 0100007F:${hex(local)} 0100007F:${hex(remote)} 01 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 20 4 30 10 -1\n`;
}

/** One /proc/net/tcp6 line: [::1]:local -> [::1]:remote, ESTABLISHED. */
export function tcp6Line(sl: number, local: number, remote: number, inode: number): string {
  const lo = '00000000000000000000000001000000';
  return `   ${sl}: ${lo}:${hex(local)} ${lo}:${hex(remote)} 01 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 20 4 30 10 -1\n`;
}

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
