// Plugins: the tenant's Wasm components. Upload one (checked by the API
// before it is stored), see where it runs, delete it when no route uses it.
import { useState } from "react";
import { Link } from "wouter";
import { api, call, tenant, type Plugin } from "../api/client";
import { useAction, useLinkedRow, useLoad, useRemoval } from "../hooks";
import { ConfirmDelete, Empty, Field, Problem, Time, ActionsHeader, RowActions, fieldError, formError } from "../components/ui";

export function Plugins() {
  const path = { params: { path: tenant() } };
  const plugins = useLoad(() => call(api.GET("/api/tenants/{tenantId}/plugins", path)), []);
  const removal = useRemoval(
    (plugin: Plugin) => call(api.DELETE("/api/tenants/{tenantId}/plugins/{id}", { params: { path: { ...tenant(), id: plugin.id } } })),
    () => void plugins.reload(),
  );
  const deleting = removal.target;
  const linked = useLinkedRow(!!plugins.data);
  const routes = useLoad(() => call(api.GET("/api/tenants/{tenantId}/routes", path)), []);
  const usedBy = (plugin: Plugin) => (routes.data ?? []).filter((r) => r.plugins.some((p) => p.pluginId === plugin.id));
  return (
    <>
      <div className="page-head">
        <h1>Plugins</h1>
      </div>
      <Upload onUploaded={() => void plugins.reload()} />
      <Problem error={plugins.error ?? routes.error} title="Plugins could not be loaded" />
      {plugins.data?.length === 0 && (
        <Empty>
          No plugins yet. <code>gatehouse plugin new</code> makes one that builds; see the <a href="/docs/plugins.html">plugin guide</a>.
        </Empty>
      )}
      {!!plugins.data?.length && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Name</th>
                <th>Version</th>
                <th>SHA-256</th>
                <th>Size</th>
                <th>Used by</th>
                <th>Uploaded</th>
                <ActionsHeader />
              </tr>
            </thead>
            <tbody>
              {plugins.data.map((plugin) => {
                const routesUsing = usedBy(plugin);
                return (
                  <tr key={plugin.id} id={plugin.id} className={linked === plugin.id ? "linked" : undefined}>
                    <td>{plugin.name}</td>
                    <td className="mono">{plugin.version}</td>
                    <td className="mono small" title={plugin.sha256}>
                      {plugin.sha256.slice(0, 16)}…
                    </td>
                    <td>{formatBytes(plugin.sizeBytes)}</td>
                    <td>
                      {routesUsing.length === 0
                        ? "no route"
                        : routesUsing.map((r) => (
                            <Link key={r.id} href={`/routes#${r.id}`} className="mono route-ref">
                              {r.method} {r.pathPattern}
                            </Link>
                          ))}
                    </td>
                    <td>
                      <Time at={plugin.createdAt} />
                    </td>
                    <RowActions name={`${plugin.name}@${plugin.version}`} onRemove={() => removal.ask(plugin)} />
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <ConfirmDelete
        what={`plugin ${deleting ? `${deleting.name}@${deleting.version}` : ""}`}
        detail={
          deleting && usedBy(deleting).length > 0 ? (
            <p>
              A plugin cannot be deleted while a route uses it. Detach it from{" "}
              {usedBy(deleting)
                .map((r) => `${r.method} ${r.pathPattern}`)
                .join(", ")}{" "}
              on the Routes page first.
            </p>
          ) : undefined
        }
        {...removal.dialog}
      />
    </>
  );
}

function Upload({ onUploaded }: { onUploaded: () => void }) {
  const [file, setFile] = useState<File>();
  const [name, setName] = useState("");
  const [version, setVersion] = useState("1");
  const [inputKey, setInputKey] = useState(0);
  const upload = useAction();
  return (
    <section className="card" aria-labelledby="upload-title">
      <h2 id="upload-title">Upload a plugin</h2>
      <form
        className="row wrap"
        onSubmit={async (event) => {
          event.preventDefault();
          if (!file) return;
          const ok = await upload.run(async () => {
            await call(
              api.POST("/api/tenants/{tenantId}/plugins", {
                params: { path: tenant(), query: { name, version } },
                body: file as never,
                bodySerializer: (body: unknown) => body as Blob,
                headers: { "Content-Type": "application/wasm" },
              }),
            );
          });
          if (ok) {
            setFile(undefined);
            setName("");
            setInputKey(inputKey + 1);
            onUploaded();
          }
        }}
      >
        <Field label="Component (.wasm)">
          {(attrs) => (
            <input
              {...attrs}
              key={inputKey}
              type="file"
              accept=".wasm,application/wasm"
              required
              onChange={(e) => {
                const chosen = e.target.files?.[0];
                setFile(chosen);
                if (chosen && !name) setName(chosen.name.replace(/\.wasm$/, "").toLowerCase().replace(/[^a-z0-9_-]/g, "-"));
              }}
            />
          )}
        </Field>
        <Field label="Plugin name" error={fieldError(upload.error, "name")}>
          {(attrs) => <input {...attrs} required value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <Field label="Version" error={fieldError(upload.error, "version")}>
          {(attrs) => <input {...attrs} required value={version} onChange={(e) => setVersion(e.target.value)} />}
        </Field>
        <div className="actions end">
          <button type="submit" className="primary" disabled={upload.busy || !file}>
            Upload
          </button>
        </div>
      </form>
      <Problem error={formError(upload.error, ["name", "version"])} title="Not uploaded" />
    </section>
  );
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
