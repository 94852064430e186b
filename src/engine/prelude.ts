// Node 20 compatibility for @jax-js/jax 0.1.25, which targets current browsers.
// - Iterator helpers (`Iterator.prototype.map` etc.) arrived in Node 22; einsum and
//   dotProductAttention call `.map` on iterators.
// - jax-js tests `x instanceof Float16Array`; Node 20 has no such global. The stub must throw
//   when constructed so nothing silently creates an empty half-precision buffer.

const g = globalThis as Record<string, unknown>;

if (typeof g.Float16Array === "undefined") {
  g.Float16Array = class Float16Array {
    constructor() {
      throw new Error("Float16Array is not available in this Node.js version");
    }
  };
}

type AnyIter = Iterator<unknown> & Record<string, unknown>;
const IteratorProto = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())) as AnyIter;

function define(name: string, fn: (this: Iterator<unknown>, ...a: never[]) => unknown): void {
  if (typeof IteratorProto[name] !== "function") {
    Object.defineProperty(IteratorProto, name, { value: fn, writable: true, configurable: true });
  }
}

define("map", function* (this: Iterator<unknown>, f: (v: unknown, i: number) => unknown) {
  let i = 0;
  for (let r = this.next(); !r.done; r = this.next()) yield f(r.value, i++);
} as never);
define("filter", function* (this: Iterator<unknown>, f: (v: unknown, i: number) => boolean) {
  let i = 0;
  for (let r = this.next(); !r.done; r = this.next()) if (f(r.value, i++)) yield r.value;
} as never);
define("take", function* (this: Iterator<unknown>, n: number) {
  if (n <= 0) return;
  let i = 0;
  for (let r = this.next(); !r.done; r = this.next()) {
    yield r.value;
    if (++i >= n) return;
  }
} as never);
define("drop", function* (this: Iterator<unknown>, n: number) {
  let i = 0;
  for (let r = this.next(); !r.done; r = this.next()) if (i++ >= n) yield r.value;
} as never);
define("flatMap", function* (this: Iterator<unknown>, f: (v: unknown, i: number) => Iterable<unknown>) {
  let i = 0;
  for (let r = this.next(); !r.done; r = this.next()) yield* f(r.value, i++);
} as never);
define("toArray", function (this: Iterator<unknown>) {
  const out: unknown[] = [];
  for (let r = this.next(); !r.done; r = this.next()) out.push(r.value);
  return out;
} as never);
define("forEach", function (this: Iterator<unknown>, f: (v: unknown, i: number) => void) {
  let i = 0;
  for (let r = this.next(); !r.done; r = this.next()) f(r.value, i++);
} as never);
define("reduce", function (this: Iterator<unknown>, f: (a: unknown, v: unknown, i: number) => unknown, init?: unknown) {
  let i = 0;
  let acc = init;
  let r = this.next();
  if (arguments.length < 2) {
    if (r.done) throw new TypeError("Reduce of empty iterator with no initial value");
    acc = r.value;
    r = this.next();
    i = 1;
  }
  for (; !r.done; r = this.next()) acc = f(acc, r.value, i++);
  return acc;
} as never);
define("some", function (this: Iterator<unknown>, f: (v: unknown, i: number) => boolean) {
  let i = 0;
  for (let r = this.next(); !r.done; r = this.next()) if (f(r.value, i++)) return true;
  return false;
} as never);
define("every", function (this: Iterator<unknown>, f: (v: unknown, i: number) => boolean) {
  let i = 0;
  for (let r = this.next(); !r.done; r = this.next()) if (!f(r.value, i++)) return false;
  return true;
} as never);
define("find", function (this: Iterator<unknown>, f: (v: unknown, i: number) => boolean) {
  let i = 0;
  for (let r = this.next(); !r.done; r = this.next()) if (f(r.value, i++)) return r.value;
  return undefined;
} as never);

// The Wasm memory jax-js allocates its buffers in (its backend keeps it private): recorded while
// jax-js's module evaluates, which happens right after this one (engine/index.ts imports both,
// in this order, and stops the recording once jax-js has loaded). engine.readInto reads
// device buffers straight out of it.
const NativeMemory = WebAssembly.Memory;
export const createdMemories: WebAssembly.Memory[] = [];
function RecordingMemory(desc: WebAssembly.MemoryDescriptor): WebAssembly.Memory {
  const m = new NativeMemory(desc);
  createdMemories.push(m);
  return m;
}
RecordingMemory.prototype = NativeMemory.prototype;
(WebAssembly as { Memory: unknown }).Memory = RecordingMemory;

export function stopRecordingMemories(): void {
  (WebAssembly as { Memory: unknown }).Memory = NativeMemory;
}
