/**
 * Fuzzing the meta protocol (`mg ms md ma mn me`, mixed with classic text commands) with a
 * seeded PRNG and bounded counts: see `tests/helpers/fuzz_suite.ts` for what the three tests
 * check.
 */
import { fuzzSuite } from "./helpers/fuzz_suite.ts";

fuzzSuite("meta", 0x3e7a, /MN\r\n$/);
