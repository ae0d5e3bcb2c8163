// Policies: schedule rows (cron, retention), timezone, and which definitions use them;
// created and edited here.

import { useState } from 'preact/hooks';

import { all, edit, type Json, post, remove } from '../api';
import { Action, EditButton, Field, Form, IfRole, Loading, Page, Table, useLoad } from '../ui';

interface Row {
  cron: string;
  retainDays: string;
  keepLast: string;
}

export function PoliciesPage() {
  const loaded = useLoad(() => all('/v1/policies'));
  // The policy being edited (its form replaces the create form), or none.
  const [editing, setEditing] = useState<Json | null>(null);
  return (
    <Page title="Policies">
      <IfRole role="admin">
        <PolicyForm
          key={editing?.id ?? 'new'}
          editing={editing}
          done={() => {
            setEditing(null);
            loaded.reload();
          }}
        />
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
                    <div class="row-actions">
                      <EditButton name={`Edit policy ${p.name}`} onEdit={() => setEditing(p)} />
                      <Action
                        label="Delete"
                        name={`Delete policy ${p.name}`}
                        danger
                        action={async () => {
                          await remove(`/v1/policies/${p.id}`);
                          loaded.reload();
                        }}
                      />
                    </div>
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

/** The members of a policy its PUT takes. */
const POLICY_BODY = ['name', 'timezone', 'schedules', 'suspended'];

const rowOf = (s: Json): Row => ({
  cron: s.cron,
  retainDays: String(s.retainDays),
  keepLast: s.keepLast != null ? String(s.keepLast) : '',
});

/** Creates a policy, or edits `editing` (a conditional replace: see `edit`). */
function PolicyForm({ editing, done }: { editing: Json | null; done: () => void }) {
  const [name, setName] = useState<string>(editing?.name ?? '');
  const [timezone, setTimezone] = useState<string>(editing?.timezone ?? 'UTC');
  const [rows, setRows] = useState<Row[]>(
    editing ? (editing.schedules ?? []).map(rowOf) : [{ cron: '0 2 * * *', retainDays: '14', keepLast: '' }],
  );
  const setRow = (i: number, change: Partial<Row>) => setRows(rows.map((r, j) => (i === j ? { ...r, ...change } : r)));
  const fields = () => ({
    name: name.trim(),
    timezone: timezone.trim() || 'UTC',
    schedules: rows.map((r) => ({
      cron: r.cron.trim(),
      retainDays: Number(r.retainDays),
      keepLast: r.keepLast.trim() ? Number(r.keepLast) : null,
    })),
  });
  return (
    <Form
      label={editing ? `Edit policy ${editing.name}` : 'Create a policy'}
      submit={editing ? 'Save policy' : 'Create policy'}
      cancel={editing ? done : undefined}
      action={async () => {
        if (editing) {
          await edit(`/v1/policies/${editing.id}`, POLICY_BODY, (body) => ({ ...body, ...fields() }));
        } else {
          await post('/v1/policies', fields());
          setName('');
        }
        done();
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
  );
}
