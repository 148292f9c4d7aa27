// What the page not built yet (Conflicts) says. It names how many of its things exist (a count from
// the status) and then, truthfully, what this window cannot do with them yet.

import { plural } from './format';
import type { Status } from './ipc';

export interface PlannedText {
  /** The status count this page talks about. */
  count: 'conflicts';
  /** Singular, e.g. "account". */
  noun: string;
  /** Said when there are none, e.g. "No accounts yet." */
  none: string;
  /** What arrives later, said after `none`, or alone while the count is unknown. */
  later: string;
  /** Follows the count when there are some, e.g. "configured" in "2 accounts configured." */
  some: string;
  /** What arrives later, said after the count. */
  laterForSome: string;
}

export const PLANNED = {
  conflicts: {
    count: 'conflicts',
    noun: 'conflict',
    none: 'No conflicts.',
    later:
      'Once calendar sync arrives, an item changed in different ways on both sides waits here for your choice while everything else keeps syncing.',
    some: 'waiting for your choice',
    laterForSome: 'Resolving them in this window arrives with calendar sync.',
  },
} as const satisfies Record<string, PlannedText>;

export type PlannedPageId = keyof typeof PLANNED;

/** The sentence a planned page shows; with an unknown status it claims no count. */
export function plannedSentence(text: PlannedText, status: Status | null): string {
  const count = status === null ? null : status[text.count];
  if (count === null) return text.later;
  if (count === 0) return `${text.none} ${text.later}`;
  return `${plural(count, text.noun)} ${text.some}. ${text.laterForSome}`;
}
