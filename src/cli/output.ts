/** Small helpers for command output: errors to stderr, sysexits-style codes. */

/** Exit codes (sysexits.h), so shell scripts can tell the cases apart. */
export const EXIT = {
  ok: 0,
  /** verify: no passing signature, or a failing one. */
  notVerified: 1,
  usage: 64,
  dataError: 65,
  noInput: 66,
  cantCreate: 73,
  /** An internal fault (a bug), or a worker that could not start without saying why. */
  software: 70,
  ioError: 74,
  tempFail: 75,
  config: 78,
} as const;

export class CliError extends Error {
  override name = 'CliError';
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

export const usageError = (message: string): CliError => new CliError(message, EXIT.usage);

/** The one MESSAGE argument of a command that reads a message (undefined: stdin). */
export function messageArgument(positionals: readonly string[], command: string): string | undefined {
  if (positionals.length > 1) throw usageError(`${command} takes at most one MESSAGE file`);
  return positionals[0];
}

/** A `--timeout MS` option: a positive whole number of milliseconds. */
export function millisecondsOption(value: string, flag = '--timeout'): number {
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms <= 0) throw usageError(`${flag}: expected milliseconds, got "${value}"`);
  return ms;
}
