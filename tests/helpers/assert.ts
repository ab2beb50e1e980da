/**
 * Typed re-exports of the assertions the tests use. `@std/assert` comes from the `deno-std`
 * npm mirror, which ships no types; these signatures are std's own.
 *
 * @module
 */
import * as std from "@std/assert";

/** Fails unless `actual` deeply equals `expected`. */
export const assertEquals: <T>(actual: T, expected: T, msg?: string) => void = std.assertEquals;
/** Fails when `actual` deeply equals `expected`. */
export const assertNotEquals: <T>(actual: T, expected: T, msg?: string) => void =
  std.assertNotEquals;
/** Fails unless `expr` is truthy. */
export const assert: (expr: unknown, msg?: string) => asserts expr = std.assert;
/** Fails unless `actual` is strictly equal to `expected`. */
export const assertStrictEquals: <T>(actual: unknown, expected: T, msg?: string) => void =
  std.assertStrictEquals;
/** Fails unless `actual` contains `expected`. */
export const assertStringIncludes: (actual: string, expected: string, msg?: string) => void =
  std.assertStringIncludes;
/** Fails unless `actual` matches `expected`. */
export const assertMatch: (actual: string, expected: RegExp, msg?: string) => void =
  std.assertMatch;
/** Fails unless `fn` throws (an instance of `ErrorClass`, when given). */
export const assertThrows: (
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: new (...args: any[]) => Error,
  msgIncludes?: string,
) => Error = std.assertThrows;
/** Fails unless the promise rejects. */
export const assertRejects: (
  fn: () => PromiseLike<unknown>,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: new (...args: any[]) => Error,
  msgIncludes?: string,
) => Promise<Error> = std.assertRejects;
/** Fails unless `actual > expected`. */
export const assertGreater: <T>(actual: T, expected: T, msg?: string) => void = std.assertGreater;
/** Fails unless `actual < expected`. */
export const assertLess: <T>(actual: T, expected: T, msg?: string) => void = std.assertLess;
/** Fails unless `actual <= expected`. */
export const assertLessOrEqual: <T>(actual: T, expected: T, msg?: string) => void =
  std.assertLessOrEqual;
/** Fails unless `actual >= expected`. */
export const assertGreaterOrEqual: <T>(actual: T, expected: T, msg?: string) => void =
  std.assertGreaterOrEqual;
