/**
 * Errors of gsa-emu: one base class, one subclass per failure, each with a stable `code`.
 * The codes are listed in docs/errors.md; tests assert on codes, not on messages.
 * Nothing on the data path throws these per packet: decoders and the classifier return
 * verdicts instead. They are for configuration, setup and API boundaries.
 */
export class GsaError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** One problem found in a configuration document, named by the path of the bad item. */
export interface ConfigIssue {
  /** JSON-style path, e.g. `policies[1].policy.policyRules[3].destinations[0].value`. */
  path: string;
  message: string;
}

/** A profile, client-config or platform file is invalid; `issues` lists every problem. */
export class ConfigError extends GsaError {
  readonly issues: ConfigIssue[];
  readonly file: string | undefined;
  constructor(issues: ConfigIssue[], file?: string) {
    const head = file ? `${file}: ` : '';
    const lines = issues.map((i) => `${i.path ? `${i.path}: ` : ''}${i.message}`);
    super(
      'GSA_ERR_CONFIG',
      `${head}${issues.length} problem${issues.length === 1 ? '' : 's'}\n  ${lines.join('\n  ')}`,
    );
    this.issues = issues;
    this.file = file;
  }
}

/** A user toggle the admin locked (EnableGSA* level 3, or hidden tile). */
export class ToggleRefusedError extends GsaError {
  constructor(message: string) {
    super('GSA_ERR_TOGGLE_LOCKED', message);
  }
}

/** Bad command-line input (an unparsable target for `explain`, a bad flag value). */
export class UsageError extends GsaError {
  constructor(message: string) {
    super('GSA_ERR_USAGE', message);
  }
}

/** The tunnel peer violated the wire protocol; the session is closed with this code. */
export class ProtocolError extends GsaError {
  readonly wireCode: number;
  constructor(wireCode: number, message: string) {
    super('GSA_ERR_TUNNEL_PROTOCOL', message);
    this.wireCode = wireCode;
  }
}

/** Authentication to the edge failed (missing, expired, forged, wrong audience or tenant). */
export class AuthError extends GsaError {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super('GSA_ERR_AUTH', message);
    this.reason = reason;
  }
}

/**
 * A device certificate enrollment (`POST /deviceCertificates`) whose body is not a usable
 * PKCS#10 request: it does not parse, or its signature does not verify. The edge answers 400.
 */
export class DeviceCsrError extends GsaError {
  constructor(message: string) {
    super('GSA_ERR_DEVICE_CSR', message);
  }
}

/** The channel's edge cannot be reached (session down); hardening decides what happens. */
export class ChannelDownError extends GsaError {
  constructor(channel: string, options?: { cause?: unknown }) {
    super('GSA_ERR_CHANNEL_DOWN', `the ${channel} channel's edge is unreachable`, options);
  }
}

/** A tunneled stream was reset by the peer or because its session died. */
export class StreamResetError extends GsaError {
  readonly resetCode: number;
  constructor(resetCode: number, message: string) {
    super('GSA_ERR_STREAM_RESET', message);
    this.resetCode = resetCode;
  }
}

/** The TUN device or its native addon is unavailable; `missing` says exactly what. */
export class TunUnavailableError extends GsaError {
  readonly missing: string;
  constructor(missing: string) {
    super('GSA_ERR_TUN_UNAVAILABLE', `TUN mode is unavailable: ${missing}`);
    this.missing = missing;
  }
}

/** Refused to listen on a non-loopback address without credentials (never an open relay). */
export class OpenRelayError extends GsaError {
  constructor(what: string, host: string) {
    super(
      'GSA_ERR_OPEN_RELAY',
      `refusing to start the ${what} on ${host} without authentication: only loopback ` +
        'listeners may run without credentials (set a username and password: `gsa-emu up --user <name> --password-file <file>` (or `--password <secret>`), or the config keys user and password)',
    );
  }
}

/**
 * A listener could not start: its port is in use, needs privileges, or its address is not
 * one of this machine's. `errno` is the system's code (EADDRINUSE, EACCES, ...).
 */
export class ListenError extends GsaError {
  readonly what: string;
  readonly host: string;
  readonly port: number;
  readonly errno: string;
  readonly detail: string;
  constructor(
    what: string,
    host: string,
    port: number,
    errno: string,
    detail: string,
    options?: { cause?: unknown; hint?: string },
  ) {
    const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const hint = options?.hint ? `; ${options.hint}` : '';
    super('GSA_ERR_LISTEN', `the ${what} cannot listen on ${where}: ${detail}${hint}`, {
      cause: options?.cause,
    });
    this.what = what;
    this.host = host;
    this.port = port;
    this.errno = errno;
    this.detail = detail;
  }

  /** The same error with a hint for the user appended (e.g. the flag that sets the port). */
  withHint(hint: string): ListenError {
    return new ListenError(this.what, this.host, this.port, this.errno, this.detail, {
      cause: this.cause,
      hint,
    });
  }
}

/** The edge's token or control API answered with an unexpected HTTP status. */
export class EdgeHttpError extends GsaError {
  readonly status: number;
  /** Graph `error.code` or OAuth `error` when the body had one. */
  readonly graphCode: string | null;
  constructor(status: number, graphCode: string | null, message: string) {
    super('GSA_ERR_EDGE_HTTP', message);
    this.status = status;
    this.graphCode = graphCode;
  }
}

/**
 * The client's admin API answered with an error status. `code` is the API's own code when
 * it is a gsa-emu code (a locked toggle stays `GSA_ERR_TOGGLE_LOCKED`), else
 * `GSA_ERR_ADMIN`; `apiError` keeps the API's `error` field as sent (`not_found`, ...).
 */
export class AdminApiError extends GsaError {
  readonly status: number;
  readonly apiError: string | null;
  constructor(status: number, apiError: string | null, message: string) {
    super(apiError?.startsWith('GSA_ERR_') ? apiError : 'GSA_ERR_ADMIN', message);
    this.status = status;
    this.apiError = apiError;
  }
}
