/** The channel-importance criteria (model/importance.ts), apart so specs can name them without loading tfjs. */
export const IMPORTANCE_CRITERIA = ['l1', 'l2', 'bn-scale', 'taylor'] as const;
export type ImportanceCriterion = (typeof IMPORTANCE_CRITERIA)[number];
