/** How figures read in the console. */
import type { SplitEntry } from './api';

export function splitText(split: SplitEntry[]): string {
  if (split.length === 1) return `v${split[0]!.version}`;
  return split.map((e) => `v${e.version} ${e.weight}%`).join(' / ');
}

export function usd(value: number): string {
  if (value === 0) return '$0';
  return value < 0.01 ? `$${value.toPrecision(3)}` : `$${value.toFixed(2)}`;
}

export function ms(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : `${Math.round(value).toLocaleString('en')} ms`;
}

export function percent(rate: number): string {
  return `${(rate * 100).toFixed(rate > 0 && rate < 0.01 ? 2 : 1)}%`;
}

export function when(iso: string): string {
  return new Date(iso).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

/** An exact amount from integer micro-dollars (the ledger's unit): at least cents, at most six decimals. */
export function usdMicro(micro: number): string {
  return `$${(micro / 1e6).toLocaleString('en', { minimumFractionDigits: 2, maximumFractionDigits: 6 })}`;
}

/** A count with thousands separators. */
export function count(n: number): string {
  return n.toLocaleString('en');
}
