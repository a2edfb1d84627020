/**
 * A fast accept-everything next hop for the proxy benchmark; prints its port.
 * It offers what Postfix's smtpd offers a content filter's re-injection
 * (PIPELINING, 8BITMIME, CHUNKING) and takes DATA or BDAT, so each proxy
 * talks to it as it would to Postfix. Raw sockets rather than smtp-server,
 * so that this sink costs the core it shares with the load generator little.
 */
import { createServer, type Socket } from 'node:net';

const EHLO = '250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 104857600\r\n250 CHUNKING\r\n';
const END_OF_DATA = Buffer.from('\r\n.\r\n');

function session(socket: Socket): void {
  socket.setNoDelay(true);
  socket.on('error', () => {});
  let buffer: Buffer = Buffer.alloc(0);
  /** In DATA: look for the end; in BDAT: octets still to read. */
  let mode: { kind: 'commands' } | { kind: 'data' } | { kind: 'bdat'; left: number; last: boolean } = { kind: 'commands' };
  socket.write('220 sink.bench ESMTP\r\n');
  socket.on('data', (chunk: Buffer) => {
    buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
    const replies: string[] = [];
    for (;;) {
      if (mode.kind === 'data') {
        // The message so far may end in the first bytes of the terminator: keep 4 of them.
        const end = buffer.indexOf(END_OF_DATA);
        if (end === -1) {
          buffer = buffer.subarray(Math.max(0, buffer.length - 4));
          break;
        }
        buffer = buffer.subarray(end + END_OF_DATA.length);
        replies.push('250 2.0.0 Ok: queued');
        mode = { kind: 'commands' };
        continue;
      }
      if (mode.kind === 'bdat') {
        const take = Math.min(mode.left, buffer.length);
        mode.left -= take;
        buffer = buffer.subarray(take);
        if (mode.left > 0) break;
        replies.push(mode.last ? '250 2.0.0 Ok: queued' : '250 2.0.0 chunk received');
        mode = { kind: 'commands' };
        continue;
      }
      const nl = buffer.indexOf('\r\n');
      if (nl === -1) break;
      const line = buffer.toString('latin1', 0, nl);
      buffer = buffer.subarray(nl + 2);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') replies.push(EHLO.slice(0, -2));
      else if (verb === 'DATA') {
        replies.push('354 go ahead');
        mode = { kind: 'data' };
        // The terminator search needs the CRLF that ended the DATA line before the message.
        buffer = Buffer.concat([Buffer.from('\r\n'), buffer]);
      } else if (verb === 'BDAT') {
        const [, size = '0', last] = line.split(' ');
        mode = { kind: 'bdat', left: Number(size), last: last?.toUpperCase() === 'LAST' };
      } else if (verb === 'QUIT') {
        socket.end(`${[...replies, '221 bye'].join('\r\n')}\r\n`);
        return;
      } else replies.push('250 2.0.0 ok');
    }
    if (replies.length) socket.write(`${replies.join('\r\n')}\r\n`);
  });
}

const server = createServer(session);
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`${typeof a === 'object' && a ? a.port : 0}\n`);
});
