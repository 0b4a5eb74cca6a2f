import { Command, CommanderError, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { DEFAULT_URL, globalOptions, type Deps } from './context';
import { describeFailure, EXIT } from './failure';
import { activationsCommands } from './commands/activations';
import { auditCommands } from './commands/audit';
import { customersCommands } from './commands/customers';
import { keysCommands } from './commands/keys';
import { licensesCommands } from './commands/licenses';
import { plansCommands } from './commands/plans';
import { reportsCommands } from './commands/reports';
import { subscriptionsCommands } from './commands/subscriptions';
import { usageCommands } from './commands/usage';
import { eventsCommands } from './commands/events';
import { webhooksCommands } from './commands/webhooks';
import { invoicesCommands } from './commands/invoices';
import { lateUsageCommands } from './commands/late-usage';

const EXIT_HELP = `
Environment:
  BILLING_API_URL        the service (default ${DEFAULT_URL})
  ADMIN_API_TOKEN        the admin token (or ADMIN_API_TOKEN_FILE: a file holding it)

Output: tables for people; --json prints the service's JSON unchanged (--all: one page per line).
A new API key is printed once, alone on stdout (or with --output, into a file only you can read):
  KEY=$(billing-admin customers create --email ops@acme.example --company Acme)
Dates: 2026-11-01 (its midnight, UTC), 2026-11-01T09:30 (UTC) or with an offset, e.g.
  billing-admin audit --from 2026-11-01 --to 2026-11-08T12:00

Exit codes: 0 done, 1 refused (not found, conflict), 2 invalid request (422: the fields are listed),
3 admin token refused (401/403), 4 rate limited (429: retry after Retry-After),
5 service failed or unreachable (5xx, network, timeout), 64 wrong command line.
`;

export function buildProgram(deps: Deps) {
  const program = globalOptions(
    new Command('billing-admin')
      .description('Administer the billing service: customers, keys, plans, subscriptions, activations, usage, audit, webhook endpoints, events, invoices')
      .version(process.env.npm_package_version ?? '0.1.0'),
  )
    .exitOverride()
    .configureOutput({ writeOut: (s) => void deps.io.stdout.write(s), writeErr: (s) => void deps.io.stderr.write(s) })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', EXIT_HELP);

  customersCommands(program, deps);
  keysCommands(program, deps);
  plansCommands(program, deps);
  subscriptionsCommands(program, deps);
  activationsCommands(program, deps);
  licensesCommands(program, deps);
  usageCommands(program, deps);
  auditCommands(program, deps);
  reportsCommands(program, deps);
  webhooksCommands(program, deps);
  eventsCommands(program, deps);
  invoicesCommands(program, deps);
  lateUsageCommands(program, deps);
  return program;
}

/**
 * The first word of the line that names no command where one is expected (`billing-admin nosuch
 * --help`, `keys nosuch`), or null. commander answers such a line with the parent's help and exit 0
 * when --help is on it; a script must see the mistake instead.
 */
function unknownCommand(program: CommandUnknownOpts, argv: string[]): string | null {
  let cmd = program;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return null;
    if (arg.startsWith('-')) {
      // An option taking a value (--url x, --timeout 5) skips its value unless given as --opt=value.
      const opt = [...cmd.options, ...program.options].find((o) => o.long === arg || o.short === arg);
      if (opt && (opt.required || opt.optional) && !arg.includes('=')) i++;
      continue;
    }
    if (cmd.commands.length === 0) return null;
    const next = cmd.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (!next) return arg === 'help' ? null : arg;
    cmd = next;
  }
  return null;
}

/** Runs one command line; returns the exit code (nothing here calls process.exit, so tests can run it in-process). */
export async function runCli(argv: string[], deps: Deps): Promise<number> {
  try {
    const program = buildProgram(deps);
    const unknown = unknownCommand(program, argv);
    if (unknown !== null) {
      deps.io.stderr.write(`error: unknown command '${unknown}' (add --help for usage)\n`);
      return EXIT.usage;
    }
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    // commander has written its own message (or the help) already.
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const { exitCode, message } = describeFailure(err);
    deps.io.stderr.write(`${message}\n`);
    return exitCode;
  }
}
