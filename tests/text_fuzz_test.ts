/**
 * Fuzzing the text protocol with a seeded PRNG and bounded counts: see
 * `tests/helpers/fuzz_suite.ts` for what the three tests check.
 */
import { fuzzSuite } from "./helpers/fuzz_suite.ts";

fuzzSuite("text", 0x7e47, /VERSION \S+\r\n$/);
