// The settings window's pages and the hash routes that reach them (#/accounts, ...).

export const PAGES = [
  { id: 'accounts', title: 'Accounts' },
  { id: 'pairs', title: 'Pairs' },
  { id: 'conflicts', title: 'Conflicts' },
  { id: 'feeds', title: 'Feeds' },
  { id: 'activity', title: 'Activity' },
  { id: 'preferences', title: 'Preferences' },
] as const;

export type PageId = (typeof PAGES)[number]['id'];

export const DEFAULT_PAGE: PageId = 'accounts';

export function hrefFor(page: PageId): string {
  return `#/${page}`;
}

/** `#/feeds` -> `feeds`; an empty or unknown hash opens the default page. */
export function pageFromHash(hash: string): PageId {
  const id = hash.replace(/^#\/?/, '').split(/[/?]/)[0];
  return PAGES.find((page) => page.id === id)?.id ?? DEFAULT_PAGE;
}

export function titleOf(page: PageId): string {
  return PAGES.find((entry) => entry.id === page)?.title ?? page;
}
