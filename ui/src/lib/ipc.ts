// The one place the settings window talks to Rust. Every command and event the
// Tauri shell (src-tauri) offers has a typed wrapper here; nothing else calls
// `invoke` or `listen`. Types mirror the Rust serde structs (snake_case JSON).

import { invoke, type InvokeArgs } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';

/** What the tray icon shows; `attention` means the user has to act (e.g. a password was refused). */
export type SyncState = 'idle' | 'syncing' | 'attention' | 'error' | 'paused';

export interface JobCounts {
  pending: number;
  running: number;
  failed: number;
}

/** The same status the tray menu's first line shows, with the counts behind it. */
export interface Status {
  state: SyncState;
  /** One honest sentence, e.g. "Idle: nothing configured yet". */
  line: string;
  paused: boolean;
  accounts: number;
  pairs: number;
  feeds: number;
  conflicts: number;
  jobs: JobCounts;
  workers: number;
  /** RFC 3339, or null before the first completed sync. */
  last_sync_at: string | null;
}

export interface AppInfo {
  version: string;
  data_dir: string;
  database: string;
}

/** Emitted by Rust whenever the status changes; the payload is the new `Status`. */
export const STATUS_CHANGED = 'status-changed';

// The job engine (crates/durable model.rs), for the Activity page. Times are milliseconds
// since the Unix epoch.

/** The first three are open: at most one open run per idempotency key. */
export type RunState = 'pending' | 'running' | 'sleeping' | 'completed' | 'failed' | 'cancelled';

/** transient: a retry may fix it; needs_attention: only the person can; permanent: nobody can. */
export type ErrorClass = 'transient' | 'needs_attention' | 'permanent';

export interface RunInfo {
  id: number;
  /** The workflow, e.g. `feeds.refresh` or `sync-pair`. */
  kind: string;
  idempotency_key: string;
  state: RunState;
  attempts: number;
  group: string | null;
  schedule: string | null;
  created_at_ms: number;
  started_at_ms: number | null;
  finished_at_ms: number | null;
  /** When a pending or sleeping run may start: its next retry. */
  next_at_ms: number | null;
  error: string | null;
  error_class: ErrorClass | null;
  cancel_requested: boolean;
}

export interface StepInfo {
  seq: number;
  name: string;
  attempts: number;
  completed_at_ms: number | null;
  result: unknown;
}

export interface AttemptInfo {
  attempt: number;
  worker: string;
  started_at_ms: number;
  ended_at_ms: number | null;
  /** completed, retry, failed, cancelled, interrupted or lost; null while it runs. */
  outcome: string | null;
  step: string | null;
  error: string | null;
  error_class: ErrorClass | null;
  next_retry_at_ms: number | null;
}

export interface RunDetail {
  run: RunInfo;
  input: unknown;
  result: unknown;
  steps: StepInfo[];
  attempts: AttemptInfo[];
}

export type Cadence = { every: { every_ms: number } } | { cron: { expr: string; tz: string } };

export interface ScheduleInfo {
  schedule: { name: string; kind: string; cadence: Cadence; group: string | null };
  paused: boolean;
  /** Why the schedule waits for the person, if it does. */
  attention: string | null;
  next_slot_at_ms: number;
  next_fire_at_ms: number;
  last_fired_at_ms: number | null;
  last_run: number | null;
}

/** What the engine in the app announces as it happens (`job-event`). `missed`: the window
 * fell behind and some events were dropped, so the list must be read again. */
export type JobEvent =
  | {
      type: 'run';
      id: number;
      kind: string;
      state: RunState;
      error: string | null;
      next_at_ms: number | null;
    }
  | { type: 'step_completed'; run: number; name: string }
  | { type: 'schedule'; name: string; change: string }
  | { type: 'missed'; count: number };

export const JOB_EVENT = 'job-event';

const OUTSIDE_APP =
  'This window is not running inside Concord, so it cannot reach the app. Open it from the tray icon.';

/** Opened in a plain browser (e.g. the Vite dev server alone) there is no Rust side to call. */
function assertInsideApp(): void {
  const internals = (window as { __TAURI_INTERNALS__?: { invoke?: unknown } }).__TAURI_INTERNALS__;
  if (typeof internals?.invoke !== 'function') throw new Error(OUTSIDE_APP);
}

async function call<T>(command: string, args?: InvokeArgs): Promise<T> {
  assertInsideApp();
  return invoke<T>(command, args);
}

export function getStatus(): Promise<Status> {
  return call('status');
}

export function setPaused(paused: boolean): Promise<Status> {
  return call('set_paused', { paused });
}

export function syncNow(): Promise<Status> {
  return call('sync_now');
}

export function autostartEnabled(): Promise<boolean> {
  return call('autostart_enabled');
}

/** Resolves to the setting as it is afterwards, which is what the UI must show. */
export function setAutostart(enabled: boolean): Promise<boolean> {
  return call('set_autostart', { enabled });
}

export function appInfo(): Promise<AppInfo> {
  return call('app_info');
}

/** The most recent runs, newest first. */
export function jobs(limit: number): Promise<RunInfo[]> {
  return call('jobs', { limit });
}

export function job(id: number): Promise<RunDetail> {
  return call('job', { id });
}

/** Resolves to the run as it is afterwards. */
export function retryJob(id: number): Promise<RunInfo> {
  return call('retry_job', { id });
}

/** Resolves to the run as it is afterwards (a running run stops at its next step). */
export function cancelJob(id: number): Promise<RunInfo> {
  return call('cancel_job', { id });
}

export function schedules(): Promise<ScheduleInfo[]> {
  return call('schedules');
}

export async function onJobEvent(handler: (event: JobEvent) => void): Promise<UnlistenFn> {
  assertInsideApp();
  return listen<JobEvent>(JOB_EVENT, (event) => handler(event.payload));
}

export async function onStatusChanged(handler: (status: Status) => void): Promise<UnlistenFn> {
  assertInsideApp();
  return listen<Status>(STATUS_CHANGED, (event) => handler(event.payload));
}

/** Rust commands reject with a plain string; anything else is turned into one. */
export function errorMessage(error: unknown): string {
  if (typeof error === 'string' && error.trim() !== '') return error;
  if (error instanceof Error && error.message !== '') return error.message;
  return 'Concord gave no reason.';
}
