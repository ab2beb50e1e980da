/**
 * The fuzz suite shared by the text and meta protocols (generators and harnesses in
 * `bench/fuzz.ts`, whose `--parser` long runs repeat these checks for minutes):
 * - a valid command stream gets byte-identical replies through the real `Connection` loop
 *   however it is split;
 * - random, mutated and truncated input, split anywhere, never makes the codec throw, is
 *   answered with whole replies only, and leaves no store item allocated;
 * - over real sockets, hostile connections never disturb a well-behaved one, and the server
 *   ends with only the well-behaved connection open.
 *
 * @module
 */
import { assert, assertEquals, assertGreater } from "./assert.ts";
import { startMemg } from "./server.ts";
import {
  checkRoundTrip,
  equal,
  freshCache,
  FUZZ_ARGS,
  hostileConnection,
  hostileInput,
  int,
  leakedChunks,
  prng,
  runCodec,
  serveConnection,
  split,
  statBecomes,
  text,
  textRepliesProblem,
  validStream,
} from "../../bench/fuzz.ts";

/**
 * Registers the three fuzz tests for `parser`, seeded with `seed`; `endsWell` matches the end
 * of the replies to a whole valid stream.
 */
export function fuzzSuite(parser: "text" | "meta", seed: number, endsWell: RegExp): void {
  Deno.test(`${parser} fuzz: a valid stream split anywhere gets identical replies`, async () => {
    const rng = prng(seed);
    for (let stream = 0; stream < 40; stream++) {
      const bytes = validStream(parser, rng, 5 + int(rng, 40));
      const whole = await serveConnection([bytes]);
      assertEquals(textRepliesProblem(whole), null, `stream ${stream}: garbled replies`);
      assert(endsWell.test(text(whole)), `stream ${stream}: not answered to the end`);
      for (let cut = 0; cut < 5; cut++) {
        const got = await serveConnection(split(rng, bytes));
        assert(equal(got, whole), `stream ${stream}, split ${cut}: replies differ`);
      }
    }
  });

  Deno.test(`${parser} fuzz: hostile input never throws, gets whole replies, leaks no item`, async () => {
    const rng = prng(seed ^ 0xabcdef);
    const endings = { eof: 0, close: 0, abort: 0 };
    let cache = freshCache();
    for (let round = 0; round < 2500; round++) {
      const input = hostileInput(rng, parser);
      const run = await runCodec(parser, split(rng, input), cache);
      endings[run.ending]++;
      assertEquals(textRepliesProblem(run.sent), null, `round ${round}`);
      if (round % 500 === 499) {
        assertEquals(leakedChunks(cache), 0, `round ${round}: chunks left allocated`);
        cache = freshCache();
      }
    }
    // the corpus reaches every way a connection ends
    assertGreater(endings.eof, 1000);
    assertGreater(endings.abort, 50);
    assertGreater(endings.close, 5);
  });

  Deno.test(`${parser} fuzz: hostile connections never disturb a well-behaved one`, async () => {
    const rng = prng(seed ^ 0x777);
    const memg = startMemg(FUZZ_ARGS);
    const good = await Deno.connect({ hostname: "127.0.0.1", port: memg.port });
    try {
      for (let round = 0; round < 200; round++) {
        await hostileConnection(memg.port, rng, hostileInput(rng, parser));
        memg.server.cache.config.verbose = 0; // a fuzzed `verbosity` must not make the server chatty
        await checkRoundTrip(good, parser, rng, round);
      }
      // once the hostile connections are gone, only the well-behaved one and the probe are left
      assertEquals(await statBecomes(memg.port, "curr_connections", "2"), "2");
    } finally {
      good.close();
      await memg.close();
    }
  });
}
