// Recovery points and their contents (counts per kind and per namespace, issues).

import { all, get, type Json, remove } from '../api';
import { Action, bytes, IfRole, Link, Loading, navigate, Page, State, Table, useLoad, when } from '../ui';

export function PointsPage() {
  const query = new URLSearchParams(location.search);
  const definitionId = query.get('definitionId');
  const loaded = useLoad(
    () => all(`/v1/recoverypoints?limit=100${definitionId ? `&definitionId=${encodeURIComponent(definitionId)}` : ''}`, 300),
    [definitionId],
    10000,
  );
  return (
    <Page title="Recovery points">
      <Loading loaded={loaded}>
        {(points) => (
          <Table
            label="Recovery points"
            rows={points}
            empty="No recovery point yet."
            columns={[
              { label: 'Point', cell: (p: Json) => <Link to={`/recovery-points/${p.id}`}>{p.id}</Link> },
              { label: 'State', cell: (p: Json) => <State value={p.state} /> },
              { label: 'Type', cell: (p: Json) => p.type },
              { label: 'Objects', cell: (p: Json) => p.resourceCount ?? 0 },
              { label: 'Volumes', cell: (p: Json) => p.pvCount ?? 0 },
              { label: 'Created', cell: (p: Json) => when(p.createdAt) },
              { label: 'Expires', cell: (p: Json) => when(p.expiresAt) },
            ]}
          />
        )}
      </Loading>
    </Page>
  );
}

function Counts({ label, counts }: { label: string; counts: Record<string, number> }) {
  const rows = Object.entries(counts ?? {}).map(([k, n]) => ({ k, n }));
  return (
    <Table
      label={label}
      rows={rows}
      empty="None."
      columns={[
        { label: label.replace('Objects per ', ''), cell: (r) => r.k },
        { label: 'Count', cell: (r) => r.n },
      ]}
    />
  );
}

export function PointPage({ id }: { id: string }) {
  const loaded = useLoad(() => get(`/v1/recoverypoints/${id}`), [id]);
  return (
    <Page title="Recovery point">
      <Loading loaded={loaded}>
        {(p: Json) => (
          <>
            <dl class="facts">
              <dt>Id</dt>
              <dd>{p.id}</dd>
              <dt>State</dt>
              <dd>
                <State value={p.state} />
                {p.partial ? ' (partial)' : ''}
              </dd>
              <dt>Objects</dt>
              <dd>{p.resourceCount ?? 0}</dd>
              <dt>Volumes</dt>
              <dd>{p.pvCount ?? 0}</dd>
              <dt>Data</dt>
              <dd>
                {bytes(p.snapshotBytes)} snapshots, {bytes(p.copyBytes)} copied
              </dd>
              <dt>Created</dt>
              <dd>{when(p.createdAt)}</dd>
              <dt>Expires</dt>
              <dd>{when(p.expiresAt)}</dd>
              <dt>Job</dt>
              <dd>
                <Link to={`/jobs/${p.jobId}`}>{p.jobId}</Link>
              </dd>
            </dl>
            <div class="actions">
              <IfRole role="operator">
                <button type="button" onClick={() => navigate(`/restore?recoveryPointId=${p.id}`)}>
                  Restore…
                </button>
              </IfRole>
              <IfRole role="admin">
                <Action
                  label="Delete"
                  name={`Delete recovery point ${p.id}`}
                  danger
                  action={async () => {
                    await remove(`/v1/recoverypoints/${p.id}`);
                    navigate('/recovery-points');
                  }}
                />
              </IfRole>
            </div>
            <h2>Contents</h2>
            <div class="two">
              <Counts label="Objects per kind" counts={p.countsByKind} />
              <Counts label="Objects per namespace" counts={p.countsByNamespace} />
            </div>
            {(p.errorCount > 0 || p.warningCount > 0) && (
              <details open={p.errorCount > 0}>
                <summary>
                  Issues: {p.errorCount ?? 0} errors, {p.warningCount ?? 0} warnings (objects left out, and why)
                </summary>
                <Table
                  label="Issues"
                  rows={[...(p.errors ?? []).map((e: Json) => ({ ...e, level: 'error' })), ...(p.warnings ?? []).map((w: Json) => ({ ...w, level: 'warning' }))]}
                  columns={[
                    { label: 'Level', cell: (i: Json) => i.level },
                    { label: 'Resource', cell: (i: Json) => `${i.resource} ${i.namespace ?? ''}/${i.name}` },
                    { label: 'Reason', cell: (i: Json) => i.reason },
                  ]}
                />
              </details>
            )}
          </>
        )}
      </Loading>
    </Page>
  );
}
