// A stand-in for the Tauri shell: answers the IPC contract of src/lib/ipc.ts from a little
// state, records every command, and lets a test replace any answer (or make it fail).
import { mockIPC } from '@tauri-apps/api/mocks';
import type {
  Account,
  AppInfo,
  Collection,
  CollectionMapping,
  Entry,
  Feed,
  NewAccount,
  MappingReport,
  Pair,
  PairEnd,
  RefreshSummary,
  RunDetail,
  RunInfo,
  ScheduleInfo,
  Status,
  SyncCounts,
  SyncReport,
} from '../lib/ipc';

export const IDLE: Status = {
  state: 'idle',
  line: 'Idle: nothing configured yet',
  paused: false,
  accounts: 0,
  pairs: 0,
  feeds: 0,
  conflicts: 0,
  unread: 0,
  jobs: { pending: 0, running: 0, failed: 0 },
  workers: 0,
  last_sync_at: null,
  page: null,
  attention: 0,
  health: [],
  read_at_ms: 0,
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

/** A feed as the store lists it, checked fine; `over` changes what the test is about. */
export function aFeed(over: Partial<Feed> = {}): Feed {
  return {
    id: 1,
    url: 'https://blog.example/feed.xml',
    title: 'Blog',
    site_url: 'https://blog.example/',
    folder: null,
    muted: false,
    interval_override_s: null,
    unread: 0,
    entries: 0,
    status: 'ok',
    next_check_at: new Date(Date.now() + 3_600_000).toISOString(),
    next_reason: 'next at 14:05: posts about daily',
    last_checked_at: new Date(EARLIER).toISOString(),
    last_error: null,
    suggestion: null,
    ...over,
  };
}

/** An unread entry of feed 1; `over` changes what the test is about. */
export function anEntry(over: Partial<Entry> = {}): Entry {
  return {
    id: 10,
    feed_id: 1,
    feed_title: 'Blog',
    title: 'Hello',
    url: 'https://blog.example/hello',
    author: null,
    published_at: new Date(EARLIER).toISOString(),
    html: '<p>Hello <a href="https://blog.example/more" rel="noopener noreferrer">more</a></p>',
    read: false,
    starred: false,
    ...over,
  };
}

export const NOTHING_NEW: RefreshSummary = {
  checked: 1,
  changed: 0,
  unchanged: 1,
  failed: 0,
  new_entries: 0,
  updated_entries: 0,
  retired: 0,
  slowed_down: 0,
  moved: 0,
  duration_ms: 12,
  failures: [],
  notification: null,
};

/** A CalDAV calendar as discovery finds it. */
export const CALENDAR: Collection = {
  kind: 'calendar',
  href: '/ada/calendar/',
  display_name: 'Calendar',
  color: '#3a429cff',
};

/** A pair of a CalDAV calendar and a folder, synced an hour ago; `over` changes what matters. */
export function aPair(over: Partial<Pair> = {}): Pair {
  return {
    id: 1,
    name: 'dav-calendar',
    a: { kind: 'caldav', location: 'https://dav.example/ada/calendar/', display_name: 'Calendar' },
    b: {
      kind: 'vdir',
      location: '/home/ada/.local/share/concord/vdir/dav/calendar',
      display_name: null,
    },
    direction: 'two-way',
    conflict_policy: 'ask',
    every_minutes: 15,
    last_sync_at_ms: EARLIER,
    next_sync_at_ms: Date.now() + 900_000,
    paused: false,
    attention: null,
    last_error: null,
    stopped_reason: null,
    items: 3,
    conflicts: 0,
    quarantined: 0,
    ...over,
  };
}

/** All collections of account 4 ("work") into one folder, listed an hour ago with one
 *  collection paired; `over` changes what the test is about. */
export function aMapping(over: Partial<CollectionMapping> = {}): CollectionMapping {
  return {
    id: 1,
    name: 'work-all',
    account: 'work',
    account_id: 4,
    folder: '/home/ada/.local/share/concord/vdir/work-all',
    direction: 'two-way',
    conflict_policy: 'ask',
    every_minutes: 15,
    last_refresh_at_ms: EARLIER,
    last_error: null,
    pairs: [
      {
        pair: 'work-all/calendar',
        collection_url: 'https://dav.example/ada/calendar/',
        folder: '/home/ada/.local/share/concord/vdir/work-all/calendar',
        gone_since_ms: null,
      },
    ],
    next_sync_at_ms: Date.now() + 900_000,
    attention: null,
    ...over,
  };
}

/** Counts of nothing, with `over` set. */
export function syncCounts(over: Partial<SyncCounts> = {}): SyncCounts {
  return {
    create_a: 0,
    create_b: 0,
    update_a: 0,
    update_b: 0,
    delete_a: 0,
    delete_b: 0,
    merged: 0,
    conflicts: 0,
    ...over,
  };
}

/** What a first sync of a pair with one event on the server reports. */
export const ONE_CREATED: SyncReport = {
  pair: 'dav-calendar',
  dry_run: false,
  counts: syncCounts({ create_b: 1 }),
  planned: syncCounts({ create_b: 1 }),
  plan: [],
  deferred: [],
  deferred_counts: syncCounts(),
  refused: [],
  refused_counts: syncCounts(),
  quarantined: 0,
  stopped: null,
};

type Args = Record<string, unknown>;
type Handler = (args: Args) => unknown;

export interface Backend {
  status: Status;
  autostart: boolean;
  /** What `jobs` lists (newest first) and `job` details, unless the test says otherwise. */
  runs: RunInfo[];
  schedules: ScheduleInfo[];
  /** The subscriptions; their unread counts follow `entries` as the store's do. */
  feeds: Feed[];
  /** Every feed's entries, newest first, with their HTML. */
  entries: Entry[];
  accounts: Account[];
  /** What discovery finds on every account. */
  collections: Collection[];
  /** What discovery found earlier, by account name (none unless a test says so). */
  known: Record<string, Collection[]>;
  pairs: Pair[];
  /** The "all collections" syncs. */
  mappings: CollectionMapping[];
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
    feeds: [],
    entries: [],
    accounts: [],
    collections: [CALENDAR],
    known: {},
    pairs: [],
    mappings: [],
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
    feeds: () =>
      backend.feeds.map((feed) => {
        const own = backend.entries.filter((e) => e.feed_id === feed.id);
        return { ...feed, entries: own.length, unread: own.filter((e) => !e.read).length };
      }),
    add_feed: ({ url }) => {
      const feed = aFeed({
        id: backend.feeds.length + 1,
        url: String(url),
        title: '',
        status: 'new',
      });
      backend.feeds.push(feed);
      return feed;
    },
    remove_feed: ({ id }) => {
      backend.feeds = backend.feeds.filter((f) => f.id !== id);
      backend.entries = backend.entries.filter((e) => e.feed_id !== id);
    },
    feed_entries: ({ feedId, limit }) =>
      backend.entries
        .filter((e) => feedId === null || e.feed_id === feedId)
        .slice(0, Number(limit))
        .map((e) => ({ ...e, html: null })),
    feed_entry: ({ id }) => {
      const entry = backend.entries.find((e) => e.id === id);
      if (entry === undefined) return Promise.reject(`entry ${String(id)} is gone`);
      return entry;
    },
    mark_read: ({ ids, read }) => {
      const wanted = ids as number[];
      let changed = 0;
      backend.entries = backend.entries.map((e) => {
        if (!wanted.includes(e.id) || e.read === read) return e;
        changed += 1;
        return { ...e, read: read === true };
      });
      return changed;
    },
    mark_all_read: ({ feedId }) => {
      backend.entries = backend.entries.map((e) =>
        feedId === null || e.feed_id === feedId ? { ...e, read: true } : e,
      );
      return 0;
    },
    set_starred: () => 0,
    set_feed_muted: ({ id, muted }) => changeFeed(backend, Number(id), { muted: muted === true }),
    set_feed_interval: ({ id, minutes }) =>
      changeFeed(backend, Number(id), {
        interval_override_s: minutes === null ? null : Number(minutes) * 60,
      }),
    refresh_feeds: () => NOTHING_NEW,
    open_link: () => null,
    accounts: () => backend.accounts,
    add_account: ({ account }) => {
      const asked = account as NewAccount;
      const added: Account = {
        id: backend.accounts.length + 1,
        name: asked.name === '' ? 'dav' : asked.name,
        kind: asked.kind,
        url: asked.url,
        username: asked.username,
      };
      backend.accounts.push(added);
      return added;
    },
    test_account: ({ name }) => ({ message: `Connected: signed in as /${String(name)}/` }),
    discover_collections: () => backend.collections,
    known_collections: ({ name }) => backend.known[String(name)] ?? [],
    remove_account: ({ name }) => {
      backend.accounts = backend.accounts.filter((a) => a.name !== name);
    },
    pairs: () => backend.pairs,
    add_pairs: ({ account, collections }) => {
      const made = (collections as Collection[]).map((c, i) =>
        aPair({
          id: backend.pairs.length + i + 1,
          name: `${String(account)}-${c.display_name ?? 'x'}`.toLowerCase(),
          last_sync_at_ms: null,
          items: 0,
        }),
      );
      backend.pairs.push(...made);
      return made;
    },
    add_account_pair: ({ a, b }) => {
      const [sideA, sideB] = [a as PairEnd, b as PairEnd];
      const made = aPair({
        id: backend.pairs.length + 1,
        name: `${sideA.account}-${sideB.account}`,
        a: { kind: 'caldav', location: sideA.collection.href, display_name: null },
        b: { kind: 'caldav', location: sideB.collection.href, display_name: null },
        last_sync_at_ms: null,
        items: 0,
      });
      backend.pairs.push(made);
      return made;
    },
    mappings: () => backend.mappings,
    add_all_collections: ({ account, folder }) => {
      const owner = backend.accounts.find((a) => a.name === account);
      if (owner === undefined)
        return Promise.reject(`There is no account named "${String(account)}"`);
      const name = `${owner.name}-all`;
      const root = folder === null ? `${INFO.data_dir}/vdir/${name}` : String(folder);
      const made = aMapping({
        id: backend.mappings.length + 1,
        name,
        account: owner.name,
        account_id: owner.id,
        folder: root,
        pairs: backend.collections.map((c) => {
          const last =
            c.href
              .split('/')
              .filter((p) => p !== '')
              .pop() ?? 'x';
          return {
            pair: `${name}/${last}`,
            collection_url: c.href,
            folder: `${root}/${last}`,
            gone_since_ms: null,
          };
        }),
      });
      backend.mappings.push(made);
      return made;
    },
    sync_mapping: ({ name }): MappingReport => {
      const mapping = backend.mappings.find((m) => m.name === name);
      const active = (mapping?.pairs ?? []).filter((p) => p.gone_since_ms === null);
      return {
        refresh: {
          mapping: String(name),
          created: [],
          gone: [],
          active: active.map((p) => p.pair),
        },
        reports: active.map((p) => ({ ...ONE_CREATED, pair: p.pair })),
        errors: [],
      };
    },
    remove_mapping: ({ name }) => {
      backend.mappings = backend.mappings.filter((m) => m.name !== name);
    },
    remove_pair: ({ name }) => {
      backend.pairs = backend.pairs.filter((p) => p.name !== name);
    },
    sync_pair: ({ name }) => ({ ...ONE_CREATED, pair: String(name) }),
    // The Conflicts page's own tests answer these with their conflicts (Conflicts.test.ts).
    conflicts_list: () => [],
    set_pair: ({ name, direction, conflictPolicy, everyMinutes }) => {
      backend.pairs = backend.pairs.map((p) =>
        p.name === name
          ? {
              ...p,
              direction: direction as Pair['direction'],
              conflict_policy: conflictPolicy as Pair['conflict_policy'],
              every_minutes: Number(everyMinutes),
            }
          : p,
      );
    },
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

function changeFeed(backend: Backend, id: number, change: Partial<Feed>): Feed {
  const index = backend.feeds.findIndex((f) => f.id === id);
  if (index === -1) throw `no feed matches "${id}"`;
  backend.feeds[index] = { ...backend.feeds[index], ...change };
  return backend.feeds[index];
}

/** How a Rust command fails: the promise rejects with a plain string. */
export function fails(message: string): Handler {
  return () => Promise.reject(message);
}
