/**
 * Text rendering for the CLI (`gsa-emu up`, `status`, `flows`): tiles, the status block,
 * the Traffic table and what the banner says of an example command. Pure functions
 * (strings in, strings out).
 */

import type { Decision } from '../classify/types.js';
import type { FlowRecord } from '../forward/flow-table.js';
import type { ClientTilesSnapshot } from '../policy/client-config.js';
import type { ChannelName } from '../policy/model.js';
import { SINGLE_LABEL_DOMAIN } from '../policy/private-dns.js';
import { CHANNEL_LABEL, type HealthCheck, type StatusView } from './diagnostics.js';

const CH: readonly ChannelName[] = ['m365', 'private', 'internet'];

function pad(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s + ' '.repeat(n - s.length);
}

const PRIVATE_DNS_TAIL = `.${SINGLE_LABEL_DOMAIN}`;

/**
 * A destination name for a table cell of `width` characters. A name the client qualified for
 * Private DNS (`fs1.<appId>.globalsecureaccess.local`, 60 characters) is shown as the name the
 * application asked for, `fs1 (Private DNS)`, when it does not fit; any other name too long
 * is cut in the middle, keeping its start and its last two labels (`a-very-long…sharepoint.com`).
 * `flows --json` and the admin API carry the name whole.
 */
export function fqdnCell(name: string, width: number): string {
  if (name.length <= width) return name;
  if (name.endsWith(PRIVATE_DNS_TAIL)) {
    const label = name.slice(0, name.indexOf('.'));
    const short = `${label} (Private DNS)`;
    if (short.length <= width) return short;
  }
  if (width < 3) return name.slice(0, width);
  // The last two labels whole where they leave room for a start of four characters.
  const dot = name.lastIndexOf('.', name.lastIndexOf('.') - 1);
  const domain = dot > 0 ? name.length - dot - 1 : 0;
  const tail = domain > 0 && domain <= width - 5 ? domain : Math.floor((width - 1) / 2);
  return `${name.slice(0, width - 1 - tail)}…${name.slice(name.length - tail)}`;
}

export function table(headers: string[], rows: string[][], widths: number[]): string {
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : pad(c, widths[i]!)))
      .join(' ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/**
 * The health checks of `gsa-emu status --health`: status, name, detail. The name column is as
 * wide as the longest name, so no check's name is cut (the one a failure names on stderr).
 */
export function formatHealth(checks: readonly HealthCheck[]): string {
  const rows = checks.map((c) => [c.status.toUpperCase(), c.name, c.detail]);
  const nameWidth = Math.max(38, ...checks.map((c) => c.name.length + 1));
  return table(['', 'HEALTH CHECK', 'DETAIL'], rows, [5, nameWidth, 60]);
}

/** Channel tiles: channel, state, default, who may toggle. */
export function formatTiles(
  tiles: ClientTilesSnapshot['tiles'],
  channelsUp?: Record<string, boolean>,
): string {
  const rows = CH.map((c) => {
    const t = tiles[c];
    const who = !t.visible
      ? 'hidden'
      : !t.userCanToggle
        ? 'admin only (locked)'
        : `${t.privilegedOnly ? 'admin (privileged)' : 'user'}${t.onOnly ? ': on only' : ''}`;
    const state = t.effective ? (channelsUp && !channelsUp[c] ? 'ON (unreachable)' : 'ON') : 'off';
    return [
      CHANNEL_LABEL[c],
      state,
      t.defaultOn ? 'on' : 'off',
      who,
      `${t.key}=${t.level ?? '(no value)'}`,
    ];
  });
  return table(
    ['CHANNEL', 'STATE', 'DEFAULT', 'WHO MAY TOGGLE', 'SET BY'],
    rows,
    [17, 17, 8, 20, 30],
  );
}

/**
 * What happens to an example command's flow (`up`'s banner), from the classifier's decision
 * `d`: `Private Access, tunneled`, `bypassed: <the decision's reason>`, or blocked. `off`:
 * the channel the example shows does not forward now (`Internet Access is off`), said
 * instead of a bypass's reason. `edgeBlock`: the edge's answer where it blocks the flow
 * once tunneled (`403`), or null. `tunnelUp`: the decision's channel has its tunnel up now;
 * when not, the flow gets the rule's fallback (the forwarder's hardening), and that is said.
 */
export function tryOutcome(
  d: Decision,
  off: string | null,
  edgeBlock: string | null,
  tunnelUp = true,
): string {
  if (d.action === 'tunnel' && d.channel !== null) {
    if (!tunnelUp) {
      const then = d.fallback === 'block' ? 'blocked' : 'goes direct';
      return `${CHANNEL_LABEL[d.channel]} tunnel not connected: ${then} (fallback ${d.fallback})`;
    }
    const label = `${CHANNEL_LABEL[d.channel]}, tunneled`;
    return edgeBlock === null ? label : `${label}, blocked at the edge (${edgeBlock})`;
  }
  if (d.action === 'block') return `blocked by the client: ${d.reason}`;
  if (d.action === 'drop') return `dropped: ${d.reason}`;
  return `bypassed: ${off ?? d.reason}`;
}

/**
 * The tenant as `status` and `up`'s banner name it: `Contoso (<id>)`, or, before the first
 * forwarding profile arrives from the edge (the edge not reached yet, or its profile
 * refused), that it is not known yet, not `- (-)`.
 */
export function tenantText(s: Pick<StatusView, 'tenantName' | 'tenantId'>): string {
  if (s.tenantId === null && s.tenantName === null) {
    return 'unknown (no forwarding profile from the edge yet)';
  }
  return `${s.tenantName ?? '-'} (${s.tenantId ?? '-'})`;
}

export function formatStatus(s: StatusView): string {
  const o = s.overview;
  const up: Record<string, boolean> = {};
  for (const c of s.channels) up[c.channel] = c.up;
  const lines = [
    `Global Secure Access: ${s.state}`,
    ...s.notes.map((n) => `  note: ${n}`),
    ...(s.warnings ?? []).map((w) => `  warning: ${w}`),
    `tenant: ${tenantText(s)}; profiles from ${s.profileSource}${s.profileLoadedAt ? ` at ${s.profileLoadedAt}` : ''}`,
    `user: ${o.userPrincipalName ?? o.userId}; device: ${o.deviceId}; forwarding profile: ${o.forwardingProfileId ?? '-'}, last checked ${o.lastChecked ?? '-'}; gsa-emu ${o.clientVersion}`,
    ...(o.deviceCertificate !== undefined
      ? [
          `device certificate: ${o.deviceCertificate === null ? (o.deviceCertificateNone ? `none (${o.deviceCertificateNone})` : 'none yet (enrolled before the first tunnel)') : `${o.deviceCertificate.thumbprint} (${o.deviceCertificate.subject}), valid until ${o.deviceCertificate.notAfter}${o.deviceCertificateNotKept ? ` (not kept: ${o.deviceCertificateNotKept})` : ''}`}`,
        ]
      : []),
    formatVpn(s),
    '',
    formatTiles(s.tiles, up),
    '',
    table(
      ['CHANNEL', 'FORWARDING', 'TUNNEL', 'DETAIL'],
      s.channels.map((c) => [c.label, c.enabled ? 'yes' : 'no', c.up ? 'up' : 'down', c.detail]),
      [17, 11, 7, 40],
    ),
    '',
    `listeners: ${Object.entries(s.listeners)
      .map(([k, v]) => `${k} ${v ?? 'off'}`)
      .join(', ')}; active flows: ${s.flows.active}`,
  ];
  return lines.join('\n');
}

/** HH:MM:SSZ: the time of day in UTC, and saying so. */
function time(ms: number | null): string {
  if (ms === null) return '';
  const d = new Date(ms);
  return `${d.toISOString().slice(11, 19)}Z`;
}

/** `curl (4242)`, the name alone when the pid is unknown, `-` when neither is. */
function processCell(f: FlowRecord): string {
  if (f.process === null) return '-';
  return f.processId !== undefined ? `${f.process} (${f.processId})` : f.process;
}

const FQDN_WIDTH = 26;
const FQDN_WIDE = 32;

export function flowRow(f: FlowRecord): string[] {
  return [
    time(f.beginTime),
    f.status,
    f.protocol.toUpperCase(),
    fqdnCell(f.destinationFqdn ?? '', FQDN_WIDTH),
    f.destinationIp ?? '',
    String(f.destinationPort),
    f.action,
    f.channel ?? '-',
    f.hardening,
    processCell(f),
    String(f.bytesSent),
    String(f.bytesReceived),
    f.capture,
    f.connectionId.slice(0, 8),
    f.reason,
  ];
}

export const FLOW_HEADERS = [
  'BEGIN',
  'STATUS',
  'PROTO',
  'FQDN',
  'IP',
  'PORT',
  'ACTION',
  'CHANNEL',
  'H',
  'PROCESS',
  'SENT',
  'RECV',
  'VIA',
  'CONN',
  'REASON',
];
const FLOW_WIDTHS = [9, 10, 5, FQDN_WIDTH, 15, 5, 6, 8, 1, 16, 9, 9, 5, 8, 60];

/** Every column of the real client's Traffic tab (`flows --wide`), plus VIA and REASON. */
export function flowRowWide(f: FlowRecord): string[] {
  return [
    time(f.beginTime),
    time(f.endTime),
    f.status,
    f.protocol.toUpperCase(),
    fqdnCell(f.destinationFqdn ?? '', FQDN_WIDE),
    f.destinationIp ?? '',
    String(f.destinationPort),
    String(f.sourcePort),
    f.connectionId,
    processCell(f),
    String(f.bytesSent),
    String(f.bytesReceived),
    f.channel ?? '-',
    f.flowId,
    f.ruleId ?? '-',
    f.action,
    f.hardening,
    f.capture,
    f.reason,
  ];
}

export const FLOW_HEADERS_WIDE = [
  'BEGIN',
  'END',
  'STATUS',
  'PROTO',
  'FQDN',
  'IP',
  'PORT',
  'SPORT',
  'CONNECTION ID',
  'PROCESS',
  'SENT',
  'RECV',
  'CHANNEL',
  'FLOW',
  'RULE ID',
  'ACTION',
  'H',
  'VIA',
  'REASON',
];
const FLOW_WIDTHS_WIDE = [9, 9, 10, 5, FQDN_WIDE, 39, 5, 5, 36, 20, 10, 10, 8, 6, 36, 6, 1, 5, 80];

export function formatFlows(flows: FlowRecord[], o: { wide?: boolean | undefined } = {}): string {
  if (o.wide) return table(FLOW_HEADERS_WIDE, flows.map(flowRowWide), FLOW_WIDTHS_WIDE);
  return table(FLOW_HEADERS, flows.map(flowRow), FLOW_WIDTHS);
}

/** One line for a new flow (non-TTY output of `gsa-emu up`). */
export function formatFlowLine(f: FlowRecord): string {
  const dest = `${f.destinationFqdn ?? f.destinationIp}:${f.destinationPort}`;
  const ch = f.channel ? ` ${f.channel}` : '';
  const h = f.hardening === 'Y' ? ' (hardening)' : '';
  return `${time(f.beginTime)} ${f.protocol} ${dest} -> ${f.action}${ch}${h} [${f.capture} flow ${f.flowId} conn ${f.connectionId}]${f.status === 'Terminated' ? ` ${f.reason}` : ''}`;
}

/** The VPN line: on or off, onboarded, and who may switch it off (the seed's two settings). */
function formatVpn(s: StatusView): string {
  const v = s.vpn;
  const inApp = v.enableVPNToggleInApp
    ? 'the app has a VPN toggle (EnableVPNToggleInApp)'
    : 'no VPN toggle in the app (EnableVPNToggleInApp not TRUE)';
  const settings = s.desktop?.set.includes('HideDisableButton')
    ? 'it may not be switched off (HideDisableButton=1)'
    : v.blockUsersFromDisablingAutomaticVPN
      ? 'Settings may not switch it off (Block users from disabling automatic VPN)'
      : 'Settings may switch it off';
  const paused = s.pausedUntil ? `, paused until ${s.pausedUntil}` : '';
  // Windows registry values / macOS settings: which are set (the rest are 0, the default).
  const desktop = s.desktop
    ? `; ${s.desktop.platform} settings: ${s.desktop.set.length > 0 ? s.desktop.set.map((k) => `${k}=1`).join(', ') : 'none set'}`
    : '';
  return `VPN: ${s.vpnOn ? 'on' : 'off'}${paused}, ${s.onboarded ? 'onboarded' : 'not onboarded'}; ${inApp}; ${settings}${desktop}`;
}
