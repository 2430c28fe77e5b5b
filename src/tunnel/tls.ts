/**
 * TLS material for the edge's tunnel endpoint: a local CA and a server certificate,
 * generated on first start and kept in a state folder, so a client trusts the edge by
 * pinning one CA file (pass `ca` to TunnelClient / ws / undici).
 *
 * `loadOrCreateTls(stateDir, hostnames)`:
 * - ECDSA P-256 keys, SHA-256 signatures (via @peculiar/x509 on WebCrypto);
 * - CA: `ca.pem` + `ca-key.pem`, 10 years, basicConstraints CA:true pathLen 0;
 * - leaf: `cert.pem` + `key.pem`, 825 days, serverAuth, SANs 127.0.0.1, ::1, localhost plus
 *   every name given (e.g. `<tenantId>.internet.client.globalsecureaccess.test`);
 * - reused as long as the files parse, each key is its certificate's, the leaf covers every
 *   requested name and neither expires within 30 days; the leaf is re-issued (same CA)
 *   otherwise; the CA is re-created only when missing, unreadable, not a pair or expiring.
 *   Keys are written with mode 0600.
 */
import { createHash, createPublicKey, webcrypto } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import './reflect-shim.js';
import * as x509 from '@peculiar/x509';
import { GsaError } from '../errors.js';
import { acquirePidLock } from '../util/pid-lock.js';

export interface TlsMaterial {
  /** CA certificate (PEM): what clients trust. */
  ca: string;
  /** Server certificate (PEM), leaf only. */
  cert: string;
  /** Server private key (PEM, PKCS#8). */
  key: string;
  /** Names and addresses the certificate covers. */
  names: string[];
  /** Where the files are. */
  files: { ca: string; caKey: string; cert: string; key: string };
}

type Crypto = webcrypto.Crypto;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const ALG: webcrypto.EcKeyGenParams & webcrypto.EcdsaParams = {
  name: 'ECDSA',
  namedCurve: 'P-256',
  hash: 'SHA-256',
};
export const DAY = 86_400_000;
const DEFAULT_NAMES = ['localhost', '127.0.0.1', '::1'];

let providerSet = false;
export function crypto(): Crypto {
  const c = (globalThis.crypto ?? webcrypto) as Crypto;
  if (!providerSet) {
    x509.cryptoProvider.set(c as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    providerSet = true;
  }
  return c;
}

export function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export function der(pemText: string): Buffer {
  return Buffer.from(pemText.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

export async function readMaybe(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

export async function newKeys(): Promise<CryptoKeyPair> {
  return (await crypto().subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** SHA-1 of a certificate's DER, upper-case hex: the thumbprint Windows and Entra show. */
export function thumbprintOf(der: Uint8Array | ArrayBuffer): string {
  return createHash('sha1')
    .update(Buffer.from(der as ArrayBuffer))
    .digest('hex')
    .toUpperCase();
}

/**
 * A new CA: an ECDSA P-256 key pair and its self-signed certificate named `name`, valid
 * from a day ago for 10 years, basicConstraints CA:true pathLen 0, keyCertSign + cRLSign
 * (the TLS CA here and the edge's device CA, edge/device-ca.ts).
 */
export async function newCa(
  name: string,
): Promise<{ cert: x509.X509Certificate; keys: CryptoKeyPair }> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 3650 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys };
}

export async function exportKey(k: CryptoKey): Promise<string> {
  return pem('PRIVATE KEY', await crypto().subtle.exportKey('pkcs8', k));
}

export async function importKey(pemText: string): Promise<CryptoKey> {
  return crypto().subtle.importKey('pkcs8', der(pemText), ALG, true, ['sign']);
}

function sanNames(cert: x509.X509Certificate): Set<string> {
  const ext = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const out = new Set<string>();
  if (!ext) return out;
  for (const n of ext.names.toJSON()) out.add(canonicalName(n.value));
  return out;
}

/**
 * A name as written and compared: lower case; an IPv6 address in its one short form (RFC
 * 5952: 0:0:0:0:0:0:0:1 is ::1, ::ffff:127.0.0.1 is ::ffff:7f00:1), as read back from a
 * certificate (else a leaf for another spelling would be re-issued on every start).
 */
function canonicalName(n: string): string {
  if (isIP(n) !== 6) return n.toLowerCase();
  try {
    return new URL(`http://[${n}]/`).hostname.slice(1, -1);
  } catch {
    return n.toLowerCase();
  }
}

/**
 * Whether `keyPem` is `cert`'s private key (its public half is the certificate's). A pair
 * cut short between its two writes, or files copied from two folders, is not: the edge
 * would serve a certificate it cannot prove (handshakes fail) or sign leaves no client trusts.
 */
function keyMatches(cert: x509.X509Certificate, keyPem: string): boolean {
  const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  return Buffer.from(cert.publicKey.rawData).equals(spki);
}

function fresh(cert: x509.X509Certificate): boolean {
  return (
    cert.notAfter.getTime() - Date.now() > 30 * DAY && cert.notBefore.getTime() <= Date.now() + DAY
  );
}

/**
 * Loads the CA and server certificate from `stateDir`, creating or renewing as needed.
 * Processes sharing `stateDir` (`up` and `netns` started together) take turns through a
 * lock file, so they agree on one CA; files are replaced whole (write, then rename).
 */
export async function loadOrCreateTls(
  stateDir: string,
  hostnames: string[] = [],
): Promise<TlsMaterial> {
  crypto();
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const release = await lockDir(join(stateDir, 'tls.lock'));
  try {
    return await loadOrCreateLocked(stateDir, hostnames);
  } finally {
    release();
  }
}

/** The TLS lock: waits (bounded, 15 s) while another process holds it. */
export async function lockDir(file: string): Promise<() => void> {
  const end = Date.now() + 15_000;
  for (;;) {
    try {
      return acquirePidLock(file, 'tls', `the TLS files (${file})`, 'try again');
    } catch (err) {
      if (!(err instanceof GsaError) || err.code !== 'GSA_ERR_BUSY' || Date.now() > end) throw err;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Writes `data` to `path` whole: a reader sees the old file or the new one. */
export async function replaceFile(path: string, data: string, mode?: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, data, mode === undefined ? {} : { mode });
    await rename(tmp, path);
  } catch (err) {
    // Leave no partial or private copy behind (a directory in `path`'s place, a full disk).
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

async function loadOrCreateLocked(stateDir: string, hostnames: string[]): Promise<TlsMaterial> {
  const files = {
    ca: join(stateDir, 'ca.pem'),
    caKey: join(stateDir, 'ca-key.pem'),
    cert: join(stateDir, 'cert.pem'),
    key: join(stateDir, 'key.pem'),
  };
  const names = [...new Set([...DEFAULT_NAMES, ...hostnames.map(canonicalName)])];

  // CA
  let caPem = await readMaybe(files.ca);
  let caKeyPem = await readMaybe(files.caKey);
  let caCert: x509.X509Certificate | null = null;
  let caKey: CryptoKey | null = null;
  try {
    if (caPem && caKeyPem) {
      caCert = new x509.X509Certificate(caPem);
      caKey = await importKey(caKeyPem);
      if (!fresh(caCert) || !keyMatches(caCert, caKeyPem)) caCert = null;
    }
  } catch {
    caCert = null;
  }
  let caRenewed = false;
  if (caCert === null || caKey === null) {
    const made = await newCa('CN=gsa-emu local CA, O=gsa-emu');
    const keys = made.keys;
    caCert = made.cert;
    caKey = keys.privateKey;
    caPem = caCert.toString('pem');
    caKeyPem = await exportKey(keys.privateKey);
    await replaceFile(files.caKey, caKeyPem, 0o600);
    await replaceFile(files.ca, caPem);
    caRenewed = true;
  }

  // Leaf
  let certPem = await readMaybe(files.cert);
  let keyPem = await readMaybe(files.key);
  let ok = false;
  if (!caRenewed && certPem && keyPem) {
    try {
      const leaf = new x509.X509Certificate(certPem);
      const have = sanNames(leaf);
      ok =
        fresh(leaf) &&
        keyMatches(leaf, keyPem) &&
        leaf.issuer === caCert.subject &&
        names.every((n) => have.has(n)) &&
        (await leaf.verify({ publicKey: caCert.publicKey, signatureOnly: true }));
      await importKey(keyPem);
    } catch {
      ok = false;
    }
  }
  if (!ok) {
    const keys = await newKeys();
    const leaf = await x509.X509CertificateGenerator.create({
      subject: `CN=${names.find((n) => isIP(n) === 0 && n !== 'localhost') ?? 'localhost'}, O=gsa-emu edge`,
      issuer: caCert.subject,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 825 * DAY),
      publicKey: keys.publicKey,
      signingKey: caKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(
          names.map((n) => ({ type: isIP(n) ? ('ip' as const) : ('dns' as const), value: n })),
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(caCert),
      ],
    });
    certPem = leaf.toString('pem');
    keyPem = await exportKey(keys.privateKey);
    await replaceFile(files.key, keyPem, 0o600);
    await replaceFile(files.cert, certPem);
  }
  return { ca: caPem!, cert: certPem!, key: keyPem!, names, files };
}
