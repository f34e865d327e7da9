/**
 * Signal and exit handling for the long-running commands (`start`, `topics tail`): the first
 * SIGINT/SIGTERM stops in order, a second one or shutdown.graceMs ends the process.
 */
import { note } from './common.js';

/**
 * Resolves on the first SIGINT or SIGTERM; a second one while stopping forces the exit. With
 * `shutdown`, the first signal also bounds the stop: the process exits (code 1) `graceMs` after it,
 * whatever still runs.
 */
export function stopSignal(shutdown?: { graceMs: number }): Promise<string> {
  return new Promise((resolve) => {
    let first: string | undefined;
    const on = (sig: string) => {
      if (first === undefined) {
        first = sig;
        resolve(sig);
        if (shutdown) {
          const graceMs = shutdown.graceMs;
          setTimeout(() => {
            note(`streamrec: still stopping ${graceMs} ms after ${sig} (shutdown.graceMs): exiting now`);
            process.exit(1);
          }, graceMs).unref();
        }
        return;
      }
      note(`streamrec: ${sig} again while stopping: exiting now`);
      process.exit(1);
    };
    process.on('SIGINT', () => on('SIGINT'));
    process.on('SIGTERM', () => on('SIGTERM'));
  });
}

/**
 * Ends the process soon after a long-running command returned or failed, even when something (a
 * Kafka client's reconnection, a socket) still holds the event loop: then it says what, and exits
 * with `process.exitCode` (set by the error handler at the end of main.ts) or `code`.
 */
export function exitSoon(code: number, afterMs = 1000): void {
  setTimeout(() => {
    const open = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'Timeout');
    note(`streamrec: exiting; still open: ${open.join(', ') || 'timers only'}`);
    process.exit(process.exitCode ?? code);
  }, afterMs).unref();
}
