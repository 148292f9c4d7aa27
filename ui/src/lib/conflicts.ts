// Conflicts in a person's words: what happened to the item, when it is (in this computer's
// time zone), which fields still need a choice, and what a resolution did.

import { plural } from './format';
import type {
  ConflictChoice,
  ConflictDetail,
  ConflictDetails,
  ConflictField,
  ConflictSide,
  ConflictSummary,
  Resolution,
} from './ipc';

/** The durable workflow that resolves a conflict (crates/core sync/conflicts.rs). */
export const RESOLVE_WORKFLOW = 'resolve-conflict';

/** What happened, by the inbox's kind. */
export function kindLine(kind: string): string {
  if (kind === 'both-edited') return 'Changed differently on both sides';
  if (kind === 'edit-delete') return 'Changed on one side, deleted on the other';
  if (kind === 'both-created') return 'Created on both sides with different content';
  return kind;
}

const ALL_DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * When the event starts (or the task is due), in the local time zone: `starts_at` is RFC 3339
 * in UTC, or "YYYY-MM-DD" for a whole day (shown as that day, never shifted by the zone).
 * Without it, the text core wrote (`when`) is shown as it came.
 */
export function whenLocal(details: ConflictDetails, timeZone?: string): string | null {
  const at = details.starts_at;
  if (at === null) return details.when;
  const day = ALL_DAY.exec(at);
  if (day !== null) {
    const date = new Date(Number(day[1]), Number(day[2]) - 1, Number(day[3]));
    return new Intl.DateTimeFormat(undefined, { dateStyle: 'full' }).format(date);
  }
  const time = new Date(at);
  if (Number.isNaN(time.getTime())) return details.when ?? at;
  return new Intl.DateTimeFormat(undefined, {
    dateStyle: 'full',
    timeStyle: 'short',
    timeZone,
  }).format(time);
}

/** The item's name: its title, else what the sync recorded. */
export function itemTitle(conflict: ConflictSummary): string {
  const title = conflict.details.title;
  return title !== null && title.trim() !== '' ? title : conflict.summary;
}

/** The lines that say what an item is: when, where, who (each only if it has one). */
export function detailLines(details: ConflictDetails): { label: string; text: string }[] {
  const lines: { label: string; text: string }[] = [];
  const when = whenLocal(details);
  if (when !== null) lines.push({ label: 'When', text: when });
  if (details.location !== null) lines.push({ label: 'Where', text: details.location });
  if (details.attendees.length > 0) {
    lines.push({ label: 'Attendees', text: details.attendees.join(', ') });
  }
  if (details.emails.length > 0) lines.push({ label: 'Emails', text: details.emails.join(', ') });
  if (details.phones.length > 0) lines.push({ label: 'Phones', text: details.phones.join(', ') });
  return lines;
}

/** The fields both sides changed differently: each needs the person's choice. */
export function toChoose(detail: ConflictDetail): ConflictField[] {
  return detail.fields.filter((field) => field.conflict);
}

/** Whether the item is on both sides, so its fields can be chosen one by one. */
export function choosable(detail: ConflictDetail): boolean {
  return detail.a !== null && detail.b !== null && toChoose(detail).length > 0;
}

/** The labels of the fields a preview shows A's value for, as nothing is chosen yet. */
export function unchosenLabels(detail: ConflictDetail, unchosen: string[]): string[] {
  return unchosen.map((name) => detail.fields.find((f) => f.name === name)?.label ?? name);
}

/** Whether every field that needs a choice has one. */
export function allChosen(detail: ConflictDetail, picks: Record<string, ConflictSide>): boolean {
  return toChoose(detail).every((field) => picks[field.name] !== undefined);
}

/** How far the choice is: "1 of 2 conflicting fields chosen", or what Resolve does now. */
export function choiceLine(detail: ConflictDetail, picks: Record<string, ConflictSide>): string {
  if (detail.a === null || detail.b === null) {
    return 'It is deleted on one side: keep the edit or the deletion.';
  }
  const fields = toChoose(detail);
  if (fields.length === 0) return 'No field conflicts: keep one side, or both.';
  const chosen = fields.filter((field) => picks[field.name] !== undefined).length;
  if (chosen === fields.length) {
    return 'Every conflicting field is chosen: Resolve writes the result to both sides.';
  }
  return `${chosen} of ${plural(fields.length, 'conflicting field')} chosen`;
}

/** A value as a cell shows it; an absent one says so. */
export function valueText(value: string | null): string {
  return value === null || value === '' ? '(none)' : value;
}

/** Whether a side's value changed from the base (what the highlight marks). */
export function changedFromBase(field: ConflictField, side: ConflictSide): boolean {
  return field[side] !== field.base;
}

/** What a resolution did, said after it. */
export function resolutionLine(resolution: Resolution, choice: ConflictChoice): string {
  if (resolution.outcome === 'refreshed') {
    return resolution.closed
      ? 'Both sides now hold the same version: nothing is left to choose.'
      : 'Someone changed this item again since the conflict was recorded, so nothing was overwritten. It now shows what each side holds: choose again.';
  }
  if (resolution.outcome === 'picked' || 'pick' in choice) {
    return 'Resolved: both sides now hold the version you put together.';
  }
  if (choice.keep === 'both') return 'Resolved: both versions kept, B as a copy.';
  return `Resolved: both sides now hold ${choice.keep.toUpperCase()}’s version.`;
}
