// The audit log (admin): who changed what, newest first.

import { useState } from 'preact/hooks';

import { all, type Json } from '../api';
import { Field, Loading, Page, Table, useLoad, when } from '../ui';

export function AuditPage() {
  const [operation, setOperation] = useState('');
  const [applied, setApplied] = useState('');
  const loaded = useLoad(
    () => all(`/v1/audit?limit=100${applied ? `&operation=${encodeURIComponent(applied)}` : ''}`, 200),
    [applied],
  );
  return (
    <Page title="Audit log">
      <form
        class="filters"
        aria-label="Filter"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(operation.trim());
        }}
      >
        <Field label="Operation" value={operation} onInput={setOperation} placeholder="e.g. createPolicy, runBackupNow" />
        <button type="submit">Filter</button>
      </form>
      <Loading loaded={loaded}>
        {(records) => (
          <Table
            label="Audit records"
            rows={records}
            empty="No record."
            columns={[
              { label: 'When', cell: (r: Json) => when(r.at) },
              { label: 'Key', cell: (r: Json) => `${r.keyName} (${r.role})` },
              { label: 'Operation', cell: (r: Json) => r.operation },
              { label: 'Call', cell: (r: Json) => `${r.method} ${r.route}` },
              { label: 'Targets', cell: (r: Json) => (r.targetIds ?? []).join(', ') },
              { label: 'Status', cell: (r: Json) => r.status },
            ]}
          />
        )}
      </Loading>
    </Page>
  );
}
