// The job engine's runs and schedules in a person's words, for the Activity page: what a kind
// of run is called, what its state and error mean, when things happen, and which of Retry now
// and Cancel apply. Pure functions, so the wording is tested without a window.

import type {
  AttemptInfo,
  Cadence,
  ErrorClass,
  JobEvent,
  RunInfo,
  RunState,
  ScheduleInfo,
} from './ipc';

/** How many recent runs the page lists. */
export const RUNS_SHOWN = 50;

/** The kinds core defines, as a person calls them; another kind is shown as it is named. */
const KIND_LABELS: Record<string, string> = {
  'feeds.refresh': 'Feed refresh',
  'sync-pair': 'Sync',
};

export function kindLabel(kind: string): string {
  return KIND_LABELS[kind] ?? kind;
}

const STATE_LABELS: Record<RunState, string> = {
  pending: 'Waiting',
  running: 'Running',
  sleeping: 'Waiting to retry',
  completed: 'Done',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

export function stateLabel(
  run: Pick<RunInfo, 'state' | 'cancel_requested' | 'error_class'>,
): string {
  if (run.state === 'running' && run.cancel_requested) return 'Stopping';
  if (run.state === 'failed' && run.error_class === 'needs_attention') return 'Needs you';
  return STATE_LABELS[run.state];
}

function sameDay(a: Date, b: Date): boolean {
  return (
    a.getFullYear() === b.getFullYear() &&
    a.getMonth() === b.getMonth() &&
    a.getDate() === b.getDate()
  );
}

/** A time in the person's locale and time zone: "14:05" today, with the date on other days. */
export function localTime(ms: number, now: Date = new Date()): string {
  const time = new Date(ms);
  const options: Intl.DateTimeFormatOptions = sameDay(time, now)
    ? { timeStyle: 'short' }
    : { dateStyle: 'medium', timeStyle: 'short' };
  return new Intl.DateTimeFormat(undefined, options).format(time);
}

/**
 * A run's error in plain words, led by what it means for the person, or null without one:
 * "will retry at 14:05: …", "needs you: …", "failed: …".
 */
export function errorLine(
  error: string | null,
  errorClass: ErrorClass | null,
  retryAtMs: number | null,
  now: Date = new Date(),
): string | null {
  if (error === null) return null;
  if (errorClass === 'needs_attention') return `needs you: ${error}`;
  if (errorClass === 'transient' && retryAtMs !== null) {
    return `will retry at ${localTime(retryAtMs, now)}: ${error}`;
  }
  return `failed: ${error}`;
}

/** The error line of a run as listed; a retry is announced only while one is coming. */
export function runErrorLine(run: RunInfo, now: Date = new Date()): string | null {
  const open = run.state === 'pending' || run.state === 'sleeping';
  return errorLine(run.error, run.error_class, open ? run.next_at_ms : null, now);
}

/** Retry now: a run waiting for its retry starts at once; a failed or cancelled one reopens. */
export function canRetry(run: RunInfo): boolean {
  return run.state === 'sleeping' || run.state === 'failed' || run.state === 'cancelled';
}

/** Cancel: any open run whose stop was not already asked for. */
export function canCancel(run: RunInfo): boolean {
  const open = run.state === 'pending' || run.state === 'running' || run.state === 'sleeping';
  return open && !run.cancel_requested;
}

const ATTEMPT_OUTCOMES: Record<string, string> = {
  completed: 'done',
  retry: 'failed, retried',
  failed: 'failed',
  cancelled: 'cancelled',
  interrupted: 'interrupted (Concord stopped)',
  lost: 'lost (its process died)',
};

export function attemptOutcome(outcome: string | null): string {
  if (outcome === null) return 'running';
  return ATTEMPT_OUTCOMES[outcome] ?? outcome;
}

/** When a run was queued, or started and finished. */
export function runTimes(run: RunInfo, now: Date = new Date()): string {
  if (run.started_at_ms === null) return `queued ${localTime(run.created_at_ms, now)}`;
  const started = `started ${localTime(run.started_at_ms, now)}`;
  if (run.finished_at_ms === null) return started;
  return `${started}, finished ${localTime(run.finished_at_ms, now)}`;
}

/** "#2 failed, retried, 14:01 to 14:02, at step fetch". */
export function attemptLine(attempt: AttemptInfo, now: Date = new Date()): string {
  let line = `#${attempt.attempt} ${attemptOutcome(attempt.outcome)}, ${localTime(attempt.started_at_ms, now)}`;
  if (attempt.ended_at_ms !== null) line += ` to ${localTime(attempt.ended_at_ms, now)}`;
  if (attempt.step !== null) line += `, at step ${attempt.step}`;
  return line;
}

/** "5 min", "1 h 30 min", "2 d". */
export function span(ms: number): string {
  if (ms < 60_000) return `${Math.max(1, Math.round(ms / 1000))} s`;
  const minutes = Math.round(ms / 60_000);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return minutes % 60 === 0 ? `${hours} h` : `${hours} h ${minutes % 60} min`;
  return `${Math.round(hours / 24)} d`;
}

export function cadenceLabel(cadence: Cadence): string {
  if ('every' in cadence) return `every ${span(cadence.every.every_ms)}`;
  return `at "${cadence.cron.expr}" (${cadence.cron.tz})`;
}

/** Where a schedule stands: waiting for the person, paused, or when it runs next. */
export function scheduleLine(info: ScheduleInfo, now: Date = new Date()): string {
  if (info.attention !== null) return `needs you: ${info.attention}`;
  if (info.paused) return 'paused';
  return `next run at ${localTime(info.next_fire_at_ms, now)}`;
}

/** `runs` with `run` in its place (newest first), at most `limit` of them. */
export function upsertRun(runs: RunInfo[], run: RunInfo, limit: number = RUNS_SHOWN): RunInfo[] {
  const others = runs.filter((r) => r.id !== run.id);
  const at = others.findIndex((r) => r.id < run.id);
  const next = at === -1 ? [...others, run] : [...others.slice(0, at), run, ...others.slice(at)];
  return next.slice(0, limit);
}

/** What a run event says at once; the rest of the row (attempts, times) is read after it. */
export function applyRunEvent(runs: RunInfo[], event: Extract<JobEvent, { type: 'run' }>) {
  return runs.map((run) =>
    run.id === event.id
      ? {
          ...run,
          state: event.state,
          error: event.error,
          next_at_ms: event.next_at_ms,
          error_class: event.error === null ? null : run.error_class,
        }
      : run,
  );
}

/**
 * Wraps a loader so that asking while it runs makes it run once more afterwards: the answer
 * shown is never older than the last ask, and asks never pile up.
 */
export function coalesce(load: () => Promise<void>): {
  request: () => Promise<void>;
  busy: () => boolean;
} {
  let busy = false;
  let again = false;
  async function request() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      do {
        again = false;
        await load();
      } while (again);
    } finally {
      busy = false;
    }
  }
  return { request, busy: () => busy };
}
