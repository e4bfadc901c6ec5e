// cpp_api: the C API used from C++17 (the header's own extern "C"), with std::vector
// buffers. For the first `layout values` case of each loss in tests/fixtures/mmdet.txt it runs
// every call and checks loss and gradient against mmdetection, in place against out of
// place, and that a call with a NaN leaves the loss, the gradient and the state as they were.
//
// Usage: cpp_api <path to tests/fixtures/mmdet.txt>
#include "ghm.h"
#include "fixtures.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

static_assert(std::is_trivially_copyable<ghm_state>::value, "ghm_state is plain data");
static_assert(std::is_standard_layout<ghm_state>::value, "ghm_state is plain data");
static_assert(std::is_trivially_copyable<ghm_config>::value, "ghm_config is plain data");
static_assert(std::is_same<ghm_status, std::int32_t>::value, "ghm_status is int32_t");

namespace {

using LossFn = ghm_status (*)(ghm_state *, const float *, const float *, const float *,
                              std::size_t, float *, float *);

int g_passed = 0;
int g_failed = 0;

void expect(bool ok, const std::string &what) {
    if (ok) {
        ++g_passed;
    } else {
        ++g_failed;
        if (g_failed <= 20) {
            std::printf("  FAIL %s\n", what.c_str());
        }
    }
}

bool same_bytes(const void *a, const void *b, std::size_t n) { return std::memcmp(a, b, n) == 0; }

// A loss and its state, as a C++ user would wrap them.
struct Harmonizer {
    ghm_state state;
    LossFn fn;

    float run(const std::vector<float> &a, const std::vector<float> &b, const float *w,
              std::vector<float> &grad, ghm_status &status) {
        float loss = 0.0f;
        grad.resize(a.size());
        status = fn(&state, a.data(), b.data(), w, a.size(), &loss, grad.data());
        return loss;
    }
};

void run_case(const fx_case &c) {
    const bool is_c = c.loss == 'c';
    ghm_config cfg = is_c ? ghm_c_config_default() : ghm_r_config_default();
    cfg.bins = c.bins;
    cfg.momentum = c.momentum;
    cfg.loss_weight = c.loss_weight;
    if (!is_c) {
        cfg.mu = c.mu;
    }
    Harmonizer h{};
    h.fn = is_c ? ghm_c_loss : ghm_r_loss;
    const ghm_status init = is_c ? ghm_c_init(&h.state, &cfg) : ghm_r_init(&h.state, &cfg);
    expect(init == GHM_OK, std::string(c.name) + ": init");
    if (init != GHM_OK) {
        return;
    }
    for (std::size_t ci = 0; ci < c.ncalls; ++ci) {
        const fx_call &k = c.calls[ci];
        const std::string where = std::string(c.name) + " call " + std::to_string(ci);
        const std::vector<float> a(k.pred, k.pred + k.n);
        const std::vector<float> b(k.target, k.target + k.n);
        const ghm_state before = h.state;

        // an error first: a NaN at the end changes nothing
        if (k.n > 0) {
            std::vector<float> bad = a;
            bad.back() = std::numeric_limits<float>::quiet_NaN();
            std::vector<float> grad(k.n, -7.0f);
            float loss = -7.0f;
            const ghm_status s =
                h.fn(&h.state, bad.data(), b.data(), k.weight, k.n, &loss, grad.data());
            bool untouched = loss == -7.0f && same_bytes(&h.state, &before, sizeof before);
            for (float g : grad) {
                untouched = untouched && g == -7.0f;
            }
            expect(s == GHM_ERR_NONFINITE, where + ": NaN gives GHM_ERR_NONFINITE, got " +
                                               ghm_status_str(s));
            expect(untouched, where + ": a failed call left loss, grad and state untouched");
        }

        // out of place
        std::vector<float> grad;
        ghm_status s = GHM_OK;
        const float loss = h.run(a, b, k.weight, grad, s);
        expect(s == GHM_OK, where + ": status " + ghm_status_str(s));
        expect(std::isfinite(loss) && loss >= 0.0f, where + ": loss finite and >= 0");
        expect(std::fabs(double(loss) - double(k.loss)) <= 1e-5 * std::fabs(double(k.loss)),
               where + ": loss " + std::to_string(loss) + " vs mmdet " + std::to_string(k.loss));
        double maxb = 0.0;
        for (std::size_t i = 0; i < k.n; ++i) {
            maxb = std::fmax(maxb, std::fabs(double(k.grad[i])));
        }
        std::size_t bad = 0;
        for (std::size_t i = 0; i < k.n; ++i) {
            const double d = std::fabs(double(grad[i]) - double(k.grad[i]));
            if (!(d <= 1e-5 * std::fabs(double(k.grad[i])) + 1e-6 * maxb)) {
                ++bad;
            }
        }
        expect(bad == 0, where + ": " + std::to_string(bad) + " gradient elements off");

        // in place, from the same starting state: identical bits
        Harmonizer again{before, h.fn};
        std::vector<float> buf = a;
        float loss_ip = 0.0f;
        s = again.fn(&again.state, buf.data(), b.data(), k.weight, k.n, &loss_ip, buf.data());
        expect(s == GHM_OK, where + ": in place status " + ghm_status_str(s));
        expect(same_bytes(&loss_ip, &loss, sizeof loss) && buf == grad &&
                   same_bytes(&again.state, &h.state, sizeof h.state),
               where + ": in place equals out of place");
    }
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s tests/fixtures/mmdet.txt\n", argv[0]);
        return 2;
    }
    FILE *f = std::fopen(argv[1], "r");
    if (f == nullptr) {
        std::fprintf(stderr, "cpp_api: cannot open %s\n", argv[1]);
        return 2;
    }
    bool done_c = false, done_r = false;
    fx_case c;
    int r;
    while ((r = fx_read_case(f, &c)) == 1) {
        bool &done = c.loss == 'c' ? done_c : done_r;
        if (!c.labels_layout && !done) {
            done = true;
            std::printf("cpp_api: case %s (%zu calls)\n", c.name, c.ncalls);
            run_case(c);
        }
        fx_free_case(&c);
    }
    std::fclose(f);
    expect(r == 0, "fixture file parsed");
    expect(done_c && done_r, "found a values-layout case of each loss");

    // the status strings are usable as C++ strings
    expect(std::string(ghm_status_str(GHM_OK)) != std::string(ghm_status_str(GHM_ERR_NULL)),
           "distinct status strings");

    std::printf("cpp_api: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
