// /ws: the server's live events for the signed-in account, reconnecting with
// backoff and `since` so that no event is missed across a dropped connection.

import { backoffDelay } from "./http.js";

/**
 * Events: `event` (every envelope), one per event type (`upload.completed`, ...),
 * `open`, `close` and `resync` (events were lost: re-read state over REST).
 */
export class EventSocket extends EventTarget {
  /**
   * @param {import("./client.js").HmacfsClient} client
   * @param {{types?: string[], taskIds?: string[], since?: number}} [options]
   */
  constructor(client, options = {}) {
    super();
    this.client = client;
    this.options = options;
    /** The id of the last event seen: a reconnect asks for everything after it. */
    this.lastId = options.since ?? null;
    this.connected = false;
    this._closed = false;
    this._attempt = 0;
    /** @type {WebSocket | null} */
    this._socket = null;
    this._timer = 0;
    this._connect();
  }

  /** Stop for good. */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    this._socket?.close(1000);
  }

  _connect() {
    const url = new URL(this.client.url("/ws"));
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.lastId !== null) url.searchParams.set("since", String(this.lastId));
    const socket = new WebSocket(url.href);
    this._socket = socket;
    socket.addEventListener("open", () => {
      // The token goes in the first message, not the URL, so it never lands in access logs.
      socket.send(JSON.stringify({ type: "auth", token: this.client.token }));
      const { types, taskIds } = this.options;
      if (types?.length || taskIds?.length) {
        socket.send(JSON.stringify({ type: "subscribe", types: types ?? [], taskIds: taskIds ?? [] }));
      }
      this._attempt = 0;
      this.connected = true;
      this.dispatchEvent(new CustomEvent("open"));
    });
    socket.addEventListener("message", (message) => this._receive(message.data));
    socket.addEventListener("close", (closing) => {
      this.connected = false;
      this.dispatchEvent(new CustomEvent("close", { detail: { code: closing.code, reason: closing.reason } }));
      // 4401: the token is bad or expired; retrying with it cannot help.
      if (this._closed || closing.code === 4401) return;
      this._attempt += 1;
      this._timer = setTimeout(() => this._connect(), backoffDelay(this._attempt, { base: 1000, cap: 15000 }));
    });
  }

  _receive(data) {
    let envelope;
    try {
      envelope = JSON.parse(data);
    } catch {
      return;
    }
    if (envelope.type === "resync") {
      this.dispatchEvent(new CustomEvent("resync"));
      return;
    }
    if (typeof envelope.id !== "number") return; // pong, errors
    this.lastId = envelope.id;
    this.dispatchEvent(new CustomEvent("event", { detail: envelope }));
    this.dispatchEvent(new CustomEvent(envelope.type, { detail: envelope }));
  }
}
