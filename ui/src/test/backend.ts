// A stand-in for the Tauri shell: answers the IPC contract of src/lib/ipc.ts from a little
// state, records every command, and lets a test replace any answer (or make it fail).
import { mockIPC } from '@tauri-apps/api/mocks';
import type { AppInfo, RunDetail, RunInfo, ScheduleInfo, Status } from '../lib/ipc';

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

/** An hour before the tests started: when the runs of `aRun` happened. */
const EARLIER = Date.now() - 3_600_000;

/** A run as the engine lists it, done an hour ago; `over` changes what the test is about. */
export function aRun(over: Partial<RunInfo> = {}): RunInfo {
  return {
    id: 1,
    kind: 'feeds.refresh',
    idempotency_key: 'feeds',
    state: 'completed',
    attempts: 1,
    group: null,
    schedule: null,
    created_at_ms: EARLIER,
    started_at_ms: EARLIER + 1000,
    finished_at_ms: EARLIER + 3000,
    next_at_ms: null,
    error: null,
    error_class: null,
    cancel_requested: false,
    ...over,
  };
}

type Args = Record<string, unknown>;
type Handler = (args: Args) => unknown;

export interface Backend {
  status: Status;
  autostart: boolean;
  /** What `jobs` lists (newest first) and `job` details, unless the test says otherwise. */
  runs: RunInfo[];
  schedules: ScheduleInfo[];
  /** Steps and attempts per run id; a run without an entry has none. */
  details: Record<number, Pick<RunDetail, 'steps' | 'attempts'>>;
  /** Every command the UI sent, in order (event plumbing excluded). */
  calls: { command: string; args: Args }[];
  /** The arguments of each call of one command. */
  argsOf(command: string): Args[];
}

export function fakeBackend(overrides: Record<string, Handler> = {}): Backend {
  const backend: Backend = {
    status: structuredClone(IDLE),
    autostart: false,
    runs: [],
    schedules: [],
    details: {},
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
    jobs: ({ limit }) => backend.runs.slice(0, Number(limit)),
    job: ({ id }) => {
      const run = backend.runs.find((r) => r.id === id);
      if (run === undefined) return Promise.reject(`run ${String(id)} does not exist`);
      const { steps, attempts } = backend.details[run.id] ?? { steps: [], attempts: [] };
      return { run, input: null, result: null, steps, attempts };
    },
    retry_job: ({ id }) => changeRun(backend, Number(id), { state: 'pending', error: null }),
    cancel_job: ({ id }) => changeRun(backend, Number(id), { state: 'cancelled' }),
    schedules: () => backend.schedules,
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

/** What the engine does on Retry now and Cancel, without asking whether it may. */
function changeRun(backend: Backend, id: number, change: Partial<RunInfo>): RunInfo {
  const index = backend.runs.findIndex((r) => r.id === id);
  if (index === -1) throw `run ${id} does not exist`;
  backend.runs[index] = { ...backend.runs[index], ...change };
  return backend.runs[index];
}

/** How a Rust command fails: the promise rejects with a plain string. */
export function fails(message: string): Handler {
  return () => Promise.reject(message);
}
