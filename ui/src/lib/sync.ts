// Accounts, collections and pairs in a person's words: what a pair is, when it synced and
// syncs next, what it holds, and what one sync did.

import { formatTime, plural } from './format';
import type {
  Account,
  Collection,
  CollectionMapping,
  ConflictPolicy,
  MappingReport,
  Direction,
  Pair,
  PairSide,
  StorageKind,
  SyncCounts,
  SyncReport,
} from './ipc';

/** The durable workflow that syncs one pair (crates/core sync/run.rs `SYNC_WORKFLOW`). */
export const SYNC_WORKFLOW = 'sync-pair';

export const KIND_LABELS: Record<StorageKind, string> = {
  caldav: 'CalDAV server',
  carddav: 'CardDAV server',
  webcal: 'Webcal (ICS) URL',
  vdir: 'vdir folder',
};

/** What the address field asks for, per kind. */
export const URL_LABELS: Record<StorageKind, string> = {
  caldav: 'Server address',
  carddav: 'Server address',
  webcal: 'Calendar URL',
  vdir: 'Folder',
};

/** Whether an account of this kind signs in (a folder does not). */
export function signsIn(kind: StorageKind): boolean {
  return kind !== 'vdir';
}

/** Whether the account has collections to discover, rather than being one. */
export function discovers(account: Account): boolean {
  return account.kind === 'caldav' || account.kind === 'carddav';
}

export function collectionName(collection: Collection): string {
  if (collection.display_name !== null && collection.display_name.trim() !== '') {
    return collection.display_name;
  }
  const parts = collection.href.split('/').filter((p) => p !== '');
  return parts[parts.length - 1] ?? collection.href;
}

/** What a calendar holds, in words, from the components its server accepts. */
const COMPONENT_WORDS: Record<string, string> = {
  VEVENT: 'events',
  VTODO: 'tasks',
  VJOURNAL: 'journal',
};

/** "calendar of events, tasks", "address book". */
export function contentsOf(collection: Collection): string {
  if (collection.kind === 'address-book') return 'address book';
  // In one order whatever order the server lists them in.
  const offered = collection.components ?? [];
  const words = Object.entries(COMPONENT_WORDS)
    .filter(([name]) => offered.includes(name))
    .map(([, word]) => word);
  return words.length === 0 ? 'calendar' : `calendar of ${words.join(', ')}`;
}

/** A server's colour, shown only when it is a plain hex colour (never CSS from a server). */
export function swatchOf(collection: Collection): string | null {
  const color = collection.color?.trim() ?? '';
  return /^#[0-9a-fA-F]{3,8}$/.test(color) ? color : null;
}

/** "3 collections, listed 22 Nov 2026, 10:05 · next sync 10:20". */
export function mappingLine(mapping: CollectionMapping): string {
  const active = mapping.pairs.filter((p) => p.gone_since_ms === null).length;
  const parts = [
    mapping.last_refresh_at_ms === null
      ? 'Not listed yet'
      : `${plural(active, 'collection')}, listed ${fromMs(mapping.last_refresh_at_ms)}`,
  ];
  if (mapping.attention !== null) parts.push('waiting for you before it syncs again');
  else if (mapping.next_sync_at_ms !== null)
    parts.push(`next sync ${fromMs(mapping.next_sync_at_ms)}`);
  return parts.join(' · ');
}

/** "1 new collection paired · 2 synced: 3 created on side b", with any failures. */
export function mappingReportLine(report: MappingReport): string {
  const parts: string[] = [];
  if (report.refresh.created.length > 0) {
    parts.push(`${plural(report.refresh.created.length, 'new collection')} paired`);
  }
  if (report.refresh.gone.length > 0) {
    parts.push(`${plural(report.refresh.gone.length, 'collection')} gone from the server`);
  }
  const total = (c: SyncCounts) => Object.values(c).reduce((a, b) => a + b, 0);
  const counts = report.reports.reduce(
    (sum, r) => sum + total(r.counts) + total(r.deferred_counts) + total(r.refused_counts),
    0,
  );
  const stopped = report.reports.filter((r) => r.stopped !== null).length;
  const synced = plural(report.reports.length, 'collection');
  parts.push(
    counts === 0
      ? `${synced} synced: nothing to do`
      : `${synced} synced: ${report.reports
          .filter((r) => r.stopped === null)
          .map((r) => reportLine(r).replace(/^Synced: /, ''))
          .filter((line) => line !== 'nothing to do')
          .join('; ')}`,
  );
  if (stopped > 0) parts.push(`${stopped} stopped and waiting for you (see Pairs)`);
  if (report.errors.length > 0) parts.push(`failed: ${report.errors.join('; ')}`);
  return parts.join(' · ');
}

export function sideLabel(side: PairSide): string {
  const name = side.display_name === null ? '' : ` “${side.display_name}”`;
  return `${KIND_LABELS[side.kind]}${name}: ${side.location}`;
}

/** A side in a few words: "the folder", "the CalDAV server", "the webcal calendar". */
function sideNoun(side: PairSide): string {
  if (side.kind === 'vdir') return 'the folder';
  if (side.kind === 'webcal') return 'the webcal calendar';
  return `the ${KIND_LABELS[side.kind]}`;
}

export function directionLabel(pair: Pair): string {
  if (pair.direction === 'a-to-b') return `one-way, to ${sideNoun(pair.b)}`;
  if (pair.direction === 'b-to-a') return `one-way, to ${sideNoun(pair.a)}`;
  return 'two-way';
}

/** The direction choices for a pair, worded with its own sides. */
export function directionChoices(pair: Pair): { value: Direction; label: string }[] {
  return [
    { value: 'two-way', label: 'Two-way: changes flow both ways' },
    { value: 'a-to-b', label: `One-way: from ${sideNoun(pair.a)} to ${sideNoun(pair.b)}` },
    { value: 'b-to-a', label: `One-way: from ${sideNoun(pair.b)} to ${sideNoun(pair.a)}` },
  ];
}

export const POLICY_LABELS: Record<ConflictPolicy, string> = {
  ask: 'Ask me (the Conflicts page)',
  'a-wins': 'Side a wins',
  'b-wins': 'Side b wins',
  'newest-wins': 'The newest change wins',
};

const POLICY_SHORT: Record<ConflictPolicy, string> = {
  ask: 'ask me',
  'a-wins': 'side a wins',
  'b-wins': 'side b wins',
  'newest-wins': 'newest wins',
};

/** Whether a side of the pair can only be read (a webcal calendar). */
export function readOnly(side: PairSide): boolean {
  return side.kind === 'webcal';
}

/** "two-way · conflicts: ask me · every 15 minutes". */
export function settingsLine(pair: Pair): string {
  const parts = [directionLabel(pair)];
  if (pair.direction === 'two-way') {
    parts.push(`conflicts: ${POLICY_SHORT[pair.conflict_policy]}`);
  }
  if (pair.every_minutes !== null) parts.push(`every ${plural(pair.every_minutes, 'minute')}`);
  return parts.join(' · ');
}

function fromMs(ms: number): string {
  return formatTime(new Date(ms).toISOString());
}

export function lastSyncLine(pair: Pair): string {
  return pair.last_sync_at_ms === null
    ? 'Not synced yet'
    : `Last synced ${fromMs(pair.last_sync_at_ms)}`;
}

export function nextSyncLine(pair: Pair): string {
  if (pair.attention !== null) return 'Waiting for you before it syncs again';
  if (pair.paused) return 'Paused: no background sync';
  if (pair.next_sync_at_ms === null) return 'No background sync';
  return `Next sync ${fromMs(pair.next_sync_at_ms)}`;
}

export function countsLine(pair: Pair): string {
  const parts = [plural(pair.items, 'item')];
  if (pair.conflicts > 0) parts.push(plural(pair.conflicts, 'conflict'));
  if (pair.quarantined > 0) parts.push(`${pair.quarantined} in quarantine`);
  return parts.join(' · ');
}

/** The problem to show on a pair, worst first, or null when it is fine. */
export function pairProblem(pair: Pair): string | null {
  if (pair.stopped_reason !== null) return `Stopped: ${pair.stopped_reason}`;
  if (pair.attention !== null) return pair.attention;
  return pair.last_error;
}

/** "3 created in the folder, 1 updated on the server", or "Nothing to do". */
export function reportLine(report: SyncReport): string {
  if (report.stopped !== null) return `Stopped: ${report.stopped}`;
  const c = report.counts;
  const parts: string[] = [];
  const say = (n: number, what: string) => {
    if (n > 0) parts.push(`${n} ${what}`);
  };
  say(c.create_a, 'created on side a');
  say(c.create_b, 'created on side b');
  say(c.update_a, 'updated on side a');
  say(c.update_b, 'updated on side b');
  say(c.delete_a, 'deleted on side a');
  say(c.delete_b, 'deleted on side b');
  say(c.merged, 'merged');
  say(c.conflicts, c.conflicts === 1 ? 'new conflict' : 'new conflicts');
  const notDone = (counts: SyncCounts, outcome: string) => {
    const writes = [
      [counts.create_a, 'create', ' on side a'],
      [counts.create_b, 'create', ' on side b'],
      [counts.update_a, 'update', ' on side a'],
      [counts.update_b, 'update', ' on side b'],
      [counts.delete_a, 'delete', ' on side a'],
      [counts.delete_b, 'delete', ' on side b'],
      [counts.merged, 'merge', ''],
    ] as const;
    const said = writes
      .filter(([n]) => n > 0)
      .map(([n, what, side]) => `${plural(n, what)}${side}`);
    if (said.length > 0) parts.push(`${said.join(' and ')} ${outcome}`);
  };
  notDone(report.deferred_counts, 'deferred (changed meanwhile, retried next sync)');
  notDone(report.refused_counts, `refused (${report.refused.join('; ')})`);
  if (report.quarantined > 0) parts.push(`${report.quarantined} in quarantine`);
  return parts.length === 0 ? 'Synced: nothing to do' : `Synced: ${parts.join(', ')}`;
}
