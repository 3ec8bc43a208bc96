// Routes: which requests go to which service, with auth, a rate-limit
// override and the tenant plugins that run on them.
import { useState } from "react";
import { api, call, tenant, type Plugin, type Route, type RoutePlugin, type Service } from "../api/client";
import { useAction, useLinkedRow, useLoad, useRemoval } from "../hooks";
import { ConfirmDelete, Dialog, Empty, Field, GroupError, Problem, ActionsHeader, RowActions, fieldError, formError } from "../components/ui";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"];
const FIELDS = ["method", "pathPattern", "serviceId", "rateLimitOverride", "plugins"];

export function Routes() {
  const path = { params: { path: tenant() } };
  const routes = useLoad(() => call(api.GET("/api/tenants/{tenantId}/routes", path)), []);
  const removal = useRemoval(
    (route: Route) => call(api.DELETE("/api/tenants/{tenantId}/routes/{id}", { params: { path: { ...tenant(), id: route.id } } })),
    () => void routes.reload(),
  );
  const deleting = removal.target;
  const linked = useLinkedRow(!!routes.data);
  const services = useLoad(() => call(api.GET("/api/tenants/{tenantId}/services", path)), []);
  const plugins = useLoad(() => call(api.GET("/api/tenants/{tenantId}/plugins", path)), []);
  const [editing, setEditing] = useState<Route | "new">();
  const serviceName = (id: string) => services.data?.find((s) => s.id === id)?.name ?? "(deleted service)";
  const pluginName = (id: string) => {
    const plugin = plugins.data?.find((p) => p.id === id);
    return plugin ? `${plugin.name}@${plugin.version}` : id;
  };
  return (
    <>
      <div className="page-head">
        <h1>Routes</h1>
        <button type="button" className="primary" disabled={!services.data?.length} onClick={() => setEditing("new")}>
          New route
        </button>
      </div>
      <Problem error={routes.error ?? services.error ?? plugins.error} title="Routes could not be loaded" />
      {services.data?.length === 0 && <Empty>Create a service first: a route forwards to one.</Empty>}
      {routes.data?.length === 0 && !!services.data?.length && <Empty>No routes yet.</Empty>}
      {!!routes.data?.length && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Method</th>
                <th>Path pattern</th>
                <th>Service</th>
                <th>Auth</th>
                <th>Limit / min</th>
                <th>Plugins</th>
                <th>Enabled</th>
                <ActionsHeader />
              </tr>
            </thead>
            <tbody>
              {routes.data.map((route) => (
                <tr key={route.id} id={route.id} className={linked === route.id ? "linked" : undefined}>
                  <td className="mono">{route.method}</td>
                  <td className="mono">{route.pathPattern}</td>
                  <td>{serviceName(route.serviceId)}</td>
                  <td>{route.authRequired ? "API key" : "open"}</td>
                  <td>{route.rateLimitOverride ?? "tier"}</td>
                  <td>{route.plugins.length ? route.plugins.map((p) => pluginName(p.pluginId)).join(", ") : "—"}</td>
                  <td>{route.enabled ? "yes" : "no"}</td>
                  <RowActions name={`${route.method} ${route.pathPattern}`} onEdit={() => setEditing(route)} onRemove={() => removal.ask(route)} />
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Dialog title={editing === "new" ? "New route" : "Edit route"} open={!!editing} onClose={() => setEditing(undefined)}>
        {editing && (
          <RouteForm
            route={editing === "new" ? undefined : editing}
            services={services.data ?? []}
            plugins={plugins.data ?? []}
            onSaved={() => {
              setEditing(undefined);
              void routes.reload();
            }}
          />
        )}
      </Dialog>
      <ConfirmDelete
        what={`route ${deleting ? `${deleting.method} ${deleting.pathPattern}` : ""}`}
        {...removal.dialog}
      />
    </>
  );
}

/** A plugin attachment as the form edits it: config as JSON text. */
interface Attachment {
  key: number;
  pluginId: string;
  phase: string;
  failurePolicy: string;
  config: string;
}

let nextKey = 0;

function toAttachment(plugin: RoutePlugin): Attachment {
  return {
    key: nextKey++,
    pluginId: plugin.pluginId,
    phase: plugin.phase ?? "request",
    failurePolicy: plugin.failurePolicy ?? "closed",
    config: JSON.stringify(plugin.config ?? {}, null, 2),
  };
}

/** Why `text` is not a JSON object, or undefined when it is one. */
function configProblem(text: string): string | undefined {
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? undefined : "Config must be a JSON object.";
  } catch (err) {
    return `Config is not valid JSON: ${(err as Error).message}`;
  }
}

function RouteForm(props: { route?: Route; services: Service[]; plugins: Plugin[]; onSaved: () => void }) {
  const { route } = props;
  const [method, setMethod] = useState(route?.method ?? "GET");
  const [pathPattern, setPathPattern] = useState(route?.pathPattern ?? "");
  const [serviceId, setServiceId] = useState(route?.serviceId ?? props.services[0]?.id ?? "");
  const [authRequired, setAuthRequired] = useState(route?.authRequired ?? true);
  const [limit, setLimit] = useState(route?.rateLimitOverride == null ? "" : String(route.rateLimitOverride));
  const [enabled, setEnabled] = useState(route?.enabled ?? true);
  const [attachments, setAttachments] = useState<Attachment[]>((route?.plugins ?? []).map(toAttachment));
  const [checked, setChecked] = useState(false);
  const save = useAction();
  const update = (key: number, change: Partial<Attachment>) =>
    setAttachments(attachments.map((a) => (a.key === key ? { ...a, ...change } : a)));

  return (
    <form
      onSubmit={async (event) => {
        event.preventDefault();
        setChecked(true);
        if (attachments.some((a) => configProblem(a.config))) return;
        const body = {
          method,
          pathPattern,
          serviceId,
          authRequired,
          rateLimitOverride: limit.trim() === "" ? null : Number(limit),
          enabled,
          plugins: attachments.map((a) => ({
            pluginId: a.pluginId,
            phase: a.phase,
            failurePolicy: a.failurePolicy,
            config: JSON.parse(a.config),
          })),
        };
        const ok = await save.run(async () => {
          if (route) {
            await call(api.PATCH("/api/tenants/{tenantId}/routes/{id}", { params: { path: { ...tenant(), id: route.id } }, body }));
          } else {
            await call(api.POST("/api/tenants/{tenantId}/routes", { params: { path: tenant() }, body }));
          }
        });
        if (ok) props.onSaved();
      }}
    >
      <div className="row">
        <Field label="Method" error={fieldError(save.error, "method")}>
          {(attrs) => (
            <select {...attrs} value={method} onChange={(e) => setMethod(e.target.value)}>
              {METHODS.map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Path pattern" hint="Segments: literal, :name, or a final *." error={fieldError(save.error, "pathPattern")}>
          {(attrs) => <input {...attrs} required placeholder="/orders/:id" value={pathPattern} onChange={(e) => setPathPattern(e.target.value)} />}
        </Field>
      </div>
      <Field label="Service" error={fieldError(save.error, "serviceId")}>
        {(attrs) => (
          <select {...attrs} value={serviceId} onChange={(e) => setServiceId(e.target.value)}>
            {!props.services.some((s) => s.id === serviceId) && <option value={serviceId}>(a deleted service: choose another)</option>}
            {props.services.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Rate limit override (requests a minute)" hint="Empty: the consumer's tier applies." error={fieldError(save.error, "rateLimitOverride")}>
        {(attrs) => <input {...attrs} type="number" min={1} value={limit} onChange={(e) => setLimit(e.target.value)} />}
      </Field>
      <div className="checks">
        <label>
          <input type="checkbox" checked={authRequired} onChange={(e) => setAuthRequired(e.target.checked)} /> Require an API key
        </label>
        <label>
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> Enabled
        </label>
      </div>

      <fieldset className="plugins">
        <legend>Plugins (run in this order)</legend>
        <p className="hint">
          Phase <code>request</code> runs after authentication and the rate limit; <code>auth</code> authenticates the request in
          place of the API key. Failure policy <code>closed</code> answers 503 when the plugin fails; <code>open</code> skips it.
        </p>
        <GroupError message={fieldError(save.error, "plugins")} />
        {attachments.length === 0 && <p className="hint">None.</p>}
        {attachments.map((a, index) => {
          const n = index + 1;
          const problem = checked ? configProblem(a.config) : undefined;
          return (
            <div className="attachment" key={a.key}>
              <div className="row">
                <Field label={`Plugin ${n}`}>
                  {(attrs) => (
                    <select {...attrs} value={a.pluginId} onChange={(e) => update(a.key, { pluginId: e.target.value })}>
                      {!props.plugins.some((p) => p.id === a.pluginId) && <option value={a.pluginId}>{a.pluginId}</option>}
                      {props.plugins.map((p) => (
                        <option key={p.id} value={p.id}>
                          {p.name}@{p.version}
                        </option>
                      ))}
                    </select>
                  )}
                </Field>
                <Field label={`Phase of plugin ${n}`}>
                  {(attrs) => (
                    <select {...attrs} value={a.phase} onChange={(e) => update(a.key, { phase: e.target.value })}>
                      <option value="request">request</option>
                      <option value="auth">auth</option>
                    </select>
                  )}
                </Field>
                <Field label={`Failure policy of plugin ${n}`}>
                  {(attrs) => (
                    <select {...attrs} value={a.failurePolicy} onChange={(e) => update(a.key, { failurePolicy: e.target.value })}>
                      <option value="closed">closed</option>
                      <option value="open">open</option>
                    </select>
                  )}
                </Field>
              </div>
              <Field label={`Config of plugin ${n} (JSON)`} error={problem}>
                {(attrs) => (
                  <textarea
                    {...attrs}
                    className="mono"
                    rows={4}
                    spellCheck={false}
                    value={a.config}
                    onChange={(e) => update(a.key, { config: e.target.value })}
                  />
                )}
              </Field>
              <div className="actions">
                {index > 0 && (
                  <button
                    type="button"
                    aria-label={`Move plugin ${n} up`}
                    onClick={() => {
                      const next = [...attachments];
                      [next[index - 1], next[index]] = [next[index], next[index - 1]];
                      setAttachments(next);
                    }}
                  >
                    Move up
                  </button>
                )}
                <button type="button" aria-label={`Remove plugin ${n}`} onClick={() => setAttachments(attachments.filter((x) => x.key !== a.key))}>
                  Remove
                </button>
              </div>
            </div>
          );
        })}
        <button
          type="button"
          disabled={props.plugins.length === 0}
          onClick={() =>
            setAttachments([...attachments, { key: nextKey++, pluginId: props.plugins[0].id, phase: "request", failurePolicy: "closed", config: "{}" }])
          }
        >
          Add plugin
        </button>
        {props.plugins.length === 0 && <p className="hint">Upload a plugin on the Plugins page to attach it here.</p>}
      </fieldset>
      <Problem error={formError(save.error, FIELDS)} />
      <div className="actions">
        <button type="submit" className="primary" disabled={save.busy}>
          {route ? "Save route" : "Create route"}
        </button>
      </div>
    </form>
  );
}
