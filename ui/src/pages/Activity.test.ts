// The Activity page as a person meets it: runs from the job engine, their errors in plain
// words, Retry now and Cancel, details on demand, schedules, and live updates from job-event.
import { emit } from '@tauri-apps/api/event';
import { render, screen, waitFor, within } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import { describe, expect, test } from 'vitest';
import App from '../App.svelte';
import { localTime } from '../lib/activity';
import type { JobEvent, ScheduleInfo } from '../lib/ipc';
import { aRun, fails, fakeBackend, IDLE } from '../test/backend';

function openActivity() {
  window.location.hash = '#/activity';
  render(App);
}

async function row(id: number): Promise<HTMLElement> {
  return screen.findByTestId(`run-${id}`);
}

async function stateOf(id: number, label: string) {
  await waitFor(async () =>
    expect(within(await row(id)).getByTestId('run-state')).toHaveTextContent(label),
  );
}

/** Lets pending IPC promises (such as the event subscription) settle. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

async function jobEvent(event: JobEvent) {
  await emit('job-event', event);
}

const IN_AN_HOUR = Date.now() + 3_600_000;

function aSchedule(over: Partial<ScheduleInfo> = {}): ScheduleInfo {
  return {
    schedule: {
      name: 'feeds',
      kind: 'feeds.refresh',
      cadence: { every: { every_ms: 900_000 } },
      group: null,
    },
    paused: false,
    attention: null,
    next_slot_at_ms: IN_AN_HOUR,
    next_fire_at_ms: IN_AN_HOUR,
    last_fired_at_ms: null,
    last_run: null,
    ...over,
  };
}

describe('runs', () => {
  test('lists recent runs in people’s words, newest first', async () => {
    const backend = fakeBackend();
    backend.runs = [
      aRun({ id: 2, kind: 'sync-pair', state: 'running', attempts: 2, finished_at_ms: null }),
      aRun({ id: 1 }),
    ];
    openActivity();

    const newest = await row(2);
    expect(newest).toHaveTextContent('Sync');
    expect(newest).toHaveTextContent('Running');
    expect(newest).toHaveTextContent('2 attempts');
    expect(newest).toHaveTextContent(`started ${localTime(backend.runs[0].started_at_ms ?? 0)}`);
    const older = await row(1);
    expect(older).toHaveTextContent('Feed refresh');
    expect(older).toHaveTextContent('Done');
    expect(older).toHaveTextContent(`finished ${localTime(backend.runs[1].finished_at_ms ?? 0)}`);
    const order = screen.getAllByTestId(/^run-\d+$/).map((el) => el.dataset.testid);
    expect(order).toEqual(['run-2', 'run-1']);
    expect(backend.argsOf('jobs')).toEqual([{ limit: 50 }]);
  });

  test('with no runs the page says so', async () => {
    fakeBackend();
    openActivity();
    expect(await screen.findByText(/^No runs yet\./)).toBeVisible();
    expect(await screen.findByText(/^No schedules yet\./)).toBeVisible();
  });

  test('errors are said with what they mean: a retry coming, the person needed, or failed', async () => {
    const backend = fakeBackend();
    const retryAt = Date.now() + 5 * 60_000;
    backend.runs = [
      aRun({
        id: 3,
        state: 'sleeping',
        error: 'the server answered 503',
        error_class: 'transient',
        next_at_ms: retryAt,
        finished_at_ms: null,
      }),
      aRun({
        id: 2,
        kind: 'sync-pair',
        state: 'failed',
        error: 'the password was refused (401)',
        error_class: 'needs_attention',
      }),
      aRun({ id: 1, state: 'failed', error: 'not a feed', error_class: 'permanent' }),
    ];
    openActivity();

    expect(within(await row(3)).getByTestId('run-error')).toHaveTextContent(
      `will retry at ${localTime(retryAt)}: the server answered 503`,
    );
    expect(within(await row(2)).getByTestId('run-error')).toHaveTextContent(
      'needs you: the password was refused (401)',
    );
    expect(within(await row(2)).getByTestId('run-state')).toHaveTextContent('Needs you');
    expect(within(await row(1)).getByTestId('run-error')).toHaveTextContent('failed: not a feed');
  });

  test('runs that cannot be read are explained', async () => {
    fakeBackend({ jobs: fails('database is locked'), schedules: fails('database is locked') });
    openActivity();
    expect(await screen.findByText('Could not read the runs: database is locked')).toBeVisible();
    expect(
      await screen.findByText('Could not read the schedules: database is locked'),
    ).toBeVisible();
  });

  test('details show the steps and attempts', async () => {
    const backend = fakeBackend();
    const at = Date.now() - 600_000;
    backend.runs = [aRun({ id: 7, state: 'sleeping', attempts: 2, finished_at_ms: null })];
    backend.details[7] = {
      steps: [
        { seq: 0, name: 'fetch', attempts: 1, completed_at_ms: at, result: null },
        { seq: 1, name: 'store', attempts: 2, completed_at_ms: null, result: null },
      ],
      attempts: [
        {
          attempt: 1,
          worker: 'app-1-a',
          started_at_ms: at,
          ended_at_ms: at + 1000,
          outcome: 'retry',
          step: 'store',
          error: 'disk busy',
          error_class: 'transient',
          next_retry_at_ms: at + 60_000,
        },
      ],
    };
    const user = userEvent.setup();
    openActivity();

    await user.click(within(await row(7)).getByRole('button', { name: 'Details' }));
    const steps = await within(await row(7)).findByRole('heading', { name: 'Steps' });
    const detail = steps.parentElement as HTMLElement;
    expect(detail).toHaveTextContent(`fetch: done ${localTime(at)} (1 attempt)`);
    expect(detail).toHaveTextContent('store: not done (2 attempts)');
    expect(detail).toHaveTextContent(
      `#1 failed, retried, ${localTime(at)} to ${localTime(at + 1000)}`,
    );
    expect(detail).toHaveTextContent('at step store');
    // Its retry is in the past: the attempt just failed.
    expect(detail).toHaveTextContent('failed: disk busy');
    expect(backend.argsOf('job')).toEqual([{ id: 7 }]);
  });
});

describe('actions', () => {
  test('Retry now calls retry_job and the row shows the run Rust returns', async () => {
    const backend = fakeBackend();
    backend.runs = [
      aRun({ id: 4, state: 'failed', error: 'not a feed', error_class: 'permanent' }),
    ];
    const user = userEvent.setup();
    openActivity();

    const retry = within(await row(4)).getByRole('button', { name: 'Retry now' });
    expect(retry).toHaveAttribute('data-action', 'retry');
    expect(within(await row(4)).queryByRole('button', { name: 'Cancel' })).toBeNull();
    await user.click(retry);
    await stateOf(4, 'Waiting');
    expect(backend.argsOf('retry_job')).toEqual([{ id: 4 }]);
    expect(within(await row(4)).queryByTestId('run-error')).toBeNull();
    expect(within(await row(4)).getByRole('button', { name: 'Cancel' })).toHaveAttribute(
      'data-action',
      'cancel',
    );
  });

  test('Cancel calls cancel_job; a refusal is explained where it was asked', async () => {
    const backend = fakeBackend();
    backend.runs = [aRun({ id: 5, state: 'pending', started_at_ms: null, finished_at_ms: null })];
    const user = userEvent.setup();
    openActivity();

    await user.click(within(await row(5)).getByRole('button', { name: 'Cancel' }));
    await stateOf(5, 'Cancelled');
    expect(backend.argsOf('cancel_job')).toEqual([{ id: 5 }]);

    fakeBackend({ retry_job: fails('run 5 cannot be retried: run 6 with the same key is open') });
    await user.click(within(await row(5)).getByRole('button', { name: 'Retry now' }));
    expect(within(await row(5)).getByRole('alert')).toHaveTextContent(
      'Could not retry this run: run 5 cannot be retried: run 6 with the same key is open',
    );
  });
});

describe('live', () => {
  test('a job-event changes the row at once, then the row is read again', async () => {
    const backend = fakeBackend();
    backend.runs = [aRun({ id: 8, state: 'pending', started_at_ms: null, finished_at_ms: null })];
    openActivity();
    await stateOf(8, 'Waiting');
    await settle();
    const listed = backend.argsOf('jobs').length;

    backend.runs = [aRun({ id: 8, state: 'running', attempts: 1, finished_at_ms: null })];
    await jobEvent({
      type: 'run',
      id: 8,
      kind: 'feeds.refresh',
      state: 'running',
      error: null,
      next_at_ms: null,
    });
    await stateOf(8, 'Running');
    await waitFor(() => expect(backend.argsOf('job')).toEqual([{ id: 8 }]));
    expect(await row(8)).toHaveTextContent('1 attempt');
    // No reload of the list, no polling.
    expect(backend.argsOf('jobs')).toHaveLength(listed);
  });

  test('a run started meanwhile appears on top; an error arrives with its class', async () => {
    const backend = fakeBackend();
    backend.runs = [aRun({ id: 1 })];
    openActivity();
    await row(1);
    await settle();

    const retryAt = Date.now() + 60_000;
    const fresh = aRun({
      id: 2,
      kind: 'sync-pair',
      state: 'sleeping',
      error: 'connection refused',
      error_class: 'transient',
      next_at_ms: retryAt,
      finished_at_ms: null,
    });
    backend.runs = [fresh, ...backend.runs];
    await jobEvent({
      type: 'run',
      id: 2,
      kind: 'sync-pair',
      state: 'sleeping',
      error: 'connection refused',
      next_at_ms: retryAt,
    });
    expect(within(await row(2)).getByTestId('run-error')).toHaveTextContent(
      `will retry at ${localTime(retryAt)}: connection refused`,
    );
    const order = screen.getAllByTestId(/^run-\d+$/).map((el) => el.dataset.testid);
    expect(order).toEqual(['run-2', 'run-1']);
  });

  test('a schedule event reads the schedules again', async () => {
    const backend = fakeBackend();
    backend.schedules = [aSchedule()];
    openActivity();
    expect(await screen.findByTestId('schedule-feeds')).toHaveTextContent(
      `Feed refresh, every 15 min`,
    );
    expect(screen.getByTestId('schedule-feeds')).toHaveTextContent(
      `next run at ${localTime(IN_AN_HOUR)}`,
    );
    await settle();

    backend.schedules = [aSchedule({ paused: true })];
    await jobEvent({ type: 'schedule', name: 'feeds', change: 'paused' });
    await waitFor(() => expect(screen.getByTestId('schedule-feeds')).toHaveTextContent('paused'));

    backend.schedules = [aSchedule({ attention: 'the password was refused' })];
    await jobEvent({ type: 'schedule', name: 'feeds', change: 'attention' });
    await waitFor(() =>
      expect(screen.getByTestId('schedule-feeds')).toHaveTextContent(
        'needs you: the password was refused',
      ),
    );
  });

  test('a change in another process (seen in the status) reads the runs again', async () => {
    const backend = fakeBackend();
    openActivity();
    expect(await screen.findByText(/^No runs yet\./)).toBeVisible();
    await settle();

    backend.runs = [aRun({ id: 9, kind: 'sync-pair' })];
    await emit('status-changed', { ...IDLE, jobs: { pending: 0, running: 1, failed: 0 } });
    expect(await row(9)).toHaveTextContent('Sync');
  });
});
