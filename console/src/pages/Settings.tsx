// Settings: rate-limit tiers and the anonymous limit, the gateway key
// (rotated here, the new one shown once), and how to run a node.
import { useState } from "react";
import { api, call, tenant, type TierSettings } from "../api/client";
import { useAction, useLoad } from "../hooks";
import { Dialog, Field, GroupError, Problem, SecretOnce, fieldError, formError } from "../components/ui";

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
