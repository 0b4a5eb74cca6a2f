/**
 * A key made and hashed before the transaction that stores it (bcrypt is slow, locks are not held
 * over it). The API-keys service makes them; the bulk rotation stores many at once.
 */
export interface PreparedKey {
  id: string;
  customerId: string;
  /** The whole key, to hand to the caller once. Never stored, never logged. */
  key: string;
  start: string;
  secretHash: string;
}
