// One linked cloud account: what the last inventory found in each region (vanished
// resources marked) and the security scan's findings, worst first, with what to do.

import { useState } from 'preact/hooks';

import { get, type Json, post } from '../api';
import { Action, IfRole, Link, Loading, Page, Select, State, Table, useLoad, when } from '../ui';

const SEVERITIES = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];

/** A discovered resource's name, whatever its kind. */
const resourceName = (r: Json): string => r.identifier ?? r.name ?? r.volumeId ?? r.arn ?? '—';

export function CloudAccountPage({ id }: { id: string }) {
  const [state, setState] = useState('OPEN');
  const loaded = useLoad(async () => {
    const [account, inventory, findings] = await Promise.all([
      get(`/v1/cloud-accounts/${id}`),
      get(`/v1/cloud-accounts/${id}/inventory`),
      get(`/v1/cloud-accounts/${id}/findings?limit=200${state ? `&state=${state}` : ''}`),
    ]);
    return { account, inventory: inventory as Json[], findings };
  }, [id, state]);
  return (
    <Page title="Cloud account">
      <Loading loaded={loaded}>
        {({ account, inventory, findings }) => {
          const resources = inventory.flatMap((region: Json) =>
            (region.entries ?? []).map((e: Json) => ({ ...e, region: region.region })),
          );
          const scan = findings.lastScan;
          const items = [...findings.items].sort(
            (a: Json, b: Json) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity),
          );
          return (
            <>
              <dl class="facts">
                <dt>Name</dt>
                <dd>{account.name}</dd>
                <dt>State</dt>
                <dd>
                  <State value={account.state} />
                </dd>
                <dt>AWS account</dt>
                <dd>{account.awsAccountId ?? '—'}</dd>
                <dt>Regions</dt>
                <dd>{(account.regions ?? []).join(', ')}</dd>
                <dt>Last scan</dt>
                <dd>{scan ? when(scan.scannedAt) : 'never'}</dd>
              </dl>
              <IfRole role="operator">
                <Action
                  label="Run inventory and scan"
                  name={`Inventory ${account.name}`}
                  action={async () => {
                    await post(`/v1/cloud-accounts/${id}/inventory`);
                    loaded.reload();
                  }}
                />
              </IfRole>
              <h2>Inventory</h2>
              <Table
                label="Inventory"
                rows={resources}
                empty="Nothing found yet: run the inventory."
                columns={[
                  { label: 'Kind', cell: (r: Json) => r.kind },
                  { label: 'Name', cell: (r: Json) => resourceName(r) },
                  { label: 'Region', cell: (r: Json) => r.region },
                  { label: 'First seen', cell: (r: Json) => when(r.firstSeenAt) },
                  { label: 'Vanished', cell: (r: Json) => (r.vanishedAt ? when(r.vanishedAt) : '—') },
                ]}
              />
              <h2>Security findings</h2>
              {scan && (
                <ul class="tiles" aria-label="Open findings">
                  {SEVERITIES.map((s) => (
                    <li>
                      {scan.open?.[s.toLowerCase()] ?? 0} {s.toLowerCase()}
                    </li>
                  ))}
                </ul>
              )}
              {scan?.skipped && <p class="hint">Not scanned: {scan.skipped}</p>}
              {(scan?.regions ?? [])
                .filter((r: Json) => (r.notEvaluated ?? []).length > 0)
                .map((r: Json) => (
                  <p class="hint">
                    {r.region}: {r.notEvaluated.length} rules not evaluated (
                    {r.notEvaluated.map((n: Json) => `${n.ruleId}: ${n.reason}`).join('; ')})
                  </p>
                ))}
              <Select
                label="Finding state"
                value={state}
                onChange={setState}
                options={[
                  { value: 'OPEN', label: 'Open' },
                  { value: 'RESOLVED', label: 'Resolved' },
                  { value: '', label: 'All' },
                ]}
              />
              <Table
                label="Security findings"
                rows={items}
                empty={scan ? 'No finding.' : 'Not scanned yet: run the inventory.'}
                columns={[
                  { label: 'Severity', cell: (f: Json) => <State value={f.severity} /> },
                  { label: 'Rule', cell: (f: Json) => <span title={f.title}>{f.ruleId}</span> },
                  { label: 'Resource', cell: (f: Json) => <code>{f.resourceArn}</code> },
                  { label: 'Region', cell: (f: Json) => f.region },
                  { label: 'Detail', cell: (f: Json) => f.detail },
                  { label: 'Remediation', cell: (f: Json) => f.remediation },
                  { label: 'State', cell: (f: Json) => f.state },
                  { label: 'Last seen', cell: (f: Json) => when(f.lastSeenAt) },
                ]}
              />
              <p>
                <Link to="/cloud-accounts">All cloud accounts</Link>
              </p>
            </>
          );
        }}
      </Loading>
    </Page>
  );
}
