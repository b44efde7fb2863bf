import type { Command } from 'commander';
import { startSandboxes, type SandboxSet } from '../demo/sandboxes.js';
import { UsageError } from '../errors.js';
import { intArg } from './args.js';
import { out, untilInterrupted } from './runtime.js';

/*
 * `consentd sandbox`: the four platform sandboxes (Salesforce, HubSpot, Mailchimp, SendGrid) on
 * 127.0.0.1, seeded with the same disagreeing people, until Ctrl-C. Prints their URLs and
 * credentials and a ready-to-paste `connectors:` block for a consentd config pointing at them,
 * to rehearse a configuration before touching production. Webhooks go to --webhooks (a
 * consentd daemon's base URL) at /webhooks/<connector id>.
 */

interface SandboxCliOptions {
  people: string;
  seed: string;
  portBase: string;
  webhooks?: string;
}

export function printSandboxes(set: SandboxSet, webhooks: string | null): void {
  const sf = set.salesforce.credentials;
  out.line('sandboxes (control API of each under <url>/__sandbox/, e.g. POST /__sandbox/actions/unsubscribe {"email": ...}):');
  out.line(`  salesforce  ${set.roots.salesforce}   username ${sf.username}  password ${sf.password}  org ${set.salesforce.orgId}`);
  out.line(`  hubspot     ${set.roots.hubspot}   access token ${set.hubspot.credentials.accessToken}  app secret ${set.hubspot.credentials.appSecret}`);
  out.line(`  mailchimp   ${set.mailchimp.url}   api key ${set.mailchimp.credentials.apiKey}`);
  out.line(`  sendgrid    ${set.sendgrid.url}   api key ${set.sendgrid.credentials.apiKey}`);
  out.line(webhooks ? `webhooks go to ${webhooks}/webhooks/<salesforce|hubspot|mailchimp|sendgrid>` : 'webhooks: none (pass --webhooks http://127.0.0.1:8080 to send them to a consentd daemon)');
}

export function registerSandbox(program: Command): void {
  program
    .command('sandbox')
    .description('start local fakes of Salesforce, HubSpot, Mailchimp and SendGrid, seeded with disagreeing people, until Ctrl-C')
    .option('--people <n>', 'people to seed', '1000')
    .option('--seed <n>', 'seed of the generator (same seed, same people)', '42')
    .option('--port-base <port>', 'listen on port..port+3 (Salesforce, HubSpot, Mailchimp, SendGrid); 0 = free ports', '4010')
    .option('--webhooks <url>', 'base URL of the consentd daemon the platforms send webhooks to, e.g. http://127.0.0.1:8080')
    .action(async (opts: SandboxCliOptions) => {
      const people = intArg('--people', opts.people) ?? 1000;
      const seed = intArg('--seed', opts.seed) ?? 42;
      const portBase = intArg('--port-base', opts.portBase) ?? 4010;
      if (portBase > 65532) throw new UsageError('--port-base must be at most 65532');
      let webhooks: string | null = null;
      if (opts.webhooks !== undefined) {
        try {
          const u = new URL(opts.webhooks);
          if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
          webhooks = opts.webhooks.replace(/\/+$/, '');
        } catch {
          throw new UsageError(`--webhooks must be an http(s) URL, got ${JSON.stringify(opts.webhooks)}`);
        }
      }
      let set: SandboxSet;
      try {
        set = await startSandboxes({ people, seed, portBase, webhooks });
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === 'EADDRINUSE') throw new UsageError(`a port in ${portBase}..${portBase + 3} is in use (choose another --port-base, or 0 for free ports)`);
        throw err;
      }
      out.line(`${people} people seeded (seed ${seed})`);
      printSandboxes(set, webhooks);
      out.line('\n# ---- paste into a consentd config (purposes: newsletter, product_updates, events) ----');
      out.line('purposes:\n  - id: newsletter\n  - id: product_updates\n  - id: events');
      out.write(set.connectorsYaml());
      out.line('# ----\nCtrl-C to stop');
      await untilInterrupted();
      await set.stop();
      out.line('sandboxes stopped');
    });
}
