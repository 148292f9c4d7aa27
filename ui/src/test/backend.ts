// A stand-in for the Tauri shell: answers the IPC contract of src/lib/ipc.ts from a little
// state, records every command, and lets a test replace any answer (or make it fail).
import { mockIPC } from '@tauri-apps/api/mocks';
import type { AppInfo, Status } from '../lib/ipc';

export const IDLE: Status = {
  state: 'idle',
  line: 'Idle: nothing configured yet',
  paused: false,
  accounts: 0,
  pairs: 0,
  feeds: 0,
  conflicts: 0,
  jobs: { pending: 0, running: 0, failed: 0 },
  workers: 0,
  last_sync_at: null,
};

export const INFO: AppInfo = {
  version: '0.1.0',
  data_dir: '/home/ada/.local/share/concord',
  database: '/home/ada/.local/share/concord/concord.db',
};

type Args = Record<string, unknown>;
type Handler = (args: Args) => unknown;

export interface Backend {
  status: Status;
  autostart: boolean;
  /** Every command the UI sent, in order (event plumbing excluded). */
  calls: { command: string; args: Args }[];
  /** The arguments of each call of one command. */
  argsOf(command: string): Args[];
}

export function fakeBackend(overrides: Record<string, Handler> = {}): Backend {
  const backend: Backend = {
    status: structuredClone(IDLE),
    autostart: false,
    calls: [],
    argsOf: (command) => backend.calls.filter((c) => c.command === command).map((c) => c.args),
  };
  const handlers: Record<string, Handler> = {
    status: () => backend.status,
    set_paused: ({ paused }) => {
      backend.status = {
        ...backend.status,
        paused: paused === true,
        state: paused === true ? 'paused' : 'idle',
        line: paused === true ? 'Paused' : IDLE.line,
      };
      return backend.status;
    },
    sync_now: () => backend.status,
    autostart_enabled: () => backend.autostart,
    set_autostart: ({ enabled }) => (backend.autostart = enabled === true),
    app_info: () => INFO,
    ...overrides,
  };
  mockIPC(
    (command, args) => {
      const plain = (args ?? {}) as Args;
      backend.calls.push({ command, args: plain });
      const handler = handlers[command];
      if (handler === undefined) throw `unknown command ${command}`;
      return handler(plain);
    },
    { shouldMockEvents: true },
  );
  return backend;
}

/** How a Rust command fails: the promise rejects with a plain string. */
export function fails(message: string): Handler {
  return () => Promise.reject(message);
}
