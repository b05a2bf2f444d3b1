// Runs s3rver in its own process. Started by test/store/s3rver.ts with
// `node --openssl-legacy-provider`: s3rver's ListObjectsV2 continuation tokens use the DES cipher,
// which OpenSSL 3 only offers through its legacy provider, and the test runner's own flags
// cannot be changed. Protocol: prints one JSON line `{"port": n}` once listening; exits when its
// stdin closes, so it cannot outlive a test process that crashed.
import S3rver from 's3rver';

const [directory, bucket] = process.argv.slice(2);
if (!directory || !bucket) {
  console.error('usage: s3rver-child.mjs <directory> <bucket>');
  process.exit(2);
}
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: [{ name: bucket, configs: [] }],
});
const { port } = await server.run();
// Node closes a keep-alive connection after 5 idle seconds; a client that picks that connection
// for its next request at the same moment gets "socket hang up" (seen under load: the client's
// event loop runs late). Idle connections stay open for the life of a test file instead.
server.httpServer.keepAliveTimeout = 60 * 60_000;
server.httpServer.headersTimeout = 60 * 60_000 + 1_000;
process.stdout.write(`${JSON.stringify({ port })}\n`);

const stop = () => {
  server.close().finally(() => process.exit(0));
};
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
