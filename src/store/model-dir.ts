/**
 * A spec's `model` given as a local directory (`emo-dir submit` and `emo-dir run`): recognising
 * such a reference, resolving it to a path, and uploading the directory into the store.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ObjectStore } from './object-store.ts';
import { writeOnce } from './write-once.ts';

/** A reference the user clearly meant as a local path (a store key never starts so). */
export function isLocalPath(ref: string): boolean {
  return isAbsolute(ref) || ref.startsWith('.') || ref.startsWith('~') || ref.startsWith('file:');
}

/** The directory a local reference names: `file:` URLs, `~`, else relative to `baseDir`. */
export function localPath(ref: string, baseDir: string): string {
  if (ref.startsWith('file:')) return fileURLToPath(ref);
  if (ref === '~' || ref.startsWith('~/')) return join(homedir(), ref.slice(1));
  return resolve(baseDir, ref);
}

/** True when `dir` holds a model.json file. */
export async function isModelDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(join(dir, 'model.json'))).isFile();
  } catch {
    return false;
  }
}

/**
 * Every regular file under `dir` (recursively), written once (writeOnce) under `prefix`, model.json
 * last: a model.json that exists names a complete model (as src/model/io.ts writes them).
 * Returns the keys written or found identical.
 */
export async function uploadDirectory(store: ObjectStore, dir: string, prefix: string): Promise<string[]> {
  const files = await listFiles(dir);
  const keys: string[] = [];
  const modelJson = join(dir, 'model.json');
  files.sort((a, b) => Number(a === modelJson) - Number(b === modelJson));
  for (const file of files) {
    const key = `${prefix}${relative(dir, file).split(sep).join('/')}`;
    await writeOnce(store, key, await readFile(file));
    keys.push(key);
  }
  return keys;
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out.sort();
}
