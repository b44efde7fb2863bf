import { randomBytes } from 'node:crypto';
import { isRecord, type ApiRequest, type ApiResponse, type McContext } from './context.js';
import { invalidResource, McHttpError, notFound, problem } from './errors.js';
import { mcTime } from './state.js';

export interface BatchOperationResult {
  status_code: number;
  operation_id: string | null;
  /** The operation's answer body, as a JSON string (as Mailchimp's result files hold it). */
  response: string;
}

interface Batch {
  id: string;
  status: 'pending' | 'started' | 'finished';
  total: number;
  finished: number;
  errored: number;
  submittedAt: number;
  completedAt: number | null;
  results: BatchOperationResult[];
}

export type Dispatch = (req: ApiRequest) => ApiResponse;

/**
 * POST /batches: operations run asynchronously a few ms later, one after the other, through the
 * same handlers as direct calls (webhook source "api"). Simplification: real Mailchimp serves
 * the results as a tar.gz of JSON files at an S3 URL; the sandbox serves one JSON array of
 * `{status_code, operation_id, response}` at /__sandbox/batch-results/{id}.json.
 */
export class BatchRunner {
  readonly batches = new Map<string, Batch>();
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly ctx: McContext,
    private readonly dispatch: Dispatch,
    private readonly startDelayMs = 5,
  ) {}

  submit(body: unknown): ApiResponse {
    if (!isRecord(body) || !Array.isArray(body['operations'])) {
      throw invalidResource([{ field: 'operations', message: 'This value should not be blank.' }]);
    }
    const ops = body['operations'] as unknown[];
    const batch: Batch = {
      id: randomBytes(5).toString('hex'),
      status: 'pending',
      total: ops.length,
      finished: 0,
      errored: 0,
      submittedAt: this.ctx.now(),
      completedAt: null,
      results: [],
    };
    this.batches.set(batch.id, batch);
    const p = new Promise<void>((resolve) => setTimeout(resolve, this.startDelayMs))
      .then(() => this.run(batch, ops))
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
    return { status: 200, body: this.view(batch) };
  }

  /** Resolves when every submitted batch has finished. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private async run(batch: Batch, ops: unknown[]): Promise<void> {
    batch.status = 'started';
    for (const op of ops) {
      const result = this.runOne(op);
      batch.results.push(result);
      batch.finished++;
      if (result.status_code >= 400) batch.errored++;
      // Let HTTP traffic in between operations, as a real queue would.
      if (batch.finished % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    batch.status = 'finished';
    batch.completedAt = this.ctx.now();
  }

  private runOne(op: unknown): BatchOperationResult {
    const operationId = isRecord(op) && typeof op['operation_id'] === 'string' ? op['operation_id'] : null;
    try {
      if (!isRecord(op) || typeof op['method'] !== 'string' || typeof op['path'] !== 'string') {
        throw invalidResource([{ field: 'operations', message: 'Each operation needs a method and a path.' }]);
      }
      const url = new URL(op['path'].replace(/^\/3\.0(?=\/)/, ''), 'http://batch.invalid');
      const query = new URLSearchParams(url.search);
      if (isRecord(op['params'])) for (const [k, v] of Object.entries(op['params'])) query.set(k, String(v));
      let reqBody: unknown;
      if (typeof op['body'] === 'string' && op['body'] !== '') {
        try {
          reqBody = JSON.parse(op['body']) as unknown;
        } catch {
          throw new McHttpError(problem(400, 'JSON Parse Error', "We encountered an unspecified JSON parsing error."));
        }
      }
      const res = this.dispatch({ method: op['method'].toUpperCase(), path: decodeURIComponent(url.pathname), query, body: reqBody });
      return { status_code: res.status, operation_id: operationId, response: res.body === undefined ? '' : JSON.stringify(res.body) };
    } catch (err) {
      const p = err instanceof McHttpError ? err.problem : problem(500, 'Internal Server Error', err instanceof Error ? err.message : String(err));
      return { status_code: p.status, operation_id: operationId, response: JSON.stringify(p) };
    }
  }

  view(b: Batch): Record<string, unknown> {
    return {
      id: b.id,
      status: b.status,
      total_operations: b.total,
      finished_operations: b.finished,
      errored_operations: b.errored,
      submitted_at: mcTime(b.submittedAt),
      completed_at: b.completedAt === null ? '' : mcTime(b.completedAt),
      response_body_url: b.status === 'finished' ? `${this.ctx.rootUrl()}/__sandbox/batch-results/${b.id}.json` : '',
      _links: [],
    };
  }

  get(id: string): ApiResponse {
    const b = this.batches.get(id);
    if (!b) throw notFound();
    return { status: 200, body: this.view(b) };
  }

  list(): ApiResponse {
    const batches = [...this.batches.values()].map((b) => this.view(b));
    return { status: 200, body: { batches, total_items: batches.length, _links: [] } };
  }

  remove(id: string): ApiResponse {
    if (!this.batches.delete(id)) throw notFound();
    return { status: 204 };
  }

  results(id: string): BatchOperationResult[] | undefined {
    const b = this.batches.get(id);
    return b && b.status === 'finished' ? b.results : undefined;
  }

  clear(): void {
    this.batches.clear();
  }
}
