/**
 * A spec's `model` given as a local directory (`emo-dir run`, `emo-dir submit`, `emo-dir plan`):
 * resolving it to a path, checking that it is a model, and copying it into the store by content.
 *
 * Symlinks are followed: `model -> /data/models/v3` (a common layout) and a weights file linked
 * from a shared cache are copied as the files they point to, never as links (a link copied into
 * a file store points outside it, and S3 has no links). A directory link that leads back to a
 * directory being copied (a cycle) is refused, naming the link, instead of copying forever.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acceptedModelForms } from '../model/reference.ts';
import type { ObjectStore } from './object-store.ts';
import { writeOnce } from './write-once.ts';

export { isLocalPath } from '../model/reference.ts';

const MODEL_JSON = 'model.json';

/** A local model directory that cannot be used; the message names the path. */
export class ModelDirectoryError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ModelDirectoryError';
  }
}

/** The directory a local reference names: `file:` URLs, `~`, else relative to `baseDir`. */
export function localPath(ref: string, baseDir: string): string {
  if (ref.startsWith('file:')) return fileURLToPath(ref);
  if (ref === '~' || ref.startsWith('~/')) return join(homedir(), ref.slice(1));
  return resolve(baseDir, ref);
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}

/**
 * The model directory `path` names (`path` itself, or the directory of a `.../model.json`), or a
 * ModelDirectoryError saying what `path` is instead, with the accepted model forms.
 */
export async function checkModelDirectory(path: string): Promise<string> {
  const notAModel = (what: string): ModelDirectoryError =>
    new ModelDirectoryError(`${path} is not a directory holding ${MODEL_JSON}: ${what}; ${acceptedModelForms()}`);
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') throw notAModel('it does not exist');
    if (errorCode(error) === 'ELOOP') throw notAModel('it is a symlink cycle');
    throw new ModelDirectoryError(`${path}: cannot access: ${(error as Error).message}`, { cause: error });
  }
  if (info.isFile()) {
    if (basename(path) === MODEL_JSON) return dirname(path);
    throw notAModel('it is a file, not a model');
  }
  if (!info.isDirectory()) throw notAModel('it is neither a file nor a directory');
  if (!(await isModelDirectory(path))) throw notAModel(`the directory has no ${MODEL_JSON}`);
  return path;
}

/** True when `dir` holds a model.json file (through symlinks). */
export async function isModelDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(join(dir, MODEL_JSON))).isFile();
  } catch {
    return false;
  }
}

/** One regular file of a model directory: where its bytes are, and its path inside the model. */
export interface ModelFile {
  readonly path: string;
  /** '/'-separated path relative to the model directory (the key suffix in the store). */
  readonly relative: string;
}

/**
 * Every regular file under `dir`, recursively, with symlinks followed (each link is resolved to
 * what it points to; a link into an ancestor directory is a cycle and throws). Sorted by path.
 */
export async function listModelFiles(dir: string): Promise<ModelFile[]> {
  const files: ModelFile[] = [];
  const walk = async (path: string, relative: string, ancestors: readonly string[]): Promise<void> => {
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const entryPath = join(path, entry.name);
      const entryRelative = relative === '' ? entry.name : `${relative}/${entry.name}`;
      let isDirectory = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        let target;
        try {
          target = await stat(entryPath);
        } catch (error) {
          const why = errorCode(error) === 'ELOOP' ? 'a symlink cycle' : `a broken symlink (${errorCode(error) ?? (error as Error).message})`;
          throw new ModelDirectoryError(`model directory ${dir}: ${entryPath} is ${why}`, { cause: error });
        }
        isDirectory = target.isDirectory();
        isFile = target.isFile();
      }
      if (isDirectory) {
        const real = await realpath(entryPath);
        if (ancestors.includes(real)) {
          throw new ModelDirectoryError(
            `model directory ${dir}: ${entryPath} leads back to ${real}, which contains it (a symlink cycle); remove the link or point the spec at a directory without one`,
          );
        }
        await walk(entryPath, entryRelative, [...ancestors, real]);
      } else if (isFile) {
        files.push({ path: entryPath, relative: entryRelative });
      }
      // Sockets, FIFOs and devices are not model files.
    }
  };
  await walk(dir, '', [await realpath(dir)]);
  return files.sort((a, b) => (a.relative < b.relative ? -1 : a.relative > b.relative ? 1 : 0));
}

/**
 * Every file of the model directory `dir` (listModelFiles: symlinks followed, cycles refused),
 * written once (writeOnce) under `prefix`, model.json last: a model.json that exists names a
 * complete model (as src/model/io.ts writes them). Returns the keys written or found identical.
 */
export async function uploadDirectory(store: ObjectStore, dir: string, prefix: string): Promise<string[]> {
  const files = await listModelFiles(dir);
  files.sort((a, b) => Number(a.relative === MODEL_JSON) - Number(b.relative === MODEL_JSON));
  const keys: string[] = [];
  for (const file of files) {
    const key = `${prefix}${file.relative}`;
    await writeOnce(store, key, await readFile(file.path));
    keys.push(key);
  }
  return keys;
}
