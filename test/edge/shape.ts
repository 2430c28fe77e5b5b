/** Checks a traffic record against the documented `networkAccessTraffic` shape (not a test file). */
import { type NetworkAccessTraffic, TRAFFIC_FIELDS } from '../../src/edge/traffic-log.js';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Problems with `r`'s shape; empty when it is well formed. */
export function shapeProblems(r: unknown): string[] {
  const p: string[] = [];
  if (!r || typeof r !== 'object') return ['not an object'];
  const o = r as Record<string, unknown>;
  const keys = Object.keys(o).sort();
  const want = [...TRAFFIC_FIELDS].sort();
  if (JSON.stringify(keys) !== JSON.stringify(want))
    p.push(`fields ${keys.join(',')} != ${want.join(',')}`);
  const str = (k: string, nullable = false): void => {
    const v = o[k];
    if (v === null && nullable) return;
    if (typeof v !== 'string')
      p.push(`${k} should be a string${nullable ? ' or null' : ''}: ${JSON.stringify(v)}`);
  };
  const int = (k: string, max = Number.MAX_SAFE_INTEGER): void => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
      p.push(`${k} should be an integer: ${v}`);
  };
  const oneOf = (k: string, vals: string[]): void => {
    if (!vals.includes(o[k] as string))
      p.push(`${k} should be one of ${vals.join('|')}: ${JSON.stringify(o[k])}`);
  };
  for (const k of [
    'transactionId',
    'connectionId',
    'sessionId',
    'tenantId',
    'userId',
    'userPrincipalName',
    'deviceId',
    'sourceIp',
    'agentVersion',
  ]) {
    str(k);
  }
  for (const k of [
    'destinationIp',
    'destinationFQDN',
    'destinationUrl',
    'policyId',
    'policyName',
    'policyRuleId',
    'policyRuleName',
    'initiatingProcessName',
    'failureReason',
  ]) {
    str(k, true);
  }
  for (const k of ['createdDateTime', 'endDateTime']) {
    if (typeof o[k] !== 'string' || !ISO.test(o[k] as string))
      p.push(`${k} should be ISO 8601 UTC: ${o[k]}`);
  }
  int('sourcePort', 65535);
  int('destinationPort', 65535);
  int('sentBytes');
  int('receivedBytes');
  oneOf('trafficType', ['internet', 'private', 'microsoft365']);
  oneOf('transportProtocol', ['tcp', 'udp']);
  oneOf('action', ['allow', 'block', 'bypass']);
  oneOf('operationStatus', ['success', 'failure']);
  const pad = o.privateAccessDetails;
  if (pad !== null) {
    if (!pad || typeof pad !== 'object') p.push('privateAccessDetails should be an object or null');
    else {
      const d = pad as Record<string, unknown>;
      for (const k of ['connectorId', 'connectorName'])
        if (typeof d[k] !== 'string') p.push(`privateAccessDetails.${k}`);
      for (const k of ['appSegmentId', 'resolvedDestination', 'accessDeniedReason']) {
        if (d[k] !== null && typeof d[k] !== 'string') p.push(`privateAccessDetails.${k}`);
      }
    }
  }
  if (o.trafficType === 'private' && pad === null)
    p.push('private flows carry privateAccessDetails');
  if (Date.parse(o.endDateTime as string) < Date.parse(o.createdDateTime as string))
    p.push('ends before it starts');
  return p;
}

export type { NetworkAccessTraffic };
