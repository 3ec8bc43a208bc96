// Consumers: who calls the tenant's APIs, with their key (shown once) and
// rate-limit tier. Revoking one stops its key on every node at once.
import { useState } from "react";
import { api, call, tenant, type Consumer } from "../api/client";
import { useAction, useLinkedRow, useLoad, useRemoval } from "../hooks";
import { ConfirmDelete, Dialog, Empty, Field, Problem, SecretOnce, Time, ActionsHeader, RowActions, fieldError, formError } from "../components/ui";

export function Consumers() {
  const path = { params: { path: tenant() } };
  const consumers = useLoad(() => call(api.GET("/api/tenants/{tenantId}/consumers", path)), []);
  const removal = useRemoval(
    (consumer: Consumer) => call(api.DELETE("/api/tenants/{tenantId}/consumers/{id}", { params: { path: { ...tenant(), id: consumer.id } } })),
    () => void consumers.reload(),
  );
  const revoking = removal.target;
  const linked = useLinkedRow(!!consumers.data);
  const tiers = useLoad(() => call(api.GET("/api/tenants/{tenantId}/rate-limit-tiers", path)), []);
  const [editing, setEditing] = useState<Consumer | "new">();
  const [created, setCreated] = useState<{ name: string; apiKey: string }>();
  return (
    <>
      <div className="page-head">
        <h1>Consumers</h1>
        <button type="button" className="primary" onClick={() => setEditing("new")}>
          New consumer
        </button>
      </div>
      <Problem error={consumers.error ?? tiers.error} title="Consumers could not be loaded" />
      {consumers.data?.length === 0 && <Empty>No consumers yet. A consumer gets an API key for routes that require one.</Empty>}
      {!!consumers.data?.length && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Name</th>
                <th>Tier</th>
                <th>Key</th>
                <th>Created</th>
                <th>Id</th>
                <ActionsHeader />
              </tr>
            </thead>
            <tbody>
              {consumers.data.map((consumer) => (
                <tr key={consumer.id} id={consumer.id} className={linked === consumer.id ? "linked" : undefined}>
                  <td>{consumer.name}</td>
                  <td>{consumer.rateLimitTier}</td>
                  <td className="mono">{consumer.apiKeyPrefix}…</td>
                  <td>
                    <Time at={consumer.createdAt} />
                  </td>
                  <td className="mono small">{consumer.id}</td>
                  <RowActions name={consumer.name} onEdit={() => setEditing(consumer)} onRemove={() => removal.ask(consumer)} verb="Revoke" />
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Dialog title={editing === "new" ? "New consumer" : "Edit consumer"} open={!!editing} onClose={() => setEditing(undefined)}>
        {editing && (
          <ConsumerForm
            consumer={editing === "new" ? undefined : editing}
            tiers={tiers.data?.tiers.map((t) => t.name) ?? ["free"]}
            onSaved={(apiKey, name) => {
              setEditing(undefined);
              if (apiKey) setCreated({ apiKey, name });
              void consumers.reload();
            }}
          />
        )}
      </Dialog>
      <Dialog title={`API key of ${created?.name ?? ""}`} open={!!created} onClose={() => setCreated(undefined)}>
        {created && (
          <div className="dialog-body">
            <SecretOnce label="API key" value={created.apiKey}>
              <p className="hint">
                Clients send it as <code>Authorization: Bearer {"<key>"}</code> or <code>X-API-Key: {"<key>"}</code>.
              </p>
            </SecretOnce>
            <div className="actions">
              <button type="button" className="primary" onClick={() => setCreated(undefined)}>
                Done
              </button>
            </div>
          </div>
        )}
      </Dialog>
      <ConfirmDelete
        what={`consumer ${revoking?.name ?? ""}`}
        verb="Revoke"
        detail={<p>Its key stops working on every node at once. This cannot be undone.</p>}
        {...removal.dialog}
      />
    </>
  );
}

function ConsumerForm(props: { consumer?: Consumer; tiers: string[]; onSaved: (apiKey: string | undefined, name: string) => void }) {
  const { consumer } = props;
  const [name, setName] = useState(consumer?.name ?? "");
  const [tier, setTier] = useState(consumer?.rateLimitTier ?? (props.tiers.includes("free") ? "free" : props.tiers[0]));
  const save = useAction();
  return (
    <form
      onSubmit={async (event) => {
        event.preventDefault();
        let apiKey: string | undefined;
        const body = { name, rateLimitTier: tier };
        const ok = await save.run(async () => {
          if (consumer) {
            await call(api.PATCH("/api/tenants/{tenantId}/consumers/{id}", { params: { path: { ...tenant(), id: consumer.id } }, body }));
          } else {
            apiKey = (await call(api.POST("/api/tenants/{tenantId}/consumers", { params: { path: tenant() }, body }))).apiKey;
          }
        });
        if (ok) props.onSaved(apiKey, name);
      }}
    >
      <Field label="Name" error={fieldError(save.error, "name")}>
        {(attrs) => <input {...attrs} required value={name} onChange={(e) => setName(e.target.value)} />}
      </Field>
      <Field label="Rate-limit tier" error={fieldError(save.error, "rateLimitTier")}>
        {(attrs) => (
          <select {...attrs} value={tier} onChange={(e) => setTier(e.target.value)}>
            {!props.tiers.includes(tier) && <option value={tier}>{tier} (no longer a tier)</option>}
            {props.tiers.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        )}
      </Field>
      <Problem error={formError(save.error, ["name", "rateLimitTier"])} />
      <div className="actions">
        <button type="submit" className="primary" disabled={save.busy}>
          {consumer ? "Save consumer" : "Create consumer"}
        </button>
      </div>
    </form>
  );
}
