// Policies: schedule rows (cron, retention), timezone, and which definitions use them.

import { useState } from 'preact/hooks';

import { all, type Json, post, remove } from '../api';
import { Action, Field, Form, IfRole, Loading, Page, Table, useLoad } from '../ui';

interface Row {
  cron: string;
  retainDays: string;
  keepLast: string;
}

export function PoliciesPage() {
  const loaded = useLoad(() => all('/v1/policies'));
  const [name, setName] = useState('');
  const [timezone, setTimezone] = useState('UTC');
  const [rows, setRows] = useState<Row[]>([{ cron: '0 2 * * *', retainDays: '14', keepLast: '' }]);
  const setRow = (i: number, change: Partial<Row>) => setRows(rows.map((r, j) => (i === j ? { ...r, ...change } : r)));
  return (
    <Page title="Policies">
      <IfRole role="admin">
        <Form
          label="Create a policy"
          submit="Create policy"
          action={async () => {
            await post('/v1/policies', {
              name: name.trim(),
              timezone: timezone.trim() || undefined,
              schedules: rows.map((r) => ({
                cron: r.cron.trim(),
                retainDays: Number(r.retainDays),
                keepLast: r.keepLast.trim() ? Number(r.keepLast) : null,
              })),
            });
            setName('');
            loaded.reload();
          }}
        >
          <Field label="Policy name" value={name} onInput={setName} required />
          <Field label="Timezone" value={timezone} onInput={setTimezone} hint="IANA name, e.g. Europe/Paris" />
          {rows.map((r, i) => (
            <fieldset>
              <legend>Schedule row {i + 1}</legend>
              <Field label={`Cron (row ${i + 1})`} value={r.cron} onInput={(v) => setRow(i, { cron: v })} required />
              <Field
                label={`Retain days (row ${i + 1})`}
                type="number"
                value={r.retainDays}
                onInput={(v) => setRow(i, { retainDays: v })}
                required
              />
              <Field label={`Keep last (row ${i + 1})`} type="number" value={r.keepLast} onInput={(v) => setRow(i, { keepLast: v })} />
              {rows.length > 1 && (
                <button type="button" onClick={() => setRows(rows.filter((_, j) => j !== i))}>
                  Remove row {i + 1}
                </button>
              )}
            </fieldset>
          ))}
          <button type="button" onClick={() => setRows([...rows, { cron: '0 * * * *', retainDays: '1', keepLast: '' }])}>
            Add schedule row
          </button>
        </Form>
      </IfRole>
      <Loading loaded={loaded}>
        {(policies) => (
          <Table
            label="Policies"
            rows={policies}
            columns={[
              { label: 'Name', cell: (p: Json) => p.name },
              {
                label: 'Schedules',
                cell: (p: Json) => (
                  <ul class="plain">
                    {(p.schedules ?? []).map((s: Json) => (
                      <li>
                        <code>{s.cron}</code> keep {s.retainDays} days{s.keepLast != null ? `, at least ${s.keepLast}` : ''}
                      </li>
                    ))}
                  </ul>
                ),
              },
              { label: 'Timezone', cell: (p: Json) => p.timezone ?? 'UTC' },
              { label: 'Suspended', cell: (p: Json) => (p.suspended ? 'yes' : 'no') },
              {
                label: 'Used by',
                cell: (p: Json) => (p.usedBy ?? []).map((u: Json) => `${u.name} (${u.kind})`).join(', ') || '—',
              },
              {
                label: 'Actions',
                cell: (p: Json) => (
                  <IfRole role="admin">
                    <Action
                      label="Delete"
                      name={`Delete policy ${p.name}`}
                      danger
                      action={async () => {
                        await remove(`/v1/policies/${p.id}`);
                        loaded.reload();
                      }}
                    />
                  </IfRole>
                ),
              },
            ]}
          />
        )}
      </Loading>
    </Page>
  );
}
