/**
 * Quantities are exact decimals: at most 14 integer digits and 6 decimal places, stored as
 * numeric(20,6). A JSON number is accepted only when its shortest form says exactly what was
 * meant (at most 15 significant digits, no exponent); larger or finer values must be strings.
 */
const DECIMAL = /^(0|[1-9]\d{0,13})(\.\d{1,6})?$/;

export type QuantityResult = { ok: true; value: string } | { ok: false; message: string };

export function normalizeQuantity(input: unknown): QuantityResult {
  let text: string;
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) return { ok: false, message: 'must be a finite number' };
    if (input < 0) return { ok: false, message: 'must not be negative' };
    text = String(input);
    if (text.replace('.', '').replace(/^0+/, '').length > 15) {
      return { ok: false, message: 'has more digits than a JSON number carries exactly; send it as a decimal string' };
    }
  } else if (typeof input === 'string') {
    text = input.trim();
    if (text.startsWith('-')) return { ok: false, message: 'must not be negative' };
  } else {
    return { ok: false, message: 'must be a number or a decimal string' };
  }
  if (/e/i.test(text) && typeof input === 'number') return { ok: false, message: 'is too large or too precise (at most 14 integer digits, 6 decimals)' };
  if (!DECIMAL.test(text)) {
    if (/^\d+(\.\d+)?$/.test(text)) {
      return { ok: false, message: 'is too large or too precise (at most 14 integer digits, 6 decimals)' };
    }
    return { ok: false, message: 'must be a non-negative decimal like 12 or 0.5' };
  }
  return { ok: true, value: trimDecimal(text) };
}

/** '1.500000' -> '1.5', '2.000000' -> '2'. */
export function trimDecimal(s: string): string {
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}
