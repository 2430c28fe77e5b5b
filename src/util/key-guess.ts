/**
 * "Did you mean": the known key that an unknown one of a config file stands for when it was
 * written as its command-line flag (`socks-port`, `hosts-map`), in snake case or in another
 * case (`socksport`, `blockedFQDNs`): the keys compared in lower case without `-` and `_`.
 */
export function keyGuess(key: string, known: readonly string[]): string | null {
  const fold = (s: string): string => s.toLowerCase().replace(/[-_]/g, '');
  const f = fold(key);
  return known.find((k) => fold(k) === f) ?? null;
}

/** The message of an unknown key: the key meant, if any, and the known ones. */
export function unknownKeyMessage(
  key: string,
  known: readonly string[],
  guess = keyGuess(key, known),
): string {
  return `unknown key (${guess !== null ? `did you mean ${guess}? ` : ''}known: ${known.join(', ')})`;
}
