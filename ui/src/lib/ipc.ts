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
  /** Feed entries not read yet. */
  unread: number;
  jobs: JobCounts;
  workers: number;
  /** RFC 3339, or null before the first completed sync of a pair (feeds do not count). */
  last_sync_at: string | null;
  /** The page that explains the line: conflicts, or activity for a failure. */
  page: 'conflicts' | 'activity' | null;
  /** Pairs and mappings stopped until the person acts. */
  attention: number;
  /** Each pair, "all collections" mapping and feed, and how it is doing. */
  health: Health[];
  /** When the status was read, in milliseconds since the Unix epoch. */
  read_at_ms: number;
}

/** How one pair, mapping or feed is doing (crates/core status/health.rs). */
export type HealthState =
  'never_synced' | 'ok' | 'syncing' | 'paused' | 'retrying' | 'failing' | 'needs_you';

export interface Health {
  kind: 'pair' | 'collections' | 'feed';
  name: string;
  /** The "all collections" mapping a pair belongs to. */
  part_of: string | null;
  state: HealthState;
  /** What went wrong, in plain words. */
  cause: string | null;
  what_to_do: string | null;
  /** The last error as recorded. */
  error: string | null;
  failed_attempts: number;
  failing_since_ms: number | null;
  next_attempt_at_ms: number | null;
  waits_for_scheduler: boolean;
  /** Syncing is paused (as a whole or this one's schedule): no attempt comes on its own. */
  paused: boolean;
  synced_at_ms: number | null;
  /** How it is doing in a few words: "synced 3 min ago". */
  said: string;
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

// Feeds (crates/core feeds/store.rs and refresh.rs), for the Feeds page.

/** new: never checked; waiting: the server asked for a pause; dead: failing for days. */
export type FeedStatus = 'new' | 'ok' | 'waiting' | 'failing' | 'dead' | 'retired';

export interface Feed {
  id: number;
  url: string;
  /** Empty until the first check gives one. */
  title: string;
  site_url: string | null;
  folder: string | null;
  muted: boolean;
  /** The person's own interval in seconds; null lets it adapt to how often the feed posts. */
  interval_override_s: number | null;
  unread: number;
  entries: number;
  status: FeedStatus;
  /** RFC 3339; null once retired. */
  next_check_at: string | null;
  /** Why the next check is then, e.g. "posts about daily; server asked for 1 h". */
  next_reason: string;
  last_checked_at: string | null;
  last_error: string | null;
  suggestion: string | null;
}

export interface Entry {
  id: number;
  feed_id: number;
  feed_title: string;
  title: string;
  url: string | null;
  author: string | null;
  published_at: string | null;
  /** Sanitized in Rust (ammonia) before it was stored; only `feed_entry` includes it. */
  html: string | null;
  read: boolean;
  starred: boolean;
}

export interface FeedFailure {
  feed_id: number;
  url: string;
  error: string;
  suggestion: string;
  class: ErrorClass;
}

/** What one refresh did (`refresh_feeds`, and the payload of `feeds-refreshed`). */
export interface RefreshSummary {
  checked: number;
  changed: number;
  unchanged: number;
  failed: number;
  new_entries: number;
  updated_entries: number;
  retired: number;
  slowed_down: number;
  moved: number;
  duration_ms: number;
  failures: FeedFailure[];
  notification: { summary: string; body: string; entry_ids: number[] } | null;
}

/** Emitted by Rust after every refresh the app ran (Refresh now, a new feed, the schedule). */
export const FEEDS_REFRESHED = 'feeds-refreshed';
/** Emitted by Rust when the window must show a page (a notification's action); payload: page id. */
export const OPEN_PAGE = 'open-page';

// Calendar and contact sync (crates/core sync/state.rs, src-tauri commands/sync.rs), for the
// Accounts and Pairs pages.

export type StorageKind = 'caldav' | 'carddav' | 'webcal' | 'vdir';

/** A configured account; its password is in the keyring, never here. */
export interface Account {
  id: number;
  name: string;
  kind: StorageKind;
  /** Server address, ICS URL, or folder path. */
  url: string;
  username: string | null;
}

/** What the Add form sends; an empty `name` lets Rust name it after the host or folder. */
export interface NewAccount {
  name: string;
  kind: StorageKind;
  url: string;
  username: string | null;
  /** Goes to the keyring. */
  password: string | null;
  insecure_http: boolean;
}

/** One collection an account offers (a webcal or vdir account is one). */
export interface Collection {
  kind: 'calendar' | 'address-book';
  /** Its path on the server, or the URL or folder of a webcal/vdir account. */
  href: string;
  display_name: string | null;
  color: string | null;
  /** What a calendar accepts ("VEVENT", "VTODO", "VJOURNAL"); empty for address books. */
  components?: string[];
}

export interface PairSide {
  kind: StorageKind;
  location: string;
  display_name: string | null;
}

export type Direction = 'two-way' | 'a-to-b' | 'b-to-a';

/** What happens when both sides change the same property of an item. */
export type ConflictPolicy = 'ask' | 'a-wins' | 'b-wins' | 'newest-wins';

/** A pair with its last and next sync (ms since the epoch), counts and errors. */
export interface Pair {
  id: number;
  name: string;
  a: PairSide;
  b: PairSide;
  direction: Direction;
  conflict_policy: ConflictPolicy;
  /** Minutes between background syncs; null without such a schedule. */
  every_minutes: number | null;
  last_sync_at_ms: number | null;
  next_sync_at_ms: number | null;
  paused: boolean;
  /** Why its schedule waits for the person. */
  attention: string | null;
  last_error: string | null;
  /** Why the pair stopped and asks (a side emptied, a mass deletion). */
  stopped_reason: string | null;
  /** Items synced on both sides. */
  items: number;
  conflicts: number;
  quarantined: number;
}

export interface SyncCounts {
  create_a: number;
  create_b: number;
  update_a: number;
  update_b: number;
  delete_a: number;
  delete_b: number;
  merged: number;
  conflicts: number;
}

/** What one sync of a pair did. */
export interface SyncReport {
  pair: string;
  dry_run: boolean;
  /** What was written (a dry run: what would be). */
  counts: SyncCounts;
  /** What the plan set out to do (a stopped pair did none of it). */
  planned: SyncCounts;
  plan: string[];
  /** Writes not made because the item changed meanwhile; retried next sync. */
  deferred: string[];
  deferred_counts: SyncCounts;
  /** Writes the side refused, each with its reason; tried again next sync. */
  refused: string[];
  refused_counts: SyncCounts;
  quarantined: number;
  stopped: string | null;
}

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

export function feeds(): Promise<Feed[]> {
  return call('feeds');
}

/** Subscribes and checks the feed at once; rejects, in words, when it gives no feed. */
export function addFeed(url: string): Promise<Feed> {
  return call('add_feed', { url });
}

export function removeFeed(id: number): Promise<void> {
  return call('remove_feed', { id });
}

/** Newest first, without their HTML; `feedId` null lists every feed's. */
export function feedEntries(feedId: number | null, limit: number): Promise<Entry[]> {
  return call('feed_entries', { feedId, limit });
}

/** One entry with its sanitized HTML, for the reader. */
export function feedEntry(id: number, feedId: number): Promise<Entry> {
  return call('feed_entry', { id, feedId });
}

/** Resolves to how many entries changed. */
export function markRead(ids: number[], read: boolean): Promise<number> {
  return call('mark_read', { ids, read });
}

export function markAllRead(feedId: number | null): Promise<number> {
  return call('mark_all_read', { feedId });
}

export function setStarred(ids: number[], starred: boolean): Promise<number> {
  return call('set_starred', { ids, starred });
}

/** Resolves to the feed as it is afterwards. */
export function setFeedMuted(id: number, muted: boolean): Promise<Feed> {
  return call('set_feed_muted', { id, muted });
}

/** `minutes` null lets the interval adapt again; resolves to the feed as it is afterwards. */
export function setFeedInterval(id: number, minutes: number | null): Promise<Feed> {
  return call('set_feed_interval', { id, minutes });
}

/** Checks every feed now; the window also hears `feeds-refreshed`. */
export function refreshFeeds(): Promise<RefreshSummary> {
  return call('refresh_feeds');
}

/** Opens a web link in the person's browser; the window itself never navigates away. */
export function openLink(url: string): Promise<void> {
  return call('open_link', { url });
}

export function accounts(): Promise<Account[]> {
  return call('accounts');
}

/** Rejects, in words, on a bad address or a name already taken. */
export function addAccount(account: NewAccount): Promise<Account> {
  return call('add_account', { account });
}

/** Resolves with what worked; rejects with why not (password, not DAV, certificate, unreachable). */
export function testAccount(name: string): Promise<{ message: string }> {
  return call('test_account', { name });
}

export function discoverCollections(name: string): Promise<Collection[]> {
  return call('discover_collections', { name });
}

/** What discovery last found on a server account, without asking the server (empty before). */
export function knownCollections(name: string): Promise<Collection[]> {
  return call('known_collections', { name });
}

/** Removes the account, its pairs and its password; folders and item history stay. */
export function removeAccount(name: string): Promise<void> {
  return call('remove_account', { name });
}

export function pairs(): Promise<Pair[]> {
  return call('pairs');
}

/** Pairs each collection with a vdir folder (`folder`, or one under the data directory). */
export function addPairs(
  account: string,
  collections: Collection[],
  folder: string | null,
): Promise<Pair[]> {
  return call('add_pairs', { account, collections, folder });
}

export function removePair(name: string): Promise<void> {
  return call('remove_pair', { name });
}

/** Sync now, one pair; resolves once the run is done. `allowDeletes` is the person's
 *  go-ahead past a safety stop (a side emptied, a mass deletion), for this run only. */
export function syncPair(name: string, allowDeletes = false): Promise<SyncReport> {
  return call('sync_pair', { name, allowDeletes });
}

/** How a pair syncs: which way, who wins a conflict, and how often in the background. */
export interface PairSettings {
  direction: Direction;
  conflictPolicy: ConflictPolicy;
  everyMinutes: number;
}

export function setPair(name: string, settings: PairSettings): Promise<void> {
  return call('set_pair', { name, ...settings });
}

/** One side of a pair between two accounts: an account and one of its collections. */
export interface PairEnd {
  account: string;
  collection: Collection;
}

/** Pairs a collection of one account with one of another (e.g. calendars on two servers). */
export function addAccountPair(a: PairEnd, b: PairEnd): Promise<Pair> {
  return call('add_account_pair', { a, b });
}

/** One collection of an "all collections" mapping and its pair. */
export interface MappedPair {
  pair: string;
  collection_url: string;
  folder: string;
  /** When the collection vanished from the server: its pair no longer syncs, its folder stays. */
  gone_since_ms: number | null;
}

/** Every calendar and address book of an account, each in its own folder under `folder`
 *  (crates/core sync/mapping.rs), with its schedule. */
export interface CollectionMapping {
  id: number;
  name: string;
  account: string;
  account_id: number;
  folder: string;
  direction: Direction;
  conflict_policy: ConflictPolicy;
  every_minutes: number;
  /** When the account's collections were last listed. */
  last_refresh_at_ms: number | null;
  last_error: string | null;
  pairs: MappedPair[];
  next_sync_at_ms: number | null;
  attention: string | null;
}

/** What one listing of an account's collections changed. */
export interface CollectionsRefresh {
  mapping: string;
  /** Pairs made for collections seen for the first time. */
  created: string[];
  /** A sentence per pair whose collection vanished. */
  gone: string[];
  active: string[];
}

/** What Sync now of all collections did: the listing, then each collection's sync. */
export interface MappingReport {
  refresh: CollectionsRefresh;
  reports: SyncReport[];
  errors: string[];
}

export function mappings(): Promise<CollectionMapping[]> {
  return call('mappings');
}

/** Syncs all collections of a server account, and new ones as they appear; `folder` (or one
 *  under the data directory) holds a folder per collection. */
export function addAllCollections(
  account: string,
  folder: string | null,
): Promise<CollectionMapping> {
  return call('add_all_collections', { account, folder });
}

export function syncMapping(name: string): Promise<MappingReport> {
  return call('sync_mapping', { name });
}

/** Stops syncing all collections of an account; folders and item history stay. */
export function removeMapping(name: string): Promise<void> {
  return call('remove_mapping', { name });
}

export async function onFeedsRefreshed(
  handler: (summary: RefreshSummary) => void,
): Promise<UnlistenFn> {
  assertInsideApp();
  return listen<RefreshSummary>(FEEDS_REFRESHED, (event) => handler(event.payload));
}

export async function onOpenPage(handler: (page: string) => void): Promise<UnlistenFn> {
  assertInsideApp();
  return listen<string>(OPEN_PAGE, (event) => handler(event.payload));
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
  // Core's typed errors cross as `{ kind, message }`, their sentence in lower case first.
  if (typeof error === 'object' && error !== null && 'message' in error) {
    const message = (error as { message: unknown }).message;
    if (typeof message === 'string' && message.trim() !== '') {
      return message.charAt(0).toUpperCase() + message.slice(1);
    }
  }
  if (error instanceof Error && error.message !== '') return error.message;
  return 'Concord gave no reason.';
}

// Conflicts (crates/core sync/conflicts.rs, src-tauri commands/conflicts.rs), for the Conflicts
// page.

/** Side A or B of a pair, as a per-field choice names it. */
export type ConflictSide = 'a' | 'b';

/** What an item says, in a person's words. */
export interface ConflictDetails {
  /** Event or task title, or the contact's name. */
  title: string | null;
  /** Start (or due) as core words it, e.g. "2026-12-01 10:00 UTC". */
  when: string | null;
  /** RFC 3339 in UTC, or "YYYY-MM-DD" for a whole day: the window shows it in the local zone. */
  starts_at: string | null;
  location: string | null;
  attendees: string[];
  emails: string[];
  phones: string[];
}

/** One version of a conflicting item. */
export interface ConflictVersion {
  href: string | null;
  etag: string | null;
  details: ConflictDetails;
  content: string;
}

/** An open conflict, as the inbox lists it. */
export interface ConflictSummary {
  id: number;
  pair: string;
  uid: string;
  /** "both-edited", "edit-delete" or "both-created". */
  kind: string;
  summary: string;
  /** The properties both sides changed, as recorded. */
  properties: string[];
  /** A's version, else B's. */
  details: ConflictDetails;
  updated_at_ms: number;
}

/** One field of a conflicting item, on each side. */
export interface ConflictField {
  /** The key a per-field choice uses, e.g. "VEVENT SUMMARY". */
  name: string;
  /** In a person's words: "Title", "Location", "Emails". */
  label: string;
  /** Readable value(s); null when the field is absent there. */
  base: string | null;
  a: string | null;
  b: string | null;
  /** A and B differ here: the person may choose. */
  differs: boolean;
  /** Both sides changed it differently: a per-field resolution must choose. */
  conflict: boolean;
}

/** One conflict with its base and both sides (null: deleted on that side). */
export interface ConflictDetail extends ConflictSummary {
  base: ConflictVersion | null;
  a: ConflictVersion | null;
  b: ConflictVersion | null;
  /** "VEVENT SUMMARY"-style names of what A and B hold differently. */
  differing: string[];
  fields: ConflictField[];
}

/** The item a per-field choice would give. */
export interface ConflictPreview {
  content: string;
  details: ConflictDetails;
  /** Conflicting fields not chosen yet (A's value is shown for them). */
  unchosen: string[];
}

export type ConflictChoice = { keep: 'a' | 'b' | 'both' } | { pick: Record<string, ConflictSide> };

/** What a resolution did: `refreshed` when a side changed since (nothing was overwritten). */
export type Resolution =
  | { outcome: 'resolved'; uid: string; kept: 'a' | 'b' | 'both'; copy_uid: string | null }
  | { outcome: 'picked'; uid: string; picked: Record<string, ConflictSide> }
  | { outcome: 'refreshed'; uid: string; closed: boolean };

/** Every open conflict, oldest first. */
export function conflictsList(): Promise<ConflictSummary[]> {
  return call('conflicts_list');
}

export function conflictShow(id: number): Promise<ConflictDetail> {
  return call('conflict_show', { id });
}

/** The item `picks` would give; fields not named follow the merge. */
export function conflictPreview(
  id: number,
  picks: Record<string, ConflictSide>,
): Promise<ConflictPreview> {
  return call('conflict_preview', { id, picks });
}

/** Runs the resolution as a durable job and resolves once it is done. */
export function conflictResolve(id: number, choice: ConflictChoice): Promise<Resolution> {
  return call('conflict_resolve', { id, choice });
}
