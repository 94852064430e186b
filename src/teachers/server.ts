// STUB (issue 11, part "server-teacher"): the agreed signatures; replaced by the real client.
import type { ExternalTeacher } from "./types.js";
import type { Tokenizer } from "../text/tokenizer.js";

/** `teacher: { server: {...} }` in an LM recipe. */
export interface ServerTeacherSpec {
  /** One base address (http://host:port) or a list to fan out over. */
  url: string | string[];
  model: string;
  /** The environment variable that holds the API key (never printed or stored). */
  apiKeyEnv?: string;
  topK: number;
  /** Requests in flight at once, over all addresses (default 4 per address). */
  concurrency?: number;
  /** Per request, in milliseconds (default 60000). */
  timeoutMs?: number;
  /** Attempts per request before giving up (default 6). */
  maxAttempts?: number;
}

export interface ServerTeacher extends ExternalTeacher {
  /** False for servers that only generate (no prompt log-probabilities, e.g. llama.cpp's). */
  scores: boolean;
  /** The server's continuations of each prompt (token ids), re-tokenized with the recipe's tokenizer. */
  continuations(prompts: Int32Array[], tokens: number, seed: number, sampling?: { temperature?: number; topK?: number; topP?: number }): Promise<Int32Array[]>;
  /** Requests retried so far (for logs and the bench). */
  stats: { requests: number; retries: number };
}

export async function openServerTeacher(_spec: ServerTeacherSpec, _o: { tokenizer: Tokenizer; vocab: number; context: number; field: string }): Promise<ServerTeacher> {
  throw new Error("not implemented");
}
