import net from 'node:net';

/** A TCP proxy in front of PostgreSQL or Redis, to make it "go away" (or go silent) and come back in a test. */
export interface TcpProxy {
  port: number;
  /** Drops every connection and stops listening: the server is unreachable. */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  /**
   * Stops relaying in both directions while keeping every connection open and accepting new ones:
   * the server is silent (a failover, a partition), and the client sees no error. Bytes sent
   * meanwhile are held, as TCP would hold them, and delivered on resume().
   */
  pause(): void;
  /** Relays again, the held bytes first. */
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const pairs = new Set<[net.Socket, net.Socket]>();
  let paused = false;
  const relay = ([client, upstream]: [net.Socket, net.Socket]) => {
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const make = () =>
    net.createServer((client) => {
      const upstream = net.connect(targetPort, targetHost);
      const pair: [net.Socket, net.Socket] = [client, upstream];
      pairs.add(pair);
      for (const s of pair) {
        sockets.add(s);
        s.on('close', () => {
          sockets.delete(s);
          pairs.delete(pair);
        });
        s.on('error', () => s.destroy());
      }
      if (!paused) relay(pair);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  let server = make();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  let listening = true;

  const cut = async () => {
    if (!listening) return;
    listening = false;
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return {
    port,
    cut,
    async restore() {
      server = make();
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
      listening = true;
    },
    pause() {
      paused = true;
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    resume() {
      paused = false;
      for (const pair of pairs) relay(pair);
    },
    close: cut,
  };
}
