// `await using` needs Symbol.asyncDispose (Node 20.4+ and 22 have it; older
// runtimes get the well-known symbol TypeScript's output looks up).
const S = Symbol as unknown as { asyncDispose?: symbol };
if (typeof S.asyncDispose !== "symbol") {
  Object.defineProperty(Symbol, "asyncDispose", { value: Symbol.for("Symbol.asyncDispose") });
}
export {};
