// Settings: rate-limit tiers and the anonymous limit, the gateway key
// (rotated here, the new one shown once), and how to run a node.
import { useState } from "react";
import { api, call, tenant, type ApiToken, type TierSettings } from "../api/client";
import { useAction, useLoad, useRemoval } from "../hooks";
import { ConfirmDelete, Dialog, Field, GroupError, Problem, ActionsHeader, RowActions, SecretOnce, Time, fieldError, formError } from "../components/ui";

export function Settings() {
  const tiers = useLoad(() => call(api.GET("/api/tenants/{tenantId}/rate-limit-tiers", { params: { path: tenant() } })), []);
  return (
    <>
      <div className="page-head">
        <h1>Settings</h1>
      </div>
      <Problem error={tiers.error} title="Tiers could not be loaded" />
      {tiers.data && <TiersForm settings={tiers.data} onSaved={() => void tiers.reload()} />}
      <GatewayKey />
      <ApiTokens />
      <section className="card" aria-labelledby="node-title">
        <h2 id="node-title">Run a gateway node</h2>
        <p>A node serves your routes and reports traffic here. Start one with your gateway key:</p>
        <NodeSnippet />
        <p className="hint">
          See <a href="/docs/operations.html">Operations</a> for TLS, Redis-backed fleet limits and every flag.
        </p>
      </section>
    </>
  );
}

/** The command that starts a node for this tenant. */
export function NodeSnippet({ gatewayKey }: { gatewayKey?: string }) {
  const command = `gatehouse proxy \\
  --control-url ${window.location.origin} \\
  --gateway-key ${gatewayKey ?? "$GATEHOUSE_GATEWAY_KEY"} \\
  --listen 0.0.0.0:8080`;
  return (
    <figure className="snippet-frame" aria-label="Command that starts a gateway node">
      <pre className="snippet">
        <code>{command}</code>
      </pre>
    </figure>
  );
}

interface TierRow {
  key: number;
  name: string;
  limit: string;
}

let nextKey = 0;

function TiersForm({ settings, onSaved }: { settings: TierSettings; onSaved: () => void }) {
  const [rows, setRows] = useState<TierRow[]>(
    settings.tiers.map((t) => ({ key: nextKey++, name: t.name, limit: t.requestsPerMinute == null ? "" : String(t.requestsPerMinute) })),
  );
  const [anonymous, setAnonymous] = useState(settings.anonymousRequestsPerMinute == null ? "" : String(settings.anonymousRequestsPerMinute));
  const [saved, setSaved] = useState(false);
  const save = useAction();
  const number = (text: string) => (text.trim() === "" ? null : Number(text));
  return (
    <section className="card" aria-labelledby="tiers-title">
      <h2 id="tiers-title">Rate-limit tiers</h2>
      <p className="hint">Requests a minute per consumer of each tier. Empty: unlimited.</p>
      <form
        onSubmit={async (event) => {
          event.preventDefault();
          setSaved(false);
          const ok = await save.run(async () => {
            await call(
              api.PUT("/api/tenants/{tenantId}/rate-limit-tiers", {
                params: { path: tenant() },
                body: {
                  tiers: rows.map((r) => ({ name: r.name.trim(), requestsPerMinute: number(r.limit) })),
                  anonymousRequestsPerMinute: number(anonymous),
                },
              }),
            );
          });
          if (ok) {
            setSaved(true);
            onSaved();
          }
        }}
      >
        {rows.map((row, index) => (
          <div className="row" key={row.key}>
            <Field label={`Tier ${index + 1} name`}>
              {(attrs) => (
                <input {...attrs} required value={row.name} onChange={(e) => setRows(rows.map((r) => (r.key === row.key ? { ...r, name: e.target.value } : r)))} />
              )}
            </Field>
            <Field label={`Tier ${index + 1} requests a minute`}>
              {(attrs) => (
                <input
                  {...attrs}
                  type="number"
                  min={1}
                  placeholder="unlimited"
                  value={row.limit}
                  onChange={(e) => setRows(rows.map((r) => (r.key === row.key ? { ...r, limit: e.target.value } : r)))}
                />
              )}
            </Field>
            <div className="actions end">
              <button type="button" aria-label={`Remove tier ${row.name || index + 1}`} onClick={() => setRows(rows.filter((r) => r.key !== row.key))}>
                Remove
              </button>
            </div>
          </div>
        ))}
        <GroupError message={fieldError(save.error, "tiers")} />
        <button type="button" onClick={() => setRows([...rows, { key: nextKey++, name: "", limit: "" }])}>
          Add tier
        </button>
        <Field label="Anonymous requests a minute (per client IP)" hint="For routes that need no key. Empty: unlimited." error={fieldError(save.error, "anonymousRequestsPerMinute")}>
          {(attrs) => <input {...attrs} type="number" min={1} placeholder="unlimited" value={anonymous} onChange={(e) => setAnonymous(e.target.value)} />}
        </Field>
        <Problem error={formError(save.error, ["tiers", "anonymousRequestsPerMinute"])} title="Not saved" />
        {saved && (
          <p className="notice" role="status">
            Tiers saved; nodes apply them now.
          </p>
        )}
        <div className="actions">
          <button type="submit" className="primary" disabled={save.busy}>
            Save tiers
          </button>
        </div>
      </form>
    </section>
  );
}

function GatewayKey() {
  const [confirming, setConfirming] = useState(false);
  const [rotated, setRotated] = useState<string>();
  const rotate = useAction();
  return (
    <section className="card" aria-labelledby="key-title">
      <h2 id="key-title">Gateway key</h2>
      <p>Nodes connect with it. Rotating it cuts off the nodes using the old key at once; they keep serving their last config until restarted with the new one.</p>
      {rotated && (
        <SecretOnce label="New gateway key" value={rotated}>
          <NodeSnippet gatewayKey={rotated} />
        </SecretOnce>
      )}
      <button type="button" onClick={() => setConfirming(true)}>
        Rotate gateway key
      </button>
      <Dialog title="Rotate the gateway key?" open={confirming} onClose={() => setConfirming(false)}>
        <div className="dialog-body">
          <p>Every node connected with the current key is cut off now.</p>
          <Problem error={rotate.error} title="Not rotated" />
          <div className="actions">
            <button type="button" onClick={() => setConfirming(false)}>
              Cancel
            </button>
            <button
              type="button"
              className="danger"
              disabled={rotate.busy}
              onClick={async () => {
                await rotate.run(async () => {
                  const answer = await call(api.POST("/api/tenants/{tenantId}/gateway-key", { params: { path: tenant() } }));
                  setRotated(answer.gatewayApiKey);
                  setConfirming(false);
                });
              }}
            >
              Rotate key
            </button>
          </div>
        </div>
      </Dialog>
    </section>
  );
}

/** Automation tokens for CI and scripts: made (shown once), listed, revoked. */
function ApiTokens() {
  const path = { params: { path: tenant() } };
  const tokens = useLoad(() => call(api.GET("/api/tenants/{tenantId}/api-tokens", path)), []);
  const [name, setName] = useState("");
  const [scope, setScope] = useState("read");
  const [made, setMade] = useState<string>();
  const create = useAction();
  const removal = useRemoval(
    (token: ApiToken) => call(api.DELETE("/api/tenants/{tenantId}/api-tokens/{id}", { params: { path: { ...tenant(), id: token.id } } })),
    () => {
      setMade(undefined);
      void tokens.reload();
    },
  );
  return (
    <section className="card" aria-labelledby="tokens-title">
      <h2 id="tokens-title">Automation tokens</h2>
      <p className="hint">
        For CI and scripts, sent as <code>Authorization: Bearer gt_...</code>. A <code>read</code> token may only read.
      </p>
      <form
        className="row wrap"
        onSubmit={async (event) => {
          event.preventDefault();
          await create.run(async () => {
            const answer = await call(api.POST("/api/tenants/{tenantId}/api-tokens", { ...path, body: { name, scope } }));
            setMade(answer.token);
            setName("");
            void tokens.reload();
          });
        }}
      >
        <Field label="Token name" error={fieldError(create.error, "name")}>
          {(attrs) => <input {...attrs} required value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <Field label="Scope" error={fieldError(create.error, "scope")}>
          {(attrs) => (
            <select {...attrs} value={scope} onChange={(e) => setScope(e.target.value)}>
              <option value="read">read</option>
              <option value="write">write</option>
            </select>
          )}
        </Field>
        <div className="actions end">
          <button type="submit" disabled={create.busy}>
            Make token
          </button>
        </div>
      </form>
      <Problem error={formError(create.error, ["name", "scope"]) ?? tokens.error} />
      {made && <SecretOnce label="New automation token" value={made} />}
      {!!tokens.data?.length && (
        <div className="table-wrap">
          <table aria-label="Automation tokens">
            <thead>
              <tr>
                <th>Name</th>
                <th>Scope</th>
                <th>Token</th>
                <th>Last used</th>
                <ActionsHeader />
              </tr>
            </thead>
            <tbody>
              {tokens.data.map((token) => (
                <tr key={token.id}>
                  <td>{token.name}</td>
                  <td>{token.scope}</td>
                  <td className="mono">{token.tokenPrefix}…</td>
                  <td>{token.lastUsedAt ? <Time at={token.lastUsedAt} /> : "never"}</td>
                  <RowActions name={`${token.name} (${token.tokenPrefix}…)`} onRemove={() => removal.ask(token)} verb="Revoke" />
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ConfirmDelete
        what={`token ${removal.target?.name ?? ""}`}
        verb="Revoke"
        detail={<p>It stops working at once, everywhere.</p>}
        {...removal.dialog}
      />
    </section>
  );
}
