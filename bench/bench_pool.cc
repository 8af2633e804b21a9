// bench_pool.cc - google-benchmark programs for lfpool and its peers
// (a C++ harness over the C API; the peers are in peers.h / peer_*.c).
//
// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Families (filter with --benchmark_filter=REGEX):
//   pair/<peer>/<bound>/hold:H/real_time/threads:T
//       T threads loop get -> bench_use() -> put on one shared pool, for
//       every peer, unbounded and bounded (max_size 64), T in 1,2,4,8,32.
//       Time is wall clock per pair over all threads (UseRealTime), so
//       items_per_second is the aggregate rate.  "errors" counts double
//       hand-outs and failed calls.
//   contention/<peer>/max_size:2/hold:50/real_time/threads:32
//       bounded contention: 32 threads, 2 objects, a 50-iteration spin while
//       holding; get_p50_ns/get_p99_ns are per-thread percentiles of sampled
//       get latency (waits included), averaged over threads.
//   create/lfpool/max_use:1   get+ret with max_use 1: every get creates
//       (malloc'ing fun), every ret wears the object out (closer frees it).
//   create/lfpool/fresh       get on a pool with nothing available: one
//       creation per get (the pool is rebuilt, untimed, every 8192 gets).
//   memory/<peer>/objects:1048576   (docs/CONTRACT.md §5, P5)
//       overhead_B_per_obj: heap bytes in use (mallinfo2) after opening a
//       pool of 1M objects, minus the objects' own heap chunks (obj_B
//       each, from malloc_usable_size), divided by 1M;
//       overhead_all_out_B_per_obj: the same with every object out.
//       rss_pool_B_per_obj: RSS growth of the pool with its objects, in a
//       fresh forked child (sees what mallinfo2 misses, e.g. APR's mmap'd
//       allocator); rss_overhead_max_B_per_obj = that minus obj_B, an upper
//       bound (it also counts the gaps 64-byte aligned allocations leave).
//       get_all_ok: all 1M objects taken (no double hand-out) and returned.
//   latency/lfpool/1M/hk:{rounds,health}   (docs/CONTRACT.md §5, P4)
//       one thread times every get/ret pair on a pool holding 1M objects
//       (max_avail_delay and the warn threshold set, so that a round walks
//       every record; health: plus a health check of every available
//       object).  Phases alternate on the same pool, 4 of each: while
//       another thread runs one lfpool_housekeep() round, then quiet for
//       as long.  Counters hk_p50/p99/p999/max_ns (rounds running),
//       quiet_p50/p99/p999/max_ns, p999_ratio (target <= 2), hk_round_ms.
//
// Default minimum time per benchmark is 0.1 s (instead of google-benchmark's
// 0.5 s); pass --benchmark_min_time=X to change it.

#include <benchmark/benchmark.h>

#include <lfpool.h>

#include "peers.h"

#include <malloc.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

// ------------------------------------------------------------ helpers

struct PeerPool {
    const bench_peer *peer = nullptr;
    void *pool = nullptr;
    size_t max_size = 0;
    int err = 0;
};

// Pools are opened in main(), before any benchmark runs, and shared by all
// the thread counts of a family: every thread of a run can call
// thread_init(pool) before the first iteration without a race.
std::vector<PeerPool *> g_pools;

PeerPool *open_pool(const bench_peer *peer, size_t max_size, size_t prefill)
{
    auto *pp = new PeerPool;
    pp->peer = peer;
    pp->max_size = max_size;
    pp->err = peer->open(&pp->pool, max_size, prefill);
    if (pp->err) {
        std::fprintf(stderr, "bench_pool: %s: open(max_size %zu) failed: %s\n", peer->name,
                     max_size, std::strerror(pp->err));
        delete pp;
        return nullptr;
    }
    g_pools.push_back(pp);
    return pp;
}

double percentile(std::vector<uint32_t> &v, double q)
{
    if (v.empty())
        return NAN;
    size_t k = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return v[k];
}

// the pair loop shared by the pair/ and contention/ families
void run_pairs(benchmark::State &state, PeerPool *pp, unsigned hold, bool sample)
{
    const bench_peer *peer = pp->peer;
    void *pool = pp->pool;
    int err = peer->thread_init ? peer->thread_init(pool) : 0;
    if (err) {
        state.SkipWithError("thread_init failed");
        for (auto _ : state) {
        }
        return;
    }
    uint64_t errors = 0, fails = 0;
    std::vector<uint32_t> lat;
    unsigned skip = 16;
    if (sample)
        lat.reserve(1 << 16);
    for (auto _ : state) {
        void *o;
        int rc;
        if (sample && --skip == 0) {
            skip = 16;
            uint64_t t0 = bench_now_ns();
            rc = peer->get(pool, &o);
            uint64_t dt = bench_now_ns() - t0;
            if (lat.size() < (1u << 20))
                lat.push_back(dt > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(dt));
        } else {
            rc = peer->get(pool, &o);
        }
        if (rc != 0) {
            fails++;
            continue;
        }
        errors += static_cast<uint64_t>(bench_use(o, hold));
        if (peer->put(pool, o) != 0)
            fails++;
    }
    if (peer->thread_fini)
        peer->thread_fini(pool);
    state.SetItemsProcessed(state.iterations());
    state.counters["errors"] = benchmark::Counter(static_cast<double>(errors + fails));
    if (sample) {
        using C = benchmark::Counter;
        state.counters["get_p50_ns"] = C(percentile(lat, 0.50), C::kAvgThreads);
        state.counters["get_p99_ns"] = C(percentile(lat, 0.99), C::kAvgThreads);
        // (google-benchmark gives every thread the same iteration count, so
        // "every thread progresses" shows as the wall time; lfpool-bench
        // reports the least productive thread's share.)
    }
}

// ------------------------------------------------------- creation (lfpool)

std::atomic<uint64_t> g_created{0};

void *create_obj(void *, uint64_t)
{
    g_created.fetch_add(1, std::memory_order_relaxed);
    return bench_obj_new();
}

int close_obj(void *, void *obj)
{
    bench_obj_free(static_cast<bench_obj *>(obj));
    return 0;
}

lfpool *g_maxuse1_pool;

void BM_create_maxuse1(benchmark::State &state)
{
    lfpool *pool = g_maxuse1_pool;
    uint64_t fails = 0;
    uint64_t before = g_created.load();
    for (auto _ : state) {
        void *o;
        if (lfpool_get(pool, &o, LFPOOL_FOREVER) != 0) {
            fails++;
            continue;
        }
        benchmark::DoNotOptimize(o);
        if (lfpool_ret(pool, o) != 0)
            fails++;
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["errors"] = benchmark::Counter(static_cast<double>(fails));
    if (state.thread_index() == 0)
        state.counters["created_per_get"] =
            static_cast<double>(g_created.load() - before) /
            static_cast<double>(state.iterations() * static_cast<uint64_t>(state.threads()));
}

lfpool *new_fresh_pool()
{
    lfpool_config cfg;
    lfpool_config_init(&cfg);
    cfg.fun = create_obj;
    cfg.closer = close_obj;
    cfg.min_size = 0;
    lfpool *pool = nullptr;
    if (lfpool_new(&pool, &cfg) != 0)
        return nullptr;
    return pool;
}

void BM_create_fresh(benchmark::State &state)
{
    const size_t batch = 8192;
    std::vector<void *> held;
    held.reserve(batch);
    lfpool *pool = new_fresh_pool();
    if (!pool) {
        state.SkipWithError("lfpool_new failed");
        for (auto _ : state) {
        }
        return;
    }
    uint64_t fails = 0;
    for (auto _ : state) {
        void *o;
        if (lfpool_get(pool, &o, LFPOOL_FOREVER) != 0) {
            fails++;
            continue;
        }
        held.push_back(o);
        if (held.size() == batch) {
            state.PauseTiming();
            for (void *h : held)
                if (lfpool_ret(pool, h) != 0)
                    fails++;
            held.clear();
            lfpool_free(pool);
            pool = new_fresh_pool();
            state.ResumeTiming();
            if (!pool) {
                state.SkipWithError("lfpool_new failed");
                break;
            }
        }
    }
    if (pool) {
        for (void *h : held)
            lfpool_ret(pool, h);
        lfpool_free(pool);
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["errors"] = benchmark::Counter(static_cast<double>(fails));
}

// ------------------------------------------------------------ memory (P5)

size_t heap_in_use()
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

size_t rss_bytes()
{
    long pages = 0, resident = 0;
    FILE *f = std::fopen("/proc/self/statm", "r");
    if (f) {
        if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        std::fclose(f);
    }
    return static_cast<size_t>(resident) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

constexpr size_t kMemObjects = size_t{1} << 20;

// RSS growth (bytes) of a forked child that runs `fn` on a fresh heap:
// freed memory of this process cannot hide it.  -1 on failure.
template <typename F> double rss_growth_in_child(F fn)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        close(fd[0]);
        size_t r0 = rss_bytes();
        double d = fn() ? static_cast<double>(rss_bytes()) - static_cast<double>(r0) : -1;
        ssize_t w = write(fd[1], &d, sizeof d);
        _exit(w == static_cast<ssize_t>(sizeof d) ? 0 : 1);
    }
    close(fd[1]);
    double d = -1;
    if (read(fd[0], &d, sizeof d) != static_cast<ssize_t>(sizeof d))
        d = -1;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return d;
}

void BM_memory(benchmark::State &state, const bench_peer *peer)
{
    for (auto _ : state) {
        std::vector<bench_obj *> objs(kMemObjects);
        // RSS growth of the pool with its objects, in a fresh child process
        double pool_rss = rss_growth_in_child([peer] {
            void *pool = nullptr;
            return peer->open(&pool, 0, kMemObjects) == 0;
        });

        // heap bytes of the pool with its objects
        malloc_trim(0);
        size_t h0 = heap_in_use();
        void *pool = nullptr;
        int err = peer->open(&pool, 0, kMemObjects);
        if (err) {
            state.SkipWithError("open failed");
            break;
        }
        double pool_heap = static_cast<double>(heap_in_use()) - static_cast<double>(h0);

        // a 1M-object pool works: take every object, then return them
        bool ok = peer->thread_init ? peer->thread_init(pool) == 0 : true;
        size_t n = 0;
        double obj_bytes = 0; // the objects' own heap chunks
        while (ok && n < kMemObjects) {
            void *o;
            if (peer->get(pool, &o) != 0) {
                ok = false;
                break;
            }
            bench_obj *b = static_cast<bench_obj *>(o);
            if (__atomic_exchange_n(&b->held, 1, __ATOMIC_ACQ_REL) != 0)
                ok = false; // handed out twice
            obj_bytes += static_cast<double>(malloc_usable_size(b) + sizeof(size_t));
            objs[n++] = b;
        }
        double heap_all_out = static_cast<double>(heap_in_use()) - static_cast<double>(h0);
        for (size_t i = 0; i < n; i++) {
            __atomic_store_n(&objs[i]->held, 0, __ATOMIC_RELEASE);
            if (peer->put(pool, objs[i]) != 0)
                ok = false;
        }
        if (peer->thread_fini)
            peer->thread_fini(pool);
        peer->close(pool);
        malloc_trim(0);

        const double N = static_cast<double>(kMemObjects);
        const double obj_B = n ? obj_bytes / static_cast<double>(n) : NAN;
        state.counters["obj_B"] = obj_B;
        state.counters["overhead_B_per_obj"] = (pool_heap - obj_B * N) / N;
        state.counters["overhead_all_out_B_per_obj"] = (heap_all_out - obj_bytes) / N;
        state.counters["rss_pool_B_per_obj"] = pool_rss >= 0 ? pool_rss / N : NAN;
        state.counters["rss_overhead_max_B_per_obj"] = pool_rss >= 0 ? pool_rss / N - obj_B : NAN;
        state.counters["get_all_ok"] = ok ? 1 : 0;
    }
}

// --------------------------------------------------- P4: latency, 1M objects

enum HkMode { HK_ROUNDS, HK_HEALTH };

int healthy(void *, void *)
{
    return 1;
}

lfpool *g_p4_pool[2];
std::map<int, double> g_p4_ratio; // mode -> p99.9 with rounds / without

lfpool *p4_pool(HkMode mode)
{
    if (g_p4_pool[mode])
        return g_p4_pool[mode];
    lfpool_config cfg;
    lfpool_config_init(&cfg);
    cfg.fun = create_obj;
    cfg.closer = close_obj;
    cfg.min_size = kMemObjects;
    // thresholds that make every round walk every record, never firing
    cfg.max_avail_delay = 3600;
    cfg.max_using_delay = 3600;
    cfg.delay = 3600; // the pool's own housekeeper stays asleep
    if (mode == HK_HEALTH) {
        cfg.health = healthy;
        cfg.health_freq = 1;
    }
    lfpool *pool = nullptr;
    if (lfpool_new(&pool, &cfg) != 0)
        return nullptr;
    g_p4_pool[mode] = pool;
    return pool;
}

// Exact latency histogram: 1 ns buckets below 64 us, the rest kept aside.
struct LatHist {
    std::vector<uint64_t> bucket = std::vector<uint64_t>(1 << 16);
    std::vector<uint64_t> big;
    uint64_t n = 0;
    void add(uint64_t ns)
    {
        n++;
        if (ns < bucket.size())
            bucket[ns]++;
        else
            big.push_back(ns);
    }
    double quantile(double q)
    {
        if (n == 0)
            return NAN;
        uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(n)));
        if (rank == 0)
            rank = 1;
        uint64_t acc = 0;
        for (size_t i = 0; i < bucket.size(); i++) {
            acc += bucket[i];
            if (acc >= rank)
                return static_cast<double>(i);
        }
        std::sort(big.begin(), big.end());
        return static_cast<double>(big[std::min<size_t>(rank - acc - 1, big.size() - 1)]);
    }
    double max()
    {
        if (!big.empty())
            return static_cast<double>(*std::max_element(big.begin(), big.end()));
        for (size_t i = bucket.size(); i-- > 0;)
            if (bucket[i])
                return static_cast<double>(i);
        return NAN;
    }
};

// One thread times every get/ret pair.  Phases alternate: during a "rounds"
// phase a second thread runs exactly one lfpool_housekeep() round; the
// following quiet phase lasts as long, on the same pool.  kP4Rounds of each.
constexpr int kP4Rounds = 4;

void BM_latency_1M(benchmark::State &state, HkMode mode)
{
    lfpool *pool = p4_pool(mode);
    if (!pool) {
        state.SkipWithError("lfpool_new(1M) failed");
        for (auto _ : state) {
        }
        return;
    }
    for (auto _ : state) {
        std::atomic<int> cmd{0}; // 0 idle, 1 run one round, 2 exit
        std::atomic<uint64_t> done{0};
        std::atomic<uint64_t> hk_ns{0};
        std::atomic<int> hk_err{0};
        std::thread hk([&] {
            for (;;) {
                int c = cmd.load();
                if (c == 2)
                    break;
                if (c == 0) {
                    std::this_thread::sleep_for(std::chrono::microseconds(200));
                    continue;
                }
                uint64_t t0 = bench_now_ns();
                if (lfpool_housekeep(pool) != 0)
                    hk_err.store(1);
                hk_ns.fetch_add(bench_now_ns() - t0);
                cmd.store(0);
                done.fetch_add(1);
            }
        });
        LatHist quiet, busy;
        uint64_t errors = 0;
        auto pairs = [&](LatHist &h, int n) {
            for (int i = 0; i < n; i++) {
                void *o;
                uint64_t t0 = bench_now_ns();
                if (lfpool_get(pool, &o, LFPOOL_FOREVER) != 0) {
                    errors++;
                    continue;
                }
                errors += static_cast<uint64_t>(bench_use(o, 0));
                if (lfpool_ret(pool, o) != 0)
                    errors++;
                h.add(bench_now_ns() - t0);
            }
        };
        for (int r = 0; r < kP4Rounds; r++) {
            // rounds phase: until the round started now is over
            uint64_t target = done.load() + 1;
            uint64_t t0 = bench_now_ns();
            cmd.store(1);
            while (done.load() < target)
                pairs(busy, 256);
            uint64_t span = bench_now_ns() - t0;
            // quiet phase, as long
            t0 = bench_now_ns();
            while (bench_now_ns() - t0 < span)
                pairs(quiet, 256);
        }
        cmd.store(2);
        hk.join();
        double q999 = quiet.quantile(0.999), b999 = busy.quantile(0.999);
        state.counters["quiet_p50_ns"] = quiet.quantile(0.5);
        state.counters["quiet_p99_ns"] = quiet.quantile(0.99);
        state.counters["quiet_p999_ns"] = q999;
        state.counters["quiet_max_ns"] = quiet.max();
        state.counters["hk_p50_ns"] = busy.quantile(0.5);
        state.counters["hk_p99_ns"] = busy.quantile(0.99);
        state.counters["hk_p999_ns"] = b999;
        state.counters["hk_max_ns"] = busy.max();
        state.counters["p999_ratio"] = b999 / q999;
        state.counters["pairs"] = static_cast<double>(quiet.n + busy.n);
        state.counters["hk_rounds"] = kP4Rounds;
        state.counters["hk_round_ms"] = static_cast<double>(hk_ns.load()) * 1e-6 / kP4Rounds;
        state.counters["errors"] = static_cast<double>(errors + static_cast<uint64_t>(hk_err));
        g_p4_ratio[mode] = b999 / q999;
    }
}

// --------------------------------------------------------- registration

const unsigned kThreads[] = {1, 2, 4, 8, 32};

void register_all()
{
    for (size_t i = 0; bench_peers[i]; i++) {
        const bench_peer *peer = bench_peers[i];
        // pair/: unbounded and max_size 64
        for (size_t max_size : {size_t{0}, size_t{64}}) {
            PeerPool *pp = open_pool(peer, max_size, 64);
            if (!pp)
                continue;
            std::string name = std::string("pair/") + peer->name + "/" +
                               (max_size ? "max_size:64" : "unbounded") + "/hold:0";
            auto *b = benchmark::RegisterBenchmark(
                name.c_str(), [pp](benchmark::State &s) { run_pairs(s, pp, 0, false); });
            b->UseRealTime();
            for (unsigned t : kThreads) {
                if (peer->supports && !peer->supports(max_size, t)) {
                    std::fprintf(stderr, "bench_pool: %s: %u threads, max_size %zu: n/a\n",
                                 peer->name, t, max_size);
                    continue;
                }
                b->Threads(static_cast<int>(t));
            }
        }
        // contention/: 32 threads on 2 objects, hold 50
        if (peer->supports && !peer->supports(2, 32)) {
            std::fprintf(stderr, "bench_pool: %s: contention (32 threads, max_size 2): n/a "
                                 "(no blocking get)\n", peer->name);
        } else if (PeerPool *pp = open_pool(peer, 2, 2)) {
            std::string name = std::string("contention/") + peer->name + "/max_size:2/hold:50";
            benchmark::RegisterBenchmark(name.c_str(),
                                         [pp](benchmark::State &s) { run_pairs(s, pp, 50, true); })
                ->UseRealTime()
                ->Threads(32);
        }
    }

    // creation rate (lfpool only)
    {
        lfpool_config cfg;
        lfpool_config_init(&cfg);
        cfg.fun = create_obj;
        cfg.closer = close_obj;
        cfg.min_size = 0;
        cfg.max_use = 1;
        if (lfpool_new(&g_maxuse1_pool, &cfg) == 0)
            benchmark::RegisterBenchmark("create/lfpool/max_use:1", BM_create_maxuse1)
                ->UseRealTime()
                ->Threads(1)
                ->Threads(2);
        benchmark::RegisterBenchmark("create/lfpool/fresh", BM_create_fresh)->UseRealTime();
    }

    // memory (not dpdk: its memory is EAL's, not the C heap)
    for (size_t i = 0; bench_peers[i]; i++) {
        const bench_peer *peer = bench_peers[i];
        if (std::strcmp(peer->name, "dpdk") == 0)
            continue;
        std::string name = std::string("memory/") + peer->name + "/objects:1048576";
        benchmark::RegisterBenchmark(name.c_str(), BM_memory, peer)
            ->Iterations(1)
            ->Unit(benchmark::kMillisecond);
    }

    // P4
    const char *modes[] = {"rounds", "health"};
    for (int m : {HK_ROUNDS, HK_HEALTH}) {
        std::string name = std::string("latency/lfpool/1M/hk:") + modes[m];
        benchmark::RegisterBenchmark(name.c_str(), BM_latency_1M, static_cast<HkMode>(m))
            ->Iterations(1)
            ->Unit(benchmark::kMillisecond);
    }
}

} // namespace

int main(int argc, char **argv)
{
    // modest default: 0.1 s per benchmark unless the caller says otherwise
    std::vector<char *> args(argv, argv + argc);
    bool has_min_time = false;
    for (int i = 1; i < argc; i++)
        if (std::strncmp(argv[i], "--benchmark_min_time", 20) == 0)
            has_min_time = true;
    static char min_time[] = "--benchmark_min_time=0.1";
    if (!has_min_time)
        args.insert(args.begin() + 1, min_time);
    int nargs = static_cast<int>(args.size());
    args.push_back(nullptr);

    benchmark::Initialize(&nargs, args.data());
    if (benchmark::ReportUnrecognizedArguments(nargs, args.data()))
        return 1;
    register_all();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();

    if (!g_p4_ratio.empty()) {
        std::printf("\nP4: get/ret p99.9 with 1M objects, housekeeping rounds running vs not:");
        if (g_p4_ratio.count(HK_ROUNDS))
            std::printf(" %.2fx (rounds)", g_p4_ratio[HK_ROUNDS]);
        if (g_p4_ratio.count(HK_HEALTH))
            std::printf(" %.2fx (rounds with health checks)", g_p4_ratio[HK_HEALTH]);
        std::printf("; target <= 2x\n");
    }

    for (lfpool *&p : g_p4_pool)
        if (p)
            lfpool_free(p);
    if (g_maxuse1_pool)
        lfpool_free(g_maxuse1_pool);
    for (PeerPool *pp : g_pools) {
        pp->peer->close(pp->pool);
        delete pp;
    }
    return 0;
}
