// The overview: traffic of the last hour, day or week (requests, 4xx and
// 5xx rates, latency, distinct consumers) with charts, whether the gateway
// is online (live), the health of each service and the open errors.
import { useMemo } from "react";
import { Link, useLocation, useSearch } from "wouter";
import { api, call, tenant, type Metrics } from "../api/client";
import { useLoad } from "../hooks";
import { Chart, type Series } from "../components/Chart";
import { Problem, Time } from "../components/ui";

const PERIODS = ["1h", "24h", "7d"] as const;
type Period = (typeof PERIODS)[number];
/** Pages of unresolved errors counted before saying "at least". */
const MAX_ERROR_PAGES = 10;

export function Overview() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const asked = new URLSearchParams(search).get("period");
  const period: Period = PERIODS.includes(asked as Period) ? (asked as Period) : "1h";
  const path = { params: { path: tenant() } };
  const query = { params: { path: tenant(), query: { period } } };

  const metrics = useLoad(() => call(api.GET("/api/tenants/{tenantId}/metrics", query)), [period], 30_000);
  const summary = useLoad(() => call(api.GET("/api/tenants/{tenantId}/metrics/summary", query)), [period], 30_000);
  const gateway = useLoad(() => call(api.GET("/api/tenants/{tenantId}/gateway-status", path)), [], 5_000);
  const health = useLoad(() => call(api.GET("/api/tenants/{tenantId}/health", path)), [], 10_000);
  const services = useLoad(() => call(api.GET("/api/tenants/{tenantId}/services", path)), []);
  const openErrors = useLoad(countOpenErrors, [], 15_000);

  const charts = useMemo(() => chartData(metrics.data ?? []), [metrics.data]);
  const totals = summary.data;
  const serviceName = (id: string) => services.data?.find((s) => s.id === id)?.name ?? id;

  return (
    <>
      <div className="page-head">
        <h1>Overview</h1>
        <div role="group" aria-label="Period" className="segmented">
          {PERIODS.map((p) => (
            <button key={p} type="button" aria-pressed={p === period} onClick={() => navigate(`/?period=${p}`)}>
              {p === "1h" ? "Last hour" : p === "24h" ? "Last 24 hours" : "Last 7 days"}
            </button>
          ))}
        </div>
      </div>
      <Problem error={metrics.error ?? summary.error ?? gateway.error ?? health.error ?? openErrors.error} />
      <section className="stats" aria-label="Traffic">
        <Stat label="Requests" value={totals && totals.requestCount.toLocaleString()} />
        <Stat label="4xx rate" value={totals && percent(totals.clientErrorCount, totals.requestCount)} />
        <Stat label="5xx rate" value={totals && percent(totals.errorCount, totals.requestCount)} />
        <Stat label="p50 latency" value={totals && ms(totals.p50LatencyMs)} />
        <Stat label="p99 latency" value={totals && ms(totals.p99LatencyMs)} />
        <Stat label="Distinct consumers" value={totals && totals.distinctConsumers.toLocaleString()} />
      </section>
      <section className="stats" aria-label="Gateway">
        <div className="stat card">
          <span className="stat-label">Gateway</span>
          <span className={`stat-value ${gateway.data?.online ? "up" : gateway.data ? "down" : ""}`} aria-live="polite">
            {gateway.data ? (gateway.data.online ? "Online" : "Offline") : "—"}
          </span>
          <span className="hint">
            {gateway.data ? `${gateway.data.connectedNodes} node${gateway.data.connectedNodes === 1 ? "" : "s"} connected` : "\u00a0"}
          </span>
        </div>
        <Link href="/errors" className="stat card link-card">
          <span className="stat-label">Unresolved errors</span>
          <span className={`stat-value ${openErrors.data?.count ? "down" : ""}`}>
            {openErrors.data === undefined ? "—" : `${openErrors.data.count}${openErrors.data.more ? "+" : ""}`}
          </span>
          <span className="hint">see Errors</span>
        </Link>
      </section>
      <div className="charts">
        <Chart title="Requests per bucket" times={charts.times} series={charts.traffic} />
        <Chart title="Latency" unit=" ms" times={charts.times} series={charts.latency} />
      </div>
      <section className="card" aria-labelledby="health-title">
        <h2 id="health-title">Service health</h2>
        {health.data?.length === 0 && <p className="hint">No health checks yet: give a service a health check path and run a node.</p>}
        <ul className="health" aria-label="Service health">
          {health.data?.map((h) => (
            <li key={h.serviceId}>
              <span className={`dot ${h.status}`} aria-hidden="true" />
              <span className="name">{serviceName(h.serviceId)}</span>
              <span className={h.status === "up" ? "up" : "down"}>{h.status}</span>
              <span className="hint">
                {h.httpStatus ?? h.error ?? ""} · <Time at={h.checkedAt} />
              </span>
            </li>
          ))}
        </ul>
      </section>
    </>
  );
}

function Stat({ label, value }: { label: string; value?: string }) {
  return (
    <div className="stat card">
      <span className="stat-label">{label}</span>
      <span className="stat-value">{value ?? "—"}</span>
      <span className="hint">{"\u00a0"}</span>
    </div>
  );
}

async function countOpenErrors(): Promise<{ count: number; more: boolean }> {
  let count = 0;
  for (let page = 1; page <= MAX_ERROR_PAGES; page++) {
    const events = await call(
      api.GET("/api/tenants/{tenantId}/errors", { params: { path: tenant(), query: { resolved: false, page } } }),
    );
    count += events.length;
    if (events.length < 50) return { count, more: false };
  }
  return { count, more: true };
}

function chartData(buckets: Metrics[]): { times: number[]; traffic: Series[]; latency: Series[] } {
  return {
    times: buckets.map((b) => Date.parse(b.bucketStart) / 1000),
    traffic: [
      { label: "requests", color: "#2563eb", values: buckets.map((b) => b.requestCount) },
      { label: "4xx", color: "#d97706", values: buckets.map((b) => b.clientErrorCount) },
      { label: "5xx", color: "#dc2626", values: buckets.map((b) => b.errorCount) },
    ],
    latency: [
      { label: "p50", color: "#059669", values: buckets.map((b) => b.p50LatencyMs ?? null) },
      { label: "p99", color: "#7c3aed", values: buckets.map((b) => b.p99LatencyMs ?? null) },
    ],
  };
}

function percent(part: number, whole: number): string {
  return whole === 0 ? "0%" : `${((100 * part) / whole).toFixed(1)}%`;
}

function ms(value?: number | null): string {
  return value == null ? "—" : `${value.toFixed(1)} ms`;
}
