/**
 * NSGA-II environmental survival: fill the next population front by front; the front that does
 * not fit is cut by crowding distance (largest first), ties by index so survival is
 * deterministic given the candidate order.
 */
import { crowdingDistance, nonDominatedSort } from '../sort.ts';

/** Indices of the `size` survivors among `objectives`, best front first. */
export function rankAndCrowdingSurvival(objectives: readonly (readonly number[])[], size: number): number[] {
  const { fronts } = nonDominatedSort(objectives, size);
  const survivors: number[] = [];
  for (const front of fronts) {
    if (survivors.length + front.length <= size) {
      survivors.push(...front);
      continue;
    }
    const distance = crowdingDistance(objectives, front);
    const order = front.map((_, k) => k).sort((a, b) => distance[b] - distance[a] || front[a] - front[b]);
    for (const k of order.slice(0, size - survivors.length)) survivors.push(front[k]);
    break;
  }
  return survivors;
}

/** Rank and crowding distance of every point (for the tournament). */
export function rankAndCrowding(objectives: readonly (readonly number[])[]): { rank: Int32Array; crowding: Float64Array } {
  const { fronts, rank } = nonDominatedSort(objectives);
  const crowding = new Float64Array(objectives.length);
  for (const front of fronts) {
    const distance = crowdingDistance(objectives, front);
    front.forEach((i, k) => (crowding[i] = distance[k]));
  }
  return { rank, crowding };
}
