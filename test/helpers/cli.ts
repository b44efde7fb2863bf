/**
 * Run the real CLI as a child process: `node --import tsx src/cli/main.ts ...`, from the
 * repository root (so tsx resolves), with a clean environment for CONSENTD_*.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = join(ROOT, 'src/cli/main.ts');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
}

function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('CONSENTD_') || k === 'NODE_OPTIONS') delete env[k];
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Start the CLI; the caller owns the child (kill it, read its streams). */
export function spawnCli(args: readonly string[], opts: CliOptions = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: childEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Run the CLI to completion and collect its output. */
export function runCli(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawnCli(args, opts);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`consentd ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/** A temporary directory with helpers to write files in it; remove() cleans up. */
export interface Workspace {
  dir: string;
  path(name: string): string;
  write(name: string, content: string): string;
  remove(): void;
}

export function workspace(prefix = 'consentd-test-'): Workspace {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    path: (name) => join(dir, name),
    write(name, content) {
      const p = join(dir, name);
      writeFileSync(p, content);
      return p;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A config for CSV connectors in a workspace (paths relative to the config file). */
export function csvConfig(opts: {
  connectors: Array<{ id: string; file: string; grants?: boolean; purposes?: Record<string, string>; limits?: Record<string, number> }>;
  purposes?: string[];
  logLevel?: string;
  store?: string;
}): string {
  const lines = [
    'salt: "test-salt-0123456789abcdef"',
    `store: { path: ${JSON.stringify(opts.store ?? './data/consentd.db')} }`,
    `log: { level: ${opts.logLevel ?? 'warn'} }`,
    'policy: { clockSkew: 1m }',
    'purposes:',
    ...(opts.purposes ?? ['newsletter']).map((p) => `  - id: ${p}`),
    'connectors:',
  ];
  for (const c of opts.connectors) {
    lines.push(`  - id: ${c.id}`, '    kind: csv', `    grants: ${c.grants === true}`);
    if (c.limits) lines.push(`    limits: ${JSON.stringify(c.limits)}`);
    lines.push(`    settings: { path: ${JSON.stringify(c.file)}, purposes: ${JSON.stringify(c.purposes ?? { newsletter: 'newsletter' })} }`);
  }
  return `${lines.join('\n')}\n`;
}
