// distill's character and byte tokenizers written as Hugging Face tokenizer.json files that give
// the same ids, so any HF client (tokenizers, transformers.js, Python transformers) tokenises a
// prompt exactly as distill did in training. An `hf` tokenizer already is one and is written as is.
import type { TokenizerJSON } from "../text/tokenizer.js";

/** Key of config.json under which distill records what Hugging Face's fields cannot say (its spec, its tokenizer). */
export const DISTILL_CONFIG_KEY = "distill";

/**
 * GPT-2's byte ↔ printable-character table (used by every byte-level BPE): printable Latin-1
 * bytes map to themselves, the rest to U+0100 onwards in byte order. Written out here because
 * neither tokenizer library exports it, and the ByteLevel pre-tokenizer and decoder apply it.
 */
export function bytesToUnicode(): string[] {
  const keep = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep(b) ? b : next++);
  return out;
}

/** The unknown token's text for a character vocabulary: U+FFFD (what distill decodes id 0 to) unless the corpus has it. */
export function charUnknownToken(chars: readonly string[]): string {
  return chars.includes("\uFFFD") ? "<unk>" : "\uFFFD";
}

/**
 * tokenizer.json (and what tokenizer_config.json needs) for a distill tokenizer.
 * - char: a BPE model with no merges splits the text into code points (no pre-tokenizer, no
 *   normaliser, so spaces and newlines are characters like any other); code point chars[i] is
 *   id i + 1 and anything else the unknown token, id 0. The Fuse decoder joins tokens with
 *   nothing between them (without a decoder, clients join with spaces); the unknown token
 *   decodes as U+FFFD, like distill's id 0.
 * - byte: the ByteLevel pre-tokenizer without its word-splitting regex maps each UTF-8 byte to
 *   GPT-2's printable character, and the vocabulary gives that character the byte's own value.
 * The unknown token is deliberately not an added token: an added token is matched in the raw
 * text, so a corpus containing the literal "<unk>" would tokenise differently from distill.
 */
export function hfTokenizerFiles(tok: TokenizerJSON): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  const base = { version: "1.0", truncation: null, padding: null, added_tokens: [] as unknown[], normalizer: null, post_processor: null };
  const common = { clean_up_tokenization_spaces: false, tokenizer_class: "PreTrainedTokenizerFast", model_max_length: 1e30 };
  if (tok.kind === "char") {
    const unk = charUnknownToken(tok.chars);
    const vocab: Record<string, number> = Object.create(null);
    vocab[unk] = 0;
    tok.chars.forEach((c, i) => (vocab[c] = i + 1));
    return {
      tokenizer: {
        ...base,
        pre_tokenizer: null,
        model: { type: "BPE", dropout: null, unk_token: unk, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [] },
        // Id 0 decodes as U+FFFD, as in distill; other tokens are single characters, so
        // replacing "<unk>" inside one token touches only the unknown token.
        decoder: unk === "\uFFFD" ? { type: "Fuse" } : { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: unk }, content: "\uFFFD" }, { type: "Fuse" }] },
      },
      config: { ...common, unk_token: unk, bos_token: null, eos_token: null, pad_token: null },
    };
  }
  if (tok.kind === "byte") {
    const vocab: Record<string, number> = Object.create(null);
    bytesToUnicode().forEach((c, b) => (vocab[c] = b));
    return {
      tokenizer: {
        ...base,
        pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
        model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [] },
        decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
      },
      config: { ...common, unk_token: null, bos_token: null, eos_token: null, pad_token: null },
    };
  }
  const json = tok.json as Record<string, unknown>;
  const cfg = (typeof tok.config === "object" && tok.config !== null ? tok.config : {}) as Record<string, unknown>;
  // distill decodes without clean-up unless the config asks for it; say so for clients whose default differs.
  return { tokenizer: json, config: { ...cfg, clean_up_tokenization_spaces: cfg.clean_up_tokenization_spaces === true } };
}
