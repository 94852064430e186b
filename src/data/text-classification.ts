// Text-classification data: labelled texts from CSV, JSONL, a folder per label, or an npm
// corpus (SpamAssassin, State of the Union), split into train / validation / test by a hash of
// each example, then tokenized into fixed-length rows of ids.
//
// CONTRACT (implemented by the data work):
import type { Examples } from "./batches.js";

export interface LabelledText {
  text: string;
  /** The class name as the source spells it. */
  label: string;
  /** What the split hashes: the text itself, or a group (one SOTU address) so a group never straddles splits. */
  key: string;
  /** "file:line" (or corpus:id) for error messages. */
  where: string;
}

export interface TextSplits {
  /** Class names, in id order (sorted, unless the recipe lists them). */
  classes: string[];
  train: LabelledText[];
  validation: LabelledText[];
  test: LabelledText[];
  /** One line describing the source (what was read, what kept, e.g. which headers). */
  description: string;
}

/** Token rows plus integer labels, as the trainer reads them; `truncated` rows were cut to maxLength. */
export interface EncodedSplit {
  examples: Examples;
  truncated: number;
}
