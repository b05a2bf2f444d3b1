/**
 * The directory-backed ObjectStore: the embedded mode's stand-in for S3 (DESIGN §4).
 *
 * Semantics match the S3 store (both pass test/store/store-suite.ts):
 * - puts are atomic: the body goes to a temporary file in the target's own directory, is
 *   fsynced, then renamed (overwrite) or hard-linked (create-only) into place, so a reader sees
 *   the old object or the whole new one, never a prefix of it;
 * - create-only puts use link(2), which fails with EEXIST atomically, so of two racing writers
 *   exactly one wins and the other gets AlreadyExistsError (open 'wx' would also be exclusive,
 *   but would expose a half-written file to readers);
 * - only regular files are objects: directories and symlinks are never listed or read, and every
 *   key is checked lexically and then against the real path of its directory so that neither
 *   `..` nor a symlinked directory can reach outside the root.
 *
 * One difference from S3 is inherent to a file system: `a` and `a/b` cannot both exist (one would
 * be a file and a directory at once). The store's key layout (src/store/keys.ts) never needs
 * both; a put that would need it fails with a message naming the conflicting key.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, readdir, realpath, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  AlreadyExistsError,
  InvalidKeyError,
  NotFoundError,
  assertValidKey,
  assertValidRange,
  compareKeys,
  type ObjectStore,
  type PutOptions,
} from './object-store.ts';

/**
 * In-flight temporary files are named `.<basename>.emo-tmp-<16 hex>`; list() hides them and
 * keys whose last segment looks like one are refused, so a key can never collide with one.
 */
const TMP_MARKER = '.emo-tmp-';
const TMP_NAME = /^\..*\.emo-tmp-[0-9a-f]{16}$/;

/** How often a put retries when a concurrent delete() removed its freshly created directory. */
const PUT_ATTEMPTS = 5;

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

export class FileStore implements ObjectStore {
  readonly root: string;
  readonly location: string;
  #realRoot: string | undefined;

  constructor(root: string) {
    this.root = resolve(root);
    this.location = pathToFileURL(this.root).href;
  }

  async get(key: string): Promise<Uint8Array> {
    const path = await this.#pathFor(key);
    try {
      const bytes = await readFile(path);
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (error) {
      // EISDIR: `key` names a "directory" (a prefix of other keys), which is no object in S3 terms.
      if (['ENOENT', 'ENOTDIR', 'EISDIR'].includes(errorCode(error) ?? '')) {
        throw new NotFoundError(key, this.location);
      }
      throw error;
    }
  }

  async getRange(key: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    assertValidRange(key, offset, length, into);
    const path = await this.#pathFor(key);
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if (['ENOENT', 'ENOTDIR', 'EISDIR'].includes(errorCode(error) ?? '')) throw new NotFoundError(key, this.location);
      throw error;
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new NotFoundError(key, this.location);
      // Not zero-filled (allocUnsafeSlow): the read below overwrites it, or the unread tail is cut off.
      const size = Math.max(0, Math.min(length, info.size - offset));
      const out = into ? into.subarray(0, size) : new Uint8Array(Buffer.allocUnsafeSlow(size).buffer, 0, size);
      let done = 0;
      while (done < out.length) {
        const { bytesRead } = await handle.read(out, done, out.length - done, offset + done);
        if (bytesRead === 0) return out.subarray(0, done); // Truncated since the stat: report what is there.
        done += bytesRead;
      }
      return out;
    } finally {
      await handle.close();
    }
  }

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<void> {
    const path = await this.#pathFor(key);
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#putOnce(key, path, bytes, options.ifNoneMatch === true);
        return;
      } catch (error) {
        // ENOENT here means a concurrent delete() pruned the directory we had just created.
        if (errorCode(error) === 'ENOENT' && attempt < PUT_ATTEMPTS) continue;
        throw error;
      }
    }
  }

  async exists(key: string): Promise<boolean> {
    const path = await this.#pathFor(key);
    try {
      return (await stat(path)).isFile();
    } catch (error) {
      if (['ENOENT', 'ENOTDIR'].includes(errorCode(error) ?? '')) return false;
      throw error;
    }
  }

  async list(prefix: string): Promise<string[]> {
    assertValidKey(prefix, true);
    // Walk only the deepest directory the prefix fully names; `runs/r1/subnets/1` must match both
    // `subnets/1/...` and `subnets/10/...`, so the last partial segment is a filter, not a path.
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash < 0 ? '' : prefix.slice(0, slash);
    const start = dirKey === '' ? this.root : await this.#pathFor(dirKey);
    const keys: string[] = [];
    await this.#walk(start, dirKey, prefix, keys);
    return keys.sort(compareKeys);
  }

  async delete(key: string): Promise<void> {
    const path = await this.#pathFor(key);
    try {
      await unlink(path);
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      // unlink() of a directory (EISDIR on Linux, EPERM on macOS): a prefix of other keys, no object.
      if ((code === 'EISDIR' || code === 'EPERM') && (await isDirectory(path))) return;
      throw error;
    }
    await this.#pruneEmptyDirs(dirname(path));
  }

  /** The absolute path for `key`, after checking that it stays under the root. */
  async #pathFor(key: string): Promise<string> {
    assertValidKey(key);
    const last = key.slice(key.lastIndexOf('/') + 1);
    if (TMP_NAME.test(last)) {
      throw new InvalidKeyError(key, 'its name is reserved for the file store\'s temporary files');
    }
    const path = resolve(this.root, ...key.split('/'));
    if (!path.startsWith(this.root + sep)) {
      throw new InvalidKeyError(key, `resolves outside the store root ${this.root}`);
    }
    await this.#assertRealDirInside(key, dirname(path));
    return path;
  }

  /**
   * The lexical check cannot see symlinks: `runs` -> `/etc` would pass it. So the deepest existing
   * ancestor directory of the target is resolved with realpath() and must lie under the real root.
   */
  async #assertRealDirInside(key: string, dir: string): Promise<void> {
    const realRoot = await this.#resolveRealRoot();
    if (realRoot === undefined) return; // No root yet: nothing to escape through.
    let existing = dir;
    for (;;) {
      let real: string;
      try {
        real = await realpath(existing);
      } catch (error) {
        const code = errorCode(error);
        if (code === 'ENOENT' && existing.startsWith(this.root + sep)) {
          existing = dirname(existing);
          continue;
        }
        if (code === 'ENOENT' || code === 'ENOTDIR') return; // Nothing there to escape through.
        throw error;
      }
      if (real !== realRoot && !real.startsWith(realRoot + sep)) {
        throw new InvalidKeyError(key, `its directory ${existing} resolves outside the store root (to ${real})`);
      }
      return;
    }
  }

  async #resolveRealRoot(): Promise<string | undefined> {
    if (this.#realRoot !== undefined) return this.#realRoot;
    try {
      this.#realRoot = await realpath(this.root);
      return this.#realRoot;
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined;
      throw error;
    }
  }

  async #putOnce(key: string, path: string, bytes: Uint8Array, createOnly: boolean): Promise<void> {
    const dir = dirname(path);
    try {
      await mkdir(dir, { recursive: true });
    } catch (error) {
      if (['EEXIST', 'ENOTDIR'].includes(errorCode(error) ?? '')) {
        throw new Error(
          `cannot put ${key} (in ${this.location}): a parent of it is already stored as an object`,
          { cause: error },
        );
      }
      throw error;
    }
    // The root may have been created just now; check the real path again before writing.
    await this.#assertRealDirInside(key, dir);

    const base = path.slice(dir.length + 1);
    const tmp = join(dir, `.${base}${TMP_MARKER}${randomBytes(8).toString('hex')}`);
    const handle = await open(tmp, 'wx', 0o644);
    try {
      try {
        await handle.writeFile(bytes);
        // Without fsync a crash after rename could leave an empty or partial file under the key.
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (createOnly) {
        try {
          await link(tmp, path);
        } catch (error) {
          if (errorCode(error) !== 'EEXIST') throw error;
          // link() onto a directory fails with EEXIST too; that is a layout conflict, not a lost race.
          if (await isDirectory(path)) throw directoryConflict(key, this.location, error);
          throw new AlreadyExistsError(key, this.location);
        }
      } else {
        try {
          await rename(tmp, path);
        } catch (error) {
          if (['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes(errorCode(error) ?? '')) {
            throw directoryConflict(key, this.location, error);
          }
          throw error;
        }
      }
    } finally {
      // After a rename this is a no-op (ENOENT); after link or a failure it removes the temp file.
      await unlink(tmp).catch(() => undefined);
    }
    await syncDir(dir);
  }

  async #walk(dir: string, dirKey: string, prefix: string, out: string[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      // A prefix that names no directory (or a file) simply has no keys under it.
      if (['ENOENT', 'ENOTDIR'].includes(errorCode(error) ?? '')) return;
      throw error;
    }
    for (const entry of entries) {
      const key = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
      if (entry.isDirectory()) {
        // Descend only where a key could still start with the prefix.
        const asPrefix = `${key}/`;
        if (asPrefix.startsWith(prefix) || prefix.startsWith(asPrefix)) {
          await this.#walk(join(dir, entry.name), key, prefix, out);
        }
      } else if (entry.isFile() && !TMP_NAME.test(entry.name) && key.startsWith(prefix)) {
        out.push(key);
      }
      // Symlinks and other special files are never objects (and could point outside the root).
    }
  }

  /** S3 has no directories: once a directory's last key is gone, the directory goes too. */
  async #pruneEmptyDirs(dir: string): Promise<void> {
    let current = dir;
    while (current.startsWith(this.root + sep)) {
      try {
        await rmdir(current);
      } catch {
        return; // ENOTEMPTY (other keys, or a racing put) or already gone: stop here.
      }
      current = dirname(current);
    }
  }
}

/** Makes a rename durable. Directories cannot be fsynced on every platform (e.g. Windows): best effort. */
async function syncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Durability of the directory entry is best effort; the data itself was fsynced.
  } finally {
    await handle?.close();
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

function directoryConflict(key: string, location: string, cause: unknown): Error {
  return new Error(`cannot put ${key} (in ${location}): other keys are stored under ${key}/`, { cause });
}
