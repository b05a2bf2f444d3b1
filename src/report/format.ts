/**
 * Number and time text for the report. Locale-free on purpose: `toLocaleString` depends on the
 * machine's ICU data and locale, and the report must be byte-identical wherever it is rendered.
 */
import { formatCompact } from './svg.ts';

export { formatCompact };

/** U+2212: a real minus sign lines up with "+" in tables, unlike a hyphen. */
const MINUS = '\u2212';

/** `0.5` -> `50.0%` (fractions in, percent out). */
export function formatPercent(fraction: number, digits = 1): string {
  return `${signless(fraction * 100, digits)}%`;
}

/** A value with an explicit sign: `+0.0123`, `−0.0045`, `0.0000` stays unsigned. */
export function formatSigned(value: number, digits = 4): string {
  const text = Math.abs(value).toFixed(digits);
  if (Number(text) === 0) return text;
  return `${value > 0 ? '+' : MINUS}${text}`;
}

/** An accuracy difference in percentage points: `+0.3 pp`, `−6.8 pp`. */
export function formatPointsDelta(delta: number, digits = 1): string {
  return `${formatSigned(delta * 100, digits)} pp`;
}

/** Fixed decimals with a real minus sign. */
export function signless(value: number, digits: number): string {
  const text = value.toFixed(digits);
  return text.startsWith('-') ? (Number(text) === 0 ? text.slice(1) : `${MINUS}${text.slice(1)}`) : text;
}

/** `42.3 s`, `12 min 05 s`, `3 h 07 min`: precise for short steps, readable for long runs. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return 'n/a';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, '0')} s`;
  const minutes = Math.round(seconds / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** `$12.34` (cents are the useful resolution of a cloud bill estimate; below a cent says so). */
export function formatUsd(usd: number): string {
  if (usd > 0 && usd < 0.01) return '< $0.01';
  return `$${usd.toFixed(2)}`;
}

/** ISO time as people read it: `2026-11-28 02:54:51 UTC` for Z times, else the ISO text with a space. */
export function formatTime(iso: string): string {
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})$/.exec(iso);
  if (!match) return iso;
  return `${match[1]} ${match[2]} ${match[3] === 'Z' ? 'UTC' : match[3]}`;
}
