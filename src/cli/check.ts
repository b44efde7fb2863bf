import type { Command } from 'commander';
import { ConnectorFailedError } from '../errors.js';
import { loadRuntime, out, type GlobalOptions } from './runtime.js';

/** `consentd check`: the config is valid, and every enabled connector can reach its system. */
export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('validate the config and test each connection')
    .action(async (_opts: object, cmd: Command) => {
      const rt = loadRuntime(cmd.optsWithGlobals<GlobalOptions>());
      try {
        out.line(`config ${rt.config.file ?? ''}: valid (${rt.config.connectors.length} connectors, ${rt.config.purposes.length} purposes)`);
        out.line(`store: ${rt.config.store.path}`);
        const failed: string[] = [];
        for (const c of rt.connectors) {
          let ok: boolean;
          let details: string[];
          try {
            const r = await c.check();
            ok = r.ok;
            details = r.details;
          } catch (err) {
            ok = false;
            details = [`check threw: ${(err as Error).message}`];
          }
          out.line(`${ok ? 'ok  ' : 'FAIL'} ${c.id} (${c.kind})`);
          for (const d of details) out.line(`       ${d}`);
          if (!ok) failed.push(c.id);
        }
        for (const c of rt.config.connectors.filter((x) => !x.enabled)) out.line(`off  ${c.id} (${c.kind}): disabled`);
        if (failed.length > 0) throw new ConnectorFailedError(failed.join(', '), 'check failed');
      } finally {
        await rt.close();
      }
    });
}
