/**
 * Human progress on stderr: a cli-progress bar on a TTY, plain lines (at most one per 5% or 10 s)
 * otherwise. stdout stays free for `--json`.
 */
import cliProgress from 'cli-progress';
import type { EngineEvent } from '../protocol/protocol.js';

export function progressReporter(): { onEvent: (e: EngineEvent) => void; stop: () => void } {
  const tty = Boolean(process.stderr.isTTY);
  let bar: cliProgress.SingleBar | null = null;
  let barRun = '';
  let lastLine = 0;
  let lastPct = -1;
  const stopBar = () => {
    bar?.stop();
    bar = null;
  };
  return {
    onEvent(e) {
      if (e.event === 'progress') {
        if (tty) {
          if (!bar || barRun !== e.runId) {
            stopBar();
            barRun = e.runId;
            bar = new cliProgress.SingleBar(
              { format: `${e.phase ?? 'run'} [{bar}] {value}/{total} eta {eta_formatted} {message}`, stream: process.stderr, hideCursor: true },
              cliProgress.Presets.shades_classic,
            );
            bar.start(e.total, e.step, { message: e.message ?? '' });
          }
          bar.update(e.step, { message: e.message ?? '' });
        } else {
          const pct = Math.floor((100 * e.step) / Math.max(1, e.total));
          if (pct >= lastPct + 5 || Date.now() - lastLine > 10_000 || e.step === e.total) {
            lastPct = pct;
            lastLine = Date.now();
            const eta = e.etaSeconds !== undefined ? ` eta ${Math.round(e.etaSeconds)}s` : '';
            process.stderr.write(`[${e.runId}] ${e.phase ?? ''} ${e.step}/${e.total}${eta} ${e.message ?? ''}\n`);
          }
        }
      } else if (e.event === 'log') {
        stopBar();
        process.stderr.write(`[${e.runId}] ${e.message}\n`);
      } else if (e.event === 'run-state') {
        if (e.status !== 'running' && e.status !== 'queued') stopBar();
        process.stderr.write(`[${e.runId}] ${e.status}${e.error ? `: ${e.error.message}` : ''}\n`);
        lastPct = -1;
      }
    },
    stop: stopBar,
  };
}
