// Feeds in a person's words, for the Feeds page: what a feed's status means, when it is checked
// next and why, what a refresh did. Pure functions, so the wording is tested without a window.

import { localTime } from './activity';
import { formatTime, plural } from './format';
import type { Entry, Feed, FeedStatus, RefreshSummary } from './ipc';

/** How many entries the page lists at once. */
export const ENTRIES_SHOWN = 100;

const STATUS_LABELS: Record<FeedStatus, string> = {
  new: 'Not checked yet',
  ok: 'OK',
  waiting: 'Server asked to wait',
  failing: 'Failing',
  dead: 'Dead',
  retired: 'Retired',
};

export function statusLabel(status: FeedStatus): string {
  return STATUS_LABELS[status];
}

export function feedName(feed: Pick<Feed, 'title' | 'url'>): string {
  return feed.title === '' ? feed.url : feed.title;
}

export function entryTitle(entry: Pick<Entry, 'title'>): string {
  return entry.title === '' ? '(untitled)' : entry.title;
}

/** "Blog · Ada · 5 Jan 2026, 10:00": the feed, the author if known, the date if known. */
export function entryMeta(entry: Pick<Entry, 'feed_title' | 'author' | 'published_at'>): string {
  const parts = [entry.feed_title];
  if (entry.author !== null && entry.author !== '') parts.push(entry.author);
  if (entry.published_at !== null) parts.push(formatTime(entry.published_at));
  return parts.join(' · ');
}

function capitalized(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** "Next check at 14:05: posts about daily; server asked for 1 h", or why there is none. */
export function nextCheckLine(feed: Feed, now: Date = new Date()): string {
  if (feed.next_check_at === null) return capitalized(feed.next_reason);
  // Core words it already, in local time: "next at 14:05: posts about daily".
  const worded = /^next at (\d{1,2}:\d\d): ([\s\S]*)$/.exec(feed.next_reason);
  if (worded !== null) return `Next check at ${worded[1]}: ${worded[2]}`;
  const at = Date.parse(feed.next_check_at);
  if (Number.isNaN(at) || at <= now.getTime()) return capitalized(feed.next_reason);
  return `Next check at ${localTime(at, now)}: ${feed.next_reason}`;
}

/** The interval the person set, in minutes, or null when it adapts. */
export function intervalMinutes(feed: Pick<Feed, 'interval_override_s'>): number | null {
  return feed.interval_override_s === null ? null : Math.round(feed.interval_override_s / 60);
}

/** What a refresh did, in one sentence. */
export function refreshLine(summary: RefreshSummary): string {
  const parts = [`Checked ${plural(summary.checked, 'feed')}`];
  parts.push(`${summary.new_entries} new`);
  if (summary.failed > 0) parts.push(`${summary.failed} failed`);
  if (summary.slowed_down > 0) parts.push(`${summary.slowed_down} asked to wait`);
  return `${parts.join(', ')}.`;
}
