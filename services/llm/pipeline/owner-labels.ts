import { KEY_LABEL_CAP, LabelCap, TEAM_LABEL_CAP } from '../../kit/label-cap';
import type { LlmCallOptions } from '../core';

/**
 * The `key` and `team` labels of the cost metrics (`promptmesh_llm_cost_usd_total`,
 * `promptmesh_cache_savings_usd_total`): the API key id (`anonymous` without one) and its team
 * (`none`), each bounded by a {@link LabelCap} (the rest `other`), so user-chosen ids cannot
 * blow up the series count.
 */
export class OwnerLabels {
  private readonly keys = new LabelCap(KEY_LABEL_CAP);
  private readonly teams = new LabelCap(TEAM_LABEL_CAP);

  /** The labels of a call made with `options`. */
  of(options: Pick<LlmCallOptions, 'tenant' | 'team'>): { key: string; team: string } {
    return { key: this.keys.of(options.tenant ?? 'anonymous'), team: this.teams.of(options.team ?? 'none') };
  }
}
