/**
 * Polyfills the embedded runner needs on Node 20.
 *
 * aws-local-stepfunctions 3 declares Node >= 22 and calls `Promise.withResolvers` (ES2024) in
 * every Task state to race the task against its timeout. Node 20 (this project's floor, DESIGN §3)
 * lacks it, so the first Task of an execution would fail with "Promise.withResolvers is not a
 * function". `installPolyfills()` must run before the library executes; the embedded runner
 * calls it and then imports the library dynamically (embedded-runner.ts), so no import order
 * can defeat it.
 */

export interface PromiseWithResolvers<T> {
  readonly promise: Promise<T>;
  readonly resolve: (value: T | PromiseLike<T>) => void;
  readonly reject: (reason?: unknown) => void;
}

/** The spec's `Promise.withResolvers`, as a plain function (also usable where the native one exists). */
export function withResolvers<T>(): PromiseWithResolvers<T> {
  let resolve!: (value: T | PromiseLike<T>) => void;
  let reject!: (reason?: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Installs every missing polyfill; returns the names it installed (empty on Node >= 22).
 * A native implementation is never replaced.
 */
export function installPolyfills(): string[] {
  const installed: string[] = [];
  const promiseConstructor = Promise as unknown as { withResolvers?: unknown };
  if (typeof promiseConstructor.withResolvers !== 'function') {
    Object.defineProperty(Promise, 'withResolvers', {
      configurable: true,
      writable: true,
      // Not enumerable, like the native static methods.
      enumerable: false,
      // `this` is the constructor it is called on (the spec's behaviour for subclasses).
      value: function withResolversPolyfill<T>(this: PromiseConstructor): PromiseWithResolvers<T> {
        const Constructor = typeof this === 'function' ? this : Promise;
        let resolve!: (value: T | PromiseLike<T>) => void;
        let reject!: (reason?: unknown) => void;
        const promise = new Constructor<T>((res, rej) => {
          resolve = res;
          reject = rej;
        });
        return { promise, resolve, reject };
      },
    });
    installed.push('Promise.withResolvers');
  }
  return installed;
}
