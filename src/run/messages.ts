/**
 * What the supervisor and its workers say to each other over node:cluster's
 * channel (a socket pair between two processes of the same user: the key
 * material in a config message never touches the disk or the log).
 */
import type { KeyMaterial } from '../config/load.js';

export type ListenerKind = 'out' | 'in';

/** Supervisor → worker: the configuration to run, as the supervisor loaded it. */
export interface ConfigMessage {
  readonly type: 'dkim-proxy:config';
  readonly text: string;
  /** [keyId, {pem, source}] pairs. */
  readonly keys: readonly (readonly [string, { readonly pem: string; readonly source: string }])[];
}

/**
 * Worker → supervisor: send me the configuration. A worker asks once it is
 * listening for the answer; a message sent before that would be lost.
 */
export interface ConfigRequest {
  readonly type: 'dkim-proxy:config-request';
}

/** Worker → supervisor: a listener of this worker is accepting connections. */
export interface ListeningMessage {
  readonly type: 'dkim-proxy:listening';
  readonly kind: ListenerKind;
}

const typed = (m: unknown, type: string): boolean => typeof m === 'object' && m !== null && (m as { type?: unknown }).type === type;
export const isConfigMessage = (m: unknown): m is ConfigMessage => typed(m, 'dkim-proxy:config');
export const isListeningMessage = (m: unknown): m is ListeningMessage => typed(m, 'dkim-proxy:listening');
export const isConfigRequest = (m: unknown): m is ConfigRequest => typed(m, 'dkim-proxy:config-request');

export function configMessage(text: string, keys: KeyMaterial): ConfigMessage {
  return { type: 'dkim-proxy:config', text, keys: [...keys] };
}
