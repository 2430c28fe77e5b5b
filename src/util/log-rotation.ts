/**
 * Size-capped log files, as logrotate's `size <cap>` with `rotate 1`: before a record
 * would take a file past its cap, the file is renamed `<file>.1` (replacing an older `.1`)
 * and a new `<file>` is begun, so a log keeps at most about twice its cap on disk. See
 * docs/decisions/logs-rotation.md.
 *
 * - A record (one line) goes whole to one file: rotation happens between records, and
 *   what the old file's writer still buffers is written to the old file (now `.1`).
 * - The cost per record is one byte count added (no stat() per write); the file's size
 *   is read once, when it is opened (an existing file is appended to and counted).
 * - The new file is opened as the state folder's files are (openPrivateFile: 0600, never
 *   through a symbolic link, a regular file only); run as root (sudo), it is given the
 *   owner of the file it replaces.
 * - Only a regular file rotates (not `/dev/null` or a FIFO given as `--log-file`), and only
 *   the file this process opened: one moved or removed meanwhile (an outside logrotate) is
 *   not renamed; a new file is begun in its place.
 * - A rotation that fails (the rename, or the new file's open) leaves the records going to
 *   the current file; it is tried again after another cap's worth of bytes.
 */
import { closeSync, fchownSync, fstatSync, lstatSync, renameSync } from 'node:fs';
import { openPrivateFile } from './state-dir.js';

export const MIB = 1024 * 1024;
/** The default cap of each log file, in MiB (`--log-max-size`). */
export const DEFAULT_LOG_MAX_MIB = 1024;
export const DEFAULT_LOG_MAX_BYTES = DEFAULT_LOG_MAX_MIB * MIB;

/** The byte count and the renames of one log file; the caller owns the writers. */
export class SizeRotation {
  /** Bytes in the current file: its size when opened, plus the records counted since. */
  private bytes = 0;
  /** The cap; infinite with no cap, or for a file that is not a regular file. */
  private readonly max: number;
  private dev: number;
  private ino: number;
  private readonly uid: number;
  private readonly gid: number;
  /** Files begun since start. */
  rotations = 0;
  /** Rotations that failed (the records stayed in the current file), and the last error. */
  errors = 0;
  lastError: Error | null = null;

  /**
   * `file`, open (for appending) on `fd`: its size is counted from there. `maxBytes`: the
   * cap; 0 = never rotate.
   */
  constructor(
    readonly file: string,
    maxBytes: number,
    fd: number,
  ) {
    const st = fstatSync(fd);
    this.bytes = st.size;
    this.dev = st.dev;
    this.ino = st.ino;
    this.uid = st.uid;
    this.gid = st.gid;
    const capped = maxBytes > 0 && Number.isFinite(maxBytes) && st.isFile();
    this.max = capped ? maxBytes : Number.POSITIVE_INFINITY;
  }

  /**
   * Counts a record of `n` bytes about to be written. Null: write it where records go now;
   * a descriptor: the file was rotated, write it (and what follows) to this new file, and
   * end the old file's writer.
   */
  before(n: number): number | null {
    const next = this.bytes + n;
    // An empty file takes one record even past the cap (a record bigger than the cap).
    if (next <= this.max || this.bytes === 0) {
      this.bytes = next;
      return null;
    }
    let fd: number | null = null;
    try {
      fd = this.rotate();
    } catch (e) {
      this.errors++;
      this.lastError = e as Error;
      this.bytes = 0;
    }
    this.bytes += n;
    return fd;
  }

  private rotate(): number {
    let ours = false;
    try {
      const st = lstatSync(this.file);
      ours = st.dev === this.dev && st.ino === this.ino;
    } catch {}
    if (ours) renameSync(this.file, `${this.file}.1`);
    const fd = openPrivateFile(this.file);
    try {
      const st = fstatSync(fd);
      if (process.getuid?.() === 0 && (st.uid !== this.uid || st.gid !== this.gid)) {
        fchownSync(fd, this.uid, this.gid);
      }
      this.bytes = st.size;
      this.dev = st.dev;
      this.ino = st.ino;
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    this.rotations++;
    return fd;
  }
}
