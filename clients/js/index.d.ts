// Types of the hmacfs browser client (the code is plain ES modules under src/).

export type Protocol = "drive" | "tus";

export type UploadState =
  | "queued"
  | "hashing"
  | "uploading"
  | "retrying"
  | "paused"
  | "offline"
  | "complete"
  | "failed"
  | "cancelled";

export interface UploadOptions {
  /** "drive" (parallel chunks, default) or "tus". */
  protocol?: Protocol;
  /** Chunks in flight at once (Drive). Default 3. */
  parallel?: number;
  /** Bytes per chunk; default: the server's recommendation (Drive `chunkSize`; tus `Hmacfs-Chunk-Size`
   * and, after a network switch, `GET /api/network/profile`), else 5 MiB (tus). */
  chunkSize?: number;
  /** Failed attempts in a row, without progress between them, before giving up. Default 10. */
  maxAttempts?: number;
  /** File name to send (default: the File's name). */
  name?: string;
  /** Pool to upload into (Drive). */
  poolId?: string;
}

export interface ProgressDetail {
  bytesSent: number;
  bytesTotal: number;
  percent: number;
  /** Bytes per second over the last few seconds. */
  speed: number;
  /** Seconds left at that speed, or null while unknown. */
  eta: number | null;
}

/** A file as the Drive API describes it (the result of a Drive upload). */
export interface FileInfo {
  id: string;
  name: string;
  size: number;
  contentType: string;
  hash: string;
  poolId: string;
  bundleId: string | null;
  createdAt: string | null;
  expiredAt: string | null;
  url: string;
}

/** The result of a tus upload. */
export interface TusResult {
  /** The tus upload's URL. */
  url: string;
  size: number;
  name: string;
  /** The stored file's id and download URL (hmacfs's Hmacfs-File-Id/-Url; null from other tus servers). */
  fileId: string | null;
  fileUrl: string | null;
}

export interface UploadEventMap {
  state: CustomEvent<{ state: UploadState }>;
  progress: CustomEvent<ProgressDetail>;
  hashing: CustomEvent<{ percent: number }>;
  resumed: CustomEvent<{ offset: number; percent: number }>;
  retry: CustomEvent<{ attempt: number; delay: number; error: HmacfsError }>;
  /** tus: the PATCH size now follows the server's recommendation (from creation, HEAD or the profile). */
  chunksize: CustomEvent<{ size: number; source: "create" | "head" | "profile" }>;
  /** tus: the server's recommendation re-read after a network switch. */
  profile: CustomEvent<{ profile: NetworkProfile }>;
  complete: CustomEvent<{ result: FileInfo | TusResult }>;
  error: CustomEvent<{ error: Error }>;
}

export class HmacfsError extends Error {
  constructor(
    message: string,
    info?: { status?: number; code?: string; retryable?: boolean; retryAfter?: number | null; body?: unknown },
  );
  /** HTTP status, 0 for a network failure. */
  status: number;
  /** The server's stable error code (e.g. "CHUNK_EXISTS"), or HTTP_<status> / NETWORK_ERROR. */
  code: string;
  retryable: boolean;
  /** Seconds from Retry-After, if the server sent it. */
  retryAfter: number | null;
  body: unknown;
}

export class Upload extends EventTarget {
  constructor(client: HmacfsClient, file: File | Blob, options?: UploadOptions);
  readonly client: HmacfsClient;
  readonly file: File | Blob;
  readonly name: string;
  readonly options: Required<Pick<UploadOptions, "protocol" | "parallel" | "maxAttempts">> & UploadOptions;
  /** The key of this file's resume record (protocol, server, account, name, size, mtime, type). */
  readonly key: string;
  readonly state: UploadState;
  readonly bytesSent: number;
  readonly bytesTotal: number;
  /** Bytes the server already had when this upload started from a saved record (0: fresh). */
  readonly resumedFrom: number;
  /** Bytes per tus PATCH now: `options.chunkSize`, else the server's latest recommendation, else 5 MiB. */
  readonly chunkSize: number;
  readonly result: FileInfo | TusResult | null;
  readonly error: Error | null;
  /** Settles on completion (the file) or rejects on failure or cancel. */
  readonly done: Promise<FileInfo | TusResult>;
  start(): Promise<FileInfo | TusResult>;
  pause(): void;
  resume(): void;
  cancel(): Promise<void>;
  networkChanged(kind: "offline" | "online" | "change"): void;
  addEventListener<K extends keyof UploadEventMap>(
    type: K,
    listener: (event: UploadEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
}

/** A storage pool (`GET /api/pools`). */
export interface PoolInfo {
  id: string;
  name: string;
  /** Where uploads without a poolId go. */
  default: boolean;
  maxFileSize: number;
  allowedContentTypes: string[] | null;
  fileTtlSeconds: number | null;
  public: boolean;
  allowAnonymous: boolean;
}

/** `GET /api/network/profile`: what the server recommends for this client and network now. */
export interface NetworkProfile {
  chunkSize: number;
  bufferSize: number;
  networkClass: "ethernet" | "wifi" | "lte" | "cellular" | "vpn" | "unknown";
  clientId: string;
  arm: "fixed" | "adaptive";
  source: "measured" | "hint" | "measured+hint" | "none";
  estimate: Record<string, number | null>;
}

/** An event from /ws. */
export interface ServerEvent<T = Record<string, unknown>> {
  id: number;
  type: string;
  ts: string;
  data: T;
}

export class EventSocket extends EventTarget {
  constructor(client: HmacfsClient, options?: { types?: string[]; taskIds?: string[]; since?: number });
  /** The id of the last event received (a reconnect resumes after it). */
  readonly lastId: number | null;
  readonly connected: boolean;
  close(): void;
  addEventListener(
    type: "event" | `upload.${string}` | `task.${string}` | "network.changed",
    listener: (event: CustomEvent<ServerEvent>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: "open" | "resync", listener: (event: CustomEvent<undefined>) => void): void;
  addEventListener(type: "close", listener: (event: CustomEvent<{ code: number; reason: string }>) => void): void;
}

export interface PendingUpload {
  key: string;
  protocol: Protocol;
  name: string;
  size: number;
  server: string;
  account: string | null;
  taskId?: string;
  location?: string;
  savedAt: number;
}

export class ResumeStore {
  get(key: string): Record<string, unknown> | null;
  set(key: string, record: Record<string, unknown>): void;
  remove(key: string): void;
  list(): Array<Record<string, unknown>>;
}

export class HmacfsClient {
  constructor(options?: { server?: string; token?: string; store?: ResumeStore });
  readonly server: string;
  readonly token: string;
  /** The token's `sub` (account id), or null. */
  readonly account: string | null;
  readonly store: ResumeStore;
  readonly uploads: Set<Upload>;
  setToken(token: string): void;
  url(path: string): string;
  headers(): Record<string, string>;
  json<T = any>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T>;
  upload(file: File | Blob, options?: UploadOptions): Upload;
  pendingUploads(): PendingUpload[];
  forgetPending(key: string): void;
  networkProfile(fileSize?: number, signal?: AbortSignal): Promise<NetworkProfile>;
  pools(): Promise<PoolInfo[]>;
  recentUploads(limit?: number): Promise<Array<Record<string, unknown>>>;
  tasks(limit?: number): Promise<Array<Record<string, unknown>>>;
  createTask(type: string, parameters: Record<string, unknown>, extra?: { name?: string; priority?: number }): Promise<Record<string, unknown>>;
  taskAction(taskId: string, action: "pause" | "resume" | "cancel"): Promise<Record<string, unknown>>;
  events(options?: { types?: string[]; taskIds?: string[]; since?: number }): EventSocket;
  close(): void;
}

export function tokenAccount(token: string): string | null;
/** The Hmacfs-Network header value from navigator.connection, or null. */
export function networkHint(): string | null;
export function fingerprint(file: File | Blob, server: string, account: string): string;
export function backoffDelay(
  attempt: number,
  options?: { base?: number; cap?: number; retryAfter?: number | null; random?: () => number },
): number;
export function parseRetryAfter(value: string | null): number | null;
export function retryableStatus(status: number, code?: string): boolean;

export class Sha256 {
  update(bytes: Uint8Array): this;
  hex(): string;
}
export function sha256OfBlob(
  blob: Blob,
  options?: { signal?: AbortSignal; onProgress?: (done: number, total: number) => void },
): Promise<string>;
