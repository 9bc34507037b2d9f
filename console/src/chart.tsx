/** A small line chart (uPlot) of per-minute series, with a text summary for screen readers. */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

/** Distinct, colour-blind-safe line colours (Okabe-Ito). */
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9'];

export interface ChartProps {
  /** What the chart shows, as its accessible name and caption. */
  title: string;
  /** Minute starts, epoch milliseconds. */
  times: number[];
  series: Array<{ label: string; values: Array<number | null> }>;
  /** Unit shown on the y axis. */
  unit: string;
  /**
   * How a y value reads on the axis.
   * @default uPlot's own (which rounds amounts below 0.01 to 0, so small costs need one)
   */
  format?: (value: number) => string;
}

export function LineChart({ title, times, series, unit, format }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!box.current) return;
    const width = Math.max(320, Math.min(900, box.current.clientWidth || 720));
    const plot = new uPlot(
      {
        width,
        height: 220,
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: false }))],
        axes: [{}, { label: unit, size: format ? 80 : 60, ...(format ? { values: (_u: uPlot, ticks: number[]) => ticks.map(format) } : {}) }],
        scales: { x: { time: true } },
        legend: { show: true },
      },
      [times.map((t) => t / 1000), ...series.map((s) => s.values)] as uPlot.AlignedData,
      box.current,
    );
    return () => plot.destroy();
  }, [times, series, unit, format]);
  const totals = series.map((s) => `${s.label}: ${s.values.reduce<number>((a, v) => a + (v ?? 0), 0).toLocaleString('en')}`).join('; ');
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}. Totals over the window: ${totals || 'no data'}.`} />
    </figure>
  );
}
