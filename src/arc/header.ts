/**
 * The `arc=` method result (RFC 8617 §7.2): the chain's state, with the
 * instance and sealer in a comment as mailauth writes them, and the two
 * properties RFC 8617 registers, `header.oldest-pass` and `smtp.remote-ip`.
 */
import { commentText } from '../dkim/index.js';
import type { ArcOutcome } from './verify.js';

export function arcResinfo(o: ArcOutcome, remoteIp: string | undefined): string {
  const ip = remoteIp !== undefined ? ` smtp.remote-ip=${remoteIp}` : '';
  switch (o.result) {
    case 'none':
      return 'arc=none';
    case 'pass':
      return `arc=pass (i=${o.instance} sealed by ${o.sealer?.d ?? '?'})${o.oldestPass !== undefined ? ` header.oldest-pass=${o.oldestPass}` : ''}${ip}`;
    case 'fail':
      return `arc=fail (${commentText(o.reason)})${ip}`;
  }
}
