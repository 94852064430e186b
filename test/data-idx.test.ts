import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { UserError } from "../src/util/errors.js";
import { parseIdx, readIdxGz, writeIdxGz } from "../src/data/idx.js";
import { loadFashionMnist, locateFashionMnist } from "../src/data/fashion-mnist.js";

let tmp = "";
before(() => {
  tmp = mkdtempSync(join(tmpdir(), "distill-idx-"));
});
after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** A fresh empty directory under the test temp dir. */
let dirCount = 0;
function newDir(): string {
  const d = join(tmp, `d${dirCount++}`);
  mkdirSync(d);
  return d;
}

/** Asserts `fn` throws a UserError whose message contains every string in `parts`. */
function throwsUser(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${String(e)}`);
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    assert.ok(!e.message.includes("\n"), "message must be one line");
    return true;
  });
}

/** Raw IDX bytes with the given magic bytes 2..3, dims and payload. */
function rawIdx(type: number, dims: number[], payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + payload.length);
  const v = new DataView(out.buffer);
  out[2] = type;
  out[3] = dims.length;
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  out.set(payload, 4 + 4 * dims.length);
  return out;
}

/** Writes the four Fashion-MNIST files into `dir` with n train / m test images of h×w. */
function writeFixture(dir: string, nTrain: number, nTest: number, h = 28, w = 28): void {
  const split = (n: number, imgName: string, labName: string, seed: number) => {
    const px = new Uint8Array(n * h * w);
    for (let i = 0; i < px.length; i++) px[i] = (i * 7 + seed) % 256;
    px[0] = 255; // first pixel of first image: scales to exactly 1.0
    px[1] = 0;
    const labels = Uint8Array.from({ length: n }, (_, i) => (i + seed) % 10);
    writeIdxGz(join(dir, imgName), [n, h, w], px);
    writeIdxGz(join(dir, labName), [n], labels);
  };
  split(nTrain, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 0);
  split(nTest, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 3);
}

/** Runs `fn` with DISTILL_DATA set to `value` (or unset), restoring it afterwards. */
function withEnv<T>(value: string | undefined, fn: () => T): T {
  const saved = process.env["DISTILL_DATA"];
  try {
    if (value === undefined) delete process.env["DISTILL_DATA"];
    else process.env["DISTILL_DATA"] = value;
    return fn();
  } finally {
    if (saved === undefined) delete process.env["DISTILL_DATA"];
    else process.env["DISTILL_DATA"] = saved;
  }
}

describe("idx", () => {
  test("write/read round trip, gzipped and raw", () => {
    const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => (i * 37) % 256);
    for (const name of ["rt.idx.gz", "rt.idx"]) {
      const p = join(tmp, name);
      writeIdxGz(p, [2, 3, 4], data);
      const t = readIdxGz(p);
      assert.deepEqual(t.dims, [2, 3, 4]);
      assert.deepEqual(Array.from(t.data), Array.from(data));
    }
    // the .gz one really is gzip, the other is raw IDX
    assert.equal(readFileSync(join(tmp, "rt.idx.gz"))[0], 0x1f);
    assert.equal(readFileSync(join(tmp, "rt.idx"))[2], 0x08);
  });

  test("1-D and 4-D tensors", () => {
    assert.deepEqual(parseIdx(rawIdx(8, [3], new Uint8Array([1, 2, 3])), "x").dims, [3]);
    const t = parseIdx(rawIdx(8, [1, 2, 1, 2], new Uint8Array([9, 8, 7, 6])), "x");
    assert.deepEqual(t.dims, [1, 2, 1, 2]);
    assert.deepEqual(Array.from(t.data), [9, 8, 7, 6]);
  });

  test("wrong magic names the file and the magic", () => {
    const p = join(tmp, "bad-magic.idx.gz");
    const buf = rawIdx(8, [2], new Uint8Array([1, 2]));
    buf[0] = 0x12;
    buf[1] = 0x34;
    writeFileSync(p, gzipSync(buf));
    throwsUser(() => readIdxGz(p), p, "magic", "0x12340801", "not an IDX file");
  });

  test("unsupported type code names the file and the code", () => {
    throwsUser(() => parseIdx(rawIdx(0x0d, [1], new Uint8Array(4)), "f.idx"), "f.idx", "0x0d");
  });

  test("bad dimension count", () => {
    throwsUser(() => parseIdx(rawIdx(8, [1, 1, 1, 1, 1], new Uint8Array(1)), "f.idx"), "f.idx", "5");
    throwsUser(() => parseIdx(new Uint8Array([0, 0, 8, 0]), "f.idx"), "f.idx", "0");
  });

  test("truncated gzip", () => {
    const p = join(tmp, "cut.idx.gz");
    writeIdxGz(p, [10, 10], new Uint8Array(100).fill(7));
    const gz = readFileSync(p);
    writeFileSync(p, gz.subarray(0, Math.floor(gz.length / 2)));
    throwsUser(() => readIdxGz(p), p, "truncated or corrupt");
  });

  test("garbage in a .gz file", () => {
    const p = join(tmp, "garbage.idx.gz");
    writeFileSync(p, "this is not gzip");
    throwsUser(() => readIdxGz(p), p, "truncated or corrupt");
  });

  test("data shorter than dims is truncated; longer has trailing bytes", () => {
    const short = rawIdx(8, [2, 3], new Uint8Array(5));
    throwsUser(() => parseIdx(short, "s.idx"), "s.idx", "truncated");
    const headerCut = rawIdx(8, [2, 3], new Uint8Array(0)).subarray(0, 9);
    throwsUser(() => parseIdx(headerCut, "h.idx"), "h.idx", "truncated");
    throwsUser(() => parseIdx(new Uint8Array([0, 0]), "tiny.idx"), "tiny.idx", "truncated");
    const long = rawIdx(8, [2, 3], new Uint8Array(7));
    throwsUser(() => parseIdx(long, "l.idx"), "l.idx", "trailing bytes");
    // via a file as well
    const p = join(tmp, "short.idx.gz");
    writeFileSync(p, gzipSync(short));
    throwsUser(() => readIdxGz(p), p, "truncated");
  });

  test("missing file is a UserError naming it", () => {
    const p = join(tmp, "nope.idx.gz");
    throwsUser(() => readIdxGz(p), p, "not found");
  });

  test("writeIdxGz rejects dims that do not match the data", () => {
    assert.throws(() => writeIdxGz(join(tmp, "x.gz"), [2, 2], new Uint8Array(3)), RangeError);
  });
});

describe("fashion-mnist", () => {
  test("locate order: explicit dir, then DISTILL_DATA, then default", () => {
    const a = newDir();
    const b = newDir();
    const c = newDir();
    writeFixture(a, 2, 1, 2, 2);
    writeFixture(b, 2, 1, 2, 2);
    writeFixture(c, 2, 1, 2, 2);
    withEnv(b, () => {
      assert.equal(locateFashionMnist(a, c), a);
      assert.equal(locateFashionMnist(undefined, c), b);
    });
    withEnv(undefined, () => {
      assert.equal(locateFashionMnist(undefined, c), c);
      assert.equal(locateFashionMnist(a, c), a);
    });
  });

  test("env is restored after locate tests", () => {
    // withEnv restores; a sentinel value survives a round trip
    const saved = process.env["DISTILL_DATA"];
    withEnv("/somewhere", () => assert.equal(process.env["DISTILL_DATA"], "/somewhere"));
    assert.equal(process.env["DISTILL_DATA"], saved);
  });

  test("un-gzipped file names count as found", () => {
    const d = newDir();
    const px = new Uint8Array(2 * 2 * 2).fill(255);
    const lab = new Uint8Array([1, 2]);
    writeIdxGz(join(d, "train-images-idx3-ubyte"), [2, 2, 2], px);
    writeIdxGz(join(d, "train-labels-idx1-ubyte"), [2], lab);
    writeIdxGz(join(d, "t10k-images-idx3-ubyte"), [2, 2, 2], px);
    writeIdxGz(join(d, "t10k-labels-idx1-ubyte"), [2], lab);
    withEnv(undefined, () => assert.equal(locateFashionMnist(undefined, d), d));
    assert.equal(locateFashionMnist(d), d);
    const { train } = loadFashionMnist(d);
    assert.equal(train.images[0], 1);
    assert.deepEqual(Array.from(train.labels), [1, 2]);
  });

  test("explicit dir lacking files names the dir and the file", () => {
    const d = newDir();
    throwsUser(() => locateFashionMnist(d), d, "train-images-idx3-ubyte.gz");
    writeFixture(d, 2, 1, 2, 2);
    rmSync(join(d, "t10k-labels-idx1-ubyte.gz"));
    throwsUser(() => locateFashionMnist(d), d, "t10k-labels-idx1-ubyte.gz");
    const gone = join(tmp, "does-not-exist");
    throwsUser(() => locateFashionMnist(gone), gone);
  });

  test("DISTILL_DATA lacking files names the variable and the dir", () => {
    const d = newDir();
    const c = newDir();
    writeFixture(c, 2, 1, 2, 2);
    withEnv(d, () => throwsUser(() => locateFashionMnist(undefined, c), "DISTILL_DATA", d));
  });

  test("nothing found gives the how-to-get-it message", () => {
    const empty = newDir();
    withEnv(undefined, () =>
      throwsUser(
        () => locateFashionMnist(undefined, empty),
        "Fashion-MNIST not found",
        "--data DIR",
        "DISTILL_DATA",
        "apt-get install dataset-fashion-mnist",
      ),
    );
  });

  test("loads a tiny 4-file fixture with the right shapes, scaling and labels", () => {
    const d = newDir();
    writeFixture(d, 20, 10);
    const { train, test: tst } = loadFashionMnist(d);
    assert.equal(train.n, 20);
    assert.equal(train.height, 28);
    assert.equal(train.width, 28);
    assert.equal(train.images.length, 20 * 28 * 28);
    assert.equal(train.labels.length, 20);
    assert.ok(train.images instanceof Float32Array);
    assert.ok(train.labels instanceof Int32Array);
    assert.equal(tst.n, 10);
    assert.equal(tst.images.length, 10 * 28 * 28);
    assert.equal(train.images[0], 1.0);
    assert.equal(train.images[1], 0);
    // pixel 2 of train is (2*7) % 256 = 14
    assert.equal(train.images[2], Math.fround(14 / 255));
    for (const x of train.images) assert.ok(x >= 0 && x <= 1);
    assert.deepEqual(Array.from(train.labels), Array.from({ length: 20 }, (_, i) => i % 10));
    assert.deepEqual(Array.from(tst.labels), Array.from({ length: 10 }, (_, i) => (i + 3) % 10));
  });

  test("label out of range is a UserError naming the file", () => {
    const d = newDir();
    writeFixture(d, 4, 2, 3, 3);
    const p = join(d, "train-labels-idx1-ubyte.gz");
    writeIdxGz(p, [4], new Uint8Array([0, 1, 12, 3]));
    throwsUser(() => loadFashionMnist(d), p, "label 12", "index 2");
  });

  test("count mismatch and wrong rank are UserErrors", () => {
    const d = newDir();
    writeFixture(d, 4, 2, 3, 3);
    const labels = join(d, "t10k-labels-idx1-ubyte.gz");
    writeIdxGz(labels, [3], new Uint8Array([0, 1, 2]));
    throwsUser(() => loadFashionMnist(d), labels, "3 labels", "2 images");

    const e = newDir();
    writeFixture(e, 4, 2, 3, 3);
    const images = join(e, "train-images-idx3-ubyte.gz");
    writeIdxGz(images, [4, 9], new Uint8Array(36));
    throwsUser(() => loadFashionMnist(e), images, "3-D");

    const f = newDir();
    writeFixture(f, 4, 2, 3, 3);
    const lab2 = join(f, "train-labels-idx1-ubyte.gz");
    writeIdxGz(lab2, [4, 1], new Uint8Array(4));
    throwsUser(() => loadFashionMnist(f), lab2, "1-D");
  });

  test("loadFashionMnist on a dir with a missing file names it", () => {
    const d = newDir();
    writeFixture(d, 2, 1, 2, 2);
    rmSync(join(d, "t10k-images-idx3-ubyte.gz"));
    throwsUser(() => loadFashionMnist(d), d, "t10k-images-idx3-ubyte.gz");
  });
});
