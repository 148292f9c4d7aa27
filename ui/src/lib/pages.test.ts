import { expect, test } from 'vitest';
import { pageFromHash } from './pages';

test('hash routes name pages; anything else opens Accounts', () => {
  expect(pageFromHash('#/conflicts')).toBe('conflicts');
  expect(pageFromHash('#conflicts')).toBe('conflicts');
  expect(pageFromHash('#/preferences/extra')).toBe('preferences');
  expect(pageFromHash('')).toBe('accounts');
  expect(pageFromHash('#/')).toBe('accounts');
  expect(pageFromHash('#/Settings')).toBe('accounts');
});
