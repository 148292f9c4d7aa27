// The Conflicts page as a person meets it: each conflict in plain words, its fields side by side
// with the base, a choice per field with a live preview, Resolve and Keep; a conflict whose
// sides changed since is shown again, saying so; an empty inbox says what the page is for.
import { emit } from '@tauri-apps/api/event';
import { render, screen, waitFor, within } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import { describe, expect, test } from 'vitest';
import App from '../App.svelte';
import type {
  ConflictChoice,
  ConflictDetail,
  ConflictDetails,
  ConflictSide,
  Resolution,
} from '../lib/ipc';
import { resolutionLine, whenLocal } from '../lib/conflicts';
import { aPair, fails, fakeBackend, IDLE, type Backend } from '../test/backend';

const NO_DETAILS: ConflictDetails = {
  title: null,
  when: null,
  starts_at: null,
  location: null,
  attendees: [],
  emails: [],
  phones: [],
};

/** An event the server calls "Planning (server)" in Room 2 and the folder "Planning (laptop)"
 * in Room 3; its time and attendees agree. */
function anEventConflict(over: Partial<ConflictDetail> = {}): ConflictDetail {
  const details = (title: string, location: string): ConflictDetails => ({
    ...NO_DETAILS,
    title,
    when: '2026-12-01 10:00 UTC',
    starts_at: '2026-12-01T10:00:00Z',
    location,
    attendees: ['ada@example.com', 'bob@example.com'],
  });
  const version = (title: string, location: string) => ({
    href: '/ada/calendar/planning.ics',
    etag: '"1"',
    details: details(title, location),
    content: `BEGIN:VEVENT\r\nSUMMARY:${title}\r\nLOCATION:${location}\r\nEND:VEVENT\r\n`,
  });
  return {
    id: 7,
    pair: 'dav-calendar',
    uid: 'planning-1',
    kind: 'both-edited',
    summary: 'Planning (event)',
    properties: ['VEVENT SUMMARY', 'VEVENT LOCATION'],
    details: details('Planning (server)', 'Room 2'),
    updated_at_ms: 1000,
    base: version('Planning', 'Room 1'),
    a: version('Planning (server)', 'Room 2'),
    b: version('Planning (laptop)', 'Room 3'),
    differing: ['VEVENT LOCATION', 'VEVENT SUMMARY'],
    fields: [
      {
        name: 'VEVENT SUMMARY',
        label: 'Title',
        base: 'Planning',
        a: 'Planning (server)',
        b: 'Planning (laptop)',
        differs: true,
        conflict: true,
      },
      {
        name: 'VEVENT LOCATION',
        label: 'Location',
        base: 'Room 1',
        a: 'Room 2',
        b: 'Room 3',
        differs: true,
        conflict: true,
      },
      {
        name: 'VEVENT DESCRIPTION',
        label: 'Description',
        base: 'Agenda',
        a: 'Agenda, budget',
        b: 'Agenda',
        differs: true,
        conflict: false,
      },
      {
        name: 'VEVENT ATTENDEE',
        label: 'Attendees',
        base: 'ada@example.com',
        a: 'ada@example.com, bob@example.com',
        b: 'ada@example.com, bob@example.com',
        differs: false,
        conflict: false,
      },
    ],
    ...over,
  };
}

function summaryOf(detail: ConflictDetail) {
  return {
    id: detail.id,
    pair: detail.pair,
    uid: detail.uid,
    kind: detail.kind,
    summary: detail.summary,
    properties: detail.properties,
    details: detail.details,
    updated_at_ms: detail.updated_at_ms,
  };
}

interface Inbox {
  backend: Backend;
  /** The open conflicts, as core holds them. */
  open: ConflictDetail[];
  /** What `conflict_resolve` answers next (default: resolved, and the conflict closes). */
  answer: ((id: number, choice: ConflictChoice) => Resolution) | null;
}

/** The fake backend with an inbox: list, show, preview (the picked values) and resolve. */
function withInbox(open: ConflictDetail[], overrides = {}): Inbox {
  const inbox: Inbox = { backend: undefined as unknown as Backend, open, answer: null };
  inbox.backend = fakeBackend({
    conflicts_list: () => inbox.open.map(summaryOf),
    conflict_show: ({ id }) => {
      const found = inbox.open.find((c) => c.id === id);
      return found ?? Promise.reject(`there is no open conflict ${String(id)}`);
    },
    conflict_preview: ({ id, picks }) => {
      const found = inbox.open.find((c) => c.id === id);
      if (found === undefined) return Promise.reject('gone');
      const chosen = picks as Record<string, ConflictSide>;
      const value = (name: string) => {
        const field = found.fields.find((f) => f.name === name);
        const side = chosen[name] ?? 'a';
        return field?.[side] ?? null;
      };
      const title = value('VEVENT SUMMARY');
      const location = value('VEVENT LOCATION');
      return {
        content: `BEGIN:VEVENT\r\nSUMMARY:${title}\r\nLOCATION:${location}\r\nEND:VEVENT\r\n`,
        details: { ...found.details, title, location },
        unchosen: found.fields
          .filter((f) => f.conflict && chosen[f.name] === undefined)
          .map((f) => f.name),
      };
    },
    conflict_resolve: ({ id, choice }) => {
      const made = choice as ConflictChoice;
      const resolution: Resolution =
        inbox.answer?.(Number(id), made) ??
        ('pick' in made
          ? { outcome: 'picked', uid: 'planning-1', picked: made.pick }
          : { outcome: 'resolved', uid: 'planning-1', kept: made.keep, copy_uid: null });
      if (resolution.outcome !== 'refreshed' || resolution.closed) {
        inbox.open = inbox.open.filter((c) => c.id !== id);
      }
      return resolution;
    },
    ...overrides,
  });
  inbox.backend.pairs = [aPair({ name: 'dav-calendar' })];
  return inbox;
}

function openConflicts() {
  window.location.hash = '#/conflicts';
  render(App);
}

function action(root: HTMLElement, name: string): HTMLButtonElement {
  const found = root.querySelector<HTMLButtonElement>(`[data-action="${name}"]`);
  if (found === null) throw new Error(`no [data-action=${name}]`);
  return found;
}

function pick(root: HTMLElement, field: string, side: ConflictSide): HTMLInputElement {
  const found = root.querySelector<HTMLInputElement>(
    `input[data-pick="${field}"][data-side="${side}"]`,
  );
  if (found === null) throw new Error(`no choice ${side} for ${field}`);
  return found;
}

/** Lets pending IPC promises (such as the event subscription) settle. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

describe('the inbox', () => {
  test('an empty inbox says so and what the page is for', async () => {
    withInbox([]);
    openConflicts();
    expect(await screen.findByText(/^No conflicts\./)).toHaveTextContent(
      'everything else keeps syncing',
    );
  });

  test('a conflict reads in a person’s words, with its time in the local zone', async () => {
    withInbox([anEventConflict()]);
    openConflicts();
    const item = await screen.findByTestId('conflict-7');
    expect(item).toHaveTextContent('Planning (server) · dav-calendar');
    expect(within(item).getByTestId('conflict-kind')).toHaveTextContent(
      'Changed differently on both sides',
    );
    const when = whenLocal(anEventConflict().details);
    expect(when).toMatch(/2026/);
    expect(item).toHaveTextContent(`When: ${when}`);
    expect(item).toHaveTextContent('Where: Room 2');
    expect(item).toHaveTextContent('Attendees: ada@example.com, bob@example.com');
    expect(screen.getByTestId('conflict-count')).toHaveTextContent(
      '1 conflict waiting for your choice',
    );
    const fields = await within(item).findByTestId('conflict-fields');
    const headings = within(fields)
      .getAllByRole('columnheader')
      .map((h) => h.textContent?.trim());
    expect(headings).toEqual(['Field', 'Before', 'A: CalDAV server', 'B: vdir folder']);
    const title = within(fields).getByRole('row', { name: /^Title/ });
    expect(title).toHaveTextContent('Planning');
    expect(title).toHaveTextContent('Planning (server)');
    expect(title).toHaveTextContent('Planning (laptop)');
    // A field both sides changed alike needs no choice, but its change is still marked.
    const attendees = within(fields).getByRole('row', { name: /^Attendees/ });
    expect(within(attendees).queryByRole('radio')).toBeNull();
    expect(attendees.querySelectorAll('td.changed')).toHaveLength(2);
    expect(title).toHaveClass('differs');
    expect(attendees).not.toHaveClass('differs');
  });

  test('a contact reads as its name, emails and phones', async () => {
    const card = (name: string, phone: string) => ({
      ...NO_DETAILS,
      title: name,
      emails: ['ada@example.com', 'ada@home.example'],
      phones: [phone],
    });
    const version = (name: string, phone: string) => ({
      href: '/ada/contacts/ada.vcf',
      etag: '"2"',
      details: card(name, phone),
      content: `BEGIN:VCARD\r\nFN:${name}\r\nTEL:${phone}\r\nEND:VCARD\r\n`,
    });
    withInbox([
      anEventConflict({
        id: 9,
        pair: 'dav-contacts',
        uid: 'ada-1',
        summary: 'Ada Lovelace (contact)',
        details: card('Ada Lovelace', '+44 20 7946 0001'),
        base: version('Ada Lovelace', '+44 20 7946 0000'),
        a: version('Ada Lovelace', '+44 20 7946 0001'),
        b: version('Ada Lovelace', '+44 20 7946 0002'),
        fields: [
          {
            name: 'VCARD TEL',
            label: 'Phones',
            base: '+44 20 7946 0000',
            a: '+44 20 7946 0001',
            b: '+44 20 7946 0002',
            differs: true,
            conflict: true,
          },
        ],
      }),
    ]);
    openConflicts();
    const item = await screen.findByTestId('conflict-9');
    expect(item).toHaveTextContent('Ada Lovelace · dav-contacts');
    expect(item).toHaveTextContent('Emails: ada@example.com, ada@home.example');
    expect(item).toHaveTextContent('Phones: +44 20 7946 0001');
    expect(item).not.toHaveTextContent('When:');
    const phones = within(await within(item).findByTestId('conflict-fields')).getByRole('row', {
      name: /^Phones/,
    });
    expect(phones).toHaveTextContent('+44 20 7946 0002');
  });

  test('the local zone decides the day and hour shown; a whole day never shifts', () => {
    const at = { ...NO_DETAILS, starts_at: '2026-12-01T23:30:00Z', when: 'x' };
    expect(whenLocal(at, 'Europe/Berlin')).toMatch(/December 2, 2026.*12:30/);
    expect(whenLocal(at, 'America/New_York')).toMatch(/December 1, 2026.*6:30/);
    const day = { ...NO_DETAILS, starts_at: '2026-12-01', when: '2026-12-01' };
    expect(whenLocal(day, 'Pacific/Honolulu')).toMatch(/December 1, 2026$/);
    expect(whenLocal({ ...NO_DETAILS, when: 'some day' })).toBe('some day');
  });
});

describe('choosing per field', () => {
  test('each choice updates the preview; Resolve waits for every conflicting field', async () => {
    const inbox = withInbox([anEventConflict()]);
    const user = userEvent.setup();
    openConflicts();
    const item = await screen.findByTestId('conflict-7');
    await within(item).findByTestId('conflict-fields');
    const resolve = action(item, 'resolve');
    expect(resolve).toBeDisabled();
    expect(within(item).getByTestId('choice-line')).toHaveTextContent(
      '0 of 2 conflicting fields chosen',
    );
    // Before any choice the preview shows A's values and says which are not chosen.
    const preview = await within(item).findByTestId('preview');
    expect(within(preview).getByTestId('unchosen')).toHaveTextContent(
      'Not chosen yet, A’s value shown: Title, Location',
    );
    // A field only one side changed may be chosen, but need not be.
    expect(pick(item, 'VEVENT DESCRIPTION', 'b')).toBeInTheDocument();

    await user.click(pick(item, 'VEVENT SUMMARY', 'b'));
    await waitFor(() => expect(preview).toHaveTextContent('Planning (laptop)'));
    expect(within(preview).getByTestId('unchosen')).toHaveTextContent('shown: Location');
    expect(resolve).toBeDisabled();

    await user.click(pick(item, 'VEVENT LOCATION', 'a'));
    await waitFor(() => expect(within(item).queryByTestId('unchosen')).toBeNull());
    expect(within(item).getByTestId('preview')).toHaveTextContent('Room 2');
    expect(within(item).getByTestId('choice-line')).toHaveTextContent(
      'Every conflicting field is chosen',
    );
    expect(resolve).toBeEnabled();
    expect(inbox.backend.argsOf('conflict_preview').at(-1)).toEqual({
      id: 7,
      picks: { 'VEVENT SUMMARY': 'b', 'VEVENT LOCATION': 'a' },
    });

    await user.click(resolve);
    expect(await screen.findByTestId('resolved')).toHaveTextContent(
      'Planning (server): Resolved: both sides now hold the version you put together.',
    );
    expect(inbox.backend.argsOf('conflict_resolve')).toEqual([
      { id: 7, choice: { pick: { 'VEVENT SUMMARY': 'b', 'VEVENT LOCATION': 'a' } } },
    ]);
    expect(await screen.findByText(/^No conflicts\./)).toBeInTheDocument();
  });

  test('Keep B and Keep both send that choice; a deleted side is kept as a deletion', async () => {
    const inbox = withInbox([
      anEventConflict(),
      anEventConflict({ id: 8, uid: 'gone-1', kind: 'edit-delete', b: null }),
    ]);
    const user = userEvent.setup();
    openConflicts();
    const first = await screen.findByTestId('conflict-7');
    await within(first).findByTestId('conflict-fields');
    await user.click(action(first, 'keep-b'));
    expect(await screen.findByTestId('resolved')).toHaveTextContent('hold B’s version');

    // The next one opens by itself; its B side is gone, so keeping B keeps the deletion.
    const second = await screen.findByTestId('conflict-8');
    await within(second).findByTestId('conflict-fields');
    expect(action(second, 'keep-b')).toHaveTextContent('Keep the deletion (B)');
    expect(second.querySelector('[data-action="keep-both"]')).toBeNull();
    expect(action(second, 'resolve')).toBeDisabled();
    expect(within(second).queryByRole('radio')).toBeNull();
    expect(within(second).getByTestId('choice-line')).toHaveTextContent('deleted on one side');
    await user.click(action(second, 'keep-a'));
    await screen.findByText(/^No conflicts\./);
    expect(inbox.backend.argsOf('conflict_resolve')).toEqual([
      { id: 7, choice: { keep: 'b' } },
      { id: 8, choice: { keep: 'a' } },
    ]);
  });

  test('a resolution that finds a side changed again shows the conflict again, saying why', async () => {
    const inbox = withInbox([anEventConflict()]);
    inbox.answer = () => {
      // Someone edited the server meanwhile: core refreshed the conflict with what it holds.
      inbox.open = [
        anEventConflict({
          updated_at_ms: 2000,
          fields: anEventConflict().fields.map((f) =>
            f.name === 'VEVENT SUMMARY' ? { ...f, a: 'Planning (moved)' } : f,
          ),
        }),
      ];
      return { outcome: 'refreshed', uid: 'planning-1', closed: false };
    };
    const user = userEvent.setup();
    openConflicts();
    const item = await screen.findByTestId('conflict-7');
    await within(item).findByTestId('conflict-fields');
    await user.click(action(item, 'keep-a'));
    expect(await within(item).findByTestId('conflict-refreshed')).toHaveTextContent(
      'nothing was overwritten',
    );
    await waitFor(() => expect(item).toHaveTextContent('Planning (moved)'));
    expect(screen.queryByTestId('resolved')).toBeNull();
  });

  test('a failed resolution is said in words and the conflict stays', async () => {
    withInbox([anEventConflict()], {
      conflict_resolve: fails('resolving conflict 7: the server did not answer'),
    });
    const user = userEvent.setup();
    openConflicts();
    const item = await screen.findByTestId('conflict-7');
    await within(item).findByTestId('conflict-fields');
    await user.click(action(item, 'keep-a'));
    expect(await within(item).findByRole('alert')).toHaveTextContent(
      'Could not resolve the conflict: resolving conflict 7: the server did not answer',
    );
    expect(screen.getByTestId('conflict-7')).toBeInTheDocument();
  });
});

describe('live updates', () => {
  test('a sync that ends brings new conflicts in', async () => {
    const inbox = withInbox([]);
    openConflicts();
    await screen.findByText(/^No conflicts\./);
    await settle();
    inbox.open = [anEventConflict()];
    await emit('job-event', {
      type: 'run',
      id: 3,
      kind: 'sync-pair',
      state: 'completed',
      error: null,
      next_at_ms: null,
    });
    expect(await screen.findByTestId('conflict-7')).toBeInTheDocument();
  });

  test('a conflict a sync elsewhere refreshed is shown again, saying so', async () => {
    const inbox = withInbox([anEventConflict()]);
    const user = userEvent.setup();
    openConflicts();
    const item = await screen.findByTestId('conflict-7');
    await within(item).findByTestId('conflict-fields');
    await user.click(pick(item, 'VEVENT SUMMARY', 'b'));
    await within(item).findByTestId('preview');
    await settle();

    inbox.open = [
      anEventConflict({
        updated_at_ms: 5000,
        fields: anEventConflict().fields.map((f) =>
          f.name === 'VEVENT LOCATION' ? { ...f, b: 'Room 4' } : f,
        ),
      }),
    ];
    await emit('status-changed', { ...IDLE, conflicts: 1, last_sync_at: '2026-11-22T09:00:00Z' });
    expect(await within(item).findByTestId('conflict-refreshed')).toHaveTextContent(
      'One side changed again since you opened this conflict',
    );
    await waitFor(() => expect(item).toHaveTextContent('Room 4'));
    // The earlier choice was about the old values: it is asked again.
    expect(pick(item, 'VEVENT SUMMARY', 'b').checked).toBe(false);
    await waitFor(() =>
      expect(within(item).getByTestId('unchosen')).toHaveTextContent('Title, Location'),
    );
  });
});

describe('wording', () => {
  test('each outcome of a resolution reads plainly', () => {
    const resolved: Resolution = { outcome: 'resolved', uid: 'x', kept: 'a', copy_uid: null };
    expect(resolutionLine(resolved, { keep: 'a' })).toBe(
      'Resolved: both sides now hold A’s version.',
    );
    expect(resolutionLine(resolved, { keep: 'both' })).toBe(
      'Resolved: both versions kept, B as a copy.',
    );
    expect(resolutionLine({ outcome: 'refreshed', uid: 'x', closed: true }, { keep: 'a' })).toBe(
      'Both sides now hold the same version: nothing is left to choose.',
    );
  });
});
