/**
 * Channel groups as the search sees them: a contiguous run of genome bits that are pruned as
 * one unit's channels, with a per-channel importance (e.g. the L1 norm of the filters).
 *
 * The search engine knows nothing about layers; the pruning problem hands it these groups.
 * `prepareGroups` validates them once and precomputes importance orders, which repair, mutation
 * and sampling all need on every call.
 */

export interface ChannelGroup {
  /** First genome bit of the group. */
  readonly offset: number;
  /** Number of channels (bits). */
  readonly length: number;
  /** One finite score per channel, higher = more important. */
  readonly importance: ArrayLike<number>;
  /** Overrides the search-wide `minKeep` for this group. */
  readonly minKeep?: number;
  /** Overrides the search-wide `roundTo` for this group. */
  readonly roundTo?: number;
}

export interface KeepRule {
  /** Fraction of a group's channels that must stay, in [0, 1]; at least one channel always stays. */
  readonly minKeep: number;
  /** The kept count is a multiple of this (or the whole group); integer >= 1. */
  readonly roundTo: number;
}

export interface PreparedGroup {
  readonly offset: number;
  readonly length: number;
  readonly minKeep: number;
  readonly roundTo: number;
  /** Local channel indices, most important first; equal importance -> lower index first. */
  readonly byImportance: Int32Array;
  /** Per local channel: 0 for the least important, 1 for the most (rank / (length - 1)). */
  readonly importanceRank: Float64Array;
}

/**
 * Checks that the groups tile [0, genomeLength) in order, that importances are finite and the
 * keep rules valid, then precomputes importance orders. Errors name the group.
 */
export function prepareGroups(groups: readonly ChannelGroup[], genomeLength: number, rule: KeepRule): PreparedGroup[] {
  checkRule(rule, 'search');
  let expectedOffset = 0;
  const prepared = groups.map((group, g): PreparedGroup => {
    const where = `group ${g}`;
    if (group.offset !== expectedOffset) {
      throw new Error(`${where}: offset ${group.offset}, expected ${expectedOffset} (groups must tile the genome in order)`);
    }
    if (!Number.isInteger(group.length) || group.length < 1) throw new Error(`${where}: length must be a positive integer, got ${group.length}`);
    if (group.importance.length !== group.length) {
      throw new Error(`${where}: ${group.importance.length} importances for ${group.length} channels`);
    }
    for (let c = 0; c < group.length; c++) {
      if (!Number.isFinite(group.importance[c])) throw new Error(`${where}: importance of channel ${c} is ${group.importance[c]}`);
    }
    const groupRule = { minKeep: group.minKeep ?? rule.minKeep, roundTo: group.roundTo ?? rule.roundTo };
    checkRule(groupRule, where);
    expectedOffset += group.length;
    const order = Array.from({ length: group.length }, (_, c) => c);
    order.sort((a, b) => group.importance[b] - group.importance[a] || a - b);
    const importanceRank = new Float64Array(group.length);
    // order[0] is the most important -> rank 1; a one-channel group gets rank 1.
    for (let k = 0; k < group.length; k++) importanceRank[order[k]] = group.length === 1 ? 1 : 1 - k / (group.length - 1);
    return {
      offset: group.offset,
      length: group.length,
      ...groupRule,
      byImportance: Int32Array.from(order),
      importanceRank,
    };
  });
  if (expectedOffset !== genomeLength) throw new Error(`groups cover ${expectedOffset} bits, the genome has ${genomeLength}`);
  return prepared;
}

function checkRule(rule: KeepRule, where: string): void {
  if (!(rule.minKeep >= 0 && rule.minKeep <= 1)) throw new Error(`${where}: minKeep must be in [0, 1], got ${rule.minKeep}`);
  if (!Number.isInteger(rule.roundTo) || rule.roundTo < 1) throw new Error(`${where}: roundTo must be an integer >= 1, got ${rule.roundTo}`);
}

/**
 * The smallest kept count a group may have: ceil(minKeep * length), at least 1, rounded up to a
 * multiple of roundTo and capped at the group size. (The 1e-9 keeps 0.3 * 10 from becoming 4.)
 */
export function minimumKept(group: Pick<PreparedGroup, 'length' | 'minKeep' | 'roundTo'>): number {
  return legalKeptCount(group, Math.max(1, Math.ceil(group.minKeep * group.length - 1e-9)));
}

/** The smallest legal kept count >= `kept`: rounded up to a multiple of roundTo, capped at the size. */
export function legalKeptCount(group: Pick<PreparedGroup, 'length' | 'minKeep' | 'roundTo'>, kept: number): number {
  const floor = Math.max(kept, 1, Math.ceil(group.minKeep * group.length - 1e-9));
  return Math.min(group.length, Math.ceil(floor / group.roundTo) * group.roundTo);
}

/** True when `kept` channels satisfy the group's minKeep and roundTo. */
export function isLegalKeptCount(group: Pick<PreparedGroup, 'length' | 'minKeep' | 'roundTo'>, kept: number): boolean {
  return legalKeptCount(group, kept) === kept;
}
