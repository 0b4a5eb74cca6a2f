import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api';

/** Loads on mount and when `deps` change; `reload` runs it again (after a write). */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const seq = useRef(0);
  const run = useCallback(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => mine === seq.current && setState({ data, loading: false }),
      (error: unknown) => mine === seq.current && setState({ error, loading: false }),
    );
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

/** The API's own message (and its code and request id, for support), in a live region. */
export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : null;
  return (
    <div class="error" role="alert">
      <strong>{e ? e.message : String((error as Error).message ?? error)}</strong>
      {e && (
        <span class="muted">
          {' '}
          ({e.code}
          {e.requestId ? `, request ${e.requestId}` : ''})
        </span>
      )}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}

/** A wide table scrolls sideways on a phone, and can be reached with the keyboard to do so. */
export function TableWrap({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-wrap" role="region" aria-label={label} tabIndex={0}>
      <table>{children}</table>
    </div>
  );
}

/** A column of a DataTable: its header, its cell, and any attributes the cell carries (data-* for tests). */
export interface Column<T> {
  head: string;
  /** The header is read by screen readers only (an actions column). */
  hideHead?: boolean;
  /** The cell heads its row (`<th scope="row">`). */
  rowHeader?: boolean;
  cell: (row: T) => ComponentChildren;
  attrs?: (row: T) => Record<string, string>;
}

/**
 * Every table of the console: column headers with their scope, one row per item, inside a TableWrap.
 * A column given as `false` is left out (a column shown only in one view); `empty` is the row shown
 * when there is none.
 */
export function DataTable<T>(props: {
  label: string;
  columns: (Column<T> | false)[];
  rows: T[];
  rowKey: (row: T) => string;
  rowAttrs?: (row: T) => Record<string, string>;
  empty?: string;
}) {
  const columns = props.columns.filter((c): c is Column<T> => c !== false);
  return (
    <TableWrap label={props.label}>
      <thead>
        <tr>
          {columns.map((c) => (
            <th scope="col" key={c.head}>
              {c.hideHead ? <span class="visually-hidden">{c.head}</span> : c.head}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {props.rows.map((row) => (
          <tr key={props.rowKey(row)} {...props.rowAttrs?.(row)}>
            {columns.map((c) =>
              c.rowHeader ? (
                <th scope="row" key={c.head} {...c.attrs?.(row)}>
                  {c.cell(row)}
                </th>
              ) : (
                <td key={c.head} {...c.attrs?.(row)}>
                  {c.cell(row)}
                </td>
              ),
            )}
          </tr>
        ))}
        {props.rows.length === 0 && props.empty && (
          <tr>
            <td colSpan={columns.length}>{props.empty}</td>
          </tr>
        )}
      </tbody>
    </TableWrap>
  );
}

/**
 * A form's action: `busy` while it runs (its button disabled, and a second submit before the first
 * ends is ignored, so a double click sends once), the API's error kept to show. `run` resolves true
 * when the action succeeded.
 */
export function useSubmit(action: () => Promise<unknown>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const running = useRef(false);
  const run = async (e?: Event): Promise<boolean> => {
    e?.preventDefault();
    if (running.current) return false;
    running.current = true;
    setBusy(true);
    setError(null);
    try {
      await action();
      return true;
    } catch (err) {
      setError(err);
      return false;
    } finally {
      running.current = false;
      setBusy(false);
    }
  };
  return { busy, error, setError, run, onSubmit: (e: Event) => void run(e) };
}

/**
 * A destructive action: the button opens a modal dialog that says what will happen; only its
 * confirm button acts. The dialog is the browser's own (focus is kept inside, Escape cancels).
 */
export function ConfirmButton(props: {
  label: string;
  title: string;
  body: ComponentChildren;
  confirm: string;
  onConfirm: () => Promise<unknown>;
  danger?: boolean;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const { busy, error, setError, run } = useSubmit(async () => {
    await props.onConfirm();
    dialog.current?.close();
  });
  const open = () => {
    setError(null);
    dialog.current?.showModal();
  };
  return (
    <>
      <button type="button" class={props.danger ? 'danger' : ''} onClick={open}>
        {props.label}
      </button>
      <dialog ref={dialog} aria-labelledby={undefined} aria-label={props.title}>
        <h2>{props.title}</h2>
        <div>{props.body}</div>
        <ErrorNote error={error} />
        <div class="actions">
          <button type="button" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button type="button" class={props.danger ? 'danger' : 'primary'} disabled={busy} onClick={() => void run()}>
            {props.confirm}
          </button>
        </div>
      </dialog>
    </>
  );
}

/** A secret shown this once: read-only, selectable, with a copy button and the warning. */
export function SecretOnce({ label, value }: { label: string; value: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    await navigator.clipboard.writeText(value);
    setCopied(true);
  };
  return (
    <div class="secret" role="group" aria-label={label}>
      <p class="warning">
        <strong>Shown this once.</strong> Copy it now and give it to the customer over a safe channel: the service keeps only its hash and cannot show it again.
      </p>
      <label>
        {label}
        <input type="text" readOnly value={value} data-secret onFocus={(e) => e.currentTarget.select()} />
      </label>
      <button type="button" onClick={() => void copy().catch(() => setCopied(false))}>
        Copy
      </button>
      <span role="status">{copied ? ' Copied.' : ''}</span>
    </div>
  );
}

/** A link to a customer's page, shown by the first characters of its id. */
export function CustomerLink({ id }: { id: string }) {
  return <a href={`/console/customers/${id}`}>{id.slice(0, 8)}</a>;
}

export const date = (iso: string | null | undefined) => (iso ? new Date(iso).toISOString().slice(0, 16).replace('T', ' ') + ' UTC' : '—');

export function Field(props: {
  label: string;
  name: string;
  type?: string;
  value?: string;
  required?: boolean;
  placeholder?: string;
  autoComplete?: string;
  onInput?: (v: string) => void;
}) {
  return (
    <label class="field">
      <span>{props.label}</span>
      <input
        name={props.name}
        type={(props.type ?? 'text') as 'text'}
        value={props.value}
        required={props.required}
        placeholder={props.placeholder}
        autoComplete={props.autoComplete ?? 'off'}
        onInput={(e) => props.onInput?.(e.currentTarget.value)}
      />
    </label>
  );
}
