/**
 * A word for a command line that gsa-emu prints for the user to type: as is when safe, else
 * quoted: in single quotes for POSIX shells; on Windows in double quotes, which cmd.exe and
 * PowerShell both honour (cmd.exe does not know single quotes; Windows paths cannot hold a
 * double quote). `~` is quoted too (a shell would expand it at the start of a word).
 */
export function shellWord(s: string, platform: string = process.platform): string {
  if (platform === 'win32') {
    return /^[\w./:=@+,\\-]+$/.test(s) ? s : `"${s.replace(/"/g, '""')}"`;
  }
  return /^[\w./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
