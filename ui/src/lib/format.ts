// Wording helpers shared by the pages, so counts and times read the same everywhere.

/** `plural(1, 'account')` -> "1 account", `plural(3, 'account')` -> "3 accounts". */
export function plural(count: number, noun: string): string {
  return `${count} ${count === 1 ? noun : `${noun}s`}`;
}

/** An RFC 3339 time in the user's locale; text that is not a time is shown as it came. */
export function formatTime(rfc3339: string): string {
  const time = new Date(rfc3339);
  if (Number.isNaN(time.getTime())) return rfc3339;
  return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(
    time,
  );
}
