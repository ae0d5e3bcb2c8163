// Jobs, with live progress: the list and each job refresh while they run.

import { all, call, get, type Json } from '../api';
import { Action, bytes, IfRole, Link, Loading, Page, State, Table, useLoad, when } from '../ui';

const DONE = ['COMPLETED', 'PARTIAL', 'FAILED', 'SKIPPED', 'CANCELED'];

export function JobsPage() {
  const loaded = useLoad(() => all('/v1/jobs?limit=50', 100), [], 3000);
  return (
    <Page title="Jobs">
      <Loading loaded={loaded}>
        {(jobs) => (
          <Table
            label="Jobs"
            rows={jobs}
            empty="No job yet."
            columns={[
              { label: 'Job', cell: (j: Json) => <Link to={`/jobs/${j.id}`}>{j.id}</Link> },
              { label: 'Type', cell: (j: Json) => j.type },
              { label: 'State', cell: (j: Json) => <State value={j.state} /> },
              { label: 'Trigger', cell: (j: Json) => j.trigger },
              { label: 'Progress', cell: (j: Json) => <Progress job={j} /> },
              { label: 'Reason', cell: (j: Json) => j.reason ?? '' },
              { label: 'Created', cell: (j: Json) => when(j.createdAt) },
            ]}
          />
        )}
      </Loading>
    </Page>
  );
}

function Progress({ job }: { job: Json }) {
  const p = job.progress ?? {};
  const c = job.counters ?? {};
  const pct = p.estimatedBytes ? Math.min(100, Math.round((100 * p.transferredBytes) / p.estimatedBytes)) : null;
  return (
    <span>
      {c.resources ?? 0} objects
      {p.totalPvs ? `, ${p.completedPvs}/${p.totalPvs} volumes` : ''}
      {pct !== null && (
        <>
          , <progress max={100} value={pct} aria-label="Bytes transferred" /> {bytes(p.transferredBytes)}
        </>
      )}
    </span>
  );
}

export function JobPage({ id }: { id: string }) {
  const loaded = useLoad(() => get(`/v1/jobs/${id}`), [id], 2000);
  return (
    <Page title="Job">
      <Loading loaded={loaded}>
        {(j: Json) => (
          <>
            <dl class="facts">
              <dt>Id</dt>
              <dd>{j.id}</dd>
              <dt>Type</dt>
              <dd>{j.type}</dd>
              <dt>State</dt>
              <dd>
                <State value={j.state} />
              </dd>
              <dt>Reason</dt>
              <dd>{j.reason ?? '—'}</dd>
              <dt>Progress</dt>
              <dd>
                <Progress job={j} />
              </dd>
              <dt>Errors / warnings</dt>
              <dd>
                {j.counters?.errors ?? 0} / {j.counters?.warnings ?? 0}
              </dd>
              <dt>Started</dt>
              <dd>{when(j.startedAt)}</dd>
              <dt>Ended</dt>
              <dd>{when(j.endedAt)}</dd>
              {j.recoveryPointId && (
                <>
                  <dt>Recovery point</dt>
                  <dd>
                    <Link to={`/recovery-points/${j.recoveryPointId}`}>{j.recoveryPointId}</Link>
                  </dd>
                </>
              )}
              {j.restoreId && (
                <>
                  <dt>Restore</dt>
                  <dd>
                    <Link to={`/restores/${j.restoreId}`}>{j.restoreId}</Link>
                  </dd>
                </>
              )}
            </dl>
            {!DONE.includes(j.state) && (
              <IfRole role="operator">
                <Action
                  label="Cancel"
                  name="Cancel job"
                  danger
                  action={async () => {
                    await call('POST', `/v1/jobs/${id}/cancel`, {});
                    loaded.reload();
                  }}
                />
              </IfRole>
            )}
            <h2>Activity</h2>
            <ol class="activity" aria-live="polite">
              {(j.activity ?? []).map((a: Json) => (
                <li>
                  <time>{when(a.at)}</time> {a.message}
                </li>
              ))}
            </ol>
          </>
        )}
      </Loading>
    </Page>
  );
}
