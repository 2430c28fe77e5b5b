/**
 * Web content filtering at the edge: block a flow by the name the client sent (`meta.host`:
 * the proxy's destination name or the TUN's name for a synthetic address; never a name the
 * edge resolved) and by the name in its first bytes (the TLS SNI or HTTP Host, read by
 * egress.ts with sniff.ts) when it matches a blocked FQDN pattern or falls in a blocked web
 * category. Categories come from a small FQDN -> category map
 * (data/edge/web-categories.json by default).
 *
 * Contract: the constructor validates the whole config and throws ConfigError naming each
 * bad item by its path (`filtering.blockedFqdns[2]`); `check()` never throws.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, type ConfigIssue } from '../errors.js';
import type { ChannelName } from '../policy/model.js';
import { NamePatterns } from '../util/names.js';
import { dataPath } from '../util/package.js';

export interface FilteringConfig {
  /** Channels whose flows are filtered. Default `['internet']` (an Internet Access feature). */
  channels?: ChannelName[];
  /** FQDN patterns to block (`casino.test`, `*.ads.test`, `login.*.example.test`). */
  blockedFqdns?: string[];
  /** Web categories to block (`gambling`, `social`...). */
  blockedCategories?: string[];
  /** FQDN pattern -> category. Default: the map in data/edge/web-categories.json. */
  categories?: Record<string, string>;
  /** Policy id / name written to the traffic log for blocks. */
  policyId?: string;
  policyName?: string;
}

export interface FilterVerdict {
  policyId: string;
  policyName: string;
  ruleId: string;
  ruleName: string;
  /** The category of the name when known (also for FQDN blocks). */
  category: string | null;
  reason: string;
}

export const DEFAULT_FILTER_POLICY_ID = 'web-content-filtering';
export const DEFAULT_FILTER_POLICY_NAME = 'Web content filtering (gsa-emu)';

let defaultCategories: Record<string, string> | undefined;

/** The category map shipped in data/edge/web-categories.json. */
export function loadDefaultCategories(): Record<string, string> {
  if (!defaultCategories) {
    const doc = JSON.parse(readFileSync(dataPath('edge', 'web-categories.json'), 'utf8')) as {
      categories: Record<string, string>;
    };
    defaultCategories = doc.categories;
  }
  return defaultCategories;
}

export class WebFilter {
  private readonly channels: Set<ChannelName>;
  private readonly blocked = new NamePatterns<string>();
  private readonly categories = new NamePatterns<string>();
  private readonly blockedCategories: Set<string>;
  private readonly policyId: string;
  private readonly policyName: string;

  constructor(cfg: FilteringConfig = {}) {
    const issues: ConfigIssue[] = [];
    this.channels = new Set(cfg.channels ?? ['internet']);
    for (const [i, c] of [...this.channels].entries()) {
      if (!['internet', 'm365', 'private'].includes(c)) {
        issues.push({ path: `filtering.channels[${i}]`, message: `unknown channel "${c}"` });
      }
    }
    (cfg.blockedFqdns ?? []).forEach((p, i) => {
      try {
        this.blocked.add(String(p), String(p));
      } catch (err) {
        issues.push({ path: `filtering.blockedFqdns[${i}]`, message: (err as Error).message });
      }
    });
    const cats = cfg.categories ?? loadDefaultCategories();
    for (const [name, cat] of Object.entries(cats)) {
      if (typeof cat !== 'string' || cat === '') {
        issues.push({
          path: `filtering.categories["${name}"]`,
          message: 'category must be a non-empty string',
        });
        continue;
      }
      try {
        this.categories.add(name, cat.toLowerCase(), { subdomains: true });
      } catch (err) {
        issues.push({ path: `filtering.categories["${name}"]`, message: (err as Error).message });
      }
    }
    this.blockedCategories = new Set();
    (cfg.blockedCategories ?? []).forEach((c, i) => {
      if (typeof c !== 'string' || !/^[A-Za-z][A-Za-z0-9_-]*$/.test(c)) {
        issues.push({
          path: `filtering.blockedCategories[${i}]`,
          message: `"${String(c)}" is not a category name`,
        });
      } else this.blockedCategories.add(c.toLowerCase());
    });
    if (issues.length > 0) throw new ConfigError(issues);
    this.policyId = cfg.policyId ?? DEFAULT_FILTER_POLICY_ID;
    this.policyName = cfg.policyName ?? DEFAULT_FILTER_POLICY_NAME;
  }

  /** The web category of a name, or null. */
  categoryOf(host: string): string | null {
    return this.categories.match(host) ?? null;
  }

  /** Whether flows on `channel` are filtered (and so have their first bytes read). */
  filters(channel: ChannelName): boolean {
    return this.channels.has(channel);
  }

  /** A block verdict for a flow to `host` on `channel`, or null when it may pass. */
  check(channel: ChannelName, host: string | null): FilterVerdict | null {
    if (!host || !this.channels.has(channel)) return null;
    const category = this.categoryOf(host);
    const pattern = this.blocked.match(host);
    if (pattern !== undefined) {
      return {
        policyId: this.policyId,
        policyName: this.policyName,
        ruleId: `fqdn:${pattern}`,
        ruleName: `Block ${pattern}`,
        category,
        reason: `web content filtering: ${host} matches blocked FQDN ${pattern}`,
      };
    }
    if (category && this.blockedCategories.has(category)) {
      return {
        policyId: this.policyId,
        policyName: this.policyName,
        ruleId: `category:${category}`,
        ruleName: `Block category ${category}`,
        category,
        reason: `web content filtering: ${host} is in blocked category ${category}`,
      };
    }
    return null;
  }
}
