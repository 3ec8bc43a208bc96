// The typed client of the REST API (generated from openapi.json by
// `npm run api`), with the session's token on every request and one error
// type for everything that can go wrong.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";
import { session } from "../session";

export type Schemas = components["schemas"];
export type Service = Schemas["ServiceEntity"];
export type Route = Schemas["RouteEntity"];
export type RoutePlugin = Schemas["RoutePlugin"];
export type Consumer = Schemas["ConsumerEntity"];
export type Plugin = Schemas["PluginEntity"];
export type RequestLog = Schemas["RequestLog"];
export type ErrorEvent = Schemas["ErrorEvent"];
export type Health = Schemas["HealthSnapshot"];
export type Metrics = Schemas["MetricsSnapshot"];
export type TierSettings = Schemas["TierSettings"];
export type ApiToken = Schemas["ApiTokenEntity"];

/** A request that failed: the API's own error, or the network's. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const auth: Middleware = {
  onRequest({ request }) {
    const current = session.current();
    if (current) request.headers.set("Authorization", `Bearer ${current.token}`);
    return request;
  },
  onResponse({ request, response }) {
    // A token that no longer works (expired, revoked by a reset): back to
    // sign-in, keeping where the user was.
    // (Only the token this request carried: an answer to a request made
    // before a new sign-in must not end the new session.)
    const current = session.current();
    if (response.status === 401 && current && request.headers.get("Authorization") === `Bearer ${current.token}`) {
      session.expire();
    }
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: "" });
api.use(auth);

type Answer<T> = { data?: T; error?: unknown; response: Response };

/** The answer's data, or an ApiError carrying the API's message. */
export async function call<T>(request: Promise<Answer<T>>): Promise<T> {
  let answer: Answer<T>;
  try {
    answer = await request;
  } catch {
    throw new ApiError(0, "unreachable", "The control plane did not answer. Check that it is running, then retry.");
  }
  if (answer.response.ok) return answer.data as T;
  const body = answer.error as { error?: { code?: string; message?: string; field?: string } } | undefined;
  const detail = body?.error;
  throw new ApiError(
    answer.response.status,
    detail?.code ?? "http_error",
    detail?.message ?? `The control plane answered ${answer.response.status} ${answer.response.statusText}.`,
    detail?.field ?? undefined,
  );
}

/** The path parameters of every tenant endpoint. */
export function tenant() {
  return { tenantId: session.current()?.tenantId ?? "" };
}
