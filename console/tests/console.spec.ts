// The console end to end in a real browser (Debian's Chromium), against `arca server` and a
// real agent Pod on the test environment's cluster. cli/tests/console.rs starts both and
// runs this with:
//   ARCA_CONSOLE_URL        the server (the console is served at /)
//   ARCA_KUBECTL, ARCA_KUBECONFIG   kubectl and the cluster the agent is installed into
//   ARCA_CONSOLE_NAMESPACE  the application namespace to back up (restored as <ns>-restored)
//   ARCA_CONSOLE_BUCKET, ARCA_CONSOLE_S3_ENDPOINT   the destination bucket (moto) as Pods reach it
//   ARCA_CONSOLE_KMS_KEY_ARN  the destination's customer-held key (a KMS key on the same moto)
//   ARCA_CONSOLE_ARTEFACTS  where the screenshots go (one per page at 1280 px, a few at phone width)

import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

import { expect, type Page, test } from '@playwright/test';

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through cli/tests/console.rs`);
  return value;
}

const ART = env('ARCA_CONSOLE_ARTEFACTS');
const NS = env('ARCA_CONSOLE_NAMESPACE');
const RESTORED = `${NS}-restored`;
const CLUSTER = 'console-a';
const DB = env('ARCA_CONSOLE_RDS_DB');

function kubectl(args: string[], input?: string): string {
  return execFileSync(env('ARCA_KUBECTL'), ['--kubeconfig', env('ARCA_KUBECONFIG'), ...args], {
    input,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

async function shot(page: Page, name: string) {
  mkdirSync(ART, { recursive: true });
  // Let live pages finish their current load before the picture.
  await expect(page.getByText('Loading…')).toHaveCount(0);
  await page.screenshot({ path: `${ART}/${name}.png`, fullPage: true });
}

async function open(page: Page, label: string, heading: string) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name: heading })).toBeVisible();
}

test('sign up, protect a namespace, back it up, restore it, and read every page', async ({ page, request }) => {
  // Anything the page logs as an error (a CSP violation included) fails the test.
  const problems: string[] = [];
  page.on('console', (m) => m.type() === 'error' && !/Failed to load resource/.test(m.text()) && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(String(e)));

  let adminKey = '';
  await test.step('sign up', async () => {
    const response = await page.goto('/');
    expect(response?.status(), 'the API serves the built console (not the "not built" page)').toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
    await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
    await shot(page, 'signin');
    await page.getByLabel('Organization name').fill('console-test');
    await page.getByRole('button', { name: 'Create organization' }).click();
    adminKey = (await page.getByLabel('Admin API key').textContent())?.trim() ?? '';
    expect(adminKey.length).toBeGreaterThan(20);
    await page.getByRole('button', { name: 'Continue with this key' }).click();
    await expect(page.getByRole('heading', { level: 1, name: 'Overview' })).toBeVisible();
    // The key lives in session storage only: not in the URL, not in a cookie or local storage.
    expect(page.url()).not.toContain(adminKey);
    expect(await page.evaluate(() => sessionStorage.getItem('arca.apiKey'))).toBe(adminKey);
    expect(await page.evaluate(() => JSON.stringify(localStorage) + document.cookie)).not.toContain(adminKey);
  });

  await test.step('register the cluster and install the agent with the line shown', async () => {
    await open(page, 'Clusters', 'Clusters');
    await page.getByLabel('Cluster name').fill(CLUSTER);
    await page.getByRole('button', { name: 'Register' }).click();
    const line = (await page.getByLabel('kubectl apply line').textContent())?.trim() ?? '';
    expect(line).toMatch(/^kubectl apply -f http/);
    const helm = (await page.getByLabel('Helm command').textContent()) ?? '';
    expect(helm).toContain('helm install arca-agent agent/chart');
    expect(helm).toContain('--set-string agentToken=');
    await shot(page, 'clusters-register');
    kubectl(['apply', '-f', line.replace(/^kubectl apply -f /, '')]);
    // The destination's keys, beside the agent (named by the destination's credentials reference).
    kubectl(['create', 'secret', 'generic', 'bucket-keys', '-n', 'arca-system',
      '--from-literal=AWS_ACCESS_KEY_ID=testing', '--from-literal=AWS_SECRET_ACCESS_KEY=testing']);
    const row = page.getByRole('table', { name: 'Clusters' }).getByRole('row').filter({ hasText: CLUSTER });
    await expect(row).toContainText('ACTIVE', { timeout: 240_000 });
    await shot(page, 'clusters');
    await row.getByRole('link', { name: CLUSTER }).click();
    await expect(page.getByRole('heading', { level: 1, name: 'Cluster' })).toBeVisible();
    await expect(page.locator('.facts')).toContainText('ACTIVE');
    await shot(page, 'cluster');
  });

  await test.step('a destination and a policy', async () => {
    await open(page, 'Destinations', 'Destinations');
    await page.getByLabel('Destination name').fill('moto');
    await page.getByLabel('Bucket').fill(env('ARCA_CONSOLE_BUCKET'));
    await page.getByLabel('Endpoint').fill(env('ARCA_CONSOLE_S3_ENDPOINT'));
    await page.getByLabel('Credentials reference').fill('bucket-keys');
    // A customer-held key: the agent Pod wraps the cluster's key with it through KMS (moto).
    await page.getByLabel('Customer KMS key').fill(env('ARCA_CONSOLE_KMS_KEY_ARN'));
    await page.getByLabel('KMS endpoint').fill(env('ARCA_CONSOLE_S3_ENDPOINT'));
    await page.getByRole('button', { name: 'Create destination' }).click();
    await expect(page.getByRole('table', { name: 'Destinations' })).toContainText(`s3://${env('ARCA_CONSOLE_BUCKET')}`);
    await expect(page.getByRole('table', { name: 'Destinations' })).toContainText(env('ARCA_CONSOLE_KMS_KEY_ARN'));
    await shot(page, 'destinations');

    await open(page, 'Policies', 'Policies');
    await page.getByLabel('Policy name').fill('nightly');
    await page.getByLabel('Timezone').fill('Europe/Paris');
    await page.getByLabel('Cron (row 1)').fill('0 2 * * *');
    await page.getByLabel('Retain days (row 1)').fill('7');
    await page.getByRole('button', { name: 'Add schedule row' }).click();
    await page.getByLabel('Cron (row 2)').fill('0 3 * * 0');
    await page.getByLabel('Retain days (row 2)').fill('30');
    await page.getByRole('button', { name: 'Create policy' }).click();
    const policy = page.getByRole('table', { name: 'Policies' }).getByRole('row').filter({ hasText: 'nightly' });
    await expect(policy).toContainText('0 2 * * *');
    await expect(policy).toContainText('0 3 * * 0');
    await expect(policy).toContainText('Europe/Paris');
    // Edited in place: the second row's retention changes, the rest stays.
    await policy.getByRole('button', { name: 'Edit policy nightly' }).click();
    await expect(page.getByLabel('Cron (row 2)')).toHaveValue('0 3 * * 0');
    await page.getByLabel('Retain days (row 2)').fill('90');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await expect(policy).toContainText('keep 90 days');
    await expect(policy).toContainText('0 2 * * *');
    await expect(policy).toContainText('Europe/Paris');
    await expect(page.getByRole('heading', { name: 'Create a policy' })).toBeVisible();
  });

  await test.step('a backup of the namespace, run now, followed live to the end', async () => {
    kubectl(['create', 'namespace', NS]);
    for (const n of [1, 2]) {
      kubectl(['create', 'configmap', `app-config-${n}`, '-n', NS, `--from-literal=greeting=hello ${n}`]);
    }
    await open(page, 'Backups', 'Backups');
    await page.getByLabel('Backup name').fill('web');
    await page.getByLabel('Cluster', { exact: true }).selectOption({ label: CLUSTER });
    await page.getByLabel('Namespaces').fill(NS);
    await page.getByLabel('PV mode').selectOption('none');
    await page.getByLabel('Policy').selectOption({ label: 'nightly' });
    await page.getByLabel('Destination').selectOption({ label: 'moto' });
    await page.getByRole('button', { name: 'Create backup' }).click();
    const row = page.getByRole('table', { name: 'Backups' }).getByRole('row').filter({ hasText: 'web' });
    await expect(row).toContainText(NS);
    await expect(row).toContainText('nightly');
    // Edited: on demand only, then back on the policy; the selection and destination stay.
    for (const policy of ['None (on demand only)', 'nightly']) {
      await row.getByRole('button', { name: 'Edit backup web' }).click();
      await expect(page.getByLabel('Namespaces')).toHaveValue(NS);
      await page.getByLabel('Policy').selectOption({ label: policy });
      await page.getByRole('button', { name: 'Save backup' }).click();
      await expect(page.getByRole('heading', { name: 'Create a backup' })).toBeVisible();
      if (policy === 'nightly') await expect(row).toContainText('nightly');
      else await expect(row).not.toContainText('nightly');
    }
    await expect(row).toContainText(NS);
    await expect(row).toContainText('moto');
    // Pause and resume, then run.
    await row.getByRole('button', { name: 'Pause web' }).click();
    await expect(row).toContainText('paused');
    await row.getByRole('button', { name: 'Resume web' }).click();
    await expect(row.getByRole('button', { name: 'Pause web' })).toBeVisible();
    await shot(page, 'backups');
    await row.getByRole('button', { name: 'Run web now' }).click();
    await expect(page).toHaveURL(/\/jobs\/job_/);
    const facts = page.locator('.facts');
    await expect(facts).toContainText(/COMPLETED|FAILED|PARTIAL/, { timeout: 300_000 });
    await expect(facts, 'the backup job succeeds').toContainText('COMPLETED');
    await shot(page, 'job');
    await open(page, 'Jobs', 'Jobs');
    await expect(page.getByRole('table', { name: 'Jobs' })).toContainText('COMPLETED');
    await shot(page, 'jobs');
  });

  await test.step("the recovery point's contents", async () => {
    await open(page, 'Recovery points', 'Recovery points');
    const points = page.getByRole('table', { name: 'Recovery points' });
    await expect(points.getByRole('row')).toHaveCount(2); // header + the one point
    await shot(page, 'recovery-points');
    await points.getByRole('link').first().click();
    await expect(page.getByRole('heading', { level: 1, name: 'Recovery point' })).toBeVisible();
    const kinds = page.getByRole('table', { name: 'Objects per kind' });
    await expect(kinds.getByRole('row').filter({ hasText: /configmap/i })).toContainText(/configmaps?\s*[2-9]/i);
    await expect(page.getByRole('table', { name: 'Objects per namespace' })).toContainText(NS);
    await shot(page, 'recovery-point');
  });

  await test.step('restore through the wizard into a new namespace, per-object results', async () => {
    await page.getByRole('button', { name: 'Restore…' }).click();
    await expect(page.getByRole('heading', { level: 1, name: 'Restore' })).toBeVisible();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('Target cluster').selectOption({ label: `${CLUSTER} (ACTIVE)` });
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('Namespace map').fill(`${NS}=${RESTORED}`);
    await page.getByRole('button', { name: 'Next' }).click();
    // What the cluster makes in every new namespace (its default ServiceAccount, the root
    // CA ConfigMap) is already there: skipped, and said so per object.
    await page.getByLabel('Existing resources').selectOption('skip');
    await page.getByRole('button', { name: 'Next' }).click();
    const review = page.locator('dl[aria-label="Review"]');
    await expect(review).toContainText(`map ${NS}=${RESTORED}`);
    await shot(page, 'restore-wizard');
    await page.getByRole('button', { name: 'Start restore' }).click();
    await expect(page.getByRole('heading', { level: 1, name: 'Restore results' })).toBeVisible();
    await expect(page.locator('.facts')).toContainText(/COMPLETED|FAILED|PARTIAL/, { timeout: 300_000 });
    await expect(page.locator('.facts'), 'the restore succeeds').toContainText('COMPLETED');
    const objects = page.getByRole('table', { name: 'Restored objects' });
    for (const n of [1, 2]) {
      await expect(objects.getByRole('row').filter({ hasText: `app-config-${n}` })).toContainText(RESTORED);
      await expect(objects.getByRole('row').filter({ hasText: `app-config-${n}` })).toContainText('created');
    }
    // kube-root-ca.crt and the default ServiceAccount are the new namespace's controllers':
    // whichever writes one first (its controller or the restore) makes it skipped or created.
    await expect(objects.getByRole('row').filter({ hasText: 'kube-root-ca.crt' })).toContainText(/created|skipped/);
    const created = await objects
      .getByRole('row')
      .filter({ has: page.getByRole('cell', { name: 'created', exact: true }) })
      .count();
    expect(created, 'the namespace and both ConfigMaps at least').toBeGreaterThanOrEqual(3);
    await expect(page.getByLabel('Outcome counts')).toContainText(`${created} created`);
    await shot(page, 'restore-results');
    // The objects are really there, with their data.
    const restored = JSON.parse(kubectl(['get', 'configmap', 'app-config-2', '-n', RESTORED, '-o', 'json']));
    expect(restored.data.greeting).toBe('hello 2');
  });

  await test.step('the overview shows the protected cluster and the last job', async () => {
    await open(page, 'Overview', 'Overview');
    await expect(page.getByRole('table', { name: 'Clusters' })).toContainText('ACTIVE');
    const last = page.getByRole('table', { name: 'Last jobs' }).getByRole('row').filter({ hasText: 'web' });
    await expect(last).toContainText('COMPLETED');
    await expect(page.getByRole('list', { name: 'Summary' })).toContainText('1 of 1 clusters active');
    await shot(page, 'overview');
  });

  await test.step('cloud accounts, RDS and the audit log render', async () => {
    await open(page, 'Cloud accounts', 'Cloud accounts');
    await page.getByLabel('Account name').fill('aws-test');
    await page.getByRole('button', { name: 'Link account' }).click();
    await expect(page.getByRole('table', { name: 'Cloud accounts' })).toContainText('aws-test');
    await expect(page.getByLabel('ExternalId')).toBeVisible();
    // The role (moto's STS assumes it), then an inventory, which scans: the account page
    // lists what the scan found in an empty account (no CloudTrail trail, for one).
    const accountRow = page.getByRole('table', { name: 'Cloud accounts' }).getByRole('row').filter({ hasText: 'aws-test' });
    await accountRow.getByRole('button', { name: 'Set role' }).click();
    const roleForm = page.getByRole('form', { name: 'Set the role of aws-test' });
    await roleForm.getByLabel('Role ARN').fill(`arn:aws:iam::${env('ARCA_CONSOLE_AWS_ACCOUNT')}:role/arca-cross-account`);
    await roleForm.getByRole('button', { name: 'Set role' }).click();
    await expect(accountRow).toContainText('ACTIVE');
    await expect(accountRow).toContainText(env('ARCA_CONSOLE_AWS_ACCOUNT'));
    await shot(page, 'cloud-accounts');
    await accountRow.getByRole('button', { name: 'Inventory aws-test' }).click();
    await expect(accountRow, 'the inventory ran').toContainText(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ/, { timeout: 60_000 });
    await accountRow.getByRole('link', { name: 'aws-test' }).click();
    await expect(page.getByRole('heading', { level: 1, name: 'Cloud account' })).toBeVisible();
    const findings = page.getByRole('table', { name: 'Security findings' });
    await expect(findings).toContainText('CLOUDTRAIL.OFF');
    await expect(page.getByRole('list', { name: 'Open findings' })).toBeVisible();
    await page.getByLabel('Finding state').selectOption('RESOLVED');
    await expect(page.getByText('No finding.')).toBeVisible();
    await page.getByLabel('Finding state').selectOption('OPEN');
    await expect(findings).toContainText('CLOUDTRAIL.OFF');
    await shot(page, 'cloud-account');
    await expect(page.getByRole('table', { name: 'Inventory' })).toContainText(DB);

    // RDS on moto: a backup of the database run now, its point restored to a new instance,
    // and the database restored to its latest restorable time; each job completes.
    await open(page, 'RDS', 'RDS');
    const create = page.getByRole('form', { name: 'Create an RDS backup' });
    await create.getByLabel('RDS backup name').fill('orders');
    await create.getByLabel('Account').selectOption({ label: 'aws-test' });
    await create.getByLabel('Region', { exact: true }).fill('us-east-1');
    await create.getByLabel('DB instances').fill(DB);
    await create.getByRole('button', { name: 'Create RDS backup' }).click();
    const rdsRow = page.getByRole('table', { name: 'RDS backups' }).getByRole('row').filter({ hasText: 'orders' });
    await expect(rdsRow).toContainText(DB);
    await rdsRow.getByRole('button', { name: 'Run orders now' }).click();
    await expect(page).toHaveURL(/\/jobs\/job_/);
    await expect(page.locator('.facts'), 'the RDS backup completes').toContainText('COMPLETED', { timeout: 120_000 });
    await open(page, 'RDS', 'RDS');
    const point = page.getByRole('table', { name: 'RDS recovery points' }).getByRole('row').filter({ hasText: DB });
    await expect(point).toContainText('us-east-1');
    await point.getByLabel('New identifier').fill(`${DB}-copy`);
    await point.getByRole('button', { name: 'Restore' }).click();
    await expect(page).toHaveURL(/\/jobs\/job_/);
    await expect(page.locator('.facts'), 'the restore from the point completes').toContainText('COMPLETED', { timeout: 120_000 });
    await open(page, 'RDS', 'RDS');
    const pitr = page.getByRole('form', { name: 'Restore to a point in time' });
    await pitr.getByLabel('Database', { exact: true }).fill(DB);
    await pitr.getByLabel('New identifier').fill(`${DB}-pitr`);
    await pitr.getByRole('button', { name: 'Restore to that time' }).click();
    await expect(page).toHaveURL(/\/jobs\/job_/);
    await expect(page.locator('.facts'), 'the point-in-time restore completes').toContainText('COMPLETED', { timeout: 120_000 });
    await open(page, 'RDS', 'RDS');
    await shot(page, 'rds');
    await open(page, 'Audit log', 'Audit log');
    const audit = page.getByRole('table', { name: 'Audit records' });
    await expect(audit).toContainText('createPolicy');
    await expect(audit).toContainText('updatePolicy');
    await expect(audit).toContainText('updateBackupDefinition');
    await expect(audit).toContainText('createRestore');
    await page.getByLabel('Operation').fill('createBackupDefinition');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect(audit.getByRole('row')).toHaveCount(2);
    await shot(page, 'audit');
  });

  await test.step('a deep link and the phone width', async () => {
    await page.goto('/policies');
    await expect(page.getByRole('heading', { level: 1, name: 'Policies' })).toBeVisible();
    await shot(page, 'policies');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto('/');
    await expect(page.getByRole('heading', { level: 1, name: 'Overview' })).toBeVisible();
    await expect(page.getByRole('navigation', { name: 'Main' })).toBeHidden();
    await shot(page, 'phone-overview');
    await page.getByRole('button', { name: 'Menu' }).click();
    await open(page, 'Jobs', 'Jobs');
    await shot(page, 'phone-jobs');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await test.step('a viewer sees no button it cannot use', async () => {
    const created = await request.post('/v1/apikeys', {
      headers: { authorization: `Bearer ${adminKey}` },
      data: { name: 'viewer', role: 'viewer' },
    });
    expect(created.status()).toBe(201);
    const viewerKey = (await created.json()).secret as string;
    await page.getByRole('button', { name: 'Sign out' }).click();
    expect(await page.evaluate(() => sessionStorage.getItem('arca.apiKey'))).toBeNull();
    await page.getByLabel('API key').fill(viewerKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByRole('heading', { level: 1, name: 'Overview' })).toBeVisible();
    await expect(page.getByText('viewer ·')).toBeVisible();
    const nav = page.getByRole('navigation', { name: 'Main' });
    await expect(nav.getByRole('link', { name: 'Audit log' })).toHaveCount(0);
    const pages: [string, string][] = [
      ['Clusters', 'Clusters'],
      ['Backups', 'Backups'],
      ['Jobs', 'Jobs'],
      ['Recovery points', 'Recovery points'],
      ['Policies', 'Policies'],
      ['Destinations', 'Destinations'],
      ['Cloud accounts', 'Cloud accounts'],
      ['RDS', 'RDS'],
    ];
    for (const [link, heading] of pages) {
      await open(page, link, heading);
      await expect(page.getByText('Loading…')).toHaveCount(0);
      await expect(page.locator('main .error')).toHaveCount(0);
      // Every button left is navigation or the session's own: none mutates.
      const buttons = await page.locator('main button').allTextContents();
      expect(buttons, `${link}: a viewer gets no action buttons`).toEqual([]);
      await expect(page.locator('main form')).toHaveCount(0);
    }
    await shot(page, 'viewer-backups');
    await page.goto('/recovery-points');
    await page.getByRole('table', { name: 'Recovery points' }).getByRole('link').first().click();
    await expect(page.getByRole('heading', { level: 1, name: 'Recovery point' })).toBeVisible();
    await expect(page.getByRole('button', { name: 'Restore…' })).toHaveCount(0);
    // The API agrees: the viewer's key cannot run a backup.
    const run = await request.post('/v1/backups/web/run', { headers: { authorization: `Bearer ${viewerKey}` }, data: {} });
    expect(run.status()).toBe(403);
  });

  expect(problems, 'no error in the browser console (CSP violations included)').toEqual([]);
});
