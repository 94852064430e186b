// Adam(W) over flat float32 vectors in shared WebAssembly memory, with 128-bit SIMD: the
// optimiser step of data-parallel training (train/replicas.ts), where each replica updates its
// own part of the parameters. jax-js's element-wise Wasm kernels run sqrt and divide one lane at
// a time and a plain JavaScript loop is no faster, so this one small kernel is written by hand,
// as bytes: no maintained package assembles a 200-byte module without shipping a toolchain.
//
// The function, in WebAssembly text format:
//   (func (export "adam") (param $p $m $v $g $stride $slots $count i32)
//         (param $invN $l2 $b1 $b2 $lr $invSqrtBc2 $eps $decay f32)
//     for i in 0, 16, ..., 4·count - 16 (bytes):
//       acc = g[i] + g[i + stride] + ... (slots terms, in slot order)
//       grad = acc·invN + l2·p[i]
//       m[i] = b1·m[i] + (1−b1)·grad
//       v[i] = b2·v[i] + (1−b2)·grad·grad
//       p[i] = (p[i] − p[i]·decay) − m[i]·lr / (sqrt(v[i])·invSqrtBc2 + eps))
// All offsets are byte addresses, 16-byte aligned; count is a multiple of 4.

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
const name = (s: string): number[] => [...leb(s.length), ...[...s].map((c) => c.charCodeAt(0))];

// Opcodes.
const get = (i: number) => [0x20, ...leb(i)];
const set = (i: number) => [0x21, ...leb(i)];
const tee = (i: number) => [0x22, ...leb(i)];
const i32c = (n: number) => [0x41, ...leb(n)];
const f32c = (x: number) => [0x43, ...new Uint8Array(new Float32Array([x]).buffer)];
const simd = (op: number) => [0xfd, ...leb(op)];
const load = [...simd(0x00), 4, 0];
const store = [...simd(0x0b), 4, 0];
const splat = simd(0x13);
const [sqrt, add, sub, mul, div] = [0xe3, 0xe4, 0xe5, 0xe6, 0xe7].map(simd);
const [i32add, i32shl, i32geu, f32sub] = [[0x6a], [0x74], [0x4f], [0x93]];
const [block, loop, end] = [[0x02, 0x40], [0x03, 0x40], [0x0b]];
const br = (d: number) => [0x0c, d];
const brIf = (d: number) => [0x0d, d];

// Parameters 0–14, then locals: i, r, q (i32); acc, grad, p, m, v and the splatted scalars (v128).
const [P, M, V, G, STRIDE, SLOTS, COUNT, INVN, L2, B1, B2, LR, ISB, EPS, DECAY] = Array.from({ length: 15 }, (_, i) => i);
const [I, R, Q, ACC, GRAD, PV, MV, VV] = [15, 16, 17, 18, 19, 20, 21, 22];
const [S_INVN, S_L2, S_B1, S_1B1, S_B2, S_1B2, S_LR, S_ISB, S_EPS, S_DECAY] = Array.from({ length: 10 }, (_, i) => 23 + i);

function body(): number[] {
  const at = (base: number) => [...get(base), ...get(I), ...i32add];
  const code = [
    ...get(INVN), ...splat, ...set(S_INVN),
    ...get(L2), ...splat, ...set(S_L2),
    ...get(B1), ...splat, ...set(S_B1),
    ...f32c(1), ...get(B1), ...f32sub, ...splat, ...set(S_1B1),
    ...get(B2), ...splat, ...set(S_B2),
    ...f32c(1), ...get(B2), ...f32sub, ...splat, ...set(S_1B2),
    ...get(LR), ...splat, ...set(S_LR),
    ...get(ISB), ...splat, ...set(S_ISB),
    ...get(EPS), ...splat, ...set(S_EPS),
    ...get(DECAY), ...splat, ...set(S_DECAY),
    ...get(COUNT), ...i32c(2), ...i32shl, ...set(COUNT),
    ...i32c(0), ...set(I),
    ...block, ...loop,
    ...get(I), ...get(COUNT), ...i32geu, ...brIf(1),
    // acc = Σ_slots g
    ...at(G), ...tee(Q), ...load, ...set(ACC),
    ...i32c(1), ...set(R),
    ...block, ...loop,
    ...get(R), ...get(SLOTS), ...i32geu, ...brIf(1),
    ...get(Q), ...get(STRIDE), ...i32add, ...tee(Q), ...load, ...get(ACC), ...add, ...set(ACC),
    ...get(R), ...i32c(1), ...i32add, ...set(R),
    ...br(0), ...end, ...end,
    // grad = acc·invN + l2·p
    ...at(P), ...load, ...set(PV),
    ...get(ACC), ...get(S_INVN), ...mul, ...get(S_L2), ...get(PV), ...mul, ...add, ...set(GRAD),
    // m, v
    ...at(M), ...at(M), ...load, ...get(S_B1), ...mul, ...get(GRAD), ...get(S_1B1), ...mul, ...add, ...tee(MV), ...store,
    ...at(V), ...at(V), ...load, ...get(S_B2), ...mul, ...get(GRAD), ...get(GRAD), ...mul, ...get(S_1B2), ...mul, ...add, ...tee(VV), ...store,
    // p
    ...at(P),
    ...get(PV), ...get(PV), ...get(S_DECAY), ...mul, ...sub,
    ...get(MV), ...get(S_LR), ...mul,
    ...get(VV), ...sqrt, ...get(S_ISB), ...mul, ...get(S_EPS), ...add,
    ...div, ...sub, ...store,
    ...get(I), ...i32c(16), ...i32add, ...set(I),
    ...br(0), ...end, ...end,
    ...end,
  ];
  const locals = vec([
    [...leb(3), I32],
    [...leb(15), V128],
  ]);
  const b = [...locals, ...code];
  return [...leb(b.length), ...b];
}

function moduleBytes(): Uint8Array {
  const type = [0x60, ...vec([...Array(7).fill([I32]), ...Array(8).fill([F32])]), ...vec([])];
  // Imported memory "e"."m": shared, min 1 page, max 65536 pages.
  const memImport = [...name("e"), ...name("m"), 0x02, 0x03, ...leb(1), ...leb(65536)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([type])),
    ...section(2, vec([memImport])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name("adam"), 0x00, 0]])),
    ...section(10, vec([body()])),
  ]);
}

let compiled: WebAssembly.Module | null = null;

export interface AdamKernelArgs {
  /** Byte offsets of the parameters, m, v and the first gradient slot. */
  p: number;
  m: number;
  v: number;
  g: number;
  /** Bytes from one gradient slot to the next, and how many slots to sum. */
  stride: number;
  slots: number;
  /** Elements to update (a multiple of 4). */
  count: number;
  invN: number;
  l2: number;
  b1: number;
  b2: number;
  lr: number;
  invSqrtBc2: number;
  eps: number;
  decay: number;
}

/** The kernel bound to `memory` (shared; every thread instantiates its own). */
export function adamKernel(memory: WebAssembly.Memory): (a: AdamKernelArgs) => void {
  compiled ??= new WebAssembly.Module(moduleBytes());
  const inst = new WebAssembly.Instance(compiled, { e: { m: memory } });
  const f = inst.exports.adam as (...a: number[]) => void;
  return (a) => f(a.p, a.m, a.v, a.g, a.stride, a.slots, a.count, a.invN, a.l2, a.b1, a.b2, a.lr, a.invSqrtBc2, a.eps, a.decay);
}
