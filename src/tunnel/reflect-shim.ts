/**
 * The few Reflect metadata functions tsyringe (a dependency of @peculiar/x509) needs, for
 * when no `reflect-metadata` polyfill is loaded. Import before `@peculiar/x509`. Does
 * nothing when a real polyfill is present.
 */
type Key = unknown;
const store = new WeakMap<object, Map<Key, Map<string | symbol | undefined, unknown>>>();

function table(
  target: object,
  prop: string | symbol | undefined,
  create: boolean,
): Map<Key, unknown> | undefined {
  let byProp = store.get(target);
  if (!byProp) {
    if (!create) return undefined;
    byProp = new Map();
    store.set(target, byProp);
  }
  let t = byProp.get(prop) as Map<Key, unknown> | undefined;
  if (!t && create) {
    t = new Map();
    byProp.set(prop, t as Map<string | symbol | undefined, unknown>);
  }
  return t;
}

const R = Reflect as unknown as Record<string, unknown>;
if (typeof R.getMetadata !== 'function') {
  const getOwnMetadata = (key: Key, target: object, prop?: string | symbol): unknown =>
    table(target, prop, false)?.get(key);
  R.getOwnMetadata = getOwnMetadata;
  R.defineMetadata = (key: Key, value: unknown, target: object, prop?: string | symbol): void => {
    table(target, prop, true)!.set(key, value);
  };
  R.getMetadata = (key: Key, target: object, prop?: string | symbol): unknown => {
    for (let o: object | null = target; o !== null; o = Object.getPrototypeOf(o)) {
      const t = table(o, prop, false);
      if (t?.has(key)) return t.get(key);
    }
    return undefined;
  };
}

export {};
