/**
 * The built-in default tenant ("Contoso (gsa-emu default tenant)"): Graph-shaped data in
 * data/tenants/default/forwarding-profiles.json, resolved from the package root so it works
 * from src/ under tests and from dist/ after a build.
 */
import { readFileSync } from 'node:fs';
import { dataPath } from '../util/package.js';
import { type GraphTenantDocument, loadTenant } from './graph.js';
import type { TenantSpec } from './model.js';

export const DEFAULT_TENANT_ID = '3f2b9c1e-6a7d-4e58-9b0c-2d41a7e5c8f3';

/** Path of the default tenant's Graph document. */
export function defaultTenantFile(): string {
  return dataPath('tenants', 'default', 'forwarding-profiles.json');
}

/** A fresh, mutable copy of the default tenant's Graph document (the edge serves and PATCHes it). */
export function defaultTenantDocument(): GraphTenantDocument {
  return JSON.parse(readFileSync(defaultTenantFile(), 'utf8')) as GraphTenantDocument;
}

/** The default tenant, validated and normalized. */
export function loadDefaultTenant(): TenantSpec {
  const file = defaultTenantFile();
  return loadTenant(JSON.parse(readFileSync(file, 'utf8')), { file });
}
