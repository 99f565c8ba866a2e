// Where an upload resumes from after a page reload: one record per file
// fingerprint in localStorage (small JSON; the bytes stay in the user's file).

const PREFIX = "hmacfs:upload:";

/**
 * A stable fingerprint of a file on one server for one account.
 * @param {File | Blob} file
 * @param {string} server
 * @param {string} account
 */
export function fingerprint(file, server, account) {
  const named = /** @type {Partial<File>} */ (file);
  return [server, account, named.name ?? "blob", file.size, named.lastModified ?? 0, file.type].join("|");
}

/** localStorage when usable, else a Map that lives as long as the page. */
function backend() {
  try {
    const storage = globalThis.localStorage;
    storage.setItem(`${PREFIX}probe`, "1");
    storage.removeItem(`${PREFIX}probe`);
    return storage;
  } catch {
    return null;
  }
}

export class ResumeStore {
  constructor() {
    this._storage = backend();
    /** @type {Map<string, string>} */
    this._memory = new Map();
  }

  /** @param {string} key @returns {Record<string, any> | null} */
  get(key) {
    const raw = this._storage ? this._storage.getItem(PREFIX + key) : this._memory.get(key);
    if (!raw) return null;
    try {
      return JSON.parse(raw);
    } catch {
      return null;
    }
  }

  /** @param {string} key @param {Record<string, any>} record */
  set(key, record) {
    const raw = JSON.stringify({ ...record, savedAt: Date.now() });
    if (this._storage) this._storage.setItem(PREFIX + key, raw);
    else this._memory.set(key, raw);
  }

  /** @param {string} key */
  remove(key) {
    if (this._storage) this._storage.removeItem(PREFIX + key);
    else this._memory.delete(key);
  }

  /** Every unfinished upload recorded here, newest first. @returns {Array<Record<string, any>>} */
  list() {
    const records = [];
    const keys = this._storage
      ? Array.from({ length: this._storage.length }, (_, i) => this._storage?.key(i) ?? "")
      : [...this._memory.keys()].map((key) => PREFIX + key);
    for (const full of keys) {
      if (!full.startsWith(PREFIX) || full === `${PREFIX}probe`) continue;
      const record = this.get(full.slice(PREFIX.length));
      if (record) records.push({ ...record, key: full.slice(PREFIX.length) });
    }
    return records.sort((a, b) => (b.savedAt ?? 0) - (a.savedAt ?? 0));
  }
}
