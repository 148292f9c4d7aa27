// The settings window as a user meets it, with the Tauri shell replaced by a fake backend.
import { emit } from '@tauri-apps/api/event';
import { render, screen, waitFor, within } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import { describe, expect, test } from 'vitest';
import App from './App.svelte';
import type { Status } from './lib/ipc';
import { fails, fakeBackend, IDLE, INFO } from './test/backend';

const PAGES = [
  ['accounts', 'Accounts'],
  ['pairs', 'Pairs'],
  ['conflicts', 'Conflicts'],
  ['feeds', 'Feeds'],
  ['activity', 'Activity'],
  ['preferences', 'Preferences'],
] as const;

function sidebarLink(page: string): HTMLElement {
  const link = document.querySelector<HTMLElement>(`nav [data-page="${page}"]`);
  if (link === null) throw new Error(`no sidebar link for ${page}`);
  return link;
}

function statusLine(): HTMLElement {
  return screen.getByTestId('status-line');
}

async function showsLine(line: string) {
  await waitFor(() => expect(statusLine()).toHaveTextContent(line));
}

/** Lets pending IPC promises (such as the event subscription) settle. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function openAt(page: string) {
  window.location.hash = `#/${page}`;
  render(App);
}

async function autostartBox(): Promise<HTMLInputElement> {
  const box = await screen.findByLabelText<HTMLInputElement>('Start Concord when I log in');
  await waitFor(() => expect(box).toBeEnabled());
  return box;
}

describe('navigation', () => {
  test('opens Accounts first and reaches every page from the sidebar', async () => {
    fakeBackend();
    const user = userEvent.setup();
    render(App);

    const first = screen.getByTestId('page-accounts');
    expect(within(first).getByRole('heading', { level: 1 })).toHaveTextContent('Accounts');
    expect(sidebarLink('accounts')).toHaveAttribute('aria-current', 'page');

    for (const [page, title] of PAGES) {
      await user.click(sidebarLink(page));
      const root = await screen.findByTestId(`page-${page}`);
      const heading = within(root).getByRole('heading', { level: 1 });
      expect(heading).toHaveTextContent(title);
      expect(window.location.hash).toBe(`#/${page}`);
      expect(sidebarLink(page)).toHaveAttribute('aria-current', 'page');
      expect(screen.getAllByRole('heading', { level: 1 })).toHaveLength(1);
      // Focus follows the navigation, so a screen reader announces the new page.
      await waitFor(() => expect(heading).toHaveFocus());
    }
  });

  test('the address hash picks the page, and an unknown one falls back to Accounts', async () => {
    fakeBackend();
    openAt('feeds');
    expect(screen.getByRole('heading', { level: 1 })).toHaveTextContent('Feeds');

    window.location.hash = '#/nowhere';
    expect(await screen.findByTestId('page-accounts')).toBeInTheDocument();
  });
});

describe('status strip', () => {
  test('shows the line from Rust and follows status-changed events', async () => {
    fakeBackend();
    render(App);
    await showsLine('Idle: nothing configured yet');
    await settle();

    const syncing: Status = { ...IDLE, state: 'syncing', line: 'Syncing 2 pairs', conflicts: 3 };
    await emit('status-changed', syncing);
    await showsLine('Syncing 2 pairs');
    expect(sidebarLink('conflicts')).toHaveTextContent('Conflicts 3');
  });

  test('an event that overtakes the first answer is not undone by it', async () => {
    let answer: (status: Status) => void = () => {};
    fakeBackend({ status: () => new Promise<Status>((resolve) => (answer = resolve)) });
    render(App);
    expect(statusLine()).toHaveTextContent('Reading status…');
    await settle();

    await emit('status-changed', { ...IDLE, line: 'Synced just now' });
    await showsLine('Synced just now');
    answer({ ...IDLE, line: 'Stale answer' });
    await settle();
    expect(statusLine()).toHaveTextContent('Synced just now');
  });

  test('Sync now asks Rust and shows the status it returns', async () => {
    const backend = fakeBackend({
      sync_now: () => ({ ...IDLE, state: 'syncing', line: 'Syncing' }),
    });
    const user = userEvent.setup();
    render(App);
    await showsLine('Idle');

    await user.click(screen.getByRole('button', { name: 'Sync now' }));
    await showsLine('Syncing');
    expect(backend.argsOf('sync_now')).toHaveLength(1);
  });
});

describe('preferences', () => {
  test('toggling autostart calls set_autostart and shows the answer', async () => {
    const backend = fakeBackend();
    const user = userEvent.setup();
    openAt('preferences');
    const box = await autostartBox();
    expect(box).toHaveAttribute('id', 'autostart');
    expect(box).not.toBeChecked();

    await user.click(box);
    await waitFor(() => expect(box).toBeChecked());
    expect(backend.argsOf('set_autostart')).toEqual([{ enabled: true }]);
    expect(backend.autostart).toBe(true);

    await user.click(box);
    await waitFor(() => expect(box).not.toBeChecked());
    expect(backend.argsOf('set_autostart')).toEqual([{ enabled: true }, { enabled: false }]);
  });

  test('autostart shows what Rust answers, not what was clicked', async () => {
    const backend = fakeBackend({ set_autostart: () => false });
    const user = userEvent.setup();
    openAt('preferences');
    const box = await autostartBox();

    await user.click(box);
    await waitFor(() => expect(backend.argsOf('set_autostart')).toEqual([{ enabled: true }]));
    await waitFor(() => expect(box).toBeEnabled());
    expect(box).not.toBeChecked();
  });

  test('the autostart box starts out as Rust reports it', async () => {
    const backend = fakeBackend();
    backend.autostart = true;
    openAt('preferences');
    expect(await autostartBox()).toBeChecked();
  });

  test('Pause syncing calls set_paused and the status strip follows', async () => {
    const backend = fakeBackend();
    const user = userEvent.setup();
    openAt('preferences');
    await showsLine('Idle');
    const pause = screen.getByRole('switch', { name: 'Pause syncing' });
    expect(pause).not.toBeChecked();

    await user.click(pause);
    await showsLine('Paused');
    expect(pause).toBeChecked();
    expect(backend.argsOf('set_paused')).toEqual([{ paused: true }]);
  });

  test('shows the data directory and the database path', async () => {
    fakeBackend();
    openAt('preferences');
    expect(await screen.findByTestId('data-dir')).toHaveTextContent(INFO.data_dir);
    expect(screen.getByTestId('database-path')).toHaveTextContent(INFO.database);
  });
});

describe('errors are shown, never swallowed', () => {
  test('a failed autostart change is explained and the box flips back', async () => {
    fakeBackend({
      set_autostart: fails('cannot write ~/.config/autostart/concord.desktop: permission denied'),
    });
    const user = userEvent.setup();
    openAt('preferences');
    const box = await autostartBox();

    await user.click(box);
    expect(await screen.findByRole('alert')).toHaveTextContent(
      'Could not change autostart: cannot write ~/.config/autostart/concord.desktop: permission denied',
    );
    expect(box).not.toBeChecked();
    expect(box).toBeEnabled();
  });

  test('a status that cannot be read is said so in the strip', async () => {
    fakeBackend({ status: fails('database is locked') });
    render(App);
    expect(await screen.findByRole('alert')).toHaveTextContent(
      "Could not read Concord's status: database is locked",
    );
    expect(statusLine()).toHaveTextContent('Status unavailable');
  });

  test('a failed Sync now and a failed pause are each explained', async () => {
    fakeBackend({ sync_now: fails('a sync is already running'), set_paused: fails('disk full') });
    const user = userEvent.setup();
    openAt('preferences');
    await showsLine('Idle');

    await user.click(screen.getByRole('button', { name: 'Sync now' }));
    expect(
      await screen.findByText('Could not start a sync: a sync is already running'),
    ).toBeVisible();

    const pause = screen.getByRole('switch', { name: 'Pause syncing' });
    await user.click(pause);
    expect(await screen.findByText('Could not pause syncing: disk full')).toBeVisible();
    expect(pause).not.toBeChecked();
    expect(statusLine()).toHaveTextContent('Idle: nothing configured yet');
  });

  test('failures to read the settings are shown on Preferences', async () => {
    fakeBackend({
      autostart_enabled: fails('no session bus'),
      app_info: fails('no home directory'),
    });
    openAt('preferences');
    expect(
      await screen.findByText('Could not read the autostart setting: no session bus'),
    ).toBeVisible();
    expect(
      await screen.findByText('Could not read where Concord keeps its data: no home directory'),
    ).toBeVisible();
    expect(screen.getByLabelText('Start Concord when I log in')).toBeDisabled();
  });

  test('outside the app, the window says it cannot reach Concord', async () => {
    render(App);
    await waitFor(() =>
      expect(screen.getAllByRole('alert')[0]).toHaveTextContent(
        "Could not read Concord's status: This window is not running inside Concord",
      ),
    );
  });
});
