/**
 * The Windows and macOS clients' settings (gsa-facts.md section 5): Windows registry values
 * under `Global Secure Access Client` and the macOS preference domain
 * `com.microsoft.globalsecureaccess`. Read by the client configuration parser on the platform
 * they belong to (`--platform windows` / `macos`); their effects are enforced by the tiles
 * (client-config.ts `createClientTiles`). docs/decisions/client-desktop-settings.md has the
 * semantics and their sources.
 */

/** The desktop platforms whose settings gsa-emu reads (a platform's `name`). */
export const DESKTOP_PLATFORMS = ['windows', 'macos'] as const;
export type DesktopPlatform = (typeof DESKTOP_PLATFORMS)[number];

/** The settings each desktop platform reads, in the order the docs list them. */
export const DESKTOP_KEYS: Record<DesktopPlatform, readonly DesktopKey[]> = {
  windows: [
    'HideSignOutButton',
    'HideDisablePrivateAccessButton',
    'HideDisableButton',
    'RestrictNonPrivilegedUsers',
    'IsPrivateAccessDisabledByUser',
  ],
  macos: [
    'HideDisablePrivateAccessButton',
    'HideDisableButton',
    'HidePauseButton',
    'HideQuitButton',
  ],
};

export type DesktopKey =
  | 'HideSignOutButton'
  | 'HideDisablePrivateAccessButton'
  | 'HideDisableButton'
  | 'RestrictNonPrivilegedUsers'
  | 'IsPrivateAccessDisabledByUser'
  | 'HidePauseButton'
  | 'HideQuitButton';

/** Every desktop setting (either platform's). */
export const ALL_DESKTOP_KEYS: readonly DesktopKey[] = [
  ...new Set([...DESKTOP_KEYS.windows, ...DESKTOP_KEYS.macos]),
];

/** The settings as read: each true when set to 1 / true; missing = false (the default). */
export interface DesktopSettings {
  /** Which platform's settings these are. */
  platform: DesktopPlatform;
  /** Every setting given as 1/true (missing or 0/false: not in the list). */
  set: DesktopKey[];
}

/** The desktop platform a platform name is, if any. */
export function desktopPlatformOf(name: string | undefined): DesktopPlatform | undefined {
  return (DESKTOP_PLATFORMS as readonly string[]).includes(name ?? '')
    ? (name as DesktopPlatform)
    : undefined;
}

/** Whether a setting is on. */
export function desktopSet(d: DesktopSettings | undefined, key: DesktopKey): boolean {
  return d?.set.includes(key) ?? false;
}

const PLATFORM_TEXT: Record<DesktopPlatform, string> = { windows: 'Windows', macos: 'macOS' };

/** Where the setting lives, for messages: `a Windows registry value`, `a macOS setting`. */
export function desktopKeyOwner(key: DesktopKey): string {
  const w = DESKTOP_KEYS.windows.includes(key);
  const m = DESKTOP_KEYS.macos.includes(key);
  return w && m
    ? 'a Windows/macOS setting'
    : w
      ? key === 'IsPrivateAccessDisabledByUser'
        ? 'a Windows per-user registry value (the user switched Private Access off)'
        : 'a Windows registry value'
      : 'a macOS setting';
}

/** Why a desktop setting is ignored on `platform` (named in the warning). */
export function desktopKeyIgnored(key: DesktopKey, platform: string): string {
  const readers = DESKTOP_PLATFORMS.filter((p) => DESKTOP_KEYS[p].includes(key));
  return `ignored: ${desktopKeyOwner(key)}, not read on platform ${platform} (gsa-emu reads it with ${readers.map((p) => `--platform ${p}`).join(' or ')})`;
}

/** How the pause lasts on macOS (gsa-facts.md section 5: 10 minutes). */
export const PAUSE_MS = 10 * 60 * 1000;

/** `Windows` / `macOS`. */
export const desktopPlatformText = (p: DesktopPlatform): string => PLATFORM_TEXT[p];
