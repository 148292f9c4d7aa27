// Following a Rust event for as long as a component is mounted, for the pages' onMount.

import type { UnlistenFn } from '@tauri-apps/api/event';
import { errorMessage } from './ipc';

/**
 * Holds the subscription `subscribing` resolves to until `stop` is called; one that resolves
 * after `stop` is undone at once, and one that fails is reported through `onError`. `ready`
 * settles once the subscription is in place or has failed: read after it, so no change slips
 * between the answer and the subscription.
 */
export function follow(
  subscribing: Promise<UnlistenFn>,
  onError: (message: string) => void,
): { ready: Promise<void>; stop: () => void } {
  let stopped = false;
  let unlisten: UnlistenFn | undefined;
  const ready = subscribing.then(
    (stop) => {
      if (stopped) stop();
      else unlisten = stop;
    },
    (failed) => onError(errorMessage(failed)),
  );
  return {
    ready,
    stop: () => {
      stopped = true;
      unlisten?.();
    },
  };
}
