// hmacfs browser client: resumable uploads (Drive API, tus) and live events.
export { HmacfsClient, tokenAccount } from "./client.js";
export { EventSocket } from "./events.js";
export { HmacfsError, backoffDelay, parseRetryAfter, retryableStatus } from "./http.js";
export { networkHint } from "./network.js";
export { Sha256, sha256OfBlob } from "./sha256.js";
export { ResumeStore, fingerprint } from "./store.js";
export { Upload } from "./upload.js";
