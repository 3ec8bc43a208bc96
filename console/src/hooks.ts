// Loading what a screen shows, and polling it.
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "./api/client";

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => Promise<void>;
}

/**
 * Runs `load` when `deps` change, and then every `pollMs` when given: the
 * next poll is scheduled once the last one settled (never two at once),
 * and none is made while the tab is hidden. What a load for earlier `deps`
 * answers is dropped, and `data` is cleared when `deps` change, so a screen
 * never shows one view's data under another's heading.
 */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], pollMs?: number): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<ApiError>();
  const [loading, setLoading] = useState(true);
  const latest = useRef(load);
  latest.current = load;
  // The view (`deps`) polls belong to, and the newest load started: only
  // that load's answer is shown (a poll in flight cannot overwrite a
  // reload made after a change).
  const view = useRef(0);
  const newest = useRef(0);

  const reload = useCallback(async () => {
    const mine = ++newest.current;
    try {
      const value = await latest.current();
      if (mine !== newest.current) return;
      setData(value);
      setError(undefined);
    } catch (err) {
      if (mine !== newest.current) return;
      setError(asApiError(err));
    } finally {
      if (mine === newest.current) setLoading(false);
    }
  }, []);

  useEffect(() => {
    const mine = ++view.current;
    setData(undefined);
    setError(undefined);
    setLoading(true);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async (first: boolean) => {
      if (first || !document.hidden) await reload();
      if (pollMs && mine === view.current) timer = setTimeout(() => void poll(false), pollMs);
    };
    void poll(true);
    return () => {
      view.current++;
      newest.current++; // what the old view has in flight is dropped
      clearTimeout(timer);
    };
  }, [...deps, pollMs]);

  return { data, error, loading, reload };
}

export function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  return new ApiError(0, "client_error", err instanceof Error ? err.message : String(err));
}

/** Runs one action at a time (a form's submit, a delete), keeping its error. */
export function useAction() {
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const run = useCallback(async (action: () => Promise<void>): Promise<boolean> => {
    setBusy(true);
    setError(undefined);
    try {
      await action();
      return true;
    } catch (err) {
      setError(asApiError(err));
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  const clear = useCallback(() => setError(undefined), []);
  return { error, busy, run, clear };
}

/** The row a link pointed at (`/routes#<id>`), scrolled to once it shows. */
export function useLinkedRow(ready: boolean): string | undefined {
  let id: string | undefined;
  try {
    id = decodeURIComponent(window.location.hash.slice(1)) || undefined;
  } catch {
    id = undefined; // a malformed fragment names no row
  }
  useEffect(() => {
    if (ready && id) document.getElementById(id)?.scrollIntoView({ block: "center" });
  }, [ready, id]);
  return id;
}

/**
 * A delete (or revoke) behind a confirmation: `ask(item)` opens it, and
 * `dialog` is what `ConfirmDelete` takes; `done` runs once it succeeded.
 */
export function useRemoval<T>(remove: (item: T) => Promise<unknown>, done: () => void) {
  const action = useAction();
  const [target, setTarget] = useState<T>();
  return {
    target,
    ask: (item: T) => {
      action.clear();
      setTarget(item);
    },
    dialog: {
      open: target !== undefined,
      busy: action.busy,
      error: action.error,
      onClose: () => setTarget(undefined),
      onConfirm: async () => {
        const item = target;
        if (item === undefined) return;
        if (await action.run(async () => void (await remove(item)))) {
          // (Unless another item's dialog was opened meanwhile.)
          setTarget((current) => (current === item ? undefined : current));
          done();
        }
      },
    },
  };
}
