/**
 * Device certificates (mTLS), the edge's side: a device CA of its own, kept in its state
 * folder apart from the TLS CA (tunnel/tls.ts); the enrollment endpoint that signs a
 * client's PKCS#10 request; and the check of the certificate a client presents on a tunnel
 * upgrade (docs/decisions/edge-device-certificates.md).
 *
 * ```ts
 * const ca = await loadOrCreateDeviceCa(stateDir);     // device-ca.pem, device-ca-key.pem (0600)
 * const cert = await issueDeviceCertificate(ca, csrDer, 'dev-1');   // CN=dev-1, clientAuth
 * checkDeviceCertificate(tlsSocket, 'dev-1', 'required');           // throws AuthError
 * ```
 *
 * As Entra device certificates carry the device id, the subject is `CN=<deviceId>`, taken
 * from the bearer token of the enrollment request (its `deviceid` claim), never from the
 * request's own subject. ECDSA P-256 or RSA keys (2048 bits or more); SHA-256 signatures;
 * `DEVICE_CERT_DAYS`.
 *
 * Contract: `issueDeviceCertificate` throws DeviceCsrError (the endpoint's 400) for any
 * input that is not a well-signed PKCS#10 request, never anything else for bad input;
 * `checkDeviceCertificate` returns what it accepted (or null: none presented, not
 * required) or throws AuthError with a `device-certificate-*` reason.
 */
import { createHash, createPublicKey, type webcrypto } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import '../tunnel/reflect-shim.js';
import * as x509 from '@peculiar/x509';
import { AuthError, DeviceCsrError } from '../errors.js';
import {
  ALG,
  crypto,
  DAY,
  exportKey,
  importKey,
  lockDir,
  newCa,
  readMaybe,
  replaceFile,
  thumbprintOf,
} from '../tunnel/tls.js';
import { sendGraphError } from './control-api.js';
import { bearerOf, type Issuer, readBody } from './identity.js';

/** Whether the edge asks for a device certificate on its TLS connections (EdgeOptions). */
export type DeviceCertificateMode = 'off' | 'optional' | 'required';
export const DEVICE_CERTIFICATE_MODES: readonly DeviceCertificateMode[] = [
  'off',
  'optional',
  'required',
];

/** How long an issued device certificate is valid (days). */
export const DEVICE_CERT_DAYS = 365;
/** The enrollment endpoint's path. */
export const DEVICE_CERTIFICATES_PATH = '/deviceCertificates';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** The shortest RSA key enrolled (bits). */
const MIN_RSA_BITS = 2048;
/** The curves of the ECDSA keys enrolled (Node's names: P-256, P-384). */
const EC_CURVES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384' };
/** The hashes a request may be signed with (SHA-1 and MD5 are refused). */
const CSR_HASHES = ['SHA-256', 'SHA-384', 'SHA-512'];
/** What enrollment takes, for the messages. */
export const DEVICE_CSR_POLICY = `an ECDSA P-256 or P-384 key, or RSA of at least ${MIN_RSA_BITS} bits, signed with ${CSR_HASHES.join(', ')}`;

/**
 * Refuses (DeviceCsrError) a request whose key or signature enrollment does not take: a key
 * other than ECDSA P-256/P-384 or RSA (rsaEncryption) of at least 2048 bits (Ed25519, P-521,
 * RSA-PSS keys...), or a signature hashed otherwise than with SHA-256/384/512 (SHA-1: a
 * collision-prone hash the client's certificate should not be vouched for by).
 */
function checkCsrPolicy(csr: x509.Pkcs10CertificateRequest): void {
  let type: string | undefined;
  let details: { namedCurve?: string; modulusLength?: number } | undefined;
  try {
    const key = createPublicKey({
      key: Buffer.from(csr.publicKey.rawData),
      format: 'der',
      type: 'spki',
    });
    type = key.asymmetricKeyType;
    details = key.asymmetricKeyDetails;
  } catch (err) {
    throw new DeviceCsrError(
      `the certificate request's key is not usable (${err instanceof Error ? err.message : String(err)}): ${DEVICE_CSR_POLICY}`,
    );
  }
  if (type === 'rsa') {
    // MS-DVRJ asks for RSA 2048: a shorter RSA key is refused, as OpenSSL's stricter
    // security levels would refuse it in the handshake.
    const bits = details?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS)
      throw new DeviceCsrError(
        `the certificate request has an RSA key of ${bits} bits: at least ${MIN_RSA_BITS} (or ECDSA P-256 or P-384)`,
      );
  } else if (type !== 'ec' || EC_CURVES[details?.namedCurve ?? ''] === undefined) {
    const what =
      type === 'ec'
        ? `an ECDSA key on curve ${details?.namedCurve ?? '?'}`
        : `a key of type ${type ?? '?'}`;
    throw new DeviceCsrError(
      `the certificate request has ${what}: enrollment takes ${DEVICE_CSR_POLICY}`,
    );
  }
  const alg = csr.signatureAlgorithm as { name?: string; hash?: string | { name?: string } };
  const hash = typeof alg.hash === 'string' ? alg.hash : alg.hash?.name;
  if (hash === undefined || !CSR_HASHES.includes(hash.toUpperCase()))
    throw new DeviceCsrError(
      `the certificate request is signed with ${hash ?? alg.name ?? 'an unknown algorithm'}: enrollment takes ${DEVICE_CSR_POLICY}`,
    );
}

export interface DeviceCa {
  cert: x509.X509Certificate;
  key: webcrypto.CryptoKey;
  /** The CA certificate (PEM). */
  pem: string;
  files: { ca: string; caKey: string };
}

/**
 * The edge's device CA from `stateDir` (`device-ca.pem`, `device-ca-key.pem`), made when
 * missing, unreadable, not a pair (the key is not the certificate's) or expiring within 30
 * days. Edges sharing the folder share it.
 */
export async function loadOrCreateDeviceCa(stateDir: string): Promise<DeviceCa> {
  crypto();
  const files = { ca: join(stateDir, 'device-ca.pem'), caKey: join(stateDir, 'device-ca-key.pem') };
  const release = await lockDir(join(stateDir, 'device-ca.lock'));
  try {
    const caPem = await readMaybe(files.ca);
    const caKeyPem = await readMaybe(files.caKey);
    if (caPem && caKeyPem) {
      try {
        const cert = new x509.X509Certificate(caPem);
        const key = await importKey(caKeyPem);
        // The key must be the certificate's: a pair cut short between its two writes (or
        // files copied from two folders) would sign certificates no client could use.
        const spki = createPublicKey(caKeyPem).export({ type: 'spki', format: 'der' });
        if (
          Buffer.from(cert.publicKey.rawData).equals(spki) &&
          cert.notAfter.getTime() - Date.now() > 30 * DAY
        )
          return { cert, key, pem: caPem, files };
      } catch {
        // Made again below.
      }
    }
    const { cert, keys } = await newCa('CN=gsa-emu device CA, O=gsa-emu');
    const pem = cert.toString('pem');
    await replaceFile(files.caKey, await exportKey(keys.privateKey), 0o600);
    await replaceFile(files.ca, pem);
    return { cert, key: keys.privateKey, pem, files };
  } finally {
    release();
  }
}

/**
 * Signs `csrDer` (a PKCS#10 request, DER) with the device CA: `CN=<deviceId>`, clientAuth,
 * valid from a minute ago for `days`. DeviceCsrError when the request does not parse, its
 * key or signature is not one enrollment takes (DEVICE_CSR_POLICY: ECDSA P-256/P-384 or RSA
 * of at least 2048 bits, signed with SHA-256/384/512) or its signature does not verify
 * (its key is not the requester's).
 */
export async function issueDeviceCertificate(
  ca: DeviceCa,
  csrDer: Uint8Array,
  deviceId: string,
  days = DEVICE_CERT_DAYS,
): Promise<x509.X509Certificate> {
  crypto();
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrDer);
  } catch (err) {
    throw new DeviceCsrError(
      `not a PKCS#10 certificate request (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  checkCsrPolicy(csr);
  let valid = false;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid)
    throw new DeviceCsrError(
      `the certificate request's signature does not verify (${DEVICE_CSR_POLICY})`,
    );
  const now = Date.now();
  let publicKey: webcrypto.CryptoKey;
  try {
    publicKey = (await csr.publicKey.export()) as unknown as webcrypto.CryptoKey;
  } catch (err) {
    throw new DeviceCsrError(
      `the certificate request's key is not usable (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  const serial = createHash('sha256')
    .update(`${deviceId}\0${now}\0${Math.random()}`)
    .digest('hex')
    .slice(0, 30);
  return x509.X509CertificateGenerator.create({
    serialNumber: `01${serial}`,
    subject: `CN=${deviceId}`,
    issuer: ca.cert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * DAY),
    publicKey,
    signingKey: ca.key,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
}

/** What checkDeviceCertificate accepted. */
export interface PresentedDeviceCertificate {
  deviceId: string;
  thumbprint: string;
  notAfter: string;
}

/**
 * The device certificate of a tunnel upgrade (`socket` from a server with `requestCert`,
 * `rejectUnauthorized: false` and the device CA as `ca`, so OpenSSL's verdict is in
 * `socket.authorized`): it must chain to the device CA, be within its validity, carry
 * clientAuth and name `deviceId` (the token's). None presented: null, or AuthError
 * `device-certificate-missing` when `mode` is `required`.
 */
export function checkDeviceCertificate(
  socket: TLSSocket,
  deviceId: string,
  mode: DeviceCertificateMode,
): PresentedDeviceCertificate | null {
  if (mode === 'off' || typeof socket.getPeerCertificate !== 'function') return null;
  const peer = socket.getPeerCertificate();
  if (!peer || Object.keys(peer).length === 0 || !peer.raw) {
    if (mode !== 'required') return null;
    throw new AuthError(
      'device-certificate-missing',
      'this edge requires a device certificate (mTLS) and the client presented none',
    );
  }
  if (!socket.authorized) {
    const why = String(socket.authorizationError ?? 'not verified');
    if (why === 'CERT_HAS_EXPIRED' || why === 'CERT_NOT_YET_VALID')
      throw new AuthError(
        'device-certificate-expired',
        `the device certificate is not valid now (${why}: ${peer.valid_from} to ${peer.valid_to}); the client must enroll again`,
      );
    throw new AuthError(
      'device-certificate-untrusted',
      `the device certificate is not issued by this edge's device CA (${why})`,
    );
  }
  if (!(peer.ext_key_usage ?? []).includes(CLIENT_AUTH))
    throw new AuthError(
      'device-certificate-untrusted',
      'the device certificate is not for client authentication (no clientAuth extended key usage)',
    );
  const cn = peer.subject?.CN;
  const name = Array.isArray(cn) ? cn.join(',') : (cn ?? '');
  if (name !== deviceId)
    throw new AuthError(
      'device-certificate-mismatch',
      `the device certificate is for device ${JSON.stringify(name)}, the token for device ${JSON.stringify(deviceId)}`,
    );
  return { deviceId: name, thumbprint: thumbprintOf(peer.raw), notAfter: peer.valid_to };
}

/**
 * `POST /deviceCertificates`: enrollment, shaped after the device registration join
 * protocol's request and answer (MS-DVRJ): `{ "CertificateRequest": { "Type": "pkcs10",
 * "Data": "<base64 DER>" } }` -> 200 `{ "Certificate": { "Thumbprint", "RawBody" } }`.
 * Authenticated by a bearer token of this edge (any audience; the token endpoint asks for
 * the client secret when the edge has one), whose device id the certificate names.
 * Returns false when the path is not the endpoint's.
 */
export async function handleDeviceCertificateRequest(
  ca: DeviceCa,
  issuer: Issuer,
  tenantId: string,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<boolean> {
  if (path !== DEVICE_CERTIFICATES_PATH) return false;
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST');
    sendGraphError(res, 405, 'MethodNotAllowed', 'use POST');
    return true;
  }
  let deviceId: string;
  try {
    const p = await issuer.verify(bearerOf(req), { channel: 'any', tenantId });
    deviceId = p.deviceId;
  } catch (err) {
    const reason = err instanceof AuthError ? err.reason : 'malformed';
    res.setHeader(
      'www-authenticate',
      `Bearer error="invalid_token", error_description="${reason}"`,
    );
    sendGraphError(
      res,
      401,
      'InvalidAuthenticationToken',
      `enrollment needs a bearer token of this edge (${reason})`,
    );
    return true;
  }
  if (!/^[A-Za-z0-9._@-]{1,128}$/.test(deviceId)) {
    sendGraphError(res, 400, 'BadRequest', 'the token names no device (deviceid claim)');
    return true;
  }
  const text = await readBody(req);
  if (text === null) {
    sendGraphError(res, 413, 'RequestEntityTooLarge', 'body too large');
    return true;
  }
  let data: string | undefined;
  try {
    const body = JSON.parse(text) as { CertificateRequest?: { Type?: unknown; Data?: unknown } };
    const r = body?.CertificateRequest;
    if (r && (r.Type === undefined || r.Type === 'pkcs10') && typeof r.Data === 'string')
      data = r.Data;
  } catch {
    data = undefined;
  }
  if (data === undefined || !/^[A-Za-z0-9+/=\s_-]+$/.test(data)) {
    sendGraphError(
      res,
      400,
      'BadRequest',
      'body must be {"CertificateRequest":{"Type":"pkcs10","Data":"<base64 DER>"}}',
    );
    return true;
  }
  let cert: x509.X509Certificate;
  try {
    cert = await issueDeviceCertificate(ca, Buffer.from(data, 'base64'), deviceId);
  } catch (err) {
    if (!(err instanceof DeviceCsrError)) throw err;
    sendGraphError(res, 400, 'BadRequest', err.message);
    return true;
  }
  const body = JSON.stringify({
    Certificate: {
      Thumbprint: thumbprintOf(cert.rawData),
      RawBody: Buffer.from(cert.rawData).toString('base64'),
    },
  });
  res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
  return true;
}
