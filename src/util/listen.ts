/**
 * Starting a listener with an error a user can act on, for every server gsa-emu runs (the
 * proxies, the PAC server, the admin API, the edge).
 */
import type { AddressInfo, Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ListenError } from '../errors.js';

/**
 * For an EADDRNOTAVAIL on a loopback address: why, when this network namespace has no
 * loopback address up (a namespace made with `ip netns add` starts with `lo` down), else
 * null. `interfaces` is for tests.
 */
export function loopbackDownHint(
  address: string,
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): string | null {
  if (!/^(127\.|::1$|\[::1\])/.test(address)) return null;
  const v6 = address.includes(':');
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      if (v6 ? a.address === '::1' : a.address.startsWith('127.')) return null;
    }
  }
  return `this network namespace has no loopback address up (its \`lo\` is down? \`ip link set lo up\`)`;
}

/**
 * `server.listen(port, host)`, resolved with the address once listening. A failure to listen
 * rejects with a ListenError that names `what` and says why in words (port in use,
 * privileged port, address not on this machine, not a port); other errors as they are.
 */
export function listenOn(
  server: Server,
  port: number,
  host: string,
  what: string,
): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void =>
      reject(listenError(what, host, port, err));
    server.once('error', onError);
    try {
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve(server.address() as AddressInfo);
      });
    } catch (err) {
      // A port out of range (an API caller's 99999, -1) throws here, a RangeError of Node's.
      server.off('error', onError);
      reject(listenError(what, host, port, err as NodeJS.ErrnoException));
    }
  });
}

function listenError(what: string, host: string, port: number, err: NodeJS.ErrnoException): Error {
  let detail: string;
  switch (err.code) {
    case 'EADDRINUSE':
      detail = 'the port is in use (by another gsa-emu, or another program)';
      break;
    case 'EACCES':
      detail = 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)';
      break;
    case 'EADDRNOTAVAIL':
      detail = loopbackDownHint(host) ?? `${host} is not an address of this machine`;
      break;
    case 'ERR_SOCKET_BAD_PORT':
      detail = 'not a port (a whole number 0-65535; 0 picks a free one)';
      break;
    default:
      if (typeof err.code !== 'string') return err;
      detail = err.message;
  }
  return new ListenError(what, host, port, err.code, detail, { cause: err });
}
