/**
 * An HTTP proxy on 127.0.0.1 in front of the S3 server, with a barrier: the first request that
 * `hold` picks is not forwarded and not answered until the test says so. A worker writing
 * through it is then certainly stopped at that point (e.g. between two checkpoints of a search),
 * so the test can kill its container there instead of racing the search.
 */
import { createServer, request as forward, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HoldingProxy {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** Resolves with the method and path of the held request once it arrives. */
  readonly held: Promise<string>;
  /** Drops the held request's connection (the client, if still alive, sees a reset). */
  release(): void;
  close(): Promise<void>;
}

export async function startHoldingProxy(target: string, hold: (method: string, path: string) => boolean): Promise<HoldingProxy> {
  const upstream = new URL(target);
  let holding: { request: IncomingMessage; response: ServerResponse } | undefined;
  let heldOnce = false;
  let onHeld!: (what: string) => void;
  const held = new Promise<string>((resolve) => (onHeld = resolve));

  const server = createServer((request, response) => {
    const method = request.method ?? 'GET';
    const path = new URL(request.url ?? '/', 'http://proxy').pathname;
    if (!heldOnce && hold(method, path)) {
      heldOnce = true;
      holding = { request, response };
      request.resume();
      onHeld(`${method} ${path}`);
      return;
    }
    // The Host header is kept: it is part of what the client signed (SigV4).
    const headers = { ...request.headers };
    delete headers.expect; // this proxy answers 100-continue itself
    const outgoing = forward({ host: upstream.hostname, port: upstream.port, method, path: request.url, headers }, (reply) => {
      response.writeHead(reply.statusCode ?? 502, reply.headers);
      reply.pipe(response);
    });
    outgoing.on('error', () => response.destroy());
    request.pipe(outgoing);
  });
  // No idle-connection timeout: a worker reusing a connection just as it timed out would see
  // "socket hang up" (see test/store/s3rver-child.mjs).
  server.keepAliveTimeout = 60 * 60_000;
  server.headersTimeout = 60 * 60_000 + 1_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const release = (): void => {
    holding?.request.socket.destroy();
    holding = undefined;
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    held,
    release,
    close: async () => {
      release();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
