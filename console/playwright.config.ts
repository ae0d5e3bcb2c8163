import { defineConfig } from '@playwright/test';

// Driven by cli/tests/console.rs, which starts `arca server` and the agent's cluster and
// passes them in the environment. Chromium is Debian's (Playwright's own browser download
// cannot work on a closed network); without the background-networking flags it hangs there.
export default defineConfig({
  testDir: 'tests',
  timeout: 15 * 60 * 1000,
  expect: { timeout: 20_000 },
  workers: 1,
  retries: 0,
  reporter: [['list']],
  outputDir: process.env.ARCA_CONSOLE_ARTEFACTS ? `${process.env.ARCA_CONSOLE_ARTEFACTS}/playwright` : 'test-results',
  use: {
    baseURL: process.env.ARCA_CONSOLE_URL,
    viewport: { width: 1280, height: 900 },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.ARCA_CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});
