/**
 * The client's device certificate (mTLS to the edge), as newer GSA clients present one: a
 * device key pair kept in the state folder and a certificate the edge's device CA signs
 * for this device id (edge/device-ca.ts), presented on the tunnel connections.
 *
 * ```ts
 * const device = new DeviceCertificate({ dir: stateDir, deviceId, enroll: (csr) => api.enrollDeviceCertificate(csr) });
 * const { cert, key } = await device.get();   // files reused while valid; enrolls otherwise
 * ```
 *
 * Files: `device-key.pem` (ECDSA P-256, PKCS#8, mode 0600, kept across enrollments) and
 * `device-cert.pem`. The certificate is reused while it names `deviceId`, matches the key
 * and has more than `renewBeforeMs` (default 30 days, at most half its life) left; else
 * `get()` enrolls (single flight). An enrollment failure rejects `get()`; the next call
 * tries again; one the edge answers with a 4xx (404: an edge without enrollment; 400/401/403:
 * it will not enroll this device) resolves null: present none (`none` says why). `invalidate()` (the edge refused the certificate) makes the next `get()`
 * enroll again with the same key, also when it comes while a load is in flight (that load's
 * certificate is not kept; the next `get()` starts another once it settles).
 */
import { createPublicKey } from 'node:crypto';
import { chmod, lchown, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import '../tunnel/reflect-shim.js';
import * as x509 from '@peculiar/x509';
import { EdgeHttpError } from '../errors.js';
import {
  ALG,
  crypto,
  DAY,
  exportKey,
  importKey,
  newKeys,
  pem,
  readMaybe,
  replaceFile,
  thumbprintOf,
} from '../tunnel/tls.js';
import { sudoHandOverTarget } from '../util/state-dir.js';

export const DEVICE_KEY_FILE = 'device-key.pem';
export const DEVICE_CERT_FILE = 'device-cert.pem';

export interface DeviceCertificateOptions {
  /** The state folder for the key and certificate files. */
  dir: string;
  /** The device id the certificate must name (CN). */
  deviceId: string;
  /** Sends a PKCS#10 request (DER) to the edge; resolves to the certificate (DER). */
  enroll(csrDer: Uint8Array): Promise<Uint8Array>;
  /** Enroll again when less than this is left (ms). Default 30 days (at most half the life). */
  renewBeforeMs?: number;
}

/** The certificate in use, for the status and health views. */
export interface DeviceCertificateInfo {
  thumbprint: string;
  subject: string;
  notAfter: string;
}

export interface ClientCertificate {
  cert: string;
  key: string;
}

export class DeviceCertificate {
  /** Enrollments made by this object (tests, diagnostics). */
  enrollments = 0;
  private current: { pair: ClientCertificate; cert: x509.X509Certificate } | null = null;
  private inflight: { gen: number; p: Promise<ClientCertificate> } | null = null;
  /**
   * Counts invalidate() calls: a load started before the latest one does not keep what it
   * found as `current` (it may be the certificate just refused).
   */
  private gen = 0;
  /** invalidate() was called: do not reuse the certificate file. */
  private stale = false;
  private readonly o: DeviceCertificateOptions;

  constructor(o: DeviceCertificateOptions) {
    this.o = o;
  }

  get files(): { key: string; cert: string } {
    return { key: join(this.o.dir, DEVICE_KEY_FILE), cert: join(this.o.dir, DEVICE_CERT_FILE) };
  }

  /** The certificate held (null before the first get(), or while presenting none). */
  info(): DeviceCertificateInfo | null {
    const c = this.current?.cert;
    if (!c) return null;
    return {
      thumbprint: thumbprintOf(c.rawData),
      subject: c.subject,
      notAfter: c.notAfter.toISOString(),
    };
  }

  /**
   * The edge refused the certificate held: the next get() enrolls again (keeping the key),
   * whatever the files say.
   */
  invalidate(): void {
    this.current = null;
    this.stale = true;
    this.gen++;
  }

  /**
   * A certificate and key to present: the one held or on disk while usable, else a new
   * one. Null when the edge has no enrollment endpoint (HTTP 404: an edge that cannot
   * issue device certificates cannot require them): the client then presents none, and
   * asks again at its next connect.
   */
  get(): Promise<ClientCertificate | null> {
    if (this.current && this.usable(this.current.cert)) return Promise.resolve(this.current.pair);
    if (this.inflight?.gen !== this.gen) {
      // None in flight, or one started before an invalidate(): a new load, after that one
      // settles (one writer of the files at a time).
      const gen = this.gen;
      const prev = this.inflight?.p;
      const run = (): Promise<ClientCertificate> => this.load(gen);
      const entry = { gen, p: prev ? prev.then(run, run) : run() };
      entry.p = entry.p.finally(() => {
        if (this.inflight === entry) this.inflight = null;
      });
      this.inflight = entry;
    }
    return this.inflight.p.then(
      (pair) => {
        this.none = null;
        return pair;
      },
      (err: unknown) => {
        // The edge answered, and will not enroll this device (no endpoint: 404; or refused:
        // 400 a device id it cannot name, 401/403 a token it does not take): present none,
        // and let the edge decide (an `optional` edge admits the tunnel; a `required` one
        // says the certificate is missing). Unreachable, or a 5xx: the tunnel could not
        // come up either; get() rejects and the next connect tries again.
        if (err instanceof EdgeHttpError && err.status >= 400 && err.status < 500) {
          this.current = null;
          this.unsupported = err.status === 404;
          this.none =
            err.status === 404
              ? 'the edge has no enrollment endpoint'
              : `the edge refused the enrollment: ${err.message}`;
          return null;
        }
        throw err;
      },
    );
  }

  /** The last enrollment found no endpoint at the edge (HTTP 404). */
  unsupported = false;
  /** Why the last get() presents no certificate (the edge answered 4xx), else null. */
  none: string | null = null;
  /**
   * Why the key or certificate held could not be written to `dir` (a directory in the
   * file's place, a full or read-only disk), else null: it is presented from memory for
   * this run, and the next run enrolls again.
   */
  notKept: string | null = null;

  /** Writes a file of `dir`; a failure is noted in `notKept`, not thrown. */
  private async keep(path: string, data: string, mode?: number): Promise<void> {
    try {
      await replaceFile(path, data, mode);
      // Under sudo, in the invoking user's state folder: theirs, as the rest of it (also
      // when it enrolls again mid-run, after `up`'s own hand-over).
      const owner = sudoHandOverTarget(this.o.dir);
      if (owner) await lchown(path, owner.uid, owner.gid).catch(() => {});
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.notKept = `${path}: ${code ?? (err instanceof Error ? err.message : String(err))}`;
    }
  }

  private usable(cert: x509.X509Certificate): boolean {
    const now = Date.now();
    const life = cert.notAfter.getTime() - cert.notBefore.getTime();
    const before = Math.min(this.o.renewBeforeMs ?? 30 * DAY, life / 2);
    // Not its start (notBefore): the edge judges that by its own clock, and a client whose
    // clock runs behind the edge's would otherwise enroll again at every connect. A
    // certificate the edge finds not yet valid is refused, and invalidate() enrolls again.
    return (
      cert.notAfter.getTime() - now > before &&
      cert.subjectName.getField('CN')[0] === this.o.deviceId
    );
  }

  /** Loads or enrolls; keeps the result as `current` unless invalidate() came since `gen`. */
  private async load(gen: number): Promise<ClientCertificate> {
    crypto();
    const files = this.files;
    this.notKept = null;
    try {
      await mkdir(this.o.dir, { recursive: true, mode: 0o700 });
    } catch {
      // keep() says what it could not write.
    }
    let keyPem = await readMaybe(files.key);
    let spki: Buffer | null = null;
    if (keyPem !== null) {
      try {
        spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
        await importKey(keyPem);
      } catch {
        keyPem = null;
      }
    }
    if (keyPem !== null) await privateMode(files.key);
    const certPem = keyPem === null || this.stale ? null : await readMaybe(files.cert);
    if (certPem !== null && keyPem !== null && spki !== null) {
      try {
        const cert = new x509.X509Certificate(certPem);
        if (Buffer.from(cert.publicKey.rawData).equals(spki) && this.usable(cert)) {
          const pair = { cert: certPem, key: keyPem };
          if (gen === this.gen) this.current = { pair, cert };
          return pair;
        }
      } catch {
        // Enroll again below.
      }
    }
    if (keyPem === null || spki === null) {
      const keys = await newKeys();
      keyPem = await exportKey(keys.privateKey);
      spki = Buffer.from(await crypto().subtle.exportKey('spki', keys.publicKey));
      await this.keep(files.key, keyPem, 0o600);
    }
    const privateKey = await importKey(keyPem);
    const publicKey = await crypto().subtle.importKey('spki', spki, ALG, true, ['verify']);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: `CN=${this.o.deviceId}`,
      keys: { privateKey, publicKey },
      signingAlgorithm: ALG,
    });
    this.enrollments++;
    const issued = await this.o.enroll(new Uint8Array(csr.rawData));
    this.unsupported = false;
    const cert = new x509.X509Certificate(issued);
    if (!Buffer.from(cert.publicKey.rawData).equals(spki))
      throw new Error('the edge returned a device certificate for another key');
    const newPem = pem('CERTIFICATE', cert.rawData);
    await this.keep(files.cert, newPem);
    const pair = { cert: newPem, key: keyPem };
    if (gen === this.gen) {
      this.current = { pair, cert };
      this.stale = false;
    }
    return pair;
  }
}

/**
 * A key file others may read (copied, restored from a backup) is made 0600 again, as it
 * was written; best effort (POSIX only; a file not ours is left as it is).
 */
async function privateMode(file: string): Promise<void> {
  if (process.platform === 'win32') return;
  try {
    const st = await stat(file);
    if (st.isFile() && (st.mode & 0o077) !== 0) await chmod(file, 0o600);
  } catch {
    // Read already; the mode is not worth failing the certificate for.
  }
}
