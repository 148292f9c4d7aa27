// Reading a page's data again when something it shows may have changed elsewhere.

import { untrack } from 'svelte';

/** Calls `reload` each time `key` changes from one known value to another (not on the first
 *  value: the page reads its data when it opens). Call it while a component initialises. */
export function reloadOnChange(key: () => string | null, reload: () => void): void {
  let last: string | null = null;
  $effect(() => {
    const now = key();
    untrack(() => {
      if (last !== null && now !== null && now !== last) reload();
      if (now !== null) last = now;
    });
  });
}
