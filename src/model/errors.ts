/**
 * Errors of model loading/saving. Every one names the file (a path, or a store key with the
 * store's location) and what is wrong with it, so a user can find and fix the artefact.
 */
export class ModelFileError extends Error {
  constructor(
    /** The file: an absolute path, or `key (in s3://bucket/prefix)` for a store object. */
    readonly file: string,
    /** What is wrong, without the file name (e.g. `has 12 bytes, the manifest expects 16`). */
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: ${problem}`, options);
    this.name = 'ModelFileError';
  }
}
