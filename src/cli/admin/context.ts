import fs from 'node:fs';
import { type Command, InvalidArgumentError, type OptionValues } from '@commander-js/extra-typings';
import { AdminClient } from './admin-client';
import { jsonText, type CliIo } from './io';
import { UsageError } from './failure';

export const DEFAULT_URL = 'http://localhost:3000';

/** What the program was built with: where to write, and (in tests) another fetch. */
export interface Deps {
  io: CliIo;
  fetch?: typeof fetch;
}

/** What a command's action gets. */
export interface Ctx {
  io: CliIo;
  /** --json: print the service's JSON, unchanged. */
  json: boolean;
  client(): AdminClient;
  /** The answer, on stdout. */
  out(text: string): void;
  /** Said to the person, on stderr. */
  say(text: string): void;
  /** Prints `body` as JSON when --json, else runs `human`. */
  print(body: unknown, human: () => void): void;
}

/** The program's own options (run.ts declares them with `globalOptions`), read by every command. */
export function globalOptions(program: Command) {
  return (
    program
      .option('--url <url>', 'the service’s URL (default: $BILLING_API_URL)')
      // No default from the environment here: commander would print it in --help.
      .option('--token <token>', 'the admin token (default: $ADMIN_API_TOKEN; prefer the variable, a flag shows in the process list)')
      .option('--json', 'print the service’s JSON, unchanged (for scripts)')
      .option('--insecure', 'allow a plain http:// URL to a host other than this machine (the admin token then travels in clear)')
      .option('--timeout <ms>', 'per request (default 10000)', int(100, 600_000))
  );
}

/** The program, with its global options typed: every command hangs below it. */
export type Program = ReturnType<typeof globalOptions>;
type GlobalOptions = ReturnType<Program['opts']>;

/** What an action reads of its command: its own options, its arguments, and the global options. */
interface ActionThis<A extends unknown[], O extends OptionValues> {
  opts(): O;
  /** Its own options with the global ones (commander merges them). */
  optsWithGlobals(): O & GlobalOptions;
  processedArgs: A;
}

/**
 * The admin token, from --token, ADMIN_API_TOKEN or the file ADMIN_API_TOKEN_FILE names. It goes
 * into one header and nowhere else: never into a message, a log line or the help text.
 */
function resolveToken(flag: string | undefined, env: CliIo['env']): string {
  let token = flag ?? env.ADMIN_API_TOKEN;
  if (token === undefined && env.ADMIN_API_TOKEN_FILE) {
    try {
      token = fs.readFileSync(env.ADMIN_API_TOKEN_FILE, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ADMIN_API_TOKEN_FILE (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  token = token?.trim();
  if (!token) throw new UsageError('no admin token: set ADMIN_API_TOKEN (or ADMIN_API_TOKEN_FILE, or pass --token); in development it is in .data/admin-token');
  if (token.includes(',')) throw new UsageError('the admin token holds a comma: the service may accept several tokens, but give the CLI one');
  return token;
}

/** This machine: plain http:// there never leaves it. */
function isLoopback(hostname: string): boolean {
  const h = hostname
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

function resolveUrl(flag: string | undefined, env: CliIo['env'], insecure: boolean): string {
  const url = flag ?? env.BILLING_API_URL ?? DEFAULT_URL;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`not a URL: ${JSON.stringify(url)} (BILLING_API_URL or --url)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError('the service URL must be http:// or https://');
  // The admin token travels in a header: in clear over http:// to anything but this machine.
  if (parsed.protocol === 'http:' && !isLoopback(parsed.hostname) && !insecure) {
    throw new UsageError(
      `refusing to send the admin token over plain http:// to ${parsed.hostname}: use https://, or add --insecure if this network is yours (a tunnel, a private link)`,
    );
  }
  return url;
}

/** Wraps a command's action: builds its context from the global options, passes the options (its own and the global ones) and its arguments, typed by the command's declaration. */
export function action<A extends unknown[], O extends OptionValues>(deps: Deps, fn: (ctx: Ctx, opts: O & GlobalOptions, args: A) => Promise<void>) {
  return async function (this: ActionThis<A, O>): Promise<void> {
    const global = this.optsWithGlobals();
    const { io } = deps;
    let client: AdminClient | undefined;
    const ctx: Ctx = {
      io,
      json: Boolean(global.json),
      client: () =>
        (client ??= new AdminClient({
          baseUrl: resolveUrl(global.url, io.env, Boolean(global.insecure)),
          token: resolveToken(global.token, io.env),
          timeoutMs: global.timeout,
          fetch: deps.fetch,
          userAgent: 'billing-admin',
        })),
      out: (t) => void io.stdout.write(t),
      say: (t) => void io.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
      print: (body, human) => (global.json ? void io.stdout.write(jsonText(body)) : human()),
    };
    await fn(ctx, global, this.processedArgs);
  };
}

/** Option parsers: a bad value is a usage error (exit 64) with commander's message. */
export function int(min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be a whole number');
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}`);
    return n;
  };
}

export const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Reads a JSON file, or stdin for "-". */
export async function readJsonFile(io: CliIo, file: string): Promise<unknown> {
  let text: string;
  try {
    text = file === '-' ? await io.readStdin() : fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file} is not JSON: ${(err as Error).message}`);
  }
}

/** Prints every page of a paged list: tables for people, one JSON page per line with --json. */
export async function printPages<T extends { data: R[]; next_cursor: string | null }, R>(
  ctx: Ctx,
  opts: { all?: true; cursor?: string },
  fetchPage: (cursor: string | undefined) => Promise<T>,
  render: (rows: R[]) => string,
  label: string,
  onProgress: { update(rows: number, pages: number): void; done(): void },
): Promise<void> {
  const all = Boolean(opts.all);
  const rows: R[] = [];
  let pages = 0;
  let count = 0;
  let last: T | undefined;
  try {
    for await (const page of ctx.client().pages(fetchPage, opts.cursor, all ? Infinity : 1)) {
      last = page;
      pages++;
      count += page.data.length;
      // People get one aligned table at the end; scripts get each page as it comes.
      if (ctx.json) ctx.out(all ? `${JSON.stringify(page)}\n` : jsonText(page));
      else rows.push(...page.data);
      onProgress.update(count, pages);
    }
  } finally {
    onProgress.done();
  }
  if (ctx.json) return;
  if (rows.length) ctx.out(render(rows));
  else ctx.say(`no ${label}`);
  if (!all && last?.next_cursor) ctx.say(`more: --cursor ${last.next_cursor} (or --all)`);
}
