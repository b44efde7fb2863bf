/**
 * The shared connector kit (test/kit/connector-kit.ts) run for Mailchimp against its sandbox,
 * all eight blocks. Where Mailchimp differs from the signed-webhook, no-wide-grant platforms the
 * harness (test/kit/harnesses/mailchimp.ts) declares it: (email, *) opt-ins are pulled
 * (pullGrantsAllScope) and webhooks are authenticated by the URL token (webhookAuth 'url-token').
 */
import { runConnectorKit } from '../kit/connector-kit.js';
import { mailchimpHarness } from '../kit/harnesses/mailchimp.js';

runConnectorKit({ name: 'mailchimp', setup: () => mailchimpHarness() });
