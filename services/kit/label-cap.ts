/**
 * Bounds the distinct values of one metric label. Key and team ids are chosen by users, and
 * every distinct label value is a series Prometheus keeps: the first `max` distinct values pass,
 * later ones are reported as {@link OVERFLOW_LABEL}, so a flood of new keys cannot blow up the
 * series count.
 */
export class LabelCap {
  private readonly seen = new Set<string>();

  constructor(
    /** How many distinct values pass before the rest become `other`. */
    readonly max: number,
  ) {
    if (!Number.isInteger(max) || max < 1) throw new Error(`'max' must be a whole number of at least 1, got ${max}`);
  }

  /** `value` when it is one of the first `max` distinct values, else {@link OVERFLOW_LABEL}. */
  of(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.max) return OVERFLOW_LABEL;
    this.seen.add(value);
    return value;
  }
}

/** What a capped label reads once its distinct values ran out. */
export const OVERFLOW_LABEL = 'other';

/** Distinct key ids the cost metrics label before `other` (docs/keys.md, "Metrics"). */
export const KEY_LABEL_CAP = 200;
/** Distinct team ids the cost metrics label before `other`. */
export const TEAM_LABEL_CAP = 50;
