import type { Answer } from '../api';
import { DataTable, date } from './ui';

type Entry = Answer<'/api/audit', 'get'>['data'][number];

/** Audit rows as the log and a customer's trail show them (`full`: with the target and the request id). */
export function AuditTable({ label, rows, full = false }: { label: string; rows: Entry[]; full?: boolean }) {
  return (
    <DataTable
      label={label}
      rows={rows}
      rowKey={(a) => a.id}
      columns={[
        { head: 'When', cell: (a) => date(a.at) },
        { head: 'Who', cell: (a) => a.actor_id ?? a.actor },
        { head: 'Action', cell: (a) => a.action },
        { head: 'Outcome', cell: (a) => a.outcome },
        full && { head: 'Target', cell: (a) => (a.target_id ? <code>{a.target_id.slice(0, 13)}</code> : '—') },
        full && { head: 'Request', cell: (a) => <code>{a.request_id ?? '—'}</code> },
      ]}
    />
  );
}
