// The request bodies `distill serve` reads, as OpenAI's and vLLM's servers name them, checked with
// zod; and the error bodies it answers with, in OpenAI's (and current vLLM's) shape, so clients
// written for those servers parse them.
import { z } from "zod";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

const TYPES: Record<number, string> = { 400: "BadRequestError", 404: "NotFoundError", 413: "BadRequestError", 500: "InternalServerError" };

/** `{ error: { message, type, param, code } }` as OpenAI and vLLM answer. */
export function errorBody(status: number, message: string, param: string | null = null) {
  return { error: { message, type: Object.hasOwn(TYPES, status) ? TYPES[status] : "Error", param, code: status } };
}

const tokenIds = z.array(z.number().int().nonnegative()).min(1);
/** A string, a token-id array, or a list of either (OpenAI's four prompt shapes). */
const prompt = z.union([z.string(), tokenIds, z.array(z.string()).min(1), z.array(tokenIds).min(1)]);

const sampling = {
  model: z.string().optional(),
  max_tokens: z.number().int().nonnegative().nullish(),
  temperature: z.number().min(0).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  /** vLLM: 0 or -1 turn it off. */
  top_k: z.number().int().min(-1).nullish(),
  seed: z.number().int().nullish(),
  n: z.literal(1, { message: "only n = 1 is supported" }).nullish(),
  stream: z.literal(false, { message: "streaming is not supported (stream must be false)" }).nullish(),
  /** Accepted: distill's tokenizers have no end-of-sequence token, so generation never stops early. */
  ignore_eos: z.boolean().nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
};

export const CompletionRequest = z.object({
  ...sampling,
  prompt,
  echo: z.boolean().nullish(),
  logprobs: z.number().int().nonnegative().nullish(),
  prompt_logprobs: z.number().int().nonnegative().nullish(),
  return_tokens_as_token_ids: z.boolean().nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

export const ChatRequest = z.object({
  ...sampling,
  messages: z.array(z.object({ role: z.string(), content: z.string() })).min(1),
  max_completion_tokens: z.number().int().positive().nullish(),
  logprobs: z.literal(false, { message: "log-probabilities are served by /v1/completions only" }).nullish(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

export const TokenizeRequest = z.object({ model: z.string().optional(), prompt: z.string(), add_special_tokens: z.boolean().optional() });
export const DetokenizeRequest = z.object({ model: z.string().optional(), tokens: z.array(z.number().int().nonnegative()) });

/** Parses `body` or throws a 400 naming the first bad field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue.path.map(String).join(".");
  throw new HttpError(400, `${where || "body"}: ${issue.message}`, where || null);
}
