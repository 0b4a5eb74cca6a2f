/**
 * Imported first by server.ts, before any other module loads: from then on a SIGHUP never takes
 * node's default action (ending the process). The secret-rotation procedure sends SIGHUP to every
 * pod, including one still starting; such a signal is remembered and its reload runs once the
 * service is ready (several signals during start-up make one reload: the files are read then).
 */
let pending = false;
let handler: (() => void) | null = null;

process.on('SIGHUP', () => {
  if (handler) handler();
  else pending = true;
});

/** Installs the reload; a SIGHUP received during start-up runs it now. Returns whether one had come. */
export function onSighupWhenReady(reload: () => void): boolean {
  handler = reload;
  const had = pending;
  pending = false;
  if (had) reload();
  return had;
}
