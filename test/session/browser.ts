/** A minimal HTTP client with a cookie jar, enough to act as one browser across requests. */
import { request } from 'node:http';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** Set-Cookie values of this response. */
  setCookies: string[];
  json<T = Record<string, unknown>>(): T;
}

export class Browser {
  readonly cookies = new Map<string, string>();
  constructor(public port: number) {}

  /** The raw (encoded) value of a cookie in the jar. */
  cookie(name: string): string | undefined {
    return this.cookies.get(name);
  }

  request(
    method: string,
    path: string,
    headers: Record<string, string> = {},
    timeoutMs = 5000,
  ): Promise<Reply> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.port,
          method,
          path,
          headers: { ...(cookie ? { cookie } : {}), ...headers },
          agent: false,
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const setCookies = res.headers['set-cookie'] ?? [];
            for (const line of setCookies) this.#remember(line);
            const body = Buffer.concat(chunks).toString();
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body,
              setCookies,
              json: <T>() => JSON.parse(body) as T,
            });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      req.end();
    });
  }

  get(path: string, headers?: Record<string, string>): Promise<Reply> {
    return this.request('GET', path, headers);
  }

  post(path: string, headers?: Record<string, string>): Promise<Reply> {
    return this.request('POST', path, headers);
  }

  #remember(line: string): void {
    const [pair = '', ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const expired = attributes.some((a) => {
      const [k = '', v = ''] = a.trim().split('=');
      if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
      if (k.toLowerCase() === 'expires') return Date.parse(v) <= Date.now();
      return false;
    });
    if (expired || value === '') this.cookies.delete(name);
    else this.cookies.set(name, value);
  }
}
