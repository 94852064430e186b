import { setFlagsFromString } from "node:v8";

// Fused multiply-add. jax-js emits `f32x4.relaxed_madd` in its matrix products when the engine
// validates a relaxed-SIMD module; Node 20's V8 keeps relaxed SIMD behind a flag, which must be
// set before the first Wasm module is compiled (so here, not in NODE_OPTIONS, which Node
// refuses for V8 flags it does not list). FMA rounds once instead of twice: results differ from
// the plain path in the last bits, so the setting is part of every checkpoint's hash.
// DISTILL_RELAXED_SIMD=0 keeps the plain path.

// jax-js's own probe (featureProbe.ts): a function whose body is one f32x4.relaxed_madd.
const RELAXED_MADD_PROBE = new Uint8Array(
  "0061736d0100000001080160037b7b7b017b030201000a0d010b00200020012002fd85020b".match(/../g)!.map((h) => parseInt(h, 16)),
);
// @types/node 20 does not declare WebAssembly.validate.
const validate = (WebAssembly as unknown as { validate(bytes: Uint8Array): boolean }).validate;
const relaxedWanted = process.env.DISTILL_RELAXED_SIMD !== "0";
if (relaxedWanted && !validate(RELAXED_MADD_PROBE)) setFlagsFromString("--experimental-wasm-relaxed-simd");
if (!relaxedWanted && validate(RELAXED_MADD_PROBE)) setFlagsFromString("--no-experimental-wasm-relaxed-simd");
/** Whether the engine's products use fused multiply-add (relaxed SIMD), as jax-js will see it. */
export const relaxedSimd: boolean = validate(RELAXED_MADD_PROBE);
