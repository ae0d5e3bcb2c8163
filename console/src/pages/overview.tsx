// At a glance: the clusters and their state, each backup's last job, what failed or was
// skipped and why, and the data held by recovery points. Composed from the list routes.

import { all, type Json } from '../api';
import { bytes, Link, Loading, Page, State, Table, useLoad, when } from '../ui';

const BAD = ['FAILED', 'SKIPPED', 'PARTIAL', 'CANCELED'];

export function OverviewPage() {
  const loaded = useLoad(
    async () => {
      const [clusters, backups, jobs, points] = await Promise.all([
        all('/v1/clusters'),
        all('/v1/backups'),
        all('/v1/jobs?limit=100', 200),
        all('/v1/recoverypoints?limit=100', 1000),
      ]);
      return { clusters, backups, jobs, points };
    },
    [],
    10000,
  );
  return (
    <Page title="Overview">
      <Loading loaded={loaded}>
        {({ clusters, backups, jobs, points }) => {
          const lastJob = (b: Json) => jobs.find((j: Json) => j.definitionId === b.id);
          const problems = jobs.filter((j: Json) => BAD.includes(j.state)).slice(0, 20);
          const stored = points.reduce((n: number, p: Json) => n + (p.copyBytes ?? 0) + (p.snapshotBytes ?? 0), 0);
          const active = clusters.filter((c: Json) => c.state === 'ACTIVE').length;
          const protectedIds = new Set(backups.map((b: Json) => b.clusterId));
          const clusterName = (id: string) => clusters.find((c: Json) => c.id === id)?.name ?? id;
          return (
            <>
              <ul class="tiles" aria-label="Summary">
                <li>
                  <strong>{active}</strong> of {clusters.length} clusters active
                </li>
                <li>
                  <strong>{clusters.filter((c: Json) => protectedIds.has(c.id)).length}</strong> protected by a backup
                </li>
                <li>
                  <strong>{problems.length}</strong> recent failures and skips
                </li>
                <li>
                  <strong>{bytes(stored)}</strong> of volume snapshots and copies in {points.length} recovery
                  point{points.length === 1 ? '' : 's'}
                </li>
              </ul>
              <h2>Clusters</h2>
              <Table
                label="Clusters"
                rows={clusters}
                empty="No cluster yet: register one under Clusters."
                columns={[
                  { label: 'Name', cell: (c: Json) => <Link to={`/clusters/${c.id}`}>{c.name}</Link> },
                  { label: 'State', cell: (c: Json) => <State value={c.state} /> },
                  { label: 'Protected', cell: (c: Json) => (protectedIds.has(c.id) ? 'yes' : 'no') },
                  { label: 'Last heartbeat', cell: (c: Json) => when(c.lastHeartbeatAt) },
                ]}
              />
              <h2>Backups and their last job</h2>
              <Table
                label="Last jobs"
                rows={backups}
                empty="No backup yet."
                columns={[
                  { label: 'Backup', cell: (b: Json) => b.name },
                  { label: 'Cluster', cell: (b: Json) => clusterName(b.clusterId) },
                  {
                    label: 'Last job',
                    cell: (b: Json) => {
                      const j = lastJob(b);
                      return j ? (
                        <Link to={`/jobs/${j.id}`}>
                          <State value={j.state} />
                        </Link>
                      ) : (
                        'never ran'
                      );
                    },
                  },
                  { label: 'When', cell: (b: Json) => when(lastJob(b)?.endedAt ?? lastJob(b)?.createdAt) },
                  { label: 'Paused', cell: (b: Json) => (b.paused ? 'paused' : 'no') },
                ]}
              />
              <h2>Failures and skips</h2>
              <Table
                label="Failures and skips"
                rows={problems}
                empty="No failed or skipped job recently."
                columns={[
                  { label: 'Job', cell: (j: Json) => <Link to={`/jobs/${j.id}`}>{j.id}</Link> },
                  { label: 'Type', cell: (j: Json) => j.type },
                  { label: 'State', cell: (j: Json) => <State value={j.state} /> },
                  { label: 'Reason', cell: (j: Json) => j.reason ?? '—' },
                  { label: 'When', cell: (j: Json) => when(j.endedAt ?? j.createdAt) },
                ]}
              />
            </>
          );
        }}
      </Loading>
    </Page>
  );
}
