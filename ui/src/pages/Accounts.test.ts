// The Accounts page as a person meets it: adding a server (the password travels to Rust, which
// keeps it in the keyring), being told why not, testing the connection, discovering and choosing
// collections to pair, and removing only after a confirmation.
import { render, screen, waitFor, within } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import { describe, expect, test } from 'vitest';
import App from '../App.svelte';
import { CALENDAR, fails, fakeBackend } from '../test/backend';

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
});
