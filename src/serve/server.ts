// STUB (issue 11, part "serve"): the agreed signatures; replaced by the real server.

export interface ServeOptions {
  /** Default 0: any free port. The server listens on the loopback address only. */
  port?: number;
  /** The largest `logprobs` a request may ask for (default 20, as vLLM). */
  maxLogprobs?: number;
  /** Act like llama.cpp's server: generate, but return no prompt log-probabilities. */
  generateOnly?: boolean;
  /** The model name /v1/models reports (default: the file's base name). */
  name?: string;
}

export interface RunningServer {
  url: string;
  model: string;
  close(): Promise<void>;
}

/** Serves a distill LM checkpoint, a Hugging Face Llama folder or a GGUF file. */
export async function startServer(_modelPath: string, _o: ServeOptions = {}): Promise<RunningServer> {
  throw new Error("not implemented");
}
