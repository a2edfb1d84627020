/**
 * For objects built on the per-message path. Node 20's V8 (11.3) falls off a
 * cliff on an object literal that spreads one object and then adds more
 * properties or spreads another: `{ ...a, x }` costs about 1.4 us there
 * (28 ns on Node 22), `{ ...a, ...b, x, y, z }` about 12 us, and a literal of
 * conditional spreads `{ ...(c ? { x } : {}) }` 2.5 us. Those literals were
 * about 5% of `in`'s CPU per message. On that path, objects are built as a
 * literal of the properties always present, the optional ones set after it
 * on a Writable view, and merges of whole objects use Object.assign (0.2 us on
 * both lines).
 */
export type Writable<T> = { -readonly [K in keyof T]: T[K] };
