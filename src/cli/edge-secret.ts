/**
 * The edge's client secret (docs/decisions/edge-client-secret.md): an edge that listens
 * beyond loopback issues tokens only to clients that give it. `gsa-emu edge` reads it from
 * `--client-secret-file`, or makes one in its state folder; `gsa-emu up --edge-secret
 * <file>` reads the same file.
 */

import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { readOptionFile } from './common.js';

/** The file `gsa-emu edge` makes in its state folder when it listens beyond loopback. */
export const EDGE_SECRET_FILE = 'edge-client-secret';

/** Shortest and longest secret accepted (characters). */
export const SECRET_MIN = 16;
export const SECRET_MAX = 1024;

/**
 * The secret in `file`: its text without the line end and spaces around it, 16 to 1024
 * printable ASCII characters. Anything else is a UsageError naming `flag`.
 */
export function readSecretFile(file: string, flag: string): string {
  const secret = readOptionFile(file, flag).trim();
  if (secret.length < SECRET_MIN || secret.length > SECRET_MAX) {
    throw new UsageError(
      `${flag} "${file}": the secret is ${secret.length} characters; give ${SECRET_MIN} to ${SECRET_MAX} (one line)`,
    );
  }
  if (!/^[\x21-\x7e]+$/.test(secret)) {
    throw new UsageError(
      `${flag} "${file}": the secret must be one line of printable ASCII without spaces`,
    );
  }
  return secret;
}

/**
 * `<dir>/edge-client-secret`: read when it exists, else made (32 random bytes, base64url,
 * created 0600 and exclusively, so two edges starting on one folder agree).
 */
export function ensureEdgeSecret(dir: string): { secret: string; file: string } {
  const file = join(dir, EDGE_SECRET_FILE);
  const secret = randomBytes(32).toString('base64url');
  let fd: number;
  try {
    fd = openSync(
      file,
      fsConstants.O_WRONLY |
        fsConstants.O_CREAT |
        fsConstants.O_EXCL |
        (fsConstants.O_NOFOLLOW ?? 0),
      0o600,
    );
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return { secret: readSecretFile(file, 'the edge client secret'), file };
  }
  try {
    writeSync(fd, `${secret}\n`);
  } finally {
    closeSync(fd);
  }
  return { secret, file };
}
