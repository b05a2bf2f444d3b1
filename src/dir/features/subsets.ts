/** The fixed search subsets of the training data that boundary features are computed on. */
import type { LabelledSet } from '../../data/dataset.ts';
import { stratifiedSample } from '../../data/sampling.ts';

/** The fixed search subsets: indices into the training set, disjoint, sorted ascending. */
export interface SearchSubsets {
  readonly dataset: string;
  readonly seed: number;
  readonly train: Int32Array;
  readonly val: Int32Array;
}

export interface SearchSubsetOptions {
  /** Images of the search-train subset (class-stratified). */
  readonly searchTrain: number;
  /** Images of the search-validation subset (class-stratified, disjoint from search-train). */
  readonly searchVal: number;
  readonly seed: number;
}

/** Draws the search-train and search-validation subsets of `dataset` (the training split: an ImageDataset or ImageSource). */
export function drawSearchSubsets(dataset: LabelledSet, options: SearchSubsetOptions): SearchSubsets {
  if (options.searchTrain + options.searchVal > dataset.count) {
    throw new Error(
      `search subsets of ${dataset.name}: searchTrain ${options.searchTrain} + searchVal ${options.searchVal} exceed its ${dataset.count} images`,
    );
  }
  const train = stratifiedSample(dataset, { total: options.searchTrain, seed: options.seed });
  // The validation draw excludes the train indices; a different seed stream keeps it independent.
  const val = stratifiedSample(dataset, { total: options.searchVal, seed: options.seed + 0x76616c, exclude: train });
  return { dataset: dataset.name, seed: options.seed, train, val };
}
