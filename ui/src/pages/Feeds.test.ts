// The Feeds page as a person meets it: subscriptions with unread counts, status and the next
// check; adding one (and being told why not); reading an entry marks it read; links leave the
// window for the browser; refreshes and settings change what is shown.
import { emit } from '@tauri-apps/api/event';
import { render, screen, waitFor, within } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import { describe, expect, test } from 'vitest';
import App from '../App.svelte';
import { aFeed, anEntry, fails, fakeBackend, IDLE, NOTHING_NEW } from '../test/backend';

function openFeeds() {
  window.location.hash = '#/feeds';
  render(App);
}

async function feedRow(id: number): Promise<HTMLElement> {
  return screen.findByTestId(`feed-${id}`);
}

/** Lets pending IPC promises (such as the event subscription) settle. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

describe('subscriptions', () => {
  test('each feed shows its unread count, its status and its next check with the reason', async () => {
    const backend = fakeBackend();
    backend.feeds = [
      aFeed({ id: 1, title: 'Blog' }),
      aFeed({
        id: 2,
        title: 'Gone quiet',
        status: 'failing',
        last_error: 'the server answered 500',
        suggestion: 'it is probably temporary; Concord keeps trying, less often',
        next_reason: 'next at 16:30: failing for 2 h, retrying less often',
      }),
    ];
    backend.entries = [anEntry({ id: 10 }), anEntry({ id: 11 }), anEntry({ id: 12, read: true })];
    openFeeds();

    const blog = await feedRow(1);
    await waitFor(() => expect(within(blog).getByTestId('unread')).toHaveTextContent('2'));
    expect(within(blog).getByTestId('feed-status')).toHaveTextContent('OK');
    expect(within(blog).getByTestId('next-check')).toHaveTextContent(
      'Next check at 14:05: posts about daily',
    );
    const failing = await feedRow(2);
    expect(within(failing).queryByTestId('unread')).toBeNull();
    expect(within(failing).getByTestId('feed-status')).toHaveTextContent('Failing');
    expect(within(failing).getByTestId('feed-error')).toHaveTextContent(
      'the server answered 500 — it is probably temporary; Concord keeps trying, less often',
    );
    expect(within(failing).getByTestId('next-check')).toHaveTextContent(
      'Next check at 16:30: failing for 2 h, retrying less often',
    );
    expect(await screen.findByTestId('entry-10')).toHaveTextContent('Hello');
  });

  test('with no feeds the page says how to add one', async () => {
    fakeBackend();
    openFeeds();
    expect(await screen.findByText(/^No feeds yet\./)).toBeVisible();
  });

  test('adding a feed sends its address and lists it', async () => {
    const backend = fakeBackend();
    const user = userEvent.setup();
    openFeeds();
    await screen.findByText(/^No feeds yet\./);

    await user.type(screen.getByLabelText('Feed address'), 'https://news.example/rss');
    await user.click(screen.getByRole('button', { name: 'Add' }));
    expect(await feedRow(1)).toHaveTextContent('https://news.example/rss');
    expect(backend.argsOf('add_feed')).toEqual([{ url: 'https://news.example/rss' }]);
    expect(screen.getByLabelText('Feed address')).toHaveValue('');
  });

  test('a refused address is explained where it was typed, and nothing is listed', async () => {
    fakeBackend({
      add_feed: fails(
        'Not subscribed: no feed in this page — open it in a browser and look for the site’s RSS or Atom link',
      ),
    });
    const user = userEvent.setup();
    openFeeds();
    await screen.findByText(/^No feeds yet\./);

    await user.type(screen.getByLabelText('Feed address'), 'https://www.example/');
    await user.click(screen.getByRole('button', { name: 'Add' }));
    expect(await screen.findByRole('alert')).toHaveTextContent(
      'Could not add the feed: Not subscribed: no feed in this page — open it in a browser',
    );
    expect(screen.queryByTestId(/^feed-\d+$/)).toBeNull();
    expect(screen.getByLabelText('Feed address')).toHaveValue('https://www.example/');
  });

  test('feeds that cannot be read are explained', async () => {
    fakeBackend({ feeds: fails('database is locked'), feed_entries: fails('database is locked') });
    openFeeds();
    expect(await screen.findByText('Could not read the feeds: database is locked')).toBeVisible();
    expect(await screen.findByText('Could not read the entries: database is locked')).toBeVisible();
  });
});

describe('reading', () => {
  test('opening an entry shows its HTML in the reader and marks it read', async () => {
    const backend = fakeBackend();
    backend.feeds = [aFeed({ id: 1 })];
    backend.entries = [anEntry({ id: 10 }), anEntry({ id: 11, title: 'Second' })];
    const user = userEvent.setup();
    openFeeds();
    await waitFor(async () =>
      expect(within(await feedRow(1)).getByTestId('unread')).toHaveTextContent('2'),
    );

    await user.click(within(await screen.findByTestId('entry-10')).getByRole('button'));
    const reader = screen.getByTestId('reader');
    await waitFor(() => expect(reader).toHaveTextContent('Hello more'));
    expect(within(reader).getByRole('link', { name: 'more' })).toHaveAttribute(
      'href',
      'https://blog.example/more',
    );
    expect(backend.argsOf('feed_entry')).toEqual([{ id: 10, feedId: 1 }]);
    expect(backend.argsOf('mark_read')).toEqual([{ ids: [10], read: true }]);
    await waitFor(async () =>
      expect(within(await feedRow(1)).getByTestId('unread')).toHaveTextContent('1'),
    );
    expect(screen.getByTestId('entry-10')).toHaveAttribute('data-read', 'true');

    await user.click(within(reader).getByRole('button', { name: 'Mark unread' }));
    await waitFor(async () =>
      expect(within(await feedRow(1)).getByTestId('unread')).toHaveTextContent('2'),
    );
    expect(backend.argsOf('mark_read')[1]).toEqual({ ids: [10], read: false });
  });

  test('a link in an entry opens in the browser, never in the window', async () => {
    const backend = fakeBackend();
    backend.feeds = [aFeed({ id: 1 })];
    backend.entries = [
      anEntry({
        id: 10,
        html: '<p><a href="https://blog.example/more">more</a> <a href="/relative">here</a></p>',
      }),
    ];
    const user = userEvent.setup();
    openFeeds();
    await user.click(within(await screen.findByTestId('entry-10')).getByRole('button'));
    const reader = screen.getByTestId('reader');
    const link = await within(reader).findByRole('link', { name: 'more' });
    const before = window.location.href;

    await user.click(link);
    await user.click(within(reader).getByRole('link', { name: 'here' }));
    await waitFor(() =>
      expect(backend.argsOf('open_link')).toEqual([{ url: 'https://blog.example/more' }]),
    );
    expect(window.location.href).toBe(before);
  });

  test('an entry the feed no longer keeps is explained in the reader', async () => {
    const backend = fakeBackend({ feed_entry: fails('entry 10 is gone') });
    backend.feeds = [aFeed({ id: 1 })];
    backend.entries = [anEntry({ id: 10 })];
    const user = userEvent.setup();
    openFeeds();
    await user.click(within(await screen.findByTestId('entry-10')).getByRole('button'));
    expect(await within(screen.getByTestId('reader')).findByRole('alert')).toHaveTextContent(
      'Could not open the entry: entry 10 is gone',
    );
    expect(backend.argsOf('mark_read')).toEqual([]);
  });
});

describe('refresh and settings', () => {
  test('Refresh now says what it did; a feeds-refreshed event updates the counts', async () => {
    const backend = fakeBackend();
    backend.feeds = [aFeed({ id: 1 })];
    const user = userEvent.setup();
    openFeeds();
    expect(await feedRow(1)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Refresh now' }));
    expect(await screen.findByTestId('refresh-result')).toHaveTextContent('Checked 1 feed, 0 new.');
    await settle();

    // A scheduled refresh elsewhere in the app found three entries.
    backend.entries = [anEntry({ id: 20 }), anEntry({ id: 21 }), anEntry({ id: 22 })];
    await emit('feeds-refreshed', { ...NOTHING_NEW, new_entries: 3 });
    await waitFor(async () =>
      expect(within(await feedRow(1)).getByTestId('unread')).toHaveTextContent('3'),
    );
    expect(await screen.findByTestId('entry-22')).toBeInTheDocument();
  });

  test('a change seen in the status (another process) reads the feeds again', async () => {
    const backend = fakeBackend();
    backend.feeds = [aFeed({ id: 1 })];
    openFeeds();
    expect(await feedRow(1)).toBeInTheDocument();
    await settle();

    backend.entries = [anEntry({ id: 30 })];
    await emit('status-changed', { ...IDLE, feeds: 1, unread: 1 });
    await waitFor(async () =>
      expect(within(await feedRow(1)).getByTestId('unread')).toHaveTextContent('1'),
    );
  });

  test('a feed can be muted and given its own interval; a refused interval says why', async () => {
    const backend = fakeBackend();
    backend.feeds = [aFeed({ id: 1 })];
    const user = userEvent.setup();
    openFeeds();
    await user.click(within(await feedRow(1)).getByRole('button', { name: 'Settings' }));

    await user.click(screen.getByLabelText('Mute notifications'));
    await waitFor(async () => expect(await feedRow(1)).toHaveTextContent('OK (muted)'));
    expect(backend.argsOf('set_feed_muted')).toEqual([{ id: 1, muted: true }]);

    const interval = screen.getByLabelText(/^Check every/);
    await user.type(interval, '120');
    await user.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() =>
      expect(backend.argsOf('set_feed_interval')).toEqual([{ id: 1, minutes: 120 }]),
    );
    expect(backend.feeds[0].interval_override_s).toBe(7200);

    fakeBackend({ set_feed_interval: fails('Give an interval between 5 and 10080 minutes') });
    await user.clear(interval);
    await user.type(interval, '1');
    await user.click(screen.getByRole('button', { name: 'Save' }));
    expect(await screen.findByRole('alert')).toHaveTextContent(
      'Could not change the interval: Give an interval between 5 and 10080 minutes',
    );
  });

  test('a notification action opens the Feeds page', async () => {
    fakeBackend();
    render(App);
    expect(await screen.findByTestId('page-accounts')).toBeInTheDocument();
    await settle();
    await emit('open-page', 'feeds');
    expect(await screen.findByTestId('page-feeds')).toBeInTheDocument();
  });
});
