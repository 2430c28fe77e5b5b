/**
 * @packageDocumentation
 * gsa-emu from code (`import { startEdge, startClient } from 'gsa-emu'`): the pieces the CLI
 * is built from, for tests that run the emulator in their own process. The CLI's
 * `gsa-emu up` is `startEdge` + `startClient` + `startDemo`; `gsa-emu netns` adds
 * `attachTun`. Deeper modules stay importable by path (`gsa-emu/dist/...`), without the
 * promise of this list.
 *
 * @example
 * const edge = await startEdge({
 *   stateDir, tls: false, persistKey: false,
 *   connectorHosts: { 'intranet.contoso.test:80': '127.0.0.1:8080' }, // the test's server
 *   egress: { systemResolver: false, directIp: false }, // nothing else: no real DNS, no internet
 * });
 * const client = await startClient({
 *   edge: { url: edge.url, ca: null },
 *   tenant: 'edge',
 *   listen: { socksPort: 0, httpPort: 0, pacPort: null, adminPort: null },
 *   resolver: { system: false, directIp: false }, // bypassed flows too (README "From code")
 * });
 * await client.waitConnected(5000);
 * client.addresses.socks; // 127.0.0.1:<port>: point the application at it
 * await client.close();
 * await edge.close();
 */

// The types of the options a test passes (`listen.auth`, `hostsMap` / `connectorHosts`,
// `filtering`, `limits`, `clientConfig`) and of what it reads back (`client.status()`,
// `client.health()`, `client.refreshProfiles()`), so its helpers can name them.
export type { Credentials } from './capture/listen.js';
export {
  createNetns,
  harnessUnavailable,
  type Netns,
  type NetnsOptions,
  type RunInNetnsOptions,
  runInNetns,
} from './capture/tun/netns.js';
export {
  type Classifier,
  ClassifierHandle,
  type CompiledClassifier,
  compile,
  type Decision,
  type Flow,
  newFlow,
  PROTO_TCP,
  PROTO_UDP,
  type Verdict,
} from './classify/index.js';
// The client: SOCKS5, HTTP proxy, PAC, admin API, classifier, tunnels, flow table.
export {
  type ClientOptions,
  type ClientStatusView,
  type HostnameEntry,
  type ProfileRefresh,
  type ProfileRefreshFailure,
  type RunningClient,
  startClient,
} from './client/client.js';
// The sample Private Access apps and internet sites `gsa-emu up` serves on loopback.
export { type Demo, type DemoOptions, startDemo } from './client/demo.js';
// The client's device certificate (mTLS): `client.deviceCertificate`.
export type {
  DeviceCertificate,
  DeviceCertificateInfo,
} from './client/device-cert.js';
export type { HealthCheck } from './client/diagnostics.js';
// TUN capture (Linux, root): a namespace of its own whose only way out is the client.
export {
  type AttachTunOptions,
  attachTun,
  demoDnsHosts,
  type TunCapture,
} from './client/tun-capture.js';
// The edge: tokens, Graph-shaped control API, tunnel, filtering, egress, traffic log.
export type { DeviceCertificateMode } from './edge/device-ca.js';
export type { FilteringConfig } from './edge/filter.js';
export {
  type Edge,
  type EdgeLimits,
  type EdgeOptions,
  type EdgeTokenRequest,
  startEdge,
} from './edge/server.js';
// What a test reads back: the edge's traffic log (`edge.logs`) and its records.
export type {
  NetworkAccessTraffic,
  PrivateAccessDetails,
  TrafficAction,
  TrafficLog,
  TrafficQuery,
  TrafficType,
} from './edge/traffic-log.js';
// Every error gsa-emu throws is a GsaError with a `code` (docs/errors.md).
export * from './errors.js';
// ... and the client's flow table (`client.flows.list()`) and its records.
export type {
  CaptureKind,
  FlowAction,
  FlowRecord,
  FlowStatus,
  FlowTable,
} from './forward/flow-table.js';
export {
  type ClientConfig,
  type LoadedClientConfig,
  loadClientConfigFile,
  resolveTiles,
} from './policy/client-config.js';
export { loadDefaultTenant } from './policy/default-tenant.js';
export type { GraphDocument } from './policy/graph.js';
export type {
  ChannelName,
  ClientState,
  FallbackAction,
  PlatformSpec,
  TenantSpec,
} from './policy/model.js';
export { listPlatforms, loadPlatform } from './policy/platform.js';
// Forwarding profiles, client configuration, platforms, and the classifier.
export { type LoadedTenant, loadTenantFile } from './policy/tenant-file.js';
export type { HostsConfig } from './util/hosts-map.js';
