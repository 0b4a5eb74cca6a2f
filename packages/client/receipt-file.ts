import { promises as fsp } from 'node:fs';
import { ReceiptError } from './receipt-errors';

/** An upload's answer lists every refused event and carries a license: far below this. */
const MAX_ANSWER_FILE = 64 * 1024 * 1024;

export interface CarriedAnswer {
  receipt: string;
  /** null: the answer had none (or only the receipt was carried). */
  license: string | null;
  /** Why the service issued no license, as it said. */
  licenseError: { code: string; message: string } | null;
}

/**
 * What was carried back to the instance: the upload's answer as JSON (`{"receipt", "license",
 * "license_error", ...}`), or the receipt's compact JWS alone. Nothing in it is trusted yet: the
 * receipt and the license are verified by the caller.
 */
export async function readAnswer(file: string): Promise<CarriedAnswer> {
  const h = await fsp.open(file, 'r');
  let text: string;
  try {
    if ((await h.stat()).size > MAX_ANSWER_FILE) throw new ReceiptError('MALFORMED', `${file} is larger than an upload's answer can be.`);
    text = (await h.readFile()).toString('utf8').trim();
  } finally {
    await h.close();
  }
  if (!text.startsWith('{')) return { receipt: text, license: null, licenseError: null };
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    throw new ReceiptError('MALFORMED', `${file} is neither an upload's answer (JSON) nor a receipt (a compact JWS).`);
  }
  const a = answer as { receipt?: unknown; license?: unknown; license_error?: unknown };
  if (typeof a.receipt !== 'string') throw new ReceiptError('MALFORMED', `${file} is JSON but has no "receipt": not the answer of a bundle upload.`);
  const le = a.license_error as { code?: unknown; message?: unknown } | null | undefined;
  return {
    receipt: a.receipt.trim(),
    license: typeof a.license === 'string' && a.license.length > 0 ? a.license.trim() : null,
    licenseError:
      le && typeof le === 'object' && typeof le.code === 'string' ? { code: le.code, message: typeof le.message === 'string' ? le.message : le.code } : null,
  };
}
