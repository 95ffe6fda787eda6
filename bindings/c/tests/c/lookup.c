/*
 * lookup.c: the C ABI of mimi-dns exercised the way a C client uses it.
 *
 *   lookup SERVER TRUST_FILE DOWN_SERVER [TIMEOUT_MS]
 *
 * SERVER is a running `mimi-publisher serve` (IP:PORT) serving the example
 * world, TRUST_FILE its trust store, DOWN_SERVER an address nothing
 * answers on; TIMEOUT_MS (default 10000) the DNS timeout, longer under
 * valgrind, which runs every thread on one core many times slower. It creates a resolver from a JSON configuration, does one
 * lookup, a batch, lookups from several threads on one handle, asynchronous
 * lookups with a callback (waiting on a condition variable), exercises the
 * error paths, and frees everything. Each result is printed as
 * "LABEL<TAB>JSON" for the test driving it (tests/bindings_c.rs), which
 * checks the JSON with a real parser; this program checks the outcomes
 * itself too and exits non-zero on the first failure.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mimi_resolver.h"

static int failures = 0;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
      failures++;                                          \
    }                                                      \
  } while (0)

/* Whether the JSON object `json` has this outcome (the library prints
 * compact JSON: "outcome":"verified"). */
static int has_outcome(const char *json, const char *outcome) {
  char needle[64];
  snprintf(needle, sizeof needle, "\"outcome\":\"%s\"", outcome);
  return json != NULL && strstr(json, needle) != NULL;
}

static int count(const char *haystack, const char *needle) {
  int n = 0;
  for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
}

/* One blocking lookup, printed and checked; returns nothing, frees all. */
static void lookup_expect(const MimiResolver *r, const char *label, const char *sii,
                          const char *outcome) {
  char *json = NULL, *error = NULL;
  MimiStatus st = mimi_resolver_lookup(r, sii, &json, &error);
  CHECK(st == MIMI_STATUS_OK, "%s: status %d: %s", label, (int)st, error ? error : "?");
  CHECK(error == NULL, "%s: error set on success", label);
  CHECK(has_outcome(json, outcome), "%s: expected %s, got %s", label, outcome, json ? json : "NULL");
  if (json) printf("%s\t%s\n", label, json);
  mimi_string_free(json);
  mimi_string_free(error);
}

/* ---- several threads on one handle ---- */

struct worker {
  const MimiResolver *r;
  int index;
  int ok;
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  static const char *siis[] = {"alice@example.com", "dave@example.com", "nobody@example.com"};
  static const char *outcomes[] = {"verified", "rejected", "not_found"};
  w->ok = 0;
  for (int i = 0; i < 6; i++) {
    int k = (w->index + i) % 3;
    char *json = NULL;
    MimiStatus st = mimi_resolver_lookup(w->r, siis[k], &json, NULL);
    if (st == MIMI_STATUS_OK && has_outcome(json, outcomes[k])) w->ok++;
    else fprintf(stderr, "thread %d: %s: status %d, %s\n", w->index, siis[k], (int)st, json ? json : "NULL");
    mimi_string_free(json);
  }
  return NULL;
}

/* ---- asynchronous lookups ---- */

struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int calls;
  char *json;                /* owned once the callback has run */
  const MimiResolver *r;     /* for the blocking call inside the callback */
  MimiStatus blocking_status;
  pthread_t thread;
};

static void on_result(void *user_data, char *json) {
  struct waiter *w = user_data;
  MimiStatus inner = MIMI_STATUS_OK;
  if (w->r != NULL) {
    /* A blocking lookup on a resolver thread is refused, not a deadlock. */
    char *out = NULL, *error = NULL;
    inner = mimi_resolver_lookup(w->r, "alice@example.com", &out, &error);
    if (out != NULL) inner = MIMI_STATUS_OK; /* must not happen */
    mimi_string_free(error);
    mimi_string_free(out);
  }
  pthread_mutex_lock(&w->lock);
  w->calls++;
  if (w->json != NULL) mimi_string_free(w->json); /* a second call is counted, not leaked */
  w->json = json;
  w->blocking_status = inner;
  w->thread = pthread_self();
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

static void waiter_init(struct waiter *w, const MimiResolver *r) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cond, NULL);
  w->r = r;
}

static void waiter_wait(struct waiter *w) {
  pthread_mutex_lock(&w->lock);
  while (w->calls == 0) pthread_cond_wait(&w->cond, &w->lock);
  pthread_mutex_unlock(&w->lock);
}

static void waiter_destroy(struct waiter *w) {
  mimi_string_free(w->json);
  pthread_cond_destroy(&w->cond);
  pthread_mutex_destroy(&w->lock);
}

int main(int argc, char **argv) {
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: %s SERVER TRUST_FILE DOWN_SERVER [TIMEOUT_MS]\n", argv[0]);
    return 2;
  }
  long timeout_ms = argc == 5 ? strtol(argv[4], NULL, 10) : 10000;
  const char *server = argv[1], *trust = argv[2], *down = argv[3];
  CHECK(mimi_version() != NULL && strlen(mimi_version()) > 0, "no version");
  printf("version\t\"%s\"\n", mimi_version());

  char config[4096];
  snprintf(config, sizeof config,
           "{\"trust_file\":\"%s\",\"servers\":[\"%s\"],\"zones\":[\"dir.chat.example.org\"],"
           "\"tel_roots\":[\"e164.mimi.example\"],\"timeout_ms\":%ld}",
           trust, server, timeout_ms);
  MimiResolver *r = NULL;
  char *error = NULL;
  MimiStatus st = mimi_resolver_new(config, &r, &error);
  CHECK(st == MIMI_STATUS_OK && r != NULL && error == NULL, "resolver_new: %d %s", (int)st,
        error ? error : "");
  if (r == NULL) return 1;

  /* One lookup of each documented outcome, and a bad input. */
  lookup_expect(r, "alice", "alice@example.com", "verified");
  lookup_expect(r, "dave", "dave@example.com", "rejected");
  lookup_expect(r, "nobody", "nobody@example.com", "not_found");
  lookup_expect(r, "bad_sii", "not an sii", "bad_input");

  /* A batch: one object per input, in input order. */
  char *json = NULL;
  st = mimi_resolver_lookup_batch(
      r, "[\"alice@example.com\",\"dave@example.com\",\"nobody@example.com\",\"???\",\"+39 06 1234 5678\"]",
      &json, &error);
  CHECK(st == MIMI_STATUS_OK && json != NULL && json[0] == '[', "batch: %d %s", (int)st,
        error ? error : "");
  if (json) {
    CHECK(count(json, "\"outcome\":") == 5, "batch: 5 results expected: %s", json);
    const char *a = strstr(json, "\"outcome\":\"verified\""), *d = strstr(json, "\"outcome\":\"rejected\"");
    const char *n = strstr(json, "\"outcome\":\"not_found\""), *b = strstr(json, "\"outcome\":\"bad_input\"");
    CHECK(a && d && n && b && a < d && d < n && n < b, "batch: order: %s", json);
    printf("batch\t%s\n", json);
  }
  mimi_string_free(json);
  json = NULL;

  /* Eight threads, one handle. */
  enum { THREADS = 8 };
  pthread_t threads[THREADS];
  struct worker workers[THREADS];
  for (int i = 0; i < THREADS; i++) {
    workers[i] = (struct worker){.r = r, .index = i, .ok = 0};
    CHECK(pthread_create(&threads[i], NULL, worker_main, &workers[i]) == 0, "pthread_create");
  }
  int ok = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    ok += workers[i].ok;
  }
  CHECK(ok == THREADS * 6, "threads: %d of %d lookups right", ok, THREADS * 6);
  printf("threads\t{\"ok\":%d}\n", ok);

  /* An asynchronous lookup; the callback also tries a blocking call. */
  struct waiter w;
  waiter_init(&w, r);
  st = mimi_resolver_lookup_async(r, "carol@mail.example", on_result, &w, &error);
  CHECK(st == MIMI_STATUS_OK && error == NULL, "async: %d", (int)st);
  waiter_wait(&w);
  CHECK(w.calls == 1, "async: %d calls", w.calls);
  CHECK(has_outcome(w.json, "verified"), "async: %s", w.json ? w.json : "NULL");
  CHECK(w.blocking_status == MIMI_STATUS_CALLBACK_THREAD, "blocking in callback: %d",
        (int)w.blocking_status);
  CHECK(!pthread_equal(w.thread, pthread_self()), "the callback ran on the caller's thread");
  if (w.json) printf("async\t%s\n", w.json);
  waiter_destroy(&w);

  /* ---- error paths ---- */
  /* NULL arguments: an error naming the argument, never a crash. */
  st = mimi_resolver_lookup(NULL, "alice@example.com", &json, &error);
  CHECK(st == MIMI_STATUS_NULL_ARGUMENT && json == NULL && error && strstr(error, "resolver"),
        "null resolver: %d %s", (int)st, error ? error : "");
  printf("null_resolver\t{\"status\":%d}\n", (int)st);
  mimi_string_free(error);
  st = mimi_resolver_lookup(r, NULL, &json, &error);
  CHECK(st == MIMI_STATUS_NULL_ARGUMENT && error && strstr(error, "sii"), "null sii: %d", (int)st);
  mimi_string_free(error);
  st = mimi_resolver_lookup(r, "alice@example.com", NULL, &error);
  CHECK(st == MIMI_STATUS_NULL_ARGUMENT && error && strstr(error, "json_out"), "null out: %d", (int)st);
  mimi_string_free(error);
  st = mimi_resolver_lookup(r, "alice@example.com", NULL, NULL); /* no error pointer either */
  CHECK(st == MIMI_STATUS_NULL_ARGUMENT, "null out, null error: %d", (int)st);
  st = mimi_resolver_lookup_async(r, "alice@example.com", NULL, NULL, &error);
  CHECK(st == MIMI_STATUS_NULL_ARGUMENT && error && strstr(error, "callback"), "null callback: %d", (int)st);
  mimi_string_free(error);
  MimiResolver *none = r; /* mimi_resolver_new must overwrite it with NULL */
  st = mimi_resolver_new(NULL, &none, &error);
  CHECK(st == MIMI_STATUS_NULL_ARGUMENT && none == NULL && error && strstr(error, "config_json"),
        "null config: %d", (int)st);
  mimi_string_free(error);
  st = mimi_resolver_new(config, NULL, &error);
  CHECK(st == MIMI_STATUS_NULL_ARGUMENT && error && strstr(error, "out"), "null out: %d", (int)st);
  mimi_string_free(error);
  mimi_string_free(NULL);
  mimi_resolver_free(NULL);
  MimiResolver *keep = r;

  /* Invalid UTF-8. */
  st = mimi_resolver_lookup(keep, "al\xffice@example.com", &json, &error);
  CHECK(st == MIMI_STATUS_INVALID_UTF8 && error && strstr(error, "sii"), "utf-8: %d", (int)st);
  printf("invalid_utf8\t{\"status\":%d}\n", (int)st);
  mimi_string_free(error);

  /* Bad configurations name the field. */
  char with_servers[4096], with_timeout[4096];
  snprintf(with_servers, sizeof with_servers,
           "{\"trust_file\":\"%s\",\"servers\":[\"%s\",\"tls://\"]}", trust, server);
  snprintf(with_timeout, sizeof with_timeout, "{\"trust_file\":\"%s\",\"timeout_ms\":0}", trust);
  const struct {
    const char *json, *field;
  } bad_configs[] = {
      {"{\"trust_file\":\"/nonexistent/trust.toml\"}", "trust_file"},
      {"{\"trust_fil\":\"x\"}", "config"},
      {"{", "config"},
      {with_servers, "servers[1]"},
      {with_timeout, "timeout_ms"},
  };
  for (size_t i = 0; i < sizeof bad_configs / sizeof bad_configs[0]; i++) {
    none = keep; /* must be overwritten with NULL */
    st = mimi_resolver_new(bad_configs[i].json, &none, &error);
    CHECK(st == MIMI_STATUS_INVALID_CONFIG && none == NULL && error &&
              strncmp(error, bad_configs[i].field, strlen(bad_configs[i].field)) == 0,
          "bad config %zu: status %d, error %s", i, (int)st, error ? error : "NULL");
    if (error) printf("bad_config_%zu\t{\"status\":%d,\"field\":\"%s\"}\n", i, (int)st, bad_configs[i].field);
    mimi_string_free(error);
  }

  /* A batch that is not an array of strings. */
  st = mimi_resolver_lookup_batch(keep, "[\"a\", 1]", &json, &error);
  CHECK(st == MIMI_STATUS_INVALID_ARGUMENT && json == NULL && error && strstr(error, "siis_json"),
        "bad batch: %d %s", (int)st, error ? error : "");
  printf("bad_batch\t{\"status\":%d}\n", (int)st);
  mimi_string_free(error);
  mimi_resolver_free(keep);

  /* A server that does not answer: dns_error, for one lookup and async. */
  char down_config[4096];
  snprintf(down_config, sizeof down_config,
           "{\"trust_file\":\"%s\",\"servers\":[\"%s\"],\"timeout_ms\":300,\"attempts\":0}", trust, down);
  MimiResolver *d = NULL;
  st = mimi_resolver_new(down_config, &d, &error);
  CHECK(st == MIMI_STATUS_OK && d != NULL, "down resolver: %d %s", (int)st, error ? error : "");
  mimi_string_free(error);
  if (d != NULL) {
    lookup_expect(d, "down", "alice@example.com", "dns_error");
    /* Freed while an async lookup may be running: the callback still
     * comes, exactly once (with dns_error, or cancelled as bad_input). */
    struct waiter c;
    waiter_init(&c, NULL);
    st = mimi_resolver_lookup_async(d, "alice@example.com", on_result, &c, NULL);
    CHECK(st == MIMI_STATUS_OK, "async on down: %d", (int)st);
    mimi_resolver_free(d);
    waiter_wait(&c);
    CHECK(has_outcome(c.json, "dns_error") || has_outcome(c.json, "bad_input"), "freed: %s",
          c.json ? c.json : "NULL");
    if (c.json) printf("freed_async\t%s\n", c.json);
    waiter_destroy(&c);
  }

  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("done\t{}\n");
  return 0;
}
