// The Pairs page as a person meets it: each pair's sides, last and next sync, counts and
// problems; Sync now says what it did (or why not); Remove only after a confirmation.
import { emit } from '@tauri-apps/api/event';
import { render, screen, waitFor, within } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import { describe, expect, test } from 'vitest';
import App from '../App.svelte';
import { reportLine } from '../lib/sync';
import { aPair, fails, fakeBackend, IDLE, ONE_CREATED, syncCounts } from '../test/backend';

function openPairs() {
  window.location.hash = '#/pairs';
  render(App);
}

function action(root: HTMLElement, name: string): HTMLButtonElement {
  const found = root.querySelector<HTMLButtonElement>(`[data-action="${name}"]`);
  if (found === null) throw new Error(`no [data-action=${name}]`);
  return found;
}

/** Lets pending IPC promises (such as the event subscription) settle. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

describe('the list', () => {
  test('each pair shows its sides, counts, last and next sync, and its problem', async () => {
    const backend = fakeBackend();
    backend.pairs = [
      aPair({ id: 1, items: 3, conflicts: 1 }),
      aPair({
        id: 2,
        name: 'new-one',
        last_sync_at_ms: null,
        items: 0,
        last_error: 'the server at https://dav.example/ rejected the username or password',
      }),
      aPair({ id: 3, name: 'stopped', stopped_reason: 'side a is suddenly empty', paused: true }),
    ];
    openPairs();

    const first = await screen.findByTestId('pair-1');
    expect(first).toHaveTextContent('dav-calendar');
    expect(within(first).getByTestId('pair-settings')).toHaveTextContent(/^two-way · /);
    expect(first).toHaveTextContent(
      'a: CalDAV server “Calendar”: https://dav.example/ada/calendar/',
    );
    expect(within(first).getByTestId('pair-counts')).toHaveTextContent('3 items · 1 conflict');
    expect(within(first).getByTestId('last-sync')).toHaveTextContent(/^Last synced /);
    expect(within(first).getByTestId('next-sync')).toHaveTextContent(/^Next sync /);
    expect(within(first).queryByTestId('pair-error')).toBeNull();

    const second = screen.getByTestId('pair-2');
    expect(within(second).getByTestId('last-sync')).toHaveTextContent('Not synced yet');
    expect(within(second).getByTestId('pair-error')).toHaveTextContent('rejected the username');
    const third = screen.getByTestId('pair-3');
    expect(within(third).getByTestId('pair-error')).toHaveTextContent(
      'Stopped: side a is suddenly empty',
    );
    expect(within(third).getByTestId('next-sync')).toHaveTextContent('Paused');
  });

  test('with no pairs the page says where they come from', async () => {
    fakeBackend();
    openPairs();
    expect(await screen.findByText(/^No pairs yet\./)).toBeInTheDocument();
  });

  test('a change of the status (a sync elsewhere) reads the pairs again', async () => {
    const backend = fakeBackend();
    backend.pairs = [aPair({ items: 0 })];
    openPairs();
    await screen.findByTestId('pair-1');
    await settle();
    backend.pairs = [aPair({ items: 5 })];
    await emit('status-changed', { ...IDLE, pairs: 1, last_sync_at: '2026-11-22T08:00:00Z' });
    await waitFor(() =>
      expect(within(screen.getByTestId('pair-1')).getByTestId('pair-counts')).toHaveTextContent(
        '5 items',
      ),
    );
  });

  test('a sync run of the app that ends reads the pairs again', async () => {
    const backend = fakeBackend();
    backend.pairs = [aPair({ items: 0 })];
    openPairs();
    await screen.findByTestId('pair-1');
    await settle();
    backend.pairs = [aPair({ items: 2 })];
    await emit('job-event', {
      type: 'run',
      id: 7,
      kind: 'sync-pair',
      state: 'completed',
      error: null,
      next_at_ms: null,
    });
    await waitFor(() =>
      expect(within(screen.getByTestId('pair-1')).getByTestId('pair-counts')).toHaveTextContent(
        '2 items',
      ),
    );
  });
});

describe('actions', () => {
  test('Sync now says what the sync did and reads the pair again', async () => {
    const backend = fakeBackend();
    backend.pairs = [aPair({ items: 0, last_sync_at_ms: null })];
    const user = userEvent.setup();
    openPairs();
    const row = await screen.findByTestId('pair-1');
    backend.pairs = [aPair({ items: 1 })];
    await user.click(action(row, 'sync'));
    expect(await within(row).findByTestId('sync-result')).toHaveTextContent(
      'Synced: 1 created on side b',
    );
    expect(backend.argsOf('sync_pair')).toEqual([{ name: 'dav-calendar', allowDeletes: false }]);
    await waitFor(() => expect(within(row).getByTestId('pair-counts')).toHaveTextContent('1 item'));
  });

  test('a failed sync is said in words', async () => {
    const backend = fakeBackend({ sync_pair: fails('the sync run failed: server gone') });
    backend.pairs = [aPair()];
    const user = userEvent.setup();
    openPairs();
    const row = await screen.findByTestId('pair-1');
    await user.click(action(row, 'sync'));
    expect(await within(row).findByRole('alert')).toHaveTextContent('server gone');
  });

  test('Remove asks first; only the confirmation removes', async () => {
    const backend = fakeBackend();
    backend.pairs = [aPair()];
    const user = userEvent.setup();
    openPairs();
    const row = await screen.findByTestId('pair-1');
    await user.click(action(row, 'remove'));
    expect(backend.argsOf('remove_pair')).toEqual([]);
    await user.click(action(row, 'confirm-remove'));
    await waitFor(() => expect(screen.queryByTestId('pair-1')).toBeNull());
    expect(backend.argsOf('remove_pair')).toEqual([{ name: 'dav-calendar' }]);
  });
});

describe('a stopped pair', () => {
  test('offers the go-ahead past the stop, and only then sends it', async () => {
    const backend = fakeBackend();
    backend.pairs = [aPair({ stopped_reason: 'side a is suddenly empty', paused: true })];
    const user = userEvent.setup();
    openPairs();
    const row = await screen.findByTestId('pair-1');
    expect(row).toHaveTextContent('deleted version stays in the item history');
    await user.click(action(row, 'allow-deletes'));
    await within(row).findByTestId('sync-result');
    expect(backend.argsOf('sync_pair')).toEqual([{ name: 'dav-calendar', allowDeletes: true }]);
  });

  test('a pair that is fine has no such button', async () => {
    fakeBackend().pairs = [aPair()];
    openPairs();
    const row = await screen.findByTestId('pair-1');
    expect(row.querySelector('[data-action="allow-deletes"]')).toBeNull();
  });
});

describe('settings', () => {
  test('the row says how the pair syncs', async () => {
    fakeBackend().pairs = [aPair({ direction: 'a-to-b', every_minutes: 60 })];
    openPairs();
    const row = await screen.findByTestId('pair-1');
    expect(within(row).getByTestId('pair-settings')).toHaveTextContent(
      'one-way, to the folder · every 60 minutes',
    );
  });

  test('direction, conflict policy and interval are saved together', async () => {
    const backend = fakeBackend();
    backend.pairs = [aPair()];
    const user = userEvent.setup();
    openPairs();
    const row = await screen.findByTestId('pair-1');
    expect(within(row).getByTestId('pair-settings')).toHaveTextContent(
      'two-way · conflicts: ask me · every 15 minutes',
    );
    await user.click(action(row, 'settings'));
    const form = within(row).getByTestId('pair-settings-form');
    await user.selectOptions(within(form).getByLabelText(/same thing/), 'newest-wins');
    const every = within(form).getByLabelText(/every/);
    await user.clear(every);
    await user.type(every, '30');
    await user.click(action(row, 'save-settings'));
    await waitFor(() =>
      expect(within(row).getByTestId('pair-settings')).toHaveTextContent(
        'two-way · conflicts: newest wins · every 30 minutes',
      ),
    );
    expect(backend.argsOf('set_pair')).toEqual([
      {
        name: 'dav-calendar',
        direction: 'two-way',
        conflictPolicy: 'newest-wins',
        everyMinutes: 30,
      },
    ]);
    expect(within(row).queryByTestId('pair-settings-form')).toBeNull();
  });

  test('a webcal side offers only the way from it', async () => {
    fakeBackend().pairs = [
      aPair({
        a: { kind: 'webcal', location: 'https://example.org/holidays.ics', display_name: null },
        direction: 'a-to-b',
      }),
    ];
    const user = userEvent.setup();
    openPairs();
    const row = await screen.findByTestId('pair-1');
    await user.click(action(row, 'settings'));
    const options = within(row).getAllByRole('option') as HTMLOptionElement[];
    const enabled = options.filter((o) => !o.disabled && o.closest('select')?.name === 'direction');
    expect(enabled.map((o) => o.value)).toEqual(['a-to-b']);
  });

  test('a refused change is said, and the form stays open', async () => {
    const backend = fakeBackend({
      set_pair: fails('Sync every 0 minutes? Choose between 1 minute'),
    });
    backend.pairs = [aPair()];
    const user = userEvent.setup();
    openPairs();
    const row = await screen.findByTestId('pair-1');
    await user.click(action(row, 'settings'));
    await user.click(action(row, 'save-settings'));
    expect(await within(row).findByTestId('settings-error')).toHaveTextContent('Choose between');
    expect(within(row).getByTestId('pair-settings-form')).toBeInTheDocument();
  });
});

describe('wording', () => {
  test('a stopped sync says why, before any count', () => {
    expect(reportLine({ ...ONE_CREATED, stopped: 'side a is suddenly empty' })).toBe(
      'Stopped: side a is suddenly empty',
    );
    const nothing = { ...ONE_CREATED, counts: { ...ONE_CREATED.counts, create_b: 0 } };
    expect(reportLine(nothing)).toBe('Synced: nothing to do');
  });

  test('writes not made are said as such, never counted as done', () => {
    const report = {
      ...ONE_CREATED,
      counts: syncCounts({ update_a: 1 }),
      planned: syncCounts({ update_a: 2, delete_a: 1, create_b: 1 }),
      deferred: ['update on a: Standup (changed meanwhile; re-read next sync)'],
      deferred_counts: syncCounts({ update_a: 1, delete_a: 1 }),
      refused: ['create on b: Lunch (lunch.ics was not written: the server refused it (HTTP 403))'],
      refused_counts: syncCounts({ create_b: 1 }),
    };
    expect(reportLine(report)).toBe(
      'Synced: 1 updated on side a, ' +
        '1 update on side a and 1 delete on side a deferred (changed meanwhile, retried next sync), ' +
        '1 create on side b refused (create on b: Lunch (lunch.ics was not written: the server ' +
        'refused it (HTTP 403)))',
    );
  });
});
