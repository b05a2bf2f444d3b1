/** File helpers shared by the data loaders: atomic writes and readable errors. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Writes `parts` to `path` atomically: into a sibling temporary file first, fsync'd, then renamed
 * over the target, so a concurrent reader (another helper process loading the same cache) sees
 * the old file or the complete new one, never a prefix. The tmp file is removed on failure.
 */
export async function writeFileAtomic(path: string, parts: readonly Uint8Array[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const handle = await open(tmp, 'w');
    try {
      for (const part of parts) {
        let written = 0;
        while (written < part.length) {
          const { bytesWritten } = await handle.write(part, written, part.length - written);
          written += bytesWritten;
        }
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
}

/** sha256 hex over the concatenation of `parts`. */
export function sha256Hex(...parts: readonly Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

/** Size in bytes, or undefined when the file does not exist. */
export async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Little-endian hosts only: the binary formats store int32/uint16 LE and view them directly. */
export function assertLittleEndian(): void {
  const probe = new Uint8Array(new Uint16Array([1]).buffer);
  if (probe[0] !== 1) throw new Error('emo-dir data files are little-endian; this host is big-endian');
}
