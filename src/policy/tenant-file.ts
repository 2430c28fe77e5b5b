/**
 * Reading a forwarding-profile file (Graph JSON or YAML) from disk, or the built-in default
 * tenant when no file is given. Returns the validated TenantSpec together with the Graph
 * document it came from (the edge serves and PATCHes the document).
 *
 * Contract: throws only ConfigError (unreadable file, bad syntax, invalid document), with
 * the file named.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { parseConfigText } from '../util/config-text.js';
import { defaultTenantFile } from './default-tenant.js';
import {
  asGraphDocument,
  type GraphDocument,
  type LoadTenantOptions,
  loadTenant,
} from './graph.js';
import type { TenantSpec } from './model.js';

export interface LoadedTenant {
  tenant: TenantSpec;
  /**
   * The Graph document as read (tenant document or `{ value: [...] }` list); a file holding
   * one profile entity (GET forwardingProfiles/{id}) becomes a one-profile list.
   */
  document: GraphDocument;
  /** The file it came from. */
  file: string;
  /** True when no file was given and the built-in default tenant was loaded. */
  builtIn: boolean;
}

/** Parse the text of a profile file: YAML for .yaml/.yml, else JSON. */
export function parseTenantText(text: string, file: string): unknown {
  return parseConfigText(text, file);
}

/** Load a forwarding-profile file, or the built-in default tenant when `file` is undefined. */
export function loadTenantFile(
  file?: string,
  opts: Omit<LoadTenantOptions, 'file'> = {},
): LoadedTenant {
  const builtIn = file === undefined;
  const path = file ?? defaultTenantFile();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([{ path: '', message: `cannot read: ${(e as Error).message}` }], path);
  }
  const json = parseTenantText(text, path);
  // Validated as written, so problems are named by the file's own paths.
  const tenant = loadTenant(json, { ...opts, file: path });
  const document = asGraphDocument(json) as GraphDocument;
  return { tenant, document, file: path, builtIn };
}
