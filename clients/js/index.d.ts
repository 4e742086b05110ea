// Types of herald's JavaScript client (index.js). Checked with `tsc --noEmit` (tsconfig.json).

/** The connection's state; "closed" is final. */
export type ClientState = "connecting" | "connected" | "disconnected" | "closed";

/**
 * Codes a HeraldError carries: the server's wire codes (PROTOCOL.md), and the client's own.
 * A string, so codes the server adds later still type-check.
 */
export type ErrorCode =
  // from the server
  | "BAD_REQUEST"
  | "TOPIC_NOT_FOUND"
  | "RATE_LIMITED"
  | "PAYLOAD_TOO_LARGE"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "TOKEN_EXPIRED"
  | "SLOW_CONSUMER"
  | "INTERNAL"
  // from the client
  | "QUEUE_FULL" // more than maxQueued publishes waiting for a connection
  | "DISCONNECTED" // the connection was lost after sending, before the answer: the publish may or may not have happened
  | "TIMEOUT" // no answer within `timeout`
  | "CLOSED" // close() was called
  | "UNSUBSCRIBED" // unsubscribe() before the first ack
  | "ALREADY_SUBSCRIBED" // subscribe() twice to one topic on one client
  | "TOPIC_DELETED" // the topic was deleted; the subscription ended
  | "CONNECT_TIMEOUT" // the opening handshake took longer than connectTimeout
  | "HEARTBEAT_TIMEOUT" // nothing heard for 2.5 heartbeat intervals
  | "CONNECT_FAILED" // the WebSocket constructor threw
  | "TOKEN_UNAVAILABLE" // getToken threw
  | (string & {});

/** An error from herald or from the client. */
export class HeraldError extends Error {
  constructor(code: ErrorCode, message?: string, extra?: Record<string, unknown>);
  readonly name: "HeraldError";
  /** The wire code (e.g. "RATE_LIMITED") or the client's (e.g. "QUEUE_FULL"). */
  readonly code: ErrorCode;
  /** The request_id of the frame the server refused, when it answers one. */
  readonly requestId?: string;
  /** The HTTP status of a refused upgrade, when the WebSocket implementation reports it. */
  readonly status?: number;
}

/** What a WebSocket constructor must provide: the browser's, Node 22's, or the `ws` package's. */
export interface WebSocketLike {
  binaryType: string;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onerror: ((ev: any) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface WebSocketConstructor {
  new (url: string): WebSocketLike;
}

export interface ClientOptions {
  /** A JWT sent in-band (`{"type":"auth"}`) right after each connect, before any subscribe. */
  token?: string;
  /** Supplies a token: at the first connect without `token`, on `token_expiring`, and for the connect after a refused token or refresh. */
  getToken?: () => string | Promise<string>;
  /** herald's API_KEY, sent as the `api_key` query parameter (browsers cannot set headers). */
  apiKey?: string;
  /** The WebSocket constructor; defaults to globalThis.WebSocket (browsers, Node >= 22). */
  WebSocket?: WebSocketConstructor | (new (url: string) => unknown);
  /** First reconnect waits a random time up to this (ms); default 250. */
  minDelay?: number;
  /** Ceiling of the doubling reconnect delay (ms); default 20000. */
  maxDelay?: number;
  /** The server's HEARTBEAT_INTERVAL_SECS in ms (default 20000); 2.5 x this in silence reconnects. 0: no watchdog. */
  heartbeatInterval?: number;
  /** An opening handshake longer than this (ms) is abandoned and retried; default 10000. */
  connectTimeout?: number;
  /** A sent publish without an answer this long (ms) rejects with TIMEOUT; default 10000. */
  timeout?: number;
  /** Publishes that may wait for a connection; beyond, publish rejects with QUEUE_FULL. Default 1000. */
  maxQueued?: number;
}

/** What the "state" listener gets besides the state. */
export interface StateDetail {
  /** The close code of the socket that ended (1006: it closed without a close frame). */
  code?: number;
  reason?: string;
  /** Why: the server's error frame (SLOW_CONSUMER, UNAUTHORIZED, ...) or the client's (HEARTBEAT_TIMEOUT, ...). */
  error?: HeraldError;
  /** "disconnected": whether the socket had opened (false: refused or unreachable). */
  opened?: boolean;
  /** "disconnected": milliseconds until the next attempt. */
  delay?: number;
}

/** One delivered message. */
export interface HeraldEvent<T = unknown> {
  topic: string;
  id: string;
  payload: T;
  /** The topic's sequence number; strictly increasing within an epoch. */
  seq: number;
  /** RFC 3339 UTC timestamp with milliseconds. */
  ts: string;
}

/**
 * Messages were missed; reload state elsewhere. Either a resume the server could not complete,
 * or (cluster mode) the server's node telling that it lost events to its backplane's retention.
 */
export interface GapInfo {
  topic: string;
  /** The last seq delivered before the gap (in previousEpoch). */
  lastSeq: number | null;
  /** The topic's epoch now; delivery goes on in it (seq may start again at 1). */
  epoch: string;
  previousEpoch: string | undefined;
  /** Server gap notices only: whatever events lay in fromSeq..toSeq are lost. */
  fromSeq?: number;
  toSeq?: number;
}

export interface SubscribeOptions<T = unknown> {
  /** Replay the last N stored messages first (first subscribe only). */
  lastN?: number;
  /** Start after this seq (first subscribe only), e.g. a position saved across page loads. */
  sinceSeq?: number;
  /** The epoch `sinceSeq` belongs to. */
  epoch?: string;
  onEvent?: (event: HeraldEvent<T>) => void;
  onGap?: (info: GapInfo) => void;
  /** The subscription ended: refused (FORBIDDEN, BAD_REQUEST, ...) or TOPIC_DELETED. */
  onError?: (error: HeraldError) => void;
}

/** The first subscribe ack. */
export interface SubscribeAck {
  /** The topic's latest seq when the subscription took effect. */
  seq: number;
  epoch: string;
  /** Present when a replay was asked for; false when it could not be complete. */
  recovered?: boolean;
}

export class Subscription {
  private constructor();
  /** Resolves with the first ack; rejects when the server refuses the subscription. */
  readonly ready: Promise<SubscribeAck>;
  readonly topic: string;
  /** "subscribing" until the server acks it on the current connection (again after each reconnect). */
  readonly state: "subscribing" | "subscribed" | "unsubscribed";
  /** The last seq delivered (or where the subscription took effect); null before the first ack. */
  readonly lastSeq: number | null;
  readonly epoch: string | undefined;
  unsubscribe(): void;
}

export interface PublishOptions {
  /** The message id; the server assigns a UUID when absent. */
  id?: string;
  /** Overrides the client's `timeout` for this publish (ms, from when it is sent). */
  timeout?: number;
}

/** A server `info` frame other than the heartbeat: topic_deleted, shutting_down, token_expiring. */
export interface InfoFrame {
  type: "info";
  msg: string;
  topic?: string;
  expires_in?: number;
  ts?: string;
}

export class HeraldClient {
  /** Connects at once (after the current synchronous code) and keeps reconnecting until close(). */
  constructor(url: string, options?: ClientOptions);
  readonly state: ClientState;
  on(event: "state", listener: (state: ClientState, detail: StateDetail) => void): () => void;
  on(event: "error", listener: (error: HeraldError) => void): () => void;
  on(event: "info", listener: (frame: InfoFrame) => void): () => void;
  off(event: "state" | "error" | "info", listener: (...args: any[]) => void): void;
  subscribe<T = unknown>(topic: string, options?: SubscribeOptions<T>): Subscription;
  publish(topic: string, payload: unknown, options?: PublishOptions): Promise<{ id: string; seq: number }>;
  close(): void;
}
