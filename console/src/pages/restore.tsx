// The restore wizard (what, where, how) and a restore's per-object results.

import { useState } from 'preact/hooks';

import { all, get, type Json, post } from '../api';
import {
  Check,
  ErrorNote,
  Field,
  Link,
  Loading,
  navigate,
  Page,
  parseMap,
  Select,
  State,
  Table,
  list,
  useLoad,
  when,
} from '../ui';

const STEPS = ['Recovery point', 'Target', 'Namespaces', 'Options', 'Review'];

export function RestoreWizard() {
  const loaded = useLoad(async () => {
    const [points, clusters] = await Promise.all([all('/v1/recoverypoints?limit=100', 300), all('/v1/clusters')]);
    return { points, clusters };
  });
  return (
    <Page title="Restore">
      <Loading loaded={loaded}>{(d) => <Wizard points={d.points} clusters={d.clusters} />}</Loading>
    </Page>
  );
}

function Wizard({ points, clusters }: { points: Json[]; clusters: Json[] }) {
  const usable = points.filter((p) => p.state === 'READY');
  const initial = new URLSearchParams(location.search).get('recoveryPointId') ?? usable[0]?.id ?? '';
  const [step, setStep] = useState(0);
  const [pointId, setPointId] = useState(initial);
  const [target, setTarget] = useState(clusters.find((c) => c.state === 'ACTIVE')?.id ?? clusters[0]?.id ?? '');
  const [namespaces, setNamespaces] = useState('');
  const [prefix, setPrefix] = useState('');
  const [suffix, setSuffix] = useState('');
  const [nsMap, setNsMap] = useState('');
  const [scMap, setScMap] = useState('');
  const [existing, setExisting] = useState('skip');
  const [pvs, setPvs] = useState(true);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const point = points.find((p) => p.id === pointId);
  const clusterName = (id: string) => clusters.find((c) => c.id === id)?.name ?? id;
  if (points.length === 0) return <p class="empty">No recovery point to restore yet.</p>;
  const body = () => ({
    recoveryPointId: pointId,
    targetClusterId: target,
    selection: namespaces.trim() ? { namespaces: list(namespaces) } : {},
    namespacePrefix: prefix.trim(),
    namespaceSuffix: suffix.trim(),
    namespaceMap: parseMap(nsMap),
    storageClassMap: parseMap(scMap),
    existingResourcePolicy: existing,
    restorePvs: pvs,
  });
  const next = () => {
    setError(undefined);
    try {
      if (step === 3) body();
      setStep(step + 1);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <form
      class="card wizard"
      aria-label="Restore wizard"
      onSubmit={async (e) => {
        e.preventDefault();
        if (step < STEPS.length - 1) return next();
        setBusy(true);
        setError(undefined);
        try {
          const created = await post('/v1/restores', body());
          navigate(`/restores/${created.restore.id}`);
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <ol class="steps" aria-label="Steps">
        {STEPS.map((s, i) => (
          <li aria-current={i === step ? 'step' : undefined}>{s}</li>
        ))}
      </ol>
      <h2>
        Step {step + 1}: {STEPS[step]}
      </h2>
      {step === 0 && (
        <>
          <Select
            label="Recovery point"
            value={pointId}
            onChange={setPointId}
            options={points.map((p) => ({
              value: p.id,
              label: `${p.id} · ${clusterName(p.clusterId)} · ${when(p.createdAt)} · ${p.resourceCount ?? 0} objects`,
            }))}
          />
          {point && (
            <p class="hint">
              Namespaces in it: {Object.keys(point.countsByNamespace ?? {}).join(', ') || '—'}
            </p>
          )}
        </>
      )}
      {step === 1 && (
        <Select
          label="Target cluster"
          value={target}
          onChange={setTarget}
          options={clusters.map((c) => ({ value: c.id, label: `${c.name} (${c.state})` }))}
        />
      )}
      {step === 2 && (
        <>
          <Field label="Namespaces to restore" value={namespaces} onInput={setNamespaces} hint="Comma-separated; empty: all" />
          <Field label="Namespace prefix" value={prefix} onInput={setPrefix} />
          <Field label="Namespace suffix" value={suffix} onInput={setSuffix} />
          <Field label="Namespace map" value={nsMap} onInput={setNsMap} hint="old=new, comma-separated" />
        </>
      )}
      {step === 3 && (
        <>
          <Field label="Storage class map" value={scMap} onInput={setScMap} hint="old=new, comma-separated" />
          <Select
            label="Existing resources"
            value={existing}
            onChange={setExisting}
            options={[
              { value: 'skip', label: 'Skip them' },
              { value: 'update', label: 'Update them' },
              { value: 'fail', label: 'Fail on them' },
            ]}
          />
          <Check label="Restore persistent volumes" checked={pvs} onChange={setPvs} />
        </>
      )}
      {step === 4 && (
        <dl class="facts" aria-label="Review">
          <dt>Recovery point</dt>
          <dd>{pointId}</dd>
          <dt>Target cluster</dt>
          <dd>{clusterName(target)}</dd>
          <dt>Namespaces</dt>
          <dd>{namespaces || 'all'}</dd>
          <dt>Renaming</dt>
          <dd>{[prefix && `prefix ${prefix}`, suffix && `suffix ${suffix}`, nsMap && `map ${nsMap}`].filter(Boolean).join('; ') || 'none'}</dd>
          <dt>Storage classes</dt>
          <dd>{scMap || 'unchanged'}</dd>
          <dt>Existing resources</dt>
          <dd>{existing}</dd>
          <dt>Volumes</dt>
          <dd>{pvs ? 'restored' : 'not restored'}</dd>
        </dl>
      )}
      <ErrorNote error={error} />
      <div class="actions">
        {step > 0 && (
          <button type="button" onClick={() => setStep(step - 1)}>
            Back
          </button>
        )}
        <button type="submit" disabled={busy}>
          {step < STEPS.length - 1 ? 'Next' : 'Start restore'}
        </button>
      </div>
    </form>
  );
}

export function RestorePage({ id }: { id: string }) {
  const loaded = useLoad(
    async () => {
      const restore = await get(`/v1/restores/${id}`);
      const [job, objects] = await Promise.all([get(`/v1/jobs/${restore.jobId}`), all(`/v1/restores/${id}/objects?limit=100`, 2000)]);
      return { restore, job, objects };
    },
    [id],
    2000,
  );
  return (
    <Page title="Restore results">
      <Loading loaded={loaded}>
        {({ restore, job, objects }) => {
          const counts: Record<string, number> = {};
          for (const o of objects) counts[o.outcome] = (counts[o.outcome] ?? 0) + 1;
          return (
            <>
              <dl class="facts">
                <dt>Restore</dt>
                <dd>{restore.id}</dd>
                <dt>State</dt>
                <dd>
                  <Link to={`/jobs/${job.id}`}>
                    <State value={job.state} />
                  </Link>
                  {job.reason ? ` ${job.reason}` : ''}
                </dd>
                <dt>From</dt>
                <dd>
                  <Link to={`/recovery-points/${restore.recoveryPointId}`}>{restore.recoveryPointId}</Link>
                </dd>
                <dt>Outcomes</dt>
                <dd aria-label="Outcome counts">
                  {Object.entries(counts)
                    .map(([k, n]) => `${n} ${k}`)
                    .join(', ') || '—'}
                </dd>
              </dl>
              <h2>Objects</h2>
              <Table
                label="Restored objects"
                rows={objects}
                empty="No result yet."
                columns={[
                  { label: 'Resource', cell: (o: Json) => o.resource },
                  { label: 'Namespace', cell: (o: Json) => o.namespace ?? '' },
                  { label: 'Name', cell: (o: Json) => o.name },
                  { label: 'Outcome', cell: (o: Json) => <State value={o.outcome} /> },
                  { label: 'Reason', cell: (o: Json) => o.reason ?? '' },
                ]}
              />
            </>
          );
        }}
      </Loading>
    </Page>
  );
}
