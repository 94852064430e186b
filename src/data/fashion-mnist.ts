/**
 * Fashion-MNIST: 60k train and 10k test grayscale 28×28 images in 10 classes, stored as four
 * IDX files (usually gzipped). This module finds the data directory and loads it.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../util/errors.js";
import { readIdxGz, type IdxTensor } from "./idx.js";

export interface ImageSet {
  /** N×H×W, row-major, pixel values scaled to [0, 1]. */
  images: Float32Array;
  /** N class indices in 0..9. */
  labels: Int32Array;
  n: number;
  height: number;
  width: number;
}

/** Where Debian's dataset-fashion-mnist package installs the files. */
export const DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist";

export const NUM_CLASSES = 10;

/** The class names of labels 0..9, as the Fashion-MNIST project lists them. */
export const FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/** The four standard file names, without the `.gz` suffix. */
export const FASHION_MNIST_FILES = {
  trainImages: "train-images-idx3-ubyte",
  trainLabels: "train-labels-idx1-ubyte",
  testImages: "t10k-images-idx3-ubyte",
  testLabels: "t10k-labels-idx1-ubyte",
} as const;

const ALL_FILES = Object.values(FASHION_MNIST_FILES);

const NOT_FOUND =
  "Fashion-MNIST not found: pass --data DIR, set DISTILL_DATA, or install Debian's " +
  "dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or download the four " +
  "*-ubyte.gz files from the Fashion-MNIST project";

/** The path of `base.gz` or `base` in `dir`, whichever exists (gzipped preferred). */
function findFile(dir: string, base: string): string | undefined {
  for (const name of [`${base}.gz`, base]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

function isDir(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** Checks a directory the user named explicitly; throws a UserError naming what is wrong. */
function checkGivenDir(dir: string, what: string): void {
  if (!isDir(dir)) {
    throw new UserError(`${what} ${dir}: no such directory`);
  }
  const missing = ALL_FILES.filter((base) => findFile(dir, base) === undefined);
  if (missing.length > 0) {
    throw new UserError(
      `${what} ${dir}: missing ${missing.map((m) => `${m}.gz`).join(", ")} (gzipped or not)`,
    );
  }
}

/**
 * Finds the Fashion-MNIST directory: the explicit `dataDir` (from `--data DIR` or a recipe)
 * if given, else env DISTILL_DATA if set, else `defaultDir` (Debian's path). An explicit
 * directory or DISTILL_DATA that lacks the files is an error, not a reason to look further.
 * `defaultDir` exists for tests.
 */
export function locateFashionMnist(
  dataDir?: string,
  defaultDir: string = DEBIAN_FASHION_MNIST,
): string {
  if (dataDir !== undefined && dataDir !== "") {
    checkGivenDir(dataDir, "Fashion-MNIST data dir");
    return dataDir;
  }
  const env = process.env["DISTILL_DATA"];
  if (env !== undefined && env !== "") {
    checkGivenDir(env, "DISTILL_DATA");
    return env;
  }
  if (findFile(defaultDir, FASHION_MNIST_FILES.trainImages) !== undefined) {
    return defaultDir;
  }
  throw new UserError(NOT_FOUND);
}

function requireFile(dir: string, base: string): string {
  const p = findFile(dir, base);
  if (p === undefined) {
    throw new UserError(`Fashion-MNIST data dir ${dir}: missing ${base}.gz (gzipped or not)`);
  }
  return p;
}

/** Byte → [0, 1] float, exactly byte/255 rounded to float32. */
const SCALE = Float32Array.from({ length: 256 }, (_, i) => i / 255);

function loadSplit(dir: string, imagesBase: string, labelsBase: string): ImageSet {
  const imagesPath = requireFile(dir, imagesBase);
  const labelsPath = requireFile(dir, labelsBase);
  const img: IdxTensor = readIdxGz(imagesPath);
  const lab: IdxTensor = readIdxGz(labelsPath);
  if (img.dims.length !== 3) {
    throw new UserError(
      `${imagesPath}: expected 3-D images (N×H×W), got dims [${img.dims.join(", ")}]`,
    );
  }
  if (lab.dims.length !== 1) {
    throw new UserError(`${labelsPath}: expected 1-D labels (N), got dims [${lab.dims.join(", ")}]`);
  }
  const [n, height, width] = img.dims as [number, number, number];
  if (n === 0 || height === 0 || width === 0) {
    throw new UserError(`${imagesPath}: empty image set (dims [${img.dims.join(", ")}])`);
  }
  if (lab.dims[0] !== n) {
    throw new UserError(`${labelsPath}: has ${lab.dims[0]} labels but ${imagesPath} has ${n} images`);
  }
  // Shared memory, so training threads read the examples without a copy each.
  const labels = new Int32Array(new SharedArrayBuffer(n * 4));
  for (let i = 0; i < n; i++) {
    const y = lab.data[i]!;
    if (y >= NUM_CLASSES) {
      throw new UserError(
        `${labelsPath}: label ${y} at index ${i} is out of range (expected 0..${NUM_CLASSES - 1})`,
      );
    }
    labels[i] = y;
  }
  const src = img.data;
  const images = new Float32Array(new SharedArrayBuffer(src.length * 4));
  for (let i = 0; i < src.length; i++) images[i] = SCALE[src[i]!]!;
  return { images, labels, n, height, width };
}

/** Loads the train and test splits from `dir` (as returned by `locateFashionMnist`). */
export function loadFashionMnist(dir: string): { train: ImageSet; test: ImageSet } {
  const train = loadSplit(dir, FASHION_MNIST_FILES.trainImages, FASHION_MNIST_FILES.trainLabels);
  const test = loadSplit(dir, FASHION_MNIST_FILES.testImages, FASHION_MNIST_FILES.testLabels);
  if (test.height !== train.height || test.width !== train.width) {
    throw new UserError(
      `Fashion-MNIST data dir ${dir}: test images are ${test.height}×${test.width} ` +
        `but train images are ${train.height}×${train.width}`,
    );
  }
  return { train, test };
}
