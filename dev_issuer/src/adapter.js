/**
 * An in-memory oidc-provider adapter whose store outlives a Provider instance, so a key
 * rotation (which builds a new Provider, as Logto reloads its tenant) keeps sessions, grants
 * and tokens. Entries expire with the TTL oidc-provider gives them.
 */
const GRANTABLE = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'ClientCredentials', 'BackchannelAuthenticationRequest',
]);

export class MemoryStore {
  constructor({ now = () => Date.now() } = {}) {
    this.now = now;
    this.entries = new Map();
    this.grantKeys = new Map();
    this.sessionUids = new Map();
    this.userCodes = new Map();
    this.writes = 0;
  }

  get(key) {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  set(key, payload, expiresIn) {
    const expiresAt = expiresIn ? this.now() + expiresIn * 1000 : undefined;
    this.entries.set(key, { payload, expiresAt });
    this.#sweep();
  }

  delete(key) {
    this.entries.delete(key);
  }

  /** Drop expired entries now and then, so a long-running issuer does not grow forever. */
  #sweep() {
    this.writes += 1;
    if (this.writes % 256 !== 0) return;
    const now = this.now();
    for (const [key, { expiresAt }] of this.entries) {
      if (expiresAt !== undefined && expiresAt <= now) this.entries.delete(key);
    }
  }

  /** The adapter class to hand to oidc-provider's `adapter` option. */
  adapterClass() {
    const store = this;
    return class MemoryAdapter {
      constructor(model) {
        this.model = model;
      }

      key(id) {
        return `${this.model}:${id}`;
      }

      async upsert(id, payload, expiresIn) {
        const key = this.key(id);
        if (this.model === 'Session') store.sessionUids.set(payload.uid, id);
        if (payload.userCode) store.userCodes.set(payload.userCode, id);
        if (GRANTABLE.has(this.model) && payload.grantId) {
          const keys = store.grantKeys.get(payload.grantId) ?? new Set();
          keys.add(key);
          store.grantKeys.set(payload.grantId, keys);
        }
        store.set(key, payload, expiresIn);
      }

      async find(id) {
        return store.get(this.key(id));
      }

      async findByUid(uid) {
        const id = store.sessionUids.get(uid);
        return id === undefined ? undefined : this.find(id);
      }

      async findByUserCode(userCode) {
        const id = store.userCodes.get(userCode);
        return id === undefined ? undefined : this.find(id);
      }

      async consume(id) {
        const payload = store.get(this.key(id));
        if (payload) payload.consumed = Math.floor(store.now() / 1000);
      }

      async destroy(id) {
        store.delete(this.key(id));
      }

      async revokeByGrantId(grantId) {
        for (const key of store.grantKeys.get(grantId) ?? []) store.delete(key);
        store.grantKeys.delete(grantId);
      }
    };
  }
}
