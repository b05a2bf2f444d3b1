/**
 * What a spec's `model` (and `emo-dir inspect <model>`) may be: ONE table of the accepted forms,
 * read by every place that meets a model reference (the local runner, `emo-dir submit`, the Plan
 * step, `emo-dir plan`, `emo-dir inspect`), so a refusal always lists the same forms and a new
 * form is one more row (the `.onnx` rows: src/model/onnx/).
 *
 * Classification is syntactic (no I/O): it says which form a reference has. Whether the thing
 * is there is checked where it is read (model-dir.ts for local paths, the store for prefixes).
 */
import { isAbsolute } from 'node:path';
import { isZooName, zooNames, type ZooName } from './zoo.ts';

export type ModelReference =
  | { readonly kind: 'zoo'; readonly ref: string; readonly name: ZooName }
  /** A local path (absolute, `./`, `../`, `~`, or a `file:` URL), resolved against the spec's directory. */
  | { readonly kind: 'directory'; readonly ref: string }
  /** `s3://bucket/prefix/...` inside the run's store: `emo-dir submit` turns it into a key prefix. */
  | { readonly kind: 'store-url'; readonly ref: string }
  /** A key prefix in the run's store holding model.json (`registry/<name>/model/`). */
  | { readonly kind: 'store-prefix'; readonly ref: string; readonly prefix: string }
  /** A local ONNX file (a local path ending in `.onnx`), imported by src/model/onnx/. */
  | { readonly kind: 'onnx-file'; readonly ref: string }
  /** An ONNX file in the run's store (`registry/<name>/model.onnx`), imported by every step that reads it. */
  | { readonly kind: 'onnx-key'; readonly ref: string; readonly key: string };

export type ModelReferenceKind = ModelReference['kind'];

interface ModelReferenceForm {
  readonly kind: ModelReferenceKind;
  /** How the form reads in a message. */
  readonly form: string;
  readonly matches: (ref: string) => boolean;
}

const URL_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/** A reference the user clearly meant as a local path (a store key never starts so). */
export function isLocalPath(ref: string): boolean {
  return isAbsolute(ref) || ref.startsWith('.') || ref.startsWith('~') || ref.startsWith('file:');
}

/** A reference to an ONNX file (local path or store key): it ends in `.onnx`. */
export function isOnnxRef(ref: string): boolean {
  return /\.onnx$/i.test(ref);
}

/** The accepted forms, first match wins (a local path is tried before the store-prefix fallback). */
export const MODEL_REFERENCE_FORMS: readonly ModelReferenceForm[] = [
  { kind: 'zoo', form: `zoo:<name> (${zooNames.join(', ')})`, matches: (ref) => ref.startsWith('zoo:') },
  {
    kind: 'onnx-file',
    form: 'a local ONNX file (path ending in .onnx, e.g. ./model.onnx; external data files beside it)',
    matches: (ref) => isLocalPath(ref) && isOnnxRef(ref),
  },
  {
    kind: 'directory',
    form: 'a local directory holding model.json (absolute, ./ or ../ relative to the spec file, ~/..., or file:///...)',
    matches: isLocalPath,
  },
  { kind: 'store-url', form: "an s3:// URL inside the run's store", matches: (ref) => /^s3:\/\//i.test(ref) },
  {
    kind: 'onnx-key',
    form: "an .onnx key in the run's store (e.g. registry/<name>/model.onnx)",
    matches: (ref) => !URL_SCHEME.test(ref) && isOnnxRef(ref),
  },
  {
    kind: 'store-prefix',
    form: "a key prefix in the run's store holding model.json (e.g. registry/<name>/model/)",
    matches: (ref) => !URL_SCHEME.test(ref),
  },
];

/** "use one of: ...": the accepted forms, on one line. */
export function acceptedModelForms(): string {
  return `use one of: ${MODEL_REFERENCE_FORMS.map((row) => row.form).join('; ')}`;
}

/** A reference in none of the accepted forms (the message lists them), or naming no zoo model. */
export class ModelReferenceError extends Error {
  constructor(
    readonly ref: string,
    message: string,
  ) {
    super(message);
    this.name = 'ModelReferenceError';
  }
}

/** Which accepted form `ref` has; a ModelReferenceError (listing the forms) when none. */
export function classifyModelReference(ref: string): ModelReference {
  const form = MODEL_REFERENCE_FORMS.find((row) => row.matches(ref));
  switch (form?.kind) {
    case 'zoo': {
      const name = ref.slice('zoo:'.length);
      if (!isZooName(name)) throw new ModelReferenceError(ref, `unknown zoo model in '${ref}' (known: ${zooNames.join(', ')})`);
      return { kind: 'zoo', ref, name };
    }
    case 'directory':
      return { kind: 'directory', ref };
    case 'store-url':
      return { kind: 'store-url', ref };
    case 'store-prefix':
      return { kind: 'store-prefix', ref, prefix: ref.endsWith('/') ? ref : `${ref}/` };
    case 'onnx-file':
      return { kind: 'onnx-file', ref };
    case 'onnx-key':
      return { kind: 'onnx-key', ref, key: ref };
    case undefined: {
      const scheme = URL_SCHEME.exec(ref)?.[0] ?? '';
      const isWebUrl = /^(https?|ftp):$/i.test(scheme);
      const problem = isWebUrl ? 'is a URL: models are not downloaded (download it and give its directory)' : `has the scheme ${scheme}, which is not a model reference`;
      throw new ModelReferenceError(ref, `${JSON.stringify(ref)} ${problem}; ${acceptedModelForms()}`);
    }
  }
}
