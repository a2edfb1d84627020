/**
 * The one bounded wait of the suite: tests wait on a condition, never on a
 * fixed sleep. `probe` is asked again every `everyMs` until it gives a value
 * (anything but undefined or false), for at most `timeoutMs`; then the error
 * says what never happened, with `detail()` (a log tail, say).
 */
export async function eventually<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  options: { readonly timeoutMs?: number; readonly everyMs?: number; readonly detail?: () => string } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe();
    if (got !== undefined && got !== false) return got;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${options.detail?.() ?? ''}`);
    await new Promise((r) => setTimeout(r, options.everyMs ?? 10));
  }
}
