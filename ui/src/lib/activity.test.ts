import { describe, expect, test } from 'vitest';
import { aRun } from '../test/backend';
import {
  canCancel,
  canRetry,
  coalesce,
  errorLine,
  kindLabel,
  localTime,
  span,
  stateLabel,
  upsertRun,
} from './activity';

describe('wording', () => {
  test('known kinds get their names; others are shown as they are', () => {
    expect(kindLabel('feeds.refresh')).toBe('Feed refresh');
    expect(kindLabel('sync-pair')).toBe('Sync');
    expect(kindLabel('demo.kind')).toBe('demo.kind');
  });

  test('states in words: stopping, waiting to retry, failed needing the person', () => {
    expect(stateLabel(aRun({ state: 'running', cancel_requested: true }))).toBe('Stopping');
    expect(stateLabel(aRun({ state: 'sleeping' }))).toBe('Waiting to retry');
    expect(stateLabel(aRun({ state: 'failed', error_class: 'needs_attention' }))).toBe('Needs you');
    expect(stateLabel(aRun({ state: 'failed', error_class: 'permanent' }))).toBe('Failed');
  });

  test('an error leads with what it means for the person', () => {
    const now = new Date(2026, 10, 22, 14, 0);
    const at = new Date(2026, 10, 22, 14, 5).getTime();
    expect(errorLine('503', 'transient', at, now)).toBe(`will retry at ${localTime(at, now)}: 503`);
    expect(errorLine('503', 'transient', null, now)).toBe('failed: 503');
    expect(errorLine('401', 'needs_attention', at, now)).toBe('needs you: 401');
    expect(errorLine('bad', 'permanent', null, now)).toBe('failed: bad');
    expect(errorLine(null, 'permanent', null, now)).toBeNull();
  });

  test('a time today is only the time; another day has its date', () => {
    const now = new Date(2026, 10, 22, 14, 0);
    const today = localTime(new Date(2026, 10, 22, 9, 30).getTime(), now);
    const earlier = localTime(new Date(2026, 10, 20, 9, 30).getTime(), now);
    expect(earlier.length).toBeGreaterThan(today.length);
    expect(earlier.endsWith(today)).toBe(true);
  });

  test('spans', () => {
    expect(span(900_000)).toBe('15 min');
    expect(span(3_600_000)).toBe('1 h');
    expect(span(5_400_000)).toBe('1 h 30 min');
    expect(span(30_000)).toBe('30 s');
  });
});

describe('actions that apply', () => {
  test('retry for waiting-to-retry, failed and cancelled runs; cancel for open ones', () => {
    expect(canRetry(aRun({ state: 'sleeping' }))).toBe(true);
    expect(canRetry(aRun({ state: 'failed' }))).toBe(true);
    expect(canRetry(aRun({ state: 'cancelled' }))).toBe(true);
    expect(canRetry(aRun({ state: 'completed' }))).toBe(false);
    expect(canRetry(aRun({ state: 'running' }))).toBe(false);
    expect(canCancel(aRun({ state: 'pending' }))).toBe(true);
    expect(canCancel(aRun({ state: 'running' }))).toBe(true);
    expect(canCancel(aRun({ state: 'running', cancel_requested: true }))).toBe(false);
    expect(canCancel(aRun({ state: 'completed' }))).toBe(false);
  });
});

describe('the list', () => {
  test('a run replaces its row or takes its place newest first, within the limit', () => {
    const list = [aRun({ id: 5 }), aRun({ id: 3 })];
    expect(upsertRun(list, aRun({ id: 4 })).map((r) => r.id)).toEqual([5, 4, 3]);
    expect(upsertRun(list, aRun({ id: 6 })).map((r) => r.id)).toEqual([6, 5, 3]);
    expect(upsertRun(list, aRun({ id: 1 }), 2).map((r) => r.id)).toEqual([5, 3]);
    const changed = upsertRun(list, aRun({ id: 3, state: 'failed' }));
    expect(changed.map((r) => [r.id, r.state])).toEqual([
      [5, 'completed'],
      [3, 'failed'],
    ]);
  });

  test('asking while a load runs loads once more afterwards, not once per ask', async () => {
    let loads = 0;
    let finish: () => void = () => {};
    const loader = coalesce(
      () =>
        new Promise<void>((resolve) => {
          loads += 1;
          finish = resolve;
        }),
    );
    const first = loader.request();
    expect(loader.busy()).toBe(true);
    void loader.request();
    void loader.request();
    finish();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(loads).toBe(2);
    finish();
    await first;
    expect(loads).toBe(2);
    expect(loader.busy()).toBe(false);
  });
});
