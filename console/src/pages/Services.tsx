// Services: the upstreams routes forward to. List, create, edit, delete.
import { useState } from "react";
import { api, call, tenant, type Service } from "../api/client";
import { useAction, useLinkedRow, useLoad, useRemoval } from "../hooks";
import { ConfirmDelete, Dialog, Empty, Field, Problem, Time, ActionsHeader, RowActions, fieldError, formError } from "../components/ui";

const FIELDS = ["name", "targetUrl", "healthCheckPath", "timeoutMs"];

export function Services() {
  const services = useLoad(() => call(api.GET("/api/tenants/{tenantId}/services", { params: { path: tenant() } })), []);
  const removal = useRemoval(
    (service: Service) => call(api.DELETE("/api/tenants/{tenantId}/services/{id}", { params: { path: { ...tenant(), id: service.id } } })),
    () => void services.reload(),
  );
  const deleting = removal.target;
  const linked = useLinkedRow(!!services.data);
  const [editing, setEditing] = useState<Service | "new">();
  return (
    <>
      <div className="page-head">
        <h1>Services</h1>
        <button type="button" className="primary" onClick={() => setEditing("new")}>
          New service
        </button>
      </div>
      <Problem error={services.error} title="Services could not be loaded" />
      {services.data?.length === 0 && <Empty>No services yet. A service is an upstream your routes forward to.</Empty>}
      {!!services.data?.length && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Name</th>
                <th>Target URL</th>
                <th>Health check</th>
                <th>Timeout</th>
                <th>Updated</th>
                <ActionsHeader />
              </tr>
            </thead>
            <tbody>
              {services.data.map((service) => (
                <tr key={service.id} id={service.id} className={linked === service.id ? "linked" : undefined}>
                  <td>{service.name}</td>
                  <td className="mono">{service.targetUrl}</td>
                  <td className="mono">{service.healthCheckPath ?? "—"}</td>
                  <td>{service.timeoutMs} ms</td>
                  <td>
                    <Time at={service.updatedAt} />
                  </td>
                  <RowActions name={service.name} onEdit={() => setEditing(service)} onRemove={() => removal.ask(service)} />
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Dialog title={editing === "new" ? "New service" : "Edit service"} open={!!editing} onClose={() => setEditing(undefined)}>
        {editing && (
          <ServiceForm
            service={editing === "new" ? undefined : editing}
            onSaved={() => {
              setEditing(undefined);
              void services.reload();
            }}
          />
        )}
      </Dialog>
      <ConfirmDelete
        what={`service ${deleting?.name ?? ""}`}
        detail={<p>Routes to it answer 503 until they point at another service.</p>}
        {...removal.dialog}
      />
    </>
  );
}

function ServiceForm({ service, onSaved }: { service?: Service; onSaved: () => void }) {
  const [name, setName] = useState(service?.name ?? "");
  const [targetUrl, setTargetUrl] = useState(service?.targetUrl ?? "");
  const [healthCheckPath, setHealthCheckPath] = useState(service?.healthCheckPath ?? "");
  const [timeoutMs, setTimeoutMs] = useState(String(service?.timeoutMs ?? 30000));
  const save = useAction();
  return (
    <form
      onSubmit={async (event) => {
        event.preventDefault();
        const body = {
          name,
          targetUrl,
          healthCheckPath: healthCheckPath.trim() === "" ? null : healthCheckPath,
          timeoutMs: Number(timeoutMs),
        };
        const ok = await save.run(async () => {
          if (service) {
            await call(
              api.PATCH("/api/tenants/{tenantId}/services/{id}", { params: { path: { ...tenant(), id: service.id } }, body }),
            );
          } else {
            await call(api.POST("/api/tenants/{tenantId}/services", { params: { path: tenant() }, body }));
          }
        });
        if (ok) onSaved();
      }}
    >
      <Field label="Name" error={fieldError(save.error, "name")}>
        {(attrs) => <input {...attrs} required value={name} onChange={(e) => setName(e.target.value)} />}
      </Field>
      <Field label="Target URL" hint="http:// or https://; its path prefixes every forwarded path." error={fieldError(save.error, "targetUrl")}>
        {(attrs) => <input {...attrs} required placeholder="http://10.0.0.7:8080" value={targetUrl} onChange={(e) => setTargetUrl(e.target.value)} />}
      </Field>
      <Field label="Health check path" hint="Optional, e.g. /health." error={fieldError(save.error, "healthCheckPath")}>
        {(attrs) => <input {...attrs} value={healthCheckPath} onChange={(e) => setHealthCheckPath(e.target.value)} />}
      </Field>
      <Field label="Timeout (ms)" error={fieldError(save.error, "timeoutMs")}>
        {(attrs) => <input {...attrs} type="number" min={1} required value={timeoutMs} onChange={(e) => setTimeoutMs(e.target.value)} />}
      </Field>
      <Problem error={formError(save.error, FIELDS)} />
      <div className="actions">
        <button type="submit" className="primary" disabled={save.busy}>
          {service ? "Save service" : "Create service"}
        </button>
      </div>
    </form>
  );
}
