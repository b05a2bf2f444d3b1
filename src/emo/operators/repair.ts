/**
 * Repair: makes every group's kept count legal (at least minKeep of the group and at least one
 * channel, a multiple of roundTo or the whole group) by turning ON the most important channels
 * that are off, until the count reaches the smallest legal count >= the current one.
 *
 * Why repair only turns channels on:
 * - A genome's kept channels are the search's decisions; repair adds the fewest channels needed
 *   and never undoes a decision to keep, so the repaired genome is a superset of the original.
 * - Rounding the count down could break minKeep, and choosing which kept channel to drop would
 *   be a second, competing pruning criterion inside repair. Rounding up has one answer.
 * - It makes repair idempotent and leaves legal genomes untouched (tests check both), so the
 *   fitness cache sees a stable key for every genome.
 * The cost is a slight drift towards keeping more channels, which mutation's drops offset.
 */
import type { Genome } from '../genome.ts';
import { legalKeptCount, type PreparedGroup } from '../groups.ts';

/** Repairs `genome` in place; returns the number of channels turned on. */
export function repairGenome(genome: Genome, groups: readonly PreparedGroup[]): number {
  let turnedOn = 0;
  for (const group of groups) {
    let kept = 0;
    for (let c = 0; c < group.length; c++) kept += genome[group.offset + c];
    const target = legalKeptCount(group, kept);
    for (let k = 0; kept < target; k++) {
      const i = group.offset + group.byImportance[k];
      if (!genome[i]) {
        genome[i] = 1;
        kept++;
        turnedOn++;
      }
    }
  }
  return turnedOn;
}

/** True when every group's kept count is legal (what `repairGenome` guarantees). */
export function isRepaired(genome: Genome, groups: readonly PreparedGroup[]): boolean {
  for (const group of groups) {
    let kept = 0;
    for (let c = 0; c < group.length; c++) kept += genome[group.offset + c];
    if (legalKeptCount(group, kept) !== kept) return false;
  }
  return true;
}
