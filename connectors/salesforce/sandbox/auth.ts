import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface AuthConfig {
  username: string;
  password: string;
  clientId: string;
  clientSecret: string;
  orgId: string;
  userId: string;
  tokenTtlMs: number;
}

export interface AuthAnswer {
  status: number;
  body: unknown;
}

function same(a: string | null | undefined, b: string): boolean {
  if (typeof a !== 'string') return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const xmlUnescape = (s: string): string =>
  s.replace(/&(lt|gt|quot|apos|amp);/g, (_m, e: string) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e] ?? '');
export const xmlEscape = (s: string): string => s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c);

/**
 * Sessions: the OAuth 2.0 token endpoint (password and client_credentials grants) and the SOAP
 * login() that jsforce's `conn.login()` uses when the connection has no client id/secret.
 * Access tokens expire after tokenTtlMs; expired or unknown ones get 401 INVALID_SESSION_ID.
 */
export class Auth {
  private readonly tokens = new Map<string, number>();
  /** Successful logins / token grants, for tests of re-authorization. */
  grants = 0;

  constructor(
    readonly cfg: AuthConfig,
    private readonly now: () => number,
  ) {}

  issue(): string {
    const token = `${this.cfg.orgId.slice(0, 15)}!${randomBytes(36).toString('base64').replace(/[+/=]/g, (c) => (c === '+' ? '.' : c === '/' ? '_' : ''))}`;
    this.tokens.set(token, this.now() + this.cfg.tokenTtlMs);
    this.grants++;
    return token;
  }

  /** Accepts "Bearer <token>" (or the older "OAuth <token>"). */
  valid(authorization: string | undefined): boolean {
    const m = /^(?:Bearer|OAuth)\s+(\S+)$/i.exec(authorization ?? '');
    if (!m) return false;
    const exp = this.tokens.get(m[1] ?? '');
    if (exp === undefined) return false;
    if (exp <= this.now()) {
      this.tokens.delete(m[1] ?? '');
      return false;
    }
    return true;
  }

  /** Ends every session (the next API call answers 401). */
  expireAll(): void {
    this.tokens.clear();
  }

  /** POST /services/oauth2/token (form-encoded). */
  token(form: URLSearchParams, baseUrl: string): AuthAnswer {
    const fail = (error: string, error_description: string): AuthAnswer => ({ status: 400, body: { error, error_description } });
    const grant = form.get('grant_type');
    if (grant !== 'password' && grant !== 'client_credentials' && grant !== 'refresh_token') return fail('unsupported_grant_type', 'grant type not supported');
    if (!same(form.get('client_id'), this.cfg.clientId)) return fail('invalid_client_id', 'client identifier invalid');
    if (!same(form.get('client_secret'), this.cfg.clientSecret)) return fail('invalid_client', 'invalid client credentials');
    // No refresh tokens are ever issued (neither grant issues one), so none is valid.
    if (grant === 'refresh_token') return fail('invalid_grant', 'expired access/refresh token');
    if (grant === 'password' && !(same(form.get('username'), this.cfg.username) && same(form.get('password'), this.cfg.password))) {
      return fail('invalid_grant', 'authentication failure');
    }
    const access_token = this.issue();
    const id = `${baseUrl}/id/${this.cfg.orgId}/${this.cfg.userId}`;
    const issued_at = String(this.now());
    const signature = createHmac('sha256', this.cfg.clientSecret).update(id + issued_at).digest('base64');
    return { status: 200, body: { access_token, instance_url: baseUrl, id, token_type: 'Bearer', issued_at, signature, scope: 'api' } };
  }

  /** POST /services/Soap/u/{version} with a login() envelope. */
  soapLogin(xml: string, baseUrl: string, version: string): AuthAnswer {
    const username = xmlUnescape(/<(?:\w+:)?username>([^<]*)</.exec(xml)?.[1] ?? '');
    const password = xmlUnescape(/<(?:\w+:)?password>([^<]*)</.exec(xml)?.[1] ?? '');
    const env = (body: string): string =>
      `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>${body}</soapenv:Body></soapenv:Envelope>`;
    if (!/<(?:\w+:)?login[\s>]/.test(xml)) {
      return { status: 500, body: env('<soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>sandbox: only the login() call is served on the SOAP endpoint</faultstring></soapenv:Fault>') };
    }
    if (!(same(username, this.cfg.username) && same(password, this.cfg.password))) {
      const msg = 'INVALID_LOGIN: Invalid username, password, security token; or user locked out.';
      return {
        status: 500,
        body: env(
          `<soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode><faultstring>${msg}</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username, password, security token; or user locked out.</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault>`,
        ),
      };
    }
    const sessionId = this.issue();
    const { orgId, userId } = this.cfg;
    const seconds = Math.floor(this.cfg.tokenTtlMs / 1000);
    return {
      status: 200,
      body: env(
        `<loginResponse><result><metadataServerUrl>${baseUrl}/services/Soap/m/${version}/${orgId.slice(0, 15)}</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>true</sandbox><serverUrl>${baseUrl}/services/Soap/u/${version}/${orgId.slice(0, 15)}</serverUrl><sessionId>${sessionId}</sessionId><userId>${userId}</userId><userInfo><organizationId>${orgId}</organizationId><organizationName>consentd sandbox</organizationName><sessionSecondsValid>${seconds}</sessionSecondsValid><userEmail>${xmlEscape(this.cfg.username)}</userEmail><userFullName>Sandbox Admin</userFullName><userId>${userId}</userId><userName>${xmlEscape(this.cfg.username)}</userName></userInfo></result></loginResponse>`,
      ),
    };
  }
}
