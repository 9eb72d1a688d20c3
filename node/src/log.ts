// The package's log lines, with the CLI's and Python's words; and a failing
// condition, logged once when it starts and once when it ends.

import { debuglog } from "node:util";
import { errorText } from "./errors.js";

export interface Logger {
  debug(line: string): void;
  info(line: string): void;
  warn(line: string): void;
  error(line: string): void;
}

const debug = debuglog("hblock");

/** The default: WARNING and ERROR lines on stderr (`hblock: ...`); INFO and
 * DEBUG lines only with NODE_DEBUG=hblock. */
export const stderrLogger: Logger = {
  debug: (line) => debug("%s", line),
  info: (line) => debug("%s", line),
  warn: (line) => console.error(`hblock: ${line}`),
  error: (line) => console.error(`hblock: ${line}`),
};

let current: Logger = stderrLogger;

/** Sends the package's log lines to `logger` (null: back to the default). */
export function setLogger(logger: Logger | null): void {
  current = logger ?? stderrLogger;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;

/** `text` with control characters escaped (`\n`, `\x1b`, `\u2028`), so an
 * owner, key or error cannot split a log line or drive a terminal. */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) => {
    const named: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };
    if (named[c]) return named[c];
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
}

export const log = {
  debug: (line: string) => current.debug(printable(line)),
  info: (line: string) => current.info(printable(line)),
  warn: (line: string) => current.warn(printable(line)),
  error: (line: string) => current.error(printable(line)),
};

/** Failures of one kind of call (waiting, beating, watching) of one key: the
 * first logs `KEY: URL failing: ERROR; retrying`, the others only at DEBUG;
 * the first success after them logs `KEY: URL recovered after S s`. */
export class Outage {
  since: number | null = null;
  last: string | null = null;
  constructor(readonly key: string, readonly url: string) {}

  get failing(): boolean {
    return this.since !== null;
  }

  failed(err: unknown): void {
    this.last = errorText(err);
    if (this.since === null) {
      this.since = performance.now();
      log.warn(`${this.key}: ${this.url} failing: ${this.last}; retrying`);
    } else {
      log.debug(`${this.key}: ${this.url} still failing: ${this.last}; retrying`);
    }
  }

  ok(): void {
    if (this.since !== null) {
      const took = (performance.now() - this.since) / 1000;
      log.warn(`${this.key}: ${this.url} recovered after ${took.toFixed(1)} s`);
      this.since = null;
    }
  }

  /** Forget the condition without a "recovered" line. */
  end(): void {
    this.since = null;
  }
}

/** 10 ms, doubling, at most half the interval. */
export class Backoff {
  private readonly max: number;
  private nextMs: number;
  constructor(intervalMs: number) {
    this.max = Math.max(intervalMs / 2, 1);
    this.nextMs = Math.min(10, this.max);
  }
  next(): number {
    const d = this.nextMs;
    this.nextMs = Math.min(this.nextMs * 2, this.max);
    return d;
  }
  reset(): void {
    this.nextMs = Math.min(10, this.max);
  }
}
