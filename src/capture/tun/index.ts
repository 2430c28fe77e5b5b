/**
 * TUN capture (Linux): the device (native addon or FakeDevice), the system stack (TCP
 * through the kernel via NAT, userspace UDP, DNS acquisition into 6.6.0.0/16), the
 * namespace harness and host-mode policy routing. See docs/tun.md.
 *
 * @packageDocumentation
 * @example
 * const ns = createNetns();
 * const stack = await createTunStack({ device: ns.device, netns: ns.name, hooks: {
 *   classify: (f) => (f.port === 443 && f.proto === 17 ? 'drop' : 'accept'),
 *   onTcp: (socket, info) => forward(socket, info),
 *   acquire: (name) => name.endsWith('.contoso.com'),
 * } });
 * ns.spawn('curl', ['https://app.contoso.com/']);
 */
export {
  addonPath,
  type DeviceStats,
  FakeDevice,
  listenTcp4InNetns,
  loadAddon,
  type OpenTunOptions,
  openTun,
  type PacketBatchHandler,
  type PacketDevice,
  setSocketMark,
} from './device.js';
export {
  type AcquisitionRow,
  DnsInterceptor,
  type DnsOptions,
  isSynthetic,
  SYNTHETIC_NET,
  SYNTHETIC_RESOLVER,
  SyntheticPool,
} from './dns.js';
export { pipeTcp, relayUdp, type Target } from './glue.js';
export { type HostRoutingOptions, setupHostRouting } from './host-routing.js';
export {
  cleanupStaleNetns,
  createNetns,
  harnessUnavailable,
  type Netns,
  type NetnsOptions,
  type RunInNetnsOptions,
  runInNetns,
} from './netns.js';
export {
  createTunStack,
  type FlowVerdict,
  type TcpFlowInfo,
  type TunCounters,
  type TunFlow,
  TunStack,
  type TunStackHooks,
  type TunStackOptions,
  type UdpFlow,
  unaccounted,
} from './stack.js';
