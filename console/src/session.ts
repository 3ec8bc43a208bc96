// The signed-in tenant's token, kept in sessionStorage (this tab only, gone
// when it closes; never a cookie, so no other site can send it). Signing
// out forgets it; a 401 expires it and the app returns to sign-in.
import { useSyncExternalStore } from "react";

export interface Session {
  token: string;
  tenantId: string;
  email: string;
}

const KEY = "gatehouse.session";
const listeners = new Set<() => void>();
let cached: Session | null | undefined;
let expired = false;

function read(): Session | null {
  if (cached === undefined) {
    try {
      cached = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
    } catch {
      cached = null;
    }
  }
  return cached ?? null;
}

function publish(next: Session | null) {
  cached = next;
  if (next) sessionStorage.setItem(KEY, JSON.stringify(next));
  else sessionStorage.removeItem(KEY);
  listeners.forEach((listener) => listener());
}

export const session = {
  current: read,
  signIn(next: Session) {
    expired = false;
    publish(next);
  },
  signOut() {
    expired = false;
    publish(null);
  },
  /** The token stopped working: forget it and say so on the sign-in page. */
  expire() {
    if (!read()) return;
    expired = true;
    publish(null);
  },
  /** Whether the last session ended because its token stopped working. */
  wasExpired: () => expired,
  subscribe(listener: () => void) {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};

export function useSession(): Session | null {
  return useSyncExternalStore(session.subscribe, read);
}
