// The Accounts page as a person meets it: adding a server (the password travels to Rust, which
// keeps it in the keyring), being told why not, testing the connection, discovering and choosing
// collections to pair (or all of them, and new ones as they appear), pairing collections of two
// accounts, and removing only after a confirmation.
import { render, screen, waitFor, within } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import { describe, expect, test } from 'vitest';
import App from '../App.svelte';
import { CALENDAR, aMapping, fails, fakeBackend } from '../test/backend';

function openAccounts() {
  window.location.hash = '#/accounts';
  render(App);
}

function field(id: string): HTMLInputElement {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`no #${id}`);
  return found as HTMLInputElement;
}

function action(root: HTMLElement, name: string): HTMLButtonElement {
  const found = root.querySelector<HTMLButtonElement>(`[data-action="${name}"]`);
  if (found === null) throw new Error(`no [data-action=${name}]`);
  return found;
}

describe('adding', () => {
  test('a CalDAV account is added with its password and listed', async () => {
    const backend = fakeBackend();
    const user = userEvent.setup();
    openAccounts();
    expect(await screen.findByText(/^No accounts yet\./)).toBeInTheDocument();

    await user.selectOptions(field('account-kind'), 'caldav');
    await user.type(field('account-url'), 'https://dav.example/');
    await user.type(field('account-username'), 'ada');
    await user.type(field('account-password'), 's3cret');
    await user.type(field('account-name'), 'work');
    await user.click(action(document.body, 'add'));

    const row = await screen.findByTestId('account-1');
    expect(row).toHaveTextContent('work');
    expect(row).toHaveTextContent('https://dav.example/ as ada');
    expect(backend.argsOf('add_account')).toEqual([
      {
        account: {
          name: 'work',
          kind: 'caldav',
          url: 'https://dav.example/',
          username: 'ada',
          password: 's3cret',
          insecure_http: false,
        },
      },
    ]);
    // The form is cleared: the password does not linger in the window.
    expect(field('account-password')).toHaveValue('');
  });

  test('a folder asks for no username or password', async () => {
    const backend = fakeBackend();
    const user = userEvent.setup();
    openAccounts();
    await user.selectOptions(await screen.findByLabelText('Kind'), 'vdir');
    expect(document.getElementById('account-password')).toBeNull();
    await user.type(field('account-url'), '/home/ada/.calendars/home');
    await user.click(action(document.body, 'add'));
    await screen.findByTestId('account-1');
    expect(backend.argsOf('add_account')[0]).toMatchObject({
      account: { kind: 'vdir', username: null, password: null },
    });
  });

  test('plain http to another machine is sent only when the person allows it', async () => {
    const backend = fakeBackend();
    const user = userEvent.setup();
    openAccounts();
    await user.type(await screen.findByLabelText('Server address'), 'ada@example.com');
    await user.click(field('account-insecure-http'));
    await user.click(action(document.body, 'add'));
    await screen.findByTestId('account-1');
    expect(backend.argsOf('add_account')[0]).toMatchObject({
      account: { url: 'ada@example.com', username: null, insecure_http: true },
    });
    // The choice does not stay for the next account.
    expect(field('account-insecure-http')).not.toBeChecked();
  });

  test('a refused address is said in words and nothing is listed', async () => {
    fakeBackend({ add_account: fails('http://dav.example/ is plain http') });
    const user = userEvent.setup();
    openAccounts();
    await user.type(await screen.findByLabelText('Server address'), 'http://dav.example/');
    await user.click(action(document.body, 'add'));
    expect(await screen.findByRole('alert')).toHaveTextContent(
      'Could not add the account: http://dav.example/ is plain http',
    );
    expect(screen.queryByTestId('account-1')).toBeNull();
  });
});

describe('an account', () => {
  const work = {
    id: 4,
    name: 'work',
    kind: 'caldav' as const,
    url: 'https://dav.example/',
    username: 'ada',
  };

  test('Test connection says what worked, or plainly why not', async () => {
    const backend = fakeBackend();
    backend.accounts = [work];
    const user = userEvent.setup();
    openAccounts();
    const row = await screen.findByTestId('account-4');
    await user.click(action(row, 'test'));
    await waitFor(() =>
      expect(within(row).getByTestId('test-result')).toHaveTextContent(
        'Connected: signed in as /work/',
      ),
    );
    expect(backend.argsOf('test_account')).toEqual([{ name: 'work' }]);

    fakeBackend({ test_account: fails('Wrong username or password: the server refused them') });
    await user.click(action(row, 'test'));
    await waitFor(() =>
      expect(within(row).getByTestId('test-result')).toHaveTextContent('Wrong username'),
    );
    expect(within(row).getByTestId('test-result')).toHaveAttribute('role', 'alert');
  });

  test('discovered collections are chosen and paired, with the folder asked for', async () => {
    const backend = fakeBackend();
    backend.accounts = [work];
    backend.collections = [
      CALENDAR,
      { kind: 'address-book', href: '/ada/contacts/', display_name: 'Contacts', color: null },
    ];
    const user = userEvent.setup();
    openAccounts();
    const row = await screen.findByTestId('account-4');
    await user.click(action(row, 'discover'));
    const boxes = await within(row).findAllByRole('checkbox');
    expect(boxes).toHaveLength(2);
    // With several, none is chosen for the person.
    expect(action(row, 'add-pairs')).toBeDisabled();
    await user.click(boxes[0]);
    await user.type(field('pair-folder-4'), '/home/ada/.calendars');
    await user.click(action(row, 'add-pairs'));
    expect(await within(row).findByTestId('paired')).toHaveTextContent(
      '1 pair made: work-calendar',
    );
    expect(backend.argsOf('add_pairs')).toEqual([
      { account: 'work', collections: [CALENDAR], folder: '/home/ada/.calendars' },
    ]);
  });

  test('discovered collections show their colour and what they hold', async () => {
    const backend = fakeBackend();
    backend.accounts = [work];
    backend.collections = [
      { ...CALENDAR, color: '#ff8800ff', components: ['VJOURNAL', 'VTODO'] },
      { kind: 'address-book', href: '/ada/contacts/', display_name: 'Contacts', color: null },
    ];
    const user = userEvent.setup();
    openAccounts();
    const row = await screen.findByTestId('account-4');
    await user.click(action(row, 'discover'));
    const list = await within(row).findByTestId('collections-4');
    // In one order, whatever order the server gave.
    expect(list).toHaveTextContent('calendar of tasks, journal');
    expect(list).toHaveTextContent('address book');
    expect(within(row).getByTestId('collection-color-0')).toHaveAttribute('title', '#ff8800ff');
    expect(within(row).queryByTestId('collection-color-1')).toBeNull();
  });

  test('an empty folder leaves the choice of folder to Rust', async () => {
    const backend = fakeBackend();
    backend.accounts = [work];
    const user = userEvent.setup();
    openAccounts();
    const row = await screen.findByTestId('account-4');
    await user.click(action(row, 'discover'));
    // The only collection is chosen already.
    expect(await within(row).findByRole('checkbox')).toBeChecked();
    await user.click(action(row, 'add-pairs'));
    await within(row).findByTestId('paired');
    expect(backend.argsOf('add_pairs')[0]).toMatchObject({ folder: null });
  });

  test('a failed discovery is said where it was asked for', async () => {
    const backend = fakeBackend({ discover_collections: fails('Cannot reach the server') });
    backend.accounts = [work];
    const user = userEvent.setup();
    openAccounts();
    const row = await screen.findByTestId('account-4');
    await user.click(action(row, 'discover'));
    expect(await within(row).findByRole('alert')).toHaveTextContent(
      'Could not discover collections: Cannot reach the server',
    );
  });

  test('Remove asks first; only the confirmation removes', async () => {
    const backend = fakeBackend();
    backend.accounts = [work];
    const user = userEvent.setup();
    openAccounts();
    const row = await screen.findByTestId('account-4');
    await user.click(action(row, 'remove'));
    expect(backend.argsOf('remove_account')).toEqual([]);
    await user.click(within(row).getByRole('button', { name: 'Keep it' }));
    expect(screen.getByTestId('account-4')).toBeInTheDocument();

    await user.click(action(row, 'remove'));
    await user.click(action(row, 'confirm-remove'));
    await waitFor(() => expect(screen.queryByTestId('account-4')).toBeNull());
    expect(backend.argsOf('remove_account')).toEqual([{ name: 'work' }]);
  });

  test('all collections, and new ones, sync into the folder given, shown under the account', async () => {
    const backend = fakeBackend();
    backend.accounts = [work];
    backend.collections = [
      CALENDAR,
      { kind: 'address-book', href: '/ada/contacts/', display_name: 'Contacts', color: null },
    ];
    const user = userEvent.setup();
    openAccounts();
    const row = await screen.findByTestId('account-4');
    await user.click(action(row, 'discover'));
    await within(row).findByTestId('collections-4');
    await user.type(field('pair-folder-4'), '/home/ada/.calendars');
    // Nothing needs choosing: all of them go.
    await user.click(action(row, 'add-all'));
    expect(await within(row).findByTestId('paired')).toHaveTextContent(
      'All collections sync into /home/ada/.calendars, and new ones as they appear: 2 pairs made',
    );
    expect(backend.argsOf('add_all_collections')).toEqual([
      { account: 'work', folder: '/home/ada/.calendars' },
    ]);
    const mapping = within(row).getByTestId('mapping-work-all');
    expect(mapping).toHaveTextContent('work-all/calendar · /home/ada/.calendars/calendar');
    expect(mapping).toHaveTextContent('work-all/contacts · /home/ada/.calendars/contacts');
    expect(within(mapping).getByTestId('mapping-state')).toHaveTextContent(
      /^2 collections, listed .* · next sync /,
    );
    expect(within(row).queryByTestId('collections-4')).toBeNull();
  });

  test('all collections with no folder given leave the folder to Rust', async () => {
    const backend = fakeBackend();
    backend.accounts = [work];
    const user = userEvent.setup();
    openAccounts();
    const row = await screen.findByTestId('account-4');
    await user.click(action(row, 'discover'));
    await user.click(await within(row).findByRole('button', { name: /^Sync all collections/ }));
    await within(row).findByTestId('mapping-work-all');
    expect(backend.argsOf('add_all_collections')).toEqual([{ account: 'work', folder: null }]);
  });

  test('a folder or webcal account offers no "all collections"', async () => {
    const backend = fakeBackend();
    backend.accounts = [{ ...work, kind: 'vdir', url: '/home/ada/cal', username: null }];
    const user = userEvent.setup();
    openAccounts();
    const row = await screen.findByTestId('account-4');
    await user.click(action(row, 'discover'));
    await within(row).findByTestId('collections-4');
    expect(row.querySelector('[data-action="add-all"]')).toBeNull();
  });

  test('an all-collections sync shows a vanished collection and what Sync now did', async () => {
    const backend = fakeBackend();
    backend.accounts = [work];
    const mapping = aMapping();
    backend.mappings = [
      aMapping({
        pairs: [
          ...mapping.pairs,
          {
            pair: 'work-all/old',
            collection_url: 'https://dav.example/ada/old/',
            folder: '/home/ada/.local/share/concord/vdir/work-all/old',
            gone_since_ms: Date.now() - 60_000,
          },
        ],
      }),
    ];
    const user = userEvent.setup();
    openAccounts();
    const shown = await screen.findByTestId('mapping-work-all');
    const gone = shown.querySelector('[data-gone="true"]');
    expect(gone).toHaveTextContent('work-all/old');
    expect(gone).toHaveTextContent('gone from the server since');
    expect(gone).toHaveTextContent('its folder is kept');
    // The one still there counts; the vanished one does not.
    expect(within(shown).getByTestId('mapping-state')).toHaveTextContent(/^1 collection, listed/);

    await user.click(action(shown, 'sync-mapping'));
    expect(await within(shown).findByTestId('mapping-result')).toHaveTextContent(
      '1 collection synced: 1 created on side b',
    );
    expect(backend.argsOf('sync_mapping')).toEqual([{ name: 'work-all' }]);
  });

  test('a failed listing is said on the all-collections sync, and Sync now its reason', async () => {
    const backend = fakeBackend({
      sync_mapping: fails('Wrong username or password: the server refused them'),
    });
    backend.accounts = [work];
    backend.mappings = [aMapping({ last_error: 'the server could not be reached' })];
    const user = userEvent.setup();
    openAccounts();
    const shown = await screen.findByTestId('mapping-work-all');
    expect(within(shown).getByTestId('mapping-error')).toHaveTextContent(
      'the server could not be reached',
    );
    await user.click(action(shown, 'sync-mapping'));
    const result = await within(shown).findByTestId('mapping-result');
    expect(result).toHaveTextContent('Wrong username or password');
    expect(result).toHaveAttribute('role', 'alert');
  });

  test('an all-collections sync is removed only after a confirmation', async () => {
    const backend = fakeBackend();
    backend.accounts = [work];
    backend.mappings = [aMapping()];
    const user = userEvent.setup();
    openAccounts();
    const shown = await screen.findByTestId('mapping-work-all');
    await user.click(action(shown, 'remove-mapping'));
    expect(backend.argsOf('remove_mapping')).toEqual([]);
    await user.click(action(shown, 'confirm-remove-mapping'));
    await waitFor(() => expect(screen.queryByTestId('mapping-work-all')).toBeNull());
    expect(backend.argsOf('remove_mapping')).toEqual([{ name: 'work-all' }]);
  });
});

describe('two accounts', () => {
  const work = {
    id: 4,
    name: 'work',
    kind: 'caldav' as const,
    url: 'https://dav.example/',
    username: 'ada',
  };
  const home = { ...work, id: 5, name: 'home', url: 'https://cloud.example/' };

  test('a calendar of one account is paired with a calendar of another', async () => {
    const backend = fakeBackend();
    backend.accounts = [work, home];
    const user = userEvent.setup();
    openAccounts();
    // The choice appears once the collections of two accounts are known.
    await user.click(action(await screen.findByTestId('account-4'), 'discover'));
    await screen.findByTestId('collections-4');
    expect(document.getElementById('pair-end-a')).toBeNull();
    await user.click(action(screen.getByTestId('account-5'), 'discover'));
    await screen.findByTestId('collections-5');

    expect(action(document.body, 'add-account-pair')).toBeDisabled();
    await user.selectOptions(field('pair-end-a'), 'work: Calendar (calendar)');
    // The same collection on both sides is not a pair.
    await user.selectOptions(field('pair-end-b'), 'work: Calendar (calendar)');
    expect(action(document.body, 'add-account-pair')).toBeDisabled();
    await user.selectOptions(field('pair-end-b'), 'home: Calendar (calendar)');
    await user.click(action(document.body, 'add-account-pair'));

    expect(await screen.findByTestId('account-pair-result')).toHaveTextContent(
      'Pair made: work-home',
    );
    expect(backend.argsOf('add_account_pair')).toEqual([
      {
        a: { account: 'work', collection: CALENDAR },
        b: { account: 'home', collection: CALENDAR },
      },
    ]);
  });

  test('collections discovered before can be paired without asking the servers again', async () => {
    const backend = fakeBackend();
    backend.accounts = [work, home];
    backend.known = {
      work: [CALENDAR],
      home: [{ ...CALENDAR, href: '/ada/family/', display_name: 'Family' }],
    };
    const user = userEvent.setup();
    openAccounts();
    await user.selectOptions(await screen.findByLabelText('Side a'), 'work: Calendar (calendar)');
    await user.selectOptions(field('pair-end-b'), 'home: Family (calendar)');
    await user.click(action(document.body, 'add-account-pair'));
    await screen.findByTestId('account-pair-result');
    expect(backend.argsOf('discover_collections')).toEqual([]);
    expect(backend.argsOf('add_account_pair')[0]).toMatchObject({
      b: { account: 'home', collection: { href: '/ada/family/' } },
    });
  });

  test('a pair Rust refuses is said in words', async () => {
    fakeBackend({
      add_account_pair: fails(
        'Calendar and Contacts hold different things: a calendar pairs with a calendar',
      ),
    }).accounts = [work, home];
    const user = userEvent.setup();
    openAccounts();
    await user.click(action(await screen.findByTestId('account-4'), 'discover'));
    await screen.findByTestId('collections-4');
    await user.click(action(screen.getByTestId('account-5'), 'discover'));
    await screen.findByTestId('collections-5');
    await user.selectOptions(field('pair-end-a'), 'work: Calendar (calendar)');
    await user.selectOptions(field('pair-end-b'), 'home: Calendar (calendar)');
    await user.click(action(document.body, 'add-account-pair'));
    const said = await screen.findByTestId('account-pair-result');
    expect(said).toHaveTextContent('hold different things');
    expect(said).toHaveAttribute('role', 'alert');
  });
});
