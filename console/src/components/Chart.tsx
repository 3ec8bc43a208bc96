// A time-series chart (uPlot) of fixed height, as wide as its container.
import { useEffect, useRef } from "react";
import uPlot from "uplot";

export interface Series {
  label: string;
  color: string;
  values: (number | null)[];
}

export function Chart(props: { title: string; times: number[]; series: Series[]; unit?: string; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const height = props.height ?? 200;
  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const options: uPlot.Options = {
      width: element.clientWidth,
      height,
      // The legend is ours (below): uPlot's grows as it wraps, shifting the page.
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [{}, { size: 50, values: (_u, ticks) => ticks.map((t) => `${t}${props.unit ?? ""}`) }],
      series: [
        {},
        ...props.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          // Points too: a bucket between two empty ones has no line to draw.
          points: { show: true, size: 4 },
          spanGaps: false,
        })),
      ],
    };
    const data = [props.times, ...props.series.map((s) => s.values)] as uPlot.AlignedData;
    const plot = new uPlot(options, data, element);
    const resize = new ResizeObserver(() => plot.setSize({ width: element.clientWidth, height }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [props.times, props.series, props.unit, height]);
  return (
    <figure className="chart card">
      <figcaption>
        {props.title}
        <span className="legend">
          {props.series.map((s) => (
            <span key={s.label}>
              <span className="swatch" style={{ background: s.color }} aria-hidden="true" />
              {s.label}
            </span>
          ))}
        </span>
      </figcaption>
      <div ref={box} className="chart-box" style={{ height }} role="img" aria-label={`${props.title} chart`} />
    </figure>
  );
}
