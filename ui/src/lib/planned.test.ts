import { expect, test } from 'vitest';
import { IDLE } from '../test/backend';
import { PLANNED, plannedSentence } from './planned';

test('a planned page claims no count while the status is unknown', () => {
  expect(plannedSentence(PLANNED.conflicts, null)).toMatch(/^Once calendar sync arrives/);
});

test('a planned page names the count it has, in singular or plural', () => {
  expect(plannedSentence(PLANNED.conflicts, IDLE)).toMatch(/^No conflicts\. Once calendar sync/);
  expect(plannedSentence(PLANNED.conflicts, { ...IDLE, conflicts: 1 })).toBe(
    '1 conflict waiting for your choice. Resolving them in this window arrives with calendar sync.',
  );
});
