// Error events: what went wrong on the gateway, grouped (repeats of one
// kind on one route within an hour share an event), with the route and
// plugin involved; resolve one when it is dealt with.
import { Link, useLocation, useSearch } from "wouter";
import { api, call, tenant, type ErrorEvent } from "../api/client";
import { useAction, useLoad } from "../hooks";
import { Empty, Problem, Time } from "../components/ui";

export function Errors() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const params = new URLSearchParams(search);
  const resolved = params.get("resolved") === "true";
  const page = Math.max(1, Number(params.get("page") ?? 1) || 1);
  const path = { params: { path: tenant() } };
  const events = useLoad(
    () => call(api.GET("/api/tenants/{tenantId}/errors", { params: { path: tenant(), query: { resolved, page } } })),
    [search],
  );
  const routes = useLoad(() => call(api.GET("/api/tenants/{tenantId}/routes", path)), []);
  const plugins = useLoad(() => call(api.GET("/api/tenants/{tenantId}/plugins", path)), []);
  const resolve = useAction();
  const show = (nextResolved: boolean, nextPage = 1) =>
    navigate(`/errors?resolved=${nextResolved}${nextPage > 1 ? `&page=${nextPage}` : ""}`);

  const routeOf = (event: ErrorEvent) => routes.data?.find((r) => r.id === event.routeId);
  const pluginOf = (event: ErrorEvent) => plugins.data?.find((p) => p.id === event.pluginId);

  return (
    <>
      <div className="page-head">
        <h1>Errors</h1>
        <div role="group" aria-label="Which errors" className="segmented">
          <button type="button" aria-pressed={!resolved} onClick={() => show(false)}>
            Unresolved
          </button>
          <button type="button" aria-pressed={resolved} onClick={() => show(true)}>
            Resolved
          </button>
        </div>
      </div>
      <Problem error={events.error} title="Errors could not be loaded" />
      <Problem error={resolve.error} title="Not resolved" />
      {events.data?.length === 0 && <Empty>{resolved ? "No resolved errors." : "No unresolved errors. All quiet."}</Empty>}
      <ul className="events" aria-label={resolved ? "Resolved errors" : "Unresolved errors"}>
        {events.data?.map((event) => {
          const route = routeOf(event);
          const plugin = pluginOf(event);
          return (
            <li key={event.id} className="event card">
              <div className="event-head">
                <span className="kind mono">{event.kind}</span>
                {event.statusCode != null && <span className="mono">{event.statusCode}</span>}
                <span className="count" title="occurrences grouped into this event">
                  ×{event.occurrences}
                </span>
              </div>
              <p className="message">{event.message}</p>
              {event.detail && <p className="mono small detail-text">{event.detail}</p>}
              <p className="meta">
                First <Time at={event.firstSeenAt} />, last <Time at={event.lastSeenAt} />
                {event.resolvedAt && (
                  <>
                    , resolved <Time at={event.resolvedAt} />
                  </>
                )}
              </p>
              <p className="meta">
                {event.routeId && (
                  <Link href={`/routes#${event.routeId}`}>
                    Route {route ? `${route.method} ${route.pathPattern}` : event.routeId}
                  </Link>
                )}
                {event.pluginId && (
                  <>
                    {" · "}
                    <Link href={`/plugins#${event.pluginId}`}>Plugin {plugin ? `${plugin.name}@${plugin.version}` : event.pluginId}</Link>
                  </>
                )}
                {event.statusCode != null && (
                  <>
                    {" · "}
                    <Link href={`/logs?statusCode=${event.statusCode}`}>Requests answered {event.statusCode}</Link>
                  </>
                )}
              </p>
              {!event.resolved && (
                <button
                  type="button"
                  aria-label={`Resolve ${event.kind}: ${event.message}`}
                  disabled={resolve.busy}
                  onClick={async () => {
                    const ok = await resolve.run(() =>
                      call(
                        api.PATCH("/api/tenants/{tenantId}/errors/{id}", {
                          params: { path: { ...tenant(), id: event.id } },
                          body: { resolved: true },
                        }),
                      ),
                    );
                    if (ok) void events.reload();
                  }}
                >
                  Resolve
                </button>
              )}
            </li>
          );
        })}
      </ul>
      <nav className="pager" aria-label="Pages">
        <button type="button" disabled={page <= 1} onClick={() => show(resolved, page - 1)}>
          Previous page
        </button>
        <span>Page {page}</span>
        <button type="button" disabled={(events.data?.length ?? 0) < 50} onClick={() => show(resolved, page + 1)}>
          Next page
        </button>
      </nav>
    </>
  );
}
