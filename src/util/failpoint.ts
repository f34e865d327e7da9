/**
 * Crash injection for the exactly-once tests: STREAMREC_FAILPOINT=<name>:<n> makes the process
 * SIGKILL itself the n-th time it passes the named point (e.g. between the changelog transaction
 * and the RocksDB write). Unset, a failpoint is one string comparison.
 */
const spec = /^([a-z-]+):(\d+)$/.exec(process.env.STREAMREC_FAILPOINT ?? '');
const target = spec ? { name: spec[1]!, n: Number(spec[2]) } : undefined;
let passes = 0;

export function failpoint(name: string): void {
  if (target === undefined || target.name !== name) return;
  passes += 1;
  if (passes === target.n) {
    process.stderr.write(`failpoint ${name}:${passes} reached: SIGKILL\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
