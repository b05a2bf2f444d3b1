/**
 * The worker container's entry point (containers/Dockerfile), and the process the embedded
 * runner starts for every Batch job: `search` runs one sub-network's search, `finalize` one
 * target's verify/fine-tune/export (DESIGN §3 steps 2 and 4). Thin: it parses the command,
 * opens the store named by EMO_DIR_STORE, starts the engine and calls one library function.
 *
 * Exit codes (the Batch job definitions' retry strategy depends on them, cdk/constructs/batch.ts):
 *   0 done, 2 usage error, 75 transient failure (Batch retries), 78 no GPU where one is
 *   required (not retried: another attempt on the same image and driver fails the same way),
 *   other: failed.
 * Progress goes to stdout as JSON lines (the search task writes them); logs go to stderr.
 *
 * GPU CHECK. Before any work, the worker logs the engine's device, and exits with 78 and a
 * one-line reason when a GPU is required and TensorFlow sees none (a libtensorflow that cannot
 * load CUDA falls back to the CPU silently, and a GPU job would bill GPU hours at CPU speed).
 * Required: EMO_DIR_REQUIRE_GPU=1 (the GPU image sets it; 0 turns the check off), else a Batch job
 * the ECS agent gave GPUs (AWS_BATCH_JOB_ID set and NVIDIA_VISIBLE_DEVICES naming devices).
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { NAME_PATTERN } from '../src/store/keys.ts';

const name = z.string().regex(NAME_PATTERN, 'expected 1-128 characters of A-Z a-z 0-9 . _ -').refine(
  (value) => !value.includes('..'),
  "must not contain '..'",
);

const Command = z.discriminatedUnion('stage', [
  z.object({ stage: z.literal('search'), runId: name, subnet: name }),
  z.object({ stage: z.literal('finalize'), runId: name, target: name }),
]);
export type WorkerCommand = z.infer<typeof Command>;

/** The worker found no GPU where one is required (EX_CONFIG; the retry strategy retries only 75). */
export const WORKER_NO_GPU_EXIT_CODE = 78;

/**
 * Whether this worker must run on a GPU. EMO_DIR_REQUIRE_GPU decides when set (1/true or
 * 0/false); otherwise a Batch job with GPUs assigned requires one: the ECS agent sets
 * NVIDIA_VISIBLE_DEVICES to the ids of the GPUs it gave the container (an image default such
 * as `all` is not an assignment).
 */
export function gpuRequired(env: Readonly<Record<string, string | undefined>>): boolean {
  const flag = env.EMO_DIR_REQUIRE_GPU?.trim().toLowerCase();
  if (flag === '1' || flag === 'true') return true;
  if (flag === '0' || flag === 'false') return false;
  if (flag !== undefined && flag !== '') throw new UsageError(`EMO_DIR_REQUIRE_GPU: expected 1 or 0, got '${env.EMO_DIR_REQUIRE_GPU}'`);
  const devices = env.NVIDIA_VISIBLE_DEVICES?.trim().toLowerCase();
  return Boolean(env.AWS_BATCH_JOB_ID) && devices !== undefined && devices !== '' && !['all', 'none', 'void'].includes(devices);
}

const USAGE = `usage: worker search --run-id <runId> --subnet <id>
       worker finalize --run-id <runId> --target <name>
(the store comes from EMO_DIR_STORE, e.g. s3://bucket or a directory)`;

/** Parses argv (without node and script); throws with a message that says what was wrong. */
export function parseWorkerArgs(argv: readonly string[]): WorkerCommand {
  const { positionals, values } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      'run-id': { type: 'string' },
      subnet: { type: 'string' },
      target: { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new Error(`expected one stage (search|finalize), got ${positionals.length}`);
  const parsed = Command.safeParse({
    stage: positionals[0],
    runId: values['run-id'],
    subnet: values.subnet,
    target: values.target,
  });
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((issue) => `${issue.path.join('.') || 'stage'}: ${issue.message}`).join('; '));
  }
  if (parsed.data.stage === 'search' && values.target !== undefined) throw new Error('search takes --subnet, not --target');
  if (parsed.data.stage === 'finalize' && values.subnet !== undefined) throw new Error('finalize takes --target, not --subnet');
  return parsed.data;
}

/** Store and throttling errors a new attempt may not see again; everything else is the run's fault. */
function isTransient(error: unknown): boolean {
  const name = (error as { name?: unknown } | undefined)?.name;
  const transient = new Set(['TimeoutError', 'ThrottlingException', 'SlowDown', 'ServiceUnavailable', 'InternalError', 'RequestTimeout']);
  if (typeof name === 'string' && transient.has(name)) return true;
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === 'EAI_AGAIN';
}

async function execute(command: WorkerCommand): Promise<void> {
  const attempt = process.env.AWS_BATCH_JOB_ATTEMPT ?? '1';
  const location = process.env.EMO_DIR_STORE;
  if (!location) throw new UsageError('EMO_DIR_STORE is not set (a directory, file:///dir or s3://bucket/prefix)');
  const log = (message: string, details?: Record<string, unknown>): void => {
    const suffix = details && Object.keys(details).length > 0 ? ` ${JSON.stringify(details)}` : '';
    process.stderr.write(`worker ${command.stage} ${command.runId}: ${message}${suffix}\n`);
  };
  log(`attempt ${attempt}`, { store: location, job: process.env.AWS_BATCH_JOB_ID });
  const [{ openStore }, engine] = await Promise.all([import('../src/store/index.ts'), import('../src/engine/backend.ts')]);
  const { initEngine } = engine;
  const needsGpu = gpuRequired(process.env);
  const store = openStore(location);
  await initEngine({ log: (message) => log(message) });
  const device = engine.deviceReport();
  log(`device: ${device.description}${needsGpu ? ' (GPU required)' : ''}`);
  if (needsGpu) engine.requireGpu(device);
  if (command.stage === 'search') {
    const { runSearchStep } = await import('../src/dir/search-step.ts');
    const result = await runSearchStep(store, command.runId, command.subnet, { log });
    log(`front written (${result.frontWrite})`, {
      key: result.frontKey,
      points: result.front.points.length,
      stopReason: result.stopReason,
      evaluationsPerMinute: Number.isFinite(result.evaluationsPerMinute) ? Math.round(result.evaluationsPerMinute * 10) / 10 : null,
    });
  } else {
    const { runFinalizeStep } = await import('../src/dir/finalize.ts');
    const result = await runFinalizeStep(store, command.runId, command.target, { log });
    log(`metrics ${result.outcome}`, { key: result.metricsKey, accuracy: result.metrics.accuracy });
  }
}

class UsageError extends Error {}

async function main(argv: readonly string[]): Promise<number> {
  if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return argv.length === 0 ? 2 : 0;
  }
  let command: WorkerCommand;
  try {
    command = parseWorkerArgs(argv);
  } catch (error) {
    console.error(`worker: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  try {
    await execute(command);
    return 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof Error && error.name === 'NoGpuError') {
      console.error(`worker: ${command.stage} refused: ${message} (exit ${WORKER_NO_GPU_EXIT_CODE}, not retried)`);
      return WORKER_NO_GPU_EXIT_CODE;
    }
    console.error(`worker: ${command.stage} failed: ${message}`);
    if (process.env.EMO_DIR_DEBUG && error instanceof Error) console.error(error.stack);
    if (error instanceof UsageError) return 2;
    return isTransient(error) ? 75 : 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
