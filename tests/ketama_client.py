"""Client-side ketama over memg with pylibmc, driven by tests/ketama_test.ts.

Usage: /usr/bin/python3 ketama_client.py KEYS SERVER...

Prints one JSON line after loading KEYS keys through one ketama client:
  {"read_back": n, "items": [curr_items per server], "owners": "0120..."}
(owners: the index of the server holding key i, found by asking each server directly).
Then waits for a line on stdin (the test kills a server meanwhile), reads every key again
through the same client, and prints {"outcomes": "hme...", "errors": {name: count}}:
h = hit with the right value, m = miss, e = error raised.
"""
import json
import sys

import pylibmc

BATCH = 1000
# Ketama, and no remapping when a server fails: a failed server stays on the ring (its keys
# fail fast with ServerDown) instead of being removed and its keys moved to the others.
BEHAVIORS = {
    "ketama": True,
    "remove_failed": 0,
    "auto_eject": False,
    "failure_limit": 1,
    "retry_timeout": 60,
    "dead_timeout": 60,
}


def key(i):
    return "key:%d" % i


def value(i):
    return b"value-%d" % i


def main():
    count = int(sys.argv[1])
    servers = sys.argv[2:]
    keys = [key(i) for i in range(count)]
    client = pylibmc.Client(servers, behaviors=BEHAVIORS)
    loader = pylibmc.Client(servers, behaviors=dict(BEHAVIORS, _noreply=True))
    for start in range(0, count, BATCH):
        loader.set_multi({key(i): value(i) for i in range(start, min(start + BATCH, count))})
    read_back = 0
    for start in range(0, count, BATCH):
        got = client.get_multi(keys[start:start + BATCH])
        read_back += sum(1 for i in range(start, min(start + BATCH, count))
                         if got.get(key(i)) == value(i))
    items = []
    owners = ["-"] * count
    for index, server in enumerate(servers):
        single = pylibmc.Client([server])
        items.append(int(single.get_stats()[0][1]["curr_items"]))
        for start in range(0, count, BATCH):
            for k in single.get_multi(keys[start:start + BATCH]):
                owners[int(k[len("key:"):])] = str(index)
    print(json.dumps({"read_back": read_back, "items": items, "owners": "".join(owners)}),
          flush=True)

    sys.stdin.readline()
    outcomes = []
    errors = {}
    for i in range(count):
        try:
            got = client.get(key(i))
            outcomes.append("h" if got == value(i) else "m" if got is None else "?")
        except pylibmc.Error as e:
            outcomes.append("e")
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
    print(json.dumps({"outcomes": "".join(outcomes), "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
