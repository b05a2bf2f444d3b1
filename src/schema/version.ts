/**
 * The format version of the pipeline's result documents (manifest.json, plans, metrics.json):
 * bumped when a field changes meaning; readers refuse versions they do not know.
 */
export const RESULT_FORMAT_VERSION = 1;
