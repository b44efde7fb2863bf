import { parentPort, Worker } from 'node:worker_threads';

/*
 * The engine's worker threads (reconcile-worker.ts, pull-worker.ts) serve pages on request: the
 * main thread asks for the next page, the worker answers each request in order with one page (or
 * the end, or an error). A few requests are kept in flight so the worker works ahead while the
 * main thread commits; memory holds at most that many pages.
 */

/** Main thread -> worker. (No 'close': the main thread terminates the worker, which frees its
 * open files and databases with its thread.) */
export type PageRequest<R> = { type: 'next'; req: R };
/** Worker -> main thread, one per 'next', in order. `page` null: there are no more. */
export type PageReply<P> = { type: 'page'; page: P | null } | { type: 'error'; message: string; code?: string };

/**
 * Start the worker module `name` of this folder: the .js file once built; from source (tsx,
 * vitest) the .ts module behind tsx's loader, registered inside the worker (on Node 20 a worker
 * does not inherit the loader hooks of the thread that starts it). The heap cap keeps a worker's
 * garbage (it holds a page or two at a time) from growing the process's RSS.
 */
export function startWorker(name: string, data: unknown, heapMb: number): Worker {
  const options = { workerData: data, resourceLimits: { maxOldGenerationSizeMb: heapMb } };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, import.meta.url), options);
  const entry = JSON.stringify(new URL(`./${name}.ts`, import.meta.url).href);
  const loader = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  return new Worker(`import(${loader}).then((tsx) => { tsx.register(); return import(${entry}); });`, { ...options, eval: true });
}

/** An Error from a worker's error reply, with the code it carried (e.g. STORE_INVALID_OBSERVATION). */
export class WorkerFailedError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** The main thread's side: pages in order, `ahead` requests kept in flight. */
export interface PagedWorker<P> {
  /** The next page, or null when the worker has no more. Rejects with the worker's failure. */
  next(): Promise<P | null>;
  close(): Promise<void>;
}

/**
 * Drive `worker` (started with startWorker): `makeRequest` is called for each request, when it is
 * sent (so it may carry the state of that moment, e.g. the clock or the policy options).
 */
export function pagedWorker<R, P>(worker: Worker, what: string, makeRequest: () => R, ahead: number): PagedWorker<P> {
  const pending: Array<{ resolve(page: P | null): void; reject(err: Error): void }> = [];
  let failure: Error | null = null;
  const fail = (err: Error): void => {
    failure ??= err;
    for (const p of pending.splice(0)) p.reject(failure);
  };
  worker.on('message', (reply: PageReply<P>) => {
    const p = pending.shift();
    if (reply.type === 'page') {
      p?.resolve(reply.page);
      return;
    }
    const err = new WorkerFailedError(`${what}: ${reply.message}`, reply.code);
    p?.reject(err);
    fail(err);
  });
  worker.on('error', (err) => fail(err));
  worker.on('exit', (code) => fail(new Error(`${what} exited (code ${code})`)));

  const requested: Array<Promise<P | null>> = [];
  let ended = false;
  const request = (): void => {
    const reply = new Promise<P | null>((resolve, reject) => {
      if (failure) reject(failure);
      else pending.push({ resolve, reject });
    });
    // Awaited in order by next(); until then a rejection must not count as unhandled.
    reply.catch(() => undefined);
    requested.push(reply);
    if (!failure) worker.postMessage({ type: 'next', req: makeRequest() } satisfies PageRequest<R>);
  };
  const topUp = (): void => {
    while (!ended && requested.length < ahead) request();
  };
  topUp();
  return {
    async next() {
      const reply = requested.shift();
      if (reply === undefined) return null;
      const page = await reply;
      if (page === null) ended = true;
      topUp();
      return page;
    },
    async close() {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}

/**
 * The worker's side: answer each request with `serve` (null: no more pages), one at a time and in
 * order. After an error or the end, every later request gets the end.
 */
export function servePages<R, P>(serve: (req: R) => Promise<P | null>): void {
  const port = parentPort;
  if (port === null) throw new Error('a page worker runs as a worker thread only');
  let done = false;
  let chain: Promise<void> = Promise.resolve();
  port.on('message', (msg: PageRequest<R>) => {
    chain = chain
      .then(async () => {
        const page = done ? null : await serve(msg.req);
        if (page === null) done = true;
        port.postMessage({ type: 'page', page } satisfies PageReply<P>);
      })
      .catch((err: unknown) => {
        done = true;
        const code = (err as { code?: unknown } | null)?.code;
        const reply: PageReply<P> = { type: 'error', message: err instanceof Error ? err.message : String(err) };
        if (typeof code === 'string') reply.code = code;
        port.postMessage(reply);
      });
  });
}
