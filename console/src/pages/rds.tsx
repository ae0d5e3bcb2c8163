// RDS: backup definitions (run now, pause/resume), recovery points, restores from a point
// or to a point in time.

import { useState } from 'preact/hooks';

import { all, call, type Json, post } from '../api';
import { Action, Check, Field, Form, IfRole, Link, Loading, navigate, Page, Select, State, Table, list, useLoad, when } from '../ui';

export function RdsPage() {
  const loaded = useLoad(async () => {
    const [backups, points, accounts, policies] = await Promise.all([
      all('/v1/rds-backups'),
      all('/v1/rds-recoverypoints?limit=100', 300),
      all('/v1/cloud-accounts'),
      all('/v1/policies'),
    ]);
    return { backups, points, accounts, policies };
  });
  return (
    <Page title="RDS">
      <Loading loaded={loaded}>
        {({ backups, points, accounts, policies }) => (
          <>
            <IfRole role="admin">
              <CreateRdsBackup accounts={accounts} policies={policies} done={loaded.reload} />
            </IfRole>
            <h2>RDS backups</h2>
            <Table
              label="RDS backups"
              rows={backups}
              empty="No RDS backup."
              columns={[
                { label: 'Name', cell: (b: Json) => b.name },
                { label: 'Region', cell: (b: Json) => b.region },
                {
                  label: 'Databases',
                  cell: (b: Json) =>
                    (b.databases ?? []).map((d: Json) => d.identifier).join(', ') || (b.tag ? `tag ${b.tag.key}=${b.tag.value}` : '—'),
                },
                { label: 'Copy to', cell: (b: Json) => b.copy?.destinationRegion ?? '—' },
                { label: 'Paused', cell: (b: Json) => (b.paused ? 'paused' : 'no') },
                {
                  label: 'Actions',
                  cell: (b: Json) => (
                    <IfRole role="operator">
                      <div class="row-actions">
                        <Action
                          label="Run now"
                          name={`Run ${b.name} now`}
                          action={async () => navigate(`/jobs/${(await post(`/v1/rds-backups/${b.id}/run`)).id}`)}
                        />
                        <Action
                          label={b.paused ? 'Resume' : 'Pause'}
                          name={`${b.paused ? 'Resume' : 'Pause'} ${b.name}`}
                          action={async () => {
                            await call('POST', `/v1/rds-backups/${b.id}/${b.paused ? 'resume' : 'pause'}`, {});
                            loaded.reload();
                          }}
                        />
                      </div>
                    </IfRole>
                  ),
                },
              ]}
            />
            <h2>RDS recovery points</h2>
            <Table
              label="RDS recovery points"
              rows={points}
              empty="No RDS recovery point."
              columns={[
                { label: 'Point', cell: (p: Json) => p.id },
                { label: 'State', cell: (p: Json) => <State value={p.state} /> },
                { label: 'Database', cell: (p: Json) => p.database?.identifier ?? p.sourceIdentifier ?? '—' },
                { label: 'Region', cell: (p: Json) => p.snapshot?.region ?? '—' },
                { label: 'Created', cell: (p: Json) => when(p.createdAt) },
                {
                  label: 'Restore',
                  cell: (p: Json) => (
                    <IfRole role="operator">
                      <RdsRestore point={p} accounts={accounts} />
                    </IfRole>
                  ),
                },
              ]}
            />
            <IfRole role="operator">
              <PointInTimeRestore accounts={accounts} />
            </IfRole>
            <p>
              Restores run as jobs: see <Link to="/jobs">Jobs</Link>.
            </p>
          </>
        )}
      </Loading>
    </Page>
  );
}

function CreateRdsBackup(props: { accounts: Json[]; policies: Json[]; done: () => void }) {
  const [name, setName] = useState('');
  const [account, setAccount] = useState(props.accounts[0]?.id ?? '');
  const [region, setRegion] = useState(props.accounts[0]?.regions?.[0] ?? 'us-east-1');
  const [instances, setInstances] = useState('');
  const [policyId, setPolicyId] = useState('');
  const [copyTo, setCopyTo] = useState('');
  if (props.accounts.length === 0) return <p class="hint">Link a cloud account to back up RDS databases.</p>;
  return (
    <Form
      label="Create an RDS backup"
      submit="Create RDS backup"
      action={async () => {
        await post('/v1/rds-backups', {
          name: name.trim(),
          cloudAccountId: account,
          region: region.trim(),
          databases: list(instances).map((identifier) => ({ identifier })),
          policyId: policyId || null,
          copy: copyTo.trim() ? { destinationRegion: copyTo.trim() } : null,
        });
        setName('');
        props.done();
      }}
    >
      <Field label="RDS backup name" value={name} onInput={setName} required />
      <Select label="Account" value={account} onChange={setAccount} options={props.accounts.map((a) => ({ value: a.id, label: a.name }))} />
      <Field label="Region" value={region} onInput={setRegion} required />
      <Field label="DB instances" value={instances} onInput={setInstances} hint="Comma-separated identifiers" required />
      <Select
        label="Policy"
        value={policyId}
        onChange={setPolicyId}
        options={[{ value: '', label: 'None (on demand only)' }, ...props.policies.map((p) => ({ value: p.id, label: p.name }))]}
      />
      <Field label="Copy to region" value={copyTo} onInput={setCopyTo} />
    </Form>
  );
}

function RdsRestore({ point, accounts }: { point: Json; accounts: Json[] }) {
  const [target, setTarget] = useState('');
  return (
    <Form
      label={`Restore ${point.id}`}
      submit="Restore"
      action={async () => {
        const job = await post('/v1/rds-restores', {
          cloudAccountId: point.cloudAccountId ?? accounts[0]?.id,
          source: { kind: 'RECOVERY_POINT', recoveryPointId: point.id },
          target: { identifier: target.trim() },
        });
        navigate(`/jobs/${job.id}`);
      }}
    >
      <Field label="New identifier" value={target} onInput={setTarget} required />
    </Form>
  );
}

/** A database as it was at a time of its retention window (empty: its latest restorable time). */
function PointInTimeRestore({ accounts }: { accounts: Json[] }) {
  const [account, setAccount] = useState(accounts[0]?.id ?? '');
  const [region, setRegion] = useState(accounts[0]?.regions?.[0] ?? 'us-east-1');
  const [database, setDatabase] = useState('');
  const [cluster, setCluster] = useState(false);
  const [time, setTime] = useState('');
  const [target, setTarget] = useState('');
  if (accounts.length === 0) return null;
  return (
    <Form
      label="Restore to a point in time"
      submit="Restore to that time"
      action={async () => {
        const at = time ? new Date(time) : null;
        if (at && Number.isNaN(at.getTime())) throw new Error(`"${time}" is not a time`);
        const job = await post('/v1/rds-restores', {
          cloudAccountId: account,
          source: {
            kind: 'POINT_IN_TIME',
            region: region.trim(),
            database: { identifier: database.trim(), cluster },
            restoreTime: at ? at.toISOString() : null,
            useLatestRestorableTime: !at,
          },
          target: { identifier: target.trim() },
        });
        navigate(`/jobs/${job.id}`);
      }}
    >
      <Select label="Account" value={account} onChange={setAccount} options={accounts.map((a) => ({ value: a.id, label: a.name }))} />
      <Field label="Region" value={region} onInput={setRegion} required />
      <Field label="Database" value={database} onInput={setDatabase} hint="DB instance (or Aurora cluster) identifier" required />
      <Check label="Aurora or Multi-AZ DB cluster" checked={cluster} onChange={setCluster} />
      <Field label="Restore time" type="datetime-local" value={time} onInput={setTime} hint="Your local time; empty: the latest restorable time" />
      <Field label="New identifier" value={target} onInput={setTarget} required />
    </Form>
  );
}
