/*
 * loadgen: the load generator behind `deno task bench` (bench/run.ts builds it with cc -O2).
 *
 * One thread, one epoll loop, N non-blocking TCP connections to one memcached-compatible
 * server. Each connection keeps up to `--depth` requests in flight (pipelining); requests are
 * sets and gets of fixed-size values over a key space of `--keys` keys named "key:%08u", in a
 * random `--sets`:`--gets` mix. `--preload` first sets every key once (pipelined), so later
 * gets must hit. Then an optional `--warmup`, then a measured window of `--duration` seconds
 * (or `--ops` operations). With `--rate R` the generator is open-loop: R requests per second
 * in total are scheduled round-robin over the connections and each latency is measured from
 * the request's scheduled time (so a slow server cannot hide queueing delay).
 * `late_sends` counts the measured requests the generator itself wrote over 200 µs late.
 *
 * Every reply is parsed and checked against the request it answers: set -> STORED; get ->
 * the requested key, flags (key & 0xffff), length and the exact value bytes the preload wrote
 * (or END / "not found" = a miss). Anything else counts as an error and the first one is
 * quoted. A desynchronised stream, a closed connection or a stall aborts with "fatal".
 *
 * Latency (ns) goes into a log-bucketed histogram (64 sub-buckets per power of two, < 1.6 %
 * error). The result is one JSON line on stdout, including the generator's own CPU use during
 * the measured window (getrusage), so the caller can tell whether the generator was the
 * bottleneck. Exit status: 0 if no fatal error, 1 otherwise, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RING 256 /* requests a connection can hold (in flight + scheduled); power of two */
#define MAX_DEPTH 128
#define PRELOAD_DEPTH 32
#define PRELOAD_WINDOW_BYTES (256 * 1024)
#define KEY_DIGITS 8
#define KEY_LEN (4 + KEY_DIGITS)
#define MAX_KEYS 100000000u
#define PATTERN_PERIOD 89
#define STALL_NS (10ull * 1000000000ull)
#define DRAIN_NS (5ull * 1000000000ull)
#define MAX_EVENTS 1024
/* With --rate: a request written this long after its scheduled time was sent late (the
 * generator's own delay, counted in its latency like the server's). */
#define LATE_NS 200000ull

enum { OP_GET = 0, OP_SET = 1 };
enum { PH_PRELOAD, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

/* ---------- options ---------- */

static struct {
  const char *host;
  int port;
  int conns;
  int depth;
  unsigned sets, gets;
  int value_size;
  uint32_t keys;
  int preload;
  double duration;
  uint64_t ops;
  double warmup;
  double rate;
  int binary;
  int verify_full;
  double timeout;
  uint64_t seed;
} opt = {"127.0.0.1", 11211, 1, 1, 1, 10, 100, 1000, 0, 10, 0, 0, 0, 0, 1, 600, 42};

/* ---------- clock, random ---------- */

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state;
static inline uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

/* ---------- histogram ---------- */

#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define HBUCKETS (SUB * 60)

static uint64_t hist[HBUCKETS];
static uint64_t hist_count, hist_max;
static double hist_sum;

static inline unsigned bucket_of(uint64_t v) {
  if (v < 2 * SUB) return (unsigned)v;
  unsigned e = (unsigned)(63 - __builtin_clzll(v)) - SUB_BITS;
  return e * SUB + (unsigned)(v >> e);
}

/* The largest value that falls in bucket b. */
static uint64_t bucket_high(unsigned b) {
  if (b < 2 * SUB) return b;
  unsigned e = b / SUB - 1;
  uint64_t m = b - e * SUB;
  return ((m + 1) << e) - 1;
}

static inline void record(uint64_t ns) {
  hist[bucket_of(ns)]++;
  hist_count++;
  hist_sum += (double)ns;
  if (ns > hist_max) hist_max = ns;
}

/* The q-quantile in microseconds (upper edge of its bucket, never above the maximum). */
static double quantile_us(double q) {
  if (hist_count == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)hist_count + 0.5);
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (unsigned b = 0; b < HBUCKETS; b++) {
    seen += hist[b];
    if (seen >= rank) {
      uint64_t v = bucket_high(b);
      return (double)(v < hist_max ? v : hist_max) / 1000.0;
    }
  }
  return (double)hist_max / 1000.0;
}

/* ---------- results ---------- */

static struct {
  uint64_t ops, sets, gets, hits, misses, errors, overruns;
  /* Rate-limited measured requests written more than LATE_NS after their scheduled time. */
  uint64_t late_sends;
  uint64_t preload_acked;
  char first_error[160];
  char fatal[200];
} res;

static uint64_t t_begin, t_preload_end, t_measure_start, t_measure_end;
static struct rusage ru_begin, ru_preload, ru_start, ru_end;

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') printf("\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f) printf("\\u%04x", ch);
    else putchar(ch);
  }
  putchar('"');
}

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

static void report(void) {
  double window = t_measure_end > t_measure_start ? (double)(t_measure_end - t_measure_start) / 1e9 : 0;
  double user = tv_s(ru_end.ru_utime) - tv_s(ru_start.ru_utime);
  double sys = tv_s(ru_end.ru_stime) - tv_s(ru_start.ru_stime);
  double pre = t_preload_end > t_begin ? (double)(t_preload_end - t_begin) / 1e9 : 0;
  double pre_cpu = tv_s(ru_preload.ru_utime) - tv_s(ru_begin.ru_utime) +
                   tv_s(ru_preload.ru_stime) - tv_s(ru_begin.ru_stime);
  printf("{\"protocol\":\"%s\",\"conns\":%d,\"depth\":%d,\"value_size\":%d,\"keys\":%u,",
         opt.binary ? "binary" : "text", opt.conns, opt.depth, opt.value_size, opt.keys);
  printf("\"preload_keys\":%llu,\"preload_s\":%.3f,\"preload_ops_per_sec\":%.0f,"
         "\"preload_cpu_pct\":%.1f,",
         (unsigned long long)res.preload_acked, pre, pre > 0 ? (double)res.preload_acked / pre : 0,
         pre > 0 ? 100.0 * pre_cpu / pre : 0);
  printf("\"rate_target\":%.0f,\"duration_s\":%.3f,\"ops\":%llu,\"ops_per_sec\":%.0f,", opt.rate,
         window, (unsigned long long)res.ops, window > 0 ? (double)res.ops / window : 0);
  printf("\"sets\":%llu,\"gets\":%llu,\"hits\":%llu,\"misses\":%llu,\"errors\":%llu,"
         "\"overruns\":%llu,\"late_sends\":%llu,",
         (unsigned long long)res.sets, (unsigned long long)res.gets,
         (unsigned long long)res.hits, (unsigned long long)res.misses,
         (unsigned long long)res.errors, (unsigned long long)res.overruns,
         (unsigned long long)res.late_sends);
  printf("\"mean_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
         "\"max_us\":%.1f,",
         hist_count ? hist_sum / (double)hist_count / 1000.0 : 0, quantile_us(0.50),
         quantile_us(0.90), quantile_us(0.99), quantile_us(0.999), (double)hist_max / 1000.0);
  printf("\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_pct\":%.1f,", user, sys,
         window > 0 ? 100.0 * (user + sys) / window : 0);
  printf("\"first_error\":");
  json_str(res.first_error);
  if (res.fatal[0]) {
    printf(",\"fatal\":");
    json_str(res.fatal);
  }
  printf("}\n");
  fflush(stdout);
}

static void fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res.fatal, sizeof res.fatal, fmt, ap);
  va_end(ap);
  if (t_measure_end == 0) t_measure_end = t_measure_start ? now_ns() : 0;
  getrusage(RUSAGE_SELF, &ru_end);
  report();
  exit(1);
}

/* Counts a wrong reply; keeps a printable copy of the first one. */
static void bad_reply(const char *what, const uint8_t *p, size_t n) {
  res.errors++;
  if (res.first_error[0]) return;
  size_t w = (size_t)snprintf(res.first_error, sizeof res.first_error, "%s: ", what);
  for (size_t i = 0; i < n && w + 5 < sizeof res.first_error; i++) {
    uint8_t ch = p[i];
    if (ch >= 0x20 && ch < 0x7f) res.first_error[w++] = (char)ch;
    else w += (size_t)snprintf(res.first_error + w, sizeof res.first_error - w, "\\x%02x", ch);
  }
  res.first_error[w] = 0;
}

/* ---------- values ---------- */

/* The value of key k is pattern + k % PATTERN_PERIOD, value_size bytes. */
static uint8_t *pattern;

static inline const uint8_t *value_of(uint32_t k) { return pattern + k % PATTERN_PERIOD; }
static inline uint32_t flags_of(uint32_t k) { return k & 0xffff; }

static inline uint8_t *put_key(uint8_t *p, uint32_t k) {
  memcpy(p, "key:", 4);
  for (int i = KEY_LEN - 1; i >= 4; i--) {
    p[i] = (uint8_t)('0' + k % 10);
    k /= 10;
  }
  return p + KEY_LEN;
}

static inline uint8_t *put_uint(uint8_t *p, uint32_t v) {
  uint8_t tmp[10];
  int n = 0;
  do {
    tmp[n++] = (uint8_t)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

static inline void put_be16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static inline uint32_t get_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* ---------- connections ---------- */

typedef struct {
  uint64_t t0;
  uint32_t key;
  uint8_t op;
} req_t;

typedef struct {
  int fd;
  int polling_out;
  /* Monotonic counters into ring: [head, sent) in flight, [sent, tail) not yet sent. */
  uint32_t head, sent, tail;
  req_t ring[RING];
  uint8_t *wbuf;
  size_t woff, wlen;
  uint8_t *rbuf;
  size_t rlen;
} conn_t;

static conn_t *conns;
static int epfd;
static size_t wcap, rcap, max_request;
static int phase = PH_PRELOAD;
static uint32_t next_preload_key;
static int preload_depth;
static uint64_t inflight_total;
static uint64_t last_progress;

static size_t encode(uint8_t *p, uint32_t seq, const req_t *r) {
  uint8_t *s = p;
  if (!opt.binary) {
    if (r->op == OP_GET) {
      memcpy(p, "get ", 4);
      p = put_key(p + 4, r->key);
      *p++ = '\r';
      *p++ = '\n';
    } else {
      memcpy(p, "set ", 4);
      p = put_key(p + 4, r->key);
      *p++ = ' ';
      p = put_uint(p, flags_of(r->key));
      memcpy(p, " 0 ", 3);
      p = put_uint(p + 3, (uint32_t)opt.value_size);
      *p++ = '\r';
      *p++ = '\n';
      memcpy(p, value_of(r->key), (size_t)opt.value_size);
      p += opt.value_size;
      *p++ = '\r';
      *p++ = '\n';
    }
    return (size_t)(p - s);
  }
  int set = r->op == OP_SET;
  uint32_t extlen = set ? 8 : 0;
  uint32_t body = extlen + KEY_LEN + (set ? (uint32_t)opt.value_size : 0);
  memset(p, 0, 24);
  p[0] = 0x80;
  p[1] = set ? 0x01 : 0x00;
  put_be16(p + 2, KEY_LEN);
  p[4] = (uint8_t)extlen;
  put_be32(p + 8, body);
  put_be32(p + 12, seq);
  p += 24;
  if (set) {
    put_be32(p, flags_of(r->key));
    put_be32(p + 4, 0);
    p += 8;
  }
  p = put_key(p, r->key);
  if (set) {
    memcpy(p, value_of(r->key), (size_t)opt.value_size);
    p += opt.value_size;
  }
  return (size_t)(p - s);
}

static void set_out(conn_t *c, int on) {
  if (c->polling_out == on) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) fatal("epoll_ctl: %s", strerror(errno));
  c->polling_out = on;
}

static void try_write(conn_t *c) {
  while (c->woff < c->wlen) {
    ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        set_out(c, 1);
        return;
      }
      if (errno == EINTR) continue;
      fatal("send: %s", strerror(errno));
    }
    c->woff += (size_t)n;
  }
  c->woff = c->wlen = 0;
  set_out(c, 0);
}

static inline int depth_now(void) { return phase == PH_PRELOAD ? preload_depth : opt.depth; }

/* Encodes every request that may go out now (in-flight limit) and writes them in one go. */
static void send_queued(conn_t *c, uint64_t now) {
  int limit = depth_now();
  if (c->sent == c->tail || (int)(c->sent - c->head) >= limit) return;
  if (c->woff > 0) {
    memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
    c->wlen -= c->woff;
    c->woff = 0;
  }
  while (c->sent != c->tail && (int)(c->sent - c->head) < limit) {
    req_t *r = &c->ring[c->sent & (RING - 1)];
    if (opt.rate == 0 || phase == PH_PRELOAD) r->t0 = now;
    else if (phase == PH_MEASURE && now > r->t0 + LATE_NS) res.late_sends++;
    if (c->wlen + max_request > wcap) fatal("write buffer overflow (bug)");
    c->wlen += encode(c->wbuf + c->wlen, c->sent, r);
    c->sent++;
    inflight_total++;
  }
  if (!c->polling_out) try_write(c);
}

static inline void enqueue(conn_t *c, uint32_t key, int op, uint64_t t0) {
  req_t *r = &c->ring[c->tail & (RING - 1)];
  r->key = key;
  r->op = (uint8_t)op;
  r->t0 = t0;
  c->tail++;
}

static inline int pick_op(void) {
  return rng() % (opt.sets + opt.gets) < opt.sets ? OP_SET : OP_GET;
}

/* Closed-loop refill: keep the connection's window full of new requests. */
static void refill(conn_t *c) {
  if (phase == PH_PRELOAD) {
    while ((int)(c->tail - c->head) < preload_depth && next_preload_key < opt.keys)
      enqueue(c, next_preload_key++, OP_SET, 0);
  } else if ((phase == PH_WARMUP || phase == PH_MEASURE) && opt.rate == 0) {
    while ((int)(c->tail - c->head) < opt.depth)
      enqueue(c, (uint32_t)(rng() % opt.keys), pick_op(), 0);
  }
}

static void complete(const req_t *r, uint64_t now) {
  if (phase == PH_PRELOAD) {
    res.preload_acked++;
  } else if (phase == PH_MEASURE) {
    record(now > r->t0 ? now - r->t0 : 0);
    res.ops++;
    if (r->op == OP_SET) res.sets++;
    else res.gets++;
  }
}

/* Text reply to r at p (n bytes available): bytes consumed, 0 if incomplete. */
static size_t parse_text(const req_t *r, const uint8_t *p, size_t n) {
  const uint8_t *nl = memchr(p, '\n', n);
  if (!nl) {
    if (n > 4096 && r->op == OP_SET) fatal("reply line longer than 4096 bytes");
    return 0;
  }
  size_t line = (size_t)(nl - p) + 1;
  if (r->op == OP_SET) {
    if (line != 8 || memcmp(p, "STORED\r\n", 8) != 0) bad_reply("set", p, line);
    return line;
  }
  if (line == 5 && memcmp(p, "END\r\n", 5) == 0) {
    res.misses++;
    return line;
  }
  if (line < 6 || memcmp(p, "VALUE ", 6) != 0) {
    bad_reply("get", p, line);
    return line;
  }
  uint8_t key[KEY_LEN];
  put_key(key, r->key);
  if (line < 6 + KEY_LEN + 1 || memcmp(p + 6, key, KEY_LEN) != 0 || p[6 + KEY_LEN] != ' ')
    fatal("get %.*s answered for another key: %.*s", KEY_LEN, key, (int)(line - 2), p);
  const uint8_t *q = p + 6 + KEY_LEN + 1, *end = p + line - 2;
  uint64_t flags = 0, len = 0;
  while (q < end && *q >= '0' && *q <= '9') flags = flags * 10 + (uint64_t)(*q++ - '0');
  if (q >= end || *q++ != ' ') fatal("bad VALUE line: %.*s", (int)(line - 2), p);
  while (q < end && *q >= '0' && *q <= '9') len = len * 10 + (uint64_t)(*q++ - '0');
  if (len > (uint64_t)rcap) fatal("VALUE length %llu too large", (unsigned long long)len);
  if (line + len + 7 > n) return 0;
  const uint8_t *data = p + line;
  if (memcmp(data + len, "\r\nEND\r\n", 7) != 0) fatal("get reply not terminated by END");
  if (len != (uint64_t)opt.value_size) {
    bad_reply("get: wrong length", p, line);
  } else if (opt.verify_full &&
             (flags != flags_of(r->key) || memcmp(data, value_of(r->key), len) != 0)) {
    bad_reply("get: wrong flags or value", p, line);
  } else {
    res.hits++;
  }
  return line + (size_t)len + 7;
}

/* Binary reply to request number seq at p: bytes consumed, 0 if incomplete. */
static size_t parse_binary(const req_t *r, uint32_t seq, const uint8_t *p, size_t n) {
  if (n < 24) return 0;
  if (p[0] != 0x81) fatal("binary reply with magic 0x%02x", p[0]);
  uint32_t body = get_be32(p + 8);
  if (body > rcap) fatal("binary reply body %u too large", body);
  if (24 + (size_t)body > n) return 0;
  uint8_t opcode = p[1];
  uint16_t status = get_be16(p + 6), keylen = get_be16(p + 2);
  uint8_t extlen = p[4];
  if (opcode != (r->op == OP_SET ? 0x01 : 0x00) || get_be32(p + 12) != seq)
    fatal("binary reply out of order (opcode 0x%02x, opaque %u, expected %u)", opcode,
          get_be32(p + 12), seq);
  const uint8_t *b = p + 24;
  if (status != 0) {
    if (r->op == OP_GET && status == 0x0001) res.misses++;
    else bad_reply("binary status", b, body);
  } else if (r->op == OP_SET) {
    if (body != 0) bad_reply("binary set: unexpected body", b, body);
  } else if (extlen != 4 || keylen != 0 || body != 4u + (uint32_t)opt.value_size) {
    bad_reply("binary get: wrong extras or length", p, 24);
  } else if (opt.verify_full && (get_be32(b) != flags_of(r->key) ||
                                 memcmp(b + 4, value_of(r->key), (size_t)opt.value_size) != 0)) {
    bad_reply("binary get: wrong flags or value", b, 4);
  } else {
    res.hits++;
  }
  return 24 + (size_t)body;
}

static void on_readable(conn_t *c, uint64_t now) {
  ssize_t n = read(c->fd, c->rbuf + c->rlen, rcap - c->rlen);
  if (n == 0) fatal("server closed a connection");
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    fatal("read: %s", strerror(errno));
  }
  c->rlen += (size_t)n;
  last_progress = now;
  size_t pos = 0;
  while (c->head != c->sent) {
    const req_t *r = &c->ring[c->head & (RING - 1)];
    size_t used = opt.binary ? parse_binary(r, c->head, c->rbuf + pos, c->rlen - pos)
                             : parse_text(r, c->rbuf + pos, c->rlen - pos);
    if (used == 0) break;
    pos += used;
    complete(r, now);
    c->head++;
    inflight_total--;
  }
  if (c->head == c->sent && pos < c->rlen)
    fatal("server sent %zu bytes no request asked for: %.*s", c->rlen - pos,
          (int)(c->rlen - pos < 60 ? c->rlen - pos : 60), c->rbuf + pos);
  if (pos == 0 && c->rlen == rcap) fatal("reply larger than the read buffer");
  if (pos > 0) {
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
  }
  refill(c);
  send_queued(c, now);
}

static void open_conns(void) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
  if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1) fatal("bad host %s", opt.host);
  epfd = epoll_create1(0);
  if (epfd < 0) fatal("epoll_create1: %s", strerror(errno));
  for (int i = 0; i < opt.conns; i++) {
    conn_t *c = &conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) fatal("socket: %s", strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
      fatal("connect %d/%d: %s", i + 1, opt.conns, strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) fatal("epoll_ctl: %s", strerror(errno));
    c->wbuf = malloc(wcap);
    c->rbuf = malloc(rcap);
    if (!c->wbuf || !c->rbuf) fatal("out of memory");
  }
}

/* ---------- phases ---------- */

static uint64_t warmup_end, measure_deadline, drain_deadline, hard_deadline;
static uint64_t next_due, due_interval;
static uint32_t next_conn;

static void start_traffic(uint64_t now) {
  phase = opt.warmup > 0 ? PH_WARMUP : PH_MEASURE;
  warmup_end = now + (uint64_t)(opt.warmup * 1e9);
  if (phase == PH_MEASURE) {
    t_measure_start = now;
    getrusage(RUSAGE_SELF, &ru_start);
  }
  measure_deadline = warmup_end + (uint64_t)(opt.duration * 1e9);
  if (opt.rate > 0) {
    due_interval = (uint64_t)(1e9 / opt.rate);
    if (due_interval == 0) due_interval = 1;
    next_due = now;
  }
  for (int i = 0; i < opt.conns; i++) {
    refill(&conns[i]);
    send_queued(&conns[i], now);
  }
}

static void begin_drain(uint64_t now) {
  phase = PH_DRAIN;
  t_measure_end = now;
  getrusage(RUSAGE_SELF, &ru_end);
  drain_deadline = now + DRAIN_NS;
  for (int i = 0; i < opt.conns; i++) conns[i].tail = conns[i].sent; /* drop unsent */
}

/* Moves between phases as time and counts dictate; returns 1 once done. */
static int advance(uint64_t now) {
  if (phase == PH_PRELOAD && res.preload_acked == (opt.preload ? (uint64_t)opt.keys : 0)) {
    t_preload_end = now;
    getrusage(RUSAGE_SELF, &ru_preload);
    if (opt.duration <= 0 && opt.ops == 0) {
      phase = PH_DONE;
      return 1;
    }
    start_traffic(now);
  }
  if (phase == PH_WARMUP && now >= warmup_end) {
    phase = PH_MEASURE;
    t_measure_start = now;
    getrusage(RUSAGE_SELF, &ru_start);
  }
  if (phase == PH_MEASURE &&
      (opt.ops > 0 ? res.ops >= opt.ops : now >= measure_deadline)) begin_drain(now);
  if (phase == PH_DRAIN) {
    if (inflight_total == 0) return 1;
    if (now >= drain_deadline) fatal("%llu replies still missing 5 s after the end",
                                     (unsigned long long)inflight_total);
  }
  if (inflight_total > 0 && now - last_progress > STALL_NS)
    fatal("no reply for 10 s with %llu requests in flight", (unsigned long long)inflight_total);
  if (now >= hard_deadline) fatal("timeout after %.0f s", opt.timeout);
  return 0;
}

/* Open-loop scheduling: hands every request now due to the next connection in turn. */
static void schedule(uint64_t now) {
  if (opt.rate == 0 || (phase != PH_WARMUP && phase != PH_MEASURE)) return;
  while (next_due <= now) {
    conn_t *c = &conns[next_conn];
    next_conn = (next_conn + 1) % (uint32_t)opt.conns;
    if (c->tail - c->head >= RING) res.overruns++;
    else enqueue(c, (uint32_t)(rng() % opt.keys), pick_op(), next_due);
    send_queued(c, now);
    next_due += due_interval;
  }
}

static void run(void) {
  struct epoll_event evs[MAX_EVENTS];
  uint64_t now = now_ns();
  t_begin = last_progress = now;
  getrusage(RUSAGE_SELF, &ru_begin);
  hard_deadline = now + (uint64_t)(opt.timeout * 1e9);
  if (opt.preload) {
    for (int i = 0; i < opt.conns; i++) {
      refill(&conns[i]);
      send_queued(&conns[i], now);
    }
  }
  for (;;) {
    if (advance(now)) return;
    uint64_t wait = 100000000ull; /* 100 ms */
    if (opt.rate > 0 && (phase == PH_WARMUP || phase == PH_MEASURE))
      wait = next_due > now ? next_due - now : 0;
    struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000ull),
                          .tv_nsec = (long)(wait % 1000000000ull)};
    int n = epoll_pwait2(epfd, evs, MAX_EVENTS, &ts, NULL);
    if (n < 0 && errno != EINTR) fatal("epoll_pwait2: %s", strerror(errno));
    now = now_ns();
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (evs[i].events & EPOLLOUT) try_write(c);
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, now);
    }
    schedule(now);
  }
}

/* ---------- main ---------- */

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen [--host H] [--port P] [--conns N] [--depth D] [--sets S] [--gets G]\n"
          "               [--value-size B] [--keys K] [--preload] [--duration S | --ops N]\n"
          "               [--warmup S] [--rate R] [--binary] [--verify full|shape]\n"
          "               [--timeout S] [--seed X]\n");
  exit(2);
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"host", 1, 0, 'h'},    {"port", 1, 0, 'p'},      {"conns", 1, 0, 'c'},
      {"depth", 1, 0, 'd'},   {"sets", 1, 0, 's'},      {"gets", 1, 0, 'g'},
      {"value-size", 1, 0, 'v'}, {"keys", 1, 0, 'k'},   {"preload", 0, 0, 'P'},
      {"duration", 1, 0, 't'}, {"ops", 1, 0, 'n'},      {"warmup", 1, 0, 'w'},
      {"rate", 1, 0, 'r'},    {"binary", 0, 0, 'b'},    {"verify", 1, 0, 'V'},
      {"timeout", 1, 0, 'T'}, {"seed", 1, 0, 'S'},      {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (ch) {
      case 'h': opt.host = optarg; break;
      case 'p': opt.port = atoi(optarg); break;
      case 'c': opt.conns = atoi(optarg); break;
      case 'd': opt.depth = atoi(optarg); break;
      case 's': opt.sets = (unsigned)atoi(optarg); break;
      case 'g': opt.gets = (unsigned)atoi(optarg); break;
      case 'v': opt.value_size = atoi(optarg); break;
      case 'k': opt.keys = (uint32_t)strtoul(optarg, NULL, 10); break;
      case 'P': opt.preload = 1; break;
      case 't': opt.duration = atof(optarg); break;
      case 'n': opt.ops = strtoull(optarg, NULL, 10); break;
      case 'w': opt.warmup = atof(optarg); break;
      case 'r': opt.rate = atof(optarg); break;
      case 'b': opt.binary = 1; break;
      case 'V':
        if (strcmp(optarg, "full") == 0) opt.verify_full = 1;
        else if (strcmp(optarg, "shape") == 0) opt.verify_full = 0;
        else usage();
        break;
      case 'T': opt.timeout = atof(optarg); break;
      case 'S': opt.seed = strtoull(optarg, NULL, 10); break;
      default: usage();
    }
  }
  if (optind != argc || opt.conns < 1 || opt.depth < 1 || opt.depth > MAX_DEPTH ||
      opt.sets + opt.gets == 0 || opt.value_size < 1 || opt.keys < 1 || opt.keys > MAX_KEYS ||
      opt.port < 1 || opt.port > 65535 || opt.duration < 0 || opt.warmup < 0 || opt.rate < 0 ||
      opt.timeout <= 0)
    usage();
  rng_state = opt.seed * 0x9E3779B97F4A7C15ull + 1;
  /* Wake on time (the default 50 us timer slack would delay open-loop sends). */
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

  pattern = malloc((size_t)opt.value_size + PATTERN_PERIOD);
  if (!pattern) fatal("out of memory");
  for (int i = 0; i < opt.value_size + PATTERN_PERIOD; i++) pattern[i] = (uint8_t)(33 + i % 89);

  max_request = 24 + 8 + 64 + KEY_LEN + (size_t)opt.value_size + 2;
  preload_depth = (int)(PRELOAD_WINDOW_BYTES / max_request);
  if (preload_depth > PRELOAD_DEPTH) preload_depth = PRELOAD_DEPTH;
  if (preload_depth < 1) preload_depth = 1;
  int window = opt.depth > preload_depth ? opt.depth : preload_depth;
  wcap = (size_t)window * max_request;
  rcap = 2 * ((size_t)opt.value_size + 128);
  if (rcap < 64 * 1024) rcap = 64 * 1024;

  conns = calloc((size_t)opt.conns, sizeof *conns);
  if (!conns) fatal("out of memory");
  open_conns();
  run();
  if (t_measure_end == 0) getrusage(RUSAGE_SELF, &ru_end);
  report();
  return 0;
}
