/** A fast accept-everything SMTP sink for the proxy benchmark; prints its port. */
import { SMTPServer } from 'smtp-server';

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  logger: false,
  maxClients: 1000,
  onData(stream, _session, callback) {
    stream.on('data', () => {});
    stream.on('end', () => callback(null, 'Ok: queued'));
  },
});
server.listen(0, '127.0.0.1', () => {
  const a = server.server.address();
  process.stdout.write(`${typeof a === 'object' && a ? a.port : 0}\n`);
});
