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
