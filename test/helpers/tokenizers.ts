// A small whitespace BPE with an unknown token ([UNK] = 0), standing in for a real Hugging Face
// tokenizer.json in tests; `withThe` adds t, e, th and the (merges "t h", "th e").
export function tinyWhitespaceBpe(opts: { withThe?: boolean } = {}) {
  const vocab: Record<string, number> = { "[UNK]": 0, h: 1, u: 2, g: 3, s: 4, hu: 5, hug: 6, "!": 7 };
  const merges = ["h u", "hu g"];
  if (opts.withThe) {
    Object.assign(vocab, { t: 8, e: 9, the: 10, th: 11 });
    merges.push("t h", "th e");
  }
  return {
    version: "1.0",
    added_tokens: [{ id: 0, content: "[UNK]", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: "Whitespace" },
    post_processor: null,
    decoder: null,
    model: { type: "BPE", unk_token: "[UNK]", vocab, merges },
  };
}
