// Runs before every test file: DOM matchers, and a clean window between tests.
import '@testing-library/jest-dom/vitest';
import { clearMocks } from '@tauri-apps/api/mocks';
import { cleanup } from '@testing-library/svelte';
import { afterEach } from 'vitest';

afterEach(() => {
  // Unmount first: unmounting unlistens through the mocked IPC, which must still be there.
  cleanup();
  clearMocks();
  window.location.hash = '';
});
