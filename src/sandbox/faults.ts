import type { IncomingMessage, ServerResponse } from 'node:http';
import { seededRandom, type Random } from './random.js';

/** Fault injection settings, changeable at run time through each sandbox's control API. */
export interface FaultSettings {
  /** Added to every API answer. */
  latencyMs: number;
  /** Fraction of API calls answered with a 5xx (the platform's error body). */
  errorRate: number;
  /** Fraction of API calls answered 429 as the platform does, beyond real rate limiting. */
  rateLimitRate: number;
  /** Fraction of calls that never answer (the client times out). */
  timeoutRate: number;
  /** Fraction of calls whose connection is reset. */
  resetRate: number;
  /** Fraction of batch items that fail inside an otherwise successful batch (partial failure). */
  partialFailureRate: number;
}

export const NO_FAULTS: FaultSettings = { latencyMs: 0, errorRate: 0, rateLimitRate: 0, timeoutRate: 0, resetRate: 0, partialFailureRate: 0 };

export type FaultOutcome = 'none' | 'error' | 'rate_limit' | 'timeout' | 'reset';

export class Faults {
  settings: FaultSettings = { ...NO_FAULTS };
  private readonly random: Random;

  constructor(seed = 1) {
    this.random = seededRandom(seed);
  }

  set(patch: Partial<FaultSettings>): void {
    this.settings = { ...this.settings, ...patch };
  }

  /** Draw the fate of one API call. Latency is applied by the caller via delay(). */
  draw(): FaultOutcome {
    const r = this.random();
    const s = this.settings;
    let edge = s.resetRate;
    if (r < edge) return 'reset';
    edge += s.timeoutRate;
    if (r < edge) return 'timeout';
    edge += s.errorRate;
    if (r < edge) return 'error';
    edge += s.rateLimitRate;
    if (r < edge) return 'rate_limit';
    return 'none';
  }

  /** Should this batch item fail (207 partial failure)? */
  itemFails(): boolean {
    return this.settings.partialFailureRate > 0 && this.random() < this.settings.partialFailureRate;
  }

  async delay(): Promise<void> {
    if (this.settings.latencyMs > 0) await new Promise((r) => setTimeout(r, this.settings.latencyMs));
  }

  /**
   * Applies 'reset' and 'timeout' outcomes (which look the same on every platform).
   * Returns true when the request has been dealt with.
   */
  applyTransport(outcome: FaultOutcome, req: IncomingMessage, res: ServerResponse): boolean {
    if (outcome === 'reset') {
      req.socket.destroy();
      return true;
    }
    if (outcome === 'timeout') {
      // Hold the request open; the client's timeout fires. Closed when the server closes.
      res.on('close', () => undefined);
      return true;
    }
    return false;
  }
}
