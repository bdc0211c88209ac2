// Debian's Caddy running the repository's Caddyfile, on free loopback ports, with its data (and its
// internal CA) in a temporary folder. Requests go to 127.0.0.1 with the site name `localhost` for
// SNI and Host, trusting only that CA.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { request as plainRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ClientOptions } from 'ws';
import { freePort } from './process';

export const CADDYFILE = fileURLToPath(new URL('../../Caddyfile', import.meta.url));

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export class CaddyProxy {
  stderr = '';

  private constructor(
    readonly httpPort: number,
    readonly httpsPort: number,
    private readonly dataDir: string,
  ) {}

  /** The page's origin as a browser sees it. */
  get origin(): string {
    return `https://localhost:${this.httpsPort}`;
  }

  get wsUrl(): string {
    return `wss://127.0.0.1:${this.httpsPort}/ws`;
  }

  /** Caddy's internal root certificate, made on first start. */
  get ca(): Buffer {
    return readFileSync(join(this.dataDir, 'caddy/pki/authorities/local/root.crt'));
  }

  /** `ws` options that reach the site through Caddy as a browser on the page would. */
  get wsOptions(): ClientOptions {
    // ws hands servername on to tls.connect, though its types do not list it.
    const tls = { servername: 'localhost' } as ClientOptions;
    return { ...tls, ca: this.ca, headers: { host: `localhost:${this.httpsPort}` }, origin: this.origin };
  }

  static async start(t: TestContext, upstream: { name: string; port: number; resolver: string }): Promise<CaddyProxy> {
    const home = mkdtempSync(join(tmpdir(), 'chatter-caddy-'));
    const proxy = new CaddyProxy(await freePort(), await freePort(), join(home, 'data'));
    const child = spawn('caddy', ['run', '--config', CADDYFILE, '--adapter', 'caddyfile'], {
      env: {
        PATH: process.env.PATH,
        HOME: home,
        XDG_DATA_HOME: join(home, 'data'),
        XDG_CONFIG_HOME: join(home, 'config'),
        DOMAIN: 'localhost',
        HTTP_PORT: String(proxy.httpPort),
        HTTPS_PORT: String(proxy.httpsPort),
        CADDY_ADMIN: `127.0.0.1:${await freePort()}`,
        APP_UPSTREAM: upstream.name,
        APP_PORT: String(upstream.port),
        DNS_RESOLVER: `udp/${upstream.resolver}`,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (proxy.stderr += chunk));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    t.after(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
      rmSync(home, { recursive: true, force: true });
    });

    // Ready once the internal CA exists and the site answers over TLS with a certificate it signed.
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`caddy exited with ${child.exitCode}: ${proxy.stderr}`);
      if (existsSync(join(proxy.dataDir, 'caddy/pki/authorities/local/root.crt'))) {
        const ok = await proxy.fetch('/healthz').then((answer) => answer.status === 200, () => false);
        if (ok) return proxy;
      }
      if (Date.now() > deadline) throw new Error(`caddy did not serve https in time: ${proxy.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** An HTTPS request to the site. */
  fetch(path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.httpsPort,
          servername: 'localhost',
          ca: this.ca,
          path,
          method: init.method ?? 'GET',
          headers: { host: `localhost:${this.httpsPort}`, ...init.headers },
          timeout: 10_000,
        },
        (res) => collect(res, resolve),
      );
      req.once('error', reject).once('timeout', () => req.destroy(new Error(`timeout on ${path}`)));
      req.end(init.body);
    });
  }

  /** A plain-HTTP request to Caddy's port 80 stand-in. */
  fetchHttp(path: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = plainRequest(
        { host: '127.0.0.1', port: this.httpPort, path, headers: { host: `localhost:${this.httpPort}` }, timeout: 10_000 },
        (res) => collect(res, resolve),
      );
      req.once('error', reject).once('timeout', () => req.destroy(new Error(`timeout on ${path}`)));
      req.end();
    });
  }
}

function collect(res: import('node:http').IncomingMessage, resolve: (answer: Answer) => void): void {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => (body += chunk));
  res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
}
