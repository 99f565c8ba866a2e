// What the browser knows about its network, and when it changes.

/** @returns {any} the Network Information API object, where the browser has one */
function connection() {
  return typeof navigator === "undefined" ? undefined : /** @type {any} */ (navigator).connection;
}

/**
 * The `Hmacfs-Network` request header value from `navigator.connection`
 * (`type=wifi; downlink=10; rtt=50`), or null when the browser says nothing.
 * @returns {string | null}
 */
export function networkHint() {
  const info = connection();
  if (!info) return null;
  const parts = [];
  const type = info.type && info.type !== "unknown" ? info.type : info.effectiveType;
  if (type) parts.push(`type=${type}`);
  if (typeof info.downlink === "number") parts.push(`downlink=${info.downlink}`);
  if (typeof info.rtt === "number") parts.push(`rtt=${info.rtt}`);
  return parts.length ? parts.join("; ") : null;
}

/** Whether the browser believes it is online (true where it cannot tell). */
export function isOnline() {
  return typeof navigator === "undefined" || navigator.onLine !== false;
}

/**
 * Call `onChange(kind)` on `offline`, `online` and `navigator.connection` changes.
 * @param {(kind: "offline" | "online" | "change") => void} onChange
 * @returns {() => void} stops watching
 */
export function watchNetwork(onChange) {
  if (typeof window === "undefined") return () => {};
  const offline = () => onChange("offline");
  const online = () => onChange("online");
  const change = () => onChange("change");
  window.addEventListener("offline", offline);
  window.addEventListener("online", online);
  connection()?.addEventListener?.("change", change);
  return () => {
    window.removeEventListener("offline", offline);
    window.removeEventListener("online", online);
    connection()?.removeEventListener?.("change", change);
  };
}
