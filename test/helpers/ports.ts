import { createServer, type Server } from 'node:net';

/**
 * Free TCP ports on 127.0.0.1, all different (for configs that must name
 * ports before anything listens). Each is held until all are found: ports
 * asked for one after another may be the same one, released and handed out again.
 */
export async function freeTcpPorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let k = 0; k < count; k++) {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      servers.push(server);
    }
    return servers.map((s) => {
      const address = s.address();
      if (!address || typeof address !== 'object') throw new Error('no port');
      return address.port;
    });
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** One free TCP port on 127.0.0.1. */
export async function freeTcpPort(): Promise<number> {
  return (await freeTcpPorts(1))[0]!;
}
