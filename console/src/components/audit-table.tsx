import type { Answer } from '../api';
import { date, TableWrap } from './ui';

type Entry = Answer<'/api/audit', 'get'>['data'][number];

/** Audit rows as the log and a customer's trail show them (`full`: with the target and the request id). */
export function AuditTable({ label, rows, full = false }: { label: string; rows: Entry[]; full?: boolean }) {
  return (
    <TableWrap label={label}>
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Who</th>
          <th scope="col">Action</th>
          <th scope="col">Outcome</th>
          {full && <th scope="col">Target</th>}
          {full && <th scope="col">Request</th>}
        </tr>
      </thead>
      <tbody>
        {rows.map((a) => (
          <tr key={a.id}>
            <td>{date(a.at)}</td>
            <td>{a.actor_id ?? a.actor}</td>
            <td>{a.action}</td>
            <td>{a.outcome}</td>
            {full && <td>{a.target_id ? <code>{a.target_id.slice(0, 13)}</code> : '—'}</td>}
            {full && (
              <td>
                <code>{a.request_id ?? '—'}</code>
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </TableWrap>
  );
}
