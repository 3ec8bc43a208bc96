// The console's building blocks: labelled fields that show the API's error
// where it points, error banners, secrets shown once, dialogs.
import { useEffect, useId, useRef, useState, type ReactNode } from "react";
import type { ApiError } from "../api/client";

/** A labelled control; `error` is shown under it and announced with it. */
export function Field(props: {
  label: string;
  error?: string;
  hint?: string;
  children: (attrs: { id: string; "aria-invalid": boolean; "aria-describedby"?: string }) => ReactNode;
}) {
  const id = useId();
  const described = [props.hint && `${id}-hint`, props.error && `${id}-error`].filter(Boolean).join(" ");
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      {props.children({ id, "aria-invalid": !!props.error, "aria-describedby": described || undefined })}
      {props.hint && (
        <small id={`${id}-hint`} className="hint">
          {props.hint}
        </small>
      )}
      {props.error && (
        <small id={`${id}-error`} className="field-error" role="alert">
          {props.error}
        </small>
      )}
    </div>
  );
}

/** An error the API gave for a whole group of fields (a list). */
export function GroupError({ message }: { message?: string }) {
  if (!message) return null;
  return (
    <p className="field-error" role="alert">
      {message}
    </p>
  );
}

/** A failed request, in the API's words. */
export function Problem({ error, title }: { error?: ApiError; title?: string }) {
  if (!error) return null;
  return (
    <div className="problem" role="alert">
      {title && <strong>{title}: </strong>}
      {error.message}
      {error.code !== "unreachable" && error.status > 0 && <span className="code"> ({error.code})</span>}
    </div>
  );
}

/** The error of `field`, when `error` names it. */
export function fieldError(error: ApiError | undefined, field: string): string | undefined {
  return error?.field === field ? error.message : undefined;
}

/** An error that names no field of the form (or one the form does not show). */
export function formError(error: ApiError | undefined, fields: string[]): ApiError | undefined {
  return error && (!error.field || !fields.includes(error.field)) ? error : undefined;
}

/** A secret the API shows only once, with a copy button. */
export function SecretOnce({ label, value, children }: { label: string; value: string; children?: ReactNode }) {
  const [copied, setCopied] = useState(false);
  const [copyFailed, setCopyFailed] = useState(false);
  const id = useId();
  return (
    <div className="secret" role="status">
      <label htmlFor={id}>{label}</label>
      <div className="secret-row">
        <input id={id} readOnly value={value} onFocus={(e) => e.currentTarget.select()} />
        <button
          type="button"
          onClick={async () => {
            try {
              await navigator.clipboard.writeText(value);
              setCopied(true);
            } catch {
              // No clipboard here (a plain-HTTP address other than
              // localhost): select it for the user to copy.
              (document.getElementById(id) as HTMLInputElement | null)?.select();
              setCopyFailed(true);
            }
          }}
        >
          {copied ? "Copied" : "Copy"}
        </button>
      </div>
      {copyFailed && <p className="hint">This browser allows no copying here: the key is selected, press Ctrl+C (⌘C).</p>}
      <p className="hint">Shown only this once: store it now.</p>
      {children}
    </div>
  );
}

/** A modal dialog (the browser's own: focus stays in it, Escape closes it). */
export function Dialog(props: { title: string; open: boolean; onClose: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (props.open && !dialog.open) dialog.showModal();
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  const titleId = useId();
  return (
    <dialog ref={ref} aria-labelledby={titleId} onClose={props.onClose}>
      <header className="dialog-head">
        <h2 id={titleId}>{props.title}</h2>
        <button type="button" className="quiet" aria-label="Close" onClick={props.onClose}>
          ×
        </button>
      </header>
      {props.open && props.children}
    </dialog>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** A time as the user's locale writes it, with the exact value on hover. */
export function Time({ at }: { at?: string | null }) {
  if (!at) return <>—</>;
  const date = new Date(at);
  return (
    <time dateTime={at} title={at}>
      {date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" })}
    </time>
  );
}

/** Asks before a delete, and shows why it failed (a 409 in the API's words). */
export function ConfirmDelete(props: {
  what: string;
  /** The button's word: "Delete" unless given ("Revoke"). */
  verb?: string;
  detail?: ReactNode;
  open: boolean;
  busy: boolean;
  error?: ApiError;
  onConfirm: () => void;
  onClose: () => void;
}) {
  return (
    <Dialog title={`${props.verb ?? "Delete"} ${props.what}?`} open={props.open} onClose={props.onClose}>
      {props.detail && <div className="dialog-body">{props.detail}</div>}
      <Problem error={props.error} title={`Not ${(props.verb ?? "Delete").toLowerCase()}d`} />
      <div className="actions">
        <button type="button" onClick={props.onClose}>
          Cancel
        </button>
        <button type="button" className="danger" disabled={props.busy} onClick={props.onConfirm}>
          {props.verb ?? "Delete"}
        </button>
      </div>
    </Dialog>
  );
}

/** The header cell above the rows' `RowActions` (named for screen readers only). */
export function ActionsHeader() {
  return (
    <th>
      <span className="visually-hidden">Actions</span>
    </th>
  );
}

/** A table row's Edit (when given) and Delete (or `verb`) buttons, named for the row. */
export function RowActions(props: { name: string; onEdit?: () => void; onRemove: () => void; verb?: string }) {
  const verb = props.verb ?? "Delete";
  return (
    <td className="row-actions">
      {props.onEdit && (
        <button type="button" aria-label={`Edit ${props.name}`} onClick={props.onEdit}>
          Edit
        </button>
      )}
      <button type="button" aria-label={`${verb} ${props.name}`} onClick={props.onRemove}>
        {verb}
      </button>
    </td>
  );
}
