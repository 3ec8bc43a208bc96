// Request logs: 50 a page, newest first, with every filter of the API kept
// in the URL (so a view can be shared), a request's detail, and a live
// mode that polls for new requests.
import { useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { Link, useLocation, useSearch } from "wouter";
import { api, call, tenant, type RequestLog } from "../api/client";
import { useLoad } from "../hooks";
import { Dialog, Empty, Field, Problem, Time } from "../components/ui";

const FILTERS = ["from", "to", "path", "statusCode", "consumerId"] as const;
/** How often live mode asks for new requests. */
const LIVE_EVERY_MS = 3000;
/** The most rows live mode keeps on screen. */
const LIVE_MAX_ROWS = 500;

type Filters = Partial<Record<(typeof FILTERS)[number], string>>;

/** `YYYY-MM-DDTHH:mm` in local time, as a datetime-local input holds it. */
function toLocalInput(iso?: string): string {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}

function fromLocalInput(value: string): string | undefined {
  return value ? new Date(value).toISOString() : undefined;
}

export function Logs() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const params = useMemo(() => new URLSearchParams(search), [search]);
  const filters: Filters = Object.fromEntries(FILTERS.flatMap((f) => (params.get(f) ? [[f, params.get(f)!]] : [])));
  const live = params.get("live") === "1";
  // Live mode shows the newest requests: page 1 only.
  const page = live ? 1 : Math.max(1, Number(params.get("page") ?? 1) || 1);

  const [rows, setRows] = useState<RequestLog[]>([]);
  const [gap, setGap] = useState(false);
  const [selected, setSelected] = useState<RequestLog>();
  // The newest row shown, and the view (URL) it was shown in.
  const newest = useRef<{ search: string; at: string } | undefined>(undefined);

  const fetchPage = (query: Filters & { page: number }) =>
    call(
      api.GET("/api/tenants/{tenantId}/logs", {
        params: { path: tenant(), query: { ...query, statusCode: query.statusCode ? Number(query.statusCode) : undefined } },
      }),
    );
  const logs = useLoad(
    async () => {
      const since = newest.current?.search === search ? newest.current.at : undefined;
      if (!live || !since) return { rows: await fetchPage({ ...filters, page }), complete: true };
      // Every request since the newest shown (`from` is inclusive: the ids
      // dedupe the overlap), a page at a time, as many as live mode keeps.
      const from = filters.from && filters.from > since ? filters.from : since;
      const fresh: RequestLog[] = [];
      for (let next = 1; next <= LIVE_MAX_ROWS / 50; next++) {
        const batch = await fetchPage({ ...filters, from, page: next });
        fresh.push(...batch);
        if (batch.length < 50) return { rows: fresh, complete: true };
      }
      return { rows: fresh, complete: false };
    },
    [search],
    live ? LIVE_EVERY_MS : undefined,
  );
  const consumers = useLoad(() => call(api.GET("/api/tenants/{tenantId}/consumers", { params: { path: tenant() } })), []);

  // A new view replaces the rows; live mode's polls add the new ones on top.
  useEffect(() => {
    setRows([]);
    setGap(false);
  }, [search]);
  useEffect(() => {
    if (!logs.data) return;
    const { rows: fresh, complete } = logs.data;
    setRows((shown) => {
      const next = live ? merge(shown, fresh) : fresh;
      newest.current = next[0] && { search, at: next[0].createdAt };
      return next;
    });
    if (!complete) setGap(true);
    // Only new data: `live` and `search` change the URL, which reloads.
  }, [logs.data]);

  const go = (next: Filters & { page?: number; live?: boolean }) => {
    const merged = new URLSearchParams();
    for (const f of FILTERS) {
      const value = f in next ? next[f] : filters[f];
      if (value) merged.set(f, value);
    }
    const nextPage = next.page ?? 1;
    if (nextPage > 1) merged.set("page", String(nextPage));
    if (next.live ?? live) merged.set("live", "1");
    const text = merged.toString();
    navigate(`/logs${text ? `?${text}` : ""}`);
  };
  const consumerName = (id?: string | null) => (id ? consumers.data?.find((c) => c.id === id)?.name ?? id.slice(0, 8) : "anonymous");

  return (
    <>
      <div className="page-head">
        <h1>Logs</h1>
        <label className="live">
          <input type="checkbox" checked={live} onChange={(e) => go({ live: e.target.checked, page: 1 })} /> Live (every{" "}
          {LIVE_EVERY_MS / 1000} s)
        </label>
      </div>
      <FilterForm key={FILTERS.map((f) => filters[f] ?? "").join("|")} filters={filters} consumers={consumers.data ?? []} onApply={(next) => go({ ...next, page: 1 })} />
      <Problem error={logs.error} title="Logs could not be loaded" />
      {gap && (
        <p className="notice" role="status">
          More requests arrived than live mode shows at once ({LIVE_MAX_ROWS}); some are not listed. Turn live mode off to page
          through them all.
        </p>
      )}
      {!logs.loading && rows.length === 0 && !logs.error && <Empty>No requests match these filters.</Empty>}
      <div className="table-wrap logs">
        <table aria-label="Request logs">
          <thead>
            <tr>
              <th>Time</th>
              <th>Method</th>
              <th>Path</th>
              <th>Status</th>
              <th>Latency</th>
              <th>Consumer</th>
              <th>Client</th>
              <th>
                <span className="visually-hidden">Detail</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((log) => (
              <tr key={log.id} className={`status-${Math.floor(log.statusCode / 100)}xx`}>
                <td>
                  <Time at={log.createdAt} />
                </td>
                <td className="mono">{log.method}</td>
                <td className="mono">{log.path}</td>
                <td className="mono">{log.statusCode}</td>
                <td>{log.latencyMs.toFixed(1)} ms</td>
                <td>{consumerName(log.consumerId)}</td>
                <td className="mono">{log.clientIp}</td>
                <td>
                  <button type="button" className="quiet" aria-label={`Details of request ${log.requestId}`} onClick={() => setSelected(log)}>
                    Details
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <nav className="pager" aria-label="Pages">
        <button type="button" disabled={page <= 1} onClick={() => go({ page: page - 1 })}>
          Previous page
        </button>
        <span>Page {page}</span>
        <button type="button" disabled={live || rows.length < 50} onClick={() => go({ page: page + 1 })}>
          Next page
        </button>
      </nav>
      <Dialog title="Request" open={!!selected} onClose={() => setSelected(undefined)}>
        {selected && <LogDetail log={selected} consumer={consumerName(selected.consumerId)} />}
      </Dialog>
    </>
  );
}

/** Live rows: the newest first, each once, at most LIVE_MAX_ROWS. */
function merge(shown: RequestLog[], fresh: RequestLog[]): RequestLog[] {
  const seen = new Set(shown.map((r) => r.id));
  const added = fresh.filter((r) => !seen.has(r.id));
  if (added.length === 0) return shown;
  return [...added, ...shown].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, LIVE_MAX_ROWS);
}

function FilterForm(props: { filters: Filters; consumers: { id: string; name: string }[]; onApply: (f: Filters) => void }) {
  const [from, setFrom] = useState(toLocalInput(props.filters.from));
  const [to, setTo] = useState(toLocalInput(props.filters.to));
  const [path, setPath] = useState(props.filters.path ?? "");
  const [status, setStatus] = useState(props.filters.statusCode ?? "");
  const [consumer, setConsumer] = useState(props.filters.consumerId ?? "");
  const known = props.consumers.some((c) => c.id === consumer);
  return (
    <form
      className="filters"
      aria-label="Filters"
      onSubmit={(event) => {
        event.preventDefault();
        props.onApply({
          from: fromLocalInput(from),
          to: fromLocalInput(to),
          path: path || undefined,
          statusCode: status || undefined,
          consumerId: consumer || undefined,
        });
      }}
    >
      <Field label="From">{(attrs) => <input {...attrs} type="datetime-local" value={from} onChange={(e) => setFrom(e.target.value)} />}</Field>
      <Field label="To">{(attrs) => <input {...attrs} type="datetime-local" value={to} onChange={(e) => setTo(e.target.value)} />}</Field>
      <Field label="Path" hint="exact">{(attrs) => <input {...attrs} placeholder="/orders/42" value={path} onChange={(e) => setPath(e.target.value)} />}</Field>
      <Field label="Status">
        {(attrs) => <input {...attrs} type="number" min={100} max={599} value={status} onChange={(e) => setStatus(e.target.value)} />}
      </Field>
      <Field label="Consumer">
        {(attrs) => (
          <select {...attrs} value={consumer} onChange={(e) => setConsumer(e.target.value)}>
            <option value="">any</option>
            {consumer && !known && <option value={consumer}>{consumer}</option>}
            {props.consumers.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name}
              </option>
            ))}
          </select>
        )}
      </Field>
      <div className="actions end">
        <button type="submit" className="primary">
          Apply filters
        </button>
        <button type="button" onClick={() => props.onApply({})}>
          Clear
        </button>
      </div>
    </form>
  );
}

function LogDetail({ log, consumer }: { log: RequestLog; consumer: string }) {
  const rows: [string, ReactNode][] = [
    ["Request id", <code>{log.requestId}</code>],
    ["Time", <Time at={log.createdAt} />],
    ["Request", <code>{`${log.method} ${log.path}`}</code>],
    ["Status", log.statusCode],
    ["Latency", `${log.latencyMs.toFixed(2)} ms`],
    ["Consumer", log.consumerId ? `${consumer} (${log.consumerId})` : "anonymous"],
    ["Client IP", log.clientIp],
    ["Bytes in / out", `${log.bytesIn} / ${log.bytesOut}`],
    ["Route", log.routeId ? <Link href={`/routes#${log.routeId}`}>{log.routeId}</Link> : "no route matched"],
    ["Service", log.serviceId ? <Link href={`/services#${log.serviceId}`}>{log.serviceId}</Link> : "—"],
  ];
  return (
    <dl className="detail">
      {rows.map(([term, value]) => (
        <div key={term}>
          <dt>{term}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}
